"""Which run next: preposterior ranking by importance reweighting, its CLI and plot."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import Box
from bayes_scaling.errors import QueryError
from bayes_scaling.evaluate import nextrun as nr
from bayes_scaling.evaluate.drawset import DrawSet, Target, draw_set, extend_box
from bayes_scaling.plots.nextrun import plot_next_runs
from bayes_scaling.testing import fake_fit, synthetic_runs

matplotlib.use("Agg")
P = PUBLISHED["hoffmann2022"]
TARGET = (7e10, 1.4e12, 2.0)


@pytest.fixture(scope="module")
def fit():
    """A posterior with real spread (0.03 on each constant) and a calibrated discrepancy."""
    runs = synthetic_runs("chinchilla", P, n_sizes=tuple(np.geomspace(1e7, 3e9, 8)), seed=0)
    return fake_fit("chinchilla", P, runs=runs, spread=0.03, sigma=0.01, draws=1000, seed=1,
                    extra={"kappa": 0.03, "tau0": 0.02})


@pytest.fixture(scope="module")
def table(fit):
    cands = nr.candidate_grid(fit, TARGET, sizes=np.geomspace(3e8, 7e10, 6),
                              tokens_per_param=(5, 20))
    return nr.rank_next_runs(fit, cands, target=TARGET, n_sim=64, random_seed=0)


def test_target_parsing_and_errors():
    assert Target.of((1e9, 2e10)) == Target(1e9, 2e10, None)
    assert Target.of({"n_params": 1e9, "n_tokens": 2e10, "loss": 2.1}).loss == 2.1
    with pytest.raises(QueryError):
        Target.of((1e9, -1.0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), interval=st.floats(0.5, 0.95))
def test_weighted_band_with_equal_weights_is_the_plain_quantile_band(seed, interval):
    z = np.random.default_rng(seed).normal(0.7, 0.05, size=(400, 5))
    w = np.full((1, 400), 1 / 400)

    def width(p: float) -> float:  # numpy's inverted-cdf quantiles of all 2000 values
        lo, hi = np.quantile(z, [(1 - p) / 2, (1 + p) / 2], method="inverted_cdf")
        return float(np.exp(hi) - np.exp(lo))

    got = nr.weighted_band(z, w, interval)[0]  # equal up to one order statistic at each end
    assert width(interval - 2.1 / z.size) <= got <= width(interval + 2.1 / z.size)


def test_extend_box_grows_only_where_the_run_lies_outside():
    box = Box((7.0, 9.0), (9.0, 11.0), (17.0, 20.0))
    out = extend_box(box, 1e10, 1e10)
    assert out.n == (7.0, 10.0) and out.d == (9.0, 11.0)
    assert out.c[1] == pytest.approx(np.log10(6e20))
    assert extend_box(box, 1e8, 1e10) == box


def test_an_uninformative_observation_leaves_the_weights_alone(fit):
    ds = draw_set(fit, random_seed=0)
    noisy = DrawSet(**{**ds.__dict__, "sigma": ds.sigma * 1e6})
    after = noisy.observe(1e8, 2e9, float(np.log(3.0)))
    assert after.ess == pytest.approx(ds.size, rel=1e-6)


def test_an_observation_at_the_target_pins_the_law_there(fit):
    ds = draw_set(fit, random_seed=0)
    tgt = Target.of(TARGET)
    y = float(np.median(ds.log_mu(tgt.n_params, tgt.n_tokens)))
    after = ds.observe(tgt.n_params, tgt.n_tokens, y)
    w0, w1 = ds.weights[None, :], after.weights[None, :]
    before = nr.weighted_band(ds.target_draws(tgt, "law"), w0, 0.9)[0]
    assert nr.weighted_band(after.target_draws(tgt, "law"), w1, 0.9)[0] < 0.5 * before


def test_ranking_is_sorted_per_flop_and_reports_its_settings(table):
    per = table["reduction_per_flop"].to_numpy()
    assert np.all(np.diff(per) <= 1e-30)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table.attrs["band"] == "predictive" and table.attrs["band_now"] > 0
    assert np.allclose(table["flops"], 6 * table["n_params"] * table["n_tokens"])
    assert (table["band_after"] < table["band_now"]).any()
    assert json.loads(json.dumps(nr.ranking_json(table)))["records"][0]["rank"] == 1


def test_the_target_run_itself_narrows_the_band_most(table):
    best = table.loc[table["reduction"].idxmax()]
    assert best["n_params"] == pytest.approx(7e10) and best["tokens_per_param"] == 20


def test_runs_inside_the_ladder_gain_less_than_runs_toward_the_target(table):
    inside = table[table["n_params"] < 3e9]["reduction"].max()
    toward = table[table["n_params"] > 3e10]["reduction"].min()
    assert inside < toward


def test_budget_leaves_out_dearer_candidates(fit, table):
    budget = float(np.median(table["flops"]))
    cut = nr.rank_next_runs(fit, table[["n_params", "n_tokens"]], target=TARGET, budget=budget,
                            n_sim=16, random_seed=0)
    assert (cut["flops"] <= budget).all() and cut.attrs["n_over_budget"] > 0
    with pytest.raises(QueryError, match="budget"):
        nr.rank_next_runs(fit, table[["n_params", "n_tokens"]], target=TARGET, budget=1.0)


def test_p_target_metric_and_input_errors(fit):
    cands = [(3e8, 6e9), (7e10, 1.4e12)]
    tab = nr.rank_next_runs(fit, cands, target=TARGET, metric="p_target", n_sim=64,
                            random_seed=1)
    big = tab[tab["n_params"] == 7e10].iloc[0]
    small = tab[tab["n_params"] == 3e8].iloc[0]
    assert big["p_target_sd"] > small["p_target_sd"]
    with pytest.raises(QueryError, match="target loss"):
        nr.rank_next_runs(fit, cands, target=TARGET[:2], metric="p_target")
    with pytest.raises(QueryError):
        nr.rank_next_runs(fit, [(1e9, -5.0)], target=TARGET)
    with pytest.raises(QueryError):
        nr.rank_next_runs(fit, cands, target=TARGET, band="wide")


def test_ranking_is_reproducible_with_a_seed(fit):
    cands = [(3e8, 6e9), (1e10, 2e11)]
    a = nr.rank_next_runs(fit, cands, target=TARGET, n_sim=32, random_seed=5)
    b = nr.rank_next_runs(fit, cands, target=TARGET, n_sim=32, random_seed=5)
    assert a.equals(b)


def test_plot_and_text(table):
    ax = plot_next_runs(table)
    assert ax.get_xscale() == "log" and "FLOPs" in ax.get_xlabel()
    text = nr.table_text(table, top=3)
    assert "band now" in text and len(text.splitlines()) >= 4


def test_cli_next_run(fit, tmp_path, capsys):
    path = tmp_path / "f.nc"
    fit.save(path)
    png = tmp_path / "next.png"
    args = ["next-run", str(path), "--target-n-params", "7e10", "--target-n-tokens", "1.4e12",
            "--target-loss", "2.0", "--budget", "2e23", "--candidates-n", "1e9,1e10,3e10",
            "--tokens-per-param", "20", "--n-sim", "32", "--plot", str(png)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["budget"] == 2e23 and len(out["records"]) == 3
    assert png.stat().st_size > 1000
    assert main(args[:-2]) == 0
    assert "ranked by band gain per FLOP" in capsys.readouterr().out
    assert main([*args[:8], "--budget", "1"]) == 2
    assert "no candidate fits the budget" in capsys.readouterr().err


@pytest.mark.slow
def test_importance_reweighting_agrees_with_a_refit():
    from bayes_scaling.fitting.fit import fit as run_fit

    runs = synthetic_runs("chinchilla", P, n_sizes=tuple(np.geomspace(1e7, 1e9, 6)), seed=3,
                          noise=0.01)
    base = run_fit("chinchilla", runs, chains=2, draws=400, tune=400, random_seed=1, retries=0)
    check = nr.refit_check(base, (3e9, 6e10), (3e10, 6e11), outcomes=(0.5,),
                           fit_kwargs={"draws": 400, "tune": 400, "retries": 0}, random_seed=2)
    row = check.iloc[0]
    assert row["ess"] > 100
    assert row["law_is"] == pytest.approx(row["law_refit"], rel=0.25)
    assert row["predictive_is"] == pytest.approx(row["predictive_refit"], rel=0.15)
