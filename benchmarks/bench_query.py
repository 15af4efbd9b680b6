"""Cold start of a query on a saved fit: ``bayes-scaling predict FIT`` in a fresh process.

Issue 18 asks for a cold ``predict`` of at most 1.0 s. This writes ``results/query.md``: the
median wall time of ``--repeats`` fresh processes, which heavy libraries the query loaded, and
the ten slowest imports (``python -X importtime``). The fit is a saved default-size posterior
(4 chains x 1000 draws) of the shipped Chinchilla law built without NUTS (``testing.fake_fit``):
a query's cost does not depend on how the draws were made.

Usage: ``.venv/bin/python benchmarks/bench_query.py [--repeats 7]``; run it with the Python of
a plain ``pip install`` (no extras) to time what a user's install does.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.testing import fake_fit

HERE = Path(__file__).resolve().parent
HEAVY = ("pymc", "pytensor", "jax", "numpyro", "nutpie", "arviz", "matplotlib", "scipy", "numba",
         "dask")
ARGS = ["predict", "--n-params", "7e10", "--n-tokens", "1.4e12"]


def cold_predict(fit_path: Path) -> float:
    exe = Path(sys.executable).with_name("bayes-scaling")
    start = time.perf_counter()
    subprocess.run([str(exe), ARGS[0], str(fit_path), *ARGS[1:]], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def loaded_heavy(fit_path: Path) -> list[str]:
    code = ("import sys, io, contextlib\nfrom bayes_scaling.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main({[ARGS[0], str(fit_path), *ARGS[1:]]!r})\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return [m for m in out.stdout.strip().split(",") if m]


def slowest_imports(n: int = 10) -> list[tuple[str, float]]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          "import bayes_scaling.cli.app, bayes_scaling.query.predict, "
                          "bayes_scaling.fitting.result"], capture_output=True, text=True)
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((parts[2].strip(), int(parts[1]) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def _install_kind() -> str:
    """How bayes_scaling is installed here, and whether the optional Dask extra is present."""
    import importlib.metadata as md
    import importlib.util

    direct = md.distribution("bayes_scaling").read_text("direct_url.json") or ""
    kind = "editable checkout" if '"editable": true' in direct else "a plain pip install"
    dask = "with" if importlib.util.find_spec("dask") else "without"
    return f"{kind}, {dask} the optional Dask extra: xarray imports Dask and SciPy when present"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.nc"
        fake_fit("chinchilla", PUBLISHED["epoch2024"], chains=4, draws=1000, seed=0).save(path)
        cold_predict(path)  # warm the OS file cache, as a user's second query would be
        times = [cold_predict(path) for _ in range(args.repeats)]
        heavy = loaded_heavy(path)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    lines = ["## Cold query (`bayes-scaling predict` on a saved fit)", "",
             f"Median of {args.repeats} fresh processes: **{statistics.median(times):.2f} s** "
             f"(min {min(times):.2f} s, max {max(times):.2f} s; load average {load} at the end). "
             "Target (issue 18): at most 1.0 s.", "",
             f"Interpreter: `{sys.executable}` ({_install_kind()}).", "",
             "Heavy libraries loaded by the query: "
             + (", ".join(heavy) if heavy else "none") + " (of " + ", ".join(HEAVY) + ").", "",
             "Slowest imports (cumulative seconds, `python -X importtime`):", "",
             "| module | s |", "|---|---|"]
    lines += [f"| `{m}` | {s:.3f} |" for m, s in slowest_imports()]
    (HERE / "results" / "query.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
