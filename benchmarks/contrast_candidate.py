"""Scoring of one contrast-band candidate against the default ``rel``, shared by
``bench_contrast_slice.py`` and ``bench_contrast_top.py`` (issue 17, session 11): the gate suite
(:mod:`contrast_gate`, G0-G3 of ``bench_contrast_gate``), R1 (synthetic bench, Porian and
Gemstones from the fits ``bench_contrast.py --cache`` saved; P(B better) of both bands from the
same fits and seeds) and R2 (the synthetic bench's predictive multiplier coverage with the
candidate, from ``results/contrast_<band>.json``), with reliability tables. Each script gives
its :class:`Candidate` (its calibrations, its P(B better), its text) and calls :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bench_contrast_gate as bg
import bench_contrast_weights as bw
import contrast_gate as G
import numpy as np
import pandas as pd
from contrast_common import reliability

from bayes_scaling.files import atomic_write_text
from bayes_scaling.query import anchor

RESULTS = bg.RESULTS
SETS = ("synthetic", "porian", "gemstones")


@dataclass
class Candidate:
    """One candidate band: ``band`` names its columns (``<band>_p``, ``<band>_sd``, ``p_<band>``)
    and result files; ``switch`` its option in ``anchor``; ``calibrations(fit, cache, key)``
    returns ``{"rel": ..., band: ...}`` and ``p_better(fit, a, b, cal, log_c, log_ratio)`` the
    probability that ``b`` is better under a calibration; ``describe`` is the results' opening
    paragraph after the script's name; ``extra`` adds tables after the sd ratios."""

    band: str
    switch: str
    title: str
    describe: str
    gate_candidates: tuple
    gate_dir: str
    calibrations: Callable
    p_better: Callable
    extra: Callable[[], list[str]] = field(default=lambda: [])


def p_better(fit, a, b, cal, log_c, log_ratio=None, slice_anchor: bool = False) -> np.ndarray:
    """P(B better) at the targets from the anchored band of ``cal`` (the candidates' shared
    scorer: seed ``bench_contrast_weights.SEED``, the gap held past the refits' horizon)."""
    th = {g: {k: v[:, None] for k, v in bw.group_theta(fit, g).items()} for g in (a, b)}
    _, pred = anchor.anchored_log_losses(fit, (a, b), th, log_c, log_ratio, cal,
                                         np.random.default_rng(bw.SEED), beyond="hold",
                                         slice_anchor=slice_anchor)
    return (pred[1] < pred[0]).mean(axis=0)


def gate_records(n: int, cache: Path, candidates: tuple) -> pd.DataFrame:
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = cache / f"gate_{i}.pkl"
        if not path.exists():
            path.write_bytes(pickle.dumps(G.score_ladder(i, candidates=candidates)))
            print(f"ladder {i} done", flush=True)
        rows += pickle.loads(path.read_bytes())
    return pd.DataFrame(rows)


def real_records(cand: Candidate, cache: Path) -> pd.DataFrame:
    """Per decision, P(B better) of both bands: the loops of ``bench_contrast_weights.py``
    with its calibrations and P swapped for these two bands."""
    bw.calibrations, bw.p_better = cand.calibrations, cand.p_better
    bw._fit_columns = lambda cals: {}
    return pd.DataFrame(bw.synthetic(cache, 6) + bw.porian(cache) + bw.gemstones(cache))


def multiplier_coverage(band: str) -> float | None:
    path = RESULTS / f"contrast_{band}.json"
    if not path.exists():
        return None
    syn = pd.DataFrame(json.loads(path.read_text()).get("synthetic", []))
    if not len(syn):
        return None
    return float(((syn["mp_lower"] <= syn["true_multiplier"])
                  & (syn["true_multiplier"] <= syn["mp_upper"])).mean())


def run(cand: Candidate, doc: str) -> None:
    """The script's ``main``: score, decide by the stated rule, write the results."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(".fits"))
    ap.add_argument("--ladders", type=int, default=bg.N_LADDERS)
    args = ap.parse_args()
    frame = gate_records(args.ladders, args.cache / cand.gate_dir, cand.gate_candidates)
    g0 = [bg.gate(frame, f, "oracle") for f in ("oracle_x2", "oracle_x0.5")]
    valid = not (g0[0]["pass"] or g0[1]["pass"])
    verdicts = [bg.gate(frame, c, "rel") for c in (cand.band, "rel_x2", "rel_x0.5")]
    real = real_records(cand, args.cache)
    real.to_csv(RESULTS / f"contrast_{cand.band}.csv", index=False)
    bands = ("rel", cand.band)
    rows = []
    for s, sub in [*((s, real[real["set"] == s]) for s in SETS),
                   ("pooled real", real[real["set"] != "synthetic"])]:
        for band in bands:
            rows.append({"set": s, "band": band, "n": len(sub),
                         **bg.bench_scores(sub[f"p_{band}"].to_numpy(), sub["y"].to_numpy())})
    table = pd.DataFrame(rows)
    per_set = table[table["set"].isin(SETS)]
    mean = per_set.groupby("band")[["brier", "acc", "conf", "calgap"]].mean()
    table = pd.concat([table, mean.reset_index().assign(set="mean over sets", n=len(real))],
                      ignore_index=True)
    v = verdicts[0]
    v["R1"] = bool(mean.loc[cand.band, "brier"] < mean.loc["rel", "brier"]
                   and mean.loc[cand.band, "calgap"] < mean.loc["rel", "calgap"])
    cov = multiplier_coverage(cand.band)
    v["R2"] = cov is not None and 0.85 <= cov <= 0.95
    v["multiplier_cov"] = cov
    v["adopt"] = valid and v["pass"] and v["R1"] and v["R2"]
    write(cand, frame, table, real, g0, valid, verdicts)


def write(cand: Candidate, frame, table, real, g0, valid, verdicts) -> None:
    name, bands = cand.band, ("rel", cand.band)
    every = ["oracle", "rel", name, "rel_x2", "rel_x0.5", "oracle_x2", "oracle_x0.5"]
    pooled = [{"band": b, "kind": "all", "target": "all", "n": len(frame), **G.metrics(frame, b)}
              for b in every]
    per = [{"band": b, "kind": k, "target": t, "n": len(sub), **G.metrics(sub, b)}
           for (k, t), sub in frame.groupby(["kind", "target"]) for b in every[:3]]
    sd = frame.assign(rel_r=frame["rel_sd"] / frame["oracle_sd"],
                      **{f"{name}_r": frame[f"{name}_sd"] / frame["oracle_sd"]})
    ratio = sd.groupby(["kind", "k"])[["rel_r", f"{name}_r"]].median().reset_index()
    rel_tabs = []
    for s in SETS:
        sub = real[real["set"] == s]
        for band in bands:
            r = reliability(sub[f"p_{band}"].to_numpy(), sub["y"].to_numpy(float))
            rel_tabs += [f"{s}, `{band}`:", "", bg._md(r), ""]
    gate_rel = []
    for b in ("oracle", *bands):
        p, y = frame[f"{b}_p"].to_numpy(), frame["b_better"].to_numpy()
        for lo in np.arange(0.0, 1.0, 0.2):
            m = (p >= lo) & (p < lo + 0.2 + 1e-12 * (lo >= 0.8))
            gate_rel.append({"band": b, "P bin": f"{lo:.1f}-{lo + 0.2:.1f}", "n": int(m.sum()),
                             "mean P": float(p[m].mean()) if m.any() else np.nan,
                             "share B better": float(y[m].mean()) if m.any() else np.nan})
    adopted = verdicts[0]["adopt"]
    text = [
        cand.title, "",
        f"`benchmarks/bench_contrast_{name}.py`, under the rule committed before scoring "
        + cand.describe + " Gate suite: "
        f"`benchmarks/contrast_gate.py` ({frame['ladder'].nunique()} ladders, {len(frame)} "
        "held-out observed gaps); `oracle`: the exact predictive distribution of the observed "
        "gap; `*_x2`, `*_x0.5`: spread scaled about the mean (planted faults).", "",
        "Gate, pooled and per kind and target (target: times the top budget):", "",
        bg._md(pd.DataFrame(pooled + per)), "",
        f"G0 (the gate rejects the oracle's planted faults): **{'valid' if valid else 'NOT valid'}"
        "**:", "", bg._md(pd.DataFrame(g0)), "",
        "The candidate and the reference's planted faults against the reference `rel` (G1: "
        f"dbrier_q95 <= {bg.MARGIN_POOLED}; G2: each kind's <= {bg.MARGIN_CLASS}; G3: "
        f"|cov90 - 0.9| and calgap no worse than the reference's + {bg.TOL}; R1: mean Brier "
        "and mean calgap over the three bench sets below the reference's; R2: synthetic "
        "predictive multiplier coverage 85-95%):", "", bg._md(pd.DataFrame(verdicts)), "",
        f"**{'Adopted' if adopted else 'Not adopted'}: `{cand.switch}`"
        f"{' is the default' if adopted else ' stays off'}.**", "",
        "The band's sd over the oracle's (median per kind and number of groups; a band "
        "anchored on observed runs carries the anchor's noise too, so 1 is not reachable):",
        "", bg._md(ratio), "", *cand.extra(),
        "Bench sets (synthetic: 6 NUTS fits, 63 pairs, against the true sign at 100x the top "
        "budget; Porian and Gemstones against held-out runs), per set, pooled over the real "
        "sets and the mean over the three:", "", bg._md(table), "",
        "Reliability on the bench sets:", "", *rel_tabs,
        "Reliability on the gate suite:", "", bg._md(pd.DataFrame(gate_rel)), ""]
    atomic_write_text(RESULTS / f"contrast_{name}.md", "\n".join(text))
    print("\n".join(text))
