"""Huber point fits of a law per group, their scale and dispersion: what the pattern checks
stand on (numpy/scipy, no posterior)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bayes_scaling.data.runs import RunTable
from bayes_scaling.fitting.baseline import MAD_TO_SIGMA, huber_fit
from bayes_scaling.laws.final_loss import LAWS, Law

#: Huber threshold, in noise sd, of the detectors' point fits (95% efficiency for Normal noise).
HUBER_K = 1.345


#: ``E[psi'] / E[psi^2]`` of Huber's psi at ``HUBER_K`` under Normal noise (robust LR scaling).
HUBER_XI = float(
    (2 * stats.norm.cdf(HUBER_K) - 1)
    / (2 * stats.norm.cdf(HUBER_K) - 1 - 2 * HUBER_K * stats.norm.pdf(HUBER_K)
       + 2 * HUBER_K**2 * stats.norm.sf(HUBER_K)))


# ------------------------------------------------------------------------------ point fits
@dataclass(frozen=True)
class PointFit:
    """A Huber point fit with its residuals, noise scale and Gauss-Newton covariance.

    ``cov`` is the covariance of the law's constants in centred coordinates (``Law.centre`` at
    ``centre``), in the order of ``law.params``; exponents are the same in both coordinates.
    """

    law: Law
    theta: dict[str, float]
    centre: dict[str, float]
    resid: np.ndarray
    scale: float
    cov: np.ndarray

    def se(self, p: str) -> float:
        """Standard error of constant ``p`` (centred coordinates)."""
        i = self.law.params.index(p)
        return float(np.sqrt(max(self.cov[i, i], 0.0)))

    def mean_prediction(self, log_inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """Log mean loss at ``log_inputs`` and the variance of its average over the points."""
        g = _jacobian(self.law, _centred_inputs(self.law, log_inputs, self.centre),
                      _centred_vector(self.law, self.theta, self.centre))
        mu = self.law.evaluate_log(log_inputs, self.theta)
        g_bar = g.mean(axis=0)
        return np.asarray(mu, dtype=float), float(g_bar @ self.cov @ g_bar)


def log_inputs_of(runs: RunTable, law: Law) -> dict[str, np.ndarray]:
    """``{"n": log N, "d": log D}`` restricted to the law's inputs."""
    src = {"n": runs.log_n, "d": runs.log_d}
    return {i: src[i] for i in law.inputs}


def robust_scale(r: np.ndarray, n_params: int = 0) -> float:
    """``1.4826 * MAD`` of residuals: a Normal-consistent scale that ignores outliers.

    A Huber fit with a small threshold is nearly an L1 fit, which passes exactly through about
    ``n_params`` runs; their near-zero residuals would shrink the MAD, so the ``n_params``
    residuals closest to the median are left out and the result is scaled by
    ``sqrt(n / (n - n_params))`` (degrees of freedom). Floored at 1e-6.
    """
    r = np.asarray(r, dtype=float)
    dev = np.sort(np.abs(r - np.median(r)))
    k = min(int(n_params), max(r.size - 3, 0))
    scale = MAD_TO_SIGMA * float(np.median(dev[k:])) * math.sqrt(r.size / max(r.size - k, 1))
    return max(scale, 1e-6)


def _centred_inputs(law: Law, log_inputs: Mapping[str, np.ndarray],
                    centre: Mapping[str, float]) -> dict[str, np.ndarray]:
    return {i: np.asarray(log_inputs[i], dtype=float) - centre[i] for i in law.inputs}


def _centred_vector(law: Law, theta: Mapping[str, float], centre: Mapping[str, float]):
    c = law.centre(theta, centre)
    return np.array([float(c[p]) for p in law.params])


def _jacobian(law: Law, x_c: Mapping[str, np.ndarray], th_c: np.ndarray) -> np.ndarray:
    """d log_mean / d (centred constants), by central differences: ``(points, params)``."""
    cols = []
    for i in range(th_c.size):
        h = 1e-5 * max(1.0, abs(th_c[i]))
        up, dn = th_c.copy(), th_c.copy()
        up[i] += h
        dn[i] -= h
        f_up = law.evaluate_log(x_c, dict(zip(law.params, up, strict=True)))
        f_dn = law.evaluate_log(x_c, dict(zip(law.params, dn, strict=True)))
        cols.append((np.asarray(f_up) - np.asarray(f_dn)) / (2 * h))
    size = max(np.size(c) for c in cols)
    return np.stack([np.broadcast_to(c, (size,)) for c in cols], axis=1)


def point_fit(runs: RunTable, law_name: str, *, x0: Mapping[str, float] | None = None,
              init_grid: Mapping[str, Sequence[float]] | None = None,
              scale: float | None = None,
              extra_starts: Sequence[Mapping[str, float]] = ()) -> PointFit:
    """Huber fit of ``law_name`` to ``runs`` (one group), with residuals and covariance.

    Without ``scale``: Epoch's near-L1 fit (:func:`~bayes_scaling.fitting.baseline.huber_fit`,
    ``delta = 1e-3``) gives a robust noise scale ``s``, then the law is refitted with the
    Huber threshold ``1.345 s`` (95% efficient for Normal noise, Huber 1964). With ``scale``
    the second fit runs directly (nested models compared with one threshold).
    ``extra_starts``: more warm starts for the first fit; the lowest Huber objective wins
    (a Huber fit from a grid can stall at a kink far from the optimum).
    """
    law = LAWS[law_name]
    x = log_inputs_of(runs, law)

    def resid_of(theta: Mapping[str, float]) -> np.ndarray:
        return runs.log_loss - np.asarray(law.evaluate_log(x, theta), dtype=float)

    if scale is None:
        tries = [huber_fit(x, runs.log_loss, law=law_name, x0=x0, init_grid=init_grid)]
        tries += [huber_fit(x, runs.log_loss, law=law_name, x0=st) for st in extra_starts]
        theta0 = min(tries, key=lambda th: float(huber_rho(resid_of(th) / 1e-3).sum()))
        scale = robust_scale(resid_of(theta0), len(law.params))
        x0, init_grid = theta0, None
    theta = huber_fit(x, runs.log_loss, law=law_name, x0=x0, init_grid=init_grid,
                      delta=HUBER_K * scale)
    resid = resid_of(theta)
    centre = {i: float(np.mean(x[i])) for i in law.inputs}
    j = _jacobian(law, _centred_inputs(law, x, centre), _centred_vector(law, theta, centre))
    cov = scale**2 * np.linalg.pinv(j.T @ j)
    return PointFit(law, theta, centre, resid, float(scale), cov)


def huber_rho(u: np.ndarray) -> np.ndarray:
    """Huber's loss of standardised residuals ``u`` with threshold :data:`HUBER_K`."""
    a = np.abs(u)
    return np.where(a <= HUBER_K, 0.5 * u * u, HUBER_K * (a - 0.5 * HUBER_K))


def dispersion_statistic(resid_small: np.ndarray, resid_big: np.ndarray, scale: float) -> float:
    r"""Robust likelihood-ratio statistic of two nested Huber fits, >= 0.

    .. math:: T = 2\,\xi \sum_i \left[\rho(r_{0i}/s) - \rho(r_{1i}/s)\right],
              \qquad \xi = \frac{E[\psi']}{E[\psi^2]} = 1.156

    (Ronchetti 1982; Heritier et al. 2009, sec. 3.3), with ``rho`` Huber's loss at
    :data:`HUBER_K`, ``resid_small`` the residuals of the smaller (null) model, ``resid_big`` of
    the richer one and ``s`` their common noise scale. :math:`\chi^2_q` under the null for
    ``q`` extra regular parameters and Normal noise.
    """
    drop = huber_rho(np.asarray(resid_small) / scale) - huber_rho(np.asarray(resid_big) / scale)
    return max(0.0, 2.0 * HUBER_XI * float(drop.sum()))
