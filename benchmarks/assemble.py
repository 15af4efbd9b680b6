"""Assemble ``benchmarks/RESULTS.md`` from the sections the benchmark scripts wrote.

Each script writes ``benchmarks/results/<name>.md``; this joins them in a fixed order under one
header with the machine and package versions. Run after the benchmarks:
``.venv/bin/python benchmarks/assemble.py``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["fit", "recovery", "calibration", "scale", "compare", "dynamics", "schedule", "report",
         "reliability", "diagnose", "nextrun"]
SCRIPTS = {"fit": "bench_fit.py", "recovery": "bench_recovery.py",
           "calibration": "bench_calibration.py", "scale": "bench_scale.py",
           "compare": "bench_compare.py", "dynamics": "bench_dynamics.py",
           "schedule": "bench_schedule.py",
           "report": "bench_report.py", "reliability": "bench_reliability.py",
           "diagnose": "bench_diagnose.py", "nextrun": "bench_nextrun.py"}


def main() -> None:
    pkgs = ", ".join(f"{n} {md.version(n)}" for n in
                     ("pymc", "pytensor", "numpyro", "jax", "nutpie", "arviz", "numpy", "scipy"))
    out = ["# Benchmark results", "",
           f"Assembled {dt.date.today().isoformat()} on {platform.machine()}, "
           f"{os.cpu_count()} cores, Python {platform.python_version()}; {pkgs}.", "",
           "Absolute times on this shared 2-core machine are noisy (other jobs ran at the same "
           "time): compare the ratios and medians measured within one run. Each section names "
           "the script that regenerates it.", ""]
    for name in ORDER:
        path = HERE / "results" / f"{name}.md"
        if path.exists():
            out += [path.read_text().rstrip(), "",
                    f"*Regenerate: `.venv/bin/python benchmarks/{SCRIPTS[name]}`*", ""]
        else:
            out += [f"## {name}", "", f"Not run yet (`benchmarks/{SCRIPTS[name]}`).", ""]
    (HERE / "RESULTS.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
