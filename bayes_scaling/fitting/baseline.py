r"""Point-fit baseline: the Huber / L-BFGS procedure of Hoffmann et al. (2022) and Epoch AI.

This is the fit users would run without this package: minimise the Huber loss of the
log-loss residuals over a law's constants with L-BFGS-B from a grid of initialisations, keep
the best, and bootstrap the runs for an uncertainty estimate.

.. math:: \hat\theta = \arg\min_\theta \sum_i
          \operatorname{Huber}_\delta\bigl(\log L_i - \log \hat L(N_i, D_i; \theta)\bigr),
          \qquad \operatorname{Huber}_\delta(r) =
          \begin{cases} r^2/2 & |r| \le \delta \\ \delta(|r| - \delta/2) & |r| > \delta
          \end{cases}

How it is made fast (the procedure's optimum is unchanged):

- The objective is evaluated at every grid point in one vectorised numpy call, and L-BFGS-B
  runs only from the :data:`N_STARTS` best grid points. On Chinchilla's 240 runs, running
  L-BFGS-B from all 4,500 points of Epoch's grid gives the same optimum as the best single
  grid point does (the 10 lowest-objective grid points all reach it).
- L-BFGS-B works on the law's centred constants (:attr:`bayes_scaling.laws.final_loss.Law.centring`:
  an exact reparametrisation that removes the ridge between ``log A`` and ``alpha``).
- The gradient is exact: forward-mode automatic differentiation of the law's own
  ``log_mean`` with dual numbers (all parameters in one broadcast pass), so every law in
  :data:`bayes_scaling.laws.final_loss.LAWS` gets a gradient without a second formula.

Sources
-------
- Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", arXiv:2203.15556,
  approach 3 (Huber loss on log loss, L-BFGS over a grid of initialisations).
- Besiroglu, Erdil, Barnett, You (2024), "Chinchilla Scaling: A replication attempt",
  arXiv:2404.10102, and their notebook ``data_analysis.ipynb`` (epoch-research/
  analyzing-chinchilla at 9225883): ``delta = 1e-3``, the 4,500-point grid of
  initialisations in :data:`EPOCH_GRID`, 240 runs (5 highest-loss runs dropped); grid fit
  E=1.8172, A=477.8, B=2144, alpha=0.3473, beta=0.3672.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from bayes_scaling.errors import ConvergenceError, DataError, QueryError, SpecError
from bayes_scaling.fitting.dual import DUAL_OPS, Dual
from bayes_scaling.laws.final_loss import LAWS, Law
from bayes_scaling.types import SeedLike

#: Huber threshold on log-loss residuals (Hoffmann et al. 2022; Epoch's notebook).
DEFAULT_DELTA: float = 1e-3
#: Bootstrap resamples drawn by default.
DEFAULT_N_BOOT: int = 100
#: L-BFGS-B runs from this many lowest-objective grid points in a cold start.
N_STARTS: int = 8
#: Scale factor turning a median absolute deviation into a normal-consistent sigma.
MAD_TO_SIGMA: float = 1.4826

#: Epoch AI's grid of initialisations for Chinchilla (Besiroglu et al. 2024), in sampling
#: scale: 5 x 6 x 6 x 5 x 5 = 4,500 points (``np.arange(-1, 1.5, 0.5)`` etc. in their notebook).
EPOCH_GRID: dict[str, tuple[float, ...]] = {
    "log_e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "log_a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "log_b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}

#: Default grids for every other law, by kind of parameter, in *centred* coordinates: a
#: constant listed in the law's ``centring`` is offset by the data's mean log input (so
#: Kaplan's ``log N_c ~ 30`` is searched around the runs, not around N = 1).
CENTRED_GRID: dict[str, tuple[float, ...]] = {
    "log_e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "centred": (-10.0, -2.5, 0.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0),
    "exponent": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
}

#: Bounds on exponents during L-BFGS-B. The lower bound keeps ``alpha_N / alpha_D`` finite
#: (Kaplan); Epoch's grid points at exponent 0 start on it.
EXPONENT_BOUNDS: tuple[float, float] = (1e-3, 10.0)

# L-BFGS-B options: the Huber objective is ~1e-3 on Chinchilla, so scipy's default ftol
# (relative to max(|f|, 1)) would stop ~6 digits early; these reach Epoch's optimum to 5 digits.
_LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-11, "maxiter": 5000}
# Grid points evaluated per numpy call (bounds memory: points x runs doubles).
_CHUNK = 2**20


@dataclass(frozen=True)
class _Problem:
    """Validated data in centred coordinates, ready for the optimiser."""

    law: Law
    x: tuple[np.ndarray, ...]
    y: np.ndarray
    centre: dict[str, float]
    delta: float

    def resample(self, idx: np.ndarray) -> _Problem:
        """Restrict to rows ``idx``, keeping the centre so that warm starts carry over."""
        return _Problem(self.law, tuple(v[idx] for v in self.x), self.y[idx], self.centre,
                        self.delta)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _get_law(name: str) -> Law:
    if name not in LAWS:
        close = difflib.get_close_matches(str(name), LAWS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(LAWS)}"
        raise SpecError(f"unknown law {name!r}{hint}")
    return LAWS[name]


def _as_vector(values: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"{what} has {bad.size} non-finite value(s); first at row {bad[0]}")
    return arr


def _problem(log_inputs: Mapping[str, Any], log_loss: Any, law_name: str,
             delta: float) -> _Problem:
    law = _get_law(law_name)
    if not isinstance(log_inputs, Mapping):
        raise DataError(f"log_inputs must be a mapping of {law.inputs} to arrays")
    if not (np.isfinite(delta) and delta > 0):
        raise DataError(f"delta must be a positive finite number, got {delta!r}")
    y = _as_vector(log_loss, "log_loss")
    x = []
    for name in law.inputs:
        if name not in log_inputs:
            raise DataError(f"log_inputs lacks {name!r}, needed by law {law.name!r}")
        v = _as_vector(log_inputs[name], f"log_inputs[{name!r}]")
        if v.shape != y.shape:
            raise DataError(f"log_inputs[{name!r}] has {v.size} rows but log_loss has {y.size}")
        if v.max() > 700:  # exp() overflows past ~709: almost surely raw counts, not logs
            raise DataError(f"log_inputs[{name!r}] reaches {v.max():.3g}: pass natural logs")
        x.append(v)
    if y.size < len(law.params):
        raise DataError(f"{y.size} runs cannot identify the {len(law.params)} constants of "
                        f"law {law.name!r}")
    centre = {name: float(v.mean()) for name, v in zip(law.inputs, x, strict=True)}
    centred = tuple(v - centre[name] for name, v in zip(law.inputs, x, strict=True))
    return _Problem(law, centred, y, centre, float(delta))


def _check_keys(given: Mapping[str, Any], law: Law, what: str) -> None:
    missing = [p for p in law.params if p not in given]
    extra = [p for p in given if p not in law.params]
    if missing or extra:
        raise DataError(f"{what} must have exactly the keys {law.params} of law {law.name!r}; "
                        f"missing {missing}, unexpected {extra}")


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------
def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _value_and_grad(theta: np.ndarray, prob: _Problem) -> tuple[float, np.ndarray]:
    """Huber objective and its exact gradient in centred coordinates (dual numbers)."""
    p = theta.size
    seeds = np.eye(p)[:, :, None]  # d theta / d theta_j, shaped to broadcast over runs
    params = {name: Dual(theta[i], seeds[i]) for i, name in enumerate(prob.law.params)}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mu = prob.law.log_mean(*prob.x, **params, xp=DUAL_OPS)  # value (runs,), d (p, runs)
        r = prob.y - mu.v
        value = float(_huber(r, prob.delta).sum())
        grad = -(np.broadcast_to(mu.d, (p, r.size)) @ np.clip(r, -prob.delta, prob.delta))
    if not (np.isfinite(value) and np.all(np.isfinite(grad))):
        return np.inf, np.zeros(p)
    return value, grad


def _grid_values(points: np.ndarray, prob: _Problem) -> np.ndarray:
    """Objective at every row of ``points`` (centred coordinates), vectorised in chunks."""
    out = np.empty(len(points))
    step = max(1, _CHUNK // prob.y.size)
    for lo in range(0, len(points), step):
        block = points[lo:lo + step]
        params = {name: block[:, i, None] for i, name in enumerate(prob.law.params)}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu = prob.law.log_mean(*prob.x, **params)
            out[lo:lo + step] = _huber(prob.y - mu, prob.delta).sum(axis=1)
    return np.where(np.isfinite(out), out, np.inf)


def _bounds(law: Law) -> list[tuple[float | None, float | None]]:
    return [(None, None) if p.startswith("log_") else EXPONENT_BOUNDS for p in law.params]


def _minimise(x0: np.ndarray, prob: _Problem) -> tuple[np.ndarray, float]:
    res = minimize(_value_and_grad, x0, args=(prob,), jac=True, method="L-BFGS-B",
                   bounds=_bounds(prob.law), options=_LBFGS_OPTIONS)
    return res.x, float(res.fun)


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------
def default_grid(law: str, centre: Mapping[str, float]) -> dict[str, tuple[float, ...]]:
    """Default grid of initialisations for ``law``, in sampling scale.

    Chinchilla uses Epoch AI's grid (:data:`EPOCH_GRID`). Other laws use
    :data:`CENTRED_GRID`, with each centred constant shifted by the data's mean log input
    (``centre``), e.g. Kaplan's ``log_n_c`` is searched over ``mean(log N) + (-10 ... 80)``.

    Parameters
    ----------
    law
        Name of a law in :data:`bayes_scaling.laws.final_loss.LAWS`.
    centre
        Mean natural log of each of the law's inputs over the runs, e.g. ``{"n": 20.1, ...}``.

    Returns
    -------
    dict
        ``{param: values}``; the grid is the Cartesian product of the values.
    """
    spec = _get_law(law)
    if spec.name == "chinchilla":
        return dict(EPOCH_GRID)
    grid: dict[str, tuple[float, ...]] = {}
    for p in spec.params:
        if p in spec.centring and spec.centring[p][1] is None:
            shift = centre[spec.centring[p][0]]
            grid[p] = tuple(v + shift for v in CENTRED_GRID["centred"])
        elif p.startswith("log_"):  # floors; an exponent-centred constant (only Chinchilla's,
            grid[p] = CENTRED_GRID["log_e"]  # which has Epoch's grid) would need its own values
        else:
            grid[p] = CENTRED_GRID["exponent"]
    return grid


def _to_centred(theta: np.ndarray, prob: _Problem) -> np.ndarray:
    """Rows of sampling-scale params -> centred coordinates (exact, via ``Law.centre``)."""
    names = prob.law.params
    cols = prob.law.centre({p: theta[..., i] for i, p in enumerate(names)}, prob.centre)
    return np.stack([np.asarray(cols[p], dtype=float) for p in names], axis=-1)


def _uncentred(theta_c: np.ndarray, prob: _Problem) -> dict[str, float]:
    names = prob.law.params
    out = prob.law.uncentre(dict(zip(names, theta_c, strict=True)), prob.centre)
    return {p: float(out[p]) for p in names}


def _grid_points(grid: Mapping[str, Sequence[float]], law: Law) -> np.ndarray:
    _check_keys(grid, law, "init_grid")
    axes = [_as_vector(grid[p], f"init_grid[{p!r}]") for p in law.params]
    if any(a.size == 0 for a in axes):
        raise DataError("init_grid has a parameter with no values")
    return np.array(list(itertools.product(*axes)), dtype=float)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _fit(prob: _Problem, init_grid: Mapping[str, Sequence[float]] | None,
         x0: Mapping[str, float] | None) -> np.ndarray:
    """Best centred parameter vector: from ``x0`` alone, or from the best grid points."""
    lo, hi = EXPONENT_BOUNDS
    expo = np.array([not p.startswith("log_") for p in prob.law.params])
    if x0 is not None:
        _check_keys(x0, prob.law, "x0")
        start = _as_vector([x0[p] for p in prob.law.params], "x0")
        starts = _to_centred(start[None, :], prob)
    else:
        grid = init_grid if init_grid is not None else default_grid(prob.law.name, prob.centre)
        points = _grid_points(grid, prob.law)
        points[:, expo] = np.clip(points[:, expo], lo, hi)
        centred = _to_centred(points, prob)
        values = _grid_values(centred, prob)
        starts = centred[np.argsort(values, kind="stable")[:N_STARTS]]
    starts[:, expo] = np.clip(starts[:, expo], lo, hi)
    results = [_minimise(s, prob) for s in starts]
    best, value = min(results, key=lambda r: r[1])
    if not np.isfinite(value):
        raise ConvergenceError(f"Huber fit of law {prob.law.name!r} found no finite optimum; "
                               "check the data or pass init_grid")
    return best


def huber_fit(log_inputs: Mapping[str, np.ndarray], log_loss: np.ndarray, *,
              law: str = "chinchilla", delta: float = DEFAULT_DELTA,
              init_grid: Mapping[str, Sequence[float]] | None = None,
              x0: Mapping[str, float] | None = None) -> dict[str, float]:
    r"""Fit a law by minimising the Huber loss of log-loss residuals (Hoffmann et al. 2022).

    .. math:: \hat\theta = \arg\min_\theta \sum_i
              \operatorname{Huber}_\delta\bigl(\log L_i - \log \hat L(x_i; \theta)\bigr)

    The objective is evaluated at every point of the grid at once; L-BFGS-B (exact gradient)
    then runs from the :data:`N_STARTS` best points and the lowest optimum is kept.

    Parameters
    ----------
    log_inputs
        Natural logs of the law's inputs, e.g. ``{"n": log(N), "d": log(D)}`` (``N``
        parameters, ``D`` tokens), each of shape ``(runs,)``. Extra keys are ignored.
    log_loss
        Natural log of each run's loss (loss in nats/token), shape ``(runs,)``.
    law
        Name of a law in :data:`bayes_scaling.laws.final_loss.LAWS`.
    delta
        Huber threshold on log-loss residuals; ``1e-3`` as in Hoffmann et al. and Epoch AI.
    init_grid
        ``{param: values}`` in sampling scale (``log_e``, ``log_a``, ..., ``alpha``); the grid
        is their Cartesian product. Default: :func:`default_grid` (Epoch's 4,500-point grid
        for Chinchilla).
    x0
        Warm start ``{param: value}`` in sampling scale: optimise from this point only.

    Returns
    -------
    dict of str to float
        The law's constants in sampling scale (``log_*`` are natural logs).

    Raises
    ------
    SpecError
        Unknown law.
    DataError
        Mismatched lengths, non-finite values, missing inputs, bad grid or ``x0`` keys.
    ConvergenceError
        No start reached a finite objective.

    Examples
    --------
    >>> theta = huber_fit({"n": np.log(n), "d": np.log(d)}, np.log(loss))  # doctest: +SKIP
    >>> np.exp(theta["log_e"]), theta["alpha"]  # doctest: +SKIP
    (1.817..., 0.347...)
    """
    prob = _problem(log_inputs, log_loss, law, delta)
    return _uncentred(_fit(prob, init_grid, x0), prob)


@dataclass(frozen=True)
class BootstrapFit:
    """A Huber point fit with row-bootstrap draws of the law's constants.

    Attributes
    ----------
    law
        Name of the law in :data:`bayes_scaling.laws.final_loss.LAWS`.
    estimate
        Full-data fit, ``{param: value}`` in sampling scale.
    draws
        ``{param: array of shape (n_boot,)}``: one refit per bootstrap resample of the runs.
    sigma
        Robust scale of the log-loss residuals at ``estimate``, ``1.4826 * MAD``: add it to
        the law band for a predictive band.
    delta
        Huber threshold used.
    n_boot
        Number of bootstrap resamples.
    seed
        The ``random_seed`` the caller passed.
    """

    law: str
    estimate: dict[str, float]
    draws: dict[str, np.ndarray] = field(repr=False)
    sigma: float
    delta: float
    n_boot: int
    seed: SeedLike = None

    def to_posterior_dict(self) -> dict[str, np.ndarray]:
        """Draws as ``{name: array of shape (1, n_boot)}`` plus a constant ``"sigma"``.

        The layout of an ArviZ posterior with one chain, e.g.
        ``az.from_dict(posterior=fit.to_posterior_dict())``.
        """
        out = {p: np.asarray(v, dtype=float).reshape(1, -1) for p, v in self.draws.items()}
        out["sigma"] = np.full((1, self.n_boot), self.sigma)
        return out


def huber_bootstrap(log_inputs: Mapping[str, np.ndarray], log_loss: np.ndarray, *,
                    law: str = "chinchilla", n_boot: int = DEFAULT_N_BOOT,
                    delta: float = DEFAULT_DELTA,
                    random_seed: SeedLike = None) -> BootstrapFit:
    """Huber fit plus ``n_boot`` refits on bootstrap resamples of the runs (Epoch AI 2024).

    Each resample draws the runs with replacement and is refitted by L-BFGS-B warm-started at
    the full-data estimate, as in Besiroglu et al. (2024).

    Parameters
    ----------
    log_inputs, log_loss, law, delta
        As in :func:`huber_fit`.
    n_boot
        Number of bootstrap resamples (at least 1).
    random_seed
        Seed or Generator; one ``np.random.default_rng(random_seed)`` draws every resample.

    Returns
    -------
    BootstrapFit
        Estimate, draws, residual scale and the settings used.

    Raises
    ------
    SpecError, DataError, ConvergenceError
        As in :func:`huber_fit`; also ``QueryError`` when ``n_boot < 1``.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise QueryError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    prob = _problem(log_inputs, log_loss, law, delta)
    rng = np.random.default_rng(random_seed)
    best = _fit(prob, None, None)
    rows = prob.y.size
    samples = np.empty((n_boot, best.size))
    for k in range(n_boot):
        samples[k] = _minimise(best, prob.resample(rng.integers(0, rows, size=rows)))[0]
    names = prob.law.params
    uncentred = prob.law.uncentre({p: samples[:, i] for i, p in enumerate(names)}, prob.centre)
    mu = prob.law.log_mean(*prob.x, **{p: best[i] for i, p in enumerate(names)})
    resid = prob.y - mu
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(resid - np.median(resid))))
    return BootstrapFit(
        law=prob.law.name, estimate=_uncentred(best, prob),
        draws={p: np.asarray(uncentred[p], dtype=float) for p in names}, sigma=sigma,
        delta=prob.delta, n_boot=int(n_boot), seed=random_seed,
    )
