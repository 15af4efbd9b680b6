"""The drift diagnostic of ``benchmarks/bench_discrepancy_drift.py``: a signed mean log error per
decade of each part of the distance, learned from the matching rolling-origin refits and shrunk
toward the population of other ladders."""

from __future__ import annotations

import sys

import numpy as np
import pytest

sys.path.insert(0, "benchmarks")
from bench_discrepancy_drift import drift_shift, population_drift, shrunk, slope

from bayes_scaling.fitting.calibrate import InnerBacktest


def _backtest(rng, drift: dict[str, float], sd: float = 0.01, refit_sd: float = 0.0,
              refits: int = 6, per: int = 8) -> InnerBacktest:
    """Synthetic rolling-origin errors: budget refits are all scale, size refits all shape;
    ``refit_sd``: an error shared by the runs of one refit (a systematic term)."""
    res, ids, split, scale, shape = [], [], [], [], []
    for j in range(refits):
        kind = "c" if j % 2 == 0 else "n"
        a = rng.uniform(0.1, 0.5, per)
        sc, sh = (a, np.zeros(per)) if kind == "c" else (np.zeros(per), a)
        r = (drift["scale"] * sc + drift["shape"] * sh + rng.normal(0, refit_sd)
             + rng.normal(0, sd, per))
        res.append(r)
        ids.append(np.full(per, j))
        split.append(np.full(per, kind))
        scale.append(sc)
        shape.append(sh)
    scale, shape = np.concatenate(scale), np.concatenate(shape)
    hc = np.hypot(scale, shape)
    by_kind = {"scale": scale, "shape": shape, "hull_compute": hc}
    return InnerBacktest(np.concatenate(res), hc, sd, refits, 0.0, np.concatenate(ids),
                         by_kind, np.concatenate(split))


def test_slope_recovers_each_parts_drift_from_its_matching_refits():
    rng = np.random.default_rng(3)
    truth = {"scale": -0.05, "shape": 0.12}
    hits = dict.fromkeys(truth, 0)
    for _ in range(60):
        bt = _backtest(rng, truth, sd=0.01, refit_sd=0.005)
        for p, beta in truth.items():
            est, se = slope(bt, p)
            hits[p] += abs(est - beta) <= 1.645 * se
    for p in truth:  # two-sided: the se is neither far too small nor far too large
        assert 0.70 <= hits[p] / 60 <= 0.995, (p, hits[p])


def test_population_and_shrinkage():
    rng = np.random.default_rng(5)
    ladders, rolling = {}, {}
    for i in range(12):
        beta = rng.normal(0.03, 0.04)
        rolling[f"l{i}"] = _backtest(rng, {"scale": beta, "shape": 0.0}, sd=0.002)
        ladders[f"l{i}"] = (f"src{i}", None)
    mu, sd = population_drift(rolling, ladders, set(), "scale")
    assert 0.0 <= mu <= 0.06 and 0.02 <= sd <= 0.07
    # a ladder's precise own slope stays; an imprecise one goes to the population's mean
    assert shrunk((0.2, 0.001), (mu, sd)) == pytest.approx(0.2, abs=0.002)
    assert shrunk((0.2, 10.0), (mu, sd)) == pytest.approx(mu, abs=0.002)
    assert shrunk(None, (mu, sd)) == mu


def test_shift_moves_the_band_toward_the_observed_errors():
    rng = np.random.default_rng(7)
    bt = _backtest(rng, {"scale": -0.08, "shape": 0.0}, sd=0.002)
    case = {"inner": bt, "dist": {"scale": np.array([0.0, 0.5]), "shape": np.array([0.0, 0.0])}}
    shift = drift_shift(case, {"scale": (0.0, 1.0), "shape": (0.0, 1.0)})
    assert shift[0] == 0.0
    assert shift[1] == pytest.approx(-0.04, abs=0.005)  # over-predicted: the band moves down
