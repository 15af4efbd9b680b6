"""The report's head: the proposal, the plan, the headline family and the warnings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.report.blocks import Block, Num, para
from bayes_scaling.report.context import Context, Section

#: ``report.json``'s schema tag.
REPORT_SCHEMA = "bayes_scaling.report.assemble/1"


def numbers(ctx: Context) -> dict[str, Any]:
    """The proposal, the plan, the families, the headline, the seeds and the warnings."""
    plan, n, d = ctx.plan, ctx.n, ctx.d
    weights = ctx.entry("weights")
    return {
        "schema": REPORT_SCHEMA,
        "title": plan.title, "name": plan.name, "description": plan.description,
        "proposal": plan.to_dict(),
        "plan": {"n_params": n, "n_tokens": d, "flops": plan.flops, "target_loss": ctx.target,
                 "tokens_per_param": d / n, "batch_size": plan.batch_size,
                 "steps": d / plan.batch_size if plan.batch_size else None,
                 "split": plan.split, "group": ctx.group},
        "families": list(ctx.fits),
        "headline": "average" if weights and len(ctx.fits) > 1 else plan.families[0],
        "seeds": {"query": ctx.seed, "fits": {k: v.meta.get("seed") for k, v in ctx.fits.items()}},
        "warnings": _warnings(ctx),
    }


def _warnings(ctx: Context) -> list[str]:
    """Plain-language caveats shown at the top of the report."""
    out = [f"{fam}: {f.warning_banner}" for fam, f in ctx.fits.items() if f.warning_banner]
    ex = ctx.entry("extrapolation")
    c_past = ex["flops"]["decades_past_largest"]
    if c_past > 2:
        out.append(f"the plan lies {c_past:.1f} decades of compute past the largest run: the "
                   "law's form is untested there; the predictive band includes a discrepancy "
                   "term learned inside the ladder, which cannot see failures beyond it")
    trust = ctx.entry("trust")
    bayes = trust.get("bayes") if isinstance(trust, Mapping) else None
    if bayes and c_past > bayes.get("max_decades_out", 0) + 1:
        out.append("the backtest extrapolated far less than the plan does: its coverage is "
                   "evidence only for short extrapolations")
    comparison = ctx.entry("comparison")
    if not comparison.get("available", False) and len(ctx.fits) > 1:
        out.append(f"no model average: {comparison['reason']}")
    for fam, t in ctx.entry("tokens_needed").get("families", {}).items():
        p_unreach = t.get("p_unreachable") if isinstance(t, Mapping) else None
        if isinstance(p_unreach, int | float) and p_unreach > 0.5:
            out.append(f"{fam}: the target is below this size's loss floor in {p_unreach:.0%} of "
                       "posterior draws: most likely unreachable at the planned size, whatever "
                       "the number of tokens")
    out += [f"scaling pattern ({f['code']}): {f['message']}"
            for f in ctx.entry("patterns").get("findings", []) if f["severity"] == "warning"]
    return out


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """Title, description, the plan in one line, and the warnings."""
    plan = ("plan",)
    out = [Block("h1", text=risk["title"])]
    if risk.get("description"):
        out.append(para(risk["description"]))
    out.append(para(
        "Plan: N = ", Num((*plan, "n_params"), "params"), " parameters, D = ",
        Num((*plan, "n_tokens"), "tokens"), " tokens (", Num((*plan, "tokens_per_param"), "ratio"),
        " tokens per parameter), C = 6ND = ", Num((*plan, "flops"), "flops"), " FLOP",
        *(["; batch ", Num((*plan, "batch_size"), "count"), " tokens (",
           Num((*plan, "steps"), "count"), " steps)"] if risk["plan"]["batch_size"] else
          ["; batch size not given"]),
        ". Target: loss ≤ ", Num((*plan, "target_loss"), "loss"),
        f" nats/token on the evaluation set of the runs, group '{risk['plan']['group']}'.",
        css="plan"))
    if risk["plan"]["split"] == "optimal":
        out.append(para("The proposal gave a FLOP budget only: N and D are the posterior-median "
                        f"compute-optimal split of the first family ({risk['families'][0]})."))
    if risk["warnings"]:
        out.append(Block("list", items=[[w] for w in risk["warnings"]], css="warn"))
    return out


SECTION = Section(keys=("schema", "title", "name", "description", "proposal", "plan",
                        "families", "headline", "seeds", "warnings"),
                  numbers=numbers, blocks=blocks)
