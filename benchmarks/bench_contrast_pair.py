"""Score the weight's spread per pair of groups (``anchor.PAIR_SPREAD``) under the rule stated
before scoring in ``benchmarks/CRITERIA_s12b_i17.md``: one candidate, ``pair``, against the
current default ``rel`` (relative drift, variance terms by maximum likelihood), on the gate
suite (:mod:`contrast_gate`, 80 synthetic ladders, G0-G3), R1 (synthetic bench, Porian and
Gemstones from the fits ``bench_contrast.py --cache`` saved; P(B better) of both bands from the
same fits and seeds) and R2 (the synthetic bench's predictive multiplier coverage, from
``results/contrast_pair.json``, written by ``bench_contrast.py --part synthetic --ladders 6
--cache .fits --pair-spread``). Also each bench fit's pooled and per-pair sd of ``w``. Writes
``results/contrast_pair.md`` and ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_pair.py --cache .fits`` (gate records cached in ``.fits/gate_s12b``;
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
from bench_contrast_ml import per_corpus
from contrast_candidate import Candidate, p_better, run

from bayes_scaling.query import anchor

_TERMS: list[dict] = []  # each bench fit's pooled and per-pair sd of w


def _calibrations(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """The reference's calibration and the candidate's, from the same cached comparisons."""
    d = bw.comparisons(fit, cache, key)
    out = {b: anchor.calibration_from(d, "zero", decay=False, relative=True, top=False, ml=True,
                                      pair=b == "pair") for b in ("rel", "pair")}
    sds = [sd for _, sd in out["pair"].pair_sd]
    _TERMS.append({"fit": key, "pooled w sd": out["rel"].weight_sd,
                   "pair w sd min": min(sds, default=float("nan")),
                   "pair w sd max": max(sds, default=float("nan")), "pairs": len(sds)})
    return out


PAIR = Candidate(
    band="pair", switch="PAIR_SPREAD",
    title="## Contrasts: the weight's spread per pair of groups (issue 17, session 12b)",
    describe="(`benchmarks/CRITERIA_s12b_i17.md`). `rel`: the default when this was scored "
             "(relative drift, variance terms by maximum likelihood); `pair`: the same with "
             "the spread `t` of `w` per pair of groups, each pair's shrunk towards the pooled "
             "one by random-effects empirical Bayes (`anchor.PAIR_SPREAD`).",
    gate_candidates=G.CANDIDATES_S12B, gate_dir="gate_s12b",
    calibrations=_calibrations, p_better=p_better,
    extra=lambda: ["The sd of `w` per bench fit: pooled (`rel`) and the range over pairs "
                   "(`pair`):", "", bg._md(pd.DataFrame(_TERMS)), ""])


if __name__ == "__main__":
    run(PAIR, __doc__)
    per_corpus(PAIR.band)
