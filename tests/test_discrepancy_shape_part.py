"""Candidate P (``benchmarks/CRITERIA_s13_i15.md``, addendum 3): the pinned Student-t on the
shape (hull) part of the discrepancy only, the scale (compute) part Normal
(``DiscrepancyPrior.nu_part = "shape"``; :mod:`bayes_scaling.fitting.tails`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import decades_outside, discrepancy_var
from bayes_scaling.errors import BayesScalingError, QueryError
from bayes_scaling.evaluate.drawset import draw_set
from bayes_scaling.fitting.calibrate import attach_discrepancy
from bayes_scaling.fitting.discrepancy_prior import DiscrepancyPrior
from bayes_scaling.fitting.tails import PART_VAR, TailTerms, fit_nu, lambda_scale, tail_draws
from bayes_scaling.query.predict import discrepancy_scale, fit_box, log_loss_draws
from bayes_scaling.testing import fake_fit
from tests.test_discrepancy_pinned import _bt

P = PUBLISHED["hoffmann2022"]


def test_shape_factor_scales_the_shape_part_only():
    """``discrepancy_var(..., shape_factor=f)`` is ``scale part + f * shape part``: 1 gives
    today's variance, a pure compute point ignores ``f``, a pure hull point scales by it."""
    pts = {"scale": np.array([0.0, 0.7, 0.4, 2.5]), "shape": np.array([0.8, 0.0, 0.3, 1.2])}
    args = (0.02, 0.03, 0.05, 0.04)
    full = discrepancy_var(pts, *args)
    np.testing.assert_allclose(discrepancy_var(pts, *args, shape_factor=1.0), full, rtol=1e-12)
    zero = discrepancy_var(pts, *args, shape_factor=0.0)
    for f in (0.3, 4.0):
        got = discrepancy_var(pts, *args, shape_factor=f)
        np.testing.assert_allclose(got, zero + f * (full - zero), rtol=1e-12)
        assert got[0] == pytest.approx(f * full[0], rel=1e-12)  # hull only
        assert got[1] == pytest.approx(full[1], rel=1e-12)  # compute only
        assert np.all((got[2:] - full[2:]) * (f - 1) > 0)  # both parts: moves with f
        assert abs(got[2] - f * full[2]) > 1e-6
    with pytest.raises(ValueError, match="per kind"):
        discrepancy_var(np.array([1.0]), 0.02, 0.03, shape_factor=2.0)
    assert PART_VAR in tail_draws(1.5, (2, 3), pinned=True, part="shape")
    assert PART_VAR not in tail_draws(1.5, (2, 3), pinned=True)
    with pytest.raises(BayesScalingError, match="one of all, shape"):
        tail_draws(1.5, (2, 3), pinned=True, part="scale")


def _mixed(rng, heavy: str, nu: float = 1.5, n: int = 400) -> list[TailTerms]:
    """Half the errors pure compute, half pure hull; the pinned t_nu on ``heavy``'s part."""
    out = []
    for _ in range(4):
        base = np.full(n, 1e-4)
        dv = rng.uniform(5e-4, 3e-3, n)
        hull = np.arange(n) % 2 == 0
        lam = lambda_scale(nu, True) / rng.chisquare(nu, n)
        t_on = hull if heavy == "shape" else ~hull
        r = rng.normal(0, np.sqrt(base)) + rng.normal(0, np.sqrt(np.where(t_on, lam, 1.0) * dv))
        out.append(TailTerms(r, base, dv, np.where(hull, dv, 0.0)))
    return out


@pytest.mark.parametrize("heavy", ["shape", "scale"])
def test_fit_nu_reads_the_shape_part_only(heavy):
    """Two-sided: a pinned t_1.5 on the hull errors gives a nu of 1-2; the same t on the
    compute errors instead (the hull ones Normal) gives 20 or more, since the shape part's
    mixture cannot reach the compute errors."""
    got = fit_nu(_mixed(np.random.default_rng(7), heavy), pinned=True)
    assert (1.0 <= got <= 2.0) if heavy == "shape" else got >= 20


@pytest.fixture(scope="module")
def fits():
    fit = fake_fit("chinchilla", P, spread=1e-6, sigma=1e-4, draws=2000)
    tight = DiscrepancyPrior(np.log(0.01), 0.02, np.log(0.03), 0.02, temper=False)
    q = dataclasses.replace(tight.with_shape(tight), nu=1.5, nu_pinned=True)
    made = {k: attach_discrepancy(fit, random_seed=1, prior=pr, backtest=_bt(), tails=True)
            for k, pr in (("P", dataclasses.replace(q, nu_part="shape")), ("Q", q))}
    made["off"] = attach_discrepancy(fit, random_seed=1, prior=q, backtest=_bt())
    return fit, made


def test_the_shape_part_t_is_q_off_the_hull_and_normal_along_it(fits):
    """Predictive draws (common random numbers): at a point scaled up along the runs' ratio
    (no hull part) P's are the Normal fit's; at a point off the hull within the budget (no
    compute part) they are Q's; with both parts (compute the larger), P's 99% band lies between
    the Normal's and Q's. The next-run
    ranking refuses P with a QueryError."""
    fit, f = fits
    box = fit_box(fit)
    n = 10 ** np.array([box.n[1] + 0.5, box.n[1], box.n[1] + 0.5])
    d = 10 ** np.array([box.d[1] + 0.5, box.d[0] - 1.5, box.d[1] + 1.5])
    far = decades_outside(box, n, d)
    assert far["shape"][0] == 0 and far["scale"][0] > 0.5
    assert far["scale"][1] == 0 and far["shape"][1] > 0.5
    assert far["scale"][2] > 0.3 and far["shape"][2] > 0.3
    assert f["P"].meta["calibration"][f"{PART_VAR}_mean"] == 1.0
    law = log_loss_draws(f["off"], n, d, group=None, band="law", rng=np.random.default_rng(5))
    x = {k: log_loss_draws(v, n, d, group=None, band="predictive",
                           rng=np.random.default_rng(5)) - law for k, v in f.items()}
    np.testing.assert_allclose(x["P"][:, 0], x["off"][:, 0], rtol=1e-9)
    np.testing.assert_allclose(x["P"][:, 1], x["Q"][:, 1], rtol=1e-9)
    assert not np.allclose(x["P"][:, 0], x["Q"][:, 0], rtol=1e-3)
    assert not np.allclose(x["P"][:, 1], x["off"][:, 1], rtol=1e-3)

    def width(v, p):
        return np.subtract(*np.quantile(v, [(1 + p) / 2, (1 - p) / 2]))

    w = {k: width(v[:, 2], 0.99) for k, v in x.items()}  # a point with both parts
    assert w["off"] < w["P"] < w["Q"]
    # the backtest, contrast and risk report read the variance through discrepancy_scale(lam)
    sd0 = discrepancy_scale(f["off"], far)[:, :2]
    lam = np.where(np.arange(sd0.shape[0]) % 2 == 0, 0.0, 3.0)[:, None]
    sd = discrepancy_scale(f["P"], far, lam)[:, :2]
    np.testing.assert_allclose(sd[:, 0], sd0[:, 0], rtol=1e-12)
    np.testing.assert_allclose(sd[:, 1], np.sqrt(lam[:, 0]) * sd0[:, 1], rtol=1e-12)
    with pytest.raises(QueryError, match="shape part"):
        draw_set(f["P"], random_seed=0)
