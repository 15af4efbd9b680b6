"""The law families compared (PSIS-LOO as a diagnostic), and the weights of their average.

The weights the report's model average uses (verdict, bands) come from held-out-by-compute
stacking (:func:`~bayes_scaling.evaluate.stacking.stack_weights`: Huber refits without the top
1 and 2 compute budgets, shrunk toward the cross-ladder weights; the cross-ladder weights alone
for a short ladder), not from PSIS-LOO; when the
proposal names a family fit file (``models.fit``), from the weights saved in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.heldout import DEFAULT_STACK_TOPS
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.report.blocks import Block, Num, h2, interval_parts, para, table
from bayes_scaling.report.common import quiet
from bayes_scaling.report.context import Context, Section
from bayes_scaling.types import ProgressFn


def _comparison(fits: Mapping[str, ScalingFit], runs: RunTable, group: str, ratio: float,
                seed: int, tell: ProgressFn, saved: Mapping[str, Any] | None = None,
                ) -> tuple[dict[str, Any], dict[str, float] | None]:
    """The comparison (:func:`~bayes_scaling.evaluate.compare.compare`) and the weights of the
    average (held-out-by-compute stacking; ``saved``: the weights of the proposal's fit file,
    no refits)."""
    if len(fits) < 2:
        only = next(iter(fits))
        return ({"available": False, "reason": f"the proposal names one law family ({only}); "
                 "name two or more in models.families to compare them"}, {only: 1.0})
    tell("comparing the law families: PSIS-LOO, and stacking by held-out compute")
    from bayes_scaling.evaluate.compare import compare  # lazy: loads ArviZ; rebuilds reuse it

    try:
        # no NUTS refits (they would double the report's fitting time): the stacking refits
        # are Huber point fits with a bootstrap (seconds); the trust section backtests the
        # first family
        res = quiet(compare, fits, runs=runs, holdout_top=None, random_seed=seed,
                     on_progress=tell, group=group, tokens_per_param=ratio,
                     stack_tops=None if saved else DEFAULT_STACK_TOPS,
                     stack_refits="huber-bootstrap")
    except BayesScalingError as exc:
        return {"available": False, "reason": f"not available: {exc}"}, None
    if saved:  # the fit file's weights, made when it was fitted
        out = {"available": True, **res.to_json(),
               "stack": {**dict(saved["meta"]), "weights": dict(saved["weights"])},
               "stacking": (saved["meta"] or {}).get("scores")}
        return out, _normalised(fits, saved["weights"])
    return {"available": True, **res.to_json()}, _normalised(fits, res.weights)


def _normalised(fits: Mapping[str, ScalingFit], used: Mapping[str, float],
                ) -> dict[str, float] | None:
    """The weights keyed as the proposal names the families, summing to 1."""
    weights = {fam: float(used.get(fam, used.get(f.spec.name, 0.0))) for fam, f in fits.items()}
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()} if total > 0 else None


def numbers(ctx: Context) -> dict[str, Any]:
    """``comparison`` (LOO table, where the families part) and the stacking ``weights``.

    The stacking refits take most of a rebuild's time: the result is kept beside the fits
    (:meth:`~bayes_scaling.report.context.Context.kept`).
    """
    def compute() -> dict[str, Any]:
        comparison, weights = _comparison(ctx.fits, ctx.runs, ctx.group, ctx.d / ctx.n,
                                          ctx.seed, ctx.tell, ctx.saved_weights)
        return {"comparison": comparison, "weights": weights}

    return ctx.kept("comparison", compute)


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The LOO table, the families side by side at the plan, and where they part."""
    cmp_ = risk["comparison"]
    out = [h2("Kaplan vs Chinchilla")]
    if not cmp_.get("available"):
        return [*out, para(cmp_["reason"], css="bad")]
    stack = cmp_.get("stack") or {}
    how = {"heldout-by-compute": "stacking on held-out-by-compute predictions (each family "
                                 "refitted without the top 1 and 2 compute budgets)",
           "shrunk": "stacking on held-out-by-compute predictions (each family refitted "
                     f"without the top 1 and 2 compute budgets; {stack.get('n')} runs) shrunk "
                     f"toward the cross-ladder weights by k = {stack.get('k')} pseudo-runs, "
                     "w = (n own + k cross) / (n + k)",
           "cross-ladder": "the cross-ladder weights learned on the public ladders (this "
                           "ladder is too short for its own: " + str(stack.get("why", "")) + ")"}
    out.append(para("Each family fitted to the same runs, compared by PSIS-LOO (expected log "
                  "predictive density of a left-out run, a diagnostic of interpolation; "
                  "higher is better) and by the compute-optimal exponent a (N_opt ∝ C^a). "
                  "The model average uses the weights of "
                  + how.get(str(stack.get("weights_method")), "PSIS-LOO stacking")
                  + (f", saved with the fit file {stack['file']}" if stack.get("file") else "")
                  + ": ",
                  *[part for i, k in enumerate(risk.get("weights") or {})
                    for part in ((", " if i else "") + f"{k} ", Num(("weights", k), "weight"))],
                  "."))
    rows = []
    for i, r in enumerate(cmp_["table"]):
        b = ("comparison", "table", i)
        rows.append([[str(r["model"])], [Num((*b, "elpd_loo"), "elpd"), " ± ",
                                         Num((*b, "se"), "elpd")],
                     [Num((*b, "elpd_diff"), "elpd"), " ± ", Num((*b, "dse"), "elpd")],
                     [Num((*b, "weight"), "weight")], [Num((*b, "p_loo"), "elpd")],
                     [Num((*b, "n_bad_pareto_k"), "int")],
                     [Num((*b, "a_median"), "small"), " (", Num((*b, "a_lower"), "small"), " – ",
                      Num((*b, "a_upper"), "small"), ")"]])
    out.append(table(["model", "ELPD-LOO ± SE", "difference ± SE", "LOO weight", "p_loo",
                       "Pareto k > 0.7", "a (90%)"], rows))
    out.append(Block("h3", text="Side by side at the plan"))
    side = []
    for fam in risk["families"]:
        b = ("verdict", "families", fam, "predictive")
        side.append([[fam], [Num((*b, "median"), "loss")], interval_parts(b, 90, "loss"),
                     [Num((*b, "p_target"), "prob")],
                     [Num(("tokens_needed", "families", fam, "median"), "tokens")],
                     [Num(("alternative", "families", fam, "optimal_split", "n_opt", "median"),
                          "params")]])
    out.append(table(["family", "loss median", "90% predictive", "P(target)",
                       "tokens needed", "N_opt at the plan's FLOPs"], side))
    out.append(_diverge_para(cmp_.get("diverge") or {}))
    if cmp_.get("notes"):
        out.append(Block("list", items=[[n] for n in cmp_["notes"]]))
    return out


def _diverge_para(dv: Mapping[str, Any]) -> Block:
    if not dv:
        return para("Where they part: not computed.")
    if dv.get("flops") is None:
        return para("Where they part: the 90% predictive bands overlap over the whole scanned "
                  "range, ", Num(("comparison", "diverge", "flops_range", 0), "flops"), " – ",
                  Num(("comparison", "diverge", "flops_range", 1), "flops"), " FLOP.")
    b = ("comparison", "diverge")
    return para(f"Where they part ({dv.get('allocation', '')}): the 90% predictive bands stop "
              "overlapping at C = ", Num((*b, "flops"), "flops"), " FLOP (N = ",
              Num((*b, "n_params"), "params"), ", D = ", Num((*b, "n_tokens"), "tokens"),
              "); the plan is at ", Num(("plan", "flops"), "flops"), " FLOP.")


SECTION = Section(keys=("comparison", "weights"), numbers=numbers, blocks=blocks)
