"""The compute-optimal alternative: every split of the planned FLOPs scored by P(target).

One common-random-number scan over the splits of the planned FLOPs per family (and averaged),
the splits with P >= :data:`P_GOAL`, and the smallest budget whose best split reaches it. This
section also owns ``figures``, the arrays the report's plots are drawn from (the runs, the bands
along the plan's tokens-per-parameter line and the P(target) grid of this scan).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import decades_outside
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.allocate import compute_optimal
from bayes_scaling.query.predict import (
    discrepancy_lambda,
    discrepancy_scale,
    fit_box,
    log_loss_draws,
    observation_noise,
    predict_loss,
)
from bayes_scaling.report.blocks import Block, Num, h2, lookup, para, table
from bayes_scaling.report.common import BAND_PROBS, CURVE_POINTS, band_entry, quiet
from bayes_scaling.report.context import Context, Section
from bayes_scaling.report.proposal import Proposal

#: P(target) the compute-optimal alternative must reach.
P_GOAL = 0.9
#: Tokens-per-parameter grid of the iso-FLOP search (Chinchilla-optimal is ~20).
TOKENS_PER_PARAM = np.geomspace(0.5, 5000.0, 41)
#: FLOP multiples of the plan searched for the budget that reaches ``P_GOAL`` (1/100x-1000x).
BUDGET_DECADES = np.round(np.arange(-2.0, 3.0 + 1e-9, 0.25), 3)
#: Bisection steps refining that budget between grid rows (0.25 / 2**4 = 0.016 decades).
BISECTIONS = 4

RowFn = Callable[[float], np.ndarray]


def _p_row(fit_: ScalingFit, flops: float, target: float, group: str,
           rng: np.random.Generator, ratios: np.ndarray = TOKENS_PER_PARAM) -> np.ndarray:
    """Predictive P(target) at the splits of ``flops`` with tokens per parameter ``ratios``.

    The predictive draws of :func:`~bayes_scaling.query.predict.log_loss_draws` (law + run noise +
    extrapolation discrepancy), with common random numbers across the splits: each posterior
    draw gets one noise and one discrepancy deviate for the whole row, so P varies smoothly
    with the split and the best split is not an artefact of Monte Carlo noise.
    """
    n = np.sqrt(flops / (FLOPS_PER_PARAM_TOKEN * ratios))
    d = ratios * n
    law = log_loss_draws(fit_, n, d, group=group, band="law", rng=rng)
    eps = observation_noise(fit_, (law.shape[0], 1), rng)
    far = decades_outside(fit_box(fit_), n, d)
    z = rng.standard_normal((law.shape[0], 1))
    sd = discrepancy_scale(fit_, far, discrepancy_lambda(fit_, rng))
    return np.mean(law + eps + sd * z <= np.log(target), axis=0)


def _row_fns(fits: Mapping[str, ScalingFit], weights: Mapping[str, float] | None,
             flops: float, target: float, group: str, seed: int) -> dict[str, RowFn]:
    """P(target) over the splits of ``flops * 10**k``, per family and (weighted) averaged."""
    rngs = {fam: np.random.default_rng([seed, 23, i]) for i, fam in enumerate(fits)}

    def one(fam: str) -> RowFn:
        return lambda k: _p_row(fits[fam], flops * 10.0**k, target, group, rngs[fam])

    fns = {fam: one(fam) for fam in fits}
    if weights and len(fits) > 1:
        fns["average"] = lambda k: sum(w * fns[f](k) for f, w in weights.items())
    return fns


def _alternative(row_at: RowFn, coarse: np.ndarray, row: np.ndarray, ratios: np.ndarray,
                 flops: float, plan_ratio: float, n_draws: int) -> dict[str, Any]:
    """Best split of the planned FLOPs, the splits with P >= P_GOAL, the budget reaching it.

    ``row`` is P over the splits ``ratios`` of the planned FLOPs (one common-random-number
    scan that includes the plan's own split); ``coarse`` holds P over (:data:`BUDGET_DECADES`
    x :data:`TOKENS_PER_PARAM`); the smallest budget reaching the goal is refined by bisection
    in log C between its grid rows.
    """
    def split(k: float, r: float) -> dict[str, float]:
        c = flops * 10.0**k
        n = float(np.sqrt(c / (FLOPS_PER_PARAM_TOKEN * r)))
        return {"flops": c, "n_params": n, "n_tokens": r * n, "tokens_per_param": float(r)}

    j = int(np.argmax(row))
    ok = np.flatnonzero(row >= P_GOAL)
    p_plan = float(row[int(np.argmin(np.abs(np.log(ratios / plan_ratio))))])
    out: dict[str, Any] = {
        "goal": P_GOAL, "plan_tokens_per_param": plan_ratio, "p_at_plan_split": p_plan,
        "best": {**split(0.0, ratios[j]), "p_target": float(row[j]),
                 "mc_se": float(np.sqrt(row[j] * (1 - row[j]) / n_draws))},
        "reaches_goal": bool(ok.size),
        "goal_range": ({"low": split(0.0, ratios[ok[-1]]), "high": split(0.0, ratios[ok[0]])}
                       if ok.size else None),
        "budget_for_goal": None,
        "max_budget_searched": float(flops * 10.0 ** BUDGET_DECADES[-1]),
        "max_times_plan": float(10.0 ** BUDGET_DECADES[-1]),
    }
    hit = np.flatnonzero(coarse.max(axis=1) >= P_GOAL)
    if hit.size:
        i = int(hit[0])
        hi, best_row = float(BUDGET_DECADES[i]), coarse[i]
        if i > 0:
            lo = float(BUDGET_DECADES[i - 1])
            for _ in range(BISECTIONS):
                mid = (lo + hi) / 2
                r = row_at(mid)
                if r.max() >= P_GOAL:
                    hi, best_row = mid, r
                else:
                    lo = mid
        jj = int(np.argmax(best_row))
        out["budget_for_goal"] = {**split(hi, TOKENS_PER_PARAM[jj]),
                                  "p_target": float(best_row[jj]), "times_plan": 10.0**hi,
                                  "at_smallest_budget_searched": i == 0}
    return out


def _optimal_split(fit_: ScalingFit, flops: float, group: str, seed: int) -> dict[str, Any]:
    """The law's compute-optimal split of the planned FLOPs (law band)."""
    res = compute_optimal(fit_, flops, group=group, probs=BAND_PROBS, random_seed=seed)
    s = res.summary.set_index("quantity")
    return {q: band_entry(s.loc[q]) for q in ("n_opt", "d_opt", "tokens_per_param", "loss")}


def _alternatives(fits: Mapping[str, ScalingFit], row_fns: Mapping[str, RowFn],
                  grids: Mapping[str, np.ndarray], weights: Mapping[str, float] | None,
                  plan: Proposal, group: str, seed: int) -> dict[str, Any]:
    """The compute-optimal alternative per family and model-averaged.

    The splits of the planned FLOPs are scored in one common-random-number scan per family
    over :data:`TOKENS_PER_PARAM` plus the plan's split and every family's compute-optimal
    split, so that "best", "at the plan" and "at N_opt" are compared on the same draws.
    """
    ratio = plan.n_tokens / plan.n_params
    size = {fam: f.posterior.sizes["chain"] * f.posterior.sizes["draw"] for fam, f in fits.items()}
    optimal = {fam: _optimal_split(f, plan.flops, group, seed) for fam, f in fits.items()}
    ratios = np.unique(np.concatenate([TOKENS_PER_PARAM, [ratio], [
        o["d_opt"]["median"] / o["n_opt"]["median"] for o in optimal.values()]]))
    rows = {fam: _p_row(f, plan.flops, plan.target_loss, group,
                        np.random.default_rng([seed, 29, i]), ratios)
            for i, (fam, f) in enumerate(fits.items())}
    out: dict[str, Any] = {"families": {}, "average": None}
    for fam in fits:
        o = optimal[fam]
        r_opt = o["d_opt"]["median"] / o["n_opt"]["median"]
        o["p_target"] = float(rows[fam][int(np.argmin(np.abs(np.log(ratios / r_opt))))])
        out["families"][fam] = {**_alternative(row_fns[fam], grids[fam], rows[fam], ratios,
                                               plan.flops, ratio, size[fam]),
                                "optimal_split": o}
    if "average" in row_fns and weights:
        avg = sum(w * rows[f] for f, w in weights.items())
        out["average"] = _alternative(row_fns["average"], grids["average"], avg, ratios,
                                      plan.flops, ratio, min(size.values()))
    return out


def _curve(fit_: ScalingFit, runs: RunTable, n: float, d: float, group: str,
           seed: int) -> dict[str, Any]:
    """Law and predictive bands along the plan's tokens-per-parameter line, to past the plan."""
    ratio = d / n
    grid = np.geomspace(runs.n.min() / 1.5, max(runs.n.max(), n) * 2.0, CURVE_POINTS)
    out: dict[str, Any] = {"n_params": grid, "n_tokens": ratio * grid,
                           "flops": FLOPS_PER_PARAM_TOKEN * ratio * grid**2}
    for kind in ("law", "predictive"):
        s = quiet(predict_loss, fit_, grid, ratio * grid, group=group, band=kind,
                  probs=BAND_PROBS, random_seed=seed).summary
        out[kind] = {k: s[k].to_numpy() for k in ("median", "lo_50", "hi_50", "lo_90", "hi_90")}
    return out


def _runs_points(runs: RunTable) -> dict[str, Any]:
    return {"n_params": runs.n, "n_tokens": runs.d, "flops": runs.flops, "loss": runs.loss,
            "group": [runs.group_names[i] for i in runs.group_index]}


def numbers(ctx: Context) -> dict[str, Any]:
    """``alternative`` per family and averaged, and the ``figures`` arrays."""
    weights = ctx.entry("weights")
    fits, plan, seed = ctx.fits, ctx.plan, ctx.seed
    row_fns = _row_fns(fits, weights, plan.flops, ctx.target, ctx.group, seed)
    grids = {fam: np.array([row_fns[fam](float(k)) for k in BUDGET_DECADES]) for fam in fits}
    if "average" in row_fns:
        grids["average"] = sum(weights[f] * grids[f] for f in weights)  # type: ignore[index]
    alternative = _alternatives(fits, row_fns, grids, weights, plan, ctx.group, seed)
    figures = {
        "runs": _runs_points(ctx.runs),
        "curve": {fam: _curve(f, ctx.runs, ctx.n, ctx.d, ctx.group, seed)
                  for fam, f in fits.items()},
        "grid": {"tokens_per_param": TOKENS_PER_PARAM, "budget_decades": BUDGET_DECADES,
                 "p_target": grids},
    }
    return {"alternative": alternative, "figures": figures}


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The best split, the splits and budget that reach the goal, and the per-family table."""
    alt = risk["alternative"]
    key = ("alternative", "average") if alt["average"] else \
        ("alternative", "families", risk["headline"])
    a = lookup(risk, key)
    who = "model average" if alt["average"] else risk["headline"]
    out = [h2("The compute-optimal alternative"),
           para("Every split of the same budget, C = ", Num(("plan", "flops"), "flops"),
              f" FLOP, scored by P(target) under the predictive band ({who}). The best split "
              "is N = ", Num((*key, "best", "n_params"), "params"), ", D = ",
              Num((*key, "best", "n_tokens"), "tokens"), " (",
              Num((*key, "best", "tokens_per_param"), "ratio"), " tokens per parameter) with "
              "P = ", Num((*key, "best", "p_target"), "prob"), " ± ",
              Num((*key, "best", "mc_se"), "prob"), " (Monte Carlo error); in the same scan "
              "the plan's split (", Num(("plan", "tokens_per_param"), "ratio"),
              " tokens per parameter) has P = ", Num((*key, "p_at_plan_split"), "prob"),
              ". The scan draws its own predictive samples, so its P can differ from the "
              "verdict's by about the Monte Carlo error.")]
    if a["goal_range"]:
        r = (*key, "goal_range")
        out.append(para("Splits of this budget with P(target) ≥ ", Num((*key, "goal"), "prob"),
                      ": N from ", Num((*r, "low", "n_params"), "params"), " (D = ",
                      Num((*r, "low", "n_tokens"), "tokens"), ") to ",
                      Num((*r, "high", "n_params"), "params"), " (D = ",
                      Num((*r, "high", "n_tokens"), "tokens"), ").", css="good"))
    else:
        out.append(para("No split of this budget reaches P(target) ≥ ", Num((*key, "goal"),
                                                                         "prob"), ".",
                      css="bad"))
    if a["budget_for_goal"]:
        g = (*key, "budget_for_goal")
        out.append(para("The smallest budget whose best split reaches P ≥ ",
                      Num((*key, "goal"), "prob"), " is ", Num((*g, "flops"), "flops"),
                      " FLOP (", Num((*g, "times_plan"), "ratio"), "× the plan",
                      ", or less: the smallest budget searched" if
                      a["budget_for_goal"]["at_smallest_budget_searched"] else "", "): N = ",
                      Num((*g, "n_params"), "params"), ", D = ", Num((*g, "n_tokens"), "tokens"),
                      ", P = ", Num((*g, "p_target"), "prob"), "."))
    else:
        out.append(para("No budget up to ", Num((*key, "max_budget_searched"), "flops"),
                      " FLOP (", Num((*key, "max_times_plan"), "ratio"), "× the plan) reaches "
                      "P ≥ ", Num((*key, "goal"), "prob"), " at any split."))
    rows = []
    for fam in risk["families"]:
        f = ("alternative", "families", fam)
        o = (*f, "optimal_split")
        rows.append([[fam], [Num((*o, "n_opt", "median"), "params")],
                     [Num((*o, "d_opt", "median"), "tokens")],
                     [Num((*o, "tokens_per_param", "median"), "ratio")],
                     [Num((*o, "p_target"), "prob")],
                     [Num((*f, "best", "n_params"), "params"), " / ",
                      Num((*f, "best", "n_tokens"), "tokens")],
                     [Num((*f, "best", "p_target"), "prob")]])
    out.append(table(["", "N_opt (law, median)", "D_opt", "tokens/param", "P at N_opt",
                       "best split N / D", "P at best"], rows))
    out.append(Block("figure", text="alternative",
                     caption="Left: P(target) over the splits of the planned budget. Right: "
                             "P(target) at the best split of each budget."))
    return out


SECTION = Section(keys=("alternative", "figures"), numbers=numbers, blocks=blocks)
