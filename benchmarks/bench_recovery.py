"""Parameter recovery and predictive coverage on synthetic ladders with known truth.

For each seed: a ladder drawn from the Chinchilla law at Hoffmann et al.'s constants (one group,
and four groups with offsets on log E, log A, log B), fitted with the default model; we count how
often each true constant lies inside its 90% interval, and what fraction of *fresh* runs from
the same ladder fall inside the 90% predictive band. Writes ``benchmarks/results/recovery.md``.

Run: ``.venv/bin/python benchmarks/bench_recovery.py --seeds 10``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.evaluate.parallel import run_many
from bayes_scaling.fitting.fit import fit
from bayes_scaling.query.predict import predict_loss
from bayes_scaling.testing import synthetic_runs, to_sampling

RESULTS = Path(__file__).resolve().parent / "results"
P = PUBLISHED["hoffmann2022"]
OFFSETS = {"a": {}, "b": {"log_e": 0.06, "log_b": 0.2}, "c": {"log_e": -0.05, "log_a": -0.2},
           "d": {"log_e": 0.03}}


def one(seed: int, groups: int) -> dict:
    offsets = OFFSETS if groups > 1 else None
    runs = synthetic_runs("chinchilla", P, noise=0.01, group_offsets=offsets, seed=seed)
    f = fit("chinchilla", runs, random_seed=seed, calibrate=False, chains=4, draws=1000,
            tune=1000)
    truth = to_sampling("chinchilla", P)
    inside = {}
    for g in (offsets or {"all": {}}):
        for p in f.law.params:
            da = f.posterior[p]
            draws = np.asarray(da.sel(group=g) if "group" in da.dims else da).ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            true = truth[p] + (offsets or {}).get(g, {}).get(p, 0.0)
            key = p if "group" not in da.dims else f"{p}[{g}]"
            inside[key] = bool(lo < true < hi)
    fresh = synthetic_runs("chinchilla", P, noise=0.01, group_offsets=offsets, seed=seed + 1000)
    covered = []
    for gi, g in enumerate(fresh.group_names):
        sub = fresh.subset(fresh.group_index == gi)
        s = predict_loss(f, sub.n, sub.d, group=g, random_seed=seed).summary
        covered += list((sub.loss >= s["lo_90"]) & (sub.loss <= s["hi_90"]))
    return {"seed": seed, "groups": groups, "passed": f.diagnostics.passed, "inside90": inside,
            "fresh_cov90": float(np.mean(covered))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tasks = [{"seed": s, "groups": g} for g in (1, 4) for s in range(args.seeds)]
    rows = run_many(one, tasks, workers=args.workers,
                    on_progress=lambda m: print(m, file=sys.stderr, flush=True))
    lines = ["## Parameter recovery on synthetic ladders (known truth)", "",
             f"{args.seeds} seeds per design; Chinchilla law at Hoffmann et al.'s constants, "
             "8 sizes 1e7-3e9 x 5 tokens-per-parameter ratios per group, 1% noise on log loss; "
             "default model and sampler (4 x 1000 + 1000), calibration off.", "",
             "| groups | fits passing the gate | constants inside their 90% interval | "
             "fresh runs inside the 90% predictive band (median over seeds) |",
             "|---|---|---|---|"]
    for g in (1, 4):
        rs = [r for r in rows if r["groups"] == g]
        inside = [v for r in rs for v in r["inside90"].values()]
        lines.append(f"| {g} | {sum(r['passed'] for r in rs)}/{len(rs)} | "
                     f"{np.mean(inside):.1%} ({sum(inside)}/{len(inside)}) | "
                     f"{np.median([r['fresh_cov90'] for r in rs]):.1%} |")
    per_param: dict[str, list[bool]] = {}
    for r in rows:
        for k, v in r["inside90"].items():
            per_param.setdefault(k.split("[")[0] + (" (4 groups)" if r["groups"] > 1 else ""),
                                 []).append(v)
    lines += ["", "Per constant (share of seeds with the truth inside the 90% interval): "
              + ", ".join(f"{k} {np.mean(v):.0%}" for k, v in per_param.items()), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recovery.md").write_text("\n".join(lines))
    (RESULTS / "recovery.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
