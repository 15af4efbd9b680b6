"""Human-readable summaries of fits and the demo (Markdown + JSON + plots; no PyMC).

The demo fits the shipped Chinchilla runs (Epoch AI's digitisation of Hoffmann et al. 2022,
5 highest-loss runs dropped as Epoch did) and writes the constants with 90% intervals next to
the published fits, the convergence diagnostics, the predicted loss and tokens needed for
Chinchilla-70B, and the compute-optimal split at Chinchilla's budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from bayes_scaling.files import display_path

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np

from bayes_scaling.constants import EPOCH2024_95, PUBLISHED
from bayes_scaling.data.registry import load_dataset
from bayes_scaling.files import atomic_savefig, atomic_write_text
from bayes_scaling.fitting.fit import fit as do_fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.plots import fits as plots
from bayes_scaling.query.allocate import compute_optimal, optimal_exponents
from bayes_scaling.query.predict import predict_loss, tokens_needed
from bayes_scaling.report.common import constants_table
from bayes_scaling.report.formats import fmt, human

#: Chinchilla-70B (Hoffmann et al. 2022): the demo's query.
CHINCHILLA_70B = {"n_params": 7e10, "n_tokens": 1.4e12, "target_loss": 1.95, "flops": 5.88e23}


# ------------------------------------------------------------------------------ fit summary
def fit_summary_text(fit: ScalingFit) -> str:
    """A short plain-text summary: constants, gate, provenance."""
    d = fit.diagnostics
    lines = []
    if fit.warning_banner:
        lines.append(fit.warning_banner)
    data = (f"{fit.runs.n_curves} curves ({fit.runs.n_points} checkpoints)"
            if hasattr(fit.runs, "n_curves") else f"{fit.runs.n_runs} runs")
    lines.append(f"model {fit.spec.name} ({fit.law.formula}); {data}, "
                 f"{fit.runs.n_groups} group(s); likelihood {fit.spec.likelihood.family}"
                 + (f", residual {fit.spec.likelihood.residual} (along each curve)"
                    if fit.spec.likelihood.residual != "iid" else ""))
    lines.append("constant   group        median     90% interval")
    for r in constants_table(fit):
        lines.append(f"{r['constant']:<10} {r['group']:<12} {r['median']:<10.4g} "
                     f"[{r['lower']:.4g}, {r['upper']:.4g}]")
    lines.append(f"convergence: max r_hat {d.max_rhat:.3f}, min bulk ESS {d.min_ess_bulk:.0f}, "
                 f"min tail ESS {d.min_ess_tail:.0f}, {d.divergences} divergences -> "
                 + ("PASSED" if d.passed else "FAILED"))
    lines.append(f"{d.chains} chains x {d.draws} draws, backend {d.backend}, seed {d.seed}, "
                 f"{d.sampling_seconds:.1f} s")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ demo
def demo_numbers(fit: ScalingFit, *, random_seed: int = 0) -> dict[str, Any]:
    """Every number the demo shows, as a JSON-ready dict."""
    q = CHINCHILLA_70B
    pred = {band: predict_loss(fit, q["n_params"], q["n_tokens"], band=band,
                               random_seed=random_seed).to_records()[0]
            for band in ("law", "predictive")}
    tok = tokens_needed(fit, q["n_params"], q["target_loss"], random_seed=random_seed)
    opt = compute_optimal(fit, q["flops"], random_seed=random_seed)
    expo = optimal_exponents(fit, random_seed=random_seed)
    return {
        "runs": {"n_runs": fit.runs.n_runs, "source": display_path(fit.runs.source),
                 "data_sha256": fit.runs.fingerprint()},
        "constants": constants_table(fit),
        "published": {"hoffmann2022": PUBLISHED["hoffmann2022"],
                      "epoch2024": PUBLISHED["epoch2024"], "epoch2024_95": EPOCH2024_95},
        "diagnostics": {"passed": fit.diagnostics.passed,
                        "max_rhat": fit.diagnostics.max_rhat,
                        "min_ess_bulk": fit.diagnostics.min_ess_bulk,
                        "min_ess_tail": fit.diagnostics.min_ess_tail,
                        "divergences": fit.diagnostics.divergences,
                        "problems": list(fit.diagnostics.problems)},
        "query": q,
        "predicted_loss": pred,
        "tokens_needed": tok.to_records()[0],
        "compute_optimal": opt.to_records(),
        "optimal_exponent_a": {"median": float(np.median(expo["a"])),
                               "lower": float(np.quantile(expo["a"], 0.05)),
                               "upper": float(np.quantile(expo["a"], 0.95)), "interval": 0.9},
        "calibration": fit.meta.get("calibration"),
        "meta": {k: fit.meta.get(k) for k in ("seed", "backend", "created", "versions")},
    }


def demo_markdown(fit: ScalingFit, nums: dict[str, Any]) -> str:
    """The demo summary as Markdown."""
    q = nums["query"]
    out = ["# bayes_scaling demo: Chinchilla runs", ""]
    if fit.warning_banner:
        out += [f"> **{fit.warning_banner}**", ""]
    out += [f"Data: {nums['runs']['n_runs']} runs from `{nums['runs']['source']}` "
            f"(Hoffmann et al. 2022, digitised by Epoch AI; 5 highest-loss runs dropped as "
            "Besiroglu et al. 2024 did).",
            f"Model: `{fit.spec.name}`, {fit.law.formula}, {fit.spec.likelihood.family} "
            "likelihood on log loss.", "",
            "## Constants (posterior median, 90% interval)", "",
            "| constant | this fit | 90% interval | Hoffmann 2022 | Epoch 2024 | Epoch 95% CI |",
            "|---|---|---|---|---|---|"]
    hoff, epoch = PUBLISHED["hoffmann2022"], PUBLISHED["epoch2024"]
    for r in nums["constants"]:
        c = r["constant"]
        ci = EPOCH2024_95.get(c)
        out.append(f"| {c} | {r['median']:.4g} | [{r['lower']:.4g}, {r['upper']:.4g}] | "
                   f"{hoff.get(c, '')} | {epoch.get(c, '')} | "
                   f"{f'{ci[0]} – {ci[1]}' if ci else ''} |")
    d = nums["diagnostics"]
    out += ["", f"Convergence: max r̂ {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
            f"min tail ESS {d['min_ess_tail']:.0f}, {d['divergences']} divergences: "
            f"**{'passed' if d['passed'] else 'FAILED'}**.", "",
            f"## Chinchilla-70B: N = {human(q['n_params'])}, D = {human(q['n_tokens'])}",
            "", "| band | median | 50% | 90% |", "|---|---|---|---|"]
    for band, r in nums["predicted_loss"].items():
        out.append(f"| {band} | {r['median']:.3f} | [{r['lo_50']:.3f}, {r['hi_50']:.3f}] | "
                   f"[{r['lo_90']:.3f}, {r['hi_90']:.3f}] |")
    t = nums["tokens_needed"]
    out += ["", f"Tokens needed at N = {human(q['n_params'])} to reach loss "
            f"{q['target_loss']}: median {human(t['median'])} tokens "
            f"(90%: {human(t['lower'])} – {human(_f(t['upper']))}); "
            f"P(unreachable at this size) = {t['p_unreachable']:.3f}.", "",
            f"## Compute-optimal split of {fmt(q['flops'], 'flops')} FLOP", "",
            "| quantity | median | 90% interval |", "|---|---|---|"]
    for r in nums["compute_optimal"]:
        out.append(f"| {r['quantity']} | {human(r['median'])} | "
                   f"{human(r['lower'])} – {human(r['upper'])} |")
    a = nums["optimal_exponent_a"]
    out += ["", f"Compute-optimal exponent a (N_opt ∝ C^a): {a['median']:.3f} "
            f"(90%: {a['lower']:.3f} – {a['upper']:.3f}); Epoch AI: 0.513 ± 0.020; "
            "Hoffmann et al.: ≈0.50.", ""]
    cal = nums.get("calibration")
    if cal:
        out += [f"Extrapolation discrepancy (part of the predictive band): a jump τ0 ≈ "
                f"{cal.get('tau0_mean', 0):.4f} for any run outside the ladder plus κ ≈ "
                f"{cal['kappa_mean']:.4f} per decade past it (sd of log loss"
                + (f"; these are for N and D scaled up together, and for a tokens-per-parameter "
                   f"ratio no run had "
                   f"τ0 ≈ {cal['tau0_shape_mean']:.4f}, κ ≈ {cal['kappa_shape_mean']:.4f}"
                   if cal.get("kappa_shape_mean") is not None else "") + "), learned from "
                f"{cal['n_heldout']} held-out runs in {cal['n_refits']} rolling-origin refits "
                f"inside the ladder, starting from the {cal.get('prior', 'half-normal')} prior; "
                f"distance: {cal.get('distance', 'box')} (decades from the runs' support).", ""]
        pred = nums["predicted_loss"].get("predictive", {})
        drift = cal.get("drift")
        if drift and pred.get("drift_pct") is not None:
            out += [f"Signed drift (the mean error of this kind of extrapolation, the ladder's "
                    f"own rolling-origin slope shrunk toward the public ladders'; + = runs land "
                    f"above the law): {drift['scale']['value']:+.4f} ± "
                    f"{drift['scale']['sd']:.4f} per decade of N and D scaled up, "
                    f"{drift['shape']['value']:+.4f} ± {drift['shape']['sd']:.4f} per decade off "
                    f"the runs' tokens per parameter (log loss). At Chinchilla-70B it moves the "
                    f"predictive median by {pred['drift_pct']:+.2f}% (90%: "
                    f"{pred['drift_lo_pct']:+.2f}% to {pred['drift_hi_pct']:+.2f}%): that is the "
                    f"gap between the law and predictive medians above.", ""]
    out += ["Figures: `loss_vs_n.png`, `loss_vs_c.png`, `compute_optimal.png`, "
            "`posterior_pair.png`.", ""]
    return "\n".join(out)


def _f(v: Any) -> float:
    return float("inf") if v == "inf" else float(v)


def run_demo(out: Path, *, random_seed: int = 0, fit: ScalingFit | None = None,
             on_progress: Callable[[str], None] | None = None) -> list[Path]:
    """Fit the shipped Chinchilla runs (unless ``fit`` is given) and write the demo to ``out``."""
    tell = on_progress or (lambda _m: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fit is None:
        runs = load_dataset("chinchilla", drop_highest_loss=5)
        fit = do_fit("chinchilla", runs, random_seed=random_seed, on_progress=tell)
    written = [fit.save(out / "chinchilla_fit.nc")]
    nums = demo_numbers(fit, random_seed=random_seed)
    q = CHINCHILLA_70B
    for x in ("n", "c"):
        ax = plots.plot_loss_bands(fit, x=x, query=(q["n_params"], q["n_tokens"]))
        written.append(atomic_savefig(ax.figure, out / f"loss_vs_{x}.png", dpi=110,
                                      bbox_inches="tight"))
        plt.close(ax.figure)
    ax = plots.plot_compute_optimal(fit)
    written.append(atomic_savefig(ax.figure, out / "compute_optimal.png", dpi=110,
                                  bbox_inches="tight"))
    plt.close(ax.figure)
    axes = plots.plot_posterior(fit, kind="pair")
    fig = np.ravel(axes)[0].figure
    written.append(atomic_savefig(fig, out / "posterior_pair.png", dpi=80, bbox_inches="tight"))
    plt.close(fig)
    written.append(atomic_write_text(out / "summary.json",
                                     json.dumps(nums, indent=2, default=_json_default)))
    written.append(atomic_write_text(out / "summary.md", demo_markdown(fit, nums)))
    tell(f"demo written to {out}")
    return written


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
