"""Scaling-pattern diagnostics: the broken law, the detectors on planted ladders, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.errors import QueryError
from bayes_scaling.evaluate import checks as dg
from bayes_scaling.evaluate.patterns import BEND_T, OUTLIER_Z, diagnose_runs
from bayes_scaling.evaluate.pointfit import dispersion_statistic, point_fit, robust_scale
from bayes_scaling.fitting.result import with_posterior
from bayes_scaling.laws import final_loss as laws
from bayes_scaling.model.spec import load_spec
from bayes_scaling.testing import fake_fit, synthetic_runs, to_sampling

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
P = PUBLISHED["hoffmann2022"]
SIZES = tuple(np.geomspace(1e7, 3e9, 8))
BROKEN = {**P, "n_b": 1.7e8, "alpha_2": 0.6}


def ladder(law="chinchilla", params=P, *, seed=0, noise=0.008, sizes=SIZES, groups=None):
    """A synthetic ladder (5 tokens-per-parameter ratios per size)."""
    return synthetic_runs(law, params, n_sizes=sizes, noise=noise, seed=seed,
                          group_offsets=groups)


def shifted(runs, mask, dlog):
    """``runs`` with log loss raised by ``dlog`` where ``mask``."""
    frame = runs.frame.copy()
    frame.loc[mask, "loss"] = frame.loc[mask, "loss"] * np.exp(dlog)
    return load_runs(frame[["group", "n_params", "n_tokens", "loss"]],
                     group_col="group" if runs.n_groups > 1 else None)


# ------------------------------------------------------------------------------ the broken law
@settings(max_examples=50, deadline=None)
@given(n=st.floats(1e6, 1e12), d=st.floats(1e8, 1e14), a2=st.floats(0.05, 1.0))
def test_broken_law_log_form_equals_natural_form(n, d, a2):
    p = {**P, "n_b": 3e8, "alpha_2": a2}
    log = laws.log_chinchilla_broken(np.log(n), np.log(d), **to_sampling("chinchilla_broken", p))
    assert np.exp(log) == pytest.approx(laws.chinchilla_broken(n, d, **p), rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(n=st.floats(1e7, 1e11), ratio=st.floats(1.0, 1e3))
def test_broken_law_tokens_needed_inverts_it(n, ratio):
    d = n * ratio
    target = laws.chinchilla_broken(n, d, **BROKEN)
    back = laws.chinchilla_broken_tokens_needed(n, target, **BROKEN)
    assert back == pytest.approx(d, rel=1e-6)


def test_broken_law_is_chinchilla_when_the_slope_does_not_change():
    n, d = np.geomspace(1e6, 1e12, 7), np.geomspace(1e8, 1e14, 7)
    same = laws.chinchilla_broken(n, d, **{**P, "n_b": 1e9, "alpha_2": P["alpha"]})
    assert same == pytest.approx(laws.chinchilla(n, d, **P), rel=1e-12)


def test_broken_law_centring_is_exact_and_slopes_are_alpha_then_alpha_2():
    law = laws.LAWS["chinchilla_broken"]
    th = to_sampling("chinchilla_broken", BROKEN)
    centre = {"n": 20.0, "d": 23.0}
    x = {"n": np.array([15.0, 25.0]), "d": np.array([20.0, 27.0])}
    xc = {k: v - centre[k] for k, v in x.items()}
    assert law.evaluate_log(xc, law.centre(th, centre)) == pytest.approx(law.evaluate_log(x, th))
    n = np.array([1e3, 1e4, 1e13, 1e14])  # far below and far above the break: local slopes
    term = laws.chinchilla_broken(n, np.inf, **{**BROKEN, "e": 0.0})
    slopes = -np.diff(np.log(term))[[0, 2]] / np.log(10)
    assert slopes == pytest.approx([BROKEN["alpha"], BROKEN["alpha_2"]], rel=1e-3)


def test_new_model_specs_load():
    assert load_spec("broken").law == "chinchilla_broken"
    slopes = load_spec("chinchilla_slopes")
    assert {"alpha", "beta"} <= set(slopes.hierarchy.varying)


# ------------------------------------------------------------------------------ helpers
@settings(max_examples=40, deadline=None)
@given(scale=st.floats(1e-3, 10), seed=st.integers(0, 10_000))
def test_robust_scale_is_equivariant_and_ignores_one_outlier(scale, seed):
    r = np.random.default_rng(seed).standard_normal(60)
    assert robust_scale(scale * r) == pytest.approx(scale * robust_scale(r), rel=1e-9)
    spiked = r.copy()
    spiked[0] = 1e6
    assert robust_scale(spiked) < 1.5 * robust_scale(r)


def test_dispersion_statistic_is_zero_for_equal_fits_and_positive_for_better_ones():
    r = np.random.default_rng(0).standard_normal(50) * 0.01
    assert dispersion_statistic(r, r, 0.01) == 0.0
    assert dispersion_statistic(r + 0.02, r, 0.01) > 0.0
    assert dispersion_statistic(r, r + 0.02, 0.01) == 0.0  # clipped, never negative


# ------------------------------------------------------------------------------ detectors
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_ladders_raise_no_warning(seed):
    res = diagnose_runs(ladder(seed=seed))
    assert res.warnings == [], res.to_text()
    assert {f["code"] for f in res.findings} >= {"outliers", "few_sizes", "cold_start", "bend"}


def test_two_groups_with_offsets_only_share_their_slopes():
    runs = ladder(seed=3, groups={"a": {}, "b": {"log_e": 0.04, "log_b": 0.1}})
    f = diagnose_runs(runs).get("slope_differs")
    assert f["severity"] == "info" and f["value"] < f["threshold"]


def test_outliers_are_flagged_by_run_and_left_out_of_the_other_checks():
    runs = ladder(seed=4)
    bad = np.zeros(runs.n_runs, bool)
    bad[[7, 22]] = True
    res = diagnose_runs(shifted(runs, bad, 0.12))
    f = res.get("outliers")
    assert f["severity"] == "warning" and f["value"] > OUTLIER_Z
    assert set(f["detail"]["runs"]) == {runs.run_ids[7], runs.run_ids[22]}
    assert res.runs["flagged"].to_numpy().tolist() == bad.tolist()
    assert [w["code"] for w in res.warnings] == ["outliers"]


def test_a_cold_start_is_flagged():
    runs = ladder(seed=5)
    excess = 0.06 * np.exp(-(runs.log_n - runs.log_n.min()) / 0.5)
    f = diagnose_runs(shifted(runs, np.ones(runs.n_runs, bool), excess)).get("cold_start")
    assert f["severity"] == "warning"
    assert f["detail"]["groups"]["all"]["excess"] > 0.03


def test_a_bend_is_flagged_with_where_and_how():
    f = diagnose_runs(ladder("chinchilla_broken", BROKEN, seed=6)).get("bend")
    assert f["severity"] == "warning" and f["value"] > BEND_T
    g = f["detail"]["groups"]["all"]
    assert g["alpha_2"] > g["alpha"] and 3e7 < g["n_b"] < 1e9


def test_a_group_with_another_slope_is_flagged():
    m = float(np.mean(np.log(np.repeat(SIZES, 5))))
    runs = ladder(seed=7, groups={"a": {}, "b": {"alpha": 0.1, "log_a": 0.1 * m}})
    f = diagnose_runs(runs).get("slope_differs")
    assert f["severity"] == "warning" and f["value"] > f["threshold"]
    est = f["detail"]["estimates"]
    assert est["b"]["alpha"]["value"] - est["a"]["alpha"]["value"] == pytest.approx(0.1, abs=0.04)


def test_too_few_sizes_are_flagged_and_cold_start_is_not_checked():
    res = diagnose_runs(ladder(seed=8, sizes=(3e7, 3e8, 3e9)))
    assert res.get("few_sizes")["severity"] == "warning" and res.get("few_sizes")["value"] == 3
    assert res.get("cold_start")["value"] is None


def test_choose_likelihood_picks_student_t_only_with_outliers():
    runs = ladder(seed=9)
    spec, why = dg.choose_likelihood("chinchilla", runs)
    assert spec.likelihood.family == "normal" and why["severity"] == "info"
    bad = np.zeros(runs.n_runs, bool)
    bad[3] = True
    spec, why = dg.choose_likelihood("chinchilla", shifted(runs, bad, 0.15))
    assert spec.likelihood.family == "studentt" and why["severity"] == "warning"


def test_other_laws_get_the_same_checks():
    res = diagnose_runs(ladder(seed=15), law="kaplan")
    assert res.meta["law"] == "kaplan"
    assert {f["code"] for f in res.findings} >= {"outliers", "cold_start", "bend"}
    with pytest.raises(QueryError, match="L\\(N, D\\) laws"):
        diagnose_runs(ladder(seed=15), law="dynamics")


def test_cli_fit_likelihood_auto_picks_student_t_for_outliers(tmp_path, monkeypatch, capsys):
    import bayes_scaling.fitting.fit as fit_module

    seen = []

    def fake(spec, runs, **_kw):  # stands in for NUTS: records the spec it was given
        seen.append(spec.likelihood.family)
        return fake_fit(spec, P, runs=runs)

    monkeypatch.setattr(fit_module, "fit", fake)
    runs = ladder(seed=16)
    bad = np.zeros(runs.n_runs, bool)
    bad[5] = True
    csv = tmp_path / "runs.csv"
    shifted(runs, bad, 0.2).frame[["n_params", "n_tokens", "loss"]].to_csv(csv, index=False)
    assert main(["fit", str(csv), "--likelihood", "auto", "--out", str(tmp_path / "f.nc")]) == 0
    assert seen == ["studentt"]
    assert "likelihood auto -> studentt" in capsys.readouterr().err


# ------------------------------------------------------------------------------ on fits
@pytest.fixture(scope="module")
def fit_with_outlier():
    runs = ladder(seed=10)
    bad = np.zeros(runs.n_runs, bool)
    bad[11] = True
    runs = shifted(runs, bad, 0.15)
    th = point_fit(runs, "chinchilla").theta
    return fake_fit(load_spec("chinchilla").with_likelihood("normal"), th, runs=runs,
                    spread=2e-3, sigma=0.008, extra={"kappa": 0.03, "tau0": 0.02})


def test_diagnose_a_fit_adds_posterior_checks_and_the_target(fit_with_outlier):
    res = dg.diagnose(fit_with_outlier, target=(7e10, 1.4e12))
    assert {"ppc_p", "pareto_k"} <= set(res.runs.columns)
    worst = res.runs.loc[res.runs["ppc_p"].idxmin(), "run_id"]
    assert worst == fit_with_outlier.runs.run_ids[11]
    out = res.get("outliers")
    assert out["severity"] == "warning" and "Student-t" in out["message"]
    ext = res.get("extrapolation")
    assert ext["value"] == pytest.approx(np.log10(6 * 7e10 * 1.4e12)
                                         - np.log10(fit_with_outlier.runs.flops.max()))
    payload = json.loads(json.dumps(res.to_json()))
    assert payload["flagged_runs"][0]["run_id"] == worst
    assert res.to_text().splitlines()[0].startswith("WARNING")


def test_slope_differences_of_a_pooled_exponent_posterior():
    runs = ladder(seed=11, groups={"a": {}, "b": {}})
    f = fake_fit("chinchilla_slopes", P, runs=runs, seed=1)
    alpha = np.stack([np.full((2, 500), 0.30), np.full((2, 500), 0.40)], axis=-1)
    f = with_posterior(f, {"alpha": xr.DataArray(alpha, dims=("chain", "draw", "group"),
                                                 coords={"group": ["a", "b"]})})
    tab = dg.slope_differences(f)
    row = tab[(tab["param"] == "alpha")].iloc[0]
    assert row["median"] == pytest.approx(-0.1) and row["p_positive"] == 0.0
    assert dg.diagnose(f).get("slope_posterior")["severity"] == "warning"


def test_loo_comparisons_refuse_fits_of_different_runs(fit_with_outlier):
    other = fake_fit("chinchilla", P, runs=ladder(seed=12))
    with pytest.raises(QueryError, match="same runs"):
        dg.loo_difference(fit_with_outlier, other)


def test_an_unmixed_broken_fit_is_judged_chain_by_chain():
    from dataclasses import replace

    runs = ladder("chinchilla_broken", BROKEN, seed=17, noise=0.005)
    plain = fake_fit("chinchilla", point_fit(runs, "chinchilla").theta, runs=runs,
                     sigma=0.005, spread=1e-3)
    broken = fake_fit("broken", BROKEN, runs=runs, sigma=0.005, spread=1e-3, seed=3)
    stuck = replace(broken, diagnostics=replace(broken.diagnostics, max_rhat=1.7,
                                                problems=("max r_hat 1.700 > 1.01",)))
    f = dg.broken_law_check(plain, stuck)
    assert len(f["detail"]["loo"]["per_chain"]) == 2
    assert "chain by chain" in f["message"] and f["severity"] == "warning"
    assert dg.broken_law_check(plain, broken)["detail"]["loo"].get("per_chain") is None


def test_cli_diagnose_text_json_and_bad_input(fit_with_outlier, tmp_path, capsys):
    path = tmp_path / "f.nc"
    fit_with_outlier.save(path)
    assert main(["diagnose", str(path), "-q"]) == 0
    assert "WARNING outliers" in capsys.readouterr().out
    assert main(["diagnose", str(path), "--json", "--target-n-params", "7e10",
                 "--target-n-tokens", "1.4e12", "-q"]) == 0
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {"outliers", "bend", "extrapolation"} <= codes
    assert main(["diagnose", str(path), "--target-n-params", "7e10"]) == 2
    assert "give both" in capsys.readouterr().err


def test_diagnose_does_not_import_pymc():
    code = ("import sys, bayes_scaling.evaluate.checks, bayes_scaling.evaluate.nextrun; "
            "assert 'pymc' not in sys.modules and 'pytensor' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ slow: NUTS
SMALL_FIT = {"chains": 2, "draws": 300, "tune": 300, "calibrate": False, "retries": 0}


@pytest.mark.slow
def test_loo_prefers_the_broken_law_on_a_bent_ladder():
    from bayes_scaling.fitting.fit import fit

    runs = ladder("chinchilla_broken", BROKEN, seed=13, noise=0.005)
    plain = fit("chinchilla", runs, random_seed=1, **SMALL_FIT)
    res = dg.diagnose(plain, full=True, fit_kwargs=SMALL_FIT, random_seed=2)
    f = res.get("broken_law_loo")
    assert f["severity"] == "warning", f["message"]
    assert f["detail"]["loo"]["diff"] > 2 * f["detail"]["loo"]["se"]


@pytest.mark.slow
def test_same_slope_check_finds_a_planted_slope_difference():
    from bayes_scaling.fitting.fit import fit

    m = float(np.mean(np.log(np.repeat(SIZES, 5))))
    runs = ladder(seed=14, groups={"a": {}, "b": {"alpha": 0.1, "log_a": 0.1 * m}})
    shared = fit("chinchilla", runs, random_seed=3, **SMALL_FIT)
    pooled = fit("chinchilla_slopes", runs, random_seed=4, **SMALL_FIT)
    assert float(pooled.posterior["alpha"].min()) > 0  # exponents vary on the log scale
    f = dg.same_slope_check(shared, pooled)
    diffs = pd.DataFrame(f["detail"]["slope_differences"])
    alpha = diffs[diffs["param"] == "alpha"].iloc[0]
    assert alpha["lower"] > -0.25 and alpha["upper"] < 0  # a - b: about -0.1, excludes 0
    assert f["detail"]["loo"]["diff"] > 0
