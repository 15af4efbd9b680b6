"""Hierarchical stacking (evaluate/hierstack.py): decisive rows take the ladder's own weights,
flat rows the population's, the Laplace marginal matches quadrature, and empirical Bayes tells
alike ladders (small sigma) from differing ones (large sigma); the forward option (H2) learns
sigma from whether a ladder's departure from the population holds one budget further out.
Fast: no fitting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate, special

from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate import hierstack as hs
from bayes_scaling.evaluate.stacking import forward_split, stacking_weights

CROSS = np.array([0.1, 0.3, 0.6])  # the population favours family 2
MU = hs.population_mu(CROSS)


def _two_kinds(n0: int, n1: int, gap: float = 2.0, k: int = 2) -> np.ndarray:
    """Rows where family 0 is better by ``gap`` nats (``n0``) or family 1 is (``n1``)."""
    a = np.full((n0, k), -gap)
    a[:, 0] = 0.0
    b = np.full((n1, k), -gap)
    b[:, 1] = 0.0
    return np.vstack([a, b])


def test_the_population_mu_is_the_centred_log_of_the_cross_weights():
    assert special.softmax(MU) == pytest.approx(CROSS, abs=1e-12)
    assert MU.sum() == pytest.approx(0.0, abs=1e-12)
    assert hs.basis(3).T @ hs.basis(3) == pytest.approx(np.eye(2), abs=1e-12)
    assert hs.basis(3).sum(axis=0) == pytest.approx(np.zeros(2), abs=1e-12)


def test_flat_rows_take_the_population_weights():
    # every family predicts every run alike: no evidence, the population's weights exactly
    lpd = np.tile(np.array([[1.3], [-0.4], [2.2]]), (10, 3))
    assert hs.hier_weights(lpd, MU, 1.4) == pytest.approx(CROSS, abs=1e-8)
    assert hs.hier_weights(np.zeros((0, 3)), MU, 1.4) == pytest.approx(CROSS, abs=1e-12)


def test_decisive_rows_take_the_ladders_own_weights():
    # 200 runs, family 0 better by 4 nats on each: own stacking puts ~all weight on it, and
    # so does the hierarchical posterior, against a population that gives it 0.1
    lpd = np.tile([0.0, -4.0, -4.0], (200, 1))
    own = stacking_weights(lpd)
    assert own[0] > 0.99
    w = hs.hier_weights(lpd, MU, 1.4)
    assert w[0] > 0.95 and np.abs(w - own).max() < 0.05


def test_moderate_rows_are_shrunk_toward_the_population_more_as_sigma_falls():
    lpd = np.tile([0.0, -0.5, -0.5], (8, 1))  # some evidence for family 0
    w0 = [hs.hier_weights(lpd, MU, s)[0] for s in (0.01, 0.3, 1.0, 3.0, 30.0)]
    own = stacking_weights(lpd)[0]
    assert w0[0] == pytest.approx(CROSS[0], abs=0.01)  # tiny sigma: the population's
    assert all(a < b for a, b in itertools.pairwise(w0))  # monotone in sigma
    assert CROSS[0] + 0.05 < w0[2] < own - 0.05  # in between at a moderate sigma
    assert w0[-1] == pytest.approx(own, abs=0.03)  # huge sigma: the own weights


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_the_laplace_marginal_matches_quadrature(sigma):
    # two families: one free dimension, the integral by quadrature; 120 runs make the
    # posterior close to Normal, so Laplace should be within a few hundredths of a nat
    rng = np.random.default_rng(3)
    lpd = np.column_stack([rng.normal(0.2, 1.0, 120), rng.normal(0.0, 1.0, 120)])
    mu = hs.population_mu([0.3, 0.7])
    b = hs.basis(2)[:, 0]
    rel = lpd - lpd.max(axis=1, keepdims=True)

    def f(u: float) -> float:
        w = special.softmax(mu + b * u)
        return float(np.exp(np.sum(np.log(np.exp(rel) @ w)) + 60.0
                            - 0.5 * u * u / sigma**2) / np.sqrt(2 * np.pi) / sigma)

    exact = np.log(integrate.quad(f, -30, 30, limit=400, points=[0.0])[0]) - 60.0
    assert hs.log_marginal(lpd, mu, sigma) == pytest.approx(exact, abs=0.05)


def test_empirical_bayes_sigma_tells_alike_ladders_from_differing_ones():
    mu = np.zeros(2)
    alike = [_two_kinds(20, 20) for _ in range(6)]           # every ladder: own weights 1/2
    differ = [_two_kinds(36, 4) if i % 2 else _two_kinds(4, 36) for i in range(6)]
    s_alike, s_differ = hs.fit_sigma(alike, mu), hs.fit_sigma(differ, mu)
    assert s_alike < 0.2 < 1.0 < s_differ
    assert hs.SIGMA_GRID[0] <= s_alike and s_differ <= hs.SIGMA_GRID[-1]


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(BayesScalingError, match="at least 2 families"):
        hs.hier_weights(np.zeros((4, 1)), np.zeros(1), 1.0)
    with pytest.raises(BayesScalingError, match="sigma must be positive"):
        hs.hier_weights(np.zeros((4, 3)), MU, 0.0)
    with pytest.raises(BayesScalingError, match="no ladder with held-out rows"):
        hs.fit_sigma([np.zeros((0, 3))], MU)


# ------------------------------------------------------------------ forward sigma (H2)
def _forward_ladders(holds: bool, n: int = 5) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Earlier rows favour family 0 (the population gives it 0.1); the later rows favour it
    too (``holds``) or the population's favourite, family 2. Rows differ a little per ladder."""
    rng = np.random.default_rng(11)
    earlier, later = [], []
    for _ in range(n):
        e = np.tile([0.0, -1.5, -1.5], (12, 1)) + rng.normal(0, 0.2, (12, 3))
        late = [0.0, -1.5, -1.5] if holds else [-1.5, -1.5, 0.0]
        earlier.append(e)
        later.append(np.tile(late, (10, 1)) + rng.normal(0, 0.2, (10, 3)))
    return earlier, later


def test_forward_sigma_is_large_only_when_own_departures_hold_forward():
    e_hold, l_hold = _forward_ladders(True)
    e_not, l_not = _forward_ladders(False)
    s_hold, s_not = hs.fit_sigma(e_hold, MU, l_hold), hs.fit_sigma(e_not, MU, l_not)
    assert s_not < 0.2 < 1.0 < s_hold
    # the marginal evidence (H1) sees only the decisive earlier rows: large sigma both ways
    assert hs.fit_sigma(e_not, MU) > 1.0


def test_forward_score_scores_weights_from_the_earlier_rows_on_the_later_rows_only():
    e, late = _forward_ladders(False, 1)
    e, late = e[0], late[0]
    for sigma in (0.1, 3.0):
        w = hs.hier_weights(e, MU, sigma)
        rel = late - late.max(axis=1, keepdims=True)
        want = float(np.sum(np.log(np.exp(rel) @ w)))
        assert hs.forward_score(e, late, MU, sigma) == pytest.approx(want, abs=1e-9)
    # later rows favour the population's family: its weights score better than own departures
    assert hs.forward_score(e, late, MU, 0.01) > hs.forward_score(e, late, MU, 30.0) + 5


def test_forward_split_takes_the_earlier_origins_one_step_rows_and_the_later_origins():
    # origin 2 predicts budgets 1 and 0, origin 1 budget 0, origin 3 (ignored) budgets 2-0
    top = np.array([2, 2, 2, 1, 1, 3, 3])
    flops = np.array([1e20, 1e21, 1e20, 1e21, 1e21, 1e19, 1e21])
    a, b = forward_split(top, flops)
    assert a.tolist() == [True, False, True, False, False, False, False]
    assert b.tolist() == [False, False, False, True, True, False, False]
    a, b = forward_split(top[top == 1], flops[top == 1])
    assert not a.any() and not b.any()


def test_forward_sigma_refuses_mismatched_or_empty_ladders():
    e, late = _forward_ladders(True, 2)
    with pytest.raises(BayesScalingError, match="2 ladders' earlier rows but 1"):
        hs.fit_sigma(e, MU, late[:1])
    with pytest.raises(BayesScalingError, match="no ladder with held-out rows"):
        hs.fit_sigma(e, MU, [np.zeros((0, 3)), np.zeros((0, 3))])
