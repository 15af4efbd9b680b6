"""Trust: backtests on these runs, of the Bayesian fit and of the Huber+bootstrap baseline.

The steps of :func:`bayes_scaling.evaluate.backtest.backtest` (hold out the largest levels,
refit on the rest, score the held-out runs), with the refits saved and reused like the report's
other fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayes_scaling.constants import DEFAULT_PROBS, NEW_GROUP
from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import BacktestResult, score, split_top
from bayes_scaling.model.spec import ModelSpec, load_spec
from bayes_scaling.report.blocks import Block, Num, Parts, h2, interval_parts, para, table
from bayes_scaling.report.common import diag, quiet
from bayes_scaling.report.context import Context, Section
from bayes_scaling.report.fits import FitMethod, fit_settings, obtain_fit
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.types import ProgressFn


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
        rec["diagnostics"] = diag(res.fit)
    return rec


def _cached_backtest(runs: RunTable, spec: ModelSpec, *, method: FitMethod, holdout_by: str,
                     holdout_top: int, settings: Mapping[str, Any], seed: int,
                     cache_dir: Path | None, tell: ProgressFn) -> dict[str, Any]:
    """The steps of :func:`~bayes_scaling.evaluate.backtest.backtest`, the refit reused."""
    rng = np.random.default_rng(seed)
    train, test = split_top(runs, holdout_by=holdout_by, holdout_top=holdout_top)
    fit_seed = int(rng.integers(2**31 - 1))
    fitted, prov = obtain_fit(spec, train, settings=settings, seed=fit_seed, cache_dir=cache_dir,
                              tell=tell, method=method)
    res = quiet(score, fitted, test, probs=DEFAULT_PROBS, random_seed=rng)
    res.summary.update({"holdout_by": holdout_by, "holdout_top": holdout_top,  # type: ignore[union-attr]
                        "seed": fit_seed})
    return _bt_record(res, prov["reused"], prov["file"])


def _backtests(proposal: Proposal, runs: RunTable, group: str, seed: int,
               cache_dir: Path | None, tell: ProgressFn,
               spec: ModelSpec | None = None) -> dict[str, Any]:
    """The trust section: backtests of the Bayesian fit and of the Huber+bootstrap baseline.

    ``spec``: the first family's (default: ``proposal.families[0]`` loaded).
    """
    bt = proposal.backtest
    if not bt.enabled:
        return {"status": "disabled in the proposal ([backtest] enabled = false)"}
    spec = spec or load_spec(proposal.families[0])
    out: dict[str, Any] = {"status": "ok", "holdout_by": bt.holdout_by,
                           "holdout_top": bt.holdout_top, "model": spec.name}
    kw = {"holdout_by": bt.holdout_by, "holdout_top": bt.holdout_top, "seed": seed,
          "cache_dir": cache_dir, "tell": tell}
    settings = {**fit_settings(proposal), **{k: v for k, v in (
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


def numbers(ctx: Context) -> dict[str, Any]:
    """``trust``: the two backtests (or why they were not run)."""
    first = ctx.fits[ctx.plan.families[0]]  # its spec: the one fitted (models.fit too)
    return {"trust": _backtests(ctx.plan, ctx.runs, ctx.group, ctx.seed, ctx.cache, ctx.tell,
                                first.spec)}


def _plan_distance(risk: Mapping[str, Any]) -> Parts:
    """The plan's distance from the ladder's support, in the same measure (older reports:
    the decades of compute past the largest run)."""
    if (risk.get("extrapolation") or {}).get("support"):
        return [Num(("extrapolation", "support", "distance"), "decades"),
                " decades from the whole ladder's support"]
    return [Num(("extrapolation", "flops", "decades_past_largest"), "decades"),
            " decades of compute past the largest run"]


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """Coverage of both methods, the held-out runs, and their figure."""
    t = risk["trust"]
    out = [h2("Trust: backtest on these runs")]
    if t.get("status") != "ok":
        return [*out, para(f"Backtest {t.get('status')}.", css="bad")]
    out.append(para("The largest ", Num(("trust", "holdout_top"), "int"),
                  f" level(s) of {t['holdout_by']} were held "
                  f"out, {t['model']} was refitted on the rest and predicted them. A calibrated "
                  "method's 90% band holds about 90% of the held-out runs. The held-out runs "
                  "lie at most ", Num(("trust", "bayes", "max_decades_out"), "decades"),
                  " decades from the remaining runs' support (outside their convex hull in "
                  "log N × log D, combined with the compute past the largest run: the distance "
                  "the predictive band grows with); the plan is ",
                  *_plan_distance(risk), "."))
    rows = []
    for key, label in (("bayes", "Bayesian (this report)"),
                       ("baseline", "Huber + bootstrap (Hoffmann/Epoch)")):
        rec = t.get(key) or {}
        if rec.get("status", "ok") != "ok":
            rows.append([[label], [rec["status"]], [], [], [], [], [], []])
            continue
        b = ("trust", key)
        rows.append([[label], [Num((*b, "n_holdout"), "int")],
                     *[[Num((*b, "coverage", c), "pct")] for c in ("50", "80", "90", "95")],
                     [Num((*b, "median_abs_pct_error"), "pcterr")],
                     [Num((*b, "mean_rel_width_90"), "pct")]])
    out.append(table(["method", "held out", "in 50%", "in 80%", "in 90%", "in 95%",
                       "median abs. error", "90% width (rel.)"], rows))
    runs_rows = []
    base_ok = (t.get("baseline") or {}).get("status", "ok") == "ok"
    base_at = {q["run_id"]: j for j, q in enumerate(t["baseline"]["runs"])} if base_ok else {}
    for i, run in enumerate(t["bayes"]["runs"]):
        r = ("trust", "bayes", "runs", i)
        row: list[Parts] = [[run["run_id"]], [Num((*r, "n_params"), "params")],
                            [Num((*r, "n_tokens"), "tokens")], [Num((*r, "observed"), "loss")],
                            [Num((*r, "median"), "loss"), " (",
                             *interval_parts(r, 90, "loss"), ")"]]
        if base_ok:
            j = base_at.get(run["run_id"])
            q = ("trust", "baseline", "runs", j)
            row.append(["not held out"] if j is None else
                       [Num((*q, "median"), "loss"), " (", *interval_parts(q, 90, "loss"), ")"])
        runs_rows.append(row)
    out.append(table(["run", "N", "D", "observed loss", "Bayesian median (90%)",
                       *(["baseline median (90%)"] if base_ok else [])], runs_rows))
    out.append(Block("figure", text="backtest",
                     caption="Held-out runs: observed loss and the 90% predictive intervals "
                             "of both methods, fitted without them."))
    return out


SECTION = Section(keys=("trust",), numbers=numbers, blocks=blocks)
