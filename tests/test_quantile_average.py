"""The families' average is their weighted quantile average (not the linear pool of draws)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate import heldout as hld
from bayes_scaling.evaluate import stacking as stk
from bayes_scaling.fitting.families import quantile_average

P = (0.05, 0.25, 0.5, 0.75, 0.95)


def _fams(seed: int = 0) -> dict[str, np.ndarray]:
    """Two log-normal families that disagree (medians 2.0 and 2.3) with different sizes."""
    rng = np.random.default_rng(seed)
    return {"a": 2.0 * np.exp(rng.normal(0, 0.02, (4000, 3))),
            "b": 2.3 * np.exp(rng.normal(0, 0.04, (3000, 3)))}


def _interval_score(s: np.ndarray, y: float) -> np.ndarray:
    lo, hi = np.quantile(s, [0.05, 0.95], axis=0)
    return hi - lo + 20 * ((lo - y) * (y < lo) + (y - hi) * (y > hi))


@pytest.mark.parametrize("w", [0.2, 0.5, 0.9])
def test_its_quantiles_are_the_weighted_mean_of_the_families_log_quantiles(w):
    fams = _fams()
    avg = quantile_average(fams, {"a": w, "b": 1 - w}, np.random.default_rng(1))
    assert avg.shape == (4000, 3)
    want = w * np.log(np.quantile(fams["a"], P, axis=0)) + (1 - w) * np.log(
        np.quantile(fams["b"], P, axis=0))
    np.testing.assert_allclose(np.log(np.quantile(avg, P, axis=0)), want, atol=2e-3)


def test_its_band_is_the_mean_band_narrower_than_the_pool_and_its_log_interval_score_convex():
    fams = _fams(2)
    w = {"a": 0.5, "b": 0.5}
    avg = quantile_average(fams, w, np.random.default_rng(3))
    width = {k: np.diff(np.quantile(v, [0.05, 0.95], axis=0), axis=0)[0] for k, v in
             fams.items()}
    got = np.diff(np.quantile(avg, [0.05, 0.95], axis=0), axis=0)[0]
    mean_width = 0.5 * width["a"] + 0.5 * width["b"]
    np.testing.assert_allclose(got, mean_width, rtol=0.05)  # neither widened nor collapsed
    held = {k: hld.HeldOut(k, pd.DataFrame(), v, True) for k, v in fams.items()}
    pool = stk.combine(held, w, np.random.default_rng(3), how="pool")
    pool_width = np.diff(np.quantile(pool, [0.05, 0.95], axis=0), axis=0)[0]
    assert np.all(pool_width > 2 * got)  # the pool adds the disagreement (0.3) to the band
    for y in np.log([1.9, 2.0, 2.15, 2.3, 2.5]):  # convex in the quantiles: of the log
        mean_is = 0.5 * _interval_score(np.log(fams["a"]), y) + 0.5 * _interval_score(
            np.log(fams["b"]), y)
        assert np.all(_interval_score(np.log(avg), y) <= mean_is + 1e-3)


def test_an_unreachable_share_is_pooled_linearly():
    fams = _fams(4)
    fams["a"][:1000, 0] = np.inf  # a: 25% unreachable at point 0
    fams["b"][:, 2] = np.inf  # b: never reached at point 2
    avg = quantile_average(fams, {"a": 0.6, "b": 0.4}, np.random.default_rng(5))
    np.testing.assert_allclose(np.isinf(avg).mean(axis=0), [0.6 * 0.25, 0.0, 0.4], atol=1e-3)
    # the finite part of point 2 is a's alone
    fin = avg[np.isfinite(avg[:, 2]), 2]
    assert np.median(fin) == pytest.approx(np.median(fams["a"][:, 2]), rel=2e-3)


def test_paired_quantities_stay_paired():
    rng = np.random.default_rng(6)
    c = np.array([1e21, 1e23])
    parts = {}
    for k, mu in (("a", 0.0), ("b", 0.3)):
        n = np.exp(np.log(np.sqrt(c / 120)) + rng.normal(mu, 0.1, (500, 2)))
        parts[k] = {"n_opt": n, "d_opt": c / (6 * n), "loss": 2 + rng.normal(0, 0.01, (500, 2))}
    avg = quantile_average(parts, {"a": 0.5, "b": 0.5}, np.random.default_rng(7))
    np.testing.assert_allclose(6 * avg["n_opt"] * avg["d_opt"], np.broadcast_to(c, (500, 2)),
                               rtol=1e-9)
    want = 0.5 * np.log(np.median(parts["a"]["n_opt"], axis=0)) + 0.5 * np.log(
        np.median(parts["b"]["n_opt"], axis=0))
    np.testing.assert_allclose(np.log(np.median(avg["n_opt"], axis=0)), want, atol=0.02)


def test_a_family_without_weight_contributes_nothing():
    fams = _fams(8)
    avg = quantile_average(fams, {"a": 1.0, "b": 0.0}, np.random.default_rng(9))
    np.testing.assert_allclose(np.quantile(avg, P, axis=0), np.quantile(fams["a"], P, axis=0),
                               rtol=1e-3)
    with pytest.raises(BayesScalingError, match="positive weight"):
        quantile_average(fams, {"a": 0.0, "b": 0.0}, np.random.default_rng(9))


def test_combine_names_its_methods():
    fams = _fams(10)
    held = {k: hld.HeldOut(k, pd.DataFrame(), v, True) for k, v in fams.items()}
    w = {"a": 0.3, "b": 0.7}
    np.testing.assert_array_equal(stk.combine(held, w, np.random.default_rng(0), how="pool"),
                                  stk.mixture_samples(held, w, np.random.default_rng(0)))
    np.testing.assert_array_equal(stk.combine(held, w, np.random.default_rng(0)),
                                  quantile_average(fams, w, np.random.default_rng(0)))
    with pytest.raises(BayesScalingError, match="quantile, pool"):
        stk.combine(held, w, np.random.default_rng(0), how="median")
