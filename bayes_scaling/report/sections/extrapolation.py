"""Extrapolation: how far the plan lies past the largest run, in decades, per axis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.data.runs import RunTable
from bayes_scaling.report.blocks import Block, Num, h2, para, primary_family, table
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


def numbers(ctx: Context) -> dict[str, Any]:
    """``extrapolation``: the plan and the runs' range in N, D and C."""
    return {"extrapolation": _extrapolation(ctx.runs, ctx.n, ctx.d)}


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
            Block("figure", text="extrapolation",
                  caption=f"Left: runs and the bands of {primary_family(risk)} along the "
                          "plan's tokens per parameter, the plan (star, 90% predictive) and "
                          "the target. Right: the runs in (N, D), the plan and the best split "
                          "of its budget.")]


SECTION = Section(keys=("extrapolation",), numbers=numbers, blocks=blocks)
