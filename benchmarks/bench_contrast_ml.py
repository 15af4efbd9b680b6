"""Score the contrast band's variance terms fitted by maximum likelihood (``anchor.ML_VARIANCE``)
under the rule stated before scoring in ``benchmarks/CRITERIA_s12_i17.md``: two candidates
against the current default ``rel``, ``ml`` (the default's fit by maximum likelihood) and
``top_ml`` (with every drift term at its rate at the top, ``anchor.DRIFT_AT_TOP``, too), each
on the gate suite (:mod:`contrast_gate`, 80 synthetic ladders, G0-G3), R1 (synthetic bench,
Porian and Gemstones from the fits ``bench_contrast.py --cache`` saved; P(B better) of both
bands from the same fits and seeds) and R2 (the synthetic bench's predictive multiplier
coverage, from ``results/contrast_<band>.json``, written by ``bench_contrast.py --part
synthetic --ml-variance [--drift-at-top]``). Also the fitted ``kappa`` and drift terms per
bench fit, ``top`` (least squares) beside them. Writes ``results/contrast_ml.md``,
``contrast_top_ml.md`` and their ``.csv``.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/bench_contrast_ml.py --cache .fits`` (gate records cached in ``.fits/gate_s12``;
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

_TERMS: list[dict] = []  # each band's fitted kappa and drift terms per bench fit


def _cal(d: dict, top: bool, ml: bool) -> anchor.ContrastCalibration:
    return anchor.calibration_from(d, "zero", decay=False, relative=True, top=top, ml=ml)


def _calibrations(top: bool):
    """The reference's calibration and the candidate's, from the same cached comparisons."""
    def cals(fit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
        d = bw.comparisons(fit, cache, key)
        out = {"rel": _cal(d, False, False), "ml": _cal(d, False, True),
               "top": _cal(d, True, False), "top_ml": _cal(d, True, True)}
        if top:  # once per fit: the second candidate's run
            _TERMS.extend({"fit": key, "band": b, "kappa": c.drift_decay, "a": c.noise_var,
                           "s2 (top)": c.drift_var, "r2": c.drift_rel, "w sd": c.weight_sd}
                          for b, c in out.items())
        return {"rel": out["rel"], ("top_ml" if top else "ml"): out["top_ml" if top else "ml"]}
    return cals


_DESCRIBE = ("(`benchmarks/CRITERIA_s12_i17.md`). `rel`: the default when this was scored "
             "(relative drift, variance terms by least squares on the squared errors); ")
ML = Candidate(
    band="ml", switch="ML_VARIANCE",
    title="## Contrasts: the band's variance terms by maximum likelihood (issue 17, session 12)",
    describe=_DESCRIBE + "`ml`: the same with the variance terms maximising the Gaussian "
             "likelihood (NNLS reweighted by `1/v²` to its fixed point, `anchor.ML_VARIANCE`).",
    gate_candidates=G.CANDIDATES_S12, gate_dir="gate_s12",
    calibrations=_calibrations(False), p_better=p_better)
TOP_ML = Candidate(
    band="top_ml", switch="ML_VARIANCE and DRIFT_AT_TOP",
    title="## Contrasts: every drift term at its rate at the top, fitted by maximum likelihood "
          "(issue 17, session 12)",
    describe=_DESCRIBE + "`top_ml`: every drift term at its rate at the top "
             "(`anchor.DRIFT_AT_TOP`, its `kappa` profile fixed this session) with the variance "
             "terms by maximum likelihood (`anchor.ML_VARIANCE`).",
    gate_candidates=G.CANDIDATES_S12, gate_dir="gate_s12",
    calibrations=_calibrations(True), p_better=p_better,
    extra=lambda: ["The fitted `kappa` and variance terms per bench fit, every band (`top`: "
                   "least squares with the profile fixed, reported only):", "",
                   bg._md(pd.DataFrame(_TERMS)), ""])


def per_corpus(band: str) -> None:
    """Append Porian per corpus (its three cuts pooled) to ``results/contrast_<band>.md``."""
    real = pd.read_csv(bg.RESULTS / f"contrast_{band}.csv")
    por = real[real["set"] == "porian"]
    rows = [{"corpus": c, "band": b, "n": len(sub),
             **bg.bench_scores(sub[f"p_{b}"].to_numpy(), sub["y"].to_numpy())}
            for c, sub in por.groupby(por["fit"].str.split().str[0]) for b in ("rel", band)]
    path = bg.RESULTS / f"contrast_{band}.md"
    path.write_text(path.read_text() + "\n".join(
        ["", "Porian per corpus (cuts 1, 2 and 4 pooled):", "", bg._md(pd.DataFrame(rows)), ""]))


if __name__ == "__main__":
    for cand in (ML, TOP_ML):
        run(cand, __doc__)
        per_corpus(cand.band)
