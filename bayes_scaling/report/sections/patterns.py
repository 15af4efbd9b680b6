"""Scaling-pattern checks of the primary family's fit (:mod:`bayes_scaling.evaluate.checks`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.report.blocks import Block, not_included, para, table
from bayes_scaling.report.context import Context, Section


def patterns_entry(fit: ScalingFit, target: tuple[float, float] | None = None) -> dict[str, Any]:
    """The point-fit and posterior checks of ``fit``, JSON-ready.

    Parameters
    ----------
    fit : ScalingFit
        The primary family's fit.
    target : (n_params, n_tokens), optional
        The planned run (the extrapolation check).

    Returns
    -------
    dict
        ``{"included": True, "model": ..., "findings": [...], ...}``, or ``{"included": False,
        "reason": ...}`` for fits the checks do not apply to (curve laws, or too few runs per
        group to fit the law).
    """
    from bayes_scaling.evaluate.checks import diagnose  # lazy: loads ArviZ; rebuilds reuse it

    try:
        res = diagnose(fit, target=target)
    except QueryError as exc:
        return {"included": False, "reason": str(exc)}
    return {"included": True, "model": fit.spec.name, **res.to_json()}


def numbers(ctx: Context) -> dict[str, Any]:
    """``patterns``: the checks of the first family's fit at the plan."""
    def compute() -> dict[str, Any]:
        ctx.tell("scaling-pattern checks")
        return {"patterns": patterns_entry(ctx.fits[ctx.plan.families[0]], (ctx.n, ctx.d))}

    return ctx.kept("patterns", compute)


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """What was checked and the findings."""
    pat, out, included = not_included(risk, "patterns", "Scaling-pattern checks")
    if not included:
        return out
    out.append(para(f"Checks of the runs against the fitted law ({pat['model']}): cold starts, a "
                  "bend or plateau at the largest sizes, outliers, too few sizes, groups whose "
                  "slopes differ (bayes_scaling.evaluate.checks). A warning says the law may not "
                  "extrapolate as the bands assume."))
    rows = [[[f["severity"]], [f["code"]], [f["message"]]] for f in pat.get("findings", [])]
    if rows:
        out.append(table(["severity", "check", "finding"], rows))
    return out


SECTION = Section(keys=("patterns",), numbers=numbers, blocks=blocks)
