"""The most informative next run (:mod:`bayes_scaling.evaluate.nextrun`) for the plan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.errors import QueryError
from bayes_scaling.evaluate.drawset import Target
from bayes_scaling.evaluate.nextrun import REPORT_BUDGET_FRACTION, rank_next_runs, ranking_json
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.report.blocks import Block, Num, not_included, para, table
from bayes_scaling.report.context import Context, Section
from bayes_scaling.types import SeedLike


def next_run_entry(fit: ScalingFit, target: Any, *, group: str | None = None,
                   budget: float | None = None, top: int = 8, n_sim: int = 64,
                   n_draws: int | None = 2000, random_seed: SeedLike = None) -> dict[str, Any]:
    """The best ``top`` candidate runs for ``target``, JSON-ready.

    Parameters
    ----------
    fit : ScalingFit
        The primary family's fit.
    target : (n_params, n_tokens, loss) or Target
        The planned run.
    group : str, optional
        The group the plan is predicted for.
    budget : float, optional
        Most FLOPs a candidate may cost; default :data:`REPORT_BUDGET_FRACTION` of the
        target's (a de-risking run, not a second plan).
    top : int, default 8
        Candidates kept.
    n_sim, n_draws : int
        Simulated outcomes per candidate and posterior draws used.
    random_seed : SeedLike
        Seed of the simulation.

    Returns
    -------
    dict
        ``{"included": True, "model": ..., "records": [...], "settings": {...}}``, or
        ``{"included": False, "reason": ...}`` when nothing can be ranked.
    """
    tgt = Target.of(target)
    if budget is None:
        budget = REPORT_BUDGET_FRACTION * FLOPS_PER_PARAM_TOKEN * tgt.n_params * tgt.n_tokens
    try:
        ranked = rank_next_runs(fit, None, target=tgt, budget=budget, group=group, n_sim=n_sim,
                                n_draws=n_draws, random_seed=random_seed)
    except QueryError as exc:
        return {"included": False, "reason": str(exc)}
    return {"included": True, "model": fit.spec.name, **ranking_json(ranked.head(top))}


def numbers(ctx: Context) -> dict[str, Any]:
    """``next_run``: candidate small runs ranked for the first family's fit."""
    def compute() -> dict[str, Any]:
        ctx.tell("the next-run ranking")
        return {"next_run": next_run_entry(ctx.fits[ctx.plan.families[0]],
                                           (ctx.n, ctx.d, ctx.target), group=ctx.group,
                                           random_seed=ctx.seed)}

    return ctx.kept("next_run", compute)


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The band today and the five best candidates."""
    nr, out, included = not_included(risk, "next_run", "The most informative next run")
    if not included:
        return out
    st = ("next_run", "settings")
    out.append(para("Candidate small runs, ranked by how much each would narrow the plan's 90% "
                  "predictive band per FLOP spent (simulated outcomes refitted by importance "
                  "weighting, bayes_scaling.evaluate.nextrun). The band is ",
                  Num((*st, "band_now"), "small"), " nats wide today; candidates cost at most ",
                  Num((*st, "budget"), "flops"), "."))
    rows = []
    for i, _rec in enumerate(nr.get("records", [])[:5]):
        r = ("next_run", "records", i)
        rows.append([[Num((*r, "rank"), "int")], [Num((*r, "n_params"), "params")],
                     [Num((*r, "n_tokens"), "tokens")], [Num((*r, "flops"), "flops")],
                     [Num((*r, "band_after"), "small")],
                     [Num((*r, "reduction_per_eflop"), "const")]])
    if rows:
        out.append(table(["rank", "parameters", "tokens", "compute", "90% band after (nats)",
                           "narrowing per EFLOP (nats)"], rows))
    return out


SECTION = Section(keys=("next_run",), numbers=numbers, blocks=blocks)
