"""Does a signed drift per kind of extrapolation lift the calibration floor? (Huber law band)

The discrepancy is zero-mean: the bands widen with the distance but stay centred on the law. On
the ladders with the lowest leave-one-ladder-out coverage (Porian's ``warmup`` and ``tuned``
recipes) the misses of one split share a sign, and so do the ladder's own rolling-origin errors
of the same kind (budget hold-outs over-predicted, size hold-outs under-predicted). This script
measures whether a *drift* -- a mean log error per decade of each part of the distance
(``scale`` from the budget hold-outs, ``shape`` from the size hold-outs), learned the same way as
the discrepancy's spread -- helps, leave one ladder out:

- each ladder's drift per part is the least-squares slope of its rolling-origin errors of the
  matching kind on that part's distance, with its standard error from the spread between refits
  (the errors of one refit share a sign, so a refit counts once);
- the population of drifts (mean and sd across ladders, each source weighing one) is learned by
  the method of moments from every ladder *not of the scored ladder's source*;
- the scored ladder's drift is its own slope shrunk toward that population (normal-normal), and
  shifts the predictive draws by ``drift_scale * scale + drift_shape * shape``; the spread is
  unchanged.

No constant is set here: the shrinkage comes from the ladders' own spread. The functions are the
package's (:mod:`bayes_scaling.fitting.drift`, shipped since the NUTS check accepted it:
``bench_discrepancy_nuts.py``); this script scores them on the cheaper Huber law band. Scored on the
Huber+bootstrap law band of the cached outer splits (``bench_discrepancy_prior.py --available``'s
cases), beside the same bands without the drift. Writes ``results/calibration_drift.md``.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 15 .venv/bin/python
benchmarks/bench_discrepancy_drift.py`` (after ``bench_discrepancy_prior.py --available``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_discrepancy_prior import (
    CACHE,
    HEAD,
    RESULTS,
    _cached,
    _fmt_row,
    available_cases,
    cached_parts,
    population,
    predictive,
    remeasure,
    remeasure_case,
    score,
    summarise,
)
from ladders import public_ladders

from bayes_scaling.data.support import DISCREPANCY_RAMP_DECADES, discrepancy_mean
from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.calibrate import (
    PARTS,
    discrepancy_posterior,
    discrepancy_posterior_parts,
)
from bayes_scaling.fitting.drift import ladder_slope, shrink
from bayes_scaling.fitting.drift import population_drift as drift_population

BASE = "huber-bootstrap"
LABELS = {"one": "one pair", "one+drift": "one pair + drift", "per-kind": "per kind",
          "per-kind+drift": "per kind + drift", BASE: BASE}


def population_drift(rolling: dict, ladders, exclude: set[str], part: str) -> tuple[float, float]:
    """The drift population on ``part`` over the ladders not in ``exclude`` (sources weigh one;
    :func:`bayes_scaling.fitting.drift.population_drift`)."""
    rows = [(ladders[n][0], s) for n in rolling if n not in exclude
            if (s := ladder_slope(rolling[n].with_distance("hull_compute"), part)) is not None]
    return drift_population([s for _, s in rows], [src for src, _ in rows])


def drift_pops(rolling: dict, ladders, exclude: set[str]) -> dict[str, tuple[float, float]]:
    """Both parts' drift populations without ``exclude``."""
    return {p: population_drift(rolling, ladders, exclude, p) for p in PARTS}


def case_drifts(case: dict, pops: dict) -> dict:
    """The case's own drift per part, shrunk toward ``pops`` (each part's population without
    the case's source), as :func:`bayes_scaling.fitting.calibrate.ladder_drift` makes it."""
    bt = case["inner"].with_distance("hull_compute")
    return {p: shrink(ladder_slope(bt, p), *pops[p]) for p in PARTS}


def drift_shift(case: dict, pops: dict) -> np.ndarray:
    """The log shift of the case's held-out runs: its drift per part times the part's
    distance (:func:`bayes_scaling.data.support.discrepancy_mean`)."""
    d = case_drifts(case, pops)
    return discrepancy_mean(case["dist"], d["scale"].value, d["shape"].value)


def level_backtest(bt):
    """``bt`` (hull_compute) with its ``shape`` distance replaced by the discrepancy's ramp of it
    (``min(r / DISCREPANCY_RAMP_DECADES, 1)``): :func:`ladder_slope` on it is a level, not a
    slope (candidate A, ``benchmarks/CRITERIA_s9_i15.md``)."""
    bt = bt.with_distance("hull_compute")
    kinds = {**bt.by_kind, "shape": np.minimum(bt.by_kind["shape"] / DISCREPANCY_RAMP_DECADES, 1.0)}
    return replace(bt, by_kind=kinds)


def level_pop(rolling: dict, ladders, exclude: set[str]) -> tuple[float, float]:
    """Candidate A's population of shape levels over the ladders not in ``exclude``."""
    rows = [(ladders[n][0], s) for n in rolling if n not in exclude
            if (s := ladder_slope(level_backtest(rolling[n]), "shape")) is not None]
    return drift_population([s for _, s in rows], [src for src, _ in rows])


def level_shift(case: dict, scale_value: float, pop: tuple[float, float]
                ) -> tuple[np.ndarray, float]:
    """Candidate A's log shift of the case's held-out runs: the product's scale drift times
    the scale distance plus the case's shape level (its own, shrunk toward ``pop``) times the
    ramp of the shape distance; and that level."""
    lev = shrink(ladder_slope(level_backtest(case["inner"]), "shape"), *pop)
    ramp = np.minimum(np.asarray(case["dist"]["shape"]) / DISCREPANCY_RAMP_DECADES, 1.0)
    return scale_value * np.asarray(case["dist"]["scale"]) + lev.value * ramp, lev.value


def main() -> None:
    t0 = time.perf_counter()
    ladders = public_ladders()
    rolling = {n: remeasure(bt, ladders[n][1])
               for n, bt in _cached("rolling_errors", dict).items()}
    cases = [remeasure_case(c, ladders[c["ladder"]][1]) for c in available_cases(ladders)]
    frames, drifts, pops, priors = [], [], {}, {}
    for i, case in enumerate(cases):
        src = case["source"]
        exclude = {n for n in rolling if ladders[n][0] == src}
        if src not in priors:
            priors[src] = (population(rolling, ladders, "hull_compute", False, exclude),
                           cached_parts(rolling, ladders, False, exclude))
            pops[src] = drift_pops(rolling, ladders, exclude)
        bt = case["inner"].with_distance("hull_compute")
        beta = {p: d.value for p, d in case_drifts(case, pops[src]).items()}
        shift = drift_shift(case, pops[src])
        drifts.append({"ladder": case["ladder"], "by": case["by"], "k": case["k"],
                       **{f"drift_{p}": beta[p] for p in PARTS}})
        one = discrepancy_posterior(bt, priors[src][0])[2]
        parts = discrepancy_posterior_parts(bt, priors[src][1])
        for label, weights, drift in ((BASE, None, False), ("one", one, False),
                                      ("one+drift", one, True), ("per-kind", parts, False),
                                      ("per-kind+drift", parts, True)):
            rng = np.random.default_rng([0, i])  # the same draws with and without the drift
            samples = predictive(case, None if weights is None else "hull_compute", weights,
                                 rng)
            if drift:
                samples = samples * np.exp(shift)[None, :]
            f = score(case, samples)
            f["variant"] = LABELS[label]
            frames.append(f)
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(CACHE / "drift_runs.csv") as tmp:
        table.to_csv(tmp, index=False)
    text = render(table, pd.DataFrame(drifts), pops, time.perf_counter() - t0)
    with atomic_path(RESULTS / "calibration_drift.md") as tmp:
        Path(tmp).write_text(text)
    print(text)


def render(table: pd.DataFrame, drifts: pd.DataFrame, pops: dict, seconds: float) -> str:
    from bench_discrepancy_nuts import criteria  # lazy: that module imports this one
    pooled = summarise(table, ["variant"])
    lines = ["## A signed drift per kind of extrapolation, on the Huber+bootstrap law band", "",
             f"Huber+bootstrap law band, {table['ladder'].nunique()} ladders, "
             f"{len(drifts)} outer splits, {int(pooled['n'].iloc[0])} held-out runs; each "
             "ladder scored with priors and a drift population learned without its source "
             "(`bench_discrepancy_drift.py`).", "", "### Pooled", "",
             HEAD.format(what="variant")]
    for _, r in pooled.sort_values("is90").iterrows():
        lines.append(_fmt_row(r["variant"], r))
    lines += ["", "### The issue's criteria", "",
              "| variant | pooled 90% | 50% | lowest ladder at 90% | ladders where "
              "Huber+bootstrap has the better interval score | met |", "|---|---|---|---|---|---|"]
    for v in [x for x in LABELS.values() if x != BASE]:
        c = criteria(table, v)
        lines.append(f"| {v} | {c['cov90']:.2f} | {c['cov50']:.2f} | {c['lowest_ladder']} "
                     f"{c['lowest_cov90']:.2f} | {len(c['huber_better_on'])} | "
                     f"{'yes' if c['met'] else 'no'} |")
    per = summarise(table, ["variant", "ladder"])
    have = list(LABELS.values())
    lines += ["", "### Per ladder: 90% coverage / mean interval score (90%) / median abs % error",
              "", "| ladder | runs | " + " | ".join(have) + " |", "|---|---|" + "---|" * len(have)]
    for ladder in sorted(table["ladder"].unique()):
        r = per[per["ladder"] == ladder].set_index("variant")
        lines.append(f"| {ladder} | {int(r['n'].iloc[0])} | " + " | ".join(
            f"{r.loc[v, 'cov90']:.2f} / {r.loc[v, 'is90']:.3f} / {r.loc[v, 'mape']:.2f}"
            for v in have) + " |")
    by = summarise(table, ["variant", "by"])
    lines += ["", "### By kind of hold-out", "", HEAD.format(what="by / variant")]
    for _, r in by.sort_values(["by", "variant"]).iterrows():
        lines.append(_fmt_row(f"{r['by']} / {r['variant']}", r))
    lines += ["", "### Drift learned (log error per decade; + = the law under-predicts)", "",
              "Population without each source (mean, sd across ladders): " + "; ".join(
                  f"without {s}: scale {p['scale'][0]:+.3f} ({p['scale'][1]:.3f}), shape "
                  f"{p['shape'][0]:+.3f} ({p['shape'][1]:.3f})" for s, p in pops.items()), "",
              "| ladder | by | k | drift scale | drift shape |", "|---|---|---|---|---|"]
    for _, r in drifts.iterrows():
        lines.append(f"| {r['ladder']} | {r['by']} | {r['k']} | {r['drift_scale']:+.3f} | "
                     f"{r['drift_shape']:+.3f} |")
    lines += ["", f"{seconds:.0f} s.", "", "*Regenerate: `BAYES_SCALING_DATA=../shared/data "
              "nice -n 15 .venv/bin/python benchmarks/bench_discrepancy_drift.py`*", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
