"""Queries on fake fits (no sampler): shapes, bands, groups, inverses and error messages."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import QueryError
from bayes_scaling.laws import final_loss as laws
from bayes_scaling.query.allocate import compute_optimal, optimal_exponents
from bayes_scaling.query.predict import predict_loss, tokens_needed
from bayes_scaling.testing import fake_fit

P = PUBLISHED["hoffmann2022"]


def test_law_band_is_centred_on_the_published_law(chinchilla_fake):
    res = predict_loss(chinchilla_fake, [1e9, 7e10], [2e10, 1.4e12], band="law", random_seed=0)
    expected = laws.chinchilla(np.array([1e9, 7e10]), np.array([2e10, 1.4e12]), **P)
    assert res.summary["median"].to_numpy() == pytest.approx(expected, rel=5e-3)
    assert res.draws.dims == ("chain", "draw", "point")
    assert res.band == "law" and set(res.summary["band"]) == {"law"}
    assert (res.summary["lower"] < res.summary["median"]).all()
    assert (res.summary["median"] < res.summary["upper"]).all()


def test_predictive_band_is_wider_than_the_law_band(chinchilla_fake):
    law = predict_loss(chinchilla_fake, 1e9, 2e10, band="law", random_seed=0).summary.iloc[0]
    pred = predict_loss(chinchilla_fake, 1e9, 2e10, band="predictive",
                        random_seed=0).summary.iloc[0]
    assert pred["upper"] - pred["lower"] > 2 * (law["upper"] - law["lower"])


def test_intervals_are_nested(chinchilla_fake):
    s = predict_loss(chinchilla_fake, 1e9, 2e10, random_seed=0).summary.iloc[0]
    assert s["lo_95"] <= s["lo_90"] <= s["lo_80"] <= s["lo_50"] <= s["median"]
    assert s["median"] <= s["hi_50"] <= s["hi_80"] <= s["hi_90"] <= s["hi_95"]


def test_same_seed_same_draws(chinchilla_fake):
    a = predict_loss(chinchilla_fake, 7e10, 1.4e12, random_seed=3).draws.values
    b = predict_loss(chinchilla_fake, 7e10, 1.4e12, random_seed=3).draws.values
    c = predict_loss(chinchilla_fake, 7e10, 1.4e12, random_seed=4).draws.values
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_discrepancy_widens_with_extrapolation():
    fit = fake_fit("chinchilla", P, extra={"kappa": 0.05, "tau0": 0.01})
    near = predict_loss(fit, 3e9, 6e10, random_seed=0).summary.iloc[0]
    far = predict_loss(fit, 3e11, 6e12, random_seed=0).summary.iloc[0]
    assert np.log(far["upper"] / far["lower"]) > 3 * np.log(near["upper"] / near["lower"])


def test_tokens_needed_inverts_prediction(chinchilla_fake):
    target = float(laws.chinchilla(7e10, 1.4e12, **P))
    res = tokens_needed(chinchilla_fake, 7e10, target, random_seed=0)
    row = res.summary.iloc[0]
    assert row["median"] == pytest.approx(1.4e12, rel=0.05)
    assert row["p_unreachable"] == 0.0


def test_unreachable_target_is_reported(chinchilla_fake):
    floor = P["e"] + P["a"] / 7e10 ** P["alpha"]
    res = tokens_needed(chinchilla_fake, 7e10, floor - 0.05)
    row = res.summary.iloc[0]
    assert row["p_unreachable"] == 1.0 and np.isinf(row["median"])
    assert any("unreachable" in w for w in res.warnings)
    assert res.to_records()[0]["median"] == "inf"


def test_compute_optimal_matches_closed_form(chinchilla_fake):
    res = compute_optimal(chinchilla_fake, 5.88e23, random_seed=0)
    s = res.summary.set_index("quantity")
    n_opt, d_opt = laws.chinchilla_optimal(5.88e23, **P)
    assert s.loc["n_opt", "median"] == pytest.approx(n_opt, rel=0.02)
    assert s.loc["d_opt", "median"] == pytest.approx(d_opt, rel=0.02)
    assert s.loc["tokens_per_param", "median"] == pytest.approx(d_opt / n_opt, rel=0.04)
    num = compute_optimal(chinchilla_fake, 5.88e23, method="numeric", random_seed=0)
    assert num.summary.set_index("quantity").loc["n_opt", "median"] == pytest.approx(
        n_opt, rel=0.02)


def test_optimal_exponent(chinchilla_fake):
    a = optimal_exponents(chinchilla_fake)["a"]
    assert np.median(a) == pytest.approx(P["beta"] / (P["alpha"] + P["beta"]), abs=0.01)


def test_groups_and_new_group():
    fit = fake_fit("chinchilla", P, groups=("web", "code"))
    with pytest.raises(QueryError, match="choose one"):
        predict_loss(fit, 1e9, 2e10)
    with pytest.raises(QueryError, match="unknown group"):
        predict_loss(fit, 1e9, 2e10, group="books")
    seen = predict_loss(fit, 1e9, 2e10, group="web", band="law", random_seed=0).summary.iloc[0]
    new = predict_loss(fit, 1e9, 2e10, group="new", band="law", random_seed=0).summary.iloc[0]
    assert new["upper"] - new["lower"] > seen["upper"] - seen["lower"]


@pytest.mark.parametrize("bad", [[-1.0], [0.0], [np.nan], ["x"]])
def test_bad_query_values(chinchilla_fake, bad):
    with pytest.raises(QueryError):
        predict_loss(chinchilla_fake, bad, [1e10])


def test_bad_interval_and_band(chinchilla_fake):
    with pytest.raises(QueryError, match="between 0 and 1"):
        predict_loss(chinchilla_fake, 1e9, 1e10, interval=1.5)
    with pytest.raises(QueryError, match="band"):
        predict_loss(chinchilla_fake, 1e9, 1e10, band="both")


def test_far_extrapolation_warns(chinchilla_fake):
    with pytest.warns(UserWarning, match="decades of compute"):
        res = predict_loss(chinchilla_fake, 1e13, 1e15)
    assert any("decades" in w for w in res.warnings)


def test_an_unseen_group_varies_where_the_model_draws_its_offsets():
    """With varying exponents (chinchilla_slopes) a new group's log A moves with its alpha:
    offsets live on the centred constants (log A - alpha m_N), as in the model."""
    import dataclasses

    import xarray as xr

    from bayes_scaling.laws.final_loss import LAWS
    from bayes_scaling.query.predict import flat, group_theta

    f = fake_fit("chinchilla_slopes", PUBLISHED["hoffmann2022"], groups=("a", "b", "c"))
    post = f.posterior.copy()
    for p in ("log_e", "log_a", "log_b", "beta"):
        post[f"{p}_tau"] = xr.zeros_like(post[f"{p}_tau"])
    post["alpha_tau"] = xr.full_like(post["alpha_tau"], 0.02)
    centre = {"n": float(np.mean(f.runs.log_n)), "d": float(np.mean(f.runs.log_d))}
    f = dataclasses.replace(f, idata=az.InferenceData(posterior=post),
                            meta={**f.meta, "centre": centre})
    law = LAWS["chinchilla"]
    new = group_theta(f, "new", rng=np.random.default_rng(1))
    pop = {p: flat(post[f"{p}_pop"]) for p in law.params}
    new_c, pop_c = law.centre(new, centre), law.centre(pop, centre)
    assert np.std(new["alpha"] - pop["alpha"]) > 0.01  # alpha moves ...
    np.testing.assert_allclose(new_c["log_a"], pop_c["log_a"], atol=1e-12)  # ... at fixed log A_c
    np.testing.assert_allclose(new["log_e"], pop["log_e"], atol=1e-12)
    # the spread of alpha is the recorded natural-scale tau (log-normal offsets, small sd)
    assert abs(np.std(np.log(new["alpha"] / pop["alpha"])) * np.mean(pop["alpha"]) - 0.02) < 3e-3
