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

import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_contrast_weights as bw
import contrast_gate as G
from contrast_candidate import Candidate, run

from bayes_scaling.query import anchor

_SLICED: set[int] = set()  # ids of the calibrations fitted with the slice anchor
_WEIGHT_CALIBRATIONS = bw.calibrations


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


CANDIDATE = Candidate(
    band="slice", switch="SLICE_ANCHOR",
    title="## Contrasts: the slice anchor (issue 17, session 11)",
    describe="(`benchmarks/CRITERIA_s11_i17.md`, which also holds the measurements of what makes "
             "the band wide). `rel`: the default when this was scored (relative drift, the gap "
             "anchored on each group's best run at the anchor level); `slice`: the same with "
             "each group's level at the anchor taken from its whole isoFLOP slice (the law at "
             "the best run plus the slice's mean residual from the law; `anchor.SLICE_ANCHOR`), "
             "the calibration's comparisons anchored alike.",
    gate_candidates=G.CANDIDATES_S11, gate_dir="gate_s11",
    calibrations=_calibrations, p_better=_p_better)


if __name__ == "__main__":
    anchor.ML_VARIANCE = False  # scored before session 12: the variance terms by least squares
    run(CANDIDATE, __doc__)
