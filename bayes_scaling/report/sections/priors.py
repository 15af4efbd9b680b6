"""Priors and posterior constants of each law family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.spec import ModelSpec
from bayes_scaling.report.blocks import Block, Num, h2, para, table
from bayes_scaling.report.common import constants_table
from bayes_scaling.report.context import Context, Section


def _priors(spec: ModelSpec) -> dict[str, Any]:
    law = LAWS[spec.law]
    lik = spec.likelihood
    return {
        "model": spec.name, "law": spec.law, "formula": law.formula, "citation": law.citation,
        "description": spec.description,
        "priors": [{"param": p, "prior": pr.describe()} for p, pr in spec.priors.items()],
        "likelihood": {"family": lik.family, "sigma": lik.sigma.describe(),
                       "nu": lik.nu.describe() if lik.nu is not None else None},
        "hierarchy": {"varying": list(spec.hierarchy.varying),
                      "tau": spec.hierarchy.tau.describe(),
                      "parameterization": spec.hierarchy.parameterization},
        "note": "priors on log-scale constants are on the centred scale (the term's loss at "
                "the ladder's geometric-mean size); see the spec file",
    }


def numbers(ctx: Context) -> dict[str, Any]:
    """``priors`` (the spec in words) and ``constants`` (posterior medians, 90%) per family."""
    return {"priors": {fam: _priors(f.spec) for fam, f in ctx.fits.items()},
            "constants": {fam: constants_table(f) for fam, f in ctx.fits.items()}}


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """Per family: formula, likelihood, hierarchy, the priors and the constants."""
    out = [h2("Priors and posterior constants")]
    for fam in risk["families"]:
        pr = risk["priors"][fam]
        out.append(Block("h3", text=f"{fam}: {pr['formula']}"))
        lik, hier = pr["likelihood"], pr["hierarchy"]
        out.append(para(f"{pr['citation']}. Likelihood on log loss: {lik['family']}, σ ~ "
                      f"{lik['sigma']}" + (f", ν ~ {lik['nu']}" if lik["nu"] else "")
                      + ". Varying by group: " + (", ".join(hier["varying"]) or "none")
                      + f" (spread τ ~ {hier['tau']}). Note: {pr['note']}."))
        prior_rows = [[[p["param"]], [p["prior"]]] for p in pr["priors"]]
        out.append(table(["parameter", "prior"], prior_rows))
        const_rows = []
        for i, c in enumerate(risk["constants"][fam]):
            b = ("constants", fam, i)
            const_rows.append([[c["constant"]], [str(c["group"])], [Num((*b, "median"), "const")],
                               [Num((*b, "lower"), "const"), " – ", Num((*b, "upper"), "const")]])
        out.append(table(["constant", "group", "posterior median", "90% interval"], const_rows))
    return out


SECTION = Section(keys=("priors", "constants"), numbers=numbers, blocks=blocks)
