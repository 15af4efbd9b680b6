"""Score the origin-scale factor with ``beta`` integrated over its grid (``anchor.ORIGIN_MIX``
with ``anchor.ORIGIN_SCALE``) under the rule stated before scoring in
``benchmarks/CRITERIA_s13_i17.md`` (addendum 2): one candidate, ``mix``, against the current
default ``rel``, on the gate suite (:mod:`contrast_gate`, 80 synthetic ladders, G0-G3), R1
(synthetic bench, Porian and Gemstones from the fits ``bench_contrast.py --cache`` saved; both
bands from the same fits and seeds) and R2 (the synthetic bench's predictive multiplier
coverage, from ``results/contrast_mix.json``, written by ``bench_contrast.py --part synthetic
--ladders 6 --cache .fits --origin-scale --origin-mix``). Also each bench fit's mixture mean and
sd of ``beta`` and the terms under both bands, ``beta`` per kind of gate ladder, and the gate's
coverage split by the sign of round 1's point ``beta`` (``.fits/gate_s13``, when cached).
Writes ``results/contrast_mix.md`` and ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_mix.py --cache .fits`` (gate records cached in ``.fits/gate_s13b``;
a killed run resumes).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_contrast_gate as bg
import bench_contrast_weights as bw
import contrast_gate as G
from bench_contrast_ml import per_corpus
from contrast_candidate import Candidate, gate_records, p_better, run

from bayes_scaling.query import anchor

_TERMS: list[dict] = []  # each bench fit's beta and the terms under both bands


def _calibrations(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """The reference's calibration and the candidate's, from the same cached comparisons."""
    d = bw.comparisons(fit, cache, key)
    out = {b: anchor.calibration_from(d, "zero", decay=False, relative=True, top=False, ml=True,
                                      pair=False, cap=False, scale=b == "mix", mix=b == "mix")
           for b in ("rel", "mix")}
    _TERMS.append({"fit": key, "n": int(d["x"].size),
                   "decades below": ", ".join(f"{v:.2f}" for v in np.unique(
                       np.round(float(d["top_x"]) - d["origin_x"], 2))),
                   "beta mean": out["mix"].origin_scale, "beta sd": out["mix"].origin_scale_sd,
                   **{f"{b} {k}": getattr(out[b], f) for b in out
                      for k, f in (("a", "noise_var"), ("s2", "drift_var"), ("r2", "drift_rel"),
                                   ("w sd", "weight_sd"))}})
    return out


def _betas() -> list[str]:
    """``beta``'s mixture mean per kind of gate ladder, and coverage by round 1's ``beta``."""
    frame = gate_records(bg.N_LADDERS, Path(".fits") / "gate_s13b", G.CANDIDATES_S13B)
    per = frame.groupby("ladder")[["kind", "mix_beta"]].first()
    tab = per.groupby("kind")["mix_beta"].describe()[["count", "mean", "std", "25%", "50%",
                                                      "75%", "min", "max"]]
    out = ["`beta`'s mixture mean (log10 variance per decade below the top; > 0: lower origins "
           "noisier) per kind of gate ladder, one per ladder (`offset` ladders have "
           "scale-constant run noise):", "", bg._md(tab.reset_index()), ""]
    old = [Path(".fits") / "gate_s13" / f"gate_{i}.pkl" for i in range(bg.N_LADDERS)]
    if all(p.exists() for p in old):  # round 1's point beta per ladder, the same ladders
        point = pd.concat([pd.DataFrame(pickle.loads(p.read_bytes())) for p in old]
                          ).groupby("ladder")["scale_beta"].first()
        f = frame.assign(sign=np.sign(frame["ladder"].map(point)))
        rows = [{"round 1's beta": {1.0: "> 0", -1.0: "< 0", 0.0: "= 0"}[s], "n": len(sub),
                 **{f"{b} cov90": G.metrics(sub, b)["cov90"] for b in ("rel", "mix")}}
                for s, sub in f.groupby("sign")]
        out += ["Gate coverage split by the sign of round 1's point `beta` (`scale`, "
                "`.fits/gate_s13`; round 1: `scale` 78.3% where > 0, 96.6% where < 0):", "",
                bg._md(pd.DataFrame(rows)), ""]
    return out


MIX = Candidate(
    band="mix", switch="ORIGIN_MIX",
    title="## Contrasts: the origin-scale factor with `beta` integrated (issue 17, session 13, "
          "round 2)",
    describe="(`benchmarks/CRITERIA_s13_i17.md`, addendum 2). `rel`: the default when this was "
             "scored (relative drift, variance terms by maximum likelihood); `mix`: the same "
             "with each refit comparison's variance times `10^(beta (top_x - origin_x))` in the "
             "fit, `beta` integrated over its grid (weights: profile likelihood times the "
             "`N(0, 1)` prior) and the band's terms the weighted average of each `beta`'s at "
             "the top (`anchor.ORIGIN_SCALE` with `anchor.ORIGIN_MIX`).",
    gate_candidates=G.CANDIDATES_S13B, gate_dir="gate_s13b",
    calibrations=_calibrations, p_better=p_better,
    extra=lambda: [*_betas(), "Per bench fit: the origins (decades below the top), `beta`'s "
                   "mixture mean and sd, and the band's terms under both bands (`w sd`: `t`):",
                   "", bg._md(pd.DataFrame(_TERMS)), ""])


if __name__ == "__main__":
    run(MIX, __doc__)
    per_corpus(MIX.band)
