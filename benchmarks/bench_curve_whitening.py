"""From how many checkpoints should a curve fit run NUTS in the Laplace-whitened space?

Today curve fits are whitened from ``sampling.LAPLACE_MIN_OBS`` (10,000) observations on, the
threshold measured for runs. Session 10 measured the 4-batch-size table of
``bench_schedule.multi_batch_table`` (6,680 checkpoints) whitened: 7.5 leapfrog steps per draw
instead of 16 and about half the CPU, and small tables (200-785 checkpoints) whitened: more bulk
ESS per step, but 2-5 s of Laplace set-up on fits of 6-11 s.

Rule stated before these runs (2026-12-07, session 11): curve fits are whitened by default from
the smallest size ``S`` of the grid below at which, at ``S`` and at every larger size of the grid,
the whitened default fit passes the convergence gate with 0 divergences and its minimum bulk ESS
per wall second is at least the identity fit's. The two fits of a size run back to back in one
process (identity first), so that they share the load. If no size qualifies, 10,000 stays.

Grid: ``multi_batch_table`` (Kaplan et al.'s constants, 4 batch sizes, 10 sizes; law
``dynamics``) loaded with at most 25, 50, 100 checkpoints per curve and unthinned (about 1,000,
2,000, 4,000 and 6,680 checkpoints); default fit (4 chains x 1000 + 1000, numpyro, no retry),
seed 20261207.

Writes ``benchmarks/results/curve_whitening.md`` (and ``.json``; resumable). Run:
``python benchmarks/bench_curve_whitening.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_schedule import multi_batch_table  # noqa: E402

from bayes_scaling.data.curves import load_curves  # noqa: E402
from bayes_scaling.fitting.dynamics import fit_dynamics  # noqa: E402

OUT = HERE / "results"
SEED = 20261207
PER_CURVE = (25, 50, 100, None)


def measure(curves, mass: str) -> dict:
    os.environ["BAYES_SCALING_INIT_MASS"] = mass
    load0, t0, c0 = os.getloadavg()[0], time.time(), time.process_time()
    fit = fit_dynamics("dynamics", curves, retries=0, random_seed=SEED, on_bad="warn")
    wall = time.time() - t0
    d = fit.diagnostics
    return {"mass": mass, "points": int(curves.n_points), "wall_s": wall,
            "cpu_s": time.process_time() - c0, "passed": bool(d.passed),
            "divergences": int(d.divergences), "max_rhat": float(d.max_rhat),
            "min_ess_bulk": float(d.min_ess_bulk), "ess_per_s": float(d.min_ess_bulk) / wall,
            "steps_per_draw": float(np.asarray(fit.idata.sample_stats["n_steps"]).mean()),
            "init_mass": fit.meta.get("init_mass"), "load_before": load0}


def verdict(rows: list[dict]) -> str:
    sizes = sorted({r["points"] for r in rows})
    if len(sizes) < len(PER_CURVE):
        return "incomplete"
    ok = {}
    for n in sizes:
        ident = next(r for r in rows if r["points"] == n and r["mass"] == "identity")
        white = next(r for r in rows if r["points"] == n and r["mass"] == "laplace")
        ok[n] = (white["passed"] and white["divergences"] == 0
                 and white["ess_per_s"] >= ident["ess_per_s"])
    qualifying = [n for n in sizes if all(ok[m] for m in sizes if m >= n)]
    return (f"whiten curve fits from {qualifying[0]:,} checkpoints" if qualifying else
            "keep 10,000 (no size qualifies)")


def write(rows: list[dict]) -> None:
    lines = ["## Whitening curve fits below 10,000 checkpoints", "",
             __doc__.split("\n\n")[2].replace("\n", " "), "",
             f"**Verdict: {verdict(rows)}.**", "",
             "| checkpoints | start | gate | divergences | max r-hat | min bulk ESS | wall s | "
             "CPU s | bulk ESS / s | steps/draw | load |", "|---" * 11 + "|"]
    for r in sorted(rows, key=lambda r: (r["points"], r["mass"] != "identity")):
        lines.append(f"| {r['points']:,} | {r['init_mass']} | "
                     f"{'passed' if r['passed'] else 'FAILED'} | {r['divergences']} | "
                     f"{r['max_rhat']:.3f} | {r['min_ess_bulk']:.0f} | {r['wall_s']:.0f} | "
                     f"{r['cpu_s']:.0f} | {r['ess_per_s']:.1f} | {r['steps_per_draw']:.1f} | "
                     f"{r['load_before']:.1f} |")
    (OUT / "curve_whitening.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    path = OUT / "curve_whitening.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    frame = multi_batch_table().frame
    for k in PER_CURVE:
        curves = load_curves(frame, max_points_per_curve=k, max_points=None)
        for mass in ("identity", "laplace"):
            if any(r["points"] == curves.n_points and r["mass"] == mass for r in rows):
                continue
            rows.append(measure(curves, mass))
            print(rows[-1], flush=True)
            path.write_text(json.dumps(rows, indent=1))
    write(rows)


if __name__ == "__main__":
    main()
