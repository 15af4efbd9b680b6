"""Does a systematic discrepancy term help? Chosen by held-out score over every public ladder.

The errors of one rolling-origin refit share their sign (a refit's law is off in one direction
for all its held-out runs). :func:`bayes_scaling.fitting.calibrate.discrepancy_loglik` can treat a
fraction ``shared`` of the discrepancy variance as common to a refit's errors (a rank-one term per
refit) instead of independent. This benchmark picks ``shared`` by a held-out check that needs no
refits (it reads the stage-1 cache of ``bench_discrepancy_prior.py``):

for every ladder and every rolling-origin refit ``j`` of it, the cross-ladder prior is learned
*without the ladder's source* (with the same ``shared`` in every ladder's likelihood), updated by
the ladder's *other* refits, and scored on refit ``j``'s held-out errors: coverage of the 50% and
90% predictive intervals of log loss and the 90% interval score (on log loss). Pooled figures
are means over ladders (each ladder weighs one), reported next to every ladder's.

This is a proxy for the outer leave-one-ladder-out test (a refit's held-out runs are not the
user's; their training runs overlap the other refits'); the outer test is stage 3 of
``bench_discrepancy_prior.py``, which scores the same variants.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 15 .venv/bin/python
benchmarks/bench_discrepancy_shared.py`` (after ``bench_discrepancy_prior.py``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_discrepancy_prior import CACHE, RESULTS
from ladders import public_ladders

from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.calibrate import (
    KAPPA_GRID,
    TAU0_GRID,
    InnerBacktest,
    discrepancy_loglik,
    discrepancy_sd,
    sample_grid,
)
from bayes_scaling.fitting.discrepancy_prior import fit_population
from bayes_scaling.fitting.result import versions

SHARED = (0.0, 0.25, 0.5, 0.8)
KIND = "hull_compute"
N_SAMPLES = 4000


def _subset(bt: InnerBacktest, mask: np.ndarray) -> InnerBacktest:
    lv = np.broadcast_to(np.asarray(bt.law_var, dtype=float), bt.residuals.shape)[mask]
    dist = bt.by_kind[KIND][mask]
    return InnerBacktest(bt.residuals[mask], dist, bt.noise_scale,
                         len(np.unique(bt.refit[mask])), lv, bt.refit[mask], {KIND: dist})


def _score(bt: InnerBacktest, weights: np.ndarray, rng) -> dict[str, np.ndarray]:
    tau0, kappa = sample_grid(weights, (N_SAMPLES, 1), rng)
    lv = np.broadcast_to(np.asarray(bt.law_var, dtype=float), bt.residuals.shape)
    sd = np.sqrt(bt.noise_scale**2 + lv[None, :]
                 + discrepancy_sd(bt.distances[None, :], tau0, kappa) ** 2)
    s = sd * rng.standard_normal(sd.shape)
    r = bt.residuals
    lo, lo50, hi50, hi = np.quantile(s, [0.05, 0.25, 0.75, 0.95], axis=0)
    return {"in_90": (r >= lo) & (r <= hi), "in_50": (r >= lo50) & (r <= hi50),
            "is90": (hi - lo) + 20 * ((lo - r) * (r < lo) + (r - hi) * (r > hi))}


def run(rolling: dict, sources: dict, seed: int) -> dict:
    out = {}
    for shared in SHARED:
        t = time.perf_counter()
        lls = {n: discrepancy_loglik(bt.with_distance(KIND), shared) for n, bt in rolling.items()}
        priors = {}
        for src in set(sources.values()):
            names = [n for n in rolling if sources[n] != src]
            srcs = [sources[n] for n in names]
            priors[src] = fit_population([lls[n] for n in names], TAU0_GRID, KAPPA_GRID,
                                         weights=[1 / srcs.count(s) for s in srcs],
                                         temper=False, distance=KIND, shared=shared)
        for li, (name, bt) in enumerate(rolling.items()):
            logp = priors[sources[name]].log_density(TAU0_GRID, KAPPA_GRID)
            parts = []
            for j in np.unique(bt.refit):
                test = bt.refit == j
                post = logp + discrepancy_loglik(_subset(bt, ~test), shared)
                w = np.exp(post - post.max())
                parts.append(_score(_subset(bt, test), w / w.sum(),
                                    np.random.default_rng([seed, li, int(j)])))
            out[(shared, name)] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        print(f"  shared {shared}: {time.perf_counter() - t:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = CACHE / "rolling_errors.pkl"
    if not path.exists():
        raise SystemExit("run bench_discrepancy_prior.py first (its stage 1 cache is missing)")
    rolling = pickle.loads(path.read_bytes())
    sources = {n: s for n, (s, _) in public_ladders().items()}
    t0 = time.perf_counter()
    res = run(rolling, sources, args.seed)

    def stat(shared, name, key):
        return float(np.mean(res[(shared, name)][key]))

    pooled = {s: {k: float(np.mean([stat(s, n, k) for n in rolling]))
                  for k in ("in_90", "in_50", "is90")} for s in SHARED}
    best = min(SHARED, key=lambda s: pooled[s]["is90"])
    lines = ["## A systematic discrepancy term: held-out check over every public ladder", "",
             f"{len(rolling)} ladders, {sum(bt.n_refits for bt in rolling.values())} rolling-"
             "origin refits, "
             f"{sum(bt.residuals.size for bt in rolling.values())} held-out errors. Each refit "
             "scored with the prior learned without its ladder's source, updated by the "
             "ladder's other refits (`shared`: fraction of the discrepancy variance common to "
             "one refit's errors). Pooled = mean over ladders. Interval score on log loss.", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}, "
             f"{versions()}; shared, niced.", "",
             "| shared | cov 90 | cov 50 | interval score 90 | ladders with a better score "
             "than shared = 0 |", "|---|---|---|---|---|"]
    for s in SHARED:
        better = sum(stat(s, n, "is90") < stat(0.0, n, "is90") for n in rolling)
        lines.append(f"| {s} | {pooled[s]['in_90']:.3f} | {pooled[s]['in_50']:.3f} | "
                     f"{pooled[s]['is90']:.4f} | {better} of {len(rolling)} |")
    lines += ["", f"Best pooled interval score: **shared = {best}**.", "",
              "### Per ladder (cov 90 / cov 50 / interval score 90)", "",
              "| ladder | " + " | ".join(f"shared {s}" for s in SHARED) + " |",
              "|---|" + "---|" * len(SHARED)]
    for n in rolling:
        lines.append(f"| {n} | " + " | ".join(
            f"{stat(s, n, 'in_90'):.2f} / {stat(s, n, 'in_50'):.2f} / {stat(s, n, 'is90'):.4f}"
            for s in SHARED) + " |")
    lines += ["", f"{time.perf_counter() - t0:.0f} s.", "",
              "*Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 15 .venv/bin/python "
              "benchmarks/bench_discrepancy_shared.py` (after `bench_discrepancy_prior.py`)*", ""]
    text = "\n".join(lines)
    with atomic_path(RESULTS / "calibration_shared.md") as tmp:
        Path(tmp).write_text(text)
    with atomic_path(RESULTS / "calibration_shared.json") as tmp:
        Path(tmp).write_text(json.dumps(
            {"best": best, "pooled": {str(k): v for k, v in pooled.items()},
             "per_ladder": {n: {str(s): {k: stat(s, n, k) for k in ("in_90", "in_50", "is90")}
                                for s in SHARED} for n in rolling}}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
