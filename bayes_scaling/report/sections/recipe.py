"""The alternative recipe: the planned run trained on another group of the same fit.

Optional: included when the proposal names ``runs.alternative_group``. Draw by draw on the
primary family's posterior (:func:`bayes_scaling.query.contrast.contrast_groups`): the loss
difference of the planned (N, D) on the alternative group, the compute multiplier, P(better)
and where the two laws cross.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.contrast import contrast_groups
from bayes_scaling.report.blocks import Block, Num, interval_parts, not_included, para, table
from bayes_scaling.report.context import Context, Section
from bayes_scaling.types import SeedLike

_ROWS = (("multiplier", "predictive"), ("difference", "law"), ("difference", "predictive"))


def recipe_entry(fit: ScalingFit, group: str, alternative: str | None, n_params: float,
                 n_tokens: float, *, random_seed: SeedLike = None) -> dict[str, Any]:
    """The planned run on ``alternative`` against ``group``, JSON-ready.

    Parameters
    ----------
    fit : ScalingFit
        The primary family's fit.
    group, alternative : str
        The plan's group (A) and the alternative recipe (B); ``alternative`` ``None``: the
        section is not included.
    n_params, n_tokens : float
        The planned run.
    random_seed : SeedLike
        Seed of the predictive draws.

    Returns
    -------
    dict
        ``{"included": True, "group", "alternative", "multiplier", "difference_law",
        "difference_predictive" (each median, lo_90, hi_90, p_b_better), "crossing",
        "warnings"}`` or ``{"included": False, "reason": ...}``.
    """
    if alternative is None:
        return {"included": False,
                "reason": "the proposal names no alternative group (runs.alternative_group)"}
    try:
        res = contrast_groups(fit, group, alternative, n_params=n_params, n_tokens=n_tokens,
                              probs=(0.9,), random_seed=random_seed)
    except QueryError as exc:
        return {"included": False, "reason": str(exc)}
    s = res.summary.set_index(["quantity", "band"])
    out: dict[str, Any] = {"included": True, "model": fit.spec.name, "group": group,
                           "alternative": alternative,
                           "warnings": [w for w in res.warnings if w != fit.warning_banner]}
    for q, band in _ROWS:
        r = s.loc[(q, band)]
        out[q if q == "multiplier" else f"{q}_{band}"] = {
            k: float(r[k]) for k in ("median", "lo_90", "hi_90", "p_b_better")}
    x = res.crossing.iloc[0]
    out["crossing"] = {k: float(x[k]) for k in ("c_min", "c_max", "p_cross", "median")}
    return out


def numbers(ctx: Context) -> dict[str, Any]:
    """``recipe``: the plan on the proposal's alternative group, for the first family's fit."""
    ctx.tell("the alternative recipe")
    return {"recipe": recipe_entry(ctx.fits[ctx.plan.families[0]], ctx.group,
                                   ctx.plan.runs.alternative_group, ctx.n, ctx.d,
                                   random_seed=ctx.seed)}


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The multiplier, the loss difference and P(better) of the alternative recipe."""
    rec, out, included = not_included(risk, "recipe", "The alternative recipe")
    if not included:
        return out
    m = ("recipe", "multiplier")
    out.append(para(f"The planned run trained on group {rec['alternative']} instead of "
                    f"{rec['group']} ({rec['model']} fit, predictive band: anchored on each "
                    "group's observed loss nearest the plan). Compute multiplier, the "
                    "plan's compute over the compute with which the alternative reaches the "
                    "plan's loss (above 1: the alternative is worth more compute): ",
                    Num((*m, "median"), "ratio"), " (90%: ", *interval_parts(m, 90, "ratio"),
                    ")."))
    rows = []
    for key, label in (("difference_law", "law"), ("difference_predictive", "predictive")):
        b = ("recipe", key)
        rows.append([[label], [Num((*b, "median"), "small")],
                     interval_parts(b, 90, "small"), [Num((*b, "p_b_better"), "prob")]])
    out.append(table(["band", "loss difference, alternative − plan (nats)", "90% interval",
                      "P(alternative better)"], rows))
    c = ("recipe", "crossing")
    out.append(para("The two laws cross between ", Num((*c, "c_min"), "flops"), " and ",
                    Num((*c, "c_max"), "flops"), " FLOP in a fraction ",
                    Num((*c, "p_cross"), "prob"), " of the posterior draws."))
    return out


SECTION = Section(keys=("recipe",), numbers=numbers, blocks=blocks)
