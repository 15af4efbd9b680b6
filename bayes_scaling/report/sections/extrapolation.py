"""Extrapolation: how far the plan lies past the largest run, and from the runs' support.

Per axis, the decades past the largest run; then the one distance the predictive band uses
(:func:`bayes_scaling.data.support.decades_outside`: outside the runs' convex hull in
log N x log D, combined with the compute past the largest budget), the discrepancy learned for it
(the primary fit's ``meta.calibration``), the prior it started from and that prior's
leave-one-ladder-out validation: how far held-out runs lay when the bands were checked, so a
reader sees whether the plan lies inside the checked range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import DISTANCE, decades_outside
from bayes_scaling.fitting.discrepancy_prior import prior_provenance
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import drift_columns, fit_box
from bayes_scaling.report.blocks import Block, Num, Parts, h2, para, primary_family, table
from bayes_scaling.report.context import Context, Section


def _extrapolation(runs: RunTable, n: float, d: float) -> dict[str, Any]:
    """Signed decades from the largest run to the plan, per axis, and the runs' ranges."""
    r = runs.range_summary()
    c = FLOPS_PER_PARAM_TOKEN * n * d
    axes = {"n_params": (n, r["n_max"], r["n_min"]), "n_tokens": (d, r["d_max"], r["d_min"]),
            "flops": (c, r["flops_max"], r["flops_min"])}
    return {k: {"plan": v, "largest_run": hi, "smallest_run": lo,
                "decades_past_largest": float(np.log10(v / hi))}
            for k, (v, hi, lo) in axes.items()}


def _support(fit: ScalingFit, n: float, d: float) -> dict[str, Any]:
    """The plan's distance from the fit's support, the discrepancy and its prior's provenance."""
    far = decades_outside(fit_box(fit), [n], [d])
    out: dict[str, Any] = {"measure": DISTANCE, "distance": float(far["distance"][0]),
                           "outside_hull": float(far["hull"][0]),
                           "compute_past": float(far["compute"][0]),
                           "calibration": None, "prior": None, "drift": None}
    if "kappa" not in fit.posterior:
        return out
    cal = dict(fit.meta.get("calibration") or {})
    cal.setdefault("kappa_mean", float(fit.posterior["kappa"].mean()))
    if "tau0" in fit.posterior:
        cal.setdefault("tau0_mean", float(fit.posterior["tau0"].mean()))
    for k in ("tau0_shape", "kappa_shape"):
        if k in fit.posterior:
            cal.setdefault(f"{k}_mean", float(fit.posterior[k].mean()))
    out["calibration"] = {k: cal.get(k) for k in (
        "tau0_mean", "kappa_mean", "n_heldout", "n_refits", "max_distance", "prior", "distance")}
    if cal.get("kappa_shape_mean") is not None:  # per kind of extrapolation
        out["calibration"].update({k: cal[k] for k in ("tau0_shape_mean", "kappa_shape_mean")})
    if str(cal.get("prior", "")).startswith("cross-ladder"):
        out["prior"] = prior_provenance()
    if cal.get("drift"):  # the signed drift per part and how far it moves the plan's median
        shift = drift_columns(fit, far).iloc[0]
        out["drift"] = {"shift_pct": float(shift["drift_pct"]),
                        "shift_lo_pct": float(shift["drift_lo_pct"]),
                        "shift_hi_pct": float(shift["drift_hi_pct"]),
                        **{p: {"value": float(d["value"]), "sd": float(d["sd"])}
                           for p, d in cal["drift"].items()}}
    return out


def numbers(ctx: Context) -> dict[str, Any]:
    """``extrapolation``: the plan and the runs' range in N, D and C; the plan's distance from
    the runs' support with the discrepancy and the prior behind the predictive band."""
    ex = _extrapolation(ctx.runs, ctx.n, ctx.d)
    ex["support"] = _support(ctx.fits[ctx.plan.families[0]], ctx.n, ctx.d)
    return {"extrapolation": ex}


def _support_parts(risk: Mapping[str, Any]) -> list[Block]:
    sup = risk["extrapolation"].get("support")
    if not sup:
        return []
    s = ("extrapolation", "support")
    out = [para("Distance of the plan from the runs' support: ", Num((*s, "distance"), "decades"),
                " decades (outside the runs' convex hull in log N × log D: ",
                Num((*s, "outside_hull"), "decades"), "; compute past the largest run: ",
                Num((*s, "compute_past"), "decades"), "). This is the distance the predictive "
                "band's extrapolation discrepancy grows with.")]
    cal = sup.get("calibration")
    if not cal:
        return [*out, para("This fit carries no extrapolation discrepancy (calibrate=False): its "
                           "predictive band is the law band plus run noise only.", css="bad")]
    c = (*s, "calibration")
    if "kappa_shape_mean" in cal:
        kinds: Parts = [f"Discrepancy of {primary_family(risk)}, per kind of extrapolation: "
                        "N and D scaled up past the runs τ0 = ", Num((*c, "tau0_mean"), "small"),
                        " plus κ = ", Num((*c, "kappa_mean"), "small"), " per decade; a tokens-"
                        "per-parameter ratio no run had τ0 = ", Num((*c, "tau0_shape_mean"),
                                                                    "small"),
                        " plus κ = ", Num((*c, "kappa_shape_mean"), "small"),
                        " per decade (sd of log loss)"]
    else:
        kinds = [f"Discrepancy of {primary_family(risk)}: τ0 = ", Num((*c, "tau0_mean"),
                 "small"), " plus κ = ", Num((*c, "kappa_mean"), "small"),
                 " per decade (sd of log loss)"]
    parts: Parts = [*kinds, ", prior: ",
                    str(cal.get("prior") or "not recorded"),
                    "; updated by ", Num((*c, "n_heldout"), "int"), " held-out runs in ",
                    Num((*c, "n_refits"), "int"), " rolling-origin refits of this ladder, the "
                    "farthest ", Num((*c, "max_distance"), "decades"), " decades from its support."]
    out.append(para(*parts))
    if sup.get("drift"):
        dr = (*s, "drift")
        out.append(para(
            "Signed drift (the mean error of extrapolations of each kind, this ladder's own "
            "rolling-origin slope shrunk toward the public ladders'; + = runs land above the "
            "law): ", Num((*dr, "scale", "value"), "small"), " ± ", Num((*dr, "scale", "sd"),
                                                                       "small"),
            " per decade of N and D scaled up, ", Num((*dr, "shape", "value"), "small"), " ± ",
            Num((*dr, "shape", "sd"), "small"), " per decade off the runs' tokens per "
            "parameter (log loss). At the plan it moves the predictive median by ",
            Num((*dr, "shift_pct"), "pcterr"), " (90% band of the drift: ",
            Num((*dr, "shift_lo_pct"), "pcterr"), " to ", Num((*dr, "shift_hi_pct"), "pcterr"),
            ")."))
    prior = sup.get("prior")
    val = (prior or {}).get("validation")
    if val:
        v = (*s, "prior", "validation")
        out.append(para(
            "That prior was learned from ", Num((*s, "prior", "n_errors"), "int"),
            " rolling-origin errors of ", Num((*s, "prior", "n_ladders"), "int"),
            " public ladders and checked leave-one-ladder-out (", str(val.get("method", "")),
            "): the 90% band held ", Num((*v, "cov90"), "pct"), " and the 50% band ",
            Num((*v, "cov50"), "pct"), " of ", Num((*v, "n_heldout"), "int"),
            " held-out runs; the lowest ladder held ", Num((*v, "min_ladder_cov90"), "pct"),
            " at 90%. Those runs lay at most ", Num((*v, "max_distance"), "decades"),
            " decades from their training support."))
        if sup["distance"] > float(val.get("max_distance", np.inf)):
            out.append(para("The plan lies farther from the runs than any checked held-out run: "
                             "the band's width there is the same form extrapolated, not a "
                             "measured calibration.", css="bad"))
    return out


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The distance table and the figure of the runs, the bands and the plan."""
    rows = []
    for axis, label, kind in (("n_params", "parameters N", "params"),
                              ("n_tokens", "tokens D", "tokens"), ("flops", "compute C", "flops")):
        b = ("extrapolation", axis)
        rows.append([[label], [Num((*b, "smallest_run"), kind)], [Num((*b, "largest_run"), kind)],
                     [Num((*b, "plan"), kind)], [Num((*b, "decades_past_largest"), "decades")]])
    return [h2("Extrapolation"),
            para("How far the plan lies past the largest run, in decades (log10 of the ratio)."),
            table(["", "smallest run", "largest run", "plan", "decades past the largest"],
                   rows),
            *_support_parts(risk),
            Block("figure", text="extrapolation",
                  caption=f"Left: runs and the bands of {primary_family(risk)} along the "
                          "plan's tokens per parameter, the plan (star, 90% predictive) and "
                          "the target. Right: the runs in (N, D), the plan and the best split "
                          "of its budget.")]


SECTION = Section(keys=("extrapolation",), numbers=numbers, blocks=blocks)
