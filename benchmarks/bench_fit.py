"""Speed of the default fit vs PyMC's own NUTS vs nutpie vs the Huber+bootstrap point fit.

Every configuration runs in a fresh subprocess (so imports, compilation and peak memory are
counted as a user sees them), on the same data (the shipped Chinchilla runs, 240 after Epoch's
drop) and the same draws (4 chains x 1000 tune + 1000 draws). Repeated ``--repeats`` times;
medians and ratios are written to ``benchmarks/results/fit.md`` (assembled into RESULTS.md by
``benchmarks/assemble.py``). Also: ``predict`` for 4000 draws x 200 points, and a cold
``bayes-scaling predict`` on a saved fit.

Run: ``BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_fit.py``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
backend = sys.argv[1]
from bayes_scaling.data.registry import load_dataset
runs = load_dataset("chinchilla")
if backend == "huber-bootstrap":
    from bayes_scaling.fitting.fit import fit_baseline
    f = fit_baseline("chinchilla", runs, n_boot=100, random_seed=1)
    out = {"min_ess_bulk": None, "max_rhat": None, "divergences": None}
else:
    from bayes_scaling.fitting.fit import fit
    ess = 400 if backend.endswith("-ess400") else None
    dense = False if backend.endswith("-diag") else None
    f = fit("chinchilla", runs, backend=backend.removesuffix("-ess400").removesuffix("-diag"),
            random_seed=1, calibrate=False, ess_target=ess, draws=1000, dense_mass=dense)
    d = f.diagnostics
    out = {"min_ess_bulk": d.min_ess_bulk, "max_rhat": d.max_rhat, "divergences": d.divergences,
           "sampling_s": d.sampling_seconds, "draws": d.draws, "passed": d.passed,
           "dense_mass": f.meta.get("dense_mass")}
    stats = f.idata["sample_stats"]
    for name in ("n_steps", "tree_depth"):
        if name in stats:
            out["steps_per_draw"] = float(stats[name].mean()) if name == "n_steps" else float(
                (2.0 ** stats[name]).mean())
            break
out["wall_s"] = time.perf_counter() - t0
if len(sys.argv) > 2 and sys.argv[2] == "second":
    # a second fit in the same process (compiled, imported): what a notebook user waits
    t1 = time.perf_counter()
    g = fit("chinchilla", runs, backend=backend.removesuffix("-ess400").removesuffix("-diag"),
            random_seed=2, calibrate=False, ess_target=ess, draws=1000, dense_mass=dense)
    out["second_s"] = time.perf_counter() - t1
    out["second_ess_bulk"] = g.diagnostics.min_ess_bulk
    out["second_passed"] = g.diagnostics.passed
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def run_child(backend: str, env: dict[str, str], second: bool = False) -> dict:
    args = [sys.executable, "-c", CHILD, backend] + (["second"] if second else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[7:])


def bench_fits(repeats: int, backends: list[str]) -> dict[str, list[dict]]:
    env = dict(os.environ)
    out: dict[str, list[dict]] = {b: [] for b in backends}
    for b in ("numpyro", "numpyro-ess400"):
        # numpyro with an empty JAX cache: the first-ever fit on a machine
        out[f"{b} (empty compile cache)"] = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cold_cache:
                out[f"{b} (empty compile cache)"].append(run_child(
                    b, {**env, "BAYES_SCALING_JAX_CACHE": cold_cache}))
    for r in range(repeats):
        for b in backends:
            res = run_child(b, env, second=b != "huber-bootstrap")
            out[b].append(res)
            print(f"repeat {r + 1}/{repeats} {b}: {res}", file=sys.stderr, flush=True)
    return out


def bench_queries() -> dict[str, float]:
    import numpy as np

    from bayes_scaling.constants import PUBLISHED
    from bayes_scaling.query.predict import predict_loss
    from bayes_scaling.testing import fake_fit

    f = fake_fit("chinchilla", PUBLISHED["hoffmann2022"], chains=4, draws=1000,
                 extra={"kappa": 0.03, "tau0": 0.01})
    n = np.geomspace(1e8, 1e11, 200)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        predict_loss(f, n, 20 * n, band="predictive", random_seed=0)
        times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.nc"
        f.save(path)
        cli = Path(sys.executable).with_name("bayes-scaling")
        cold = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([str(cli), "predict", str(path), "--n-params", "7e10", "--n-tokens",
                            "1.4e12", "--json"], check=True, capture_output=True)
            cold.append(time.perf_counter() - t)
    return {"predict_4000x200_ms": 1000 * statistics.median(times),
            "cli_predict_cold_s": statistics.median(cold)}


def _steps(rs: list[dict]) -> str:
    """Median leapfrog steps per draw (numpyro's ``n_steps``; 2^depth otherwise), or "-"."""
    got = [r["steps_per_draw"] for r in rs if r.get("steps_per_draw") is not None]
    return f"{statistics.median(got):.0f}" if got else "-"


def versions() -> str:
    import importlib.metadata as md

    names = ("pymc", "pytensor", "numpyro", "jax", "nutpie", "arviz", "numpy")
    return ", ".join(f"{n} {md.version(n)}" for n in names)


def render(fits: dict[str, list[dict]], queries: dict[str, float], repeats: int) -> str:
    med = {b: {k: statistics.median([r[k] for r in rs if r.get(k) is not None])
               for k in ("wall_s", "peak_mb")} for b, rs in fits.items() if rs}
    base = med["numpyro"]["wall_s"]
    load = os.getloadavg()
    lines = [
        "## Fit speed (Chinchilla, 240 runs, 4 chains x 1000 tune + 1000 draws)", "",
        f"Load average when the benchmark ended: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(1 / 5 / 15 min).", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {versions()}. Each cell: a fresh process "
        f"(import + build + compile + sample + diagnostics), median of {repeats} repeats; "
        "the machine was shared with other work, so read ratios, not absolute times.", "",
        "Configurations: `numpyro` is the default fit (4 chains x 1000 tune + 1000 draws); "
        "`numpyro-ess400` samples in blocks of 200 draws and stops once every constant has bulk "
        "and tail ESS >= 400 and r-hat <= 1.01 (`fit(..., ess_target=400)`, "
        "`bayes-scaling fit --ess-target 400`); `-diag` forces a diagonal mass matrix (the "
        "default is dense for models of up to 40 free dimensions, diagonal above); "
        "\"empty compile cache\" is the first fit on a fresh machine (JAX's persistent cache "
        "empty), the others reuse the cache.", "",
        "| configuration | wall s (median) | x slower than default | draws per chain | "
        "min bulk ESS | bulk ESS / s | max r-hat | divergences | leapfrog steps per draw | "
        "peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for b, rs in fits.items():
        if not rs:
            continue
        ess = [r["min_ess_bulk"] for r in rs if r.get("min_ess_bulk") is not None]
        rh = [r["max_rhat"] for r in rs if r.get("max_rhat") is not None]
        dv = [r["divergences"] for r in rs if r.get("divergences") is not None]
        w = med[b]["wall_s"]
        nd = [r.get("draws") for r in rs if r.get("draws") is not None]
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in rs)
        lines.append(
            f"| {b} | {w:.1f} ({walls}) | {w / base:.2f} | {statistics.median(nd):.0f} | "
            f"{statistics.median(ess):.0f} | {statistics.median(ess) / w:.0f} | "
            f"{max(rh):.3f} | {max(dv)} | {_steps(rs)} | {med[b]['peak_mb']:.0f} |" if ess else
            f"| {b} | {w:.1f} ({walls}) | {w / base:.2f} | - | - | - | - | - | - | "
            f"{med[b]['peak_mb']:.0f} |")
    if "pymc" in med:
        lines += ["", f"**Default (numpyro) vs PyMC's own NUTS, end to end: "
                  f"{med['pymc']['wall_s'] / base:.1f}x faster.**"]
    second = {b: [r["second_s"] for r in rs if r.get("second_s") is not None]
              for b, rs in fits.items()}
    if second.get("numpyro"):
        lines += ["", "A second fit in the same process (seed 2; imports done, code compiled: "
                  "what a user fitting again in a notebook waits), median of the repeats:", "",
                  "| configuration | second fit, wall s | x slower than default | min bulk ESS "
                  "| bulk ESS / s | gate |", "|---|---|---|---|---|---|"]
        base2 = statistics.median(second["numpyro"])
        for b, xs in second.items():
            if not xs:
                continue
            ess2 = statistics.median([r["second_ess_bulk"] for r in fits[b]
                                      if r.get("second_s") is not None])
            ok = all(r["second_passed"] for r in fits[b] if r.get("second_s") is not None)
            w2 = statistics.median(xs)
            lines.append(f"| {b} | {w2:.1f} ({', '.join(f'{x:.1f}' for x in xs)}) | "
                         f"{w2 / base2:.2f} | {ess2:.0f} | {ess2 / w2:.0f} | "
                         f"{'passed' if ok else 'FAILED'} |")
    lines += ["", f"`predict_loss` (predictive band, 4000 draws x 200 points): "
              f"{queries['predict_4000x200_ms']:.1f} ms (median of 7).  ",
              f"`bayes-scaling predict` on a saved fit, cold process: "
              f"{queries['cli_predict_cold_s']:.2f} s (median of 3).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends",
                    default="numpyro,numpyro-diag,numpyro-ess400,nutpie,pymc,huber-bootstrap")
    args = ap.parse_args()
    fits = bench_fits(args.repeats, args.backends.split(","))
    queries = bench_queries()
    RESULTS.mkdir(exist_ok=True)
    text = render(fits, queries, args.repeats)
    (RESULTS / "fit.md").write_text(text)
    (RESULTS / "fit.json").write_text(json.dumps({"fits": fits, "queries": queries}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
