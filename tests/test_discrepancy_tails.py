"""The discrepancy's shape (``benchmarks/CRITERIA_s13_i15.md``, candidate S): a variance-matched
Student-t as a scale mixture of normals, its ``nu`` learned across ladders
(:mod:`bayes_scaling.fitting.tails`), an option of ``attach_discrepancy`` read by ``predict``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import DISTANCE, discrepancy_var
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.calibrate import (
    KAPPA_GRID,
    TAU0_GRID,
    InnerBacktest,
    attach_discrepancy,
)
from bayes_scaling.fitting.discrepancy_prior import DiscrepancyPrior
from bayes_scaling.fitting.tails import (
    NU_VAR,
    TailTerms,
    fit_nu,
    mixing_draws,
    mixing_nodes,
    tail_draws,
    tail_terms,
)
from bayes_scaling.query.predict import fit_box, flat, log_loss_draws
from bayes_scaling.testing import fake_fit

P = PUBLISHED["hoffmann2022"]


def test_mixing_nodes_are_the_variance_matched_student_t():
    """The 64-node mixture of N(0, lambda) has variance ~1 and the CDF of a unit-variance t;
    Normal (``inf``) is one node at 1; ``nu <= 2`` (no variance) is refused."""
    for nu in (2.5, 3.0, 4.0, 10.0):
        lam, wt = mixing_nodes(nu)
        assert wt.sum() == pytest.approx(1.0, rel=1e-12) and wt @ lam == pytest.approx(1.0)
        s = np.sqrt((nu - 2) / nu)
        for q in (0.3, 1.0, 2.0, 4.0):
            mix = wt @ stats.norm.cdf(q / np.sqrt(lam))
            assert mix == pytest.approx(stats.t.cdf(q / s, nu), abs=2e-3)
    np.testing.assert_array_equal(mixing_nodes(np.inf), ([1.0], [1.0]))
    with pytest.raises(BayesScalingError, match="exceed 2"):
        mixing_nodes(2.0)
    assert tail_draws(np.inf, (2, 3)) == {} and tail_draws(None, (2, 3)) == {}
    np.testing.assert_array_equal(tail_draws(4.0, (2, 3))[NU_VAR], np.full((2, 3), 4.0))
    with pytest.raises(BayesScalingError, match="exceed 2"):
        tail_draws(1.5, (2, 3))


def _ladders(rng, nu: float, n_ladders: int = 5, n: int = 300) -> list[TailTerms]:
    """Errors = N(0, base) + a variance-matched t_nu discrepancy of variance D (inf: Normal)."""
    out = []
    for _ in range(n_ladders):
        base = np.full(n, 1e-4)
        dvar = rng.uniform(2e-4, 2e-3, n)
        lam = 1.0 if np.isinf(nu) else (nu - 2) / rng.chisquare(nu, n)
        r = rng.normal(0, np.sqrt(base)) + rng.normal(0, np.sqrt(lam * dvar))
        out.append(TailTerms(r, base, dvar))
    return out


@pytest.mark.parametrize("nu", [4.0, np.inf])
def test_fit_nu_recovers_the_tails_either_way(nu):
    """Two-sided: heavy-tailed (t_4) errors give a nu of 3-6; Normal ones a nu of 20 or more."""
    got = fit_nu(_ladders(np.random.default_rng(3), nu))
    if np.isinf(nu):
        assert got >= 20
    else:
        assert 3.0 <= got <= 6.0
    with pytest.raises(BayesScalingError, match="at least one"):
        fit_nu([])


def test_tail_terms_use_the_posterior_mean_variance_and_remove_the_drift():
    """``D`` is linear in tau0^2 and kappa^2, so a posterior split over two kappa cells gives
    the mean of kappa^2 (not the square of the mean); the drift's mean is subtracted."""
    far = {"scale": np.array([0.1, 0.3, 0.0]), "shape": np.array([0.0, 0.2, 0.4])}
    w = np.zeros((TAU0_GRID.size, KAPPA_GRID.size))
    i, j1, j2 = 20, 10, 50  # tau0 0.01, kappa 0.01 or 0.05, equal weight
    w[i, j1] = w[i, j2] = 0.5
    one = np.zeros_like(w)
    one[i, j1] = 1.0
    t = tail_terms(np.array([0.01, 0.02, 0.03]), 1e-4, far, (TAU0_GRID, KAPPA_GRID),
                   {"scale": w, "shape": one}, drift=(0.05, -0.1))
    k2 = np.sqrt((KAPPA_GRID[j1] ** 2 + KAPPA_GRID[j2] ** 2) / 2)
    want = discrepancy_var(far, TAU0_GRID[i], k2, TAU0_GRID[i], KAPPA_GRID[j1])
    np.testing.assert_allclose(t.disc_var, want, rtol=1e-12)
    np.testing.assert_allclose(t.resid, [0.01 - 0.005, 0.02 - 0.015 + 0.02, 0.03 + 0.04],
                               rtol=1e-12)
    np.testing.assert_array_equal(t.base_var, np.full(3, 1e-4))


def _bt() -> InnerBacktest:
    rng = np.random.default_rng(0)
    a = np.tile([0.1, 0.2, 0.3], 4)
    split = np.repeat(["c", "c", "n", "n"], 3)
    sc, sh = np.where(split == "c", a, 0.0), np.where(split == "n", a, 0.0)
    kinds = {"scale": sc, "shape": sh, DISTANCE: np.hypot(sc, sh)}
    return InnerBacktest(rng.normal(0, 0.01, 12), kinds[DISTANCE], 0.002, 4, 0.0,
                         np.repeat(np.arange(4), 3), kinds, split)


def test_attach_with_tails_records_nu_and_predict_reads_it():
    """``tails=True`` stores the prior's ``nu`` and ``log_loss_draws`` mixes the discrepancy:
    at a far point the 50% band narrows and the 99% band widens against the Normal one, with
    the variance kept; without ``nu`` (or ``tails``) the draws are today's to the last digit."""
    fit = fake_fit("chinchilla", P, spread=1e-6, sigma=1e-4, draws=2000)
    weak = DiscrepancyPrior(np.log(0.01), 1.5, np.log(0.03), 1.5, temper=False)
    prior = dataclasses.replace(weak.with_shape(weak), nu=3.0)
    t = attach_discrepancy(fit, random_seed=1, prior=prior, backtest=_bt(), tails=True)
    off = attach_discrepancy(fit, random_seed=1, prior=prior, backtest=_bt())
    none = attach_discrepancy(fit, random_seed=1, prior=dataclasses.replace(prior, nu=None),
                              backtest=_bt(), tails=True)
    assert t.meta["calibration"]["tails"] == 3.0
    assert off.meta["calibration"]["tails"] is None and none.meta["calibration"]["tails"] is None
    assert np.all(flat(t.posterior[NU_VAR]) == 3.0) and NU_VAR not in off.posterior
    box = fit_box(fit)
    n, d = np.array([10 ** (box.n[1] + 0.5)]), np.array([10 ** (box.d[1] + 0.5)])

    def draws(f):
        return log_loss_draws(f, n, d, group=None, band="predictive",
                              rng=np.random.default_rng(5))[:, 0]

    np.testing.assert_array_equal(draws(off), draws(none))
    x, y = draws(t), draws(off)
    x, y = x - np.median(x), y - np.median(y)

    def width(v, p):
        return np.subtract(*np.quantile(v, [(1 + p) / 2, (1 - p) / 2]))

    assert width(x, 0.5) < 0.85 * width(y, 0.5)
    assert width(x, 0.5) / width(x, 0.99) < 0.8 * width(y, 0.5) / width(y, 0.99)
    assert np.var(x) == pytest.approx(np.var(y), rel=0.35)  # t_3's variance converges slowly
    lam = mixing_draws(np.full(4000, 3.0), np.random.default_rng(0))
    assert lam.shape == (4000, 1) and np.median(lam) < 0.6
    rng = np.random.default_rng(0)
    assert mixing_draws(None, rng) == 1.0
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn
