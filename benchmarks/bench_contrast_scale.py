"""Score the calibration's variance scaled by each refit's origin below the top
(``anchor.ORIGIN_SCALE``) under the rule stated before scoring in
``benchmarks/CRITERIA_s13_i17.md``: one candidate, ``scale``, against the current default
``rel`` (relative drift, variance terms by maximum likelihood), on the gate suite
(:mod:`contrast_gate`, 80 synthetic ladders, G0-G3), R1 (synthetic bench, Porian and Gemstones
from the fits ``bench_contrast.py --cache`` saved; P(B better) of both bands from the same fits
and seeds) and R2 (the synthetic bench's predictive multiplier coverage, from
``results/contrast_scale.json``, written by ``bench_contrast.py --part synthetic --ladders 6
--cache .fits --origin-scale``). Also each bench fit's ``beta`` and sd of ``w`` under both, and
``beta`` per kind of gate ladder. Writes ``results/contrast_scale.md`` and ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_scale.py --cache .fits`` (gate records cached in ``.fits/gate_s13``;
a killed run resumes).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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
                                      pair=False, cap=False, scale=b == "scale")
           for b in ("rel", "scale")}
    _TERMS.append({"fit": key, "n": int(d["x"].size),
                   "decades below": ", ".join(f"{v:.2f}" for v in np.unique(
                       np.round(float(d["top_x"]) - d["origin_x"], 2))),
                   "beta": out["scale"].origin_scale,
                   **{f"{b} {k}": getattr(out[b], f) for b in out
                      for k, f in (("a", "noise_var"), ("s2", "drift_var"), ("r2", "drift_rel"),
                                   ("w sd", "weight_sd"))}})
    return out


def _betas() -> list[str]:
    """``beta`` per kind of gate ladder (one per ladder)."""
    frame = gate_records(bg.N_LADDERS, Path(".fits") / "gate_s13", G.CANDIDATES_S13)
    per = frame.groupby("ladder")[["kind", "scale_beta"]].first()
    tab = per.groupby("kind")["scale_beta"].describe()[["count", "mean", "25%", "50%", "75%",
                                                        "min", "max"]]
    tab["share 0"] = per.groupby("kind")["scale_beta"].apply(lambda b: float(np.mean(b == 0)))
    return ["`beta` (log10 variance per decade below the top; > 0: lower origins noisier) per "
            "kind of gate ladder, one per ladder (`offset` ladders have scale-constant run "
            "noise):", "", bg._md(tab.reset_index()), ""]


SCALE = Candidate(
    band="scale", switch="ORIGIN_SCALE",
    title="## Contrasts: the calibration's variance scaled by each refit's origin (issue 17, "
          "session 13)",
    describe="(`benchmarks/CRITERIA_s13_i17.md`). `rel`: the default when this was scored "
             "(relative drift, variance terms by maximum likelihood); `scale`: the same with "
             "each refit comparison's variance times `10^(beta (top_x - origin_x))` in the fit, "
             "`beta` profiled with the other terms, and the terms applied at the top (factor "
             "1; `anchor.ORIGIN_SCALE`).",
    gate_candidates=G.CANDIDATES_S13, gate_dir="gate_s13",
    calibrations=_calibrations, p_better=p_better,
    extra=lambda: [*_betas(), "Per bench fit: the origins (decades below the top), `beta` and "
                   "the band's terms under both bands (`w sd`: `t`):", "",
                   bg._md(pd.DataFrame(_TERMS)), ""])


if __name__ == "__main__":
    run(SCALE, __doc__)
    per_corpus(SCALE.band)
