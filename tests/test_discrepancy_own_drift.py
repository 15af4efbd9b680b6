"""Which own slope the drift is shrunk from (``own_drift``, ``benchmarks/CRITERIA_s12_i15.md``):
all matching refits (today's), the refits nearest the fit's own ladder (those that held out the
fewest levels, :func:`~bayes_scaling.fitting.drift.nearest_slope`) or none (the population)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.data.support import DISTANCE, budget_levels, decades_outside, levels
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.calibrate import (
    HOLDOUT_STEPS,
    InnerBacktest,
    _inner_splits,
    attach_discrepancy,
    inner_origins,
)
from bayes_scaling.fitting.discrepancy_prior import DiscrepancyPrior
from bayes_scaling.fitting.drift import ladder_drift, ladder_slope, nearest_slope, shrink
from bayes_scaling.query.predict import fit_box, predict_loss
from bayes_scaling.testing import fake_fit

P = PUBLISHED["hoffmann2022"]


def _bt(refits: list[tuple[int, str, int, list[float], float]], noise=None) -> InnerBacktest:
    """A backtest from ``(group, "c"/"n", depth, distances, slope)`` per refit: a budget refit's
    distances are all scale, a size refit's all shape; errors ``slope * a`` (+ ``noise``)."""
    res, ids, split, scale, shape, origin = [], [], [], [], [], []
    for j, (g, kind, depth, a, b) in enumerate(refits):
        a = np.asarray(a, dtype=float)
        res.append(b * a + (0.0 if noise is None else noise[j]))
        ids.append(np.full(a.size, j))
        split.append(np.full(a.size, kind))
        scale.append(a if kind == "c" else 0 * a)
        shape.append(0 * a if kind == "c" else a)
        origin.append(np.tile([g, depth], (a.size, 1)))
    sc, sh = np.concatenate(scale), np.concatenate(shape)
    by_kind = {"scale": sc, "shape": sh, DISTANCE: np.hypot(sc, sh)}
    return InnerBacktest(np.concatenate(res), by_kind[DISTANCE], 0.002, len(refits), 0.0,
                         np.concatenate(ids), by_kind, np.concatenate(split),
                         np.concatenate(origin))


#: One group; budget refits holding out 1, 2, 3 levels, slopes rising with depth.
THREE = [(0, "c", 1, [0.1, 0.2], 0.02), (0, "c", 2, [0.2, 0.4], 0.06),
         (0, "c", 3, [0.3, 0.6], 0.12), (0, "n", 1, [0.1, 0.3], -0.1),
         (0, "n", 2, [0.2, 0.5], -0.3)]


def test_nearest_slope_exact_values():
    """By hand: weights 0.05, 0.2, 0.45 (sum a^2); the nearest (depth-1) slope 0.02, its se the
    weighted spread of all three slopes around it over one refit; today's slope 0.0957.
    With a second group the nearest refit of EACH group counts (depth 2 there), weighted."""
    bt = _bt(THREE)
    s = nearest_slope(bt, "scale")
    assert s.beta == pytest.approx(0.02, rel=1e-12)
    assert s.se == pytest.approx(np.sqrt((0.2 * 0.04**2 + 0.45 * 0.1**2) / 0.7), rel=1e-12)
    assert ladder_slope(bt, "scale").beta == pytest.approx(0.067 / 0.7, rel=1e-12)
    sh = nearest_slope(bt, "shape")  # weights 0.1, 0.29
    assert sh.beta == pytest.approx(-0.1, rel=1e-12)
    assert sh.se == pytest.approx(np.sqrt(0.29 * 0.2**2 / 0.39), rel=1e-12)
    two = _bt([*THREE, (1, "c", 2, [0.2, 0.4], 0.05), (1, "c", 3, [0.3, 0.6], 0.09)])
    s2 = nearest_slope(two, "scale")  # nearest: group 0 depth 1 (w 0.05), group 1 depth 2 (0.2)
    assert s2.beta == pytest.approx(0.011 / 0.25, rel=1e-12)
    w = np.array([0.05, 0.2, 0.45, 0.2, 0.45])
    b = np.array([0.02, 0.06, 0.12, 0.05, 0.09])
    n_eff = 0.25**2 / (0.05**2 + 0.2**2)
    assert s2.se == pytest.approx(np.sqrt(np.sum(w * (b - 0.044) ** 2) / w.sum() / n_eff),
                                  rel=1e-12)
    assert nearest_slope(_bt(THREE[:1]), "scale") is None  # one refit: no own slope
    with pytest.raises(ValueError, match="origin"):
        nearest_slope(InnerBacktest(bt.residuals, bt.distances, 0.002, 5, 0.0, bt.refit,
                                    bt.by_kind, bt.split), "scale")


def _prior(mu_scale=-0.02, sd_scale=0.03, mu_shape=0.05, sd_shape=0.1) -> DiscrepancyPrior:
    weak = DiscrepancyPrior(np.log(0.01), 1.5, np.log(0.03), 1.5, temper=False)
    return weak.with_shape(weak).with_drift({"scale": (mu_scale, sd_scale),
                                             "shape": (mu_shape, sd_shape)})


def test_ladder_drift_modes():
    """``all`` is today's shrinkage of ``ladder_slope``; ``nearest`` shrinks the nearest slope;
    ``none`` is the population mean with weight 0; anything else is refused."""
    bt, prior = _bt(THREE), _prior()
    for mode, slope in (("all", ladder_slope), ("nearest", nearest_slope)):
        got = ladder_drift(bt, prior, mode)
        for p, pop in (("scale", (-0.02, 0.03)), ("shape", (0.05, 0.1))):
            assert got[p] == shrink(slope(bt.with_distance(DISTANCE), p), *pop)
    none = ladder_drift(bt, prior, "none")
    assert (none["scale"].value, none["scale"].weight) == (-0.02, 0.0)
    assert (none["shape"].value, none["shape"].weight) == (0.05, 0.0)
    assert ladder_drift(bt, prior, "nearest")["scale"].value < ladder_drift(bt, prior)[
        "scale"].value
    with pytest.raises(ValueError, match="own_drift"):
        ladder_drift(bt, prior, "near")


def _grid_runs():
    n = np.repeat(10 ** np.linspace(7.5, 9.5, 7), 5)
    d = n * np.tile(10 ** np.linspace(0.8, 2.0, 5), 7)
    loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    return load_runs(pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss}),
                     min_distinct=())


def test_inner_origins_follow_the_backtests_refits():
    """Per held-out run, in the backtest's order: the refit's group and the number of top levels
    it held out (the distinct size or budget levels of its held-out runs)."""
    runs = _grid_runs()
    origin = inner_origins(runs)
    splits = list(_inner_splits(runs, HOLDOUT_STEPS))
    assert origin.shape == (sum(te.n_runs for *_, te in splits), 2)
    at, seen = 0, set()
    for g, key, k, _, te in splits:
        grp = runs.subset(runs.group_index == g)
        lv = levels(grp.n) if key == "n" else budget_levels(grp.flops)
        held = np.unique(lv[lv > lv.max() - k])
        assert held.size == k
        np.testing.assert_array_equal(origin[at:at + te.n_runs], [[g, k]] * te.n_runs)
        at += te.n_runs
        seen.add((key, k))
    assert seen == {(key, k) for key in "nc" for k in (1, 2, 3)}


def test_attach_with_nearest_drift_records_it_and_predict_reads_it():
    """``own_drift="nearest"`` stores the nearest slope's shrunk drift and moves the median by
    exactly ``exp((d_nearest - d_all) * scale + ...)`` against today's; the default is
    today's; a backtest without origins is matched to ``fit.runs`` or refused."""
    fit = fake_fit("chinchilla", P, spread=1e-6, sigma=1e-4)
    bt, prior = _bt(THREE), _prior()
    today = attach_discrepancy(fit, random_seed=1, prior=prior, backtest=bt)
    near = attach_discrepancy(fit, random_seed=1, prior=prior, backtest=bt, own_drift="nearest")
    pop = attach_discrepancy(fit, random_seed=1, prior=prior, backtest=bt, own_drift="none")
    assert today.meta["calibration"]["own_drift"] == "all"
    assert near.meta["calibration"]["own_drift"] == "nearest"
    dn, dt = near.meta["calibration"]["drift"], today.meta["calibration"]["drift"]
    want = shrink(nearest_slope(bt, "scale"), -0.02, 0.03)
    assert dn["scale"]["value"] == pytest.approx(want.value, rel=1e-12)
    assert pop.meta["calibration"]["drift"]["scale"]["value"] == -0.02
    box = fit_box(fit)
    n, d = 10 ** (box.n[1] + np.array([0.2, 0.4])), 10 ** (box.d[1] + np.array([0.2, 0.4]))
    far = decades_outside(box, n, d)
    a = predict_loss(near, n, d, random_seed=0).summary
    b = predict_loss(today, n, d, random_seed=0).summary
    expect = np.exp(sum((dn[p]["value"] - dt[p]["value"]) * far[p] for p in ("scale", "shape")))
    np.testing.assert_allclose(a["median"] / b["median"], expect, rtol=2e-3)
    assert np.all(expect < 0.99)
    bare = InnerBacktest(bt.residuals, bt.distances, 0.002, 5, 0.0, bt.refit, bt.by_kind,
                         bt.split)
    with pytest.raises(BayesScalingError, match=r"fit\.runs"):
        attach_discrepancy(fit, prior=prior, backtest=bare, own_drift="nearest")
    with pytest.raises(BayesScalingError, match="own_drift"):
        attach_discrepancy(fit, prior=prior, backtest=bt, own_drift="near")


def _ladder(rng, b0: float, trend: float, refit_sd: float = 0.01) -> InnerBacktest:
    """A synthetic ladder whose refit that held out ``k`` levels has slope ``b0 + trend * k``
    plus an error shared by its runs (a refit's law is off in one direction)."""
    rows = []
    for kind in "cn":
        for k in (1, 2, 3):
            a = np.sort(rng.uniform(0.1 * k, 0.25 * k, 4))
            rows.append((0, kind, k, a, b0 + trend * k + rng.normal(0, refit_sd)))
    return _bt(rows, noise=[rng.normal(0, 0.003, 4) for _ in rows])


@pytest.mark.parametrize("trend", [0.03, -0.03])
def test_nearest_drift_is_nearer_the_full_ladders_either_way(trend):
    """Two-sided, on 40 synthetic ladders whose slope grows (or falls) with the depth of the
    hold-out, the fit's own ladder (depth 0) at ``b0``: the nearest slope lies closer to ``b0``
    than today's on average, on the side today's over-states; without a trend both cover
    ``b0`` within 1.645 se for 70-99.5% of ladders (too narrow or too wide an se fails)."""
    b0, rng = 0.04, np.random.default_rng(5)
    near, allr = [], []
    for _ in range(40):
        bt = _ladder(rng, b0, trend)
        near.append(nearest_slope(bt, "scale").beta - b0)
        allr.append(ladder_slope(bt, "scale").beta - b0)
    assert np.mean(np.abs(near)) < 0.6 * np.mean(np.abs(allr))
    assert np.sign(np.mean(allr)) == np.sign(trend) and abs(np.mean(allr)) > 2 * abs(trend)
    hits = {"near": [], "all": []}
    for _ in range(60):
        bt = _ladder(rng, b0, 0.0)
        for key, f in (("near", nearest_slope), ("all", ladder_slope)):
            s = f(bt, "scale")
            hits[key].append(abs(s.beta - b0) <= 1.645 * s.se)
    assert 0.70 <= np.mean(hits["near"]) <= 0.995, np.mean(hits["near"])
