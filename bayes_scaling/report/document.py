"""The risk report as a list of blocks: what the page and the Markdown say, section by section.

:func:`document` turns the dict of :func:`bayes_scaling.report.assemble.build_risk` into a list of
:class:`Block` (headings, paragraphs, boxes, lists, tables, figure slots) whose numbers are
:class:`Num` references into ``report.json`` (a path and a format kind), not text. The
sections are built here and nowhere else; :mod:`bayes_scaling.report.render` renders the blocks
as HTML and Markdown (formatting each :class:`Num` with its ``fmt``) and writes the files.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The P(target) a plan needs to be called likely (and the alternative's goal).
LIKELY, UNLIKELY = 0.9, 0.5


# ------------------------------------------------------------------------------ the document
@dataclass(frozen=True)
class Num:
    """A number of the report: its path in ``report.json`` and its format kind."""

    path: tuple[str | int, ...]
    kind: str


Part = str | Num
Parts = Sequence[Part]


@dataclass(frozen=True)
class Block:
    """One block of the document: ``h2``/``h3`` (``text``), ``p``/``box`` (``parts``),
    ``list`` (``items``), ``table`` (``header``, ``rows``) or ``figure`` (``text`` = key)."""

    kind: str
    text: str = ""
    parts: Parts = ()
    items: Sequence[Parts] = ()
    header: Sequence[str] = ()
    rows: Sequence[Sequence[Parts]] = ()
    css: str = ""
    caption: str = ""


def lookup(risk: Mapping[str, Any], path: Sequence[str | int]) -> Any:
    """The value at ``path`` (keys and list indices) in the report dict."""
    node: Any = risk
    for key in path:
        node = node[key]
    return node


def _n(*path: str | int, kind: str) -> Num:
    return Num(tuple(path), kind)


def _iv(base: Sequence[str | int], p: int, kind: str) -> list[Part]:
    """``lo – hi`` of the ``p``% interval stored at ``base`` (keys ``lo_p``/``hi_p``)."""
    return [Num((*base, f"lo_{p}"), kind), " – ", Num((*base, f"hi_{p}"), kind)]


def _h2(text: str) -> Block:
    return Block("h2", text=text)


def _p(*parts: Part, css: str = "") -> Block:
    return Block("p", parts=parts, css=css)


def _table(header: Sequence[str], rows: Sequence[Sequence[Parts]]) -> Block:
    return Block("table", header=header, rows=rows)


def _verdict_word(p: float) -> tuple[str, str]:
    if p >= LIKELY:
        return "likely to reach the target", "good"
    if p >= UNLIKELY:
        return "uncertain to reach the target", "mid"
    return "unlikely to reach the target", "bad"


def headline_path(risk: Mapping[str, Any]) -> tuple[str, ...]:
    """Path of the headline verdict: the model average when there is one, else family one."""
    if risk["headline"] == "average":
        return ("verdict", "average")
    return ("verdict", "families", risk["headline"])


def primary_family(risk: Mapping[str, Any]) -> str:
    """The family the figures draw bands for: the largest stacking weight, else the first."""
    w = risk.get("weights") or {}
    return max(w, key=w.get) if w else risk["families"][0]


def document(risk: Mapping[str, Any]) -> list[Block]:
    """The report, top to bottom, as blocks shared by the HTML and the Markdown."""
    blocks: list[Block] = []
    for section in (_sec_header, _sec_verdict, _sec_loss, _sec_tokens, _sec_alternative,
                    _sec_recipe, _sec_extrapolation, _sec_trust, _sec_convergence, _sec_priors,
                    _sec_comparison, _sec_dynamics, _sec_patterns, _sec_next_run,
                    _sec_provenance):
        blocks += section(risk)
    return blocks


def _sec_header(risk: Mapping[str, Any]) -> list[Block]:
    plan = ("plan",)
    out = [Block("h1", text=risk["title"])]
    if risk.get("description"):
        out.append(_p(risk["description"]))
    out.append(_p(
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
        out.append(_p("The proposal gave a FLOP budget only: N and D are the posterior-median "
                      f"compute-optimal split of the first family ({risk['families'][0]})."))
    if risk["warnings"]:
        out.append(Block("list", items=[[w] for w in risk["warnings"]], css="warn"))
    return out


def _sec_verdict(risk: Mapping[str, Any]) -> list[Block]:
    hp = headline_path(risk)
    p = lookup(risk, (*hp, "predictive", "p_target"))
    word, css = _verdict_word(p)
    who = "model average" if risk["headline"] == "average" else risk["headline"]
    out = [_h2("Verdict"), Block("box", css=css, parts=[
        "P(loss ≤ ", Num(("plan", "target_loss"), "loss"), ") = ",
        Num((*hp, "predictive", "p_target"), "prob"),
        f" for one run of this plan ({who}, predictive band): {word}.",
        " The law's mean alone (law band) reaches it with P = ",
        Num((*hp, "law", "p_target"), "prob"), "."])]
    out.append(_p("Predictive band: where one real run would land (the law's uncertainty, "
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
    out.append(_table(["", "P(target), predictive", "P(target), law band", "stacking weight"],
                      rows))
    return out


def _band_rows(risk: Mapping[str, Any], base_of: Callable[[str], tuple], names: Sequence[str],
               kind: str) -> list[list[Parts]]:
    rows = []
    for label in names:
        base = base_of(label)
        for band in ("predictive", "law"):
            b = (*base, band)
            rows.append([[label], [band], [Num((*b, "median"), kind)], _iv(b, 50, kind),
                         _iv(b, 90, kind)])
    return rows


def _sec_loss(risk: Mapping[str, Any]) -> list[Block]:
    names = (["model average"] if risk["verdict"]["average"] else []) + list(risk["families"])

    def base(label: str) -> tuple:
        return (("verdict", "average") if label == "model average"
                else ("verdict", "families", label))

    return [_h2("Predicted loss of the planned run"),
            _p("Loss in nats/token at N = ", Num(("plan", "n_params"), "params"), ", D = ",
               Num(("plan", "n_tokens"), "tokens"), "."),
            _table(["", "band", "median", "50% interval", "90% interval"],
                   _band_rows(risk, base, names, "loss"))]


def _sec_tokens(risk: Mapping[str, Any]) -> list[Block]:
    rows = []
    tn = risk["tokens_needed"]
    names = (["model average"] if tn["average"] else []) + list(risk["families"])
    for label in names:
        b = ("tokens_needed", "average") if label == "model average" else \
            ("tokens_needed", "families", label)
        rows.append([[label], [Num((*b, "median"), "tokens")], _iv(b, 50, "tokens"),
                     _iv(b, 90, "tokens"), [Num((*b, "p_unreachable"), "prob")],
                     [Num((*b, "median_tokens_per_param"), "ratio")]])
    return [_h2("Tokens needed at the planned size"),
            _p("Training tokens for the law's mean loss at N = ", Num(("plan", "n_params"),
                                                                      "params"),
               " to reach ", Num(("plan", "target_loss"), "loss"), " nats/token (law band). "
               "Unreachable: the target lies below the size's floor (its loss with infinite "
               "data), so no number of tokens suffices; ∞ in an interval means that."),
            _table(["", "median", "50% interval", "90% interval", "P(unreachable)",
                    "tokens per parameter (median)"], rows)]


def _sec_alternative(risk: Mapping[str, Any]) -> list[Block]:
    alt = risk["alternative"]
    key = ("alternative", "average") if alt["average"] else \
        ("alternative", "families", risk["headline"])
    a = lookup(risk, key)
    who = "model average" if alt["average"] else risk["headline"]
    out = [_h2("The compute-optimal alternative"),
           _p("Every split of the same budget, C = ", Num(("plan", "flops"), "flops"),
              f" FLOP, scored by P(target) under the predictive band ({who}). The best split "
              "is N = ", Num((*key, "best", "n_params"), "params"), ", D = ",
              Num((*key, "best", "n_tokens"), "tokens"), " (",
              Num((*key, "best", "tokens_per_param"), "ratio"), " tokens per parameter) with "
              "P = ", Num((*key, "best", "p_target"), "prob"), " ± ",
              Num((*key, "best", "mc_se"), "prob"), " (Monte Carlo error); in the same scan "
              "the plan's split (", Num(("plan", "tokens_per_param"), "ratio"),
              " tokens per parameter) has P = ", Num((*key, "p_at_plan_split"), "prob"),
              ". The scan draws its own predictive samples, so its P can differ from the "
              "verdict's by about the Monte Carlo error.")]
    if a["goal_range"]:
        r = (*key, "goal_range")
        out.append(_p("Splits of this budget with P(target) ≥ ", Num((*key, "goal"), "prob"),
                      ": N from ", Num((*r, "low", "n_params"), "params"), " (D = ",
                      Num((*r, "low", "n_tokens"), "tokens"), ") to ",
                      Num((*r, "high", "n_params"), "params"), " (D = ",
                      Num((*r, "high", "n_tokens"), "tokens"), ").", css="good"))
    else:
        out.append(_p("No split of this budget reaches P(target) ≥ ", Num((*key, "goal"),
                                                                         "prob"), ".",
                      css="bad"))
    if a["budget_for_goal"]:
        g = (*key, "budget_for_goal")
        out.append(_p("The smallest budget whose best split reaches P ≥ ",
                      Num((*key, "goal"), "prob"), " is ", Num((*g, "flops"), "flops"),
                      " FLOP (", Num((*g, "times_plan"), "ratio"), "× the plan",
                      ", or less: the smallest budget searched" if
                      a["budget_for_goal"]["at_smallest_budget_searched"] else "", "): N = ",
                      Num((*g, "n_params"), "params"), ", D = ", Num((*g, "n_tokens"), "tokens"),
                      ", P = ", Num((*g, "p_target"), "prob"), "."))
    else:
        out.append(_p("No budget up to ", Num((*key, "max_budget_searched"), "flops"),
                      " FLOP (", Num((*key, "max_times_plan"), "ratio"), "× the plan) reaches "
                      "P ≥ ", Num((*key, "goal"), "prob"), " at any split."))
    rows = []
    for fam in risk["families"]:
        f = ("alternative", "families", fam)
        o = (*f, "optimal_split")
        rows.append([[fam], [Num((*o, "n_opt", "median"), "params")],
                     [Num((*o, "d_opt", "median"), "tokens")],
                     [Num((*o, "tokens_per_param", "median"), "ratio")],
                     [Num((*o, "p_target"), "prob")],
                     [Num((*f, "best", "n_params"), "params"), " / ",
                      Num((*f, "best", "n_tokens"), "tokens")],
                     [Num((*f, "best", "p_target"), "prob")]])
    out.append(_table(["", "N_opt (law, median)", "D_opt", "tokens/param", "P at N_opt",
                       "best split N / D", "P at best"], rows))
    out.append(Block("figure", text="alternative",
                     caption="Left: P(target) over the splits of the planned budget. Right: "
                             "P(target) at the best split of each budget."))
    return out


def _sec_extrapolation(risk: Mapping[str, Any]) -> list[Block]:
    rows = []
    for axis, label, kind in (("n_params", "parameters N", "params"),
                              ("n_tokens", "tokens D", "tokens"), ("flops", "compute C", "flops")):
        b = ("extrapolation", axis)
        rows.append([[label], [Num((*b, "smallest_run"), kind)], [Num((*b, "largest_run"), kind)],
                     [Num((*b, "plan"), kind)], [Num((*b, "decades_past_largest"), "decades")]])
    return [_h2("Extrapolation"),
            _p("How far the plan lies past the largest run, in decades (log10 of the ratio)."),
            _table(["", "smallest run", "largest run", "plan", "decades past the largest"],
                   rows),
            Block("figure", text="extrapolation",
                  caption=f"Left: runs and the bands of {primary_family(risk)} along the "
                          "plan's tokens per parameter, the plan (star, 90% predictive) and "
                          "the target. Right: the runs in (N, D), the plan and the best split "
                          "of its budget.")]


def _sec_trust(risk: Mapping[str, Any]) -> list[Block]:
    t = risk["trust"]
    out = [_h2("Trust: backtest on these runs")]
    if t.get("status") != "ok":
        return [*out, _p(f"Backtest {t.get('status')}.", css="bad")]
    out.append(_p("The largest ", Num(("trust", "holdout_top"), "int"),
                  f" level(s) of {t['holdout_by']} were held "
                  f"out, {t['model']} was refitted on the rest and predicted them. A calibrated "
                  "method's 90% band holds about 90% of the held-out runs. The held-out runs "
                  "lie at most ", Num(("trust", "bayes", "max_decades_out"), "decades"),
                  " decades from the remaining runs; the plan is ",
                  Num(("extrapolation", "flops", "decades_past_largest"), "decades"),
                  " decades of compute past the largest run."))
    rows = []
    for key, label in (("bayes", "Bayesian (this report)"),
                       ("baseline", "Huber + bootstrap (Hoffmann/Epoch)")):
        rec = t.get(key) or {}
        if rec.get("status", "ok") != "ok":
            rows.append([[label], [rec["status"]], [], [], [], [], [], []])
            continue
        b = ("trust", key)
        rows.append([[label], [Num((*b, "n_holdout"), "int")],
                     *[[Num((*b, "coverage", c), "pct")] for c in ("50", "80", "90", "95")],
                     [Num((*b, "median_abs_pct_error"), "pcterr")],
                     [Num((*b, "mean_rel_width_90"), "pct")]])
    out.append(_table(["method", "held out", "in 50%", "in 80%", "in 90%", "in 95%",
                       "median abs. error", "90% width (rel.)"], rows))
    runs_rows = []
    base_ok = (t.get("baseline") or {}).get("status", "ok") == "ok"
    base_at = {q["run_id"]: j for j, q in enumerate(t["baseline"]["runs"])} if base_ok else {}
    for i, run in enumerate(t["bayes"]["runs"]):
        r = ("trust", "bayes", "runs", i)
        row: list[Parts] = [[run["run_id"]], [Num((*r, "n_params"), "params")],
                            [Num((*r, "n_tokens"), "tokens")], [Num((*r, "observed"), "loss")],
                            [Num((*r, "median"), "loss"), " (", *_iv(r, 90, "loss"), ")"]]
        if base_ok:
            j = base_at.get(run["run_id"])
            q = ("trust", "baseline", "runs", j)
            row.append(["not held out"] if j is None else
                       [Num((*q, "median"), "loss"), " (", *_iv(q, 90, "loss"), ")"])
        runs_rows.append(row)
    out.append(_table(["run", "N", "D", "observed loss", "Bayesian median (90%)",
                       *(["baseline median (90%)"] if base_ok else [])], runs_rows))
    out.append(Block("figure", text="backtest",
                     caption="Held-out runs: observed loss and the 90% predictive intervals "
                             "of both methods, fitted without them."))
    return out


def _diag_row(label: str, b: tuple) -> list[Parts]:
    return [[label], [Num((*b, "max_rhat"), "rhat")], [Num((*b, "min_ess_bulk"), "int")],
            [Num((*b, "min_ess_tail"), "int")], [Num((*b, "divergences"), "int")],
            [Num((*b, "chains"), "int"), " × ", Num((*b, "draws"), "int")],
            [Num((*b, "sampling_seconds"), "seconds")], [Num((*b, "passed"), "int")]]


def _sec_convergence(risk: Mapping[str, Any]) -> list[Block]:
    rows = [_diag_row(fam, ("convergence", fam)) for fam in risk["families"]]
    bayes = risk["trust"].get("bayes") if isinstance(risk["trust"], Mapping) else None
    if bayes and bayes.get("diagnostics"):
        rows.append(_diag_row(f"{bayes['model']} (backtest refit)",
                              ("trust", "bayes", "diagnostics")))
    if risk["dynamics"].get("included"):
        rows.append(_diag_row(f"{risk['dynamics']['model']} (training dynamics)",
                              ("dynamics", "diagnostics")))
    out = [_h2("Convergence diagnostics"),
           _p("Gate: r̂ ≤ ", Num(("gate", "max_rhat"), "rhat"), ", bulk and tail ESS ≥ ",
              Num(("gate", "min_ess"), "int"), ", divergent transitions ≤ ",
              Num(("gate", "max_divergences"), "int"), " (Vehtari et al. 2021). A fit that "
              "fails is shown with a warning at the top."),
           _table(["fit", "max r̂", "min bulk ESS", "min tail ESS", "divergences",
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


def _sec_priors(risk: Mapping[str, Any]) -> list[Block]:
    out = [_h2("Priors and posterior constants")]
    for fam in risk["families"]:
        pr = risk["priors"][fam]
        out.append(Block("h3", text=f"{fam}: {pr['formula']}"))
        lik, hier = pr["likelihood"], pr["hierarchy"]
        out.append(_p(f"{pr['citation']}. Likelihood on log loss: {lik['family']}, σ ~ "
                      f"{lik['sigma']}" + (f", ν ~ {lik['nu']}" if lik["nu"] else "")
                      + ". Varying by group: " + (", ".join(hier["varying"]) or "none")
                      + f" (spread τ ~ {hier['tau']}). Note: {pr['note']}."))
        prior_rows = [[[p["param"]], [p["prior"]]] for p in pr["priors"]]
        out.append(_table(["parameter", "prior"], prior_rows))
        const_rows = []
        for i, c in enumerate(risk["constants"][fam]):
            b = ("constants", fam, i)
            const_rows.append([[c["constant"]], [str(c["group"])], [Num((*b, "median"), "const")],
                               [Num((*b, "lower"), "const"), " – ", Num((*b, "upper"), "const")]])
        out.append(_table(["constant", "group", "posterior median", "90% interval"], const_rows))
    return out


def _sec_comparison(risk: Mapping[str, Any]) -> list[Block]:
    cmp_ = risk["comparison"]
    out = [_h2("Kaplan vs Chinchilla")]
    if not cmp_.get("available"):
        return [*out, _p(cmp_["reason"], css="bad")]
    out.append(_p("Each family fitted to the same runs, compared by PSIS-LOO (expected log "
                  "predictive density of a left-out run; higher is better), with stacking "
                  "weights, and by the compute-optimal exponent a (N_opt ∝ C^a)."))
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
    out.append(_table(["model", "ELPD-LOO ± SE", "difference ± SE", "weight", "p_loo",
                       "Pareto k > 0.7", "a (90%)"], rows))
    out.append(Block("h3", text="Side by side at the plan"))
    side = []
    for fam in risk["families"]:
        b = ("verdict", "families", fam, "predictive")
        side.append([[fam], [Num((*b, "median"), "loss")], _iv(b, 90, "loss"),
                     [Num((*b, "p_target"), "prob")],
                     [Num(("tokens_needed", "families", fam, "median"), "tokens")],
                     [Num(("alternative", "families", fam, "optimal_split", "n_opt", "median"),
                          "params")]])
    out.append(_table(["family", "loss median", "90% predictive", "P(target)",
                       "tokens needed", "N_opt at the plan's FLOPs"], side))
    out.append(_diverge_para(cmp_.get("diverge") or {}))
    if cmp_.get("notes"):
        out.append(Block("list", items=[[n] for n in cmp_["notes"]]))
    return out


def _diverge_para(dv: Mapping[str, Any]) -> Block:
    if not dv:
        return _p("Where they part: not computed.")
    if dv.get("flops") is None:
        return _p("Where they part: the 90% predictive bands overlap over the whole scanned "
                  "range, ", Num(("comparison", "diverge", "flops_range", 0), "flops"), " – ",
                  Num(("comparison", "diverge", "flops_range", 1), "flops"), " FLOP.")
    b = ("comparison", "diverge")
    return _p(f"Where they part ({dv.get('allocation', '')}): the 90% predictive bands stop "
              "overlapping at C = ", Num((*b, "flops"), "flops"), " FLOP (N = ",
              Num((*b, "n_params"), "params"), ", D = ", Num((*b, "n_tokens"), "tokens"),
              "); the plan is at ", Num(("plan", "flops"), "flops"), " FLOP.")


def _optional(risk: Mapping[str, Any], key: str, title: str) -> tuple[dict, list[Block], bool]:
    """An optional section's dict, its heading and whether it was included (if not, the
    heading is followed by the reason)."""
    sec = risk.get(key) or {}
    out = [_h2(title)]
    if not sec.get("included"):
        out.append(_p(f"Not included: {sec.get('reason', 'not run')}."))
    return sec, out, bool(sec.get("included"))


def _sec_recipe(risk: Mapping[str, Any]) -> list[Block]:
    """The plan on the proposal's alternative group (nothing when none is named)."""
    if not (risk.get("recipe") or {}).get("named"):
        return []
    rec, out, included = _optional(risk, "recipe", "The alternative recipe")
    if not included:
        return out
    m = ("recipe", "multiplier")
    out.append(_p(f"The planned run trained on group {rec['alternative']} instead of "
                  f"{rec['group']} ({rec['model']} fit, law band). Compute multiplier, the "
                  "plan's compute over the compute with which the alternative reaches the plan's "
                  "loss (above 1: the alternative is worth more compute): ",
                  Num((*m, "median"), "ratio"), " (90%: ", *_iv(m, 90, "ratio"), ")."))
    rows = []
    for key, label in (("difference_law", "law"), ("difference_predictive", "predictive")):
        b = ("recipe", key)
        rows.append([[label], [Num((*b, "median"), "small")], _iv(b, 90, "small"),
                     [Num((*b, "p_b_better"), "prob")]])
    out.append(_table(["band", "loss difference, alternative − plan (nats)", "90% interval",
                       "P(alternative better)"], rows))
    c = ("recipe", "crossing")
    out.append(_p("The two laws cross between ", Num((*c, "c_min"), "flops"), " and ",
                  Num((*c, "c_max"), "flops"), " FLOP in a fraction ",
                  Num((*c, "p_cross"), "prob"), " of the posterior draws."))
    return out


def _sec_dynamics(risk: Mapping[str, Any]) -> list[Block]:
    dyn, out, included = _optional(risk, "dynamics", "Training dynamics")
    if not included:
        return out
    b = ("dynamics",)
    fl = (*b, "final_loss")
    out.append(_p(f"The curve law L(N, S, B) ({dyn['model']}; Kaplan et al. 2020 §5, Su et al. "
                  "2024), fitted to the loss curves of the small runs, predicts the planned "
                  "run's curve at batch B = ", Num((*b, "batch_size"), "count"),
                  " tokens over S = D/B = ", Num((*b, "steps_plan"), "count"),
                  f" steps (group '{dyn['group']}'). Loss at the last step: ",
                  Num((*fl, "predictive", "median"), "loss"), " (90% predictive: ",
                  *_iv((*fl, "predictive"), 90, "loss"), "); P(loss ≤ target) = ",
                  Num((*fl, "predictive", "p_target"), "prob"), " (predictive), ",
                  Num((*fl, "law", "p_target"), "prob"), " (law band)."))
    rows = []
    for key, label, kind in (("steps_needed", "steps at the planned batch", "count"),
                             ("s_min", "fewest steps, any batch (S_min)", "count"),
                             ("tokens_needed", "tokens at the planned batch", "tokens"),
                             ("e_min", "fewest tokens, any batch (E_min)", "tokens")):
        r = (*b, key)
        rows.append([[label], [Num((*r, "median"), kind)], _iv(r, 50, kind), _iv(r, 90, kind),
                     [Num((*r, "p_unreachable"), "prob")]])
    out.append(_table(["to reach the target", "median", "50% interval", "90% interval",
                       "P(unreachable)"], rows))
    out.append(_p("Critical batch size at the target loss: B_crit = ",
                  Num((*b, "b_crit", "median"), "count"), " tokens (90%: ",
                  *_iv((*b, "b_crit"), 90, "count"), "); the planned batch is ",
                  Num((*b, "batch_over_b_crit"), "ratio"), "× B_crit (above 1: fewer steps, "
                  "more tokens than the balanced choice)."))
    out.append(Block("figure", text="dynamics",
                     caption="Predicted loss curve of the planned run (50%/90% predictive and "
                             "law bands), the target and the planned number of steps."))
    return out


def _sec_patterns(risk: Mapping[str, Any]) -> list[Block]:
    pat, out, included = _optional(risk, "patterns", "Scaling-pattern checks")
    if not included:
        return out
    out.append(_p(f"Checks of the runs against the fitted law ({pat['model']}): cold starts, a "
                  "bend or plateau at the largest sizes, outliers, too few sizes, groups whose "
                  "slopes differ (bayes_scaling.evaluate.checks). A warning says the law may not "
                  "extrapolate as the bands assume."))
    rows = [[[f["severity"]], [f["code"]], [f["message"]]] for f in pat.get("findings", [])]
    if rows:
        out.append(_table(["severity", "check", "finding"], rows))
    return out


def _sec_next_run(risk: Mapping[str, Any]) -> list[Block]:
    nr, out, included = _optional(risk, "next_run", "The most informative next run")
    if not included:
        return out
    st = ("next_run", "settings")
    out.append(_p("Candidate small runs, ranked by how much each would narrow the plan's 90% "
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
        out.append(_table(["rank", "parameters", "tokens", "compute", "90% band after (nats)",
                           "narrowing per EFLOP (nats)"], rows))
    return out


def _sec_provenance(risk: Mapping[str, Any]) -> list[Block]:
    pv = risk["provenance"]
    files = [[[f["entry"]], [f["path"]], [f["sha256"]],
              [Num(("provenance", "data_files", i, "rows_used"), "int")]]
             for i, f in enumerate(pv["data_files"])]
    models = [[[m["family"]], [m["spec_sha256"][:16]], [m["data_sha256"][:16]],
               [str(m.get("file") or "(given)")],
               ["reused" if m.get("reused") else "fitted now"],
               [str(m.get("seed"))], [str(m.get("backend"))]] for m in pv["models"]]
    vers = ", ".join(f"{k} {v}" for k, v in pv["versions"].items())
    return [_h2("Provenance"),
            _table(["data", "file", "sha256", "runs used"], files),
            _p(f"Run table: {pv['runs']['n_runs']} runs, groups "
               f"{', '.join(pv['runs']['groups'])}, N counts {pv['runs']['param_count']} "
               f"parameters, fingerprint {pv['runs']['fingerprint']}."),
            _table(["family", "spec sha256", "data sha256", "fit file", "fit", "seed",
                    "backend"], models),
            _p(f"Proposal {pv['proposal_file'] or '(in memory)'}"
               + (f" (sha256 {pv['proposal_sha256']})" if pv["proposal_sha256"] else "")
               + f"; seed {pv['seed']}; generated {pv['date']}; versions: {vers}.")]


__all__ = ["LIKELY", "UNLIKELY", "Block", "Num", "Part", "Parts", "document", "headline_path",
           "lookup", "primary_family"]
