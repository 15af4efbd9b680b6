"""Rolling-origin point refits of a grouped law by compute budget, for calibrating contrasts.

A contrast between two groups extrapolates their *difference*; how far the law's predicted
change of that difference can be trusted past the ladder is learned from the ladder itself
(:mod:`bayes_scaling.query.anchor`): drop the top 1, 2, 3 compute-budget levels, refit the law
with its group offsets on the rest, and compare the refit's predicted change of every pair's
difference with the change the held-out levels show. This module does only the refits: one
robust least-squares fit of the law on log loss per origin, with the log-scale constants
varying by group and the exponents shared (the structure of the default models), started from
the full fit's posterior medians.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import budget_levels
from bayes_scaling.laws.final_loss import Law

#: Budget levels dropped from the top, one refit each (1, 2, ... this many).
MAX_ORIGINS: int = 3
#: A refit needs at least this many budget levels left to fit on.
MIN_TRAIN_LEVELS: int = 4
#: Draws of each refit's constants from its Gauss-Newton covariance (for the measurement
#: error of the refit's predictions), and their seed.
REFIT_DRAWS: int = 200
REFIT_SEED: int = 20261207
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Refit:
    """One rolling-origin refit: the top level it was fitted up to, and its constants.

    ``theta[p]`` has one value per group (sampling scale: ``log_*`` and exponents);
    ``draws[p]`` has shape ``(REFIT_DRAWS, groups)``: the constants drawn from the refit's
    Gauss-Newton covariance (how much the refit itself is uncertain).
    """

    top_level: int
    theta: dict[str, np.ndarray]
    draws: dict[str, np.ndarray]


def rolling_refits(runs: RunTable, law: Law, start: Mapping[str, np.ndarray], *,
                   max_origins: int = MAX_ORIGINS,
                   min_levels: int = MIN_TRAIN_LEVELS) -> list[Refit]:
    """Refit ``law`` on the runs below each of the top ``1..max_origins`` budget levels.

    Parameters
    ----------
    runs : RunTable
        The fit's runs (several groups).
    law : Law
        The law; its ``log_*`` constants vary by group, its exponents are shared.
    start : mapping of str to array, shape (groups,)
        Starting constants per group (e.g. the posterior medians).
    max_origins, min_levels
        How many top levels to drop in turn, and the fewest levels a refit may use.

    Returns
    -------
    list of Refit
        One per origin that leaves ``min_levels`` levels (possibly empty).
    """
    lv = budget_levels(runs.flops)
    top = int(lv.max())
    out = []
    for j in range(1, max_origins + 1):
        origin = top - j
        if origin + 1 < min_levels:
            break
        keep = lv <= origin
        got = _solve(law, runs.group_index[keep], runs.log_n[keep], runs.log_d[keep],
                     runs.log_loss[keep], start, runs.n_groups, draws=REFIT_DRAWS)
        if got is not None:
            out.append(Refit(origin, *got))
    return out


def grouped_point_fit(law: Law, gi: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
                 log_y: np.ndarray, start: Mapping[str, np.ndarray],
                 n_groups: int) -> dict[str, np.ndarray] | None:
    """Robust (soft-L1) least squares of a grouped law on log loss; ``None`` if it fails.

    ``gi`` is each run's group index; returns natural-scale constants, one per group.
    """
    got = _solve(law, gi, log_n, log_d, log_y, start, n_groups, draws=0)
    return None if got is None else got[0]


def _solve(law: Law, gi: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_y: np.ndarray,
           start: Mapping[str, np.ndarray], n_groups: int, *, draws: int,
           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """The fit of :func:`grouped_point_fit` and ``draws`` draws from its covariance.

    The covariance is Gauss-Newton, ``sigma^2 (J^T J)^+`` at the solution, with ``sigma``
    the residuals' robust scale; draws are taken on the centred scale the fit used.
    """
    centre = {"n": float(np.mean(log_n)), "d": float(np.mean(log_d))}
    varying = law.group_params
    shared = law.exponents
    # centred start: the sampler's scale without the log A / alpha ridge
    st = law.centre({p: np.asarray(start[p], float) for p in law.params}, centre)
    x0 = np.concatenate([np.asarray(st[p], float) for p in varying]
                        + [[float(np.median(st[p]))] for p in shared])
    inputs = {"n": log_n - centre["n"], "d": log_d - centre["d"]}

    def unpack(x: np.ndarray) -> dict[str, np.ndarray]:
        th = {p: x[i * n_groups:(i + 1) * n_groups][gi] for i, p in enumerate(varying)}
        base = len(varying) * n_groups
        th.update({p: x[base + i] for i, p in enumerate(shared)})
        return th

    def resid(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = law.evaluate_log(inputs, unpack(x)) - log_y
        return np.where(np.isfinite(r), r, 1e3)

    r0 = resid(x0)
    scale = max(_MAD_TO_SIGMA * float(np.median(np.abs(r0 - np.median(r0)))), 1e-3)
    bounds_lo = np.full(x0.size, -np.inf)
    bounds_lo[len(varying) * n_groups:] = 1e-3  # exponents stay positive
    try:
        res = least_squares(resid, x0, loss="soft_l1", f_scale=scale,
                            bounds=(bounds_lo, np.inf), max_nfev=2000)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not np.all(np.isfinite(res.x)):
        return None
    x = res.x
    out = law.uncentre(_per_group(x, varying, shared, n_groups), centre)
    if draws <= 0:
        return out, {}
    r = res.fun
    sigma = max(_MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r)))), 1e-6)
    cov = sigma**2 * np.linalg.pinv(res.jac.T @ res.jac)
    rng = np.random.default_rng(REFIT_SEED)
    z = rng.multivariate_normal(np.zeros(x.size), cov, size=draws, method="eigh")
    xs = x[None, :] + z
    xs[:, len(varying) * n_groups:] = np.maximum(xs[:, len(varying) * n_groups:], 1e-3)
    return out, law.uncentre(_per_group(xs, varying, shared, n_groups), centre)


def _per_group(x: np.ndarray, varying: tuple[str, ...], shared: tuple[str, ...],
               n_groups: int) -> dict[str, np.ndarray]:
    """Unpack a parameter vector (or rows of vectors) into one value per group and constant."""
    x = np.asarray(x, float)
    th = {p: x[..., i * n_groups:(i + 1) * n_groups] for i, p in enumerate(varying)}
    base = len(varying) * n_groups
    th.update({p: np.repeat(x[..., base + i:base + i + 1], n_groups, axis=-1)
               for i, p in enumerate(shared)})
    return th
