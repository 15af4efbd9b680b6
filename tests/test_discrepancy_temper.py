"""The ladder's own (tau0, kappa) evidence tempered to one observation per refit under a per-kind
cross-ladder prior (``temper=True``; candidate K of ``benchmarks/CRITERIA_s13_i15.md``, an
option: the shipped prior is untempered)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import DISTANCE
from bayes_scaling.fitting.calibrate import (
    InnerBacktest,
    _grid_mean,
    attach_discrepancy,
    discrepancy_posterior_parts,
)
from bayes_scaling.fitting.discrepancy_prior import DiscrepancyPrior
from bayes_scaling.testing import fake_fit

P = PUBLISHED["hoffmann2022"]


def _bt(kappa: float, seed: int, per_refit: int = 12) -> InnerBacktest:
    """Three budget and three size refits, ``per_refit`` errors each, of sd ``kappa * a``."""
    rng = np.random.default_rng(seed)
    a = np.tile(np.linspace(0.1, 0.5, per_refit), 6)
    split = np.repeat(list("cccnnn"), per_refit)
    sc, sh = np.where(split == "c", a, 0.0), np.where(split == "n", a, 0.0)
    kinds = {"scale": sc, "shape": sh, DISTANCE: np.hypot(sc, sh)}
    return InnerBacktest(rng.normal(0, kappa * a), kinds[DISTANCE], 0.001, 6, 0.0,
                         np.repeat(np.arange(6), per_refit), kinds, split)


@pytest.mark.parametrize("own", [0.005, 0.15])
def test_tempered_own_evidence_sits_between_the_own_and_the_population_either_way(own):
    """Two-sided: a ladder whose own kappa is far below or far above the population's
    (0.03) gets, tempered, a posterior kappa between its untempered one and the population's,
    in both parts; 72 errors in 6 refits count as 6 observations, so it moves well toward
    the population (at least a quarter of the way)."""
    base = DiscrepancyPrior(np.log(0.005), 0.5, np.log(0.03), 0.5, temper=False)
    prior = base.with_shape(base)
    bt = _bt(own, seed=1)
    untempered = discrepancy_posterior_parts(bt, prior)
    tempered = discrepancy_posterior_parts(bt, dataclasses.replace(prior, temper=True))
    pop = np.exp(prior.log_kappa_mu)
    for part in ("scale", "shape"):
        k_u, k_t = _grid_mean(untempered[part])[1], _grid_mean(tempered[part])[1]
        lo, hi = sorted((k_u, pop))
        assert lo < k_t < hi
        assert abs(k_t - k_u) > 0.25 * abs(pop - k_u)


def test_attach_with_a_tempered_prior_stores_the_tempered_kappa():
    """``attach_discrepancy`` under a tempered per-kind prior draws kappa from the tempered
    posterior (its mean within the draws' Monte Carlo error of the grid mean)."""
    fit = fake_fit("chinchilla", P, spread=1e-6, sigma=1e-4, draws=2000)
    base = DiscrepancyPrior(np.log(0.005), 0.5, np.log(0.03), 0.5, temper=True)
    prior, bt = base.with_shape(base), _bt(0.15, seed=2)
    cal = attach_discrepancy(fit, random_seed=0, prior=prior, backtest=bt)
    want = _grid_mean(discrepancy_posterior_parts(bt, prior)["scale"])[1]
    assert cal.meta["calibration"]["kappa_mean"] == pytest.approx(want, abs=0.004)
    untempered = attach_discrepancy(fit, random_seed=0, backtest=bt,
                                    prior=dataclasses.replace(prior, temper=False))
    assert untempered.meta["calibration"]["kappa_mean"] > want + 0.02
