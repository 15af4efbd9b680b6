"""Convergence diagnostics of every fit of the report, and the gate they are held to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.constants import MAX_DIVERGENCES, MAX_RHAT, MIN_ESS
from bayes_scaling.report.blocks import Block, Num, Parts, h2, para, table
from bayes_scaling.report.common import diag
from bayes_scaling.report.context import Context, Section


def numbers(ctx: Context) -> dict[str, Any]:
    """``convergence`` per family and the ``gate``."""
    return {"convergence": {fam: diag(f) for fam, f in ctx.fits.items()},
            "gate": {"max_rhat": MAX_RHAT, "min_ess": MIN_ESS,
                     "max_divergences": MAX_DIVERGENCES}}


def _diag_row(label: str, b: tuple) -> list[Parts]:
    return [[label], [Num((*b, "max_rhat"), "rhat")], [Num((*b, "min_ess_bulk"), "int")],
            [Num((*b, "min_ess_tail"), "int")], [Num((*b, "divergences"), "int")],
            [Num((*b, "chains"), "int"), " × ", Num((*b, "draws"), "int")],
            [Num((*b, "sampling_seconds"), "seconds")], [Num((*b, "passed"), "int")]]


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The gate, one row per fit (the backtest and dynamics refits too), the calibration."""
    rows = [_diag_row(fam, ("convergence", fam)) for fam in risk["families"]]
    bayes = risk["trust"].get("bayes") if isinstance(risk["trust"], Mapping) else None
    if bayes and bayes.get("diagnostics"):
        rows.append(_diag_row(f"{bayes['model']} (backtest refit)",
                              ("trust", "bayes", "diagnostics")))
    if risk["dynamics"].get("included"):
        rows.append(_diag_row(f"{risk['dynamics']['model']} (training dynamics)",
                              ("dynamics", "diagnostics")))
    out = [h2("Convergence diagnostics"),
           para("Gate: r̂ ≤ ", Num(("gate", "max_rhat"), "rhat"), ", bulk and tail ESS ≥ ",
              Num(("gate", "min_ess"), "int"), ", divergent transitions ≤ ",
              Num(("gate", "max_divergences"), "int"), " (Vehtari et al. 2021). A fit that "
              "fails is shown with a warning at the top."),
           table(["fit", "max r̂", "min bulk ESS", "min tail ESS", "divergences",
                   "chains × draws", "sampling s", "passed"], rows)]
    items = []
    for fam in risk["families"]:
        cal = risk["convergence"][fam].get("calibration")
        if cal:
            c = ("convergence", fam, "calibration")
            items.append([f"{fam}: extrapolation discrepancy κ = ",
                          Num((*c, "kappa_mean"), "small"), " sd of log loss per decade, τ0 = ",
                          Num((*c, "tau0_mean"), "small"), ", learned from ",
                          Num((*c, "n_heldout"), "int"), " held-out runs in ",
                          Num((*c, "n_refits"), "int"), " rolling-origin refits inside the "
                          "ladder."])
    if items:
        out.append(Block("list", items=items))
    return out


SECTION = Section(keys=("convergence", "gate"), numbers=numbers, blocks=blocks)
