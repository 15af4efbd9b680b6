r"""The sections of a compute proposal's risk report that are computed from fits already in hand.

:func:`bayes_scaling.report.assemble.build_risk` loads the runs, obtains the fits (the saved-fit cache, the
backtest and dynamics refits) and assembles the report; the builders here only query the fits
it passes in, and fit nothing:

- **verdict**: :math:`P(L \le L^*)` from predictive and law draws per family, and the model
  average :math:`P_{avg} = \sum_k w_k P_k` with bands from the mixture; tokens needed at the
  planned size; the compute-optimal alternative (one common-random-number scan over the splits
  of the planned FLOPs, and the smallest budget that reaches :data:`P_GOAL`);
- extrapolation, backtest records, convergence diagnostics, priors, Kaplan vs Chinchilla
  (PSIS-LOO and the stacking weights), constants, provenance, warnings, pattern checks;
- the arrays the report's figures are drawn from.

Nothing here imports PyMC.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import decades_outside
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import BacktestResult
from bayes_scaling.fitting.result import ScalingFit, package_version, versions
from bayes_scaling.model.spec import ModelSpec
from bayes_scaling.query.predict import (
    discrepancy_scale,
    fit_box,
    log_loss_draws,
    observation_noise,
    predict_loss,
    tokens_needed,
)
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.types import ProgressFn

#: Probabilities of the bands the report shows.
BAND_PROBS: tuple[float, ...] = (0.5, 0.9)
#: P(target) the compute-optimal alternative must reach.
P_GOAL = 0.9
#: Tokens-per-parameter grid of the iso-FLOP search (Chinchilla-optimal is ~20).
TOKENS_PER_PARAM = np.geomspace(0.5, 5000.0, 41)
#: FLOP multiples of the plan searched for the budget that reaches ``P_GOAL`` (1/100x-1000x).
BUDGET_DECADES = np.round(np.arange(-2.0, 3.0 + 1e-9, 0.25), 3)
#: Bisection steps refining that budget between grid rows (0.25 / 2**4 = 0.016 decades).
BISECTIONS = 4
#: Points of the model-size grid of the extrapolation figure.
CURVE_POINTS = 60


# ------------------------------------------------------------------------------ small helpers
def _band(row: Mapping[str, Any]) -> dict[str, Any]:
    """Median, mean and the 50%/90% bounds of one summary row."""
    keys = ("median", "mean", "lo_50", "hi_50", "lo_90", "hi_90")
    return {k: float(row[k]) for k in keys if k in row}



def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a query with its ExtrapolationWarning silenced (the report states the distance)."""
    import warnings

    from bayes_scaling.errors import ConvergenceWarning, ExtrapolationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)



def shown_path(path: str | os.PathLike[str] | None) -> str | None:
    """``path`` relative to the working folder when it lies inside it (reports travel)."""
    if path is None:
        return None
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)



def sha256_of(path: str | os.PathLike[str]) -> str:
    """Sha256 of a file's bytes."""
    from bayes_scaling.data.registry import sha256_file

    return sha256_file(path)



# ------------------------------------------------------------------------------ the verdict
def _p_target(fit_: ScalingFit, n: float, d: float, target: float, group: str,
              seed: int) -> dict[str, Any]:
    """P(loss <= target) from predictive and law draws, and the two bands of the loss."""
    out: dict[str, Any] = {}
    for band in ("predictive", "law"):
        res = _quiet(predict_loss, fit_, [n], [d], group=group, band=band, probs=BAND_PROBS,
                     random_seed=seed)
        draws = np.asarray(res.draws).ravel()
        out[band] = {"p_target": float(np.mean(draws <= target)),
                     **_band(res.summary.iloc[0])}
    return out



def _tokens(fit_: ScalingFit, n: float, target: float, group: str, seed: int,
            ) -> tuple[dict[str, Any], np.ndarray]:
    res = _quiet(tokens_needed, fit_, [n], target, group=group, probs=BAND_PROBS,
                 random_seed=seed)
    row = res.summary.iloc[0]
    rec = {"p_unreachable": float(row["p_unreachable"]), "median": float(row["median"]),
           "lo_50": float(row["lo_50"]), "hi_50": float(row["hi_50"]),
           "lo_90": float(row["lo_90"]), "hi_90": float(row["hi_90"]),
           "median_if_reachable": float(row["median_if_reachable"]),
           "median_tokens_per_param": float(row["median"]) / n}
    return rec, np.asarray(res.draws).ravel()



def _mixture(samples: Mapping[str, np.ndarray], weights: Mapping[str, float],
             seed: int) -> np.ndarray:
    """Draws from the weighted mixture: each family contributes ``round(w_k * S)`` draws."""
    rng = np.random.default_rng([seed, 17])
    size = min(s.size for s in samples.values())
    parts = [rng.choice(s, size=round(weights[k] * size), replace=False)
             for k, s in samples.items() if round(weights[k] * size) > 0]
    return np.concatenate(parts)



def _quantiles(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    q = np.where(np.isnan(q), np.inf, q)
    return {"lo_90": float(q[0]), "lo_50": float(q[1]), "median": float(q[2]),
            "hi_50": float(q[3]), "hi_90": float(q[4])}



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
    dist = decades_outside(fit_box(fit_), n, d)["distance"]
    z = rng.standard_normal((law.shape[0], 1))
    return np.mean(law + eps + discrepancy_scale(fit_, dist) * z <= np.log(target), axis=0)



RowFn = Callable[[float], np.ndarray]



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
    from bayes_scaling.query.allocate import compute_optimal

    res = compute_optimal(fit_, flops, group=group, probs=BAND_PROBS, random_seed=seed)
    s = res.summary.set_index("quantity")
    return {q: _band(s.loc[q]) for q in ("n_opt", "d_opt", "tokens_per_param", "loss")}



def _average(verdict: Mapping[str, Any], weights: Mapping[str, float] | None,
             fits: Mapping[str, ScalingFit], plan: Proposal, group: str,
             seed: int) -> dict[str, Any] | None:
    """Model-averaged P(target) (``sum_k w_k P_k``) and bands from the mixture."""
    if not weights or len(fits) < 2:
        return None
    from bayes_scaling.evaluate.families import averaged_predict_loss

    out: dict[str, Any] = {"weights": dict(weights)}
    for band in ("predictive", "law"):
        p = sum(weights[k] * verdict[k][band]["p_target"] for k in weights)
        res = _quiet(averaged_predict_loss, fits, weights, [plan.n_params], [plan.n_tokens],
                     band=band, probs=BAND_PROBS, random_seed=seed, group=group)
        out[band] = {"p_target": float(p), **_band(res.summary.iloc[0])}
    return out



def _tok_average(tok: Mapping[str, Any], draws: Mapping[str, np.ndarray],
                 weights: Mapping[str, float] | None, n: float, seed: int,
                 ) -> dict[str, Any] | None:
    if not weights or len(tok) < 2:
        return None
    mix = _mixture(draws, weights, seed)
    q = _quantiles(mix)
    return {"p_unreachable": float(sum(weights[k] * tok[k]["p_unreachable"] for k in weights)),
            **q, "median_tokens_per_param": q["median"] / n}



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



# ------------------------------------------------------------------------------ trust and context
def _extrapolation(runs: RunTable, n: float, d: float) -> dict[str, Any]:
    """Signed decades from the largest run to the plan, per axis, and the runs' ranges."""
    r = runs.range_summary()
    c = FLOPS_PER_PARAM_TOKEN * n * d
    axes = {"n_params": (n, r["n_max"], r["n_min"]), "n_tokens": (d, r["d_max"], r["d_min"]),
            "flops": (c, r["flops_max"], r["flops_min"])}
    return {k: {"plan": v, "largest_run": hi, "smallest_run": lo,
                "decades_past_largest": float(np.log10(v / hi))}
            for k, (v, hi, lo) in axes.items()}



def _bt_record(res: BacktestResult, reused: bool | None, file: str | None) -> dict[str, Any]:
    s = dict(res.summary)
    t = res.table
    keep = ["run_id", "group", "n_params", "n_tokens", "observed", "median", "lo_50", "hi_50",
            "lo_90", "hi_90", "abs_pct_error", "decades_out"]
    rec = {k: s[k] for k in ("method", "model", "n_train", "n_holdout", "coverage",
                             "median_abs_pct_error", "mean_log_pred_density",
                             "mean_rel_width_90", "mean_crps", "holdout_by", "holdout_top",
                             "seed") if k in s}
    rec["max_decades_out"] = float(t["decades_out"].max())
    rec["runs"] = t[[k for k in keep if k in t.columns]].to_dict(orient="records")
    rec["fit_file"], rec["reused"] = file, reused
    if res.fit is not None:
        rec["diagnostics"] = _diag(res.fit)
    return rec



def _diag(fit_: ScalingFit) -> dict[str, Any]:
    d = fit_.diagnostics
    return {"passed": d.passed, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail, "divergences": d.divergences, "chains": d.chains,
            "draws": d.draws, "backend": d.backend, "seed": d.seed,
            "sampling_seconds": d.sampling_seconds, "problems": list(d.problems),
            "banner": fit_.warning_banner, "calibration": fit_.meta.get("calibration")}



def _priors(spec: ModelSpec) -> dict[str, Any]:
    from bayes_scaling.laws.final_loss import LAWS

    law = LAWS[spec.law]
    lik = spec.likelihood
    return {
        "model": spec.name, "law": spec.law, "formula": law.formula, "citation": law.citation,
        "description": spec.description,
        "priors": [{"param": p, "prior": pr.describe()} for p, pr in spec.priors.items()],
        "likelihood": {"family": lik.family, "sigma": lik.sigma.describe(),
                       "nu": lik.nu.describe() if lik.nu is not None else None},
        "hierarchy": {"varying": list(spec.hierarchy.varying),
                      "tau": spec.hierarchy.tau.describe(),
                      "parameterization": spec.hierarchy.parameterization},
        "note": "priors on log-scale constants are on the centred scale (the term's loss at "
                "the ladder's geometric-mean size); see the spec file",
    }



def _comparison(fits: Mapping[str, ScalingFit], runs: RunTable, group: str, ratio: float,
                seed: int, tell: ProgressFn) -> tuple[dict[str, Any], dict[str, float] | None]:
    """Kaplan vs Chinchilla by PSIS-LOO (``bayes_scaling.evaluate.compare``) and the stacking weights."""
    if len(fits) < 2:
        only = next(iter(fits))
        return ({"available": False, "reason": f"the proposal names one law family ({only}); "
                 "name two or more in models.families to compare them"}, {only: 1.0})
    if importlib.util.find_spec("bayes_scaling.evaluate.compare") is None:
        return ({"available": False, "reason": "not available: bayes_scaling.evaluate.compare is not "
                 "part of this build, so no ELPD comparison or stacking weights"}, None)
    from bayes_scaling.evaluate import compare as cmp

    tell("comparing the law families by PSIS-LOO")
    try:
        # LOO only: held-out refits of every family would double the report's fitting time;
        # the trust section backtests the first family instead
        res = _quiet(cmp.compare, fits, runs=runs, holdout_top=None, random_seed=seed,
                     on_progress=tell, group=group, tokens_per_param=ratio)
    except BayesScalingError as exc:
        return {"available": False, "reason": f"not available: {exc}"}, None
    table = res.table
    by_model = {str(r["model"]): r for r in table.to_dict(orient="records")}
    weights = {}
    for fam, f in fits.items():
        rec = by_model.get(fam) or by_model.get(f.spec.name)
        weights[fam] = float(rec["weight"]) if rec is not None else 0.0
    total = sum(weights.values())
    weights = {k: v / total for k, v in weights.items()} if total > 0 else None
    return {"available": True, **res.to_json()}, weights



def _constants(fit_: ScalingFit) -> list[dict[str, Any]]:
    from bayes_scaling.report.demo import constants_table

    return constants_table(fit_)



def _provenance(plan: Proposal, runs: RunTable, files: Sequence[Mapping[str, Any]],
                fits: Mapping[str, ScalingFit], fit_prov: Mapping[str, Mapping[str, Any]],
                seed: int) -> dict[str, Any]:
    models = []
    for fam, f in fits.items():
        models.append({"family": fam, "model": f.spec.name, "law": f.spec.law,
                       "spec_sha256": f.spec.sha256(), "data_sha256": f.runs.fingerprint(),
                       "method": f.method, "seed": f.meta.get("seed"),
                       "backend": f.diagnostics.backend, "created": f.meta.get("created"),
                       "fit_versions": f.meta.get("versions"), **dict(fit_prov[fam])})
    return {
        "proposal_file": shown_path(plan.path),
        "proposal_sha256": sha256_of(plan.path) if plan.path else None,
        "data_files": list(files),
        "runs": {"n_runs": runs.n_runs, "groups": list(runs.group_names),
                 "fingerprint": runs.fingerprint(), "param_count": runs.param_count,
                 "loader": dict(plan.runs.loader)},
        "models": models, "seed": seed,
        "versions": versions(), "bayes_scaling_version": package_version(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }



def _warnings(risk: Mapping[str, Any], fits: Mapping[str, ScalingFit]) -> list[str]:
    """Plain-language caveats shown at the top of the report."""
    out = [f"{fam}: {f.warning_banner}" for fam, f in fits.items() if f.warning_banner]
    ex = risk["extrapolation"]
    c_past = ex["flops"]["decades_past_largest"]
    if c_past > 2:
        out.append(f"the plan lies {c_past:.1f} decades of compute past the largest run: the "
                   "law's form is untested there; the predictive band includes a discrepancy "
                   "term learned inside the ladder, which cannot see failures beyond it")
    trust = risk.get("trust", {})
    bayes = trust.get("bayes") if isinstance(trust, Mapping) else None
    if bayes and c_past > bayes.get("max_decades_out", 0) + 1:
        out.append("the backtest extrapolated far less than the plan does: its coverage is "
                   "evidence only for short extrapolations")
    if not risk["comparison"].get("available", False) and len(fits) > 1:
        out.append(f"no model average: {risk['comparison']['reason']}")
    tok = risk.get("tokens_needed", {}).get("families", {})
    for fam, t in tok.items():
        p_unreach = t.get("p_unreachable") if isinstance(t, Mapping) else None
        if isinstance(p_unreach, int | float) and p_unreach > 0.5:
            out.append(f"{fam}: the target is below this size's loss floor in {p_unreach:.0%} of "
                       "posterior draws: most likely unreachable at the planned size, whatever "
                       "the number of tokens")
    out += [f"scaling pattern ({f['code']}): {f['message']}"
            for f in risk.get("patterns", {}).get("findings", []) if f["severity"] == "warning"]
    return out



def _patterns(fit_: ScalingFit, plan: Proposal, group: str, seed: int,
              tell: ProgressFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scaling-pattern findings (:mod:`bayes_scaling.evaluate.checks`) of the primary family's fit, and
    the ranking of candidate next runs (:mod:`bayes_scaling.evaluate.nextrun`) for the plan."""
    from bayes_scaling.evaluate import checks as diagnose
    from bayes_scaling.evaluate import nextrun

    tell("scaling-pattern checks and the next-run ranking")
    n, d = plan.n_params, plan.n_tokens
    return (diagnose.report_section(fit_, (n, d)),
            nextrun.report_section(fit_, (n, d, plan.target_loss), group=group,
                                   random_seed=seed))



# ------------------------------------------------------------------------------ figures data
def _curve(fit_: ScalingFit, runs: RunTable, n: float, d: float, group: str,
           seed: int) -> dict[str, Any]:
    """Law and predictive bands along the plan's tokens-per-parameter line, to past the plan."""
    ratio = d / n
    grid = np.geomspace(runs.n.min() / 1.5, max(runs.n.max(), n) * 2.0, CURVE_POINTS)
    out: dict[str, Any] = {"n_params": grid, "n_tokens": ratio * grid,
                           "flops": FLOPS_PER_PARAM_TOKEN * ratio * grid**2}
    for band in ("law", "predictive"):
        s = _quiet(predict_loss, fit_, grid, ratio * grid, group=group, band=band,
                   probs=BAND_PROBS, random_seed=seed).summary
        out[band] = {k: s[k].to_numpy() for k in ("median", "lo_50", "hi_50", "lo_90", "hi_90")}
    return out



def _runs_points(runs: RunTable) -> dict[str, Any]:
    return {"n_params": runs.n, "n_tokens": runs.d, "flops": runs.flops, "loss": runs.loss,
            "group": [runs.group_names[i] for i in runs.group_index]}

