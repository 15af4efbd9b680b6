"""``w``'s spread term capped by the refits' largest observed change (``anchor.SPREAD_CAP``).

Planted faults each test was seen to catch are named in its docstring.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.query import anchor
from bayes_scaling.query.anchor import ContrastCalibration, fit_calibration
from tests.test_anchor import isoflop_ladder, point_fake_fit


def test_the_capped_fit_is_the_fit_to_the_clipped_predicted_changes():
    """With ``w = 0`` the capped fit is exactly the uncapped fit of ``x`` clipped to ``±Y``,
    ``Y = max |y|`` (stored as ``spread_cap``); 42 of the 60 predicted changes exceed it here,
    and the uncapped fit's ``t`` differs. Faults caught: ``Y = max |x|``; the column left
    uncapped (only ``Y`` stored)."""
    rng = np.random.default_rng(0)
    h = rng.choice([0.3, 0.6, 0.9], 60)
    x = rng.normal(0.0, 0.05, 60)
    y = rng.normal(0.0, np.sqrt(1e-5 + 1e-5 * h + 0.04 * np.minimum(x * x, 0.05**2)))
    cap_y = float(np.max(np.abs(y)))
    assert np.sum(np.abs(x) > cap_y) == 42, np.sort(np.abs(x))[-13:]
    on = fit_calibration(x, y, h, weight=0.0, cap=True)
    clipped = fit_calibration(np.clip(x, -cap_y, cap_y), y, h, weight=0.0)
    off = fit_calibration(x, y, h, weight=0.0)
    assert on.spread_cap == cap_y and off.spread_cap == np.inf
    assert on.to_dict() == {**clipped.to_dict(), "spread_cap": cap_y}, (on, clipped)
    assert abs(on.weight_sd - off.weight_sd) > 1e-3, (on.weight_sd, off.weight_sd)


def test_the_band_spreads_w_over_the_predicted_change_clipped_at_the_cap():
    """Two groups whose law changes the gap by ``x`` per posterior draw (read off a band with
    ``w = 1``, sd 0): with ``w ~ N(0, 0.3)`` the anchored difference moves by ``w x`` uncapped
    and by ``w sign(x) Y`` under a cap ``Y`` below every ``|x|`` (a quarter of the median),
    draw by draw (same seed), exactly; a cap above every ``|x|`` changes nothing. Faults
    caught: the clip ignored; each group clipped at ``±Y`` instead of ``±Y/2``."""
    runs, _, _ = isoflop_ladder(0.15, 0.0, seed=3)
    fit = point_fake_fit(runs, 3)
    theta = {g: {k: v[:, None] for k, v in anchor.group_theta(fit, g).items()} for g in "AB"}
    log_c = np.log(np.array([[1e21]]))

    def diff(weight: float, sd: float, cap: float = np.inf) -> np.ndarray:
        cal = ContrastCalibration(weight, sd, 0.0, 0.0, 10, 3, horizon=np.inf,
                                  weighting="zero", spread_cap=cap)
        mean, _ = anchor.anchored_log_losses(fit, ("A", "B"), theta, log_c, None, cal,
                                             np.random.default_rng(1), beyond="law")
        return (mean[1] - mean[0])[:, 0]

    at0 = diff(0.0, 0.0)
    x = diff(1.0, 0.0) - at0  # the law's change of the gap, per posterior draw
    cap = float(np.median(np.abs(x))) / 4
    assert cap > 1e-4 and np.all(np.abs(x) > cap), (cap, np.abs(x).min())
    free, capped = diff(0.0, 0.3) - at0, diff(0.0, 0.3, cap) - at0
    np.testing.assert_allclose(capped, free * np.sign(x) * cap / x, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(diff(0.0, 0.3, 2 * np.abs(x).max()) - at0, free, rtol=1e-9,
                               atol=1e-15)
