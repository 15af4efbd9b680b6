"""Candidate C ("reach", ``benchmarks/CRITERIA_s10_i15.md``) where its targets lie past the reach.

On the issue's leave-one-ladder-out splits (top 1-3 budgets, top 1-2 sizes held out) a ladder's
inner rolling-origin refits hold out up to three budgets of what is left and so reach about as
far as the outer targets (``bench_discrepancy_drift.py``: 6 of 663 held-out runs lie past the
reach, by at most 0.06 decades), and candidate C cannot differ from the product there. This
diagnostic holds out deeper: the top 4 and 5 compute budgets of each public ladder (the largest
extrapolations the ladders allow; the issue's unseen ladders were +0.15 to +1.3 decades past),
and scores the per-kind discrepancy with the drift, with and without the reach, on the
Huber+bootstrap law band, each ladder under priors and a drift population learned without its
source (as ``bench_discrepancy_drift.py``). A diagnostic only: the issue's splits decide.

Writes ``results/calibration_reach_deep.md``. Run (after ``bench_discrepancy_prior.py``):
``BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python
benchmarks/bench_discrepancy_reach.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_discrepancy_drift import (
    BASE,
    drift_pops,
    past_reach_runs,
    reach_predictive,
    reach_shift,
    render_reach,
)
from bench_discrepancy_drift import drift_shift as product_shift
from bench_discrepancy_prior import (
    HEAD,
    RESULTS,
    _cached,
    _fmt_row,
    cached_parts,
    outer_case,
    predictive,
    remeasure,
    score,
    summarise,
)
from ladders import public_ladders

from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.calibrate import discrepancy_posterior_parts, ladder_reach

#: The deeper compute hold-outs scored here (the issue's splits stop at 3).
DEEP = (4, 5)
PRODUCT, CAND = "per kind + drift", "per kind + drift + reach (candidate C)"


def main() -> None:
    t0 = time.perf_counter()
    ladders = public_ladders()
    rolling = {n: remeasure(bt, ladders[n][1])
               for n, bt in _cached("rolling_errors", dict).items()}
    frames, rows, priors = [], [], {}
    for name, (src, runs) in ladders.items():
        for k in DEEP:
            case = _cached(f"deep_{name.replace(':', '_')}_flops_{k}",
                           lambda name=name, src=src, runs=runs, k=k:
                           outer_case(name, src, runs, "flops", k, 0))
            if case is None:
                continue
            if src not in priors:
                exclude = {n for n in rolling if ladders[n][0] == src}
                priors[src] = (cached_parts(rolling, ladders, False, exclude),
                               drift_pops(rolling, ladders, exclude))
            parts_prior, pops = priors[src]
            bt = case["inner"].with_distance("hull_compute")
            parts = discrepancy_posterior_parts(bt, parts_prior)
            reach = ladder_reach(bt, parts_prior.with_drift(pops))
            past = past_reach_runs(case)
            rows.append({"ladder": name, "k": k, "runs": past.size, "past": int(past.sum()),
                         "max_scale": float(np.max(case["dist"]["scale"])),
                         **{f"reach_{p}": reach[p].x_max if p in reach else np.nan
                            for p in ("scale", "shape")}})
            i = len(rows)
            for label in (BASE, PRODUCT, CAND):
                rng = np.random.default_rng([0, i])  # the same draws for every variant
                if label == BASE:
                    samples = predictive(case, None, None, rng)
                elif label == PRODUCT:
                    samples = (predictive(case, "hull_compute", parts, rng)
                               * np.exp(product_shift(case, pops))[None, :])
                else:
                    samples = (reach_predictive(case, parts, reach, rng)
                               * np.exp(reach_shift(case, pops, reach))[None, :])
                f = score(case, samples)
                f["variant"] = label
                f["past"] = past
                frames.append(f)
            print(f"  {name} top {k} budgets: {past.sum()}/{past.size} past the reach", flush=True)
    table = pd.concat(frames, ignore_index=True)
    text = render(table, pd.DataFrame(rows), time.perf_counter() - t0)
    with atomic_path(RESULTS / "calibration_reach_deep.md") as tmp:
        Path(tmp).write_text(text)
    print(text)


def render(table: pd.DataFrame, rows: pd.DataFrame, seconds: float) -> str:
    pooled = summarise(table, ["variant"])
    lines = ["## Candidate C (reach) on deeper compute hold-outs (diagnostic)", "",
             f"Top {' and '.join(map(str, DEEP))} compute budgets held out, "
             f"{table['ladder'].nunique()} ladders, {len(rows)} splits, "
             f"{int(pooled['n'].iloc[0])} held-out runs, {int(rows['past'].sum())} of them past "
             "their ladder's inner reach; Huber+bootstrap law band, priors and drift population "
             "learned without the ladder's source (`bench_discrepancy_reach.py`).", "",
             "### Pooled", "", HEAD.format(what="variant")]
    for _, r in pooled.sort_values("is90").iterrows():
        lines.append(_fmt_row(r["variant"], r))
    lines += ["", *render_reach(table, CAND, PRODUCT, "Huber band, deeper hold-outs")]
    past = table[table["past"]]
    if len(past):
        lines += ["### Only the runs past the reach", "", HEAD.format(what="variant")]
        for _, r in summarise(past, ["variant"]).iterrows():
            lines.append(_fmt_row(r["variant"], r))
    lines += ["", "### Splits", "", "| ladder | top k budgets | runs | past the reach | max scale "
              "distance | reach scale | reach shape |", "|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        lines.append(f"| {r['ladder']} | {r['k']} | {r['runs']} | {r['past']} | "
                     f"{r['max_scale']:.2f} | {r['reach_scale']:.2f} | {r['reach_shape']:.2f} |")
    lines += ["", f"{seconds:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
