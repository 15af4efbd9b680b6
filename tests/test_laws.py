"""Properties of the laws and their inverses (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.laws import final_loss as laws
from bayes_scaling.query.allocate import numeric_optimal
from bayes_scaling.testing import to_sampling

P = PUBLISHED["hoffmann2022"]
K = PUBLISHED["kaplan2020"]
sizes = st.floats(1e6, 1e12)
tokens = st.floats(1e8, 1e14)


@given(n=sizes, d=tokens)
def test_log_form_equals_natural_form(n, d):
    th = to_sampling("chinchilla", P)
    assert np.exp(laws.log_chinchilla(np.log(n), np.log(d), **th)) == pytest.approx(
        laws.chinchilla(n, d, **P), rel=1e-12)
    kt = to_sampling("kaplan", K)
    assert np.exp(laws.log_kaplan(np.log(n), np.log(d), **kt)) == pytest.approx(
        laws.kaplan(n, d, **K), rel=1e-10)


@given(n=sizes, d=tokens)
def test_tokens_needed_inverts_the_law(n, d):
    target = laws.chinchilla(n, d, **P)
    assert laws.chinchilla_tokens_needed(n, target, **P) == pytest.approx(d, rel=1e-6)


@given(n=sizes, d=tokens)
def test_kaplan_tokens_needed_inverts_the_law(n, d):
    target = laws.kaplan(n, d, **K)
    assert laws.kaplan_tokens_needed(n, target, **K) == pytest.approx(d, rel=1e-5)


@given(n=sizes, gap=st.floats(1e-9, 0.5))
def test_targets_below_the_floor_are_unreachable(n, gap):
    floor = P["e"] + P["a"] / n ** P["alpha"]
    assert np.isinf(laws.chinchilla_tokens_needed(n, floor - gap, **P))


@given(n=sizes, d1=tokens, d2=tokens)
def test_loss_decreases_with_data(n, d1, d2):
    lo, hi = sorted((d1, d2))
    assert laws.chinchilla(n, hi, **P) <= laws.chinchilla(n, lo, **P)


@settings(max_examples=50)
@given(c=st.floats(1e18, 1e27), law=st.sampled_from(["chinchilla", "kaplan", "kaplan_e"]))
def test_closed_form_optimum_matches_numerical_search(c, law):
    params = {"chinchilla": P, "kaplan": K, "kaplan_e": {**K, "e": 1.5}}[law]
    th = to_sampling(law, params)
    spec = laws.LAWS[law]
    n_cf, d_cf = spec.optimal(c, **laws.natural(th))
    n_num, _ = numeric_optimal(spec, np.asarray(c), {k: np.asarray(v) for k, v in th.items()})
    assert n_num == pytest.approx(n_cf, rel=1e-4)
    assert 6 * n_cf * d_cf == pytest.approx(c, rel=1e-9)


@given(c=st.floats(1e18, 1e27))
def test_chinchilla_optimum_is_a_minimum_on_the_isoflop_curve(c):
    n_opt, d_opt = laws.chinchilla_optimal(c, **P)
    best = laws.chinchilla(n_opt, d_opt, **P)
    for f in (0.8, 1.25):
        assert laws.chinchilla(n_opt * f, d_opt / f, **P) >= best


def test_centring_is_an_exact_reparameterisation():
    th = to_sampling("chinchilla", P)
    centre = {"n": 20.0, "d": 24.0}
    law = laws.LAWS["chinchilla"]
    centred = law.centre(th, centre)
    x = {"n": np.log(3e9) - 20.0, "d": np.log(6e10) - 24.0}
    assert law.evaluate_log(x, centred) == pytest.approx(
        law.evaluate_log({"n": np.log(3e9), "d": np.log(6e10)}, th), rel=1e-12)
    assert law.uncentre(centred, centre) == pytest.approx(th)


def test_published_compute_optimal_exponent():
    a = P["beta"] / (P["alpha"] + P["beta"])
    n1, _ = laws.chinchilla_optimal(1e21, **P)
    n2, _ = laws.chinchilla_optimal(1e23, **P)
    assert np.log(n2 / n1) / np.log(100) == pytest.approx(a)
