"""The average's band: the linear pool of the families' draws vs their quantile average.

PRE-REGISTRATION (committed before this script was first run; the figures it prints were not
seen when it was written):

* Data: as ``bench_families_shrink.py``: the leave-one-ladder-out results of
  ``bench_families.py --part real`` (``benchmarks/results/families.json``: 14 public ladders,
  top 3 compute budgets held out, Huber + bootstrap refits each carrying the ladder's shared
  extrapolation discrepancy). No refitting: only how the average's draws are built changes.
* Cause (seen before this rule was written: the families' own 90% coverage on these ladders,
  not the rule's): every family's band already carries the ladder's extrapolation discrepancy
  and covers about 90% of the held-out runs on its own; the linear pool (the product's average
  until now: each family contributes its weight's share of draws) adds the families'
  disagreement on top of that, so its band is wider than any family's where they disagree. The
  linear pool of calibrated forecasts is overdispersed (Gneiting & Ranjan 2013, Electron. J.
  Statist. 7:1747, doi:10.1214/13-EJS823).
* Rule (primary): the average's draws are the weighted **quantile average** of the families'
  draws on the log scale, :math:`\\log Q(p) = \\sum_k w_k \\log Q_k(p)` at each held-out run
  (``bayes_scaling.fitting.families.quantile_average``; Lichtendahl, Grushka-Cockayne &
  Winkler 2013, doi:10.1287/mnsc.1120.1667). No constant. The weights are unchanged: the
  pre-registered primary rule of ``bench_families_shrink.py`` (own inner stacking weights
  shrunk toward cross-ladder weights stacked on the other ladders, ``k`` chosen by inner LOLO);
  as a check, the leave-one-source-out weights of the same script.
* Reported whichever way they come out, pooled, per source and per ladder, for the linear pool
  and the quantile average: 50% and 90% coverage, 90% interval score (Gneiting & Raftery 2007),
  median abs % error of the average's median and its reduction vs Chinchilla's law alone.
  Targets (issues 15 and 19): pooled 90% coverage in 0.85-0.95, pooled 50% coverage in
  0.40-0.60, no ladder below 0.70 at 90%; interval score lower than Chinchilla's alone; median
  error >= 25% lower than Chinchilla's.
* Decision, fixed now: the product's average becomes the quantile average if, under the
  primary weights, its pooled 90% coverage is nearer 0.90 than the linear pool's and its pooled
  interval score is no higher than the linear pool's; otherwise the linear pool stays and the
  result is reported.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python
benchmarks/bench_families_combine.py`` (about a minute; no fitting). Writes
``benchmarks/results/families_combine.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.evaluate.heldout import HeldOut
from bayes_scaling.evaluate.stacking import combine
from benchmarks.bench_families_shrink import FAMILIES, _md, choose_k, shrunk, source_of

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 0
HOWS = ("pool", "quantile")


def per_run(r: dict[str, Any], w: np.ndarray | None, how: str) -> dict[str, np.ndarray]:
    """Per held-out run: abs % error of the median, inside 50% / 90%, 90% interval score.

    ``w=None``: Chinchilla's law alone."""
    y = np.asarray(r["observed"], dtype=float)
    held = {m: HeldOut(m, pd.DataFrame(), np.asarray(r["outer"][m]["samples"]), True)
            for m in FAMILIES}
    s = (held["chinchilla"].samples if w is None else
         combine(held, dict(zip(FAMILIES, map(float, w), strict=True)),
                 np.random.default_rng(SEED), how=how))
    lo50, hi50, lo, hi = np.quantile(s, [0.25, 0.75, 0.05, 0.95], axis=0)
    return {"err": 100 * np.abs(np.median(s, axis=0) - y) / y,
            "cov50": (y >= lo50) & (y <= hi50), "cov90": (y >= lo) & (y <= hi),
            "is90": hi - lo + 20 * ((lo - y) * (y < lo) + (y - hi) * (y > hi))}


def pooled(es: list[dict[str, np.ndarray]], ch: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    cat = {q: np.concatenate([e[q] for e in es]) for q in es[0]}
    chin = np.median(np.concatenate([c["err"] for c in ch]))
    return {"n_test": cat["err"].size, "median err %": float(np.median(cat["err"])),
            "reduction %": float(100 * (1 - np.median(cat["err"]) / chin)),
            "coverage 50": float(cat["cov50"].mean()), "coverage 90": float(cat["cov90"].mean()),
            "interval score 90": float(cat["is90"].mean()),
            "min ladder coverage 90": float(min(e["cov90"].mean() for e in es))}


def main() -> None:
    raw = json.loads((RESULTS / "families.json").read_text())["real"]
    results = {k: raw[k] for k in sorted(raw)}
    names = list(results)

    def by_source(m: str) -> set[str]:
        return {x for x in results if source_of(x) == source_of(m)}

    weights = {"primary": {n: shrunk(results, n, choose_k(results, n), set()) for n in names},
               "source-out": {n: shrunk(results, n, choose_k(results, n, by_source),
                                        by_source(n)) for n in names}}
    chin = {n: per_run(results[n], None, "pool") for n in names}
    sc = {(wk, how): {n: per_run(results[n], weights[wk][n], how) for n in names}
          for wk in weights for how in HOWS}
    rows = [{"weights": "chinchilla alone", "average": "-",
             **pooled(list(chin.values()), list(chin.values()))}]
    rows += [{"weights": wk, "average": how, **pooled(list(sc[wk, how].values()),
                                                       list(chin.values()))}
             for wk, how in sc]
    src_rows, lad_rows = [], []
    for src in sorted({source_of(n) for n in names}):
        at = [n for n in names if source_of(n) == src]
        src_rows.append({"source": src, "ladders": len(at), "average": "chinchilla alone",
                         **pooled([chin[n] for n in at], [chin[n] for n in at])})
        src_rows += [{"source": src, "ladders": len(at), "average": how,
                      **pooled([sc["primary", how][n] for n in at], [chin[n] for n in at])}
                     for how in HOWS]
    for n in names:
        row: dict[str, Any] = {"ladder": n, "n_test": len(results[n]["observed"]),
                               "chin err %": float(np.median(chin[n]["err"])),
                               "chin cov90": float(chin[n]["cov90"].mean())}
        for how in HOWS:
            e = sc["primary", how][n]
            row |= {f"{how} err %": float(np.median(e["err"])),
                    f"{how} cov50": float(e["cov50"].mean()),
                    f"{how} cov90": float(e["cov90"].mean()),
                    f"{how} is90": float(e["is90"].mean())}
        row["chin is90"] = float(chin[n]["is90"].mean())
        lad_rows.append(row)
    p = {how: pooled(list(sc["primary", how].values()), list(chin.values())) for how in HOWS}
    adopt = (abs(p["quantile"]["coverage 90"] - 0.9) < abs(p["pool"]["coverage 90"] - 0.9)
             and p["quantile"]["interval score 90"] <= p["pool"]["interval score 90"])
    doc = (__doc__ or "").split("Run:")[0].strip()
    lines = ["# The average's band: linear pool vs quantile average", "",
             "Pre-registered in `benchmarks/bench_families_combine.py` (quoted):", "",
             *[f"> {x}" if x else ">" for x in doc.splitlines()], "",
             "## Pooled (306 held-out runs, 14 ladders)", "", _md(pd.DataFrame(rows)), "",
             "**Decision (pre-registered rule): "
             f"{'adopt the quantile average' if adopt else 'keep the linear pool'}.**",
             "", "## Per source (primary weights)", "", _md(pd.DataFrame(src_rows)), "",
             "## Per ladder (primary weights)", "", _md(pd.DataFrame(lad_rows)), "",
             "Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python "
             "benchmarks/bench_families_combine.py` (no fitting).", ""]
    (RESULTS / "families_combine.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
