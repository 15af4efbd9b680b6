"""Score ``w``'s spread term capped by the refits (``anchor.SPREAD_CAP``) under the rule stated
before scoring in ``benchmarks/CRITERIA_s12c_i17.md``: one candidate, ``cap``, against the
current default ``rel`` (relative drift, variance terms by maximum likelihood), on the gate
suite (:mod:`contrast_gate`, 80 synthetic ladders, G0-G3), R1 (synthetic bench, Porian and
Gemstones from the fits ``bench_contrast.py --cache`` saved; P(B better) of both bands from the
same fits and seeds) and R2 (the synthetic bench's predictive multiplier coverage, from
``results/contrast_cap.json``, written by ``bench_contrast.py --part synthetic --ladders 6
--cache .fits --spread-cap``). Also each bench fit's cap ``Y`` and sd of ``w`` under both.
Writes ``results/contrast_cap.md`` and ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_cap.py --cache .fits`` (gate records cached in ``.fits/gate_s12c``;
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
from contrast_candidate import Candidate, p_better, run

from bayes_scaling.query import anchor

_TERMS: list[dict] = []  # each bench fit's cap and sd of w under both bands


def _calibrations(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """The reference's calibration and the candidate's, from the same cached comparisons."""
    d = bw.comparisons(fit, cache, key)
    out = {b: anchor.calibration_from(d, "zero", decay=False, relative=True, top=False, ml=True,
                                      pair=False, cap=b == "cap") for b in ("rel", "cap")}
    x = np.abs(d["x"])
    _TERMS.append({"fit": key, "cap Y": out["cap"].spread_cap,
                   "share |x| > Y": float(np.mean(x > out["cap"].spread_cap)),
                   "max |x|": float(np.max(x)), "rel w sd": out["rel"].weight_sd,
                   "cap w sd": out["cap"].weight_sd})
    return out


CAP = Candidate(
    band="cap", switch="SPREAD_CAP",
    title="## Contrasts: the weight's spread term capped by the refits (issue 17, session 12c)",
    describe="(`benchmarks/CRITERIA_s12c_i17.md`). `rel`: the default when this was scored "
             "(relative drift, variance terms by maximum likelihood); `cap`: the same with "
             "`w`'s spread term `t² min(x², Y²)`, `Y` the refits' largest observed change of a "
             "gap, in the fit and at application (`anchor.SPREAD_CAP`).",
    gate_candidates=G.CANDIDATES_S12C, gate_dir="gate_s12c",
    calibrations=_calibrations, p_better=p_better,
    extra=lambda: ["Per bench fit: the cap `Y`, the share of the refits' comparisons whose "
                   "predicted change exceeds it, the largest |x|, and the sd of `w` (`t`) "
                   "under both bands:", "", bg._md(pd.DataFrame(_TERMS)), ""])


if __name__ == "__main__":
    run(CAP, __doc__)
    per_corpus(CAP.band)
