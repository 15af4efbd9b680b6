"""Which run next, simulated on the Chinchilla runs: the ranking vs runs at random sizes.

A Chinchilla posterior (the 240 runs, NUTS, with the calibrated extrapolation discrepancy) is
the starting point; the target is Chinchilla-70B (N = 7e10, D = 1.4e12, 5.9e23 FLOPs).
Candidates: 12 sizes log-spaced from 1e9 to 7e10 times 5, 10 or 20 tokens per parameter, those
costing at most a tenth of the target run (a de-risking run, not a second plan: 28 runs,
3e19-5.8e22 FLOPs). Each replication draws a "true" law from the posterior; two policies then
train 6 runs each:

- ``ranked``: the top run of :func:`bayes_scaling.evaluate.nextrun.rank_next_runs` (expected
narrowing
  of the 90% predictive band at the target per FLOP);
- ``random``: a candidate drawn uniformly at random (random size and ratio).

After each run the outcome is drawn from the true law plus run noise, the posterior is
reweighted by its likelihood and the runs' box extended (:meth:`DrawSet.observe`), and the 90%
predictive and law bands at the target are recorded against the FLOPs spent. The importance
reweighting is checked against NUTS refits for a few candidates (:func:`refit_check`).

Run: ``BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_nextrun.py``;
writes ``benchmarks/results/nextrun.md``, ``nextrun.json`` and ``nextrun.png``.
"""

from __future__ import annotations

import os

from bayes_scaling.evaluate.drawset import DrawSet, Target, draw_set

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.data.registry import load_dataset
from bayes_scaling.evaluate import nextrun as nr
from bayes_scaling.files import atomic_savefig, atomic_write_text
from bayes_scaling.fitting.fit import fit
from bayes_scaling.fitting.result import ScalingFit

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = Target(7e10, 1.4e12)
SIZES = np.geomspace(1e9, 7e10, 12)
RATIOS = (5.0, 10.0, 20.0)
BUDGETS = (1e21, 3e21, 1e22, 3e22, 1e23, 2e23, 3e23)
#: Each candidate costs at most this fraction of the target run (nextrun.REPORT_BUDGET_FRACTION).
RUN_BUDGET = nr.REPORT_BUDGET_FRACTION * 6.0 * TARGET.n_params * TARGET.n_tokens


def chinchilla_fit(cache: Path, seed: int) -> ScalingFit:
    """The Chinchilla posterior (4 x 1000 draws, calibrated), cached at ``cache``."""
    runs = load_dataset("chinchilla")
    if cache.exists():
        f = ScalingFit.load(cache)
        if f.runs.fingerprint() == runs.fingerprint():
            return f
    f = fit("chinchilla", runs, chains=4, draws=1000, tune=1000, random_seed=seed)
    cache.parent.mkdir(parents=True, exist_ok=True)
    f.save(cache)
    return f


def simulate(ds0: DrawSet, cands: pd.DataFrame, policy: str, truth: int, steps: int,
             rng: np.random.Generator, n_sim: int) -> list[dict]:
    """One replication of one policy: the bands after each of ``steps`` runs."""
    ds, spent, out = ds0, 0.0, []
    for k in range(steps + 1):
        w = ds.weights[None, :]
        row = {"policy": policy, "truth": truth, "step": k, "flops": spent, "ess": ds.ess}
        for band in ("predictive", "law"):
            row[band] = float(nr.weighted_band(ds.target_draws(TARGET, band), w, 0.9)[0])
        if k == steps:
            out.append(row)
            break
        if policy == "ranked":
            tab = nr.rank_next_runs(None, cands, target=TARGET, draws=ds, n_sim=n_sim,
                                    random_seed=rng)
            pick = tab.iloc[0]
        else:
            pick = cands.iloc[int(rng.integers(len(cands)))]
        n, d = float(pick["n_params"]), float(pick["n_tokens"])
        eps = rng.standard_t(ds.nu[truth]) if ds.nu is not None else rng.standard_normal()
        y = ds.log_mu(n, d)[truth] + ds.sigma[truth] * eps
        row.update({"next_n": n, "next_tokens_per_param": d / n})
        out.append(row)
        ds, spent = ds.observe(n, d, y), spent + 6.0 * n * d
    return out


def band_at_budget(df: pd.DataFrame, band: str = "predictive") -> pd.DataFrame:
    """Mean band per policy after the runs whose cumulative cost fits each budget."""
    rows = []
    for (policy, truth), g in df.groupby(["policy", "truth"]):
        g = g.sort_values("step")
        for b in BUDGETS:
            rows.append({"policy": policy, "truth": truth, "budget": b,
                         "band": float(g.loc[g["flops"] <= b, band].iloc[-1])})
    return (pd.DataFrame(rows).groupby(["policy", "budget"])["band"].mean()
            .unstack("policy").reset_index())


def plot(df: pd.DataFrame, path: Path) -> Path:
    """Band at the target vs FLOPs spent: every replication (thin) and the mean per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, band in zip(axes, ("predictive", "law"), strict=True):
        for i, (policy, colour) in enumerate((("ranked", "C0"), ("random", "C1"))):
            sub = df[df["policy"] == policy]
            for _, g in sub.groupby("truth"):
                ax.plot(g["flops"].clip(lower=1e19), g[band], color=colour, lw=0.5, alpha=0.3)
            m = sub.groupby("step")[["flops", band]].mean()
            ax.plot(m["flops"].clip(lower=1e19), m[band], "o-", color=colour, lw=2,
                    label=f"{policy} (mean of {sub['truth'].nunique()})", zorder=3 + i)
        ax.set(xscale="log", xlabel="FLOPs spent on new runs (first point: none)",
               ylabel=f"90% {band} band at Chinchilla-70B (nats/token)",
               title=f"{band} band")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=120)


def refits(fit_: ScalingFit, table: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Importance reweighting vs NUTS refits for ``n`` candidates (top, middle, a big run)."""
    picks = table.iloc[sorted({0, len(table) // 2, int(table["flops"].idxmax())})][:n]
    rows = []
    for i, (_, c) in enumerate(picks.iterrows()):
        chk = nr.refit_check(fit_, (c["n_params"], c["n_tokens"]), TARGET, outcomes=(0.5,),
                             random_seed=seed + i)
        rows.append({"n_params": c["n_params"], "tokens_per_param": c["tokens_per_param"],
                     **chk.iloc[0].to_dict()})
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, budgets: pd.DataFrame, table: pd.DataFrame,
             checks: pd.DataFrame | None, meta: dict) -> str:
    """The results page."""
    steps = df.groupby(["policy", "step"])[["flops", "predictive", "law", "ess"]].mean()
    b0 = float(df[df["step"] == 0]["predictive"].mean())
    lines = ["# Which run next: ranking vs random sizes (Chinchilla runs, target Chinchilla-70B)",
             "", f"`benchmarks/bench_nextrun.py`: {meta['replications']} replications x "
             f"{meta['steps']} runs per policy, {meta['n_sim']} simulated outcomes x "
             f"{meta['n_draws']} posterior draws per ranking, {meta['minutes']:.1f} min. "
             f"Candidates: 12 sizes 1e9-7e10 x 5/10/20 tokens per parameter costing at most "
             f"{RUN_BUDGET:.2g} FLOPs each (a tenth of the target run). Truth: a posterior "
             "draw; outcomes: that law plus run noise; updates: importance reweighting + the "
             "extended box.", "",
             f"90% predictive band at N=7e10, D=1.4e12 before any new run: {b0:.4f} nats "
             f"(law band {float(df[df['step'] == 0]['law'].mean()):.4f}).", "",
             "## Curves (mean over replications, per run)", "",
             "| policy | runs | FLOPs spent | predictive band | law band | band narrowed per "
             "1e21 FLOPs | ESS |", "|---|---|---|---|---|---|---|"]
    for (policy, k), r in steps.iterrows():
        rate = (b0 - r["predictive"]) / r["flops"] * 1e21 if r["flops"] > 0 else float("nan")
        lines.append(f"| {policy} | {k} | {r['flops']:.3g} | {r['predictive']:.4f} | "
                     f"{r['law']:.4f} | {rate:.4g} | {r['ess']:.0f} |")
    lines += ["", "## Band at equal budgets (mean band after the runs that fit the budget)", "",
              "| budget (FLOPs) | ranked | random |", "|---|---|---|"]
    lines += [f"| {r['budget']:.0e} | {r['ranked']:.4f} | {r['random']:.4f} |"
              for _, r in budgets.iterrows()]
    lines += ["", "## First ranking (top 8)", "", "```", nr.table_text(table, top=8), "```"]
    if checks is not None and not checks.empty:
        lines += ["", "## Importance reweighting vs NUTS refits (outcome = predictive median)",
                  "", "| N | tokens/param | ESS | law band IS | law band refit | predictive IS | "
                  "predictive refit |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['n_params']:.3g} | {r['tokens_per_param']:g} | {r['ess']:.0f} | "
                  f"{r['law_is']:.4f} | {r['law_refit']:.4f} | {r['predictive_is']:.4f} | "
                  f"{r['predictive_refit']:.4f} |" for _, r in checks.iterrows()]
    lines += ["", "![bands vs FLOPs](nextrun.png)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the simulation and write the results page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--n-sim", type=int, default=64)
    ap.add_argument("--n-draws", type=int, default=2000)
    ap.add_argument("--refits", type=int, default=3)
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("TMPDIR", "/tmp")) / "bayes_scaling_bench"
                    / "chinchilla_fit.nc")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    f = chinchilla_fit(args.cache, args.seed)
    rng = np.random.default_rng(args.seed)
    ds0 = draw_set(f, n_draws=args.n_draws, random_seed=rng)
    cands = nr.candidate_grid(f, TARGET, sizes=SIZES, tokens_per_param=RATIOS)
    cands = cands[cands["flops"] <= RUN_BUDGET].reset_index(drop=True)
    table = nr.rank_next_runs(f, cands, target=TARGET, draws=ds0, n_sim=args.n_sim,
                              random_seed=rng)
    rows = []
    for r in range(args.replications):
        truth = int(rng.choice(ds0.size, p=ds0.weights))
        for policy in ("ranked", "random"):
            rows += simulate(ds0, cands, policy, truth, args.steps,
                             np.random.default_rng([args.seed, r, policy == "ranked"]),
                             args.n_sim)
        print(f"replication {r + 1}/{args.replications}", flush=True)
    df = pd.DataFrame(rows)
    checks = refits(f, table, args.refits, args.seed) if args.refits else None
    meta = {"replications": args.replications, "steps": args.steps, "n_sim": args.n_sim,
            "n_draws": ds0.size, "minutes": (time.perf_counter() - t0) / 60}
    budgets = band_at_budget(df)
    RESULTS.mkdir(exist_ok=True)
    plot(df, RESULTS / "nextrun.png")
    atomic_write_text(RESULTS / "nextrun.md", markdown(df, budgets, table, checks, meta))
    payload = {"meta": meta, "trajectories": df.to_dict("records"),
               "budgets": budgets.to_dict("records"), "first_ranking": nr.ranking_json(table),
               "refit_checks": [] if checks is None else checks.to_dict("records")}
    atomic_write_text(RESULTS / "nextrun.json", json.dumps(payload, indent=1, default=float))
    print((RESULTS / "nextrun.md").read_text())


if __name__ == "__main__":
    main()
