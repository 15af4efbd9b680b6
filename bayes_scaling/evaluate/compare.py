r"""Kaplan vs Chinchilla: law families fitted to the same runs, compared out of sample.

Three views, each in the table :func:`compare` returns (one row per family):

- **PSIS-LOO** (Vehtari, Gelman & Gabry 2017, via ArviZ): the expected log predictive density of
  a left-out run, its difference to the best family with the standard error of that difference,
  the Pareto-k count that flags unreliable estimates, and stacking weights (Yao et al. 2018).
  The pointwise log-likelihood is computed here in numpy from the posterior (the law plus the
  Normal / Student-t likelihood on log loss, per run), so it works for every backend and for
  saved fits; all families score the same observations (log loss), so their ELPDs compare.
- **A held-out check**: each family is refitted without the largest model sizes
  (:func:`bayes_scaling.evaluate.backtest.backtest`) and scored on them: mean log predictive
  density,
  median absolute % error of the median and coverage of the 50% / 90% predictive bands.
- **Compute-optimal exponents** ``a`` (``N_opt ∝ C^a``) and ``b`` (``D_opt ∝ C^b``) with
  credible intervals, beside the published values, and **where the families part**: the
  smallest FLOP budget at which their 90% bands stop overlapping.

Sources
-------
- Kaplan et al. (2020), arXiv:2001.08361: eq. 1.5, Table 2, section 6.1 (``N_opt ∝ C^0.73``,
  from the ``L(N, S_min)`` compute-efficient frontier, non-embedding N).
- Hoffmann et al. (2022), arXiv:2203.15556: ``a ≈ b ≈ 0.5`` (approaches 1 and 2; approach 3
  gives 0.46 / 0.54).
- Besiroglu et al. (2024), arXiv:2404.10102: refit of approach 3, ``a = 0.513 ± 0.020``.
- Pearce & Song (2024), arXiv:2406.12907; Porian et al. (2024), arXiv:2406.19146: why Kaplan's
  and Chinchilla's exponents differ (parameter count, warmup and schedule, losses not at
  convergence).
- Vehtari, Gelman & Gabry (2017), doi:10.1007/s11222-016-9696-4 (PSIS-LOO); Yao, Vehtari,
  Simpson & Gelman (2018), doi:10.1214/17-BA1091 (stacking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import (
    DEFAULT_INTERVAL,
    NEW_GROUP,
)
from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import backtest
from bayes_scaling.evaluate.families import where_they_part
from bayes_scaling.evaluate.heldout import DEFAULT_STACK_TOPS
from bayes_scaling.evaluate.loo import loo, loo_table, n_bad_pareto_k
from bayes_scaling.evaluate.stacking import (  # DEFAULT_MODELS, fit_families: re-exported
    DEFAULT_MODELS as DEFAULT_MODELS,
)
from bayes_scaling.evaluate.stacking import fit_families as fit_families
from bayes_scaling.evaluate.stacking import stack_weights
from bayes_scaling.fitting.families import FamilyFit, family_meta
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.allocate import optimal_exponents
from bayes_scaling.query.summarize import jsonable
from bayes_scaling.types import ProgressFn, SeedLike

#: Published compute-optimal exponents ``a`` (N_opt ∝ C^a), ``b = 1 - a``.
PUBLISHED_EXPONENTS: dict[str, dict[str, Any]] = {
    "kaplan2020": {"a": 0.73, "b": 0.27,
                   "source": "Kaplan et al. (2020) sec. 6.1, L(N, S_min) compute-efficient "
                             "frontier, non-embedding N"},
    "hoffmann2022": {"a": 0.50, "b": 0.50,
                     "source": "Hoffmann et al. (2022), approaches 1-2 (approach 3: 0.46)"},
    "epoch2024": {"a": 0.513, "a_se": 0.020, "b": 0.487,
                  "source": "Besiroglu et al. (2024), refit of approach 3"},
}

#: Kaplan laws with both inputs, and why their ``a`` is not Kaplan's published 0.73.
KAPLAN_JOINT = ("kaplan", "kaplan_e")
KAPLAN_EXPONENT_NOTE = (
    "Kaplan's a: the joint L(N, D) of eq. 1.5 has the closed-form optimum "
    "a = alpha_D/(alpha_N + alpha_D), 0.575 with his Table-2 constants; his published 0.73 "
    "comes from a different analysis (the L(N, S_min) compute-efficient frontier of sec. 6, "
    "non-embedding N, a fixed schedule, losses before convergence), so compare a Kaplan-form "
    "a with the other families' a on the same runs, not with 0.73")

#: Columns of :attr:`CompareResult.table`, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "model", "law", "elpd_loo", "se", "elpd_diff", "dse", "weight", "p_loo", "n_bad_pareto_k",
    "heldout_lpd", "heldout_mape", "heldout_cov50", "heldout_cov90",
    "a_median", "a_lower", "a_upper", "b_median", "b_lower", "b_upper", "converged",
)


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class CompareResult:
    """The comparison of several law families fitted to the same runs.

    Attributes
    ----------
    table
        One row per family, best ELPD first (columns :data:`TABLE_COLUMNS`).
    diverge
        Where the families' 90% bands stop overlapping (see :func:`where_they_part`).
    notes
        Plain-language statements that go with the table (read them).
    loo
        ArviZ ``ELPDData`` per family (pointwise).
    fits
        The compared fits (not serialised).
    meta
        The run table (size, source, hash, parameter count), the group used and the held-out
        settings.
    stacking
        Held-out-by-compute scores per family and for the stacked average
        (:func:`~bayes_scaling.evaluate.stacking.heldout_scores`; ``weight`` is the stacking
        weight), or ``None`` when not computed.
    """

    table: pd.DataFrame
    diverge: dict[str, Any]
    notes: list[str]
    loo: Mapping[str, Any] = field(default_factory=dict, repr=False)
    fits: Mapping[str, ScalingFit] = field(default_factory=dict, repr=False)
    meta: Mapping[str, Any] = field(default_factory=dict)
    stacking: pd.DataFrame | None = None

    @property
    def weights(self) -> dict[str, float]:
        """Stacking weights: held-out-by-compute, shrunk to cross-ladder ones; else LOO's."""
        if (self.meta.get("stack") or {}).get("weights"):
            return dict(self.meta["stack"]["weights"])
        if self.stacking is not None:
            return {str(r["model"]): float(r["weight"]) for r in self.stacking.to_dict("records")
                    if r["model"] != "average"}
        return self.loo_weights

    @property
    def loo_weights(self) -> dict[str, float]:
        """Stacking weights from PSIS-LOO (a diagnostic of interpolation), by model."""
        return {str(r["model"]): float(r["weight"]) for r in self.table.to_dict("records")}

    def family_fit(self) -> FamilyFit:
        """The compared fits with these weights, as one multi-family fit.

        ``save`` writes it; the queries use the weighted average.
        """
        stack = {k: v for k, v in (self.meta.get("stack") or {}).items() if k != "weights"}
        if not stack:
            stack = {"weights_method": "psis-loo stacking"}
        return FamilyFit(dict(self.fits), self.weights, family_meta(**stack))

    def to_text(self) -> str:
        """The table, the published exponents and the notes as plain text (the CLI's output)."""
        t = self.table.copy()
        for q in ("a", "b"):
            t[q] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(m) else "n/a" for m, lo, hi
                    in zip(t[f"{q}_median"], t[f"{q}_lower"], t[f"{q}_upper"], strict=True)]
        cols = ["model", "elpd_loo", "se", "elpd_diff", "dse", "weight", "p_loo",
                "n_bad_pareto_k", "heldout_lpd", "heldout_mape", "heldout_cov50",
                "heldout_cov90", "a", "b"]
        body = t[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}")
        pub = "; ".join(f"{k}: a = {v['a']}, b = {v['b']} ({v['source']})"
                        for k, v in PUBLISHED_EXPONENTS.items())
        lines = [f"{self.meta.get('n_runs', '?')} runs ({self.meta.get('source', '')}); "
                 "a, b: compute-optimal exponents N_opt ∝ C^a, D_opt ∝ C^b, median [90%]",
                 body, f"published: {pub}", *(f"- {n}" for n in self.notes)]
        stack = self.meta.get("stack") or {}
        if stack.get("weights_method") == "cross-ladder":
            lines.append("stacking weights: cross-ladder (" + stack.get("why", "short ladder")
                         + "): " + ", ".join(f"{k} {v:.3f}" for k, v in self.weights.items()))
        elif stack.get("weights_method") == "shrunk":
            lines.append(shrunk_line(stack))
        if self.stacking is not None:
            tops = self.meta.get("stack_tops")
            lines += [f"held out by compute (refits without the top {tops} compute budget(s); "
                      "weight: the shrunk weights --average uses):",
                      self.stacking.to_string(index=False, float_format=lambda v: f"{v:.3g}")]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: table records, divergence, notes, published exponents, meta."""
        stack = None if self.stacking is None else self.stacking.to_dict(orient="records")
        return jsonable({"table": self.table.to_dict(orient="records"), "stacking": stack,
                          "diverge": self.diverge, "notes": list(self.notes),
                          "published_exponents": PUBLISHED_EXPONENTS, **dict(self.meta)})


# ------------------------------------------------------------------------------ exponents
def exponent_summary(fit_: ScalingFit, *, group: str | None = None,
                     interval: float = DEFAULT_INTERVAL,
                     random_seed: SeedLike = None) -> dict[str, float]:
    """Median and equal-tailed ``interval`` of the compute-optimal exponents ``a`` and ``b``.

    NaN for laws without both N and D (no compute-optimal split).
    """
    keys = [f"{q}_{s}" for q in ("a", "b") for s in ("median", "lower", "upper")]
    if not {"n", "d"} <= set(fit_.law.inputs):
        return dict.fromkeys(keys, float("nan"))
    draws = optimal_exponents(fit_, group=group, random_seed=random_seed)
    out = {}
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    for q in ("a", "b"):
        v = np.asarray(draws[q])
        out.update({f"{q}_median": float(np.median(v)), f"{q}_lower": float(np.quantile(v, lo)),
                    f"{q}_upper": float(np.quantile(v, hi))})
    return out


# ------------------------------------------------------------------------------ held out
def _refit_kwargs(fit_: ScalingFit) -> dict[str, Any]:
    """Sampler settings of ``fit_`` for its held-out refit (same chains, draws, backend)."""
    d = fit_.diagnostics
    kw: dict[str, Any] = {"chains": d.chains, "draws": d.draws, "tune": d.draws,
                          "calibrate": "kappa" in fit_.posterior}
    for k in ("backend", "target_accept", "tune"):
        if k in fit_.meta:
            kw[k] = fit_.meta[k]
    return kw


def heldout_check(fit_: ScalingFit, *, holdout_top: int, random_seed: SeedLike = None,
                  fit_kwargs: Mapping[str, Any] | None = None,
                  on_progress: ProgressFn | None = None) -> dict[str, float]:
    """Refit ``fit_``'s model without the top ``holdout_top`` sizes and score the held-out runs.

    Returns ``heldout_lpd`` (mean log predictive density of the held-out log losses),
    ``heldout_mape`` (median absolute % error of the median), ``heldout_cov50`` and
    ``heldout_cov90`` (fraction inside the 50% / 90% predictive bands) and ``n_heldout``.
    """
    method = "huber-bootstrap" if fit_.method == "huber-bootstrap" else "bayes"
    kw = {**(_refit_kwargs(fit_) if method == "bayes" else {}), **dict(fit_kwargs or {})}
    res = backtest(fit_.runs, fit_.spec, holdout_by="n_params", holdout_top=holdout_top,
                   method=method, probs=(0.5, 0.9), random_seed=random_seed,
                   fit_kwargs=kw if method == "bayes" else None, on_progress=on_progress)
    s = res.summary
    return {"heldout_lpd": float(s["mean_log_pred_density"]),
            "heldout_mape": float(s["median_abs_pct_error"]),
            "heldout_cov50": float(s["coverage"]["50"]),
            "heldout_cov90": float(s["coverage"]["90"]),
            "n_heldout": int(s["n_holdout"]), "heldout_converged": bool(s["converged"])}


# ------------------------------------------------------------------------------ compare
def _same_runs(fits: Mapping[str, ScalingFit], runs: RunTable | None) -> RunTable:
    """The run table every fit was made on (LOO needs the same observations)."""
    if not fits:
        raise BayesScalingError("no fits to compare")
    tables = [f.runs for f in fits.values()]
    prints = {t.fingerprint() for t in tables}
    if len(prints) > 1:
        raise BayesScalingError("the fits were made on different run tables: LOO compares "
                                "families on the same runs (refit them on one table)")
    if runs is not None and runs.fingerprint() not in prints:
        raise BayesScalingError("runs differ from the table the fits were made on")
    return tables[0]


def _default_group(runs: RunTable, group: str | None) -> str:
    if group is not None:
        return group
    return runs.group_names[0] if runs.n_groups == 1 else NEW_GROUP


def compare(fits: Mapping[str, ScalingFit], *, runs: RunTable | None = None,
            holdout_top: int | None = 1, random_seed: SeedLike = None,
            on_progress: ProgressFn | None = None, group: str | None = None,
            tokens_per_param: float | None = None,
            fit_kwargs: Mapping[str, Any] | None = None,
            stack_tops: Sequence[int] | None = DEFAULT_STACK_TOPS,
            stack_refits: str = "huber-bootstrap", workers: int = 1) -> CompareResult:
    """Compare law families fitted to the same runs: LOO, held-out runs, exponents, divergence.

    Parameters
    ----------
    fits
        ``{name: fit}``, all on the same run table; the first is the reference of the
        divergence scan (its compute-optimal split sets N and D at each budget).
    runs
        Optional check that the fits were made on these runs.
    holdout_top
        Refit each family without the top ``holdout_top`` model sizes and score them
        (``None`` or 0: skip; the held-out columns are NaN). Each refit uses the fit's own
        sampler settings, overridden by ``fit_kwargs``.
    group
        Group for exponents and the divergence scan: default the only group, or ``"new"``
        (an unseen data distribution) when there are several.
    tokens_per_param
        Use ``D = r N`` in the divergence scan instead of the reference's optimum.
    random_seed
        Seed of the held-out refits and of every draw.
    on_progress
        Called with one short line per step.
    fit_kwargs
        Overrides of the refits' sampler settings (``draws``, ``tune``, ...).
    stack_tops
        Rolling origins of the held-out-by-compute stacking (e.g. ``(1, 2)``: refit each
        family without the top 1, then the top 2 compute budgets); the stacking weights it
        gives, shrunk toward the cross-ladder weights, become :attr:`CompareResult.weights` (a
        ladder too short for them gets the cross-ladder weights,
        :func:`~bayes_scaling.evaluate.stacking.stack_weights`).
        ``None``: skip (LOO weights).
    stack_refits
        How the stacking refits are made: ``"huber-bootstrap"`` (seconds) or ``"nuts"`` (the
        fits' own sampler settings, overridden by ``fit_kwargs``).
    workers
        Stacking refits in this many local processes.

    Returns
    -------
    CompareResult
    """
    table_runs = _same_runs(fits, runs)
    rng = np.random.default_rng(random_seed)
    tell = on_progress or (lambda _m: None)
    g = _default_group(table_runs, group)
    tell(f"PSIS-LOO for {len(fits)} families on {table_runs.n_runs} runs")
    loos = {name: loo(f) for name, f in fits.items()}
    table = loo_table(loos)
    rows = []
    for rec in table.to_dict("records"):
        f = fits[rec["model"]]
        row = {**rec, "law": f.spec.law, "n_bad_pareto_k": n_bad_pareto_k(loos[rec["model"]])}
        row.update(exponent_summary(f, group=g, random_seed=rng))
        row.update(dict.fromkeys(("heldout_lpd", "heldout_mape", "heldout_cov50",
                                  "heldout_cov90"), float("nan")))
        row["converged"] = f.diagnostics.passed
        rows.append(row)
    heldout: dict[str, dict[str, Any]] = {}
    if holdout_top:
        for i, name in enumerate(fits):
            tell(f"held-out check {i + 1}/{len(fits)}: {name} without the top {holdout_top} "
                 "model size(s)")
            heldout[name] = heldout_check(fits[name], holdout_top=int(holdout_top),
                                          random_seed=rng, fit_kwargs=fit_kwargs,
                                          on_progress=tell)
        for row in rows:
            row.update({k: v for k, v in heldout[row["model"]].items() if k.startswith("heldout_")
                        and k != "heldout_converged"})
    out = pd.DataFrame(rows)[list(TABLE_COLUMNS)]
    tell("scanning FLOP budgets for where the families part")
    diverge = (where_they_part(fits, group=g, tokens_per_param=tokens_per_param,
                               random_seed=rng) if len(fits) > 1 else {})
    stacking, stack_meta = None, None
    if stack_tops and len(fits) > 1:
        first = next(iter(fits.values()))
        kw = ({**_refit_kwargs(first), **dict(fit_kwargs or {})} if stack_refits == "nuts"
              else None)
        w, stack_meta = stack_weights(table_runs, [f.spec for f in fits.values()],
                                      tops=tuple(stack_tops), method=stack_refits,
                                      fit_kwargs=kw, workers=workers,
                                      random_seed=int(rng.integers(2**31 - 1)),
                                      on_progress=tell)
        stack_meta = {**stack_meta, "weights": w}
        if "scores" in stack_meta:
            stacking = pd.DataFrame(stack_meta["scores"])
    notes = make_notes(out, fits, loos, diverge, table_runs, heldout, holdout_top)
    meta = {"n_runs": table_runs.n_runs, "param_count": table_runs.param_count,
            "source": table_runs.source, "data_sha256": table_runs.fingerprint(),
            "group": g, "holdout_top": holdout_top,
            "n_heldout": next((h["n_heldout"] for h in heldout.values()), 0),
            "stack_tops": list(stack_tops) if stacking is not None else None,
            "stack": stack_meta}
    return CompareResult(table=out, diverge=diverge, notes=notes, loo=loos, fits=dict(fits),
                         meta=meta, stacking=stacking)


def shrunk_line(stack: Mapping[str, Any]) -> str:
    """How shrunk stacking weights were made, in one line."""
    def fmt(w: Mapping[str, float]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in w.items())

    return (f"stacking weights: own (stacking on the {stack.get('n')} held-out runs) shrunk "
            f"toward the cross-ladder weights by k = {stack.get('k')} (w = (n own + k cross) / "
            f"(n + k)): {fmt(stack.get('weights') or {})}; own: {fmt(stack.get('own') or {})}; "
            f"cross-ladder: {fmt(stack.get('cross') or {})}")


# ------------------------------------------------------------------------------ notes
def _fmt_c(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2g} FLOP".replace("e+", "e")


def make_notes(table: pd.DataFrame, fits: Mapping[str, ScalingFit], loos: Mapping[str, Any],
               diverge: Mapping[str, Any], runs: RunTable,
               heldout: Mapping[str, Mapping[str, Any]], holdout_top: int | None) -> list[str]:
    """Plain-language statements that go with the comparison table."""
    notes = [_param_count_note(runs)]
    notes += _elpd_notes(table)
    for rec in table.to_dict("records"):
        name = rec["model"]
        if rec["n_bad_pareto_k"]:
            notes.append(f"{name}: {rec['n_bad_pareto_k']} run(s) with high Pareto k "
                         f"(> {float(getattr(loos[name], 'good_k', 0.7)):.2f}): their LOO "
                         "estimates are unreliable (influential runs or a misfit)")
        if not rec["converged"]:
            notes.append(f"{name}: {fits[name].warning_banner}")
        if fits[name].method == "huber-bootstrap":
            notes.append(f"{name}: bootstrap refits, not a posterior: its LOO is indicative only")
        notes += _exponent_notes(rec, fits[name])
    if any(f.law.name in KAPLAN_JOINT for f in fits.values()):
        notes.append(KAPLAN_EXPONENT_NOTE)
    if holdout_top:
        n_h = next((h["n_heldout"] for h in heldout.values()), 0)
        notes.append(f"held-out check: each family refitted without the top {holdout_top} "
                     f"model size(s) ({n_h} runs) and scored on them (predictive bands)")
        notes += [f"{k}: the held-out refit failed the convergence gate"
                  for k, h in heldout.items() if not h.get("heldout_converged", True)]
        notes += _heldout_vs_loo(table)
    if diverge:
        notes += _diverge_notes(diverge)
    return notes


def _param_count_note(runs: RunTable) -> str:
    kind = "non-embedding" if runs.param_count == "nonembedding" else "total"
    return (f"N counts {kind} parameters (--param-count {runs.param_count}); Kaplan et al. "
            "fitted non-embedding N, Hoffmann et al. total N: one known reason their exponents "
            "differ (Pearce & Song 2024; Porian et al. 2024)")


def _elpd_notes(table: pd.DataFrame) -> list[str]:
    if len(table) < 2:
        return []
    best = table.iloc[0]
    out = [f"best by PSIS-LOO: {best['model']} (stacking weight {best['weight']:.2f})"]
    for rec in table.iloc[1:].to_dict("records"):
        diff, dse = float(rec["elpd_diff"]), float(rec["dse"])
        z = diff / dse if dse > 0 else float("inf")
        verdict = ("within its standard error: not distinguishable" if z < 1 else
                   "within 2 standard errors: weak evidence" if z < 2 else "clear")
        out.append(f"{best['model']} vs {rec['model']}: ELPD difference {diff:.1f} ± {dse:.1f} "
                   f"({z:.1f} SE; {verdict})")
    return out


def _heldout_vs_loo(table: pd.DataFrame) -> list[str]:
    """Say so when the held-out runs favour another family than LOO does."""
    if len(table) < 2 or table["heldout_lpd"].isna().all():
        return []
    loo_best = table.iloc[0]
    h_best = table.loc[table["heldout_lpd"].idxmax()]
    if h_best["model"] == loo_best["model"]:
        return [f"the held-out runs agree: {loo_best['model']} also scores best on them"]
    return [f"the held-out runs favour {h_best['model']} (log predictive density "
            f"{h_best['heldout_lpd']:.2f} per run, {h_best['heldout_mape']:.2f}% median error, "
            f"{h_best['heldout_cov90']:.0%} inside the 90% band) over the LOO winner "
            f"{loo_best['model']} ({loo_best['heldout_lpd']:.2f}, "
            f"{loo_best['heldout_mape']:.2f}%, {loo_best['heldout_cov90']:.0%}): the family "
            "that fits the ladder best is not the one that extrapolates best past its largest "
            "sizes here; with few held-out runs, weigh both (or average)"]


def _exponent_notes(rec: Mapping[str, Any], fit_: ScalingFit) -> list[str]:
    name, law = rec["model"], fit_.law.name
    if not np.isfinite(rec["a_median"]):
        return [f"{name}: law {law} has one input: no compute-optimal exponents"]
    a = f"a = {rec['a_median']:.3f} [{rec['a_lower']:.3f}, {rec['a_upper']:.3f}]"
    if law == "chinchilla":
        ep = PUBLISHED_EXPONENTS["epoch2024"]["a"]
        inside = rec["a_lower"] <= ep <= rec["a_upper"]
        return [f"{name}: {a} (90%) {'contains' if inside else 'does not contain'} Epoch's "
                f"refit a = {ep} ± 0.020; Hoffmann et al. published 0.50 (approaches 1-2) and "
                "0.46 (approach 3)"]
    if law in KAPLAN_JOINT:
        return [f"{name}: {a} (90%), the joint law's closed form alpha_D/(alpha_N + alpha_D)"]
    return [f"{name}: {a} (90%)"]


def _diverge_notes(dv: Mapping[str, Any]) -> list[str]:
    out = []
    lo, hi = dv["flops_range"]
    for other, pair in dv["pairs"].items():
        for band in ("predictive", "law"):
            pt = pair[band]
            who = f"{dv['reference']} vs {other} ({band} {dv['interval']:.0%} bands, " \
                  f"N, D from {dv['allocation']})"
            if pt is None:
                out.append(f"{who}: overlap at every budget from {_fmt_c(lo)} to {_fmt_c(hi)}")
                continue
            start = " (already apart at the start of the scan)" if pt["at_start"] else ""
            again = "" if pt["stays_apart"] else "; they overlap again at a larger budget"
            out.append(f"{who}: part at C = {_fmt_c(pt['flops'])} (N = {pt['n_params']:.3g}, "
                       f"D = {pt['n_tokens']:.3g}){start}{again}")
    return out
