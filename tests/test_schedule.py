"""Learning-rate schedules: areas, schedule columns of curve tables, the schedule law, its
queries, the curve backtest and a small NUTS recovery."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_scaling.constants import CHAIN, DRAW
from bayes_scaling.data.curves import load_curves
from bayes_scaling.data.schedules import ANNEAL_DECAY, Schedule, areas, schedule_areas
from bayes_scaling.errors import DataError, QueryError
from bayes_scaling.evaluate.curve_backtest import score_curves, split_top_sizes
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.curve import log_loss_nsb
from bayes_scaling.laws.schedule import log_loss_schedule
from bayes_scaling.model.gate import Diagnostics
from bayes_scaling.model.spec import load_spec
from bayes_scaling.query.curves import predict_curve
from bayes_scaling.query.schedules import (
    _first_crossing,
    checkpoint_draws,
    cooldown_loss,
    steps_for_loss,
    training_offsets,
)

TRUTH = {"log_n_c": np.log(8.8e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3),
         "alpha_s": 0.76, "log_b_star": np.log(2e8), "alpha_b": 0.21,
         "log_c_anneal": np.log(0.15)}


def _discrete(sched: Schedule, last: int, decay: float = ANNEAL_DECAY):
    """Tissue et al.'s sums step by step (rises of the rate count as no drop)."""
    eta = sched.rate(np.arange(last + 1))
    m = s2 = s1 = 0.0
    out = {}
    for i in range(1, last + 1):
        m = decay * m + max(eta[i - 1] - eta[i], 0.0)
        s2 += m
        s1 += eta[i]
        out[i] = (s1, (1 - decay) * s2)
    return out


@pytest.mark.parametrize("sched", [
    Schedule("wsd", cooldown_start=3000, cooldown_steps=1000, final_fraction=0.1),
    Schedule("cosine", total_steps=4000, warmup_steps=100, final_fraction=0.1),
    Schedule("linear", total_steps=4000),
])
def test_areas_match_the_step_by_step_sums(sched):
    steps = np.array([500, 2000, 3500, 4000, 6000])
    s1, a = schedule_areas(sched, steps)
    ref = _discrete(sched, 6000)
    for j, st in enumerate(steps):
        assert s1[j] == pytest.approx(ref[st][0], rel=2e-3, abs=1.0)
        assert a[j] == pytest.approx(ref[st][1], abs=3e-3)


def test_constant_schedule_has_steps_as_area_and_no_annealing():
    s1, a = schedule_areas(Schedule(), np.array([10.0, 1e3, 1e5]))
    np.testing.assert_allclose(s1, [10.0, 1e3, 1e5])
    assert np.all(a == 0)


def test_annealing_fraction_saturates_at_the_drop():
    _, a = areas(np.array([0.0, 1000.0, 1001.0]), np.array([1.0, 1.0, 0.3]),
                  np.array([1001.0, 1500.0, 20000.0]))
    # 500 steps after the drop: 0.7 (1 - lambda^500) of it has taken effect
    assert a[0] < 0.01 and a[1] == pytest.approx(0.7 * (1 - ANNEAL_DECAY**500), rel=0.01)
    assert a[2] == pytest.approx(0.7, abs=1e-3)


@pytest.mark.parametrize("kw, message", [
    ({"shape": "cosine"}, "needs total_steps"),
    ({"shape": "wsd", "cooldown_start": 10.0}, "cooldown_start >= 0 and cooldown_steps"),
    ({"shape": "exp"}, "unknown learning-rate schedule"),
    ({"final_fraction": 2.0}, "final_fraction"),
])
def test_bad_schedules_raise(kw, message):
    with pytest.raises(DataError, match=message):
        Schedule(**kw)


def _table(**over):
    rows = []
    for run, n in (("a", 1e7), ("b", 1e8)):
        for st in (100, 200, 400, 800, 1000):
            rows.append({"run_id": run, "n_params": n, "steps": st, "batch_size_tokens": 1e5,
                         "loss": 3.0 - st / 2000, "lr_schedule": "cosine", "total_steps": 1000,
                         "final_lr_fraction": 0.1})
    df = pd.DataFrame(rows)
    for k, v in over.items():
        df[k] = v
    return df


def test_load_curves_computes_areas_from_schedule_columns():
    curves = load_curves(_table(), warmup_fraction=0.0)
    s1, a = schedule_areas(Schedule("cosine", total_steps=1000, final_fraction=0.1),
                           np.array([100, 200, 400, 800, 1000.0]))
    np.testing.assert_allclose(curves.forward_area[:5], s1)
    np.testing.assert_allclose(curves.anneal[:5], a)
    assert curves.frame["lr_schedule"].eq("cosine").all()


def test_schedule_defaults_fill_rows_without_columns():
    df = _table().drop(columns=["lr_schedule", "final_lr_fraction"])
    curves = load_curves(df, warmup_fraction=0.0, schedule={"shape": "linear"})
    s1, _ = schedule_areas(Schedule("linear", total_steps=1000), np.array([1000.0]))
    assert curves.forward_area[4] == pytest.approx(s1[0])
    plain = load_curves(df, warmup_fraction=0.0)  # no schedule given: steps, no annealing
    np.testing.assert_allclose(plain.forward_area, plain.s)
    assert "forward_area" not in plain.frame.columns


def test_bad_schedule_row_is_named():
    df = _table()
    df.loc[3, "lr_schedule"] = "wsd"
    with pytest.raises(DataError, match=r"row 3: a wsd schedule needs"):
        load_curves(df.assign(run_id=[f"r{i}" for i in range(len(df))]), warmup_fraction=0.0)


def test_logged_learning_rate_gives_the_same_areas_as_the_schedule():
    sched = Schedule("linear", total_steps=1000, final_fraction=0.0)
    steps = np.concatenate([[1.0], np.arange(50, 1001, 50.0)])  # the first at the peak
    df = pd.DataFrame({"run_id": "a", "n_params": 1e7, "steps": steps,
                       "batch_size_tokens": 1e5, "loss": 3.0, "current_lr": 3e-3
                       * np.maximum(sched.rate(steps), 1e-9)})
    df.loc[:, "current_lr"] = df["current_lr"] / df["current_lr"].max() * 3e-3
    curves = load_curves(df, warmup_fraction=0.0, max_points_per_curve=None)
    s1, a = schedule_areas(sched, steps)
    np.testing.assert_allclose(curves.anneal, a, atol=2e-3)
    np.testing.assert_allclose(curves.forward_area[1:], s1[1:], rtol=2e-3)


def test_schedule_law_is_the_dynamics_law_at_constant_rate():
    n, s, b = np.array([1e7, 1e8]), np.array([1e3, 1e4]), np.array([1e5, 1e6])
    theta = {k: v for k, v in TRUTH.items() if k != "log_c_anneal"}
    plain = log_loss_nsb(np.log(n), np.log(s), np.log(b), **theta)
    sched = log_loss_schedule(np.log(n), np.log(s), np.log(b), np.zeros(2), **TRUTH)
    np.testing.assert_allclose(sched, plain, rtol=1e-12)
    cooled = log_loss_schedule(np.log(n), np.log(s), np.log(b), np.full(2, 0.5), **TRUTH)
    assert np.all(cooled < plain)  # annealing lowers the loss ...
    gap = np.exp(plain) - np.exp(cooled)
    assert np.all((gap > 0.5 * 0.15 * 0.5) & (gap < 2.0 * 0.15 * 0.5))  # ... by about C*A


def fake_schedule_fit(curves=None, *, chains=2, draws=200, seed=0, spread=2e-4):
    rng = np.random.default_rng(seed)
    if curves is None:
        curves = load_curves(_table(), warmup_fraction=0.0)
    post = {p: xr.DataArray(v + spread * rng.standard_normal((chains, draws)),
                            dims=(CHAIN, DRAW)) for p, v in TRUTH.items()}
    for name, value in (("sigma", 0.004), ("sigma_curve", 0.01)):
        post[name] = xr.DataArray(np.full((chains, draws), value), dims=(CHAIN, DRAW))
    diag = Diagnostics(max_rhat=1.0, min_ess_bulk=1e3, min_ess_tail=1e3, divergences=0,
                       chains=chains, draws=draws, backend="fake", seed=seed,
                       sampling_seconds=0.0)
    return ScalingFit(az.InferenceData(posterior=xr.Dataset(post)),
                      load_spec("dynamics_schedule"), curves, diag,
                      {"method": "fake", "seed": seed})


def test_predict_curve_under_a_schedule_follows_the_law():
    fit = fake_schedule_fit()
    sched = Schedule("cosine", total_steps=20000, final_fraction=0.1)
    steps = np.array([2000.0, 10000.0, 20000.0])
    res = predict_curve(fit, 3e8, 1e5, steps, band="law", schedule=sched, random_seed=1)
    s1, a = schedule_areas(sched, steps)
    want = np.exp(log_loss_schedule(np.log(3e8), np.log(s1), np.log(1e5), a, **TRUTH))
    np.testing.assert_allclose(res.summary["median"], want, rtol=2e-3)


def test_cooldown_gain_and_steps_for_loss_invert_each_other():
    fit = fake_schedule_fit()
    res = cooldown_loss(fit, 3e8, 4e6, [5000, 20000], band="law", random_seed=2)
    t = res.summary
    cooled = t[t.quantity == "cooled"]["median"].to_numpy()
    const = t[t.quantity == "constant"]["median"].to_numpy()
    assert np.all(cooled < const) and np.all(const - cooled < 0.15)
    target = float(cooled[1])  # the loss a WSD run of 22,000 steps (cooling the last 1/11) ends at
    template = Schedule("wsd", cooldown_start=10.0, cooldown_steps=1.0)
    steps = steps_for_loss(fit, 3e8, target, 4e6, template, random_seed=2).summary
    assert steps["median"].iloc[0] == pytest.approx(22000, rel=0.01)
    assert steps["median"].iloc[1] == pytest.approx(22000 * 4e6, rel=0.01)


def test_first_crossing_interpolates_and_marks_unreachable():
    log_t = np.log([10.0, 100.0, 1000.0])
    log_l = np.log([[3.0, 2.0, 1.0], [3.0, 2.9, 2.8], [1.0, 0.9, 0.8]])
    out = _first_crossing(log_t, log_l, np.log(1.5))
    assert 100 < out[0] < 1000 and np.isinf(out[1]) and out[2] == pytest.approx(10.0)
    # linear in log t between the two grid points that bracket the target
    w = (np.log(2.0) - np.log(1.5)) / (np.log(2.0) - np.log(1.0))
    assert out[0] == pytest.approx(np.exp(np.log(100.0) + w * np.log(10.0)))


def test_a_law_without_the_term_refuses_other_schedules():
    from tests.test_dynamics import fake_dynamics_fit

    with pytest.raises(QueryError, match="no learning-rate-schedule term"):
        predict_curve(fake_dynamics_fit(), 1e8, 1e6, [1000.0],
                      schedule=Schedule("cosine", total_steps=2000))


def test_split_and_score_curves():
    fit = fake_schedule_fit()
    one = _table().query("run_id == 'a'")
    table = pd.concat([_table(), one.assign(run_id="c", n_params=1e9),
                       one.assign(run_id="d", n_params=3e9)], ignore_index=True)
    keep, test = split_top_sizes(load_curves(table, warmup_fraction=0.0), 1)
    assert test.sum() == 5 and keep.sum() == 15
    _, per, pooled = score_curves(fit, fit.runs, random_seed=3)
    assert set(per["run_id"]) == {"a", "b"} and pooled["test_points"] == 10
    assert 0.0 <= pooled["coverage_90"] <= 1.0


def test_score_curves_pools_each_schedule_shape_separately():
    """Gemstones-style scoring: constant-rate and cooled checkpoints pooled apart, each shape
    from its own rows (here the constant-rate curve is 3x off the law, the cosine one is not)."""
    from bayes_scaling.evaluate.curve_backtest import CurveBacktest

    fit = fake_schedule_fit()
    table = _table()
    b = (table["run_id"] == "b").to_numpy()
    table.loc[b, "lr_schedule"] = "constant"
    first, _, _ = score_curves(fit, load_curves(table, warmup_fraction=0.0), random_seed=3)
    table["loss"] = first["median"].to_numpy() * np.where(b, 1.3, 1.0)  # b 30% off the law
    curves = load_curves(table, warmup_fraction=0.0)
    points, _, pooled = score_curves(fit, curves, random_seed=3)
    shapes = pooled["by_schedule"]
    assert set(shapes) == {"constant", "cosine"}
    assert shapes["constant"]["points"] == shapes["cosine"]["points"] == 5
    want = points.groupby(np.where(curves.frame["run_id"] == "b", "constant", "cosine"))
    for shape, grp in want:
        assert shapes[shape]["median_abs_pct_error"] == grp["abs_pct_error"].median()
        assert shapes[shape]["coverage_90"] == grp["in_90"].mean()
    assert shapes["constant"]["median_abs_pct_error"] > 20 > 1 > shapes["cosine"][
        "median_abs_pct_error"]
    assert shapes["constant"]["coverage_90"] == 0 and shapes["cosine"]["coverage_90"] == 1
    text = CurveBacktest(points, pd.DataFrame({"run_id": ["a"], "n_params": [1e7],
                                               "points": [5], "median_abs_pct_error": [0.0],
                                               "coverage_90": [1.0]}),
                         {"model": "m", "holdout_top": 1, "train_curves": 1, "train_points": 1,
                          "gate_passed": True, **pooled}).to_text()
    assert "constant checkpoints (5): median abs % error" in text
    _, _, one = score_curves(fit, load_curves(_table(), warmup_fraction=0.0), random_seed=3)
    assert "by_schedule" not in one  # one shape: nothing to split


def test_cli_curve_cooldown_and_schedule_steps(tmp_path, capsys):
    from bayes_scaling.cli.app import main

    path = str(tmp_path / "fit.nc")
    fake_schedule_fit().save(path)
    assert main(["curve", path, "--n-params", "3e8", "--batch-size", "1e5", "--schedule",
                 "cosine", "--total-steps", "20000", "--final-lr-fraction", "0.1",
                 "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)["records"]
    assert recs[-1]["steps"] == 20000 and len(recs) >= 20
    assert main(["cooldown", path, "--n-params", "3e8", "--batch-size", "1e5", "--start",
                 "5000,20000", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["records"]) == 4
    assert main(["schedule-steps", path, "--n-params", "3e8", "--batch-size", "1e5",
                 "--target-loss", "2.9", "--schedule", "cosine", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["quantity"] == "steps"
    assert main(["curve", path, "--n-params", "3e8", "--batch-size", "1e5", "--schedule",
                 "wsd"]) == 2
    assert "wsd schedule needs" in capsys.readouterr().err


# ------------------------------------------------------------------------------ NUTS (slow)
@pytest.mark.slow
def test_schedule_law_recovers_its_constants_and_backtests_from_the_cli(tmp_path, capsys):
    """Synthetic curves from the schedule law, two-sided: every constant inside its 98%
    interval and at most 2 of 7 outside their 90% intervals (not overconfident), and every
    constant's 90% interval under 0.3 of its prior's (the data, not the prior: a fit that
    returned its prior would sit near 1; measured 0.02-0.11, benchmarks/schedule_recovery.md),
    the annealing constant's interval narrower than a factor 2; the CLI curve backtest scores
    the held-out size with pooled 90% coverage in [0.5, 1]."""
    import sys

    sys.path.insert(0, "benchmarks")
    from bench_schedule import synthetic_schedule_curves
    from bench_schedule_recovery import prior_widths

    from bayes_scaling.cli.app import main
    from bayes_scaling.fitting.dynamics import fit_dynamics

    df = synthetic_schedule_curves(11).drop(columns=["current_s1", "current_a"])
    curves = load_curves(df, warmup_fraction=0.0)
    fit = fit_dynamics("dynamics_schedule", curves, chains=2, draws=400, tune=400,
                       random_seed=5)
    assert fit.diagnostics.divergences == 0 and fit.diagnostics.max_rhat <= 1.02
    outside_90 = 0
    for p, v in TRUTH.items():  # 7 constants: all inside 90% only ~48% of the time if calibrated
        lo, hi = np.quantile(fit.posterior[p].values, [0.01, 0.99])
        assert lo <= v <= hi, (p, lo, v, hi)
        lo, hi = np.quantile(fit.posterior[p].values, [0.05, 0.95])
        outside_90 += not lo <= v <= hi
    assert outside_90 <= 2
    prior = prior_widths("dynamics_schedule", curves)
    for p in TRUTH:
        lo, hi = np.quantile(fit.posterior[p].values, [0.05, 0.95])
        assert hi - lo < 0.3 * prior[p], (p, hi - lo, prior[p])
    lo, hi = np.quantile(np.exp(fit.posterior["log_c_anneal"].values), [0.05, 0.95])
    assert hi / lo < 2.0
    csv = tmp_path / "curves.csv"
    df.to_csv(csv, index=False)
    assert main(["backtest", str(csv), "--model", "dynamics_schedule", "--holdout-top", "1",
                 "--chains", "2", "--draws", "300", "--tune", "300", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)["curve_backtests"][0]
    assert out["test_curves"] == 5 and 0.5 <= out["coverage_90"] <= 1.0


def test_empirical_offsets_follow_the_training_curves_offsets():
    """The training curves sit at known offsets from the law (skewed: -2%, 0, +6%); each
    curve's conditional offset, and a new curve's empirical band, must follow them."""
    base = pd.concat([_table().assign(run_id=lambda d, k=k: d["run_id"] + str(k))
                      for k in range(3)], ignore_index=True)
    law = checkpoint_draws(fake_schedule_fit(load_curves(base, warmup_fraction=0.0)),
                           load_curves(base, warmup_fraction=0.0), band="law")
    true_off = {"0": -0.02, "1": 0.0, "2": 0.06}
    base["loss"] = np.median(law, axis=0) * np.exp(base["run_id"].str[1].map(true_off))
    fit = fake_schedule_fit(load_curves(base, warmup_fraction=0.0), spread=1e-6, draws=500)
    off = training_offsets(fit, np.random.default_rng(4))
    sig, sd, n = 0.004, 0.01, 5
    shrink = n * sd**2 / (sig**2 + n * sd**2)
    want = np.array([shrink * true_off[c[1]] for c in fit.runs.curve_ids])
    np.testing.assert_allclose(off.mean(axis=0), want, atol=3e-4)
    np.testing.assert_allclose(off.std(axis=0), np.sqrt(sd**2 * sig**2 / (sig**2 + n * sd**2)),
                               rtol=0.1)
    new = load_curves(_table().query("run_id == 'a'"), warmup_fraction=0.0)
    at = np.log(checkpoint_draws(fit, new, band="law"))
    emp = np.log(checkpoint_draws(fit, new, random_seed=5, offsets="empirical")) - at
    norm = np.log(checkpoint_draws(fit, new, random_seed=5)) - at
    q = np.quantile(emp[:, 0], [0.05, 0.5, 0.95])
    assert q[0] == pytest.approx(-0.02 * shrink, abs=0.008)  # the lowest training offset
    assert q[1] == pytest.approx(0.0, abs=0.008)              # the middle one
    assert q[2] == pytest.approx(0.06 * shrink, abs=0.008)    # the highest
    share = np.mean(emp[:, 0] > 0.03)
    assert 0.25 < share < 0.42                                # one training curve in three
    qn = np.quantile(norm[:, 0], [0.05, 0.95])                # Normal band: symmetric
    assert qn[0] == pytest.approx(-qn[1], abs=0.004)
    with pytest.raises(QueryError, match="offsets must be one of"):
        checkpoint_draws(fit, new, offsets="bootstrap")
    fit.posterior["nu"] = fit.posterior["sigma"] * 0 + 4.0  # Student-t: no closed form
    with pytest.raises(QueryError, match="Normal curve offsets"):
        training_offsets(fit, np.random.default_rng(6))
