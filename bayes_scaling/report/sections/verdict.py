r"""The verdict and the predicted loss of the planned run.

:math:`P(L \le L^*)` is the fraction of posterior *predictive* draws of the planned run's loss
at or below the target (where one real run would land), and the same fraction of *law* draws
(the law's mean only), per family and model-averaged with the stacking weights: the same
fraction of the families' average draws (their weighted quantile average,
:func:`~bayes_scaling.evaluate.families.averaged_predict_loss`), bands from them too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bayes_scaling.evaluate.families import averaged_predict_loss
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import predict_loss
from bayes_scaling.report.blocks import (
    LIKELY,
    UNLIKELY,
    Block,
    Num,
    Parts,
    h2,
    headline_path,
    interval_parts,
    lookup,
    para,
    table,
)
from bayes_scaling.report.common import BAND_PROBS, band_entry, quiet
from bayes_scaling.report.context import Context, Section


def _p_target(fit_: ScalingFit, n: float, d: float, target: float, group: str,
              seed: int) -> dict[str, Any]:
    """P(loss <= target) from predictive and law draws, and the two bands of the loss."""
    out: dict[str, Any] = {}
    for kind in ("predictive", "law"):
        res = quiet(predict_loss, fit_, [n], [d], group=group, band=kind, probs=BAND_PROBS,
                    random_seed=seed)
        draws = np.asarray(res.draws).ravel()
        out[kind] = {"p_target": float(np.mean(draws <= target)), **band_entry(res.summary.iloc[0])}
    return out


def _average(ctx: Context, weights: Mapping[str, float] | None) -> dict[str, Any] | None:
    """Model-averaged P(target) and bands, from the families' average draws."""
    if not weights or len(ctx.fits) < 2:
        return None
    out: dict[str, Any] = {"weights": dict(weights)}
    for kind in ("predictive", "law"):
        res = quiet(averaged_predict_loss, ctx.fits, weights, [ctx.n], [ctx.d],
                    band=kind, probs=BAND_PROBS, random_seed=ctx.seed, group=ctx.group)
        p = float(np.mean(np.asarray(res.draws).ravel() <= ctx.target))
        out[kind] = {"p_target": p, **band_entry(res.summary.iloc[0])}
    return out


def numbers(ctx: Context) -> dict[str, Any]:
    """``verdict``: P(target) and the loss bands per family and model-averaged."""
    weights = ctx.entry("weights")
    ctx.tell("querying the posterior at the plan")
    verdict = {fam: _p_target(f, ctx.n, ctx.d, ctx.target, ctx.group, ctx.seed)
               for fam, f in ctx.fits.items()}
    return {"verdict": {"families": verdict, "average": _average(ctx, weights)}}


def _verdict_word(p: float) -> tuple[str, str]:
    if p >= LIKELY:
        return "likely to reach the target", "good"
    if p >= UNLIKELY:
        return "uncertain to reach the target", "mid"
    return "unlikely to reach the target", "bad"


def _verdict_blocks(risk: Mapping[str, Any]) -> list[Block]:
    hp = headline_path(risk)
    p = lookup(risk, (*hp, "predictive", "p_target"))
    word, css = _verdict_word(p)
    who = "model average" if risk["headline"] == "average" else risk["headline"]
    out = [h2("Verdict"), Block("box", css=css, parts=[
        "P(loss ≤ ", Num(("plan", "target_loss"), "loss"), ") = ",
        Num((*hp, "predictive", "p_target"), "prob"),
        f" for one run of this plan ({who}, predictive band): {word}.",
        " The law's mean alone (law band) reaches it with P = ",
        Num((*hp, "law", "p_target"), "prob"), "."])]
    out.append(para("Predictive band: where one real run would land (the law's uncertainty, "
                    "run-to-run noise, and a discrepancy that grows with the distance of "
                    "extrapolation, learned inside the ladder). Law band: the spread of the "
                    "law's mean only. P is the fraction of posterior draws at or below the "
                    "target; the model average is the stacking-weighted sum over families."))
    rows = []
    if risk["verdict"]["average"]:
        rows.append([["model average"], [Num(("verdict", "average", "predictive", "p_target"),
                                             "prob")],
                     [Num(("verdict", "average", "law", "p_target"), "prob")], ["—"]])
    for fam in risk["families"]:
        base = ("verdict", "families", fam)
        w = [Num(("weights", fam), "weight")] if risk.get("weights") else ["n/a"]
        rows.append([[fam], [Num((*base, "predictive", "p_target"), "prob")],
                     [Num((*base, "law", "p_target"), "prob")], w])
    out.append(table(["", "P(target), predictive", "P(target), law band", "stacking weight"],
                     rows))
    return out


def _band_rows(base_of: Callable[[str], tuple], names: Sequence[str],
               kind: str) -> list[list[Parts]]:
    rows = []
    for label in names:
        base = base_of(label)
        for which in ("predictive", "law"):
            b = (*base, which)
            rows.append([[label], [which], [Num((*b, "median"), kind)], interval_parts(b, 50, kind),
                         interval_parts(b, 90, kind)])
    return rows


def _loss_blocks(risk: Mapping[str, Any]) -> list[Block]:
    names = (["model average"] if risk["verdict"]["average"] else []) + list(risk["families"])

    def base(label: str) -> tuple:
        return (("verdict", "average") if label == "model average"
                else ("verdict", "families", label))

    return [h2("Predicted loss of the planned run"),
            para("Loss in nats/token at N = ", Num(("plan", "n_params"), "params"), ", D = ",
                 Num(("plan", "n_tokens"), "tokens"), "."),
            table(["", "band", "median", "50% interval", "90% interval"],
                  _band_rows(base, names, "loss"))]


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The verdict box and table, then the predicted loss table."""
    return _verdict_blocks(risk) + _loss_blocks(risk)


SECTION = Section(keys=("verdict",), numbers=numbers, blocks=blocks)
