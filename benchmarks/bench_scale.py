"""Growth with data and with groups: time, ESS/s, convergence and peak memory per cell.

Synthetic ladders from the Chinchilla law (Epoch AI's constants), log-uniform N in [1e7, 3e9]
and tokens per parameter in [5, 100], per-group offsets on log E, log A, log B drawn with sd
0.05, Student-t noise (nu = 5, scale 0.01). Each cell is fitted in a fresh subprocess with the
default settings (4 chains x 1000 + 1000, numpyro, calibration off) and must pass the gate.
Writes ``benchmarks/results/scale.md``.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--cells 245x4,2450x4,...]``; a cell
written ``24500x4p`` runs its chains in parallel whatever its size (the measurement behind
``PARALLEL_MAX_OBS``; about 10 minutes and 20 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CELLS = "245x4,2450x4,24500x4,2450x16,2450x64"

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.testing import to_sampling
n_runs, n_groups = int(sys.argv[1]), int(sys.argv[2])
forced = sys.argv[3:] == ["parallel"]
if forced:  # chains in parallel at any size: what PARALLEL_MAX_OBS guards against
    import bayes_scaling.model.sampling as smp
    smp.PARALLEL_MAX_OBS = smp.FLOAT32_PARALLEL_MAX_OBS = 10**12
rng = np.random.default_rng(n_runs * 1000 + n_groups)
law = LAWS["chinchilla"]
theta = to_sampling("chinchilla", PUBLISHED["epoch2024"])
g = np.arange(n_runs) % n_groups
offs = {p: rng.normal(0, 0.05, n_groups) for p in ("log_e", "log_a", "log_b")}
n = np.exp(rng.uniform(np.log(1e7), np.log(3e9), n_runs))
d = n * np.exp(rng.uniform(np.log(5), np.log(100), n_runs))
th = {p: theta[p] + (offs[p][g] if p in offs else 0.0) for p in law.params}
mu = law.evaluate_log({"n": np.log(n), "d": np.log(d)}, th)
loss = np.exp(mu + 0.01 * rng.standard_t(5, n_runs))
runs = load_runs(pd.DataFrame({"group": [f"g{i:02d}" for i in g], "n_params": n,
                               "n_tokens": d, "loss": loss}))
from bayes_scaling.fitting.fit import fit
t0 = time.perf_counter()
f = fit("chinchilla", runs, random_seed=1, calibrate=False)
d = f.diagnostics
from bayes_scaling.model.sampling import FLOAT32_PARALLEL_MAX_OBS, PARALLEL_MAX_OBS
limit = FLOAT32_PARALLEL_MAX_OBS if f.meta.get("precision") == "float32" else PARALLEL_MAX_OBS
print("RESULT " + json.dumps({"wall_s": time.perf_counter() - t0,
      "chains_run": "one after another" if n_runs > limit and not forced
      else "in parallel", "forced_parallel": forced,
      "min_ess_bulk": d.min_ess_bulk,
      "min_ess_tail": d.min_ess_tail, "max_rhat": d.max_rhat, "divergences": d.divergences,
      "passed": d.passed, "centred": f.meta["centred_offsets"],
      "dense_mass": f.meta.get("dense_mass", False), "precision": f.meta.get("precision"),
      "cpu_s": time.process_time(),
      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_cell(n_runs: int, n_groups: int, parallel: bool = False) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n_runs), str(n_groups),
                           *(["parallel"] if parallel else [])],
                          capture_output=True, text=True, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return {"n_runs": n_runs, "n_groups": n_groups, "load_before": load,
            "when": time.strftime("%Y-%m-%d"),
            **json.loads(line[7:])}


def _cpu(row: dict) -> str:
    return f"{row['cpu_s']:.0f}" if "cpu_s" in row else "-"


def _load(row: dict) -> str:
    return f"{row['load_before']:.1f}" if "load_before" in row else "-"


#: Written when no ``--cells <R>x<G>p`` row is saved: figures typed by hand, marked as such.
PARALLEL_DATED_NOTE = ("Dated note (2026-11-25, commit 56c72f6; typed by hand from one run while "
                       "developing; not regenerated: `--cells 24500x4p` reruns it): the 24,500 x 4"
                       " cell measured that way took 576 s and peaked at 20,092 MB (of 24 GB).")


def _parallel_note(rows: list[dict]) -> str:
    forced = [r for r in rows if r.get("forced_parallel")]
    if not forced:
        return PARALLEL_DATED_NOTE
    return " ".join(f"The {r['n_runs']:,} x {r['n_groups']} cell measured that way "
                    f"(`--cells {r['n_runs']}x{r['n_groups']}p`, {r.get('when', '?')}) took "
                    f"{r['wall_s']:.0f} s and peaked at {r['peak_mb']:,.0f} MB." for r in forced)


def render(rows: list[dict]) -> str:
    lines = ["## Scale: growth with runs and groups (synthetic Chinchilla ladders)", "",
             "Default fit (4 chains x 1000 tune + 1000 draws, numpyro), fresh process per cell,"
             " wall time from model build to diagnostics (imports excluded). Chains run in"
             " parallel (one XLA host device each) up to 10,000 runs of a float64 model and"
             " 32,768 of a float32 one (since 2026-12-07, session 11; before, 10,000 for both),"
             " one after another above (`sampling.PARALLEL_MAX_OBS`,"
             " `FLOAT32_PARALLEL_MAX_OBS`): with parallel chains on the CPU resident memory grows"
             " with every NUTS step in proportion to the data once its per-run buffers exceed"
             " glibc's 128 kB mmap threshold (`parallel_memory.md`). "
             + _parallel_note(rows), "",
             "From 10,000 runs on (since 2026-12-07, session 9) the per-run arithmetic runs in"
             " float32, summed in float64 (`model.build.FLOAT32_MIN_OBS`; gradient cost in"
             " `likelihood.md`), and NUTS runs in the Laplace-whitened space from overdispersed"
             " Laplace draws (`sampling._whitened`): PyMC's +-1 jitter had put the chains"
             " thousands of posterior standard deviations from the mode, and the warm-up adapted"
             " to the walk in (270 leapfrog steps per kept draw at 24,500 x 64 with a diagonal"
             " mass matrix; 15 in the whitened space: a one-off diagnostic, not a committed"
             " benchmark). The 24,500-run rows measured before"
             " that (no date) took 1,025 s for 4 groups.", "",
             "Mass matrix: dense for models of up to 40 free dimensions (4 groups), diagonal"
             " above (since 2026-12-07; rows measured before say \"diagonal\" and, with no"
             " date, come from an earlier machine about 2.5x faster per core). CPU s is the"
             " process's user + system time (imports included), which a loaded machine"
             " inflates less than wall time.", "",
             "| runs | groups | offsets | mass matrix | chains | wall s | CPU s | min bulk ESS"
             " | bulk ESS/s | min tail ESS | max r-hat | divergences | gate | peak MB |"
             " load before | measured |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if not r.get("forced_parallel")):
        lines.append(
            f"| {r['n_runs']} | {r['n_groups']} | {'centred' if r['centred'] else 'non-centred'}"
            f" | {'dense' if r.get('dense_mass') else 'diagonal'}"
            f" | {r.get('chains_run', 'in parallel')}"
            f" | {r['wall_s']:.0f} | {_cpu(r)} | {r['min_ess_bulk']:.0f} | "
            f"{r['min_ess_bulk'] / r['wall_s']:.1f} | {r['min_ess_tail']:.0f} | "
            f"{r['max_rhat']:.3f} | {r['divergences']} | "
            f"{'passed' if r['passed'] else 'FAILED'} | {r['peak_mb']:.0f} | "
            f"{_load(r)} | {r.get('when', '-')} |")
    lines += ["", _growth(rows)]
    return "\n".join(lines) + "\n"


def _slope(rows: list[dict], x: str, y: str) -> float:
    """Least-squares slope of log y on log x (the growth exponent)."""
    import numpy as np

    lx = np.log([r[x] for r in rows])
    ly = np.log([r[y] for r in rows])
    return float(np.polyfit(lx, ly, 1)[0])


def _growth(rows: list[dict]) -> str:
    """The growth exponents of wall time and peak memory: against runs at 4 groups, against
    groups at 2,450 runs (default cells only)."""
    plain = [r for r in rows if not r.get("forced_parallel")]
    by_runs = sorted((r for r in plain if r["n_groups"] == 4), key=lambda r: r["n_runs"])
    by_groups = sorted((r for r in plain if r["n_runs"] == 2450), key=lambda r: r["n_groups"])
    parts = []
    for label, sel, x in (("runs", by_runs, "n_runs"), ("groups", by_groups, "n_groups")):
        if len(sel) >= 2:
            span = f"{sel[0][x]:,} -> {sel[-1][x]:,}"
            parts.append(f"against {label} ({span}, {len(sel)} cells): wall time grows as "
                         f"{label}^{_slope(sel, x, 'wall_s'):.2f}, peak memory as "
                         f"{label}^{_slope(sel, x, 'peak_mb'):.2f}")
    return ("**Growth exponents** (least-squares slope of log time or memory on log size; the"
            " cells come from different runs and loads, see the last two columns): "
            + "; ".join(parts) + ".") if parts else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default=DEFAULT_CELLS)
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite scale.md from scale.json without fitting")
    args = ap.parse_args()
    if args.render_only:
        rows = json.loads((RESULTS / "scale.json").read_text())
        (RESULTS / "scale.md").write_text(render(rows))
        return
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / "scale.json"
    # Cells are expensive: keep earlier cells and replace only those measured now.
    cells = {(r["n_runs"], r["n_groups"], *(["p"] if r.get("forced_parallel") else [])): r
             for r in
             (json.loads(saved.read_text()) if saved.exists() else [])}
    for cell in args.cells.split(","):  # "<runs>x<groups>", "p" after it: parallel chains
        parallel = cell.endswith("p")
        r, g = (int(v) for v in cell.rstrip("p").split("x"))
        key = (r, g, "p") if parallel else (r, g)
        cells[key] = run_cell(r, g, parallel)
        print(cells[key], file=sys.stderr, flush=True)
        rows = [cells[k] for k in sorted(cells, key=lambda k: (k[1] != 4, k[1], k[0]))]
        (RESULTS / "scale.md").write_text(render(rows))
        saved.write_text(json.dumps(rows, indent=1))
    print(render(rows))


if __name__ == "__main__":
    main()
