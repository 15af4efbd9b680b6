"""Training dynamics: the planned run's loss curve, the steps and tokens it needs, B_crit.

Included when the proposal asks for it (``[dynamics]``) and gives a batch size: the curve law
L(N, S, B) (Kaplan et al. 2020 §5) fitted to the small runs' loss curves (or a saved curve fit)
predicts the planned run's curve (:mod:`bayes_scaling.query.curves`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayes_scaling.constants import NEW_GROUP
from bayes_scaling.data.curves import load_curves
from bayes_scaling.data.registry import fetch, load_registry
from bayes_scaling.fitting.dynamics import default_target_accept
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.curve import DYNAMICS_LAWS
from bayes_scaling.model.spec import load_spec
from bayes_scaling.query.curves import (
    critical_batch_size,
    predict_curve,
    steps_needed,
    tokens_needed_at_batch,
)
from bayes_scaling.report.blocks import Block, Num, interval_parts, not_included, para, table
from bayes_scaling.report.common import (
    BAND_PROBS,
    CURVE_POINTS,
    band_entry,
    diag,
    quiet,
    sha256_of,
    shown_path,
)
from bayes_scaling.report.context import Context, Section
from bayes_scaling.report.fits import fit_settings, obtain_fit
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.types import ProgressFn


def _dynamics(plan: Proposal, group: str, seed: int, cache: Path | None,
              tell: ProgressFn) -> dict[str, Any]:
    """The training-dynamics section: the planned run's loss curve, steps, critical batch.

    Included when the proposal asks for it (``[dynamics]``) and the plan gives a batch size;
    otherwise says what is missing.
    """
    dyn = plan.dynamics
    if dyn is None or not dyn.get("enabled", True):
        return {"included": False, "reason": "not requested by this proposal (add a "
                "[dynamics] table with the loss curves of the small runs to include it)"}
    if plan.batch_size is None:
        return {"included": False, "reason": "requested, but plan.batch_size is not given: "
                "the loss curve and the steps depend on the batch size"}
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
    for kind in ("predictive", "law"):
        res = quiet(predict_curve, fit_, n, b, steps, group=g, band=kind, probs=BAND_PROBS,
                     random_seed=seed)
        final = np.asarray(res.draws)[..., at].ravel()
        out["final_loss"][kind] = {"p_target": float(np.mean(final <= target)),
                                   **band_entry(res.summary.iloc[at])}
        out["curve"][kind] = {k: res.summary[k].to_numpy()
                              for k in ("median", "lo_50", "hi_50", "lo_90", "hi_90")}
    q = {"steps": steps_needed, "tokens": tokens_needed_at_batch}
    for key, fn in q.items():
        rows = quiet(fn, fit_, n, target, [b], group=g, probs=BAND_PROBS,
                      random_seed=seed).summary.set_index("quantity")
        for quantity in rows.index:
            r = rows.loc[quantity]
            out[f"{quantity}_needed" if quantity == key else quantity] = {
                "p_unreachable": float(r["p_unreachable"]), **band_entry(r)}
    bc = quiet(critical_batch_size, fit_, [target], group=g, probs=BAND_PROBS,
                random_seed=seed).summary.iloc[0]
    out["b_crit"] = band_entry(bc)
    out["batch_over_b_crit"] = b / float(bc["median"])
    out["diagnostics"] = diag(fit_)
    return out


def _dynamics_fit(plan: Proposal, seed: int, cache: Path | None,
                  tell: ProgressFn) -> tuple[ScalingFit, dict[str, Any]]:
    """The curve-law fit: a saved one (``dynamics.fit``) or one fitted to ``dynamics.curves``."""
    dyn = plan.dynamics or {}
    if "fit" in dyn:
        fit_ = ScalingFit.load(dyn["fit"])
        if fit_.spec.law not in DYNAMICS_LAWS:
            raise plan.error("dynamics.fit", f"{dyn['fit']} is a fit of law {fit_.spec.law!r}, "
                             "not a curve law (fit one with --model dynamics)")
        return fit_, {"fit_file": shown_path(dyn["fit"]), "reused": True}
    src = dyn["curves"]
    path = fetch(src) if not Path(src).exists() and src in load_registry() else src
    curves = load_curves(path, **({"group_col": dyn["group_col"]}
                                     if "group_col" in dyn else {}))
    settings = fit_settings(plan)  # curve fits need at least their own target_accept
    spec = load_spec(dyn.get("model", "dynamics"))
    settings["target_accept"] = max(settings["target_accept"],
                                    default_target_accept(curves, spec.law))
    fit_, prov = quiet(obtain_fit, spec, curves,
                        settings=settings, seed=seed, cache_dir=cache, tell=tell,
                        method="dynamics")
    return fit_, {"fit_file": prov["file"], "reused": prov["reused"],
                  "curves": shown_path(path), "curves_sha256": sha256_of(path)}


def numbers(ctx: Context) -> dict[str, Any]:
    """``dynamics``: the curve, the final loss, steps and tokens needed, B_crit (or why not)."""
    return {"dynamics": _dynamics(ctx.plan, ctx.group, ctx.seed, ctx.cache, ctx.tell)}


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The final loss, what reaching the target takes, B_crit, and the curve's figure."""
    dyn, out, included = not_included(risk, "dynamics", "Training dynamics")
    if not included:
        return out
    b = ("dynamics",)
    fl = (*b, "final_loss")
    out.append(para(f"The curve law L(N, S, B) ({dyn['model']}; Kaplan et al. 2020 §5, Su et al. "
                  "2024), fitted to the loss curves of the small runs, predicts the planned "
                  "run's curve at batch B = ", Num((*b, "batch_size"), "count"),
                  " tokens over S = D/B = ", Num((*b, "steps_plan"), "count"),
                  f" steps (group '{dyn['group']}'). Loss at the last step: ",
                  Num((*fl, "predictive", "median"), "loss"), " (90% predictive: ",
                  *interval_parts((*fl, "predictive"), 90, "loss"), "); P(loss ≤ target) = ",
                  Num((*fl, "predictive", "p_target"), "prob"), " (predictive), ",
                  Num((*fl, "law", "p_target"), "prob"), " (law band)."))
    rows = []
    for key, label, kind in (("steps_needed", "steps at the planned batch", "count"),
                             ("s_min", "fewest steps, any batch (S_min)", "count"),
                             ("tokens_needed", "tokens at the planned batch", "tokens"),
                             ("e_min", "fewest tokens, any batch (E_min)", "tokens")):
        r = (*b, key)
        rows.append([[label], [Num((*r, "median"), kind)], interval_parts(r, 50, kind),
                     interval_parts(r, 90, kind), [Num((*r, "p_unreachable"), "prob")]])
    out.append(table(["to reach the target", "median", "50% interval", "90% interval",
                       "P(unreachable)"], rows))
    out.append(para("Critical batch size at the target loss: B_crit = ",
                  Num((*b, "b_crit", "median"), "count"), " tokens (90%: ",
                  *interval_parts((*b, "b_crit"), 90, "count"), "); the planned batch is ",
                  Num((*b, "batch_over_b_crit"), "ratio"), "× B_crit (above 1: fewer steps, "
                  "more tokens than the balanced choice)."))
    out.append(Block("figure", text="dynamics",
                     caption="Predicted loss curve of the planned run (50%/90% predictive and "
                             "law bands), the target and the planned number of steps."))
    return out


SECTION = Section(keys=("dynamics",), numbers=numbers, blocks=blocks)
