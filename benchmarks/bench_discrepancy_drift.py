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
    N_SAMPLES,
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

from bayes_scaling.data.support import DISCREPANCY_RAMP_DECADES, discrepancy_mean, discrepancy_var
from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.calibrate import (
    PARTS,
    discrepancy_posterior,
    discrepancy_posterior_parts,
    ladder_reach,
    sample_grid,
)
from bayes_scaling.fitting.drift import ladder_slope, reach_distance, shrink
from bayes_scaling.fitting.drift import population_drift as drift_population

BASE = "huber-bootstrap"
LABELS = {"one": "one pair", "one+drift": "one pair + drift", "per-kind": "per kind",
          "per-kind+drift": "per kind + drift", BASE: BASE,
          "reach": "per kind + drift + reach (candidate C)"}


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
    the case's source), as :func:`bayes_scaling.fitting.drift.ladder_drift` makes it."""
    bt = case["inner"].with_distance("hull_compute")
    return {p: shrink(ladder_slope(bt, p), *pops[p]) for p in PARTS}


def drift_shift(case: dict, pops: dict) -> np.ndarray:
    """The log shift of the case's held-out runs: its drift per part times the part's
    distance (:func:`bayes_scaling.data.support.discrepancy_mean`)."""
    d = case_drifts(case, pops)
    return discrepancy_mean(case["dist"], d["scale"].value, d["shape"].value)


def reach_predictive(case: dict, weights: dict, reach: dict, rng) -> np.ndarray:
    """``bench_discrepancy_prior.predictive`` per kind (the same random numbers in the same
    order) with candidate C's reach in the discrepancy's spread
    (``benchmarks/CRITERIA_s10_i15.md``; :func:`bayes_scaling.data.support.past_reach`)."""
    law = case["law"]
    idx = rng.integers(law.shape[0], size=N_SAMPLES)
    z = rng.standard_normal((N_SAMPLES, law.shape[1]))
    tau0, kappa = sample_grid(weights["scale"], (N_SAMPLES, 1), rng)
    t_h, k_h = sample_grid(weights["shape"], (N_SAMPLES, 1), rng)
    far = {k: case["dist"][k][None, :] for k in PARTS}
    var = case["sigma"] ** 2 + discrepancy_var(far, tau0, kappa, t_h, k_h, reach)
    return np.exp(law[idx] + np.sqrt(var) * z)


def past_reach_runs(case: dict) -> np.ndarray:
    """Which held-out runs of the case lie past its ladder's inner reach on either part (only
    there can candidate C differ from the product: inside, ``past_reach`` is exactly today's)."""
    past = np.zeros(np.asarray(case["y"]).size, dtype=bool)
    for p in PARTS:
        x = reach_distance(case["inner"], p)
        if x is not None:
            past |= np.asarray(case["dist"][p]) > x
    return past


def reach_shift(case: dict, pops: dict, reach: dict) -> np.ndarray:
    """Candidate C's log shift of the case's held-out runs (the drift past the reach at the
    population's mean)."""
    d = case_drifts(case, pops)
    return discrepancy_mean(case["dist"], d["scale"].value, d["shape"].value, reach)


def figures(table: pd.DataFrame, variant: str) -> dict:
    """The figures candidate C's criterion reads, for ``variant`` (Huber+bootstrap the base)."""
    per = summarise(table[table["variant"].isin([variant, BASE])], ["variant", "ladder"])
    mine, base = (per[per["variant"] == v].set_index("ladder") for v in (variant, BASE))
    sel = table[table["variant"] == variant]
    return {"cov90": float(sel["in_90"].mean()), "cov50": float(sel["in_50"].mean()),
            "lowest": str(mine["cov90"].idxmin()), "lowest_cov90": float(mine["cov90"].min()),
            "mape": float(sel["abs_pct_error"].median()),
            "is90": float(sel["interval_score_90"].mean()),
            "huber_better": int(sum(mine.loc[n, "is90"] >= base.loc[n, "is90"]
                                    for n in mine.index))}


def accept_reach(table: pd.DataFrame, cand: str, ref: str) -> tuple[dict, dict, list[bool]]:
    """Candidate C (``cand``) against the product form (``ref``) on the same runs: each of the
    six conditions of ``benchmarks/CRITERIA_s10_i15.md``, in order."""
    c, r = figures(table, cand), figures(table, ref)
    ok = [0.85 <= c["cov90"] <= 0.95 and 0.40 <= c["cov50"] <= 0.60,
          c["lowest_cov90"] >= 0.70 and c["lowest_cov90"] >= r["lowest_cov90"],
          round(c["mape"], 2) <= round(r["mape"], 2),
          c["is90"] <= r["is90"],
          c["huber_better"] <= r["huber_better"],
          c["lowest_cov90"] >= r["lowest_cov90"] + 0.02 or c["is90"] <= 0.98 * r["is90"]
          or c["mape"] <= r["mape"] - 0.05]
    return c, r, ok


def render_reach(table: pd.DataFrame, cand: str, ref: str, what: str,
                 name: str = "Candidate C (reach)", doc: str = "CRITERIA_s10_i15.md",
                 short: str = "C") -> list[str]:
    """Markdown lines: a candidate's criterion against ``ref`` (pooled, then per ladder): the
    six conditions of ``CRITERIA_s10_i15.md`` (``CRITERIA_s12_i15.md`` states the same six)."""
    c, r, ok = accept_reach(table, cand, ref)
    names = ("pooled 90% in 0.85-0.95 and 50% in 0.40-0.60", "lowest ladder >= 0.70 and not "
             "lower", "median abs error not higher", "interval score not higher",
             "Huber better on no more ladders", "one strict improvement")
    lines = [f"### {name} against {ref} ({what}; `{doc}`)", "",
             "| | 90% | 50% | lowest ladder at 90% | median abs err % | IS 90 | Huber better "
             "on |", "|---|---|---|---|---|---|---|"]
    for label, f in ((cand, c), (ref, r)):
        lines.append(f"| {label} | {f['cov90']:.3f} | {f['cov50']:.3f} | {f['lowest']} "
                     f"{f['lowest_cov90']:.2f} | {f['mape']:.2f} | {f['is90']:.4f} | "
                     f"{f['huber_better']} |")
    said = [f"{i + 1}. {n}: {'yes' if k else 'NO'}"
            for i, (n, k) in enumerate(zip(names, ok, strict=True))]
    lines += ["", "Conditions: " + "; ".join(said),
              "", f"**{'Met' if all(ok) else 'Not met'}.**", "",
              f"| ladder | runs | 90% {short} / ref | 50% {short} / ref | IS {short} / ref | "
              f"median err {short} / ref |",
              "|---|---|---|---|---|---|"]
    per = summarise(table[table["variant"].isin([cand, ref])], ["variant", "ladder"])
    a, b = (per[per["variant"] == v].set_index("ladder") for v in (cand, ref))
    for n in a.index:
        lines.append(f"| {n} | {int(a.loc[n, 'n'])} | {a.loc[n, 'cov90']:.2f} / "
                     f"{b.loc[n, 'cov90']:.2f} | {a.loc[n, 'cov50']:.2f} / {b.loc[n, 'cov50']:.2f}"
                     f" | {a.loc[n, 'is90']:.3f} / {b.loc[n, 'is90']:.3f} | "
                     f"{a.loc[n, 'mape']:.2f} / {b.loc[n, 'mape']:.2f} |")
    by = summarise(table[table["variant"].isin([cand, ref])], ["variant", "by"])
    lines += ["", "| by / variant | runs | 90% | 50% | IS 90 | median err % |",
              "|---|---|---|---|---|---|"]
    for _, row in by.sort_values(["by", "variant"]).iterrows():
        lines.append(f"| {row['by']} / {row['variant']} | {int(row['n'])} | {row['cov90']:.3f} "
                     f"| {row['cov50']:.3f} | {row['is90']:.4f} | {row['mape']:.2f} |")
    return [*lines, ""]


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
        reach = ladder_reach(bt, priors[src][1].with_drift(pops[src]))
        drifts[-1].update({f"reach_{p}": reach[p].x_max if p in reach else np.nan
                           for p in PARTS}, past=int(past_reach_runs(case).sum()))
        for label, weights, drift in ((BASE, None, False), ("one", one, False),
                                      ("one+drift", one, True), ("per-kind", parts, False),
                                      ("per-kind+drift", parts, True), ("reach", parts, True)):
            rng = np.random.default_rng([0, i])  # the same draws with and without the drift
            if label == "reach":
                samples = reach_predictive(case, weights, reach, rng)
                samples = samples * np.exp(reach_shift(case, pops[src], reach))[None, :]
            else:
                samples = predictive(case, None if weights is None else "hull_compute",
                                     weights, rng)
            if drift and label != "reach":
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
    lines += ["", *render_reach(table, LABELS["reach"], LABELS["per-kind+drift"],
                                "Huber+bootstrap law band")]
    by = summarise(table, ["variant", "by"])
    lines += ["", "### By kind of hold-out", "", HEAD.format(what="by / variant")]
    for _, r in by.sort_values(["by", "variant"]).iterrows():
        lines.append(_fmt_row(f"{r['by']} / {r['variant']}", r))
    lines += ["", "### Drift learned (log error per decade; + = the law under-predicts)", "",
              "Population without each source (mean, sd across ladders): " + "; ".join(
                  f"without {s}: scale {p['scale'][0]:+.3f} ({p['scale'][1]:.3f}), shape "
                  f"{p['shape'][0]:+.3f} ({p['shape'][1]:.3f})" for s, p in pops.items()), "",
              "Reach: the largest distance of the part among the split's inner held-out runs "
              "of the matching kind (candidate C); past: held-out runs beyond it on either part.",
              "", "| ladder | by | k | drift scale | drift shape | reach scale | reach shape | "
              "past |", "|---|---|---|---|---|---|---|---|"]
    for _, r in drifts.iterrows():
        lines.append(f"| {r['ladder']} | {r['by']} | {r['k']} | {r['drift_scale']:+.3f} | "
                     f"{r['drift_shape']:+.3f} | {r['reach_scale']:.2f} | {r['reach_shape']:.2f} "
                     f"| {r['past']} |")
    lines += ["", f"{seconds:.0f} s.", "", "*Regenerate: `BAYES_SCALING_DATA=../shared/data "
              "nice -n 15 .venv/bin/python benchmarks/bench_discrepancy_drift.py`*", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
