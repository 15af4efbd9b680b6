"""The weight's spread per pair of groups (``anchor.PAIR_SPREAD``, ``query.pooling``).

Planted faults each test was seen to catch are named in its docstring.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.query.anchor import ContrastCalibration, fit_calibration
from bayes_scaling.query.pooling import between_variance, pair_spreads

#: planted per-pair spreads t² of the weight (pairs whose refits disagree more or less)
T2 = {"A|B": 0.01, "A|C": 0.01, "B|C": 0.09, "B|D": 0.09}


def _comparisons(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    pair = np.repeat(list(T2), n)
    t2 = np.array([T2[p] for p in pair])
    h = rng.choice([0.3, 0.6, 0.9], pair.size)
    x = rng.normal(0.0, 0.3, pair.size)
    y = rng.normal(0.0, np.sqrt(1e-4 + 1e-4 * h + t2 * x * x))
    return x, y, h, pair


def test_each_pair_gets_its_own_spread_shrunk_towards_the_pooled_one():
    """Four pairs, t² 0.01, 0.01, 0.09, 0.09 (300 comparisons each, ``w = 0``): each pair's
    fitted t² within 0.7-1.4x its own (seed 0: 0.0109, 0.0112, 0.083, 0.079; the pooled t² is
    0.046, so pooling every pair would fail both ends); the pooled ``weight_sd`` unchanged by
    the switch.

    Faults caught: ``tau²`` held at 0 (every pair pooled: 0.046 for all); the Fisher step's
    score sign flipped (0.082, 0.082, 0.010, 0.014). Not caught: ``pair_sd`` not scaled by the
    degrees of freedom (a factor 1200/1197 here)."""
    x, y, h, pair = _comparisons(0)
    off = fit_calibration(x, y, h, weight=0.0, ml=True)
    on = fit_calibration(x, y, h, weight=0.0, ml=True, pair=pair)
    assert on.weight_sd == off.weight_sd and off.pair_sd == ()
    got = {k: sd**2 for k, sd in on.pair_sd}
    assert set(got) == set(T2)
    for k, t2 in T2.items():
        assert 0.7 < got[k] / t2 < 1.4, (k, got)


def test_pair_spreads_exact_values():
    """Exact: two pairs whose errors are equal give no spread between them (``tau² = 0``: both
    the pooled t²); DerSimonian-Laird on planted estimates (1, 3), variances (1, 1): Q = 2,
    tau² = 1, mean 2, its variance 1. A contrast's draws of ``w`` take its pair's sd in either
    order; a ranking of three groups the pooled one.

    Faults caught: ``(q - (k - 1))`` as ``q`` (tau² 2); the reversed pair not looked up (sd 0.1
    for ``("B", "A")``)."""
    assert between_variance(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == (1.0, 2.0, 1.0)
    d = np.tile([0.04, 0.09, 0.01], 2)
    e2 = np.tile([0.002, 0.0005, 0.003], 2)
    out = pair_spreads(d, e2, np.full(6, 0.001), 0.02, np.repeat(["A|B", "A|C"], 3),
                       np.arange(6))
    assert out == {"A|B": 0.02, "A|C": 0.02}
    cal = ContrastCalibration(0.0, 0.1, 1e-4, 1e-4, 10, 2, pair_sd=(("A|B", 0.5),))
    for names, sd in ((("A", "B"), 0.5), (("B", "A"), 0.5), (("A", "C"), 0.1),
                      (("A", "B", "C"), 0.1)):
        draws = cal.weight_draws(np.random.default_rng(0), 4, names)
        ref = 0.0 + sd * np.random.default_rng(0).standard_normal(4)
        np.testing.assert_array_equal(draws[:, 0], ref)
