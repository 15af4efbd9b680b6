"""Contrasts and rankings of groups on fake fits (no sampler): multipliers, P(B better),
crossings, ranks, the eval-set check, the CLI and the plot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.errors import QueryError
from bayes_scaling.laws import final_loss as laws
from bayes_scaling.query.contrast import check_comparable, contrast_groups
from bayes_scaling.query.rank import rank_groups
from bayes_scaling.testing import fake_fit, synthetic_runs

P = PUBLISHED["hoffmann2022"]


def grouped_fit(offsets, *, spread=1e-3, eval_sets=None, seed=0, extra=None):
    """A fake fit whose groups sit at the published law plus ``offsets``."""
    runs = synthetic_runs("chinchilla", P, group_offsets={g: {} for g in offsets}, seed=seed)
    if eval_sets is not None:
        frame = runs.frame.assign(eval_set=runs.frame["group"].map(eval_sets))
        runs = load_runs(frame)
    return fake_fit("chinchilla", P, runs=runs, group_offsets=offsets, spread=spread, seed=seed,
                    extra=extra)


def optimal_loss(c, **k):
    """Chinchilla's law at the compute-optimal split of ``c`` (natural constants)."""
    n, d = laws.chinchilla_optimal(c, **k)
    return laws.chinchilla(n, d, **k)


def brute_multiplier(c, ka, kb):
    """``c / C_B`` from a dense grid of B's compute-optimal loss (independent of bisection)."""
    out = []
    for ci in np.atleast_1d(c):
        grid = np.geomspace(ci / 1e4, ci * 1e4, 200_001)
        lb = optimal_loss(grid, **kb)
        out.append(ci / np.interp(-optimal_loss(ci, **ka), -lb, grid))
    return np.array(out)


def natural_of(offsets):
    return {"e": P["e"] * np.exp(offsets.get("log_e", 0.0)),
            "a": P["a"] * np.exp(offsets.get("log_a", 0.0)),
            "b": P["b"] * np.exp(offsets.get("log_b", 0.0)), "alpha": P["alpha"],
            "beta": P["beta"]}


def rows(res, quantity, band="law"):
    s = res.summary
    return s[(s["quantity"] == quantity) & (s["band"] == band)].reset_index(drop=True)


def test_multiplier_matches_a_brute_force_inversion():
    offs = {"a": {}, "b": {"log_e": -0.03, "log_b": 0.1}}
    fit = grouped_fit(offs, spread=1e-5)
    c = np.array([1e21, 1e23])
    res = contrast_groups(fit, "a", "b", flops=c, random_seed=0)
    want = brute_multiplier(c, natural_of(offs["a"]), natural_of(offs["b"]))
    assert rows(res, "multiplier")["median"].to_numpy() == pytest.approx(want, rel=2e-3)
    assert (want > 1).all()  # B's lower floor wins at these budgets
    diff = rows(res, "difference")["median"].to_numpy()
    truth = optimal_loss(c, **natural_of(offs["b"])) - optimal_loss(c, **natural_of(offs["a"]))
    assert diff == pytest.approx(truth, rel=1e-3)


def test_a_model_target_keeps_its_tokens_per_param():
    offs = {"a": {}, "b": {"log_a": -0.2}}
    fit = grouped_fit(offs, spread=1e-5)
    res = contrast_groups(fit, "a", "b", n_params=1e10, n_tokens=2e11)
    la = laws.chinchilla(1e10, 2e11, **natural_of(offs["a"]))
    lb = laws.chinchilla(1e10, 2e11, **natural_of(offs["b"]))
    assert rows(res, "loss_a")["median"].iloc[0] == pytest.approx(la, rel=1e-4)
    assert rows(res, "difference")["median"].iloc[0] == pytest.approx(lb - la, rel=1e-3)
    # on the D = 20 N ray, B at C/m reaches A's loss at C
    m = rows(res, "multiplier")["median"].iloc[0]
    n_b = 1e10 / np.sqrt(m)
    assert laws.chinchilla(n_b, 20 * n_b, **natural_of(offs["b"])) == pytest.approx(la,
                                                                                   rel=1e-6)


def test_swapping_the_groups_inverts_the_multiplier():
    fit = grouped_fit({"a": {}, "b": {"log_e": 0.01, "log_a": -0.1}}, spread=1e-5)
    ab = contrast_groups(fit, "a", "b", flops=1e22)
    m = rows(ab, "multiplier")["median"].iloc[0]
    # B matches A's loss at 1e22 with 1e22 / m: there, A needs m times B's compute
    ba = contrast_groups(fit, "b", "a", flops=1e22 / m)
    assert rows(ba, "multiplier")["median"].iloc[0] == pytest.approx(1 / m, rel=1e-4)
    wide = grouped_fit({"a": {}, "b": {"log_e": 0.01, "log_a": -0.1}}, spread=0.02)
    p_ab = rows(contrast_groups(wide, "a", "b", flops=1e22), "difference")["p_b_better"].iloc[0]
    p_ba = rows(contrast_groups(wide, "b", "a", flops=1e22), "difference")["p_b_better"].iloc[0]
    assert p_ab + p_ba == pytest.approx(1.0)
    assert 0.05 < p_ab < 0.95  # a real contest


def test_identical_groups_tie():
    fit = grouped_fit({"a": {}, "b": {}}, spread=0.01)
    res = contrast_groups(fit, "a", "b", flops=1e22, random_seed=0)
    m = rows(res, "multiplier").iloc[0]
    assert m["lower"] < 1.0 < m["upper"]
    assert 0.4 < rows(res, "difference")["p_b_better"].iloc[0] < 0.6
    shared = contrast_groups(fit, "a", "b", flops=1e22, discrepancy="shared", random_seed=0)
    assert 0.4 < rows(shared, "difference", "predictive")["p_b_better"].iloc[0] < 0.6
    # anchored: each group's noisy top runs move it, but no further than the noise allows
    assert 0.15 < rows(res, "difference", "predictive")["p_b_better"].iloc[0] < 0.85


def test_predictive_difference_is_wider_and_independent_discrepancy_wider_still():
    fit = grouped_fit({"a": {}, "b": {"log_e": -0.02}}, extra={"kappa": 0.03, "tau0": 0.01})

    def width(res, band):
        r = rows(res, "difference", band).iloc[0]
        return r["upper"] - r["lower"]

    shared = contrast_groups(fit, "a", "b", flops=1e24, discrepancy="shared", random_seed=0)
    indep = contrast_groups(fit, "a", "b", flops=1e24, discrepancy="independent", random_seed=0)
    assert width(shared, "predictive") > 3 * width(shared, "law")
    assert width(indep, "predictive") > 1.5 * width(shared, "predictive")


def test_crossing_scale_is_found_where_the_laws_cross():
    # B: lower floor, larger N and D terms: worse on small budgets, better on large ones
    offs = {"a": {}, "b": {"log_e": -0.05, "log_a": 0.3, "log_b": 0.3}}
    fit = grouped_fit(offs, spread=1e-4)
    res = contrast_groups(fit, "a", "b", flops=1e22, crossing_range=(1e15, 1e27))
    grid = np.geomspace(1e15, 1e27, 100_001)
    d = optimal_loss(grid, **natural_of(offs["b"])) - optimal_loss(grid, **natural_of(offs["a"]))
    root = grid[np.flatnonzero(np.diff(np.sign(d)))[-1]]
    x = res.crossing.iloc[0]
    assert x["p_cross"] == pytest.approx(1.0)
    assert x["median"] == pytest.approx(root, rel=0.02)
    assert x["p_b_better_at_c_max"] == pytest.approx(1.0)
    # outside the range searched there is no crossing
    none = contrast_groups(fit, "a", "b", flops=1e22, crossing_range=(root * 10, root * 1e4))
    assert none.crossing.iloc[0]["p_cross"] == 0.0


def test_multiplier_interval_covers_a_truth_drawn_from_the_posterior():
    """When the truth is a draw of the posterior, the 90% interval covers it ~90% of the time."""
    hits = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        offs = {"a": {"log_a": rng.normal(0, 0.1)}, "b": {"log_e": rng.normal(0, 0.02)}}
        fit = grouped_fit(offs, spread=0.02, seed=seed)
        res = contrast_groups(fit, "a", "b", flops=1e23, random_seed=seed)
        draws = res.draws["multiplier"].values.ravel()
        m = rows(res, "multiplier").iloc[0]
        truth = draws[rng.choice(draws.size, 40, replace=False)]  # posterior draws as truths
        hits += list((m["lower"] <= truth) & (truth <= m["upper"]))
    rate = float(np.mean(hits))
    assert 0.85 <= rate <= 0.95, rate


def test_p_b_better_is_calibrated_on_posterior_draws():
    """Binned P(B better) against the sign in a held-back draw: two-sided, per bin."""
    ps, ys = [], []
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        offs = {"a": {}, "b": {"log_e": rng.normal(0, 0.004)}}
        fit = grouped_fit(offs, spread=0.004, seed=seed)
        res = contrast_groups(fit, "a", "b", flops=1e22, random_seed=seed)
        diff = res.draws["difference"].values.ravel()
        ps.append(rows(res, "difference")["p_b_better"].iloc[0])
        ys.append(diff[rng.integers(diff.size)] < 0)
    ps, ys = np.array(ps), np.array(ys, dtype=float)
    assert 0.1 < ps.mean() < 0.9 and np.ptp(ps) > 0.5  # the set spans real uncertainty
    brier = np.mean((ps - ys) ** 2)
    assert brier < np.mean((0.5 - ys) ** 2)  # better than a coin
    assert abs(ys.mean() - ps.mean()) < 0.2


def test_refuses_groups_on_different_eval_sets_in_one_line():
    fit = grouped_fit({"a": {}, "b": {}, "c": {}}, eval_sets={"a": "owt2", "b": "owt2",
                                                              "c": "refinedweb"})
    with pytest.raises(QueryError) as err:
        contrast_groups(fit, "a", "c", flops=1e22)
    assert "different evaluation sets" in str(err.value) and "\n" not in str(err.value)
    res = contrast_groups(fit, "a", "c", flops=1e22, on_mixed="warn")
    assert any("not comparable" in w for w in res.warnings)
    assert contrast_groups(fit, "a", "b", flops=1e22).warnings == ()
    assert check_comparable(fit, ["a", "b"]) == ()
    with pytest.raises(QueryError, match="evaluation sets"):
        rank_groups(fit, flops=1e22)
    assert rank_groups(fit, flops=1e22, groups=["a", "b"]).groups == ("a", "b")


def test_eval_set_survives_loading_saving_and_keeps_old_fingerprints(tmp_path):
    runs = synthetic_runs("chinchilla", P, group_offsets={"a": {}, "b": {}})
    frame = runs.frame.rename(columns={"group": "recipe"})
    with_set = load_runs(frame.assign(validation_set="pile"), group_col="recipe")
    assert set(with_set.frame["eval_set"]) == {"pile"}
    from bayes_scaling.data.runs import RunTable

    back = RunTable.from_xarray(with_set.to_xarray())
    assert back.fingerprint() == with_set.fingerprint()
    assert list(back.frame["eval_set"]) == list(with_set.frame["eval_set"])
    assert load_runs(frame, group_col="recipe").fingerprint() == \
        load_runs(runs.frame).fingerprint()
    bad = frame.assign(eval_set=["x"] * (len(frame) - 1) + [None])
    with pytest.raises(Exception, match="eval_set is missing"):
        load_runs(bad, group_col="recipe")


def test_rank_orders_groups_and_pairwise_is_complementary():
    offs = {"good": {"log_e": -0.04}, "mid": {}, "bad": {"log_e": 0.04}}
    fit = grouped_fit(offs, spread=1e-3)
    rk = rank_groups(fit, flops=[1e21, 1e23])
    first = rk.ranks[rk.ranks["flops"] == 1e21]
    assert list(first["group"]) == ["good", "mid", "bad"]
    assert first["p_rank_1"].iloc[0] == pytest.approx(1.0)
    mat = rk.pairwise_matrix(1e21)
    assert mat.loc["good", "bad"] == 1.0 and mat.loc["bad", "good"] == 0.0
    probs = rk.ranks[[c for c in rk.ranks.columns if c.startswith("p_rank_")]].sum(axis=1)
    assert probs.to_numpy() == pytest.approx(1.0)
    # near-ties: ranks share probability, pairwise complements sum to one
    tie = rank_groups(grouped_fit({"x": {}, "y": {}, "z": {}}, spread=0.01), flops=1e22,
                      band="predictive", random_seed=0)
    m = tie.pairwise_matrix()
    assert (m + m.T).stack().dropna().to_numpy() == pytest.approx(1.0)
    assert tie.ranks["p_rank_1"].max() < 0.6


def test_bad_targets_and_groups_are_one_line_errors():
    fit = grouped_fit({"a": {}, "b": {}})
    for kwargs, pattern in [({}, "give a target"), ({"flops": -1}, "positive"),
                            ({"flops": 1e22, "n_params": 1e9}, "not both"),
                            ({"n_params": 1e9}, "both n_params")]:
        with pytest.raises(QueryError, match=pattern):
            contrast_groups(fit, "a", "b", **kwargs)
    with pytest.raises(QueryError, match="distinct"):
        contrast_groups(fit, "a", "a", flops=1e22)
    with pytest.raises(QueryError, match="unknown group"):
        contrast_groups(fit, "a", "zz", flops=1e22)
    with pytest.raises(QueryError, match="one group"):
        contrast_groups(fake_fit("chinchilla", P), "all", "new", flops=1e22)


def test_cli_contrast_and_rank(tmp_path, capsys):
    path = tmp_path / "g.nc"
    grouped_fit({"a": {}, "b": {"log_e": -0.02}}).save(path)
    png = tmp_path / "c.png"
    assert main(["contrast", str(path), "--groups", "a,b", "--flops", "1e21,1e22",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "multiplier" in out and "laws cross" in out and png.stat().st_size > 0
    assert main(["contrast", str(path), "--groups", "a,b", "--flops", "1e22", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    mult = next(r for r in payload["summary"] if r["quantity"] == "multiplier")
    assert mult["median"] > 1 and mult["p_b_better"] == pytest.approx(1.0)
    assert main(["rank", str(path), "--flops", "1e22"]) == 0
    assert "P(row better than column)" in capsys.readouterr().out
    assert main(["contrast", str(path), "--groups", "a", "--flops", "1e22"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two groups" in err
    assert main(["contrast", str(path), "--groups", "a,b"]) == 2


def test_plot_contrast_returns_axes():
    import matplotlib.pyplot as plt

    from bayes_scaling.plots.contrast import plot_contrast

    fit = grouped_fit({"a": {}, "b": {"log_e": -0.02, "log_a": 0.2}})
    ax = plot_contrast(fit, "a", "b", flops=np.geomspace(1e19, 1e24, 8))
    assert ax.get_yscale() == "log" and "multiplier" in ax.get_ylabel()
    assert len(ax.figure.axes) == 2  # the twin with P(B better)
    plt.close(ax.figure)


def test_contrast_on_a_real_sampled_fit_is_not_needed_for_pandas_types():
    res = contrast_groups(grouped_fit({"a": {}, "b": {}}), "a", "b", flops=1e22)
    assert isinstance(res.summary, pd.DataFrame)
    rec = res.to_records()
    assert rec["group_a"] == "a" and {"summary", "crossing", "warnings"} <= set(rec)


def test_porian_corpora_are_refused_as_incomparable():
    from bayes_scaling.data.registry import load_dataset

    runs = load_dataset("porian2024_isoflop")  # groups = corpora, each its own validation set
    assert set(zip(runs.frame["group"], runs.frame["eval_set"], strict=True)) == {
        ("openwebtext2", "openwebtext2"), ("refinedweb", "refinedweb")}
    fit = fake_fit("chinchilla", P, runs=runs)
    with pytest.raises(QueryError, match="openwebtext2: openwebtext2; refinedweb: refinedweb"):
        contrast_groups(fit, "openwebtext2", "refinedweb", flops=1e20)
    with pytest.raises(Exception, match="eval-set column 'corpus' not found"):
        load_dataset("porian2024_isoflop", eval_set_col="corpus")
