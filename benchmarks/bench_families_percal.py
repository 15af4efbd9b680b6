"""Diagnostic: the outer refits' discrepancy learned per family (each law's own rolling-origin
errors, as the product's own fits do: ``fit(..., calibrate=True)``) instead of shared (the
Chinchilla law's errors handed to every family, ``bench_families.OUTER_FIT``, chosen there for
speed: the broken law's own backtest costs ~20x more).

Stated before it was run: this is a check of the benchmark's protocol, not a product change
(the product's families are already calibrated each on its own law). Same ladders, split (top
3 budgets held out), seed (``bench_families`` seed 0 + 1) and weights (the product's: own
shrunk toward the other ladders' cross weights by k = 100) as ``families_evidence.md``'s
"product now"; only ``calibrate`` changes. Reported per ladder and pooled over the ladders
run, whichever way it comes out: 50/90% coverage, 90% interval score, median abs % error,
next to the shared-discrepancy figures of the same ladders.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python
benchmarks/bench_families_percal.py [ladder ...]`` (refits; cached per ladder in
``results/families_percal.json``). ``--write``: only the report.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.evaluate.heldout import heldout_predictions
from benchmarks.bench_families_combine import per_run
from benchmarks.bench_families_shrink import FAMILIES, _md, shrunk

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "families_percal.json"
OUTER, SEED = 3, 1
FIT = {"n_boot": 50, "calibrate": True}


def refit(name: str) -> dict[str, Any]:
    from benchmarks.bench_families import ladders  # lazy: reads the public data sets
    runs = ladders([name])[name]
    t0 = time.perf_counter()
    pred = heldout_predictions(runs, FAMILIES, tops=(OUTER,), fit_kwargs=FIT, random_seed=SEED,
                               method="huber-bootstrap")
    return {"outer": {m: {"samples": h.samples[::5].tolist()} for m, h in pred.items()},
            "observed": pred[FAMILIES[0]].table["observed"].tolist(),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    args = [a for a in sys.argv[1:] if a != "--write"]
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    for name in ([] if "--write" in sys.argv else args):
        if name not in cache:
            cache[name] = refit(name)
            CACHE.write_text(json.dumps(cache))
            print(f"{name}: {cache[name]['seconds']:.0f} s", flush=True)
    if not cache:
        raise SystemExit("no ladder refitted yet: name ladders to refit them")
    real = json.loads((RESULTS / "families.json").read_text())["real"]
    real = {k: real[k] for k in sorted(real)}
    rows, pooled = [], {"shared": [], "per family": []}
    for name in sorted(cache):
        w = shrunk(real, name, 100.0, set())
        if not np.allclose(cache[name]["observed"], real[name]["observed"]):
            raise SystemExit(f"{name}: held-out runs differ from families.json")
        row: dict[str, Any] = {"ladder": name, "n_test": len(cache[name]["observed"])}
        for label, r in (("shared", real[name]), ("per family", cache[name])):
            e = per_run(r, w, "quantile")
            pooled[label].append(e)
            fam = {m: float(np.mean(per_run({"outer": {"chinchilla": r["outer"][m]},
                                             "observed": r["observed"]}, None, "pool")["cov90"]))
                   for m in FAMILIES}
            row |= {f"{label} err %": float(np.median(e["err"])),
                    f"{label} cov90": float(e["cov90"].mean()),
                    f"{label} is90": float(e["is90"].mean()),
                    f"{label} families' cov90": " / ".join(f"{v:.2f}" for v in fam.values())}
        rows.append(row)
    summ = [{"discrepancy": k, "ladders": len(v),
             "median err %": float(np.median(np.concatenate([e["err"] for e in v]))),
             "coverage 50": float(np.mean(np.concatenate([e["cov50"] for e in v]))),
             "coverage 90": float(np.mean(np.concatenate([e["cov90"] for e in v]))),
             "interval score 90": float(np.mean(np.concatenate([e["is90"] for e in v]))),
             "min ladder coverage 90": float(min(e["cov90"].mean() for e in v))}
            for k, v in pooled.items() if v]
    doc = (__doc__ or "").split("Run:")[0].strip()
    lines = ["# The outer refits' discrepancy: shared (Chinchilla's) vs per family", "",
             *[f"> {x}" if x else ">" for x in doc.splitlines()], "",
             f"## Pooled over the {len(rows)} ladders run", "", _md(pd.DataFrame(summ)), "",
             "## Per ladder (families' cov90: " + " / ".join(FAMILIES) + ")", "",
             _md(pd.DataFrame(rows)), "",
             "Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python "
             "benchmarks/bench_families_percal.py --write` (from the cache; name ladders to "
             "refit them).", ""]
    (RESULTS / "families_percal.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
