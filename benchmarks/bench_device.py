"""One benchmark line per device: the default fits on the CPU and, where JAX sees one, a GPU.

Each workload runs in a fresh process with ``BAYES_SCALING_DEVICE`` set (what
``bayes-scaling fit --device`` sets), so the device is chosen before JAX starts:

- ``chinchilla``: the default fit of the shipped Chinchilla runs (4 chains x 1000 + 1000,
  ``bench_fit.py``'s child; wall time from the first import);
- ``scale``: 24,500 synthetic runs x 64 groups (``bench_scale.py``'s child; wall time from the
  model build).

A device JAX cannot use is one line saying why (the fit's own one-line refusal): on a machine
without a GPU the GPU line is not measured. Writes ``benchmarks/results/device.md``.

Run: ``BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_device.py`` (on a lent
GPU machine: ``pip install 'bayes_scaling[gpu]'`` first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_fit import CHILD as FIT_CHILD  # noqa: E402
from bench_scale import CHILD as SCALE_CHILD  # noqa: E402

WORKLOADS = {"chinchilla": (FIT_CHILD, ["numpyro"]), "scale": (SCALE_CHILD, ["24500", "64"])}


def run(device: str, workload: str) -> dict:
    """One workload in a fresh process on ``device``: its result, or why it could not run."""
    child, args = WORKLOADS[workload]
    env = {**os.environ, "BAYES_SCALING_DEVICE": device}
    env.pop("JAX_PLATFORMS", None)
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", child, *args], capture_output=True, text=True,
                          env=env, check=False)
    row = {"device": device, "workload": workload, "load_before": load}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "device " in ln), lines[-1] if lines else "")
        return {**row, "error": why.split("BayesScalingError: ")[-1]}
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return {**row, **json.loads(line[7:])}


def render(rows: list[dict]) -> str:
    out = ["## Devices: the default fits on the CPU and on a GPU", "",
           f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
           f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}. Each cell: a fresh "
           "process with `BAYES_SCALING_DEVICE` set (`bayes-scaling fit --device`). "
           "`chinchilla`: the shipped runs, 4 chains x (1000 + 1000), wall time from the first "
           "import (`bench_fit.py`'s child); `scale`: 24,500 synthetic runs x 64 groups, wall "
           "time from the model build (`bench_scale.py`'s child). The CPU is the default; a GPU "
           "is used only when asked for.", "",
           "| device | workload | wall s | min bulk ESS | bulk ESS / s | max r-hat | divergences "
           "| gate | peak MB | load before |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['device']} | {r['workload']} | not measured: {r['error']} "
                       "| | | | | | | |")
            continue
        ess = r.get("min_ess_bulk") or 0.0
        out.append(f"| {r['device']} | {r['workload']} | {r['wall_s']:.1f} | {ess:.0f} | "
                   f"{ess / r['wall_s']:.0f} | {r['max_rhat']:.3f} | {r['divergences']} | "
                   f"{'passed' if r['passed'] else 'FAILED'} | {r.get('peak_mb', 0):.0f} | "
                   f"{r['load_before']:.1f} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="cpu,gpu")
    ap.add_argument("--workloads", default="chinchilla,scale")
    a = ap.parse_args()
    rows = [run(dev, w) for dev in a.devices.split(",") for w in a.workloads.split(",")]
    (HERE / "results" / "device.md").write_text(render(rows))
    (HERE / "results" / "device.json").write_text(json.dumps(rows, indent=1))
    print(render(rows))


if __name__ == "__main__":
    main()
