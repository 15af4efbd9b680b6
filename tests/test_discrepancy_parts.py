"""The discrepancy per kind of extrapolation: N and D scaled up past the runs (scale) or a size
and token count no run had at the budgets covered (shape)."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import decades_outside, discrepancy_var
from bayes_scaling.fitting.calibrate import (
    KAPPA_GRID,
    TAU0_GRID,
    InnerBacktest,
    attach_discrepancy,
    discrepancy_loglik,
    discrepancy_posterior,
    discrepancy_posterior_parts,
    discrepancy_sd,
    sample_grid,
)
from bayes_scaling.fitting.discrepancy_prior import DiscrepancyPrior
from bayes_scaling.query.predict import discrepancy_scale, fit_box
from bayes_scaling.testing import fake_fit

P = PUBLISHED["hoffmann2022"]


def _points(rng, size: int, split: str, far: float = 1.0) -> dict[str, np.ndarray]:
    """Held-out points as rolling origins make them: top budgets mostly scaled up past the runs
    (a little shape), top sizes all shape (at the budgets the ladder covers)."""
    if split == "c":
        scale, shape = rng.uniform(0.05, 0.7 * far, size), rng.uniform(0.0, 0.1, size)
    else:
        scale, shape = np.zeros(size), rng.uniform(0.05, 0.5 * far, size)
    return {"shape": shape, "scale": scale, "hull_compute": np.hypot(shape, scale)}


def _truth_var(far: dict[str, np.ndarray], tau0_c, kappa_c, tau0_h, kappa_h) -> np.ndarray:
    """The planted discrepancy variance, written out here (not the package's formula)."""
    h, c = far["shape"], far["scale"]
    d = np.hypot(h, c)
    share = np.where(d > 0, h**2 / np.maximum(d, 1e-300) ** 2, 0.0)
    jump = share * tau0_h**2 + (1 - share) * tau0_c**2
    return np.minimum(d / 0.05, 1.0) * jump + (kappa_h * h) ** 2 + (kappa_c * c) ** 2


def _bt(rng, truth: tuple[float, float, float, float], n_refits: int = 6, per: int = 6,
        noise: float = 0.003) -> InnerBacktest:
    """Rolling-origin errors of a synthetic ladder whose discrepancy is known (``truth`` =
    scale part's tau0, kappa; shape part's tau0, kappa); half the refits by budget."""
    parts, split, ids = [], [], []
    for r in range(n_refits):
        s = "c" if r % 2 == 0 else "n"
        parts.append(_points(rng, per, s))
        split += [s] * per
        ids += [r] * per
    far = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sd = np.sqrt(noise**2 + _truth_var(far, *truth))
    res = sd * rng.standard_normal(sd.shape)
    return InnerBacktest(res, far["hull_compute"], noise, n_refits, 0.0, np.array(ids),
                         far, np.array(split))


def test_shared_parameters_give_todays_likelihood():
    """Parts with one (tau0, kappa) reproduce the one-pair likelihood (to rounding), cell by
    cell, whichever part the grid runs over; the parts' own parameters do matter.

    Planted faults it catches: the out-of-ladder jump ramped in by the compute part alone
    (``ramp(c)`` for ``ramp(distance)``), and the two parts' parameters swapped.
    """
    rng = np.random.default_rng(3)
    bt = _bt(rng, (0.01, 0.02, 0.03, 0.05))
    today = discrepancy_loglik(bt)
    for shared in (0.0, 0.4):
        today = discrepancy_loglik(bt, shared)
        for part in ("scale", "shape"):
            for i, j in [(0, 0), (3, 250), (40, 10), (120, 57), (200, 300)]:
                ll = discrepancy_loglik(bt, shared, part, (TAU0_GRID[i], KAPPA_GRID[j]))
                np.testing.assert_allclose(ll[i, j], today[i, j], rtol=1e-12, atol=1e-9)
                assert not np.allclose(ll, today)  # the other cells: the parts differ
    far = {"shape": np.array([0.0, 0.3, 0.02]), "scale": np.array([0.4, 0.0, 0.0])}
    only_c = discrepancy_var(far, 0.02, 0.05, 0.0, 0.0)
    only_h = discrepancy_var(far, 0.0, 0.0, 0.02, 0.05)
    np.testing.assert_allclose(only_c, [0.02**2 + (0.05 * 0.4) ** 2, 0.0, 0.0])
    np.testing.assert_allclose(only_h, [0.0, 0.02**2 + (0.05 * 0.3) ** 2,
                                        0.02**2 * 0.4 + (0.05 * 0.02) ** 2])


def test_predict_uses_both_parts():
    """A fit with shape-part draws equal to its scale part's predicts today's band; with a
    shape part of its own, only queries with a shape part change."""
    base = fake_fit("chinchilla", P, extra={"kappa": 0.03, "tau0": 0.01})
    same = fake_fit("chinchilla", P, extra={"kappa": 0.03, "tau0": 0.01, "kappa_shape": 0.03,
                                            "tau0_shape": 0.01})
    other = fake_fit("chinchilla", P, extra={"kappa": 0.03, "tau0": 0.01, "kappa_shape": 0.2,
                                             "tau0_shape": 0.05})
    box = fit_box(base)
    n = 10 ** np.array([box.n[1] + 0.5, box.n[1] - 0.3, box.n[1]])
    d = 10 ** np.array([box.d[1] + 0.5, box.d[1] + 0.9, box.d[1] + 0.1])
    far = decades_outside(box, n, d)
    assert (far["shape"] > 0).any() and (far["scale"] > 0).any()
    np.testing.assert_allclose(discrepancy_scale(same, far), discrepancy_scale(base, far),
                               rtol=1e-12)
    expect = np.sqrt(discrepancy_var(far, 0.01, 0.03, 0.05, 0.2))
    np.testing.assert_allclose(discrepancy_scale(other, far)[0], expect, rtol=1e-12)
    wider = discrepancy_scale(other, far) > discrepancy_scale(base, far)
    assert np.all(wider[:, far["shape"] > 0]) and not np.any(wider[:, far["shape"] == 0])


def _coverage(truth, prior, seed: int) -> dict[float, float]:
    """Pooled coverage of the product's bands on fresh runs, farther out than any learned from:
    ``attach_discrepancy`` on each synthetic ladder's rolling-origin errors, then the predictive
    discrepancy scale that ``predict`` uses."""
    fit = fake_fit("chinchilla", P, draws=1000)
    hits: dict[float, list] = {0.5: [], 0.9: []}
    for lad in range(6):
        rng = np.random.default_rng([seed, lad])
        cal = attach_discrepancy(fit, random_seed=lad, prior=prior, backtest=_bt(rng, truth))
        new_c, new_n = _points(rng, 20, "c", far=2.0), _points(rng, 20, "n", far=2.0)
        far = {k: np.concatenate([new_c[k], new_n[k]]) for k in new_c}
        far["distance"] = far["hull_compute"]
        y = np.sqrt(_truth_var(far, *truth)) * rng.standard_normal(far["shape"].size)
        sd = discrepancy_scale(cal, far)
        draws = sd * rng.standard_normal(sd.shape)
        for p in hits:
            lo, hi = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
            hits[p].append((y >= lo) & (y <= hi))
    return {p: float(np.mean(np.concatenate(h))) for p, h in hits.items()}


@pytest.mark.parametrize("truth", [(0.01, 0.02, 0.04, 0.10), (0.03, 0.06, 0.005, 0.01)])
def test_per_kind_bands_are_calibrated_on_synthetic_ladders(truth):
    """Two-sided: 90% and 50% bands cover fresh runs at their nominal rates (within sampling
    error of 240 runs) when each part's discrepancy differs, under a weak cross-ladder prior.

    Planted faults it catches (``query.predict.discrepancy_scale`` scaled): sds 10x too narrow
    and 10x too wide.
    """
    weak = DiscrepancyPrior(np.log(0.02), 1.5, np.log(0.04), 1.5, temper=False)
    weak = weak.with_shape(weak)
    cov = _coverage(truth, weak, seed=11)
    assert 0.82 <= cov[0.9] <= 0.97, cov
    assert 0.38 <= cov[0.5] <= 0.64, cov


def test_one_pair_cannot_fit_both_kinds():
    """The motivation, measured: when the shape part's discrepancy is 5x the scale part's,
    the one-pair posterior's bands for scaled-up runs are too wide, the per-kind ones are not
    (their median sds at a scale-only point differ by more than 1.5x)."""
    truth = (0.005, 0.01, 0.05, 0.15)
    rng = np.random.default_rng(5)
    bt = _bt(rng, truth, n_refits=8)
    one = discrepancy_posterior(bt)[2]
    parts = discrepancy_posterior_parts(bt)
    t1, k1 = sample_grid(one, (4000, 1), rng)
    tc, kc = sample_grid(parts["scale"], (4000, 1), rng)
    d = np.array([[1.0]])
    w_one = np.quantile(discrepancy_sd(d, t1, k1), 0.5)
    w_c = np.quantile(discrepancy_sd(d, tc, kc), 0.5)
    assert w_one > 1.5 * w_c
    assert w_c == pytest.approx(np.hypot(0.005, 0.01), rel=0.6)

