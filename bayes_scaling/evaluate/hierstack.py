r"""Hierarchical (partially pooled) stacking of law families across ladders.

Each ladder ``l`` has its own stacking weights :math:`w_l = \mathrm{softmax}(\mu + B u_l)`,
:math:`u_l \sim \mathrm{Normal}(0, \sigma^2 I_{K-1})`, where ``B`` is an orthonormal basis of
the sum-to-zero log-weights (``K`` families; softmax ignores a common shift, so this is the
isotropic prior on the identified part) and :math:`\mu` is a sum-to-zero log-weight vector.
The likelihood of a ladder's weights is the stacking objective on its own held-out rows,
:math:`\sum_i \log \sum_k w_{lk} p_k(y_i)` (Yao, Vehtari, Simpson & Gelman 2018,
doi:10.1214/17-BA1091, eq. 4), used as a log likelihood of the weights with a hierarchical prior
on their unconstrained scale as in Bayesian hierarchical stacking (Yao, Pirš, Vehtari & Gelman
2021, arXiv:2101.08954, section 2, with the ladder as the only "input" of the weights).

Point estimates only: the population's ``mu`` is the centred log of the cross-ladder weights
(:func:`population_mu`; learning it jointly with ``sigma`` gave a rugged objective, see
``benchmarks/CRITERIA_s13_i19.md``), ``sigma`` by empirical Bayes, maximising the sum over the
population's ladders of the Laplace approximation of each ladder's marginal stacking likelihood
(:func:`fit_sigma`); a ladder's weights at the mode of its own posterior given the population
(:func:`hier_weights`). A ladder whose rows are decisive (a sharp stacking
objective) moves far from the population's weights; one whose rows barely discriminate between
the families keeps the population's weights; ``sigma`` (learned) says how far ladders'
weights differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

from bayes_scaling.errors import BayesScalingError

#: The ``sigma`` that :func:`fit_sigma` searches, log-spaced, before refining (on the log-weight
#: scale: from "every ladder has the population's weights" to "each its own").
SIGMA_GRID = np.geomspace(0.01, 100.0, 25)


def basis(k: int) -> np.ndarray:
    """An orthonormal basis, ``(k, k - 1)``, of the sum-to-zero vectors of length ``k``."""
    if k < 2:
        raise BayesScalingError(f"hierarchical stacking needs at least 2 families, got {k}")
    q, _ = np.linalg.qr(np.eye(k) - 1.0 / k)
    return q[:, : k - 1]


def _rows(lpd: np.ndarray) -> np.ndarray:
    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[1] < 2:
        raise BayesScalingError(f"hierarchical stacking needs a (runs, families) array with at "
                                f"least 2 families, got shape {lpd.shape}")
    lpd = np.where(np.isfinite(lpd), lpd, -1e6)
    return lpd - lpd.max(axis=1, keepdims=True) if lpd.shape[0] else lpd


def _objective(u: np.ndarray, lpd: np.ndarray, mu: np.ndarray, sigma: float,
               b: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log posterior of ``u`` (up to a constant) and its gradient."""
    z = mu + b @ u
    logw = z - special.logsumexp(z)
    t = lpd + logw[None, :]
    row = special.logsumexp(t, axis=1)
    resp = np.exp(t - row[:, None])
    w = np.exp(logw)
    grad_z = resp.sum(axis=0) - lpd.shape[0] * w
    return (-float(row.sum()) + 0.5 * float(u @ u) / sigma**2,
            -(b.T @ grad_z) + u / sigma**2)


def _hessian(u: np.ndarray, lpd: np.ndarray, mu: np.ndarray, sigma: float,
             b: np.ndarray) -> np.ndarray:
    r"""Hessian of the negative log posterior in ``u``: :math:`B^\top (\sum_i [\mathrm{diag}
    (w) - w w^\top] - [\mathrm{diag}(r_i) - r_i r_i^\top]) B + I/\sigma^2`."""
    z = mu + b @ u
    w = special.softmax(z)
    t = lpd + np.log(np.maximum(w, 1e-300))[None, :]
    resp = np.exp(t - special.logsumexp(t, axis=1)[:, None])
    n = lpd.shape[0]
    h_z = n * (np.diag(w) - np.outer(w, w)) - (np.diag(resp.sum(axis=0)) - resp.T @ resp)
    return b.T @ h_z @ b + np.eye(b.shape[1]) / sigma**2


def _mode(lpd: np.ndarray, mu: np.ndarray, sigma: float, b: np.ndarray,
          start: np.ndarray | None = None) -> np.ndarray:
    """The posterior mode of ``u``, from ``start`` (default 0): exact-Hessian trust-region
    Newton (the objective need not be convex in ``u``; on the public ladders' rows its mode
    was unique: no lower mode from random starts)."""
    if lpd.shape[0] == 0:
        return np.zeros(b.shape[1])
    u0 = np.zeros(b.shape[1]) if start is None else start
    res = optimize.minimize(_objective, u0, args=(lpd, mu, sigma, b),
                            jac=True, hess=_hessian, method="trust-exact",
                            options={"gtol": 1e-9, "maxiter": 500})
    return res.x


def log_marginal(lpd: np.ndarray, mu: np.ndarray, sigma: float,
                 start: np.ndarray | None = None) -> float:
    r"""Laplace approximation of :math:`\log \int \prod_i \sum_k w_k(u) e^{\mathrm{lpd}_{ik}}
    \,\mathrm{Normal}(u; 0, \sigma^2 I)\,du` (each row's densities taken relative to its best
    family's, a constant per row that does not depend on ``mu`` or ``sigma``).

    ``mu``: sum-to-zero log-weights, one per family (column of ``lpd``).
    """
    lpd = _rows(lpd)
    mu = np.asarray(mu, dtype=float)
    b = basis(lpd.shape[1])
    if lpd.shape[0] == 0:
        return 0.0
    u = _mode(lpd, mu, sigma, b, start)
    if start is not None:
        start[:] = u  # the next call's warm start (fit_sigma)
    neg, _ = _objective(u, lpd, mu, sigma, b)
    eig = np.clip(np.linalg.eigvalsh(_hessian(u, lpd, mu, sigma, b)), 1e-12, None)
    d = b.shape[1]
    # -neg = loglik + log prior kernel; the prior's normaliser is -d log sigma - d/2 log 2pi,
    # the Gaussian integral adds d/2 log 2pi - 1/2 log det H
    return -neg - d * np.log(sigma) - 0.5 * float(np.sum(np.log(eig)))


def hier_weights(lpd: np.ndarray, mu: np.ndarray, sigma: float) -> np.ndarray:
    """A ladder's weights at the mode of its posterior given the population ``(mu, sigma)``.

    ``lpd``: ``(runs, families)`` held-out log densities (no rows: the population's weights,
    ``softmax(mu)``); ``mu``: the population's sum-to-zero log-weights.
    """
    mu = np.asarray(mu, dtype=float)
    lpd = _rows(np.asarray(lpd, dtype=float).reshape(-1, mu.size))
    if sigma <= 0:
        raise BayesScalingError(f"hierarchical stacking: sigma must be positive, got {sigma}")
    b = basis(mu.size)
    return special.softmax(mu + b @ _mode(lpd, mu, sigma, b))


def population_mu(cross: Sequence[float], floor: float = 1e-3) -> np.ndarray:
    """The population's sum-to-zero log-weights from the cross-ladder weights (floored at
    ``floor`` so that a family the pooled stacking dropped stays reachable)."""
    logw = np.log(np.maximum(np.asarray(cross, dtype=float), floor))
    return logw - logw.mean()


def forward_score(earlier: np.ndarray, later: np.ndarray, mu: np.ndarray,
                  sigma: float) -> float:
    r"""One-budget-forward stacking score of the hierarchical weights: the ladder's weights
    learned on its ``earlier`` rows alone (:func:`hier_weights`) scored on its ``later`` rows,
    :math:`\sum_{i \in \mathrm{later}} \log \sum_k w_k p_{ik}` (each row's densities
    relative to its best family's, a constant that does not depend on ``mu`` or ``sigma``).
    The split: :func:`bayes_scaling.evaluate.stacking.forward_split`."""
    mu = np.asarray(mu, dtype=float)
    later = _rows(np.asarray(later, dtype=float).reshape(-1, mu.size))
    w = hier_weights(earlier, mu, sigma)
    return float(special.logsumexp(later + np.log(w)[None, :], axis=1).sum())


def fit_sigma(lpds: Sequence[np.ndarray], mu: np.ndarray,
              later: Sequence[np.ndarray] | None = None) -> float:
    """Empirical Bayes ``sigma`` given the population's log-weights ``mu``: the maximum over
    :data:`SIGMA_GRID`, refined by a bounded scalar search between the best point's
    neighbours, of the sum over the ladders of their evidence for ``sigma``:

    * ``later`` None: each ladder's Laplace log marginal stacking likelihood on its rows
      ``lpds[l]`` (:func:`log_marginal`);
    * ``later`` given (one array per ladder): the one-budget-forward score of weights learned
      on ``lpds[l]`` (the earlier origin's rows) on ``later[l]`` (:func:`forward_score`): does
      a ladder's departure from the population hold further out in compute?

    Ladders without rows (either set, when forward) carry no evidence and are skipped.
    """
    mu = np.asarray(mu, dtype=float)
    rows = [_rows(np.asarray(x, dtype=float).reshape(-1, mu.size)) for x in lpds]
    if later is None:
        pairs = [(x, None) for x in rows if x.shape[0]]
    else:
        if len(later) != len(rows):
            raise BayesScalingError(f"hierarchical stacking: {len(rows)} ladders' earlier "
                                    f"rows but {len(later)} ladders' later rows")
        nxt = [_rows(np.asarray(y, dtype=float).reshape(-1, mu.size)) for y in later]
        pairs = [(x, y) for x, y in zip(rows, nxt, strict=True) if x.shape[0] and y.shape[0]]
    if not pairs:
        raise BayesScalingError("hierarchical stacking: no ladder with held-out rows")
    modes = [np.zeros(mu.size - 1) for _ in pairs]  # warm starts, updated in place

    def neg(log_sigma: float) -> float:
        s = float(np.exp(log_sigma))
        return -sum(log_marginal(x, mu, s, u) if y is None else forward_score(x, y, mu, s)
                    for (x, y), u in zip(pairs, modes, strict=True))

    grid = np.log(SIGMA_GRID)
    vals = [neg(g) for g in grid]
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-4})
    return float(np.exp(res.x if res.fun <= vals[i] else grid[i]))
