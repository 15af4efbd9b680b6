"""Comparing law families: pointwise log-likelihood, LOO table, divergence, averaging, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import BayesScalingError, QueryError
from bayes_scaling.evaluate import compare as cmp
from bayes_scaling.evaluate import stacking as stk
from bayes_scaling.evaluate.families import (
    allocation,
    averaged_predict_loss,
    where_they_part,
)
from bayes_scaling.evaluate.loo import n_bad_pareto_k, pointwise_log_likelihood
from bayes_scaling.fitting.baseline import huber_fit
from bayes_scaling.query.predict import flat, group_theta, predict_loss
from bayes_scaling.testing import fake_fit, synthetic_runs
from tests.conftest import SMALL

EPOCH = PUBLISHED["epoch2024"]
K = PUBLISHED["kaplan2020"]


@pytest.fixture(scope="module")
def runs():
    """A chinchilla-generated ladder with two data distributions (offset on log E)."""
    return synthetic_runs("chinchilla", EPOCH, noise=0.01, seed=1,
                          group_offsets={"web": {}, "code": {"log_e": -0.05}})


@pytest.fixture(scope="module")
def fits():
    """Fake posteriors at each family's Huber fit of one chinchilla-generated ladder."""
    ladder = synthetic_runs("chinchilla", EPOCH, noise=0.01, seed=1)
    out = {}
    for i, m in enumerate(("chinchilla", "kaplan")):
        th = huber_fit({"n": ladder.log_n, "d": ladder.log_d}, ladder.log_loss, law=m)
        out[m] = fake_fit(m, th, runs=ladder, seed=2 + i)
    return out


# ------------------------------------------------------------------------------ log-likelihood
@pytest.mark.parametrize("likelihood", ["studentt", "normal"])
def test_pointwise_log_likelihood_matches_scipy(runs, likelihood):
    from bayes_scaling.model.spec import load_spec

    spec = load_spec("chinchilla").with_likelihood(likelihood)
    f = fake_fit(spec, EPOCH, runs=runs, seed=4)  # type: ignore[arg-type]
    ll = pointwise_log_likelihood(f)
    assert ll.dims == ("chain", "draw", "run") and ll.shape[2] == runs.n_runs
    i = int(np.flatnonzero(runs.group_index == runs.group_names.index("code"))[3])
    th = {k: v[7] for k, v in group_theta(f, "code").items()}
    mu = f.law.evaluate_log({"n": runs.log_n[i], "d": runs.log_d[i]}, th)
    sigma = flat(f.posterior["sigma"])[7]
    y = runs.log_loss[i]
    expect = (stats.t.logpdf(y, df=flat(f.posterior["nu"])[7], loc=mu, scale=sigma)
              if likelihood == "studentt" else stats.norm.logpdf(y, loc=mu, scale=sigma))
    assert float(np.asarray(ll).reshape(-1, runs.n_runs)[7, i]) == pytest.approx(expect)


# ------------------------------------------------------------------------------ the table
@pytest.fixture(scope="module")
def result(fits):
    return cmp.compare(fits, holdout_top=None, random_seed=0, stack_tops=None)


def test_table_has_the_promised_columns_and_prefers_the_true_family(result):
    t = result.table
    assert tuple(t.columns) == cmp.TABLE_COLUMNS
    assert list(t["model"]) == ["chinchilla", "kaplan"]
    assert t["elpd_diff"].iloc[1] > 2 * t["dse"].iloc[1]
    assert t["weight"].sum() == pytest.approx(1.0)
    assert t["heldout_lpd"].isna().all()  # holdout_top=None skips the refits
    assert any("best by PSIS-LOO: chinchilla" in n for n in result.notes)


def test_exponents_match_the_closed_forms(result):
    row = result.table.set_index("model")
    med = {k: float(v.median()) for k, v in result.fits["chinchilla"].constants().items()}
    a_chin = med["beta"] / (med["alpha"] + med["beta"])
    assert row.loc["chinchilla", "a_median"] == pytest.approx(a_chin, abs=2e-3)
    assert row.loc["chinchilla", "a_median"] + row.loc["chinchilla", "b_median"] == \
        pytest.approx(1.0)
    assert row.loc["chinchilla", "a_lower"] <= row.loc["chinchilla", "a_median"] <= \
        row.loc["chinchilla", "a_upper"]
    inside = row.loc["chinchilla", "a_lower"] <= 0.513 <= row.loc["chinchilla", "a_upper"]
    word = "contains" if inside else "does not contain"
    assert any(n.startswith("chinchilla: a = ") and f"{word} Epoch's" in n for n in result.notes)


def test_to_json_is_strict_json(result):
    text = json.dumps(result.to_json(), allow_nan=False)
    back = json.loads(text)
    assert back["table"][0]["model"] == "chinchilla"
    assert back["published_exponents"]["kaplan2020"]["a"] == 0.73
    assert {"reference", "pairs", "flops"} <= set(back["diverge"])
    assert "chinchilla" in result.to_text()


def test_fits_on_different_runs_are_refused(fits):
    other = fake_fit("kaplan", K, seed=5)
    with pytest.raises(BayesScalingError, match="different run tables"):
        cmp.compare({"chinchilla": fits["chinchilla"], "kaplan": other}, holdout_top=None,
                    stack_tops=None)


def test_n_bad_pareto_k_counts_above_threshold():
    class E(dict):
        pareto_k = np.array([0.1, 0.69, 0.71, 1.3])
        good_k = 0.7
    assert n_bad_pareto_k(E()) == 2


# ------------------------------------------------------------------------------ divergence
def test_identical_fits_never_part(fits):
    same = {"a": fits["chinchilla"], "b": fits["chinchilla"]}
    dv = where_they_part(same, random_seed=0)
    assert dv["flops"] is None and dv["law"] is None


def test_reported_budget_is_the_first_where_law_bands_are_disjoint(runs):
    a = fake_fit("chinchilla", EPOCH, runs=runs, seed=6)
    # shallower N-term with the same value at N = 1e8: the laws agree at the smallest budgets
    alpha_b = EPOCH["alpha"] - 0.1
    b = fake_fit("chinchilla", {**EPOCH, "alpha": alpha_b,
                                "a": EPOCH["a"] * 1e8 ** (alpha_b - EPOCH["alpha"])},
                 runs=runs, seed=7)
    grid = np.geomspace(1e18, 1e27, 37)
    dv = where_they_part({"a": a, "b": b}, group="web", flops=grid, random_seed=0)
    pt = dv["law"]
    assert pt is not None and not pt["at_start"]
    i = int(np.flatnonzero(np.isclose(grid, pt["flops"]))[0])
    n, d, _ = allocation(a, grid[i - 1:i + 1], group="web")
    sa = predict_loss(a, n, d, group="web", band="law", probs=(0.9,), random_seed=1).summary
    sb = predict_loss(b, n, d, group="web", band="law", probs=(0.9,), random_seed=1).summary
    apart = (sa["upper"] < sb["lower"]) | (sb["upper"] < sa["lower"])
    assert list(apart) == [False, True]
    assert pt["n_params"] == pytest.approx(n[1], rel=1e-6)


def test_fixed_ratio_allocation():
    f = fake_fit("chinchilla", EPOCH, seed=0)
    n, d, how = allocation(f, np.array([6e20]), tokens_per_param=20)
    assert d[0] / n[0] == pytest.approx(20) and 6 * n[0] * d[0] == pytest.approx(6e20)
    assert "20" in how
    with pytest.raises(QueryError):
        allocation(f, np.array([6e20]), tokens_per_param=-1)


# ------------------------------------------------------------------------------ averaging
def test_averaging_with_all_weight_on_one_family_reproduces_it(fits):
    avg = averaged_predict_loss(fits, {"chinchilla": 1.0, "kaplan": 0.0}, 3e9, 6e10,
                                    band="law", random_seed=0)
    one = predict_loss(fits["chinchilla"], 3e9, 6e10, band="law", random_seed=0)
    assert avg.summary["median"].iloc[0] == pytest.approx(one.summary["median"].iloc[0],
                                                          rel=1e-3)
    assert avg.summary["models"].iloc[0] == "chinchilla:1.000"


def test_averaging_is_the_weighted_quantile_average(runs):
    lo = fake_fit("chinchilla", EPOCH, runs=runs, seed=8)
    hi = fake_fit("chinchilla", {**EPOCH, "e": 2.5}, runs=runs, seed=9)
    avg = averaged_predict_loss({"lo": lo, "hi": hi}, {"lo": 0.3, "hi": 0.7}, 1e10, 2e11,
                                group="web", band="law", random_seed=0)
    probs = (0.05, 0.5, 0.95)
    own = [np.log(np.quantile(np.asarray(predict_loss(f, 1e10, 2e11, group="web", band="law",
                                                      random_seed=0).draws), probs))
           for f in (lo, hi)]
    got = np.log(np.quantile(np.asarray(avg.draws).ravel(), probs))
    # not the linear pool: its 90% band would span both families' (E 0.8 apart)
    np.testing.assert_allclose(got, 0.3 * own[0] + 0.7 * own[1], atol=2e-3)


def test_averaging_rejects_bad_weights(fits):
    with pytest.raises(QueryError, match="unknown"):
        averaged_predict_loss(fits, {"gpt": 1.0}, 1e9, 1e10)
    with pytest.raises(QueryError, match="positive sum"):
        averaged_predict_loss(fits, {"chinchilla": 0.0}, 1e9, 1e10)


# ------------------------------------------------------------------------------ plots, imports
def test_plots_draw_every_family_and_write_files(result, tmp_path):
    import matplotlib.pyplot as plt

    from bayes_scaling.plots import compare as plots_compare

    ax = plots_compare.plot_compare_loss(result.fits, diverge=result.diverge)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("chinchilla" in s for s in labels) and any("kaplan" in s for s in labels)
    ax2 = plots_compare.plot_compare_optimal(result.fits)
    assert ax2.get_yscale() == "log"
    plt.close("all")
    written = plots_compare.save_compare_plots(result, tmp_path, random_seed=0)
    assert [p.name for p in written] == ["compare_loss.png", "compare_optimal.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_compare_and_its_plots_do_not_import_pymc():
    code = ("import sys, bayes_scaling.evaluate.compare, bayes_scaling.plots.compare; "
            "assert 'pymc' not in sys.modules, 'pymc imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize("argv, message", [
    (["compare", "missing_runs.csv"], "missing_runs.csv"),
    (["compare", "chinchilla", "--models", "chinchilla,kaplam"], "did you mean"),
    (["compare", "chinchilla", "--models", "kaplan,kaplan"], "named twice"),
])
def test_cli_compare_errors_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


# ------------------------------------------------------------------------------ NUTS end to end
@pytest.mark.slow
def test_compare_real_fits_with_held_out_refits():
    """Real fits of two families on a chinchilla ladder, LOO and the held-out refits."""
    ladder = synthetic_runs("chinchilla", EPOCH, noise=0.01, seed=11,
                            n_sizes=tuple(np.geomspace(1e7, 3e9, 6)),
                            tokens_per_param=(5, 20, 80))
    kw = {**SMALL, "retries": 0}
    fits = cmp.fit_families(ladder, ["chinchilla", "kaplan"], random_seed=3, fit_kwargs=kw)
    res = cmp.compare(fits, holdout_top=1, random_seed=4, fit_kwargs=kw, stack_tops=None)
    t = res.table.set_index("model")
    assert list(res.table["model"]) == ["chinchilla", "kaplan"]
    assert t.loc["kaplan", "elpd_diff"] > 2 * t.loc["kaplan", "dse"]
    assert t["heldout_lpd"].notna().all()
    # the true family's refit covers the 3 runs held out of its own ladder with its 90% band
    # (all three inside: probability >= 0.73 for a calibrated band; seeded)
    assert t.loc["chinchilla", "heldout_cov90"] == 1.0
    assert (t["heldout_cov50"] <= t["heldout_cov90"]).all()
    assert res.meta["n_heldout"] == 3  # the largest size at 3 token ratios
    a = t.loc["chinchilla"]
    truth = EPOCH["beta"] / (EPOCH["alpha"] + EPOCH["beta"])
    assert a["a_lower"] - 0.05 < truth < a["a_upper"] + 0.05


def test_cli_compare_text_average_and_plots_without_sampling(monkeypatch, capsys, fits,
                                                             tmp_path):
    """The CLI's rendering, with the fitting step replaced by the fake fits."""
    ladder = next(iter(fits.values())).runs
    path = tmp_path / "runs.csv"
    ladder.frame.to_csv(path, index=False)
    monkeypatch.setattr(cmp, "fit_families", lambda runs, names, **kw: {
        n: fits[n] for n in names})
    argv = ["compare", str(path), "--models", "chinchilla,kaplan", "--holdout-top", "0",
            "--stack-tops", "loo",
            "--average", "--n-params", "3e9", "--n-tokens", "6e10", "--plots",
            str(tmp_path / "figs"), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "elpd_loo" in out and "best by PSIS-LOO: chinchilla" in out
    assert "stacking-averaged prediction" in out and "chinchilla:" in out
    assert (tmp_path / "figs" / "compare_loss.png").exists()
    # where the families part: printed for the pair, from the reference's optimum
    assert "chinchilla vs kaplan (predictive 90% bands" in out
    assert "part at C =" in out or "overlap at every budget" in out


def test_cli_compare_averages_with_held_out_by_compute_weights(monkeypatch, capsys, fits,
                                                              tmp_path):
    """--stack-tops: the refits are replaced by planted predictions where kaplan is right."""
    from bayes_scaling.evaluate.heldout import HeldOut

    ladder = next(iter(fits.values())).runs
    path = tmp_path / "runs.csv"
    ladder.frame.to_csv(path, index=False)
    monkeypatch.setattr(cmp, "fit_families", lambda runs, names, **kw: {
        n: fits[n] for n in names})
    y = np.linspace(2.0, 2.2, 12)
    rng = np.random.default_rng(0)

    def planted(runs, models, *, tops, **kw):
        assert tuple(tops) == (1, 2)
        out = {}
        for spec, shift, lpd in zip(models, (0.05, 0.0), (-30.0, 3.0), strict=True):
            t = pd.DataFrame({"top": 1, "run_id": np.arange(12), "observed": y,
                              "log_pred_density": lpd})
            out[spec.name] = HeldOut(spec.name, t, y * np.exp(
                shift + 0.01 * rng.standard_normal((300, 12))), True)
        return out

    monkeypatch.setattr(stk, "heldout_predictions", planted)
    # this 40-run ladder's top budgets hold fewer than MIN_OWN_ROWS runs, which now sends it to
    # the cross-ladder weights before any refit; the test is of the held-out path
    monkeypatch.setattr(stk, "MIN_OWN_ROWS", 1)
    # k = 0: the own stacking weights unshrunk (kaplan has no cross-ladder weight to shrink to)
    monkeypatch.setattr(stk, "shrink_k", lambda: 0.0)
    argv = ["compare", str(path), "--models", "chinchilla,kaplan", "--holdout-top", "0",
            "--average", "--n-params", "3e9", "--n-tokens", "6e10", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "held out by compute" in out and "held-out-by-compute weights" in out
    assert "shrunk toward the cross-ladder weights by k = 0.0" in out
    assert "kaplan:1.000" in out and "chinchilla:" not in out.split("weights):")[1]


def test_single_variable_family_is_compared_without_an_optimum():
    ladder = synthetic_runs("kaplan", K, noise=0.01, seed=2)
    fits = {"kaplan_n": fake_fit("kaplan_n", {"n_c": 8.8e13, "alpha_n": 0.076}, runs=ladder,
                                 seed=1),
            "kaplan": fake_fit("kaplan", K, runs=ladder, seed=2)}
    res = cmp.compare(fits, holdout_top=None, random_seed=0, stack_tops=None)
    row = res.table.set_index("model")
    assert np.isnan(row.loc["kaplan_n", "a_median"]) and np.isfinite(row.loc["kaplan", "a_median"])
    assert res.diverge["allocation"] == "D = 20 N"
    assert any("kaplan_n: law kaplan_n has one input" in n for n in res.notes)
    assert res.table["model"].iloc[0] == "kaplan"  # the joint law sees the token axis


def test_note_when_held_out_runs_disagree_with_loo():
    import pandas as pd

    t = pd.DataFrame({"model": ["a", "b"], "heldout_lpd": [1.0, 2.0], "heldout_mape": [2.0, 1.0],
                      "heldout_cov90": [0.5, 1.0]})
    (note,) = cmp._heldout_vs_loo(t)
    assert note.startswith("the held-out runs favour b") and "LOO winner a" in note
    (agree,) = cmp._heldout_vs_loo(t.assign(heldout_lpd=[3.0, 2.0]))
    assert "agree" in agree
    assert cmp._heldout_vs_loo(t.assign(heldout_lpd=[float("nan")] * 2)) == []
