"""Score every drift term at its rate at the top of the ladder (``anchor.DRIFT_AT_TOP``) under
the rule stated before scoring in ``benchmarks/CRITERIA_s11_i17.md`` section 4: the gate suite
(:mod:`contrast_gate`, 80 synthetic ladders, G0-G3 against the current default ``rel``), R1
(synthetic bench, Porian and Gemstones from the fits ``bench_contrast.py --cache`` saved; P(B
better) of both bands from the same fits and seeds) and R2 (the synthetic bench's predictive
multiplier coverage with the candidate, from ``results/contrast_top.json``, written by
``bench_contrast.py --part synthetic --drift-at-top``). Also Porian's z² and the fitted
``kappa``. Writes ``results/contrast_top.md`` and ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_top.py --cache .fits`` (gate records cached in ``.fits/gate_s11b``;
a killed run resumes).
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
_KAPPA: list[dict] = []  # the candidate's fitted kappa per bench fit
BANDS = ("rel", "top")


def gate_records(n: int, cache: Path) -> pd.DataFrame:
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = cache / f"gate_{i}.pkl"
        if not path.exists():
            path.write_bytes(pickle.dumps(G.score_ladder(i, candidates=G.CANDIDATES_S11B)))
            print(f"ladder {i} done", flush=True)
        rows += pickle.loads(path.read_bytes())
    return pd.DataFrame(rows)


def _calibrations(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """The reference's calibration and the candidate's, from the same cached comparisons."""
    d = bw.comparisons(fit, cache, key)
    ref = anchor.calibration_from(d, "zero", decay=False, relative=True, top=False)
    cand = anchor.calibration_from(d, "zero", decay=False, relative=True, top=True)
    _KAPPA.append({"fit": key, "kappa": cand.drift_decay, "rel s2": ref.drift_var,
                   "top s2": cand.drift_var, "rel r2": ref.drift_rel, "top r2": cand.drift_rel,
                   "rel w sd": ref.weight_sd, "top w sd": cand.weight_sd})
    return {"rel": ref, "top": cand}


def _p_better(fit, a, b, cal, log_c, log_ratio=None) -> np.ndarray:
    th = {g: {k: v[:, None] for k, v in bw.group_theta(fit, g).items()} for g in (a, b)}
    _, pred = anchor.anchored_log_losses(fit, (a, b), th, log_c, log_ratio, cal,
                                         np.random.default_rng(bw.SEED), beyond="hold",
                                         slice_anchor=False)
    return (pred[1] < pred[0]).mean(axis=0)


def real_records(cache: Path) -> pd.DataFrame:
    """Per decision, P(B better) of both bands: the loops of ``bench_contrast_weights.py``
    with its calibrations and P swapped for these two bands."""
    bw.calibrations, bw.p_better = _calibrations, _p_better
    bw._fit_columns = lambda cals: {}
    return pd.DataFrame(bw.synthetic(cache, 6) + bw.porian(cache) + bw.gemstones(cache))


def multiplier_coverage() -> float | None:
    path = RESULTS / "contrast_top.json"
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
    frame = gate_records(args.ladders, args.cache / "gate_s11b")
    g0 = [bg.gate(frame, f, "oracle") for f in ("oracle_x2", "oracle_x0.5")]
    valid = not (g0[0]["pass"] or g0[1]["pass"])
    verdicts = [bg.gate(frame, c, "rel") for c in ("top", "rel_x2", "rel_x0.5")]
    real = real_records(args.cache)
    real.to_csv(RESULTS / "contrast_top.csv", index=False)
    rows = []
    for s, sub in [*((s, real[real["set"] == s]) for s in SETS),
                   ("pooled real", real[real["set"] != "synthetic"])]:
        for band in BANDS:
            rows.append({"set": s, "band": band, "n": len(sub),
                         **bg.bench_scores(sub[f"p_{band}"].to_numpy(), sub["y"].to_numpy())})
    table = pd.DataFrame(rows)
    per_set = table[table["set"].isin(SETS)]
    mean = per_set.groupby("band")[["brier", "acc", "conf", "calgap"]].mean()
    table = pd.concat([table, mean.reset_index().assign(set="mean over sets", n=len(real))],
                      ignore_index=True)
    v = verdicts[0]
    v["R1"] = bool(mean.loc["top", "brier"] < mean.loc["rel", "brier"]
                   and mean.loc["top", "calgap"] < mean.loc["rel", "calgap"])
    cov = multiplier_coverage()
    v["R2"] = cov is not None and 0.85 <= cov <= 0.95
    v["multiplier_cov"] = cov
    v["adopt"] = valid and v["pass"] and v["R1"] and v["R2"]
    write(frame, table, real, g0, valid, verdicts)


def write(frame, table, real, g0, valid, verdicts) -> None:
    bands = ["oracle", "rel", "top", "rel_x2", "rel_x0.5", "oracle_x2", "oracle_x0.5"]
    pooled = [{"band": b, "kind": "all", "target": "all", "n": len(frame), **G.metrics(frame, b)}
              for b in bands]
    per = [{"band": b, "kind": k, "target": t, "n": len(sub), **G.metrics(sub, b)}
           for (k, t), sub in frame.groupby(["kind", "target"]) for b in bands[:3]]
    sd = frame.assign(rel_r=frame["rel_sd"] / frame["oracle_sd"],
                      top_r=frame["top_sd"] / frame["oracle_sd"])
    ratio = sd.groupby(["kind", "k"])[["rel_r", "top_r"]].median().reset_index()
    rel_tabs = []
    for s in SETS:
        sub = real[real["set"] == s]
        for band in BANDS:
            r = reliability(sub[f"p_{band}"].to_numpy(), sub["y"].to_numpy(float))
            rel_tabs += [f"{s}, `{band}`:", "", bg._md(r), ""]
    gate_rel = []
    for b in ("oracle", *BANDS):
        p, y = frame[f"{b}_p"].to_numpy(), frame["b_better"].to_numpy()
        for lo in np.arange(0.0, 1.0, 0.2):
            m = (p >= lo) & (p < lo + 0.2 + 1e-12 * (lo >= 0.8))
            gate_rel.append({"band": b, "P bin": f"{lo:.1f}-{lo + 0.2:.1f}", "n": int(m.sum()),
                             "mean P": float(p[m].mean()) if m.any() else np.nan,
                             "share B better": float(y[m].mean()) if m.any() else np.nan})
    adopted = verdicts[0]["adopt"]
    text = [
        "## Contrasts: every drift term at its rate at the top (issue 17, session 11b)", "",
        "`benchmarks/bench_contrast_top.py`, under the rule committed before scoring "
        "(`benchmarks/CRITERIA_s11_i17.md` section 4). `rel`: the default when this was "
        "scored (relative drift, drift terms pooled over the rolling origins); `top`: the "
        "same with one `kappa >= 0` scaling every drift term (flat, relative, the weight's "
        "spread) by the mean of `10^(kappa (top - x))` over each comparison's change, so each "
        "is its rate at the top of the ladder (`anchor.DRIFT_AT_TOP`). Gate suite: "
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
        f"**{'Adopted' if adopted else 'Not adopted'}: `DRIFT_AT_TOP`"
        f"{' is the default' if adopted else ' stays off'}.**", "",
        "The band's sd over the oracle's (median per kind and number of groups; a band "
        "anchored on observed runs carries the anchor's noise too, so 1 is not reachable):",
        "", bg._md(ratio), "",
        "The fitted `kappa` and drift terms per bench fit (`rel` pooled, `top` at the top):",
        "", bg._md(pd.DataFrame(_KAPPA)), "",
        "Bench sets (synthetic: 6 NUTS fits, 63 pairs, against the true sign at 100x the top "
        "budget; Porian and Gemstones against held-out runs), per set, pooled over the real "
        "sets and the mean over the three:", "", bg._md(table), "",
        "Reliability on the bench sets:", "", *rel_tabs,
        "Reliability on the gate suite:", "", bg._md(pd.DataFrame(gate_rel)), ""]
    atomic_write_text(RESULTS / "contrast_top.md", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
