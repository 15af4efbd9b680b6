"""Curve laws at scale after session 11's solve changes: per-gradient cost against the code
before them, side by side in one run, then default fits end to end (issue 18, item 2).

The changes (2026-12-07, session 11): in a float32 graph the law's Python floats are float32
constants (the schedule law's floor fraction 0.05 had made its whole solve float64); the solve's
Newton iterations are one Op that JAX runs as a while loop stopping once every checkpoint has
converged (before: a fixed 6 iterations unrolled, from the better of two starts); the residual
takes 4 transcendental functions; float32 models run their chains in parallel up to 32,768
observations (``sampling.FLOAT32_PARALLEL_MAX_OBS``).

1. Per gradient: JAX log density and gradient of each model's graph on the unthinned
   20,000-checkpoint table (``bench_schedule.speed_table``), at the first chain's start point
   (near the posterior, where NUTS spends its time). Each measurement is a fresh process;
   ``--baseline TREE`` (a checkout of the code before, e.g. ``git worktree add /tmp/base
   777d288``) runs the same measurement on that code, interleaved (base, new, base, new).
2. End to end (this code): load + default fit (4 chains x 1000 + 1000) of
   ``dynamics_schedule_fixed_b`` and ``dynamics_schedule`` on that table, and ``dynamics`` on the
   4-batch-size table (``bench_schedule.multi_batch_table``, 6,680 checkpoints kept).

Writes ``benchmarks/results/curve_speed.md`` (and ``.json``). Run:
``python benchmarks/bench_curve_speed.py [--baseline TREE] [--only grad,fits]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
MODELS = ("dynamics_schedule_fixed_b", "dynamics_schedule")

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, jax
from pymc.initial_point import make_initial_point_fn
from pymc.sampling.jax import get_jaxified_logp
from bayes_scaling.data.curves import load_curves
from bayes_scaling.fitting.dynamics import start_points
from bayes_scaling.model.build_curves import build_dynamics_model
from bayes_scaling.model.spec import load_spec
import bayes_scaling
assert bayes_scaling.__file__.startswith(sys.argv[3]), bayes_scaling.__file__
curves = load_curves(pd.read_csv(sys.argv[2]), schedule={"shape": "cosine", "warmup_steps": 50.0,
                     "final_fraction": 0.1}, max_points_per_curve=None, max_points=None)
spec = load_spec(sys.argv[1])
model = build_dynamics_model(spec, curves)
start = start_points(spec, curves, model, 1, np.random.default_rng(1))[0]
point = make_initial_point_fn(model=model, overrides=start, jitter_rvs=set())(0)
x = [np.asarray(point[v.name]) for v in model.value_vars]
logp = get_jaxified_logp(model)
f = jax.jit(jax.value_and_grad(lambda *a: logp(list(a)), argnums=tuple(range(len(x)))))
jax.block_until_ready(f(*x))
walls, cpus = [], []
for _ in range(5):
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(40):
        jax.block_until_ready(f(*x))
    walls.append(1e3 * (time.perf_counter() - t0) / 40)
    cpus.append(1e3 * (time.process_time() - c0) / 40)
print("RESULT " + json.dumps({"wall_ms": float(np.median(walls)), "cpu_ms": float(np.median(cpus)),
                              "points": int(curves.n_points)}))
"""


def gradient_ms(model: str, tree: Path, table: Path) -> dict:
    """One fresh process on ``tree``'s package (its ``bayes_scaling`` is checked to be that
    tree's), the table read from ``table``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, model, str(table),
                           str(tree.resolve())], env=env, capture_output=True, text=True,
                          check=True, cwd=tree)
    return json.loads(next(ln for ln in proc.stdout.splitlines()
                           if ln.startswith("RESULT "))[7:])


def section_gradients(baseline: Path | None) -> dict:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from bench_schedule import speed_table

    trees = {"new": HERE.parent, **({"base": baseline} if baseline else {})}
    rows: dict[str, dict[str, list[dict]]] = {m: {k: [] for k in trees} for m in MODELS}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "speed_table.csv"
        speed_table().to_csv(table, index=False)
        for _ in range(2):
            for m in MODELS:
                for label in sorted(trees):  # base before new
                    rows[m][label].append(gradient_ms(m, trees[label], table))
                    print(m, label, rows[m][label][-1], flush=True)
    return {"loadavg_start": load0, "loadavg_end": os.getloadavg()[0],
            "baseline": (subprocess.run(["git", "-C", str(baseline), "rev-parse", "--short",
                                         "HEAD"], capture_output=True, text=True).stdout.strip()
                         if baseline else None),
            "runs": {m: {k: {s: sorted(r[s] for r in v)[len(v) // 2]
                             for s in ("wall_ms", "cpu_ms", "points")}
                         for k, v in d.items()} for m, d in rows.items()}}


def section_fits() -> list[dict]:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from bench_schedule import _timed_fit, multi_batch_table, speed_table

    from bayes_scaling.data.curves import load_curves

    df = speed_table()

    def load():
        return load_curves(df, schedule={"shape": "cosine", "warmup_steps": 50.0,
                                         "final_fraction": 0.1},
                           max_points_per_curve=None, max_points=None)

    rows = [_timed_fit(m, load, {}) for m in MODELS]
    multi = multi_batch_table()
    rows.append({**_timed_fit("dynamics", lambda: multi, {}), "table": "4 batch sizes"})
    return rows


def write(res: dict) -> None:
    lines = ["## Curve laws at scale (session 11): the solve's cost", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}. {__doc__.split(chr(10) + chr(10))[1]}", ""]
    if (g := res.get("grad")) is not None:
        lines += ["Per gradient: the slower of 2 interleaved fresh processes, each the median "
                  f"of 5 x 40 evaluations; load {g['loadavg_start']:.1f} -> "
                  f"{g['loadavg_end']:.1f}"
                  + (f"; before = commit `{g['baseline']}`" if g["baseline"] else "") + ":", "",
                  "| model | checkpoints | before: wall ms (CPU ms) | now: wall ms (CPU ms) | "
                  "ratio (wall) |", "|---|---|---|---|---|"]
        for m, d in g["runs"].items():
            new, base = d["new"], d.get("base")
            before = f"{base['wall_ms']:.2f} ({base['cpu_ms']:.2f})" if base else "-"
            ratio = f"{base['wall_ms'] / new['wall_ms']:.1f}x" if base else "-"
            lines.append(f"| `{m}` | {new['points']:,} | {before} | "
                         f"{new['wall_ms']:.2f} ({new['cpu_ms']:.2f}) | {ratio} |")
        lines.append("")
    if (fits := res.get("fits")) is not None:
        lines += ["End to end (load + default fit, 4 chains x 1000 + 1000, no retry), one process,"
                  " models in turn; the issue's figure is <= 120 s with the gate passed:", "",
                  "| model | table | checkpoints | wall s | CPU s | steps/draw | target | start "
                  "| precision | gate | min bulk / tail ESS | peak MB | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in fits:
            lines.append(
                f"| `{x['model']}` | {x.get('table', 'one batch size')} | "
                f"{x['points_fitted']:,} | **{x['total_s']:.0f}** | {x['cpu_s']:.0f} | "
                f"{x['steps_per_draw']:.1f} | {x['target_accept']} | {x['init_mass']} | "
                f"{x['precision']} | {'passed' if x['passed'] else 'FAILED'} (r-hat "
                f"{x['max_rhat']:.3f}, {x['divergences']} div) | {x['min_ess_bulk']:.0f} / "
                f"{x['min_ess_tail']:.0f} | {x['peak_mb']:.0f} | {x['loadavg_start']:.1f} -> "
                f"{x['loadavg_end']:.1f} |")
        lines.append("")
    (OUT / "curve_speed.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--only", default="grad,fits")
    args = ap.parse_args()
    path = OUT / "curve_speed.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    if "grad" in args.only.split(","):
        res["grad"] = section_gradients(args.baseline)
        path.write_text(json.dumps(res, indent=1))
    if "fits" in args.only.split(","):
        res["fits"] = section_fits()
        path.write_text(json.dumps(res, indent=1))
    write(res)


if __name__ == "__main__":
    main()
