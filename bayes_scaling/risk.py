r"""Every number of a compute proposal's risk report, gathered into one JSON-ready dict.

:func:`build_risk` loads the proposal's runs, fits each law family (or reuses saved fits whose
spec and data hashes match), and answers the committee's questions:

- **verdict**: :math:`P(L \le L^*)`, the fraction of posterior *predictive* draws of the planned
  run's loss at or below the target (where one real run would land), and the same fraction of
  *law* draws (the law's mean only), per family and model-averaged with the stacking weights of
  :func:`bayes_scaling.compare.compare`: :math:`P_{avg} = \sum_k w_k P_k`;
- predicted loss (median, 50% and 90% bands), tokens needed at the planned size (and
  P(unreachable)), and the compute-optimal alternative: the split of the same FLOPs with the
  highest P(target), the splits with P >= 0.9, and the smallest budget that reaches 0.9;
- extrapolation: decades past the largest run in N, D and C;
- trust: backtests on these runs (the Bayesian fit and the Huber+bootstrap baseline), the
  convergence diagnostics, the priors; Kaplan vs Chinchilla; provenance.

Nothing here imports PyMC unless a fit must be run. The dict's numbers are plain floats (``inf``
written as the string ``"inf"``); ``figures`` holds the arrays the report's plots are drawn from.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.backtest import BacktestResult, score, split_top
from bayes_scaling.constants import (
    DEFAULT_PROBS,
    FLOPS_PER_PARAM_TOKEN,
    MAX_DIVERGENCES,
    MAX_RHAT,
    MIN_ESS,
    NEW_GROUP,
)
from bayes_scaling.data import RunTable, load_runs
from bayes_scaling.errors import BayesScalingError, FitFileError
from bayes_scaling.extrapolation import decades_outside
from bayes_scaling.fit import PACKAGE, ScalingFit, package_version, versions
from bayes_scaling.predict import (
    discrepancy_scale,
    fit_box,
    log_loss_draws,
    observation_noise,
    predict_loss,
    tokens_needed,
)
from bayes_scaling.proposal import Proposal
from bayes_scaling.spec import ModelSpec, load_spec
from bayes_scaling.summarize import jsonable

ProgressFn = Callable[[str], None]
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
    from bayes_scaling.datasets import sha256_file

    return sha256_file(path)


# ------------------------------------------------------------------------------ runs
def load_proposal_runs(proposal: Proposal) -> tuple[RunTable, list[dict[str, Any]]]:
    """The proposal's run table and, per input file, its path, sha256 and row count.

    A registry name loads with the registry's loader options (overridden by the proposal's).
    Several files are concatenated; one without a group column becomes the group named after
    its stem.
    """
    from bayes_scaling.datasets import fetch, load_dataset, load_registry

    registry = load_registry()
    tables, files = [], []
    for entry in proposal.runs.files:
        opts = dict(proposal.runs.loader)
        if not Path(entry).exists() and entry in registry:
            path = fetch(entry)
            table = load_dataset(entry, **opts)
        elif Path(entry).is_file():
            path, table = Path(entry), load_runs(entry, **opts)
        else:
            raise proposal.error("runs.files", f"names {entry!r}: neither a file nor a "
                                 f"registry data set ({', '.join(registry)})")
        files.append({"entry": entry, "path": shown_path(path), "sha256": sha256_of(path),
                      "rows_used": table.n_runs})
        tables.append((Path(entry).stem, table))
    if len(tables) == 1:
        return tables[0][1], files
    frames = []
    for stem, t in tables:
        f = t.frame.copy()
        if t.group_names == ("all",):
            f["group"] = stem
        f["run_id"] = [f"{stem}:{r}" for r in f["run_id"]]
        frames.append(f)
    merged = pd.concat(frames, ignore_index=True)
    return load_runs(merged, param_count=tables[0][1].param_count), files


def _group(proposal: Proposal, runs: RunTable) -> str:
    """The group the proposal is predicted for (checked against the runs)."""
    g = proposal.runs.group
    if g is None:
        if runs.n_groups == 1:
            return runs.group_names[0]
        raise proposal.error("runs.group", f"is required: the runs have {runs.n_groups} groups "
                             f"({', '.join(runs.group_names)}); or 'new' for an unseen one")
    if g != NEW_GROUP and g not in runs.group_names:
        raise proposal.error("runs.group", f"names {g!r}, not a group of the runs "
                             f"({', '.join(runs.group_names)}; or 'new')")
    return g


# ------------------------------------------------------------------------------ fits
def cache_path(cache_dir: Path, spec: ModelSpec, runs: RunTable, method: str = "nuts") -> Path:
    """``<cache_dir>/<model>-<spec_hash[:12]>-<data_hash[:12]>.nc`` (``<model>.<method>`` for
    a fit other than NUTS, e.g. the Huber+bootstrap baseline)."""
    tag = spec.name if method in ("nuts", "dynamics") else f"{spec.name}.{method}"
    return Path(cache_dir) / f"{tag}-{spec.sha256()[:12]}-{runs.fingerprint()[:12]}.nc"


def _reusable(cached: ScalingFit, spec: ModelSpec, runs: RunTable, method: str,
              settings: Mapping[str, Any]) -> bool:
    """A saved fit answers for a new one: same spec, data, method, (NUTS) draws and the
    same bayes_scaling version (a new version may fit or calibrate differently)."""
    if cached.spec.sha256() != spec.sha256() or cached.runs.fingerprint() != runs.fingerprint():
        return False
    if cached.meta.get("versions", {}).get(PACKAGE) != versions().get(PACKAGE):
        return False
    if method == "huber-bootstrap":
        return cached.method == method
    d = cached.diagnostics
    calibrated = "kappa" in cached.posterior or method == "dynamics"
    return (cached.method != "huber-bootstrap" and calibrated
            and (d.chains, d.draws) == (settings["chains"], settings["draws"]))


def obtain_fit(spec: ModelSpec, runs: Any, *, settings: Mapping[str, Any],
               seed: int, cache_dir: Path | None, on_bad: str = "warn",
               tell: ProgressFn = lambda _m: None,
               method: str = "nuts") -> tuple[ScalingFit, dict[str, Any]]:
    """A saved fit when its spec, data hash and sampler settings match; else a new one (saved).

    ``method`` is ``"nuts"`` (:func:`~bayes_scaling.fit.fit` with ``settings``),
    ``"huber-bootstrap"`` (:func:`~bayes_scaling.fit.fit_baseline`) or ``"dynamics"``
    (:func:`~bayes_scaling.dynamics.fit_dynamics` on a curve table). Returns the fit and a
    provenance record (``file``, ``reused``).
    """
    path = cache_path(cache_dir, spec, runs, method) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = ScalingFit.load(path)
        except FitFileError as exc:
            tell(f"ignoring unreadable saved fit ({exc})")
        else:
            if _reusable(cached, spec, runs, method, settings):
                tell(f"reusing saved fit {path}")
                if on_bad == "raise":  # a saved fit passes the same gate as a new one
                    from bayes_scaling.diagnostics import check_convergence

                    check_convergence(cached.diagnostics, on_bad="raise")
                return cached, {"file": shown_path(path), "reused": True}
    from bayes_scaling.fit import fit, fit_baseline

    if method == "nuts":
        tell(f"fitting {spec.name} on {runs.n_runs} runs ({settings['chains']} chains x "
             f"{settings['draws']} draws)")
        fitted = fit(spec, runs, random_seed=seed, on_bad=on_bad,  # type: ignore[arg-type]
                     on_progress=tell, **settings)
    elif method == "dynamics":
        from bayes_scaling.dynamics import fit_dynamics

        tell(f"fitting {spec.name} on {runs.n_points} checkpoints of {runs.n_curves} loss curves")
        fitted = fit_dynamics(spec, runs, random_seed=seed, on_bad=on_bad, on_progress=tell,
                              **settings)
    else:
        tell(f"fitting the {method} baseline of {spec.name} on {runs.n_runs} runs")
        fitted = fit_baseline(spec, runs, random_seed=seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fitted.save(path)
    return fitted, {"file": shown_path(path), "reused": False}


def _fit_settings(proposal: Proposal) -> dict[str, Any]:
    f = proposal.fit
    out: dict[str, Any] = {"chains": f.chains, "draws": f.draws, "tune": f.tune,
                           "target_accept": f.target_accept}
    if f.backend:
        out["backend"] = f.backend
    return out


def _check_given_fit(proposal: Proposal, family: str, fit_: ScalingFit, runs: RunTable) -> None:
    if fit_.runs.fingerprint() != runs.fingerprint():
        raise proposal.error("models.families", f"the fit given for {family!r} was fitted on "
                             "other runs than the proposal's (data hash differs)")


# ------------------------------------------------------------------------------ sections
def _plan(proposal: Proposal, fits: Mapping[str, ScalingFit], group: str,
          seed: int) -> Proposal:
    """The proposal with (N, D) set: a FLOP budget alone is split by the first family."""
    if proposal.split != "optimal":
        return proposal
    from bayes_scaling.allocate import compute_optimal

    first = fits[proposal.families[0]]
    res = compute_optimal(first, proposal.flops, group=group, random_seed=seed)
    n_opt = float(res.summary.set_index("quantity").loc["n_opt", "median"])
    return proposal.with_plan(n_opt, float(proposal.flops) / (FLOPS_PER_PARAM_TOKEN * n_opt))


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

    The predictive draws of :func:`~bayes_scaling.predict.log_loss_draws` (law + run noise +
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
    from bayes_scaling.allocate import compute_optimal

    res = compute_optimal(fit_, flops, group=group, probs=BAND_PROBS, random_seed=seed)
    s = res.summary.set_index("quantity")
    return {q: _band(s.loc[q]) for q in ("n_opt", "d_opt", "tokens_per_param", "loss")}


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


def _cached_backtest(runs: RunTable, spec: ModelSpec, *, method: str, holdout_by: str,
                     holdout_top: int, settings: Mapping[str, Any], seed: int,
                     cache_dir: Path | None, tell: ProgressFn) -> dict[str, Any]:
    """The steps of :func:`bayes_scaling.backtest.backtest`, with the refit saved and reused."""
    rng = np.random.default_rng(seed)
    train, test = split_top(runs, holdout_by=holdout_by, holdout_top=holdout_top)
    fit_seed = int(rng.integers(2**31 - 1))
    fitted, prov = obtain_fit(spec, train, settings=settings, seed=fit_seed, cache_dir=cache_dir,
                              tell=tell, method=method)
    res = _quiet(score, fitted, test, probs=DEFAULT_PROBS, random_seed=rng)
    res.summary.update({"holdout_by": holdout_by, "holdout_top": holdout_top,  # type: ignore[union-attr]
                        "seed": fit_seed})
    return _bt_record(res, prov["reused"], prov["file"])


def _backtests(proposal: Proposal, runs: RunTable, group: str, seed: int,
               cache_dir: Path | None, tell: ProgressFn) -> dict[str, Any]:
    """The trust section: backtests of the Bayesian fit and of the Huber+bootstrap baseline."""
    bt = proposal.backtest
    if not bt.enabled:
        return {"status": "disabled in the proposal ([backtest] enabled = false)"}
    spec = load_spec(proposal.families[0])
    out: dict[str, Any] = {"status": "ok", "holdout_by": bt.holdout_by,
                           "holdout_top": bt.holdout_top, "model": spec.name}
    kw = {"holdout_by": bt.holdout_by, "holdout_top": bt.holdout_top, "seed": seed,
          "cache_dir": cache_dir, "tell": tell}
    settings = {**_fit_settings(proposal), **{k: v for k, v in (
        ("chains", bt.chains), ("draws", bt.draws), ("tune", bt.tune)) if v is not None}}
    tell(f"backtest: refit {spec.name} without the top {bt.holdout_top} level(s) of "
         f"{bt.holdout_by}")
    try:
        out["bayes"] = _cached_backtest(runs, spec, method="nuts", settings=settings, **kw)
    except BayesScalingError as exc:
        return {"status": f"not run: {exc}"}
    if not bt.baseline:
        out["baseline"] = {"status": "disabled in the proposal ([backtest] baseline = false)"}
        return out
    if runs.n_groups > 1:
        if group == NEW_GROUP:
            out["baseline"] = {"status": "not run: the Huber baseline fits one group, and the "
                                         "plan is for an unseen group"}
            return out
        runs = runs.subset(np.asarray(runs.group_index) == runs.group_names.index(group))
    tell("backtest: Huber + bootstrap baseline (Hoffmann et al. 2022; Besiroglu et al. 2024)")
    try:
        out["baseline"] = {"status": "ok", **_cached_backtest(
            runs, spec, method="huber-bootstrap", settings={}, **kw)}
    except BayesScalingError as exc:
        out["baseline"] = {"status": f"not run: {exc}"}
    return out


def _diag(fit_: ScalingFit) -> dict[str, Any]:
    d = fit_.diagnostics
    return {"passed": d.passed, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail, "divergences": d.divergences, "chains": d.chains,
            "draws": d.draws, "backend": d.backend, "seed": d.seed,
            "sampling_seconds": d.sampling_seconds, "problems": list(d.problems),
            "banner": fit_.warning_banner, "calibration": fit_.meta.get("calibration")}


def _priors(spec: ModelSpec) -> dict[str, Any]:
    from bayes_scaling.laws import LAWS

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
    """Kaplan vs Chinchilla by PSIS-LOO (``bayes_scaling.compare``) and the stacking weights."""
    if len(fits) < 2:
        only = next(iter(fits))
        return ({"available": False, "reason": f"the proposal names one law family ({only}); "
                 "name two or more in models.families to compare them"}, {only: 1.0})
    if importlib.util.find_spec("bayes_scaling.compare") is None:
        return ({"available": False, "reason": "not available: bayes_scaling.compare is not "
                 "part of this build, so no ELPD comparison or stacking weights"}, None)
    from bayes_scaling import compare as cmp

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


def _dynamics(plan: Proposal, group: str, seed: int, cache: Path | None,
              tell: ProgressFn) -> dict[str, Any]:
    """The training-dynamics section: the planned run's loss curve, steps, critical batch.

    Included when the proposal asks for it (``[dynamics]``), ``bayes_scaling.dynamics`` is
    part of the build and the plan gives a batch size; otherwise says what is missing.
    """
    dyn = plan.dynamics
    if dyn is None or not dyn.get("enabled", True):
        return {"included": False, "reason": "not requested by this proposal (add a "
                "[dynamics] table with the loss curves of the small runs to include it)"}
    if importlib.util.find_spec("bayes_scaling.dynamics") is None:
        return {"included": False, "reason": "requested, but bayes_scaling.dynamics is not "
                "part of this build: no loss-curve or critical-batch-size prediction"}
    if plan.batch_size is None:
        return {"included": False, "reason": "requested, but plan.batch_size is not given: "
                "the loss curve and the steps depend on the batch size"}
    from bayes_scaling import dynamics as dm

    fit_, prov = _dynamics_fit(plan, seed, cache, tell)
    names = fit_.group_names
    g = group if group in names or group == NEW_GROUP else (
        names[0] if len(names) == 1 else NEW_GROUP)
    n, b, target = plan.n_params, float(plan.batch_size), plan.target_loss
    s_plan = plan.n_tokens / b
    steps = np.unique(np.append(np.geomspace(min(fit_.runs.s.min(), s_plan / 100), s_plan * 2,
                                             CURVE_POINTS), s_plan))
    at = int(np.argmin(np.abs(steps - s_plan)))
    tell("training dynamics: the planned run's loss curve")
    out: dict[str, Any] = {"included": True, "group": g, "model": fit_.spec.name,
                           "batch_size": b, "steps_plan": s_plan, **prov,
                           "final_loss": {}, "curve": {"steps": steps}}
    for band in ("predictive", "law"):
        res = _quiet(dm.predict_curve, fit_, n, b, steps, group=g, band=band, probs=BAND_PROBS,
                     random_seed=seed)
        final = np.asarray(res.draws)[..., at].ravel()
        out["final_loss"][band] = {"p_target": float(np.mean(final <= target)),
                                   **_band(res.summary.iloc[at])}
        out["curve"][band] = {k: res.summary[k].to_numpy()
                              for k in ("median", "lo_50", "hi_50", "lo_90", "hi_90")}
    q = {"steps": dm.steps_needed, "tokens": dm.tokens_needed_at_batch}
    for key, fn in q.items():
        rows = _quiet(fn, fit_, n, target, [b], group=g, probs=BAND_PROBS,
                      random_seed=seed).summary.set_index("quantity")
        for quantity in rows.index:
            r = rows.loc[quantity]
            out[f"{quantity}_needed" if quantity == key else quantity] = {
                "p_unreachable": float(r["p_unreachable"]), **_band(r)}
    bc = _quiet(dm.critical_batch_size, fit_, [target], group=g, probs=BAND_PROBS,
                random_seed=seed).summary.iloc[0]
    out["b_crit"] = _band(bc)
    out["batch_over_b_crit"] = b / float(bc["median"])
    out["diagnostics"] = _diag(fit_)
    return out


def _dynamics_fit(plan: Proposal, seed: int, cache: Path | None,
                  tell: ProgressFn) -> tuple[ScalingFit, dict[str, Any]]:
    """The curve-law fit: a saved one (``dynamics.fit``) or one fitted to ``dynamics.curves``."""
    from bayes_scaling import dynamics as dm

    dyn = plan.dynamics or {}
    if "fit" in dyn:
        fit_ = ScalingFit.load(dyn["fit"])
        if fit_.spec.law not in dm.DYNAMICS_LAWS:
            raise plan.error("dynamics.fit", f"{dyn['fit']} is a fit of law {fit_.spec.law!r}, "
                             "not a curve law (fit one with --model dynamics)")
        return fit_, {"fit_file": shown_path(dyn["fit"]), "reused": True}
    from bayes_scaling.datasets import fetch, load_registry

    src = dyn["curves"]
    path = fetch(src) if not Path(src).exists() and src in load_registry() else src
    curves = dm.load_curves(path, **({"group_col": dyn["group_col"]}
                                     if "group_col" in dyn else {}))
    fit_, prov = _quiet(obtain_fit, load_spec(dyn.get("model", "dynamics")), curves,
                        settings=_fit_settings(plan), seed=seed, cache_dir=cache,
                        tell=tell, method="dynamics")
    return fit_, {"fit_file": prov["file"], "reused": prov["reused"],
                  "curves": shown_path(path), "curves_sha256": sha256_of(path)}


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


# ------------------------------------------------------------------------------ the builder
def build_risk(
    proposal: Proposal,
    *,
    fits: Mapping[str, ScalingFit] | None = None,
    random_seed: int | None = None,
    on_progress: ProgressFn | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Every number (and figure array) of the risk report of ``proposal``, JSON-ready.

    Parameters
    ----------
    proposal
        A validated :class:`~bayes_scaling.proposal.Proposal`.
    fits
        Fits to use per family (keys as in ``proposal.families``); must be fitted on the
        proposal's runs. Families not given are fitted (or read from ``cache_dir``).
    random_seed
        Seed of every random step (default: the proposal's ``seed``). The verdict's P(target)
        is ``mean(predict_loss(fit, N, D, band=..., random_seed=seed).draws <= target)``.
    on_progress
        Called with one line per step (fits, backtests, comparison).
    cache_dir
        Folder of saved fits, ``<model>-<spec_hash[:12]>-<data_hash[:12]>.nc``: reused when the
        spec, data and sampler settings match, written otherwise. ``None``: no caching.

    Returns
    -------
    dict
        Sections ``proposal``, ``plan``, ``verdict`` (P(target) and the loss bands, per family
        and averaged), ``tokens_needed``, ``alternative``, ``extrapolation``, ``trust``,
        ``convergence``, ``gate``, ``priors``, ``constants``, ``comparison``, ``weights``,
        ``dynamics``, ``patterns`` (scaling-pattern findings, :mod:`bayes_scaling.diagnose`),
        ``next_run`` (candidate runs ranked by :mod:`bayes_scaling.nextrun`), ``provenance``,
        ``warnings``, ``seeds`` and ``figures`` (plot arrays).
    """
    tell = on_progress or (lambda _m: None)
    seed = int(proposal.seed if random_seed is None else random_seed)
    cache = Path(cache_dir) if cache_dir is not None else None
    runs, files = load_proposal_runs(proposal)
    group = _group(proposal, runs)
    fits_used, fit_prov = _all_fits(proposal, runs, fits, seed, cache, tell)
    plan = _plan(proposal, fits_used, group, seed)
    n, d, c, target = plan.n_params, plan.n_tokens, plan.flops, plan.target_loss
    tell("querying the posterior at the plan")
    comparison, weights = _comparison(fits_used, runs, group, d / n, seed, tell)
    verdict = {fam: _p_target(f, n, d, target, group, seed) for fam, f in fits_used.items()}
    tok, tok_draws = {}, {}
    for fam, f in fits_used.items():
        tok[fam], tok_draws[fam] = _tokens(f, n, target, group, seed)
    row_fns = _row_fns(fits_used, weights, c, target, group, seed)
    grids = {fam: np.array([row_fns[fam](float(k)) for k in BUDGET_DECADES])
             for fam in fits_used}
    if "average" in row_fns:
        grids["average"] = sum(weights[f] * grids[f] for f in weights)  # type: ignore[index]
    risk: dict[str, Any] = {
        "schema": "bayes_scaling.risk/1",
        "title": plan.title, "name": plan.name, "description": plan.description,
        "proposal": plan.to_dict(),
        "plan": {"n_params": n, "n_tokens": d, "flops": c, "target_loss": target,
                 "tokens_per_param": d / n, "batch_size": plan.batch_size,
                 "steps": d / plan.batch_size if plan.batch_size else None,
                 "split": plan.split, "group": group},
        "families": list(fits_used),
        "headline": "average" if weights and len(fits_used) > 1 else plan.families[0],
        "seeds": {"query": seed, "fits": {k: v.meta.get("seed") for k, v in fits_used.items()}},
        "verdict": {"families": verdict, "average": _average(verdict, weights, fits_used, plan,
                                                             group, seed)},
        "tokens_needed": {"families": tok, "average": _tok_average(tok, tok_draws, weights, n,
                                                                   seed)},
        "alternative": _alternatives(fits_used, row_fns, grids, weights, plan, group, seed),
        "extrapolation": _extrapolation(runs, n, d),
        "comparison": comparison,
        "weights": weights,
        "dynamics": _dynamics(plan, group, seed, cache, tell),
        "priors": {fam: _priors(f.spec) for fam, f in fits_used.items()},
        "constants": {fam: _constants(f) for fam, f in fits_used.items()},
    }
    risk["trust"] = _backtests(plan, runs, group, seed, cache, tell)
    risk["convergence"] = {fam: _diag(f) for fam, f in fits_used.items()}
    risk["gate"] = {"max_rhat": MAX_RHAT, "min_ess": MIN_ESS, "max_divergences": MAX_DIVERGENCES}
    risk["provenance"] = _provenance(plan, runs, files, fits_used, fit_prov, seed)
    risk["patterns"], risk["next_run"] = _patterns(fits_used[plan.families[0]], plan, group,
                                                    seed, tell)
    risk["warnings"] = _warnings(risk, fits_used)
    risk["figures"] = {
        "runs": _runs_points(runs),
        "curve": {fam: _curve(f, runs, n, d, group, seed) for fam, f in fits_used.items()},
        "grid": {"tokens_per_param": TOKENS_PER_PARAM, "budget_decades": BUDGET_DECADES,
                 "p_target": grids},
    }
    tell("risk numbers ready")
    return jsonable(risk)


def _all_fits(proposal: Proposal, runs: RunTable, fits: Mapping[str, ScalingFit] | None,
              seed: int, cache: Path | None, tell: ProgressFn,
              ) -> tuple[dict[str, ScalingFit], dict[str, dict[str, Any]]]:
    out, prov = {}, {}
    on_bad = "raise" if proposal.fit.strict else "warn"
    for i, fam in enumerate(proposal.families):
        if fits is not None and fam in fits:
            _check_given_fit(proposal, fam, fits[fam], runs)
            out[fam], prov[fam] = fits[fam], {"file": None, "reused": True, "given": True}
            continue
        tell(f"[{i + 1}/{len(proposal.families)}] {fam}")
        out[fam], prov[fam] = _quiet(obtain_fit, load_spec(fam), runs,
                                     settings=_fit_settings(proposal), seed=seed + i,
                                     cache_dir=cache, on_bad=on_bad, tell=tell)
    return out, prov


def _average(verdict: Mapping[str, Any], weights: Mapping[str, float] | None,
             fits: Mapping[str, ScalingFit], plan: Proposal, group: str,
             seed: int) -> dict[str, Any] | None:
    """Model-averaged P(target) (``sum_k w_k P_k``) and bands from the mixture."""
    if not weights or len(fits) < 2:
        return None
    from bayes_scaling.compare import averaged_predict_loss

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


def _constants(fit_: ScalingFit) -> list[dict[str, Any]]:
    from bayes_scaling.report import constants_table

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
    """Scaling-pattern findings (:mod:`bayes_scaling.diagnose`) of the primary family's fit, and
    the ranking of candidate next runs (:mod:`bayes_scaling.nextrun`) for the plan."""
    from bayes_scaling import diagnose, nextrun

    tell("scaling-pattern checks and the next-run ranking")
    n, d = plan.n_params, plan.n_tokens
    return (diagnose.report_section(fit_, (n, d)),
            nextrun.report_section(fit_, (n, d, plan.target_loss), group=group,
                                   random_seed=seed))


__all__ = ["build_risk", "cache_path", "jsonable", "load_proposal_runs", "obtain_fit"]
