"""Where law families part, and their weighted average.

:func:`where_they_part` finds the compute at which two families' 90% bands stop overlapping along
the compute-optimal frontier; :func:`averaged_predict_loss` averages the families' predictive draws
by stacking weights (their weighted quantile average, as the queries on a ``FamilyFit``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CHAIN, DEFAULT_INTERVAL, DEFAULT_PROBS, DRAW, POINT
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.families import quantile_average
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.allocate import optimal_split
from bayes_scaling.query.predict import group_theta, predict_loss, resolve_group
from bayes_scaling.query.summarize import QueryResult, check_probs, interval_table
from bayes_scaling.types import SeedLike

#: FLOP range scanned for where the families part: from the largest run's compute to this.
DIVERGE_MAX_FLOPS = 1e27


DIVERGE_POINTS = 61


# ------------------------------------------------------------------------------ divergence
def allocation(fit_: ScalingFit, flops: np.ndarray, *, group: str | None = None,
               tokens_per_param: float | None = None,
               random_seed: SeedLike = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(n, d, description)`` along a FLOP grid: a fixed ratio, or ``fit_``'s optimum.

    With ``tokens_per_param`` the split is ``D = r N``, ``6 N D = C``; otherwise the posterior
    median of ``fit_``'s compute-optimal ``N_opt(C)`` (law band), ``D = C / (6 N)``.
    """
    c = np.asarray(flops, dtype=float)
    if tokens_per_param is not None:
        if not tokens_per_param > 0:
            raise QueryError(f"tokens per parameter must be positive, got {tokens_per_param}")
        n = np.sqrt(c / (6.0 * tokens_per_param))
        return n, c / (6.0 * n), f"D = {tokens_per_param:g} N"
    if not {"n", "d"} <= set(fit_.law.inputs):
        raise QueryError(f"{fit_.spec.name} has no compute-optimal split (law {fit_.law.name}); "
                         "give tokens_per_param")
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit_, group)
    theta = {k: v[:, None] for k, v in group_theta(fit_, g, rng=rng).items()}
    n_opt, _ = optimal_split(fit_.law, c[None, :], theta)
    n = np.median(n_opt, axis=0)
    return n, c / (6.0 * n), f"compute-optimal N of {fit_.spec.name} (posterior median)"


def _bands(fit_: ScalingFit, n: np.ndarray, d: np.ndarray, *, group: str | None, band: str,
           interval: float, rng: np.random.Generator) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return predict_loss(fit_, n, d, group=group, band=band, probs=(interval,),
                            interval=interval, random_seed=rng).summary


def _first_apart(apart: np.ndarray, c: np.ndarray, n: np.ndarray,
                 d: np.ndarray) -> dict[str, Any] | None:
    if not apart.any():
        return None
    i = int(np.argmax(apart))
    return {"flops": float(c[i]), "n_params": float(n[i]), "n_tokens": float(d[i]),
            "at_start": i == 0, "stays_apart": bool(apart[i:].all())}


def where_they_part(fits: Mapping[str, ScalingFit], *, reference: str | None = None,
                    tokens_per_param: float | None = None, flops: Sequence[float] | None = None,
                    group: str | None = None, interval: float = DEFAULT_INTERVAL,
                    random_seed: SeedLike = None) -> dict[str, Any]:
    """The smallest FLOP budget at which two families' bands stop overlapping.

    Budgets ``C`` are scanned on a log grid (default: the largest run's compute to
    :data:`DIVERGE_MAX_FLOPS`: where a proposal extrapolates); at each, ``(N, D)`` is the
    reference's compute-optimal split
    (posterior median; the first fit unless ``reference`` is given) or ``D = r N`` with
    ``tokens_per_param``. Both families' ``interval`` bands, law and predictive, are compared
    there; the first budget at which they are disjoint is reported for each other family.

    Returns
    -------
    dict
        ``reference``, ``allocation`` (how N and D were chosen), ``tokens_per_param`` (``None``
        for the reference's optimum), ``group``, ``interval``,
        ``flops_range``, ``pairs`` (``{other: {"law": point | None, "predictive": point |
        None}}``), and for the first other family the top-level ``flops``, ``n_params``,
        ``n_tokens`` (predictive bands; ``None`` when they never part in the scanned range)
        and ``law`` (the same for the law bands). A point is ``{flops, n_params, n_tokens,
        at_start, stays_apart}``: ``at_start`` means already apart at the first budget (by
        default the largest run's), ``stays_apart`` that they do not overlap again later in
        the scan (the predictive bands widen with extrapolation and may).
    """
    names = list(fits)
    ref = reference or names[0]
    if ref not in fits:
        raise QueryError(f"unknown reference {ref!r}; the fits are {', '.join(names)}")
    rfit = fits[ref]
    rng = np.random.default_rng(random_seed)
    c_lo = float(rfit.runs.flops.max())
    c = (np.geomspace(c_lo, max(DIVERGE_MAX_FLOPS, 10 * c_lo), DIVERGE_POINTS)
         if flops is None else np.atleast_1d(np.asarray(flops, dtype=float)))
    g = resolve_group(rfit, group)
    if tokens_per_param is None and not {"n", "d"} <= set(rfit.law.inputs):
        tokens_per_param = 20.0
    n, d, how = allocation(rfit, c, group=g, tokens_per_param=tokens_per_param,
                           random_seed=rng)
    ref_bands = {b: _bands(rfit, n, d, group=g, band=b, interval=interval, rng=rng)
                 for b in ("law", "predictive")}
    pairs: dict[str, dict[str, Any]] = {}
    for other in names:
        if other == ref:
            continue
        pairs[other] = {}
        for b, rb in ref_bands.items():
            ob = _bands(fits[other], n, d, group=g, band=b, interval=interval, rng=rng)
            apart = ((rb["upper"].to_numpy() < ob["lower"].to_numpy())
                     | (ob["upper"].to_numpy() < rb["lower"].to_numpy()))
            pairs[other][b] = _first_apart(apart, c, n, d)
    first = next(iter(pairs.values()), {"law": None, "predictive": None})
    top = first["predictive"] or {}
    return {"reference": ref, "allocation": how, "tokens_per_param": tokens_per_param,
            "group": g, "interval": interval,
            "flops_range": [float(c.min()), float(c.max())], "band": "predictive",
            "flops": top.get("flops"), "n_params": top.get("n_params"),
            "n_tokens": top.get("n_tokens"), "law": first["law"], "pairs": pairs}


# ------------------------------------------------------------------------------ averaging
def averaged_predict_loss(fits: Mapping[str, ScalingFit], weights: Mapping[str, float],
                          n_params: Any, n_tokens: Any, *, band: str = "predictive",
                          probs: Sequence[float] = DEFAULT_PROBS,
                          interval: float = DEFAULT_INTERVAL, random_seed: SeedLike = None,
                          group: str | None = None) -> QueryResult:
    """Loss at ``(N, D)`` from the families' average with ``weights`` (e.g. stacking): their
    weighted quantile average (:func:`~bayes_scaling.fitting.families.quantile_average`, as the
    queries on a ``FamilyFit``); the result has one chain. Weights are
    normalised; families with zero weight are skipped. The summary has the columns of
    :func:`~bayes_scaling.query.predict.predict_loss` plus ``models`` (``name:weight, ...``).
    """
    probs, interval = check_probs(probs, interval)
    unknown = [k for k in weights if k not in fits]
    if unknown:
        raise QueryError(f"weights name unknown models {unknown}; fits: {', '.join(fits)}")
    w = np.array([max(float(weights.get(k, 0.0)), 0.0) for k in fits])
    if not np.isfinite(w).all() or w.sum() <= 0:
        raise QueryError(f"weights must be non-negative with a positive sum, got {dict(weights)}")
    w = w / w.sum()
    rng = np.random.default_rng(random_seed)
    parts, msgs, summaries = {}, [], []
    for (k, f), wk in zip(fits.items(), w, strict=True):
        if wk <= 0:
            continue
        res = predict_loss(f, n_params, n_tokens, group=group, band=band, probs=probs,
                           interval=interval, random_seed=rng)
        parts[k] = np.asarray(res.draws).reshape(-1, res.summary.shape[0])
        msgs += [m for m in res.warnings if m not in msgs]
        summaries.append(res.summary)
    mix = quantile_average(parts, dict(zip(fits, w, strict=True)), rng)
    head = summaries[0][["n_params", "n_tokens", "flops", "group", "band"]]
    label = ", ".join(f"{k}:{v:.3f}" for k, v in zip(fits, w, strict=True) if v > 0)
    summary = pd.concat([head.reset_index(drop=True),
                         interval_table(mix, probs=probs, interval=interval),
                         pd.DataFrame({"models": [label] * mix.shape[1]})], axis=1)
    da = xr.DataArray(mix[None], dims=(CHAIN, DRAW, POINT), name="loss",
                      attrs={"band": band, "units": "nats/token", "weights": label})
    return QueryResult(draws=da, summary=summary, band=band, warnings=tuple(msgs))
