r"""Weights of law families from how they extrapolate: held-out-by-compute stacking.

PSIS-LOO scores a family on runs inside the ladder (interpolation); a proposal depends on runs
past it. Here each family is refitted without the ladder's top compute budgets (rolling origin:
without the top 1, then the top 2, ... budgets; :mod:`bayes_scaling.evaluate.heldout`),
predicts the held-out runs, and the families are stacked on those predictions: the weights
``w`` maximise the summed log score of the mixture, :math:`\sum_i \log \sum_k w_k p_k(y_i)`
over the held-out runs ``i`` (Yao, Vehtari, Simpson & Gelman 2018, doi:10.1214/17-BA1091,
eq. 4, with held-out-by-compute predictive densities in place of LOO ones). A ladder's own
weights on its ``n`` held-out runs are shrunk toward the cross-ladder weights learned on every
public ladder, :math:`w = (n w_\mathrm{own} + k w_\mathrm{cross}) / (n + k)`, with the
shipped ``k`` chosen leave-one-ladder-out (:func:`shrink_weights`, :func:`shrink_k`).
:func:`heldout_scores` scores each family and their average (:func:`combine`: the product's
weighted quantile average of their draws) on the same runs: median
absolute % error of the median, coverage of the 50% / 90% bands, 90% interval score (Gneiting
& Raftery 2007) and mean log predictive density. :func:`fit_stacked` fits the families and
makes the refits in one pool of processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.heldout import (
    DEFAULT_STACK_TOPS,
    MIN_TRAIN_BUDGETS,
    HeldOut,
    budget_index,
    collect_heldout,
    heldout_predictions,
    heldout_tasks,
    refit_task,
    split_by_budget,
)
from bayes_scaling.evaluate.parallel import local_pool, run_many, timed
from bayes_scaling.fitting.families import FamilyFit, family_meta, quantile_average
from bayes_scaling.fitting.fit import fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.spec import ModelSpec, load_spec
from bayes_scaling.types import ProgressFn, SeedLike

#: Columns of :func:`heldout_scores`.
SCORE_COLUMNS: tuple[str, ...] = ("model", "weight", "n_heldout", "median_abs_pct_error",
                                  "coverage_50", "coverage_90", "interval_score_90", "mean_lpd")


# ------------------------------------------------------------------------------ stacking
def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    r"""Weights maximising :math:`\sum_i \log \sum_k w_k \exp(\mathrm{lpd}_{ik})` on the simplex.

    Parameters
    ----------
    lpd : array, shape (runs, families)
        Held-out log predictive densities.

    Returns
    -------
    numpy.ndarray
        Non-negative weights summing to 1, one per family (column).
    """
    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[1] == 0 or lpd.shape[0] == 0:
        raise BayesScalingError(f"stacking needs a (runs, families) array, got {lpd.shape}")
    k = lpd.shape[1]
    if k == 1:
        return np.ones(1)
    lpd = np.where(np.isfinite(lpd), lpd, -1e6)

    def loss(z: np.ndarray) -> tuple[float, np.ndarray]:
        logw = z - special.logsumexp(z)
        t = lpd + logw[None, :]
        row = special.logsumexp(t, axis=1)
        resp = np.exp(t - row[:, None])  # each family's share of each run's density
        w = np.exp(logw)
        grad = -(resp.sum(axis=0) - lpd.shape[0] * w)
        return -float(row.sum()), grad

    res = optimize.minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B")
    w = special.softmax(res.x)
    w[w < 1e-6] = 0.0
    return w / w.sum()


def weights_from_heldout(heldout: Mapping[str, HeldOut]) -> dict[str, float]:
    """Stacking weights of the families from their held-out-by-compute densities."""
    names = list(heldout)
    lpd = np.column_stack([heldout[m].table["log_pred_density"].to_numpy() for m in names])
    return dict(zip(names, map(float, stacking_weights(lpd)), strict=True))


def mixture_samples(heldout: Mapping[str, HeldOut], weights: Mapping[str, float],
                    rng: np.random.Generator) -> np.ndarray:
    """Draws of the weighted mixture, each family contributing its weight's share of rows."""
    names = [m for m in heldout if weights.get(m, 0.0) > 0]
    w = np.array([weights[m] for m in names])
    total = heldout[names[0]].samples.shape[0]
    counts = np.floor(w / w.sum() * total).astype(int)
    counts[np.argmax(w)] += total - counts.sum()
    parts = [heldout[m].samples[rng.choice(heldout[m].samples.shape[0], size=c, replace=False)]
             for m, c in zip(names, counts, strict=True) if c > 0]
    return np.concatenate(parts)


#: How the average's draws are built from the families': ``"quantile"`` (the product's
#: :func:`~bayes_scaling.fitting.families.quantile_average`) or ``"pool"`` (the linear pool,
#: :func:`mixture_samples`; the product's rule before session 8).
COMBINE_METHODS: tuple[str, ...] = ("quantile", "pool")


def combine(heldout: Mapping[str, HeldOut], weights: Mapping[str, float],
            rng: np.random.Generator, how: str = "quantile") -> np.ndarray:
    """Draws of the families' weighted average on the held-out runs, built as ``how`` says."""
    if how not in COMBINE_METHODS:
        raise BayesScalingError(f"combine: how must be one of {', '.join(COMBINE_METHODS)}, "
                                f"got {how!r}")
    if how == "pool":
        return mixture_samples(heldout, weights, rng)
    return quantile_average({m: h.samples for m, h in heldout.items()}, weights, rng)


def score_samples(samples: np.ndarray, observed: np.ndarray,
                  lpd: np.ndarray) -> dict[str, float]:
    """Median abs % error, 50/90% coverage, 90% interval score and mean lpd of predictions."""
    y = np.asarray(observed, dtype=float)
    med = np.median(samples, axis=0)
    lo50, hi50, lo90, hi90 = np.quantile(samples, [0.25, 0.75, 0.05, 0.95], axis=0)
    iscore = (hi90 - lo90) + (2 / 0.1) * ((lo90 - y) * (y < lo90) + (y - hi90) * (y > hi90))
    return {"n_heldout": int(y.size),
            "median_abs_pct_error": float(np.median(100 * np.abs(med - y) / y)),
            "coverage_50": float(np.mean((y >= lo50) & (y <= hi50))),
            "coverage_90": float(np.mean((y >= lo90) & (y <= hi90))),
            "interval_score_90": float(np.mean(iscore)), "mean_lpd": float(np.mean(lpd))}


def heldout_scores(heldout: Mapping[str, HeldOut], weights: Mapping[str, float], *,
                   random_seed: SeedLike = None) -> pd.DataFrame:
    r"""Scores of each family and of their ``weights`` average on the held-out runs.

    The average's draws are the product's (:func:`combine`: the quantile average); its
    ``mean_lpd`` is the linear pool's, :math:`\log \sum_k w_k p_k`, the score the stacking
    weights maximise (the quantile average has no closed-form density).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`; one row per family, then ``"average"``.
    """
    rng = np.random.default_rng(random_seed)
    first = next(iter(heldout.values()))
    y = first.table["observed"].to_numpy()
    rows = [{"model": m, "weight": float(weights.get(m, 0.0)),
             **score_samples(h.samples, y, h.table["log_pred_density"].to_numpy())}
            for m, h in heldout.items()]
    names = list(heldout)
    lpd = np.column_stack([heldout[m].table["log_pred_density"].to_numpy() for m in names])
    w = np.array([max(weights.get(m, 0.0), 0.0) for m in names])
    with np.errstate(divide="ignore"):
        mix_lpd = special.logsumexp(lpd + np.log(w / w.sum())[None, :], axis=1)
    rows.append({"model": "average", "weight": 1.0,
                 **score_samples(combine(heldout, weights, rng), y, mix_lpd)})
    return pd.DataFrame(rows)[list(SCORE_COLUMNS)]


# ------------------------------------------------------------------------------ fitting
#: Families compared by default (shipped specs in ``models/``).
DEFAULT_MODELS: tuple[str, ...] = ("chinchilla", "kaplan", "kaplan_e")
#: Families a stacked fit uses by default: the rivals of issue 19.
STACK_MODELS: tuple[str, ...] = ("chinchilla", "farseer", "kaplan_e", "broken")
#: A ladder whose own rolling origin predicts fewer runs than this is short: its weights are
#: the cross-ladder weights (:func:`cross_ladder_weights`), and no refit is made.
MIN_OWN_ROWS = 10


def _specs(models: Sequence[Any]) -> list[ModelSpec]:
    if not models:
        raise BayesScalingError("no models to compare: give at least one, e.g. chinchilla,kaplan")
    specs = [load_spec(m) for m in models]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise BayesScalingError(f"models named twice: {', '.join(names)}")
    return specs


def _fit_one(model: Any, runs: RunTable, seed: int, kwargs: Mapping[str, Any]) -> ScalingFit:
    return fit(model, runs, random_seed=seed, **dict(kwargs))


def fit_families(runs: RunTable, models: Sequence[Any] = DEFAULT_MODELS, *,
                 random_seed: SeedLike = None, fit_kwargs: Mapping[str, Any] | None = None,
                 workers: int = 1, on_progress: ProgressFn | None = None
                 ) -> dict[str, ScalingFit]:
    """Fit every model in ``models`` (shipped names, spec paths or specs) to the same ``runs``.

    Each fit gets its own seed drawn from ``random_seed``; with ``workers`` > 1 they run in
    that many local processes. Returns ``{spec name: fit}`` in the order given; the first is
    the reference of :func:`~bayes_scaling.evaluate.compare.compare`'s divergence scan.
    """
    specs = _specs(models)
    names = [s.name for s in specs]
    seeds = np.random.default_rng(random_seed).integers(2**31 - 1, size=len(specs))
    tell = on_progress or (lambda _m: None)
    kw = dict(fit_kwargs or {})
    if workers > 1:
        tell(f"fitting {len(specs)} families in {workers} processes: {', '.join(names)}")
        fits = run_many(_fit_one, [{"model": s, "runs": runs, "seed": int(seed), "kwargs": kw}
                                   for s, seed in zip(specs, seeds, strict=True)],
                        workers=workers, on_progress=tell)
        return dict(zip(names, fits, strict=True))
    out = {}
    for i, (spec, seed) in enumerate(zip(specs, seeds, strict=True)):
        tell(f"fit {i + 1}/{len(specs)}: {spec.name} ({spec.law})")
        out[spec.name] = fit(spec, runs, random_seed=int(seed), on_progress=tell, **kw)
    return out


def _shipped() -> dict[str, Any]:
    text = resources.files("bayes_scaling").joinpath("_data/family_weights.json").read_text()
    return json.loads(text)


def cross_ladder_weights(names: Sequence[str]) -> dict[str, float]:
    """Weights learned on every public ladder (shipped; ``benchmarks/bench_families.py``).

    Restricted to ``names`` and renormalised; equal weights when none of them is shipped.
    """
    shipped = _shipped()["weights"]
    w = {k: float(shipped.get(k, 0.0)) for k in names}
    total = sum(w.values())
    return {k: v / total for k, v in w.items()} if total > 0 else dict.fromkeys(names,
                                                                                1 / len(names))


def shrink_k() -> float:
    """The shipped shrinkage constant ``k``: how many held-out runs the cross-ladder weights
    are worth (``inf``: only they count). Chosen over every public ladder, leave-one-ladder-out
    (``shrink_k_source`` in ``data/family_weights.json``, written by
    ``benchmarks/bench_families_shrink.py``).
    """
    raw = _shipped()
    if "shrink_k" not in raw:
        raise BayesScalingError("data/family_weights.json has no shrink_k: rerun "
                                "benchmarks/bench_families_shrink.py")
    return float(raw["shrink_k"])  # "inf" reads as infinity


def shrink_weights(own: Mapping[str, float], cross: Mapping[str, float], n: int,
                   k: float) -> dict[str, float]:
    r"""Own stacking weights shrunk toward the cross-ladder ones:
    :math:`w = (n\,w_\mathrm{own} + k\,w_\mathrm{cross}) / (n + k)`.

    ``n``: the ladder's held-out runs; ``k``: the runs the cross-ladder evidence is worth.
    ``n = 0`` or ``k = inf``: the cross-ladder weights; ``k = 0``: the own ones.
    """
    if n <= 0 or np.isinf(k):
        return {m: float(cross[m]) for m in cross}
    w = {m: (n * float(own[m]) + k * float(cross[m])) / (n + k) for m in own}
    total = sum(w.values())
    return {m: v / total for m, v in w.items()}


def forward_split(top: np.ndarray, flops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-budget-forward split of a ladder's held-out rows, ``(earlier, later)`` masks:
    origin ``t2``'s rows in the budgets below those origin ``t1`` holds out (its one-step-ahead
    rows) and origin ``t1``'s rows, ``t1 < t2`` the two smallest origins; both empty with fewer
    than two origins. ``top``: each row's origin; ``flops``: each row's FLOPs."""
    top = np.asarray(top, dtype=int)
    origins = np.unique(top)
    if origins.size < 2:
        return np.zeros(top.size, bool), np.zeros(top.size, bool)
    t1, t2 = int(origins[0]), int(origins[1])
    budget = budget_index(np.asarray(flops, dtype=float))
    return (top == t2) & (budget >= t1), top == t1


def forward_gain(lpd: np.ndarray, top: np.ndarray, flops: np.ndarray,
                 cross: np.ndarray) -> tuple[float, int]:
    """How strongly a ladder's own held-out rows reject the cross-ladder weights, one step
    forward: ``(mean log-score gain per run in nats, runs scored)``.

    Own weights are stacked on the one-step-ahead rows of the earlier origin (origin ``t2``'s
    rows in the budgets below those origin ``t1`` holds out, ``t1 < t2`` the two smallest
    origins; :func:`forward_split`) and scored, against the cross-ladder weights, on the later
    origin's rows (origin ``t1``): :math:`\\frac{1}{|B|}\\sum_{i\\in B} \\log \\sum_k
    w^A_k p_{ik} - \\log \\sum_k w^\\times_k p_{ik}`. ``(nan, 0)`` with fewer than two
    origins or no rows to stack on.

    ``lpd``: ``(rows, families)`` held-out log densities; ``top``: each row's origin (budgets
    held out); ``flops``: each row's FLOPs (budgets are counted down from the largest, which
    every origin holds out); ``cross``: the cross-ladder weights, one per column.
    """
    lpd = np.where(np.isfinite(lpd := np.asarray(lpd, dtype=float)), lpd, -1e6)
    a, b = forward_split(top, flops)
    if not a.any() or not b.any():
        return float("nan"), 0
    w_a = stacking_weights(lpd[a])
    with np.errstate(divide="ignore"):
        gain = (special.logsumexp(lpd[b] + np.log(w_a)[None, :], axis=1)
                - special.logsumexp(lpd[b] + np.log(np.asarray(cross, dtype=float))[None, :],
                                    axis=1))
    return float(np.mean(gain)), int(b.sum())


def _k_json(k: float) -> float | str:
    return "inf" if np.isinf(k) else float(k)


def stack_weights(runs: RunTable, models: Sequence[Any], *,
                  tops: Sequence[int] = DEFAULT_STACK_TOPS, method: str = "huber-bootstrap",
                  fit_kwargs: Mapping[str, Any] | None = None, workers: int = 1,
                  random_seed: SeedLike = None,
                  on_progress: ProgressFn | None = None) -> tuple[dict[str, float], dict]:
    """``(weights, provenance)``: held-out-by-compute stacking shrunk toward the cross-ladder
    weights (:func:`stacked`), or the cross-ladder weights alone when short.

    The ladder is short when none of ``tops`` leaves :data:`MIN_TRAIN_BUDGETS` budgets to fit
    on, or the origins predict fewer than :data:`MIN_OWN_ROWS` runs; its weights are then the
    shipped cross-ladder ones (:func:`cross_ladder_weights`), and no refit is made (nor for
    any ladder when the shipped :func:`shrink_k` is infinite).
    """
    plan = stack_plan(runs, tops)
    preds = ({} if plan["why"] else
             heldout_predictions(runs, models, tops=plan["stack_tops"], fit_kwargs=fit_kwargs,
                                 random_seed=random_seed, method=method, workers=workers,
                                 on_progress=on_progress))
    return stacked([load_spec(m).name for m in models], plan, preds, method, random_seed)


def stack_plan(runs: RunTable, tops: Sequence[int], k: float | None = None) -> dict[str, Any]:
    """The origins that leave enough budgets, the runs they predict, and why the ladder takes
    the cross-ladder weights without refits (``""``: it does not), known before any refit.

    ``k``: the shrinkage constant (default :func:`shrink_k`); infinite, no ladder needs refits.
    """
    k = shrink_k() if k is None else float(k)
    nb = int(budget_index(runs.flops).max()) + 1
    ok = [int(t) for t in tops if nb - int(t) >= MIN_TRAIN_BUDGETS]
    n_rows = sum(split_by_budget(runs, t)[1].n_runs for t in ok)
    why = (f"{nb} compute budgets: too few for an origin" if not ok else
           f"the origins predict {n_rows} runs (< {MIN_OWN_ROWS})" if n_rows < MIN_OWN_ROWS
           else "the shrinkage constant k is infinite: the ladder's own held-out runs would "
                "get no weight" if np.isinf(k) else "")
    return {"stack_tops": ok, "n_heldout": n_rows, "why": why, "k": k}


def stacked(names: Sequence[str], plan: Mapping[str, Any], preds: Mapping[str, HeldOut],
            method: str, random_seed: SeedLike) -> tuple[dict[str, float], dict]:
    """``(weights, provenance)`` of :func:`stack_weights` from its plan and refits.

    The ladder's own stacking weights on its ``n`` held-out runs shrunk toward the cross-ladder
    ones by ``k`` (:func:`shrink_weights`, ``weights_method`` ``"shrunk"``); a ladder the plan
    sends to the cross-ladder weights gets them unchanged (``"cross-ladder"``). Both record
    ``n``, ``k``, ``own`` (``None`` without refits) and ``cross``.
    """
    k = float(plan["k"]) if "k" in plan else shrink_k()
    cross = cross_ladder_weights(names)
    base = {**{q: v for q, v in plan.items() if q != "k"}, "k": _k_json(k), "cross": cross}
    if plan["why"]:
        return cross, {"weights_method": "cross-ladder", **base, "n": 0, "own": None}
    n = int(plan["n_heldout"])
    own = weights_from_heldout(preds)
    w = shrink_weights(own, cross, n, k)
    scores = heldout_scores(preds, w, random_seed=random_seed)
    return w, {"weights_method": "shrunk", **base, "n": n, "own": own,
               "refit_method": method, "scores": scores.to_dict(orient="records"),
               "refits_converged": {q: h.converged for q, h in preds.items()}}


def fit_stacked(runs: RunTable, models: Sequence[Any] = STACK_MODELS, *,
                tops: Sequence[int] = DEFAULT_STACK_TOPS, refit_method: str = "huber-bootstrap",
                fit_kwargs: Mapping[str, Any] | None = None,
                refit_kwargs: Mapping[str, Any] | None = None, workers: int = 1,
                random_seed: SeedLike = None,
                on_progress: ProgressFn | None = None) -> FamilyFit:
    """Fit several law families to ``runs`` and weigh them by how they extrapolate.

    Each family gets a full fit (:func:`~bayes_scaling.fitting.fit.fit`, ``fit_kwargs``); the
    weights come from :func:`stack_weights` (refits without the top ``tops`` compute budgets,
    by ``refit_method``: Huber + bootstrap by default, seconds per refit). Queries on the
    result use the weighted average; :meth:`FamilyFit.family` gives one family's fit.

    Parameters
    ----------
    runs : RunTable
        The ladder.
    models : sequence of str, path or ModelSpec, default :data:`STACK_MODELS`
        The families.
    tops : sequence of int, default :data:`~bayes_scaling.evaluate.heldout.DEFAULT_STACK_TOPS`
        Rolling origins of the stacking refits: numbers of top compute budgets held out.
    refit_method : {"huber-bootstrap", "nuts"}, default "huber-bootstrap"
        How the stacking refits are made.
    fit_kwargs : mapping, optional
        Settings of the families' NUTS fits (``chains``, ``draws``, ``tune``, ...).
    refit_kwargs : mapping, optional
        Settings of the stacking refits (Huber: ``n_boot``, ``calibrate``; NUTS: as
        ``fit_kwargs``).
    workers : int, default 1
        Local processes for the fits and the refits.
    random_seed : int, numpy.random.Generator or None
        Seed of every fit and refit.
    on_progress : callable, optional
        Called with one short line per step.

    Returns
    -------
    FamilyFit
        The fits, the weights and their provenance (``save`` writes one file).
    """
    seeds = np.random.default_rng(random_seed).integers(2**31 - 1, size=2)
    tell = on_progress or (lambda _m: None)
    specs = _specs(models)
    fit_seeds = np.random.default_rng(int(seeds[0])).integers(2**31 - 1, size=len(specs))
    plan = stack_plan(runs, tops)
    t0 = time.perf_counter()
    with local_pool(workers) as pool:
        # one pool: the fits first, most constants (slowest) first, then the stacking refits,
        # which fill the workers the fits leave idle
        fits_at = {}
        for i in sorted(range(len(specs)), key=lambda i: -len(LAWS[specs[i].law].params)):
            tell(f"fit: {specs[i].name} ({specs[i].law})" + (f", in {workers} processes"
                                                             if workers > 1 else ""))
            fits_at[i] = pool.submit(timed, _fit_one, {
                "model": specs[i], "runs": runs, "seed": int(fit_seeds[i]), "kwargs": {
                    **dict(fit_kwargs or {}), **({"on_progress": tell} if workers == 1 else {})}})
        tell(f"stacking weights: refits without the top {plan['stack_tops']} compute budget(s) "
             f"({refit_method})" if not plan["why"] else f"stacking weights: cross-ladder "
             f"({plan['why']}): no refits")
        tasks = ([] if plan["why"] else heldout_tasks(
            runs, specs, tops=plan["stack_tops"], fit_kwargs=refit_kwargs, draws=1000,
            random_seed=int(seeds[1]), split=split_by_budget, method=refit_method, tell=tell))
        refits = [pool.submit(timed, refit_task, t) for t in tasks]
        done = {i: f.result() for i, f in fits_at.items()}
        parts = [r.result() for r in refits]
    fits = {specs[i].name: done[i][0] for i in range(len(specs))}
    preds = collect_heldout([p[0] for p in parts], len(plan["stack_tops"])) if parts else {}
    weights, meta = stacked(list(fits), plan, preds, refit_method, int(seeds[1]))
    tell("weights: " + ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
         + f" ({meta['weights_method']})")
    meta["timings"] = {"wall_s": time.perf_counter() - t0, "workers": workers,
                       "fits": {specs[i].name: {"wall_s": w, "cpu_s": c,
                                                "sampling_s": f.diagnostics.sampling_seconds}
                                for i, (f, w, c) in done.items()},
                       "refits": {"n": len(parts), "wall_s": sum(p[1] for p in parts),
                                  "cpu_s": sum(p[2] for p in parts)}}
    return FamilyFit(fits, weights, family_meta(**meta))
