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
#: Sections first in this order; any other ``results/<name>.md`` follows, alphabetically. Each
#: section comes from ``bench_<name>.py`` unless its first line names another script.
ORDER = ["fit", "query", "recovery", "calibration", "calibration_nuts", "scale", "compare",
         "dynamics", "schedule", "residual", "report", "reliability", "diagnose", "nextrun"]
#: Sections written by a script not named after them.
SCRIPTS = {"calibration": "bench_discrepancy_prior.py", "calibration_nuts": "bench_calibration.py",
           "calibration_lolo_nuts": "bench_discrepancy_nuts.py",
           "calibration_lolo_nuts_partial": "bench_discrepancy_nuts.py",
           "calibration_partial": "bench_discrepancy_prior.py",
           "calibration_parts": "bench_discrepancy_prior.py",
           "calibration_shared": "bench_discrepancy_shared.py",
           "calibration_drift": "bench_discrepancy_drift.py",
           "contrast_decay": "bench_contrast.py --drift-decay",
           "contrast_flat": "bench_contrast.py --flat-drift",
           "contrast_slice_bench": "bench_contrast.py --slice-anchor",
           "contrast_top_bench": "bench_contrast.py --drift-at-top",
           "contrast_ml_bench": "bench_contrast.py --ml-variance",
           "contrast_top_ml_bench": "bench_contrast.py --ml-variance --drift-at-top",
           "contrast_pair_bench": "bench_contrast.py --pair-spread",
           "contrast_cap_bench": "bench_contrast.py --spread-cap",
           "contrast_scale_bench": "bench_contrast.py --origin-scale",
           "contrast_mix_bench": "bench_contrast.py --origin-scale --origin-mix"}


def main() -> None:
    pkgs = ", ".join(f"{n} {md.version(n)}" for n in
                     ("pymc", "pytensor", "numpyro", "jax", "nutpie", "arviz", "numpy", "scipy"))
    out = ["# Benchmark results", "",
           f"Assembled {dt.date.today().isoformat()} on {platform.machine()}, "
           f"{os.cpu_count()} cores, Python {platform.python_version()}; {pkgs}.", "",
           "Absolute times on this shared 2-core machine are noisy (other jobs ran at the same "
           "time): compare the ratios and medians measured within one run. Each section names "
           "the script that regenerates it.", ""]
    # a file linked from another section (e.g. diagnose_loo.md) is not a section of its own
    linked = {"diagnose_loo"}
    found = sorted(p.stem for p in (HERE / "results").glob("*.md") if p.stem not in linked)
    for name in [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]:
        path = HERE / "results" / f"{name}.md"
        script = SCRIPTS.get(name, f"bench_{name}.py")
        text = path.read_text().rstrip()
        out += [text, ""] + ([] if "*Regenerate:" in text else [  # a section may name its own
            f"*Regenerate: `.venv/bin/python benchmarks/{script}`*", ""])
    (HERE / "RESULTS.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
