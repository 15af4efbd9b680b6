"""How long the Chinchilla-70B risk report takes, how big it is, and whether it renders cleanly.

Runs the README's command, ``bayes-scaling report reports/examples/chinchilla70b.toml --out
DIR``, as a user would (a fresh process each time, imports included):

1. from scratch (an empty ``DIR``: every fit and backtest refit is sampled; target < 2 min);
2. from saved fits (the same ``DIR`` again, ``--repeat`` times; target < 10 s);

then measures ``report.html`` (target < 3 MB) and opens it in headless Chromium (the harness of
``tests/test_browser.py``; target: zero failed requests, no console error). Results go to
``benchmarks/results/report.md``.

Run: ``BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_report.py``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROPOSAL = ROOT / "reports" / "examples" / "chinchilla70b.toml"
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent / "bayes-scaling"


def run_report(out: Path, jax_cache: Path | None = None) -> dict[str, float]:
    """One CLI run: wall seconds and the CPU seconds of the child.

    ``jax_cache``: a folder for JAX's compile cache (an empty one = a fresh machine).
    """
    env = dict(os.environ)
    if jax_cache is not None:
        env["BAYES_SCALING_JAX_CACHE"] = str(jax_cache)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN), "report", str(PROPOSAL), "--out", str(out)],
                          capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bayes-scaling report failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load,
            "reused": proc.stderr.count("reusing saved fit"),
            "fitted": proc.stderr.count("fitting ")}


def browser_check(html: Path) -> dict[str, object]:
    """Failed requests, outside requests and console errors of the page in Chromium."""
    sys.path.insert(0, str(ROOT))
    from tests.test_browser import render

    with tempfile.TemporaryDirectory() as tmp:
        page = render(html, Path(tmp))
    return {"failed_requests": len(page["failed"]),
            "outside_requests": len([u for u in page["urls"]
                                     if not u.startswith(("file:", "data:", "about:"))]),
            "console_errors": len(page["console_errors"]) + len(page["log_errors"])
            + len(page["exceptions"]),
            "numbers_shown": len(page["numbers"]), "images": len(page["images"])}


def markdown(scratch: dict, warm: dict, cached: list[dict], size: dict, browser: dict,
             risk: dict) -> str:
    """The results page."""
    best = min(c["wall_s"] for c in cached)
    walls = ", ".join(f"{c['wall_s']:.1f}" for c in cached)
    load = os.getloadavg()
    v = risk["verdict"]
    lines = [
        "# Risk report benchmark: Chinchilla-70B", "",
        "Command: `bayes-scaling report reports/examples/chinchilla70b.toml --out DIR` "
        "(a fresh process per run); reproduce with "
        "`BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_report.py`.", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (the cores are shared with other work, so wall time > CPU time).", "",
        "| measure | value | target |", "|---|---|---|",
        f"| from scratch on a fresh machine (empty JAX compile cache; 3 NUTS fits: 2 families + "
        f"the backtest refit; the Huber baseline) | {scratch['wall_s']:.1f} s wall, "
        f"{scratch['cpu_s']:.1f} s CPU (load before {scratch['load_before']:.1f}) | < 120 s |",
        f"| from scratch, no saved fits, JAX compile cache warm | {warm['wall_s']:.1f} s wall, "
        f"{warm['cpu_s']:.1f} s CPU (load before {warm['load_before']:.1f}) | < 120 s |",
        f"| from saved fits (best of {len(cached)}) | {best:.1f} s wall "
        f"({walls}), "
        f"{min(c['cpu_s'] for c in cached):.1f} s CPU | < 10 s |",
        f"| saved fits reused on rebuild | {cached[0]['reused']} of 4, "
        f"{cached[0]['fitted']} refitted | all |",
        f"| report.html | {size['html'] / 1e6:.2f} MB | < 3 MB |",
        f"| report.json, report.md | {size['json'] / 1e3:.0f} kB, {size['md'] / 1e3:.0f} kB | |",
        f"| Chromium: failed requests | {browser.get('failed_requests', 'n/a')} | 0 |",
        f"| Chromium: requests outside the page | {browser.get('outside_requests', 'n/a')} "
        "| 0 |",
        f"| Chromium: console errors and exceptions | {browser.get('console_errors', 'n/a')} "
        "| 0 |",
        f"| numbers on the page checked against report.json | "
        f"{browser.get('numbers_shown', 'n/a')} | |", "",
        "Verdict in this build: P(loss ≤ 1.95), predictive band: "
        + ", ".join(f"{k} {x['predictive']['p_target']:.3f}" for k, x in v["families"].items())
        + (f", model average {v['average']['predictive']['p_target']:.3f}"
           if v["average"] else "") + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``benchmarks/results/report.md``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=3, help="rebuilds from saved fits")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "chinchilla70b"
        if out.exists() and any(out.iterdir()):
            sys.exit(f"{out} is not empty: the from-scratch timing needs an empty folder")
        scratch = run_report(out, jax_cache=Path(tmp) / "jax-cache")
        print(f"from scratch, empty compile cache: {scratch}", flush=True)
        warm_out = Path(tmp) / "warm"
        warm = run_report(warm_out, jax_cache=Path(tmp) / "jax-cache")
        print(f"from scratch, warm compile cache: {warm}", flush=True)
        cached = [run_report(out) for _ in range(args.repeat)]
        print(f"from saved fits: {cached}", flush=True)
        size = {k: (out / f"report.{k}").stat().st_size for k in ("html", "json", "md")}
        try:
            browser = browser_check(out / "report.html")
        except (OSError, RuntimeError, TimeoutError) as exc:
            browser = {"error": str(exc)}
        risk = json.loads((out / "report.json").read_text())
        RESULTS.mkdir(parents=True, exist_ok=True)
        text = markdown(scratch, warm, cached, size, browser, risk)
    (RESULTS / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
