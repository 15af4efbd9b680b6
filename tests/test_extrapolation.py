"""The extrapolation distance, compute-budget hold-outs, explicit splits, the cross-ladder prior."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import (
    DISTANCE,
    Box,
    budget_levels,
    convex_hull,
    decades_outside,
)
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import backtest, split_query, split_top
from bayes_scaling.fitting.calibrate import (
    KAPPA_GRID,
    TAU0_GRID,
    InnerBacktest,
    discrepancy_loglik,
    discrepancy_posterior,
)
from bayes_scaling.fitting.discrepancy_prior import DiscrepancyPrior, fit_population, load_prior
from bayes_scaling.testing import synthetic_runs

P = PUBLISHED["hoffmann2022"]


def test_hull_sees_what_the_box_misses():
    # a ladder with large N only at small D and large D only at small N (Chinchilla's shape)
    n = np.array([1e8, 1e8, 1e9, 1e10, 1e8])
    d = np.array([1e9, 1e11, 1e9, 1e9, 1e12])
    box = Box.of(n, d)
    far = decades_outside(box, [1e10], [1e12])  # the far corner: inside the box
    assert far["box"][0] == 0
    # distance to the hull's edge from (10, 9) to (8, 12): |cross| / length = 6 / sqrt(13)
    assert far["hull"][0] == pytest.approx(6 / np.sqrt(13), rel=1e-9)
    assert far["compute"][0] == pytest.approx(2.0)  # 1e22 vs the largest run's 1e20 (x6)
    assert far["distance"][0] == pytest.approx(np.hypot(far["hull"][0], far["compute"][0]))
    inside = decades_outside(box, [3e8], [3e9])
    assert inside["hull"][0] == 0 and inside["compute"][0] == 0


def test_a_box_saved_without_a_hull_measures_like_the_box():
    box = Box.of(np.array([1e8, 1e9]), np.array([1e9, 1e11]))
    old = Box(box.n, box.d, box.c)  # fits saved before the hull existed
    far = decades_outside(old, [5e8, 1e10, 1e7], [1e10, 1e12, 1e10])
    assert np.allclose(far["hull"], far["box"])
    assert Box.from_dict(box.to_dict()) == box
    saved = Box.from_dict({"n": list(box.n), "d": list(box.d), "c": list(box.c)})
    assert saved.distance == "box"  # an old fit keeps the distance its kappa was learned on
    q = decades_outside(saved, [1e10], [1e12])
    assert q["distance"][0] == pytest.approx(q["box"][0]) and q["compute"][0] > 0


def test_convex_hull_of_collinear_points_is_a_segment():
    h = convex_hull(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    assert len(h) == 2
    far = decades_outside(Box((0, 2), (0, 2), (0, 4), tuple(map(tuple, h))),
                          [10 ** 1.0], [10 ** 0.0])
    assert far["hull"][0] == pytest.approx(np.sqrt(0.5))


def test_budget_levels_follow_an_isoflop_plan():
    budgets = np.repeat([1e18, 2e18, 4e18, 8e18, 1.6e19], 3) * np.tile([1.0, 1.001, 0.999], 5)
    assert list(budget_levels(budgets)) == list(np.repeat([0, 1, 2, 3, 4], 3))
    grid = np.array([1.0e20, 0.9e20, 0.62e20, 0.5e20, 1e19])  # top bin: 0.25 decades below max
    assert list(budget_levels(grid)) == [2, 2, 2, 1, 0]


def test_holdout_by_flops_takes_the_top_budgets_per_group():
    runs = synthetic_runs("chinchilla", P, seed=1, group_offsets={"a": {}, "b": {"log_e": 0.02}})
    train, test = split_top(runs, holdout_by="flops", holdout_top=2)
    for g in range(runs.n_groups):
        tr, te = train.group_index == g, test.group_index == g
        assert test.flops[te].min() > train.flops[tr].max()
    assert train.n_runs + test.n_runs == runs.n_runs


def test_split_query_holds_out_exactly_the_matching_runs():
    runs = synthetic_runs("chinchilla", P, seed=2)
    cut = float(np.quantile(runs.flops, 0.8))
    train, test = split_query(runs, f"flops > {cut}")
    assert (test.flops > cut).all() and (train.flops <= cut).all()
    with pytest.raises(BayesScalingError, match="selects no run"):
        split_query(runs, "flops > 1e40")
    with pytest.raises(BayesScalingError, match="columns: n_params"):
        split_query(runs, "flop > 1")


def test_baseline_backtest_fits_each_group_and_reports_pit():
    runs = synthetic_runs("chinchilla", P, seed=3, noise=0.01,
                          group_offsets={"a": {}, "b": {"log_e": 0.05}})
    res = backtest(runs, "chinchilla", holdout_by="flops", holdout_top=1,
                   method="huber-bootstrap", random_seed=0)
    assert set(res.table["group"]) == {"a", "b"}
    assert sum(res.summary["pit_histogram"]) == res.summary["n_holdout"] == len(res.table)
    # group b sits 5% above a: one shared law would miss it; per-group fits do not
    assert res.summary["median_abs_pct_error"] < 2.0


def _ladder_errors(kappa: float, rng, refits: int = 6, per: int = 10) -> InnerBacktest:
    dist = np.tile(np.linspace(0.1, 1.0, per), refits)
    shared = np.repeat(rng.standard_normal(refits), per)  # one sign per refit
    r = kappa * dist * (0.5 * shared + np.sqrt(0.75) * rng.standard_normal(dist.size))
    return InnerBacktest(r, dist, 0.002, refits, 0.0, np.repeat(np.arange(refits), per))


def test_population_prior_recovers_the_typical_kappa():
    # twelve ladders, kappa log-normal around 0.04 with log sd 0.6; errors grow linearly
    rng = np.random.default_rng(0)
    kappas = np.exp(np.log(0.04) + 0.6 * rng.standard_normal(12))
    lls = [discrepancy_loglik(_ladder_errors(k, rng)) for k in kappas]
    prior = fit_population(lls, TAU0_GRID, KAPPA_GRID, temper=False)
    assert 0.032 < np.exp(prior.log_kappa_mu) < 0.05  # two-sided around the truth
    assert 0.3 < prior.log_kappa_sd < 0.9
    assert np.exp(prior.log_tau0_mu) < 0.01  # no jump in these errors


def test_tempering_keeps_a_few_refits_from_swamping_the_prior():
    rng = np.random.default_rng(1)
    bt = _ladder_errors(0.005, rng, refits=3, per=40)  # own evidence: small errors
    prior = DiscrepancyPrior(np.log(0.005), 0.5, np.log(0.06), 0.3, temper=True)

    def kappa_mean(p):
        _, k, w = discrepancy_posterior(bt, p)
        return float((w.sum(axis=0) * k).sum())

    untempered = DiscrepancyPrior(**{**prior.to_dict(), "temper": False})
    k_t, k_u, k_own = kappa_mean(prior), kappa_mean(untempered), kappa_mean(None)
    assert k_own < k_u < k_t < 0.07
    assert k_t > 2 * k_own


def test_the_shipped_prior_loads_and_is_sane():
    prior = load_prior()
    assert 0.001 < np.exp(prior.log_kappa_mu) < 0.3
    assert prior.distance == DISTANCE  # learned on the distance the package measures


def test_cli_backtest_query_and_groups(tmp_path, capsys):
    runs = synthetic_runs("chinchilla", P, seed=4, group_offsets={"a": {}, "b": {"log_e": 0.03}})
    path = tmp_path / "runs.csv"
    frame = runs.frame.rename(columns={"group": "corpus"})
    frame.to_csv(path, index=False)
    cut = float(np.quantile(runs.flops, 0.85))
    rc = main(["backtest", str(path), "--group-col", "corpus", "--method", "huber-bootstrap",
               "--test-query", f"flops > {cut}", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    bt = out["backtests"][0]
    assert bt["test_query"] == f"flops > {cut}" and bt["n_holdout"] == int((runs.flops > cut).sum())
    assert len(bt["pit_histogram"]) == 10


def test_cli_backtest_bad_query_is_one_line(tmp_path, capsys):
    runs = synthetic_runs("chinchilla", P, seed=5)
    path = tmp_path / "runs.csv"
    runs.frame.to_csv(path, index=False)
    rc = main(["backtest", str(path), "--method", "huber-bootstrap", "--test-query", "flops >"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and "--test-query" in err and len(err.strip().splitlines()) == 1
