"""The extrapolation discrepancy, the backtest scores and the parallel runner."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import Box, decades_outside, levels
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import backtest, calibration_table, score, split_top
from bayes_scaling.evaluate.parallel import run_many
from bayes_scaling.fitting.calibrate import (
    InnerBacktest,
    attach_discrepancy,
    discrepancy_posterior,
    inner_backtest,
)
from bayes_scaling.fitting.fit import fit_baseline
from bayes_scaling.query.summarize import sorted_quantiles
from bayes_scaling.testing import fake_fit, synthetic_runs

P = PUBLISHED["hoffmann2022"]


def _posterior_means(bt):
    t, k, w = discrepancy_posterior(bt)
    return float((w.sum(axis=1) * t).sum()), float((w.sum(axis=0) * k).sum())


def test_discrepancy_grows_with_errors_that_grow_with_distance():
    rng = np.random.default_rng(0)
    dist = np.tile(np.linspace(0.05, 0.5, 30), 2)
    small = InnerBacktest(0.003 * rng.standard_normal(60), dist, 0.003, 6)
    large = InnerBacktest(0.1 * dist * rng.standard_normal(60), dist, 0.003, 6)
    _, k_small = _posterior_means(small)
    _, k_large = _posterior_means(large)
    assert k_small < 0.03 < k_large
    assert k_large == pytest.approx(0.1, rel=0.35)


def test_levels_merge_digitised_sizes():
    x = np.array([1e9, 1.000001e9, 2e9, 4e9, 3.99999e9, 1e9])
    assert list(levels(x)) == [0, 0, 1, 2, 2, 0]


def test_distance_is_zero_inside_the_box():
    box = Box.of(np.array([1e8, 1e9]), np.array([1e9, 1e11]))
    far = decades_outside(box, [5e8, 1e10], [1e10, 1e12])
    assert far["box"][0] == 0 and far["box"][1] == pytest.approx(np.hypot(1, 1))


@settings(max_examples=30)
@given(st.integers(5, 400), st.integers(1, 6), st.integers(0, 10**6))
def test_sorted_quantiles_match_numpy(m, p, seed):
    x = np.random.default_rng(seed).standard_normal((m, p))
    qs = [0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975]
    assert np.allclose(sorted_quantiles(x, qs), np.quantile(x, qs, axis=0))


def test_score_counts_coverage_exactly():
    fit_ = fake_fit("chinchilla", P, sigma=0.02)
    runs = synthetic_runs("chinchilla", P, noise=0.0, seed=1)
    res = score(fit_, runs, random_seed=0)
    assert res.summary["coverage"]["90"] == 1.0  # noise-free runs at the law's median
    assert res.summary["median_abs_pct_error"] < 0.5
    shifted = runs.subset(np.arange(runs.n_runs))
    shifted.frame["loss"] *= 1.2  # 20% above the law: far outside every band
    res2 = score(fit_, shifted, random_seed=0)
    assert res2.summary["coverage"]["95"] == 0.0
    assert res2.summary["median_abs_pct_error"] == pytest.approx(100 / 6, rel=0.02)
    assert res2.summary["mean_crps"] > res.summary["mean_crps"]


def test_split_top_holds_out_the_largest_sizes():
    runs = synthetic_runs("chinchilla", P, seed=2)
    train, test = split_top(runs, holdout_top=2)
    assert test.n.min() > train.n.max()
    assert len(np.unique(test.n)) == 2
    with pytest.raises(BayesScalingError, match="fewer than 3"):
        split_top(runs, holdout_top=7)


def test_baseline_backtest_and_calibration_table():
    runs = synthetic_runs("chinchilla", P, noise=0.01, seed=3)
    res = backtest(runs, "chinchilla", holdout_top=2, method="huber-bootstrap", random_seed=1)
    assert res.summary["n_holdout"] == 10 and res.summary["n_train"] == 30
    assert set(res.summary["coverage"]) == {"50", "80", "90", "95"}
    table = calibration_table([res])
    assert list(table["nominal"]) == [0.5, 0.8, 0.9, 0.95]
    assert (np.diff(table["empirical"]) >= 0).all()


def test_calibration_attaches_tau0_and_kappa_draws():
    runs = synthetic_runs("chinchilla", P, noise=0.01, seed=4,
                          n_sizes=tuple(np.geomspace(1e7, 3e9, 9)))
    fit_ = attach_discrepancy(fit_baseline("chinchilla", runs, random_seed=0), random_seed=0)
    assert fit_.posterior["kappa"].shape == fit_.posterior["sigma"].shape
    assert float(fit_.posterior["kappa"].min()) >= 0
    assert fit_.meta["calibration"]["n_refits"] >= 4


def test_inner_backtest_needs_enough_sizes():
    runs = synthetic_runs("chinchilla", P, n_sizes=(1e7, 1e8, 1e9, 1e10),
                          tokens_per_param=(5, 20, 80), seed=5)
    runs = runs.subset(np.isclose(runs.d / runs.n, 20))  # 4 sizes, 4 budgets
    with pytest.raises(BayesScalingError, match=r"too few distinct sizes|cannot identify"):
        inner_backtest(runs, "chinchilla")


def _square(x):
    return x * x


def test_run_many_keeps_order_locally():
    assert run_many(_square, [{"x": i} for i in range(5)], workers=1) == [0, 1, 4, 9, 16]
    assert run_many(_square, [{"x": i} for i in range(4)], workers=2) == [0, 1, 4, 9]


@pytest.mark.slow
def test_run_many_on_a_local_dask_cluster():
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        out = run_many(_square, [{"x": i} for i in range(6)], address=cluster.scheduler_address)
    assert out == [0, 1, 4, 9, 16, 25]
