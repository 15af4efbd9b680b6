"""The systematic (shared per refit) part of the discrepancy likelihood."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.calibrate import (
    KAPPA_GRID,
    TAU0_GRID,
    InnerBacktest,
    discrepancy_loglik,
    discrepancy_sd,
)


def _bt(rng, n_refits=4, per=5, bias=0.0, spread=0.01):
    """Rolling-origin errors: each refit off by a common ``bias`` draw, plus ``spread`` noise."""
    dist = np.tile(np.linspace(0.1, 1.0, per), n_refits)
    ids = np.repeat(np.arange(n_refits), per)
    shift = rng.normal(0.0, bias, n_refits)[ids] * dist if bias else 0.0
    res = shift + rng.normal(0.0, spread, dist.size)
    return InnerBacktest(res, dist, 0.004, n_refits, 1e-6, ids, {"hull_compute": dist},
                         np.full(dist.size, "c"))


@pytest.mark.parametrize("shared", [0.0, 0.3, 0.8])
def test_the_likelihood_is_the_joint_normal_of_each_refit(shared):
    """Against the dense multivariate normal density, at a few grid points.

    Planted faults it catches: dropping the rank-one update (shared > 0 treated as independent)
    or not removing the shared part from the diagonal.
    """
    bt = _bt(np.random.default_rng(1), bias=0.03)
    ll = discrepancy_loglik(bt, shared)
    for i, j in [(0, 0), (40, 10), (200, 300), (120, 57)]:
        d = discrepancy_sd(bt.distances, TAU0_GRID[i], KAPPA_GRID[j]) ** 2
        base = bt.noise_scale**2 + bt.law_var
        total = 0.0
        for r in np.unique(bt.refit):
            m = bt.refit == r
            cov = np.diag(base + (1 - shared) * d[m]) + shared * np.outer(np.sqrt(d[m]),
                                                                         np.sqrt(d[m]))
            total += stats.multivariate_normal(np.zeros(m.sum()), cov).logpdf(bt.residuals[m])
        const = -0.5 * bt.residuals.size * np.log(2 * np.pi)
        assert ll[i, j] + const == pytest.approx(total, rel=1e-9, abs=1e-9)
    if shared > 0:  # the independent likelihood differs (the test can fail)
        assert not np.allclose(ll, discrepancy_loglik(bt, 0.0))


def test_a_shared_term_needs_refit_indices():
    bt = _bt(np.random.default_rng(0))
    bare = InnerBacktest(bt.residuals, bt.distances, bt.noise_scale, bt.n_refits)
    with pytest.raises(BayesScalingError, match="refit index"):
        discrepancy_loglik(bare, 0.5)
    assert discrepancy_loglik(bare, 0.0).shape == (TAU0_GRID.size, KAPPA_GRID.size)
