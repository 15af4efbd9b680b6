r"""Every number of a compute proposal's risk report, gathered into one JSON-ready dict.

:func:`build_risk` loads the proposal's runs, fits each law family (or reuses saved fits whose
spec and data hashes match), and answers the committee's questions:

- **verdict**: :math:`P(L \le L^*)`, the fraction of posterior *predictive* draws of the planned
  run's loss at or below the target (where one real run would land), and the same fraction of
  *law* draws (the law's mean only), per family and model-averaged with the stacking weights of
  :func:`bayes_scaling.evaluate.compare.compare`: :math:`P_{avg} = \sum_k w_k P_k`;
- predicted loss (median, 50% and 90% bands), tokens needed at the planned size (and
  P(unreachable)), and the compute-optimal alternative: the split of the same FLOPs with the
  highest P(target), the splits with P >= 0.9, and the smallest budget that reaches 0.9;
- extrapolation: decades past the largest run in N, D and C;
- trust: backtests on these runs (the Bayesian fit and the Huber+bootstrap baseline), the
  convergence diagnostics, the priors; Kaplan vs Chinchilla; provenance.

This module loads the runs, obtains the fits (saved ones are reused) and runs the backtest and
dynamics refits; the sections computed from fits in hand are built by
:mod:`bayes_scaling.report.numbers`.

Nothing here imports PyMC unless a fit must be run. The dict's numbers are plain floats (``inf``
written as the string ``"inf"``); ``figures`` holds the arrays the report's plots are drawn from.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import (
    DEFAULT_PROBS,
    FLOPS_PER_PARAM_TOKEN,
    MAX_DIVERGENCES,
    MAX_RHAT,
    MIN_ESS,
    NEW_GROUP,
)
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.errors import BayesScalingError, FitFileError
from bayes_scaling.evaluate.backtest import score, split_top
from bayes_scaling.fitting.fit import seed_int
from bayes_scaling.fitting.result import PACKAGE, ScalingFit, versions
from bayes_scaling.model.spec import ModelSpec, load_spec
from bayes_scaling.query.summarize import jsonable
from bayes_scaling.report.numbers import (
    BAND_PROBS,
    BUDGET_DECADES,
    CURVE_POINTS,
    TOKENS_PER_PARAM,
    _alternatives,
    _average,
    _band,
    _bt_record,
    _comparison,
    _constants,
    _curve,
    _diag,
    _extrapolation,
    _p_target,
    _patterns,
    _priors,
    _provenance,
    _quiet,
    _row_fns,
    _runs_points,
    _tok_average,
    _tokens,
    _warnings,
    sha256_of,
    shown_path,
)
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.types import ProgressFn, SeedLike


# ------------------------------------------------------------------------------ runs and plan
def load_proposal_runs(proposal: Proposal) -> tuple[RunTable, list[dict[str, Any]]]:
    """The proposal's run table and, per input file, its path, sha256 and row count.

    A registry name loads with the registry's loader options (overridden by the proposal's).
    Several files are concatenated; one without a group column becomes the group named after
    its stem.
    """
    from bayes_scaling.data.registry import fetch, load_dataset, load_registry

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


def _plan(proposal: Proposal, fits: Mapping[str, ScalingFit], group: str,
          seed: int) -> Proposal:
    """The proposal with (N, D) set: a FLOP budget alone is split by the first family."""
    if proposal.split != "optimal":
        return proposal
    from bayes_scaling.query.allocate import compute_optimal

    first = fits[proposal.families[0]]
    res = compute_optimal(first, proposal.flops, group=group, random_seed=seed)
    n_opt = float(res.summary.set_index("quantity").loc["n_opt", "median"])
    return proposal.with_plan(n_opt, float(proposal.flops) / (FLOPS_PER_PARAM_TOKEN * n_opt))


# ------------------------------------------------------------------------------ fits
def cache_path(cache_dir: Path, spec: ModelSpec, runs: RunTable, method: str = "nuts") -> Path:
    """The cache path of a fit: ``<cache_dir>/<model>-<spec_hash[:12]>-<data_hash[:12]>.nc``.

    ``<model>.<method>`` for a fit other than NUTS, e.g. the Huber+bootstrap baseline.
    """
    tag = spec.name if method in ("nuts", "dynamics") else f"{spec.name}.{method}"
    return Path(cache_dir) / f"{tag}-{spec.sha256()[:12]}-{runs.fingerprint()[:12]}.nc"


def _reusable(cached: ScalingFit, spec: ModelSpec, runs: RunTable, method: str,
              settings: Mapping[str, Any]) -> bool:
    """Whether a saved fit answers for a new one.

    Same spec, data, method, (NUTS) draws and the same bayes_scaling version (a new version may
    fit or calibrate differently).
    """
    if cached.spec.sha256() != spec.sha256() or cached.runs.fingerprint() != runs.fingerprint():
        return False
    if cached.meta.get("versions", {}).get(PACKAGE) != versions().get(PACKAGE):
        return False
    if method == "huber-bootstrap":
        return cached.method == method
    d = cached.diagnostics
    calibrated = "kappa" in cached.posterior or method == "dynamics"
    asked = cached.meta.get("draws_requested", d.draws)  # a retry may have drawn more
    return (cached.method != "huber-bootstrap" and calibrated
            and (d.chains, asked) == (settings["chains"], settings["draws"]))


def obtain_fit(spec: ModelSpec, runs: Any, *, settings: Mapping[str, Any],
               seed: int, cache_dir: Path | None, on_bad: str = "warn",
               tell: ProgressFn = lambda _m: None,
               method: str = "nuts") -> tuple[ScalingFit, dict[str, Any]]:
    """A saved fit when its spec, data hash and sampler settings match; else a new one (saved).

    ``method`` is ``"nuts"`` (:func:`~bayes_scaling.fitting.fit.fit` with ``settings``),
    ``"huber-bootstrap"`` (:func:`~bayes_scaling.fitting.fit.fit_baseline`) or ``"dynamics"``
    (:func:`~bayes_scaling.query.curves.fit_dynamics` on a curve table). Returns the fit and a
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
                    from bayes_scaling.model.gate import check_convergence

                    check_convergence(cached.diagnostics, on_bad="raise")
                return cached, {"file": shown_path(path), "reused": True}
    from bayes_scaling.fitting.fit import fit, fit_baseline

    if method == "nuts":
        tell(f"fitting {spec.name} on {runs.n_runs} runs ({settings['chains']} chains x "
             f"{settings['draws']} draws)")
        fitted = fit(spec, runs, random_seed=seed, on_bad=on_bad,  # type: ignore[arg-type]
                     on_progress=tell, **settings)
    elif method == "dynamics":
        from bayes_scaling.fitting.dynamics import fit_dynamics

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


# ------------------------------------------------------------------------------ sections that refit
def _cached_backtest(runs: RunTable, spec: ModelSpec, *, method: str, holdout_by: str,
                     holdout_top: int, settings: Mapping[str, Any], seed: int,
                     cache_dir: Path | None, tell: ProgressFn) -> dict[str, Any]:
    """The steps of :func:`bayes_scaling.evaluate.backtest.backtest`, with the refit saved and reused."""
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


def _dynamics(plan: Proposal, group: str, seed: int, cache: Path | None,
              tell: ProgressFn) -> dict[str, Any]:
    """The training-dynamics section: the planned run's loss curve, steps, critical batch.

    Included when the proposal asks for it (``[dynamics]``), ``bayes_scaling.query.curves`` is
    part of the build and the plan gives a batch size; otherwise says what is missing.
    """
    dyn = plan.dynamics
    if dyn is None or not dyn.get("enabled", True):
        return {"included": False, "reason": "not requested by this proposal (add a "
                "[dynamics] table with the loss curves of the small runs to include it)"}
    if importlib.util.find_spec("bayes_scaling.query.curves") is None:
        return {"included": False, "reason": "requested, but bayes_scaling.query.curves is not "
                "part of this build: no loss-curve or critical-batch-size prediction"}
    if plan.batch_size is None:
        return {"included": False, "reason": "requested, but plan.batch_size is not given: "
                "the loss curve and the steps depend on the batch size"}
    from bayes_scaling.query import curves as dm

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
    from bayes_scaling.data.curves import load_curves
    from bayes_scaling.fitting.dynamics import default_target_accept
    from bayes_scaling.laws.curve import DYNAMICS_LAWS

    dyn = plan.dynamics or {}
    if "fit" in dyn:
        fit_ = ScalingFit.load(dyn["fit"])
        if fit_.spec.law not in DYNAMICS_LAWS:
            raise plan.error("dynamics.fit", f"{dyn['fit']} is a fit of law {fit_.spec.law!r}, "
                             "not a curve law (fit one with --model dynamics)")
        return fit_, {"fit_file": shown_path(dyn["fit"]), "reused": True}
    from bayes_scaling.data.registry import fetch, load_registry

    src = dyn["curves"]
    path = fetch(src) if not Path(src).exists() and src in load_registry() else src
    curves = load_curves(path, **({"group_col": dyn["group_col"]}
                                     if "group_col" in dyn else {}))
    settings = _fit_settings(plan)  # curve fits need at least their own target_accept
    settings["target_accept"] = max(settings["target_accept"], default_target_accept(curves))
    fit_, prov = _quiet(obtain_fit, load_spec(dyn.get("model", "dynamics")), curves,
                        settings=settings, seed=seed, cache_dir=cache, tell=tell,
                        method="dynamics")
    return fit_, {"fit_file": prov["file"], "reused": prov["reused"],
                  "curves": shown_path(path), "curves_sha256": sha256_of(path)}


# ------------------------------------------------------------------------------ the builder
def build_risk(
    proposal: Proposal,
    *,
    fits: Mapping[str, ScalingFit] | None = None,
    random_seed: SeedLike = None,
    on_progress: ProgressFn | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Every number (and figure array) of the risk report of ``proposal``, JSON-ready.

    Parameters
    ----------
    proposal
        A validated :class:`~bayes_scaling.report.proposal.Proposal`.
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
        ``dynamics``, ``patterns`` (scaling-pattern findings, :mod:`bayes_scaling.evaluate.checks`),
        ``next_run`` (candidate runs ranked by :mod:`bayes_scaling.evaluate.nextrun`), ``provenance``,
        ``warnings``, ``seeds`` and ``figures`` (plot arrays).
    """
    tell = on_progress or (lambda _m: None)
    seed = int(proposal.seed) if random_seed is None else seed_int(random_seed)
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
        "schema": "bayes_scaling.report.assemble/1",
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


__all__ = ["build_risk", "cache_path", "jsonable", "load_proposal_runs", "obtain_fit"]

