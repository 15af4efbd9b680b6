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

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_contrast_gate as bg
import bench_contrast_weights as bw
import contrast_gate as G
from contrast_candidate import Candidate, p_better, run

from bayes_scaling.query import anchor

_KAPPA: list[dict] = []  # the candidate's fitted kappa per bench fit


def _calibrations(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """The reference's calibration and the candidate's, from the same cached comparisons."""
    d = bw.comparisons(fit, cache, key)
    ref = anchor.calibration_from(d, "zero", decay=False, relative=True, top=False)
    cand = anchor.calibration_from(d, "zero", decay=False, relative=True, top=True)
    _KAPPA.append({"fit": key, "kappa": cand.drift_decay, "rel s2": ref.drift_var,
                   "top s2": cand.drift_var, "rel r2": ref.drift_rel, "top r2": cand.drift_rel,
                   "rel w sd": ref.weight_sd, "top w sd": cand.weight_sd})
    return {"rel": ref, "top": cand}


CANDIDATE = Candidate(
    band="top", switch="DRIFT_AT_TOP",
    title="## Contrasts: every drift term at its rate at the top (issue 17, session 11b)",
    describe="(`benchmarks/CRITERIA_s11_i17.md` section 4). `rel`: the default when this was "
             "scored (relative drift, drift terms pooled over the rolling origins); `top`: the "
             "same with one `kappa >= 0` scaling every drift term (flat, relative, the weight's "
             "spread) by the mean of `10^(kappa (top - x))` over each comparison's change, so "
             "each is its rate at the top of the ladder (`anchor.DRIFT_AT_TOP`).",
    gate_candidates=G.CANDIDATES_S11B, gate_dir="gate_s11b",
    calibrations=_calibrations, p_better=p_better,
    extra=lambda: ["The fitted `kappa` and drift terms per bench fit (`rel` pooled, `top` at "
                   "the top):", "", bg._md(pd.DataFrame(_KAPPA)), ""])


if __name__ == "__main__":
    anchor.ML_VARIANCE = False  # scored before session 12: the variance terms by least squares
    run(CANDIDATE, __doc__)
