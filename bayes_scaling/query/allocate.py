"""Compute-optimal allocation of a FLOP budget, ``C = 6 N D``, per posterior draw.

Closed forms where the law has one (Chinchilla, Kaplan); otherwise a vectorised golden-section
search over ``log N`` along the iso-FLOP curve (both are tested against each other).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import DEFAULT_INTERVAL, DEFAULT_PROBS, POINT
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.families import FamilyFit, mix
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.final_loss import Law, natural
from bayes_scaling.query.predict import (
    _emit,
    _wrap,
    extrapolation_warnings,
    group_theta,
    require_nd_law,
    resolve_group,
)
from bayes_scaling.query.summarize import QueryResult, check_probs, interval_table
from bayes_scaling.types import SeedLike

#: Search bracket for numerical optimisation, in parameters.
N_BRACKET = (1e3, 1e18)
QUANTITIES = ("n_opt", "d_opt", "tokens_per_param", "loss")


def numeric_optimal(law: Law, c: np.ndarray, theta: dict[str, np.ndarray],
                    iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the law along ``6 N D = c`` by golden-section search in ``log N``.

    ``theta`` holds sampling-scale constants broadcastable against ``c``. Returns
    ``(n_opt, d_opt)``.
    """
    lo = np.full(np.broadcast(c, *theta.values()).shape, np.log(N_BRACKET[0]))
    hi = np.full_like(lo, np.log(N_BRACKET[1]))
    log_c6 = np.log(c / 6.0)

    def f(log_n):
        return law.evaluate_log({"n": log_n, "d": log_c6 - log_n}, theta)

    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(iters):
        left = f1 < f2
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        x2n = np.where(left, x1, lo + ratio * (hi - lo))
        x1n = np.where(left, hi - ratio * (hi - lo), x2)
        x1, x2 = x1n, x2n
        f1, f2 = f(x1), f(x2)
    log_n = (lo + hi) / 2.0
    return np.exp(log_n), np.exp(log_c6 - log_n)


def optimal_split(law: Law, c: np.ndarray, theta: dict[str, np.ndarray],
                  method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(n_opt, d_opt)``: the law's closed form when it has one, else numerical."""
    if "n" not in law.inputs or "d" not in law.inputs:
        raise QueryError(f"law {law.name!r} does not depend on both N and D: "
                         "no compute-optimal split")
    if method == "numeric" or (method == "auto" and law.optimal is None):
        return numeric_optimal(law, c, theta)
    return law.optimal(c, **natural(theta))


def _optimal_draws(fit: ScalingFit, c: np.ndarray, group: str, method: str,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per draw and budget: ``n_opt``, ``d_opt``, ``tokens_per_param`` and the law's loss."""
    theta = {k: v[:, None] for k, v in group_theta(fit, group, rng=rng).items()}
    n_opt, d_opt = optimal_split(fit.law, c[None, :], theta, method=method)
    loss = np.exp(fit.law.evaluate_log({"n": np.log(n_opt), "d": np.log(d_opt)}, theta))
    return {"n_opt": n_opt, "d_opt": d_opt, "tokens_per_param": d_opt / n_opt, "loss": loss}


def compute_optimal(
    fit: ScalingFit | FamilyFit,
    flops: Any,
    *,
    group: str | None = None,
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    method: Literal["auto", "closed", "numeric"] = "auto",
    random_seed: SeedLike = None,
) -> QueryResult:
    """Compute-optimal ``N_opt``, ``D_opt``, tokens per parameter and the law's loss there.

    Returns draws (an ``xarray.Dataset`` of the four quantities, dims ``chain, draw, point``) and
    a long summary: one row per (``flops``, ``quantity``). Band: ``"law"``.

    Parameters
    ----------
    fit : ScalingFit or FamilyFit
        A fit of an L(N, D) law, or several families (their weighted quantile average, one
        chain).
    flops : float or array_like
        Training budgets in FLOPs (``C = 6 N D``).
    group : str, optional
        A group (data distribution) of the fit, ``"new"`` for an unseen one drawn from the
        population, or None for the only group (an error when there are several).
    probs : sequence of float, default :data:`~bayes_scaling.constants.DEFAULT_PROBS`
        Central interval probabilities reported as ``lo_<p>``/``hi_<p>`` columns.
    interval : float, default 0.9
        The interval reported as ``lower``/``upper``.
    method : {"auto", "closed", "numeric"}, default "auto"
        The closed form where the law has one (Chinchilla), else a golden-section search along
        ``D = C / (6 N)``; ``"auto"`` picks.
    random_seed : int, numpy.random.Generator or None
        Seed of every random step of the call (one Generator is made from it).

    Returns
    -------
    QueryResult
        ``draws`` (a Dataset of ``n_opt``, ``d_opt``, ``tokens_per_param``, ``loss``) and a long
        ``summary``, one row per (``flops``, ``quantity``).
    """
    require_nd_law(fit)
    probs, interval = check_probs(probs, interval)
    try:
        c = np.atleast_1d(np.asarray(flops, dtype=float)).ravel()
    except (TypeError, ValueError):
        raise QueryError(f"flops must be numbers, got {flops!r}") from None
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise QueryError(f"flops must be positive and finite, got {flops}")
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    if isinstance(fit, FamilyFit):
        values = mix(fit, {k: _optimal_draws(f, c, g, method, rng) for k, f in fit.fits.items()
                           if fit.weights[k] > 0}, rng)
    else:
        values = _optimal_draws(fit, c, g, method, rng)
    n_opt, d_opt = values["n_opt"], values["d_opt"]
    frames = []
    for q, v in values.items():
        t = interval_table(v, probs=probs, interval=interval)
        t.insert(0, "quantity", q)
        t.insert(0, "flops", c)
        frames.append(t)
    summary = pd.concat(frames, ignore_index=True)
    summary.insert(2, "group", g)
    summary.insert(3, "band", "law")
    draws = xr.Dataset({q: _wrap(fit, np.broadcast_to(v, (v.shape[0], c.size)), q)
                        for q, v in values.items()}).assign_coords({POINT: c})
    med_n, med_d = np.median(n_opt, axis=0), np.median(d_opt, axis=0)
    msgs = _emit(extrapolation_warnings(fit, np.broadcast_to(med_n, c.shape),
                                        np.broadcast_to(med_d, c.shape)), fit)
    return QueryResult(draws=draws, summary=summary, band="law", warnings=msgs)


def optimal_exponents(fit: ScalingFit, *, group: str | None = None,
                      flops: tuple[float, float] = (1e21, 1e25),
                      random_seed: SeedLike = None) -> dict[str, np.ndarray]:
    """Draws of the exponents ``a`` (N_opt ∝ C^a) and ``b`` (D_opt ∝ C^b), ``a + b = 1``.

    Measured as the slope of ``log N_opt`` between two budgets, which equals the closed-form
    exponent (``beta/(alpha+beta)`` for Chinchilla) for pure power laws.
    """
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = {k: v[:, None] for k, v in group_theta(fit, g, rng=rng).items()}
    c = np.asarray(flops, dtype=float)[None, :]
    n_opt, _ = optimal_split(fit.law, c, theta)
    a = np.diff(np.log(n_opt), axis=1)[:, 0] / np.log(c[0, 1] / c[0, 0])
    return {"a": a, "b": 1.0 - a}
