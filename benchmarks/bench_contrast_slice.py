"""Score the slice anchor (``anchor.SLICE_ANCHOR``) under the rule stated before scoring in
``benchmarks/CRITERIA_s11_i17.md``: the gate suite (:mod:`contrast_gate`, 80 synthetic ladders,
G0-G3 against the current default ``rel``), the real-set part R1 (synthetic bench, Porian and
Gemstones from the fits ``bench_contrast.py --cache`` saved; P(B better) of both bands from the
same fits and seeds) and R2 (the synthetic bench's predictive multiplier coverage with the
candidate, from ``results/contrast_slice.json``, written by ``bench_contrast.py --part synthetic
--slice-anchor``). Also the band's variance against the oracle's on the gate. Writes
``results/contrast_slice.md`` and ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_slice.py --cache .fits`` (gate records cached in ``.fits/gate_s11``,
the slice-anchored comparisons as ``*.slice.caldata.pkl``; a killed run resumes).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_contrast_gate as bg
import bench_contrast_weights as bw
import contrast_gate as G
from contrast_common import reliability

from bayes_scaling.files import atomic_write_text
from bayes_scaling.query import anchor

RESULTS = bg.RESULTS
SETS = ("synthetic", "porian", "gemstones")
_SLICED: set[int] = set()  # ids of the calibrations fitted with the slice anchor
_WEIGHT_CALIBRATIONS = bw.calibrations


def gate_records(n: int, cache: Path) -> pd.DataFrame:
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = cache / f"gate_{i}.pkl"
        if not path.exists():
            path.write_bytes(pickle.dumps(G.score_ladder(i, candidates=G.CANDIDATES_S11)))
            print(f"ladder {i} done", flush=True)
        rows += pickle.loads(path.read_bytes())
    return pd.DataFrame(rows)


def _calibrations(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """The reference's calibration (the cached comparisons) and the candidate's."""
    ref = _WEIGHT_CALIBRATIONS(fit, cache, key)["zero_rel"]
    path = cache / f"{key}.slice.caldata.pkl"
    if not path.exists():
        path.write_bytes(pickle.dumps(anchor.calibration_data(fit, slice_anchor=True)))
    cand = anchor.calibration_from(pickle.loads(path.read_bytes()), "zero", decay=False,
                                   relative=True)
    _SLICED.add(id(cand))
    return {"rel": ref, "slice": cand}


def _p_better(fit, a, b, cal, log_c, log_ratio=None) -> np.ndarray:
    th = {g: {k: v[:, None] for k, v in bw.group_theta(fit, g).items()} for g in (a, b)}
    _, pred = anchor.anchored_log_losses(fit, (a, b), th, log_c, log_ratio, cal,
                                         np.random.default_rng(bw.SEED), beyond="hold",
                                         slice_anchor=id(cal) in _SLICED)
    return (pred[1] < pred[0]).mean(axis=0)


def real_records(cache: Path) -> pd.DataFrame:
    """Per decision, P(B better) of both bands: the loops of ``bench_contrast_weights.py``
    with its calibrations and P swapped for these two bands."""
    bw.calibrations, bw.p_better = _calibrations, _p_better
    bw._fit_columns = lambda cals: {}
    return pd.DataFrame(bw.synthetic(cache, 6) + bw.porian(cache) + bw.gemstones(cache))


def multiplier_coverage() -> float | None:
    path = RESULTS / "contrast_slice.json"
    if not path.exists():
        return None
    syn = pd.DataFrame(json.loads(path.read_text()).get("synthetic", []))
    if not len(syn):
        return None
    return float(((syn["mp_lower"] <= syn["true_multiplier"])
                  & (syn["true_multiplier"] <= syn["mp_upper"])).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(".fits"))
    ap.add_argument("--ladders", type=int, default=bg.N_LADDERS)
    args = ap.parse_args()
    frame = gate_records(args.ladders, args.cache / "gate_s11")
    g0 = [bg.gate(frame, f, "oracle") for f in ("oracle_x2", "oracle_x0.5")]
    valid = not (g0[0]["pass"] or g0[1]["pass"])
    verdicts = [bg.gate(frame, c, "rel") for c in ("slice", "rel_x2", "rel_x0.5")]
    real = real_records(args.cache)
    real.to_csv(RESULTS / "contrast_slice.csv", index=False)
    rows = []
    for s, sub in [*((s, real[real["set"] == s]) for s in SETS),
                   ("pooled real", real[real["set"] != "synthetic"])]:
        for band in ("rel", "slice"):
            rows.append({"set": s, "band": band, "n": len(sub),
                         **bg.bench_scores(sub[f"p_{band}"].to_numpy(), sub["y"].to_numpy())})
    table = pd.DataFrame(rows)
    per_set = table[table["set"].isin(SETS)]
    mean = per_set.groupby("band")[["brier", "acc", "conf", "calgap"]].mean()
    table = pd.concat([table, mean.reset_index().assign(set="mean over sets", n=len(real))],
                      ignore_index=True)
    v = verdicts[0]
    v["R1"] = bool(mean.loc["slice", "brier"] < mean.loc["rel", "brier"]
                   and mean.loc["slice", "calgap"] < mean.loc["rel", "calgap"])
    cov = multiplier_coverage()
    v["R2"] = cov is not None and 0.85 <= cov <= 0.95
    v["multiplier_cov"] = cov
    v["adopt"] = valid and v["pass"] and v["R1"] and v["R2"]
    write(frame, table, real, g0, valid, verdicts)


def write(frame, table, real, g0, valid, verdicts) -> None:
    bands = ["oracle", "rel", "slice", "rel_x2", "rel_x0.5", "oracle_x2", "oracle_x0.5"]
    pooled = [{"band": b, "kind": "all", "target": "all", "n": len(frame), **G.metrics(frame, b)}
              for b in bands]
    per = [{"band": b, "kind": k, "target": t, "n": len(sub), **G.metrics(sub, b)}
           for (k, t), sub in frame.groupby(["kind", "target"]) for b in bands[:3]]
    sd = frame.assign(rel_r=frame["rel_sd"] / frame["oracle_sd"],
                      slice_r=frame["slice_sd"] / frame["oracle_sd"])
    ratio = sd.groupby(["kind", "k"])[["rel_r", "slice_r"]].median().reset_index()
    rel_tabs = []
    for s in SETS:
        sub = real[real["set"] == s]
        for band in ("rel", "slice"):
            r = reliability(sub[f"p_{band}"].to_numpy(), sub["y"].to_numpy(float))
            rel_tabs += [f"{s}, `{band}`:", "", bg._md(r), ""]
    gate_rel = []
    for b in ("oracle", "rel", "slice"):
        p, y = frame[f"{b}_p"].to_numpy(), frame["b_better"].to_numpy()
        for lo in np.arange(0.0, 1.0, 0.2):
            m = (p >= lo) & (p < lo + 0.2 + 1e-12 * (lo >= 0.8))
            gate_rel.append({"band": b, "P bin": f"{lo:.1f}-{lo + 0.2:.1f}", "n": int(m.sum()),
                             "mean P": float(p[m].mean()) if m.any() else np.nan,
                             "share B better": float(y[m].mean()) if m.any() else np.nan})
    adopted = verdicts[0]["adopt"]
    text = [
        "## Contrasts: the slice anchor (issue 17, session 11)", "",
        "`benchmarks/bench_contrast_slice.py`, under the rule committed before scoring "
        "(`benchmarks/CRITERIA_s11_i17.md`, which also holds the measurements of what makes "
        "the band wide). `rel`: the default when this was scored (relative drift, the gap "
        "anchored on each group's best run at the anchor level); `slice`: the same with "
        "each group's level at the anchor taken from its whole isoFLOP slice (the law at the "
        "best run plus the slice's mean residual from the law; `anchor.SLICE_ANCHOR`), the "
        "calibration's comparisons anchored alike. Gate suite: `benchmarks/contrast_gate.py` "
        f"({frame['ladder'].nunique()} ladders, {len(frame)} held-out observed gaps); "
        "`oracle`: the exact predictive distribution of the observed gap; `*_x2`, `*_x0.5`: "
        "spread scaled about the mean (planted faults).", "",
        "Gate, pooled and per kind and target (target: times the top budget):", "",
        bg._md(pd.DataFrame(pooled + per)), "",
        f"G0 (the gate rejects the oracle's planted faults): **{'valid' if valid else 'NOT valid'}"
        "**:", "", bg._md(pd.DataFrame(g0)), "",
        "The candidate and the reference's planted faults against the reference `rel` (G1: "
        f"dbrier_q95 <= {bg.MARGIN_POOLED}; G2: each kind's <= {bg.MARGIN_CLASS}; G3: "
        f"|cov90 - 0.9| and calgap no worse than the reference's + {bg.TOL}; R1: mean Brier "
        "and mean calgap over the three bench sets below the reference's; R2: synthetic "
        "predictive multiplier coverage 85-95%):", "", bg._md(pd.DataFrame(verdicts)), "",
        f"**{'Adopted' if adopted else 'Not adopted'}: `SLICE_ANCHOR`"
        f"{' is the default' if adopted else ' stays off'}.**", "",
        "The band's sd over the oracle's (median per kind and number of groups; a band "
        "anchored on observed runs carries the anchor's noise too, so 1 is not reachable):",
        "", bg._md(ratio), "",
        "Bench sets (synthetic: 6 NUTS fits, 63 pairs, against the true sign at 100x the top "
        "budget; Porian and Gemstones against held-out runs), per set, pooled over the real "
        "sets and the mean over the three:", "", bg._md(table), "",
        "Reliability on the bench sets:", "", *rel_tabs,
        "Reliability on the gate suite:", "", bg._md(pd.DataFrame(gate_rel)), ""]
    atomic_write_text(RESULTS / "contrast_slice.md", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
