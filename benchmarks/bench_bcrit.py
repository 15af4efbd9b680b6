"""Critical batch size, two hypotheses, on the Step Law finals: B_crit(L) against B_crit(D).

Writes ``benchmarks/results/bcrit.md`` (+ ``bcrit.json``). The two curve laws differ only in the
critical batch size of ``S_min = S / (1 + B_crit/B)``:

- ``dynamics``: ``B_crit(L) = B*/L^(1/alpha_B)`` (Kaplan et al. 2020 eq. 5.4; Su et al. 2024);
- ``dynamics_bcrit_d``: ``B_crit(D) = B_D (D/1e9)^beta_B``, ``D = S B`` (Zhang et al. 2024,
  arXiv:2410.21676; Bergsma et al. 2025, arXiv:2505.13738).

Data: ``steplaw_dense`` (Li et al. 2025, arXiv:2503.04715), the best learning rate at each
(N, D, B): 170 one-point curves, 5 sizes, 2-4 token budgets each, up to 13 batch sizes. Scores:

1. PSIS-LOO (ArviZ) of each law fitted on all points: elpd, its difference and the standard
   error of the difference, Pareto k, stacking weights;
2. held-out scores: (a) the largest size held out, (b) the largest token budget of every size
   held out; median abs % error of the predictive median, coverage of the 50/90% predictive
   bands, mean log predictive density per held-out point (log loss scale);
3. the same on the batch sizes where the loss is monotone in B at fixed D, as both laws assume
   (B >= 131,072 tokens: below it, every (N, D) of the grid has the loss *rising* as B falls,
   which no S_min law can produce).

Every NUTS fit: 2 chains x 500 tune + 500 draws (numpyro), target_accept 0.99.
Run: ``nice -n 15 python benchmarks/bench_bcrit.py`` (about 20 minutes on 2 quiet cores).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bayes_scaling.data.curves import CurveTable, load_curves  # noqa: E402
from bayes_scaling.data.registry import fetch  # noqa: E402
from bayes_scaling.files import atomic_write_text  # noqa: E402
from bayes_scaling.fitting.dynamics import fit_dynamics  # noqa: E402
from bayes_scaling.laws.registry import CURVE_LAWS  # noqa: E402

OUT = HERE / "results"
SEED = 20261207
NUTS = {"chains": 2, "tune": 500, "draws": 500, "target_accept": 0.99}
MODELS = ("dynamics", "dynamics_bcrit_d")
#: Smallest batch size of the monotone subset (section 3).
MONOTONE_MIN_B = 131072
warnings.simplefilter("ignore")


def steplaw_points() -> pd.DataFrame:
    """Best learning rate at each (N, D, B) of the Step Law grid: one-point curves."""
    df = pd.read_csv(fetch("steplaw_dense"))
    best = df.loc[df.groupby(["n_params", "n_tokens", "batch_size_tokens"])["loss"].idxmin()]
    return best.assign(run_id=[f"N{n:.3g}-D{d:.3g}-B{b:.0f}" for n, d, b in
                               zip(best.n_params, best.n_tokens, best.batch_size_tokens,
                                   strict=True)]).reset_index(drop=True)


def table(df: pd.DataFrame) -> CurveTable:
    return load_curves(df, warmup_fraction=0.0, max_points=None, max_points_per_curve=None)


def log_lik_draws(fit: Any, curves: CurveTable) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise log density of ``curves``' log losses per draw ``(chain, draw, point)``, and
    the law's log mean per draw (one-point curves: no curve offsets)."""
    law = CURVE_LAWS[fit.spec.law]
    post = fit.posterior
    c, d = post.sizes["chain"], post.sizes["draw"]
    theta = {p: post[p].values.reshape(-1, 1) for p in law.params}
    mu = law.log_mean(*(x[None, :] for x in curves.law_inputs(law.inputs)), **theta)
    sigma = post["sigma"].values.reshape(-1, 1)
    z = (curves.log_loss[None, :] - mu) / sigma
    ll = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    return ll.reshape(c, d, -1), mu


def loo_of(fit: Any, curves: CurveTable) -> Any:
    import arviz as az  # lazy: only the LOO section needs it
    import xarray as xr  # lazy: as arviz

    ll, _ = log_lik_draws(fit, curves)
    idata = az.InferenceData(posterior=fit.posterior,
                             log_likelihood=xr.Dataset({"y": (("chain", "draw", "obs"), ll)}))
    return az.loo(idata, pointwise=True)


def held_out_scores(fit: Any, test: CurveTable, rng: np.random.Generator) -> dict[str, float]:
    ll, mu = log_lik_draws(fit, test)
    sigma = fit.posterior["sigma"].values.reshape(-1, 1)
    draws = np.exp(mu + sigma * rng.standard_normal(mu.shape))
    y = test.loss
    med = np.median(draws, axis=0)
    out = {"points": int(test.n_points),
           "median_abs_pct": float(np.median(100 * np.abs(med / y - 1))),
           "max_abs_pct": float(np.max(100 * np.abs(med / y - 1)))}
    for p in (0.5, 0.9):
        lo, hi = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
        out[f"cov{int(p * 100)}"] = float(np.mean((y >= lo) & (y <= hi)))
    flat = ll.reshape(-1, ll.shape[-1])
    lpd = np.log(np.mean(np.exp(flat - flat.max(0)), axis=0)) + flat.max(0)
    out["lpd_mean"] = float(np.mean(lpd))
    out["lpd_sum"] = float(np.sum(lpd))
    return out


def fit_model(model: str, curves: CurveTable, seed: int) -> tuple[Any, dict[str, Any]]:
    t0 = time.time()
    fit = fit_dynamics(model, curves, random_seed=seed, retries=0, **NUTS)
    d = fit.diagnostics
    law = CURVE_LAWS[fit.spec.law]
    consts = {p: [float(q) for q in np.quantile(fit.posterior[p].values, [0.05, 0.5, 0.95])]
              for p in (*law.params, "sigma")}
    info = {"passed": bool(d.passed), "max_rhat": float(d.max_rhat),
            "min_ess_bulk": float(d.min_ess_bulk), "divergences": int(d.divergences),
            "seconds": time.time() - t0, "constants": consts}
    print(model, curves.n_points, info, flush=True)
    return fit, info


def section(pts: pd.DataFrame, label: str) -> dict[str, Any]:
    import arviz as az  # lazy: only the LOO section needs it

    full = table(pts)
    res: dict[str, Any] = {"label": label, "points": int(full.n_points), "models": {}}
    loos = {}
    for k, model in enumerate(MODELS):
        fit, info = fit_model(model, full, SEED + k)
        loo = loo_of(fit, full)
        loos[model] = loo
        info["elpd_loo"] = float(loo.elpd_loo)
        info["se"] = float(loo.se)
        info["p_loo"] = float(loo.p_loo)
        info["pareto_k_gt_0.7"] = int(np.sum(np.asarray(loo.pareto_k) > 0.7))
        res["models"][model] = {"full": info}
    cmp = az.compare(loos, ic="loo", method="stacking")
    res["compare"] = {m: {"elpd_diff": float(cmp.loc[m, "elpd_diff"]),
                          "dse": float(cmp.loc[m, "dse"]),
                          "weight": float(cmp.loc[m, "weight"])} for m in MODELS}
    top_n = pts["n_params"].max()
    top_d = pts.groupby("n_params")["n_tokens"].transform("max")
    splits = {"largest size": pts["n_params"] == top_n,
              "largest budget of each size": pts["n_tokens"] == top_d}
    for name, held in splits.items():
        train, test = table(pts[~held]), table(pts[held])
        for k, model in enumerate(MODELS):
            fit, info = fit_model(model, train, SEED + 10 + k)
            info.update(held_out_scores(fit, test, np.random.default_rng([SEED, k])))
            res["models"][model][name] = info
    return res


def render(results: list[dict[str, Any]]) -> str:
    lines = ["# Critical batch size: B_crit(L) (Kaplan/Su) against B_crit(D) (Zhang et al.; "
             "Bergsma et al.)", "",
             f"`benchmarks/bench_bcrit.py`, {platform.machine()}, {os.cpu_count()} shared cores,"
             f" load {os.getloadavg()[0]:.1f} at the end; NUTS 2 chains x 500 tune + 500 draws"
             ", target_accept 0.99, no retry. Step Law finals (Li et al. 2025, "
             "arXiv:2503.04715): the best learning rate at each (N, D, B), one-point curves "
             "at S = D/B.", "",
             "- `dynamics`: S_min = S/(1 + B_crit(L)/B), B_crit(L) = B*/L^(1/alpha_B) "
             "(Kaplan et al. 2020 eq. 5.4).",
             "- `dynamics_bcrit_d`: S_min = S/(1 + B_crit(D)/B), B_crit(D) = B_D (D/1e9)^beta_B,"
             " D = S B (Zhang et al. 2024, arXiv:2410.21676; Bergsma et al. 2025, "
             "arXiv:2505.13738).", ""]
    for res in results:
        lines += [f"## {res['label']} ({res['points']} points)", "",
                  "PSIS-LOO on all points (elpd on the log-loss scale; difference to the best, "
                  "its standard error, stacking weight):", "",
                  "| model | elpd_loo (se) | p_loo | Pareto k > 0.7 | elpd diff (se) | weight "
                  "| gate |", "|---|---|---|---|---|---|---|"]
        for m in MODELS:
            f, c = res["models"][m]["full"], res["compare"][m]
            lines.append(f"| {m} | {f['elpd_loo']:.1f} ({f['se']:.1f}) | {f['p_loo']:.1f} | "
                         f"{f['pareto_k_gt_0.7']} | {c['elpd_diff']:.1f} ({c['dse']:.1f}) | "
                         f"{c['weight']:.2f} | {_gate(f)} |")
        lines += ["", "Held out (predictive median and bands, law + checkpoint noise):", "",
                  "| held out | model | points | median abs % error | max | 50% | 90% | "
                  "mean log pred. density | gate |", "|---|---|---|---|---|---|---|---|---|"]
        for split in ("largest size", "largest budget of each size"):
            for m in MODELS:
                h = res["models"][m][split]
                lines.append(f"| {split} | {m} | {h['points']} | {h['median_abs_pct']:.2f} | "
                             f"{h['max_abs_pct']:.2f} | {h['cov50']:.0%} | {h['cov90']:.0%} | "
                             f"{h['lpd_mean']:.3f} | {_gate(h)} |")
        lines += ["", "Constants of the full fits (5%, 50%, 95%):", ""]
        for m in MODELS:
            c = res["models"][m]["full"]["constants"]
            lines.append(f"- {m}: " + ", ".join(
                f"{p} {v[1]:.4g} [{v[0]:.4g}, {v[2]:.4g}]" for p, v in c.items()))
        lines.append("")
    return "\n".join(lines) + "\n"


def _gate(info: dict[str, Any]) -> str:
    verdict = "passed" if info["passed"] else "FAILED"
    return f"{verdict} (r-hat {info['max_rhat']:.3f}, {info['divergences']} div)"


def main() -> None:
    pts = steplaw_points()
    subsets = [(pts, "All batch sizes"),
               (pts[pts["batch_size_tokens"] >= MONOTONE_MIN_B].reset_index(drop=True),
                f"Batch sizes >= {MONOTONE_MIN_B:,} (loss monotone in B at fixed D)")]
    only = int(sys.argv[1]) if len(sys.argv) > 1 else None
    for k, (frame, label) in enumerate(subsets):
        if only is not None and k != only:
            continue
        res = section(frame, label)
        atomic_write_text(OUT / f"bcrit_{k}.json", json.dumps(res, indent=1, default=float))
    results = [json.loads(p.read_text()) for k in range(len(subsets))
               if (p := OUT / f"bcrit_{k}.json").exists()]
    text = render(results)
    text += ("\nRegenerate: `nice -n 15 python benchmarks/bench_bcrit.py [0|1]` (0: all batch "
             "sizes, 1: the monotone subset; writes `benchmarks/results/bcrit_<k>.json` and "
             "`bcrit.md`).\n")
    atomic_write_text(OUT / "bcrit.md", text)
    print(text)


if __name__ == "__main__":
    main()
