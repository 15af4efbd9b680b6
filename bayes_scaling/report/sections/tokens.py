"""Tokens needed at the planned size to reach the target, per family and model-averaged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_scaling.fitting.families import quantile_average
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import tokens_needed
from bayes_scaling.report.blocks import Block, Num, h2, interval_parts, para, table
from bayes_scaling.report.common import BAND_PROBS, quiet
from bayes_scaling.report.context import Context, Section


def _tokens(fit_: ScalingFit, n: float, target: float, group: str, seed: int,
            ) -> tuple[dict[str, Any], np.ndarray]:
    res = quiet(tokens_needed, fit_, [n], target, group=group, probs=BAND_PROBS,
                random_seed=seed)
    row = res.summary.iloc[0]
    rec = {"p_unreachable": float(row["p_unreachable"]), "median": float(row["median"]),
           "lo_50": float(row["lo_50"]), "hi_50": float(row["hi_50"]),
           "lo_90": float(row["lo_90"]), "hi_90": float(row["hi_90"]),
           "median_if_reachable": float(row["median_if_reachable"]),
           "median_tokens_per_param": float(row["median"]) / n}
    return rec, np.asarray(res.draws).ravel()


def _average(samples: Mapping[str, np.ndarray], weights: Mapping[str, float],
             seed: int) -> np.ndarray:
    """The families' average draws: their weighted quantile average (as the queries'), with
    an unreachable target (infinite draws) pooled linearly."""
    return quantile_average(samples, weights, np.random.default_rng([seed, 17]))


def _quantiles(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    q = np.where(np.isnan(q), np.inf, q)
    return {"lo_90": float(q[0]), "lo_50": float(q[1]), "median": float(q[2]),
            "hi_50": float(q[3]), "hi_90": float(q[4])}


def _tok_average(tok: Mapping[str, Any], draws: Mapping[str, np.ndarray],
                 weights: Mapping[str, float] | None, n: float, seed: int,
                 ) -> dict[str, Any] | None:
    if not weights or len(tok) < 2:
        return None
    q = _quantiles(_average(draws, weights, seed))
    return {"p_unreachable": float(sum(weights[k] * tok[k]["p_unreachable"] for k in weights)),
            **q, "median_tokens_per_param": q["median"] / n}


def numbers(ctx: Context) -> dict[str, Any]:
    """``tokens_needed``: per family and (with stacking weights) for the mixture."""
    tok, draws = {}, {}
    for fam, f in ctx.fits.items():
        tok[fam], draws[fam] = _tokens(f, ctx.n, ctx.target, ctx.group, ctx.seed)
    return {"tokens_needed": {"families": tok, "average": _tok_average(
        tok, draws, ctx.entry("weights"), ctx.n, ctx.seed)}}


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The tokens-needed table."""
    rows = []
    tn = risk["tokens_needed"]
    names = (["model average"] if tn["average"] else []) + list(risk["families"])
    for label in names:
        b = ("tokens_needed", "average") if label == "model average" else \
            ("tokens_needed", "families", label)
        rows.append([[label], [Num((*b, "median"), "tokens")], interval_parts(b, 50, "tokens"),
                     interval_parts(b, 90, "tokens"), [Num((*b, "p_unreachable"), "prob")],
                     [Num((*b, "median_tokens_per_param"), "ratio")]])
    return [h2("Tokens needed at the planned size"),
            para("Training tokens for the law's mean loss at N = ",
                 Num(("plan", "n_params"), "params"), " to reach ",
                 Num(("plan", "target_loss"), "loss"), " nats/token (law band). "
                 "Unreachable: the target lies below the size's floor (its loss with infinite "
                 "data), so no number of tokens suffices; ∞ in an interval means that."),
            table(["", "median", "50% interval", "90% interval", "P(unreachable)",
                   "tokens per parameter (median)"], rows)]


SECTION = Section(keys=("tokens_needed",), numbers=numbers, blocks=blocks)
