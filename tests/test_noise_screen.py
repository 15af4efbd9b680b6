"""The session-12 noise screen (``benchmarks/noise_run_length.py``): its likelihood is the
model it states, each falling form reduces to constant noise at ``g = 0``, and its pick rule
is the one committed in ``benchmarks/CRITERIA_s12_i16.md``."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, "benchmarks")
from noise_candidates import hetero_marginal
from noise_run_length import FORMS, noise_scales, pick

SIGMA, G, SIGMA_E, SIGMA_C = 0.012, 0.8, 0.02, 0.007


def _design():
    """Three curves of 2-4 checkpoints, their run-length covariate, log steps, residuals."""
    rng = np.random.default_rng(20261207)
    idx = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    xc = np.array([-0.7, 0.1, 1.3])
    lx = np.log(np.array([100, 400, 50, 300, 900, 200, 800, 2000, 4000], float))
    return idx, xc, lx, 0.01 * rng.standard_normal(idx.size)


def _stated_sd(form: str, lx, ref, xc, idx, g: float = G):
    """The per-checkpoint sd and per-curve offset sd as CRITERIA_s12_i16.md states them."""
    u, w = lx - ref, np.exp(-g * xc)
    sd = {"constant": np.full(lx.size, SIGMA), "fraction power": SIGMA * np.exp(-g * u),
          "step power": SIGMA * np.exp(-g * u),
          "fraction floor": np.sqrt(SIGMA**2 + SIGMA_E**2 * np.exp(-2 * g * u)),
          "length scale": SIGMA * w[idx], "length power": SIGMA * w[idx]}[form]
    return sd, SIGMA_C * (w if form == "length scale" else np.ones_like(xc))


@pytest.mark.parametrize("form", FORMS)
def test_screen_likelihood_is_the_stated_gaussian(form):
    """The Sherman-Morrison marginal over noise_scales equals the dense multivariate Normal
    of the stated covariance (checkpoint sd on the diagonal, offset sd^2 within a curve)."""
    idx, xc, lx, r = _design()
    ref = float(lx.mean())
    z4 = np.log([SIGMA, G, SIGMA_E, SIGMA_C])
    var, sd_c = noise_scales(form, z4, lx, ref, xc, idx)
    got = hetero_marginal(r, idx, 3, var, sd_c)
    sd, off = _stated_sd(form, lx, ref, xc, idx)
    cov = np.diag(sd**2) + np.outer(off[idx], off[idx]) * (idx[:, None] == idx[None, :])
    assert got == pytest.approx(stats.multivariate_normal(np.zeros(r.size), cov).logpdf(r),
                                rel=1e-10)


@pytest.mark.parametrize("form", [f for f in FORMS if f.endswith("power") or f == "length scale"])
def test_falling_forms_reduce_to_constant_noise_at_exponent_zero(form):
    """At g = 0 a power or length form is the constant model; at g = 0.8 it is not."""
    idx, xc, lx, _ = _design()
    ref = float(lx.mean())
    const = noise_scales("constant", np.log([SIGMA, 1.0, SIGMA_E, SIGMA_C]), lx, ref, xc, idx)
    zero = noise_scales(form, np.r_[np.log(SIGMA), -800.0, np.log([SIGMA_E, SIGMA_C])], lx,
                        ref, xc, idx)
    for a, b in zip(zero, const, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    falls = noise_scales(form, np.log([SIGMA, G, SIGMA_E, SIGMA_C]), lx, ref, xc, idx)[0]
    assert not np.allclose(falls, const[0], rtol=1e-3)


def _row(err, c90, c50):
    return {"err": err, "c90": c90, "c50": c50}


def test_pick_rule_applies_the_guard_and_the_tie_break():
    """Lowest criterion wins unless its error is > 0.10 above constant's on any set; a tie
    within 0.02 goes to the power form; nothing passes the guard: None."""
    sets = ("mis1", "mis2", "mis3", "gem", "gemhalf")
    const = {s: _row(0.3, 0.99, 0.9) for s in sets}
    good = {s: _row(0.35, 0.90, 0.515) for s in sets}          # criterion 0.015
    better_but_off = {s: _row(0.3, 0.90, 0.50) for s in sets}  # criterion 0, but...
    better_but_off["mis1"] = _row(0.45, 0.90, 0.50)            # ... 0.15 above constant
    res = {"constant": const, "fraction power": good, "fraction floor": better_but_off,
           "step power": {s: _row(0.3, 0.8, 0.3) for s in sets}}
    assert pick(res)[0] == "fraction power"
    res["fraction floor"] = {s: _row(0.3, 0.90, 0.50) for s in sets}  # 0.015 better: a tie
    assert pick(res)[0] == "fraction power"
    res["fraction floor"] = {s: _row(0.3, 0.90, 0.50) for s in sets}
    res["fraction power"] = {s: _row(0.3, 0.70, 0.50) for s in sets}  # 0.20: floor wins
    assert pick(res)[0] == "fraction floor"
    for f in ("fraction power", "fraction floor", "step power"):
        res[f] = {**res[f], "gem": _row(0.41, 0.9, 0.5)}
    assert pick(res)[0] is None
