"""Anchored contrasts: the calibration regression, and honest P(B better) when groups converge.

Planted faults each test was seen to catch are named in its docstring.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.fitting.contrast_refits import grouped_point_fit
from bayes_scaling.laws import final_loss as laws
from bayes_scaling.query import anchor
from bayes_scaling.query.anchor import calibrate_contrasts, fit_calibration
from bayes_scaling.query.contrast import contrast_groups
from bayes_scaling.query.pooling import drift_column
from bayes_scaling.report.sections.recipe import recipe_entry
from bayes_scaling.testing import fake_fit, to_sampling

P = PUBLISHED["hoffmann2022"]


@pytest.mark.parametrize("w_true", [0.0, 0.3, 1.0])
def test_fit_calibration_recovers_the_weight_and_the_error_scale(w_true):
    """Faults caught: returning the prior (w = 1) fails w_true = 0 and 0.3; a variance 10x too
    large or too small fails the scale check."""
    rng = np.random.default_rng(int(10 * w_true))
    n, a, s2 = 240, 1e-4, 2e-4
    h = rng.choice([0.3, 0.6, 0.9], n)
    x = rng.normal(0.0, 0.03, n)
    y = w_true * x + rng.normal(0.0, np.sqrt(a + s2 * h))
    cal = fit_calibration(x, y, h)
    assert abs(cal.weight - w_true) < max(3 * cal.weight_sd, 0.05)
    assert 0.005 < cal.weight_sd < 0.2
    var_true, var_fit = a + s2 * 0.6, cal.noise_var + cal.drift_var * 0.6
    assert 0.5 < var_fit / var_true < 2.0


def isoflop_ladder(gap0: float, gap_inf: float, seed: int, noise: float = 0.004):
    """Two groups on isoFLOP slices; B's log loss is A's plus a gap that fades with compute.

    ``gap(C) = gap_inf + gap0 (C / 1e17)^-0.5``: a recipe effect (warmup, schedule) that the
    law's group offsets cannot represent. Returns the runs and the gap function.
    """
    rng = np.random.default_rng(seed)
    theta = to_sampling("chinchilla", P)
    budgets = 1e17 * 2.0 ** np.arange(10)
    rows = []
    for c in budgets:
        n_opt, _ = laws.chinchilla_optimal(c, **P)
        for f in (0.35, 0.6, 1.0, 1.7, 3.0):
            n = n_opt * f
            d = c / (6 * n)
            mu = float(laws.log_chinchilla(np.log(n), np.log(d), **theta))
            for g, gap in (("A", 0.0), ("B", gap_inf + gap0 * (c / 1e17) ** -0.5)):
                rows.append({"group": g, "n_params": n, "n_tokens": d,
                             "loss": np.exp(mu + gap + noise * rng.standard_normal())})
    runs = load_runs(pd.DataFrame(rows), group_col="group")
    return runs, (lambda c: gap_inf + gap0 * (c / 1e17) ** -0.5), budgets


def point_fake_fit(runs, seed):
    """A fake posterior centred on the grouped point fit of ``runs`` (a stand-in for NUTS)."""
    law = laws.LAWS["chinchilla"]
    start = {p: np.full(2, v) for p, v in to_sampling("chinchilla", P).items()}
    th = grouped_point_fit(law, runs.group_index, runs.log_n, runs.log_d, runs.log_loss, start,
                           2)
    base = {p: float(th[p][0]) for p in law.params}
    offs = {"A": {}, "B": {p: float(th[p][1] - th[p][0]) for p in law.group_params}}
    return fake_fit("chinchilla", base, runs=runs, group_offsets=offs, spread=2e-3, seed=seed)


def held_out_gaps(c: float, gap, seed: int, n: int = 20, noise: float = 0.004) -> np.ndarray:
    """``n`` observed gaps at budget ``c`` of :func:`isoflop_ladder`'s two groups: each time the
    loss of B's best run minus A's on a fresh isoFLOP slice (the ladder's split fractions and
    noise). What the predictive band of an anchored contrast promises: the gap a user will see
    between the two recipes' best runs when they train the slice at ``c``."""
    rng = np.random.default_rng(seed)
    theta = to_sampling("chinchilla", P)
    n_opt, _ = laws.chinchilla_optimal(c, **P)
    ns = n_opt * np.array([0.35, 0.6, 1.0, 1.7, 3.0])
    mu = np.array([float(laws.log_chinchilla(np.log(m), np.log(c / (6 * m)), **theta))
                   for m in ns])
    best = {g: np.exp(mu[None, :] + shift + noise * rng.standard_normal((n, ns.size))).min(1)
            for g, shift in (("A", 0.0), ("B", gap(c)))}
    return best["B"] - best["A"]


@pytest.fixture(scope="module")
def converging_z():
    """z-scores and Brier terms of held-out observed gaps on 12 ladders whose gap fades.

    Per ladder, 20 gaps observed at the target (:func:`held_out_gaps`) are scored against the
    predictive band of each kind of contrast: that band is for one real run of each recipe
    (run-to-run noise included), so it is judged by observed gaps, not by the noise-free gap
    of the laws (sessions 7-8 did that: a band that includes the noise it promises looks too
    wide against a target without it). Also returned: the noise-free truth's z (``"truth"``).
    """
    bands = {"zero": {"weighting": "zero"}, "latest": {"weighting": "latest"},
             "shared": {"discrepancy": "shared"}}
    z = {b: [] for b in bands}
    z_truth = {b: [] for b in bands}
    right = {b: [] for b in bands}
    for rep in range(12):
        rng = np.random.default_rng(100 + rep)
        gap0 = rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.2)
        gap_inf = rng.normal(0.0, 0.01)
        runs, gap, budgets = isoflop_ladder(gap0, gap_inf, seed=rep)
        fit = point_fake_fit(runs, rep)
        c_star = 4.0 * budgets[-1]
        theta = to_sampling("chinchilla", P)
        n_opt, d_opt = laws.chinchilla_optimal(c_star, **P)
        la = np.exp(float(laws.log_chinchilla(np.log(n_opt), np.log(d_opt), **theta)))
        truth = la * (np.exp(gap(c_star)) - 1.0)  # L_B - L_A at A's optimum, noise-free
        observed = held_out_gaps(c_star, gap, seed=1000 + rep)
        for band, kw in bands.items():
            res = contrast_groups(fit, "A", "B", flops=c_star, random_seed=rep, **kw)
            draws = np.asarray(res.draws["difference_predictive"]).ravel()
            z[band].extend((observed - draws.mean()) / draws.std())
            z_truth[band].append((truth - draws.mean()) / draws.std())
            right[band].extend((np.mean(draws < 0) - (observed < 0)) ** 2)  # Brier terms
        assert calibrate_contrasts(fit) is not None
    return ({b: np.abs(v) for b, v in z.items()}, {b: np.mean(v) for b, v in right.items()},
            {b: np.abs(v) for b, v in z_truth.items()})


@pytest.mark.slow
@pytest.mark.parametrize("weighting", ["zero", "latest"])
def test_anchored_p_b_better_is_calibrated_when_the_groups_converge(converging_z, weighting):
    """Recipes whose gap fades faster than group offsets on one law allow: the law's band calls
    the sign wrongly and over-confidently; the anchored band's z-scores of held-out observed
    gaps have a median |z| near the calibrated 0.67 (bounds 0.3-2, as stated in session 7). A
    predictive band is judged by what it predicts, observed gaps; against the noise-free
    truth (sessions 7-8) the default ``"zero"`` gave 0.11. Faults caught (``"latest"``, session
    9): the anchored predictive spread 10x too wide (median |z| 0.115) or 10x too narrow. The
    default ``"zero"`` failed the too-wide side (a strict xfail, sessions 7-11: median |z| 0.293
    here) until its variance terms were fitted by maximum likelihood (session 12,
    :data:`anchor.ML_VARIANCE`, ``benchmarks/CRITERIA_s12_i17.md``): 0.364 here, and on the 5
    seed sets of the power study 0.36, 0.85, 0.67, 0.65, 0.62 (least squares: 0.29, 0.73, 0.62,
    0.70, 0.65), all three assertions holding on each. Fault caught: ``ML_VARIANCE = False``
    (0.293). This statistic has about 12 independent units (the ladders) and passes a band 2x
    too wide; it no longer gates calibration changes: the test below does, on ladders of four
    kinds (``benchmarks/CRITERIA_s10_i17.md``)."""
    z, brier, _ = converging_z
    # robust calibration of the anchored band: median |z| is 0.67 when calibrated
    assert 0.3 < np.median(z[weighting]) < 2.0, np.median(z[weighting])
    assert np.median(z["shared"]) > 1.5 * np.median(z[weighting]), (z["shared"], z[weighting])
    assert brier[weighting] < brier["shared"], brier  # Brier


@pytest.mark.parametrize("w_true", [0.3, 1.0])
def test_fit_calibration_undoes_the_attenuation_of_noisy_refit_predictions(w_true):
    """The refits' predicted changes ``x`` carry their own error (variance ``x_var``): regressing
    on them shrinks ``w`` towards 0 by the reliability ``var(x_true) / var(x)`` (here ~0.5).
    Given ``x_var``, the corrected fit recovers ``w``; without it the same data give the
    attenuated weight (so the check can fail). Faults caught: ``x_var`` ignored in the
    precision (attenuated: w 0.15 and 0.47 for 0.3 and 1.0)."""
    rng = np.random.default_rng(7 + int(10 * w_true))
    n = 400
    h = rng.choice([0.3, 0.6, 0.9], n)
    x_true = rng.normal(0.0, 0.02, n)
    x_var = np.full(n, 0.02**2)
    x = x_true + rng.normal(0.0, np.sqrt(x_var))
    y = w_true * x_true + rng.normal(0.0, 0.003, n)
    cal = fit_calibration(x, y, h, x_var=x_var)
    assert abs(cal.weight - w_true) < 3 * cal.weight_sd + 0.02, cal
    naive = fit_calibration(x, y, h)
    assert naive.weight < 0.75 * w_true, naive  # the bias being corrected is really there


def test_with_zero_weight_the_anchored_call_is_the_single_scale_ranking():
    """``w = 0`` keeps the observed gap: the anchored mean difference at any target is the gap
    between the two groups' best runs at the anchor level, draw by draw (what ranking by the
    best loss at the largest common budget compares), while ``w = 1`` moves it by the law.
    Fault caught: anchoring on the law's compute-optimal path through the level plus the
    best run's residual (the law's correction of how far each best run is from the optimum
    then stays in the gap at ``w = 0``: off by 6e-4 here)."""
    runs, _, budgets = isoflop_ladder(0.15, 0.0, seed=3)
    fit = point_fake_fit(runs, 3)
    frame = runs.frame.assign(log_loss=runs.log_loss, flops=runs.flops)
    top = frame[np.isclose(frame["flops"], frame["flops"].max(), rtol=1e-6)]
    best = top.groupby("group")["log_loss"].min()
    theta = {g: {k: v[:, None] for k, v in anchor.group_theta(fit, g).items()} for g in "AB"}
    log_c = np.log(np.array([[2.0, 8.0]]) * budgets[-1])
    moved = []
    for w in (0.0, 1.0):
        cal = anchor.ContrastCalibration(w, 0.0, 1e-4, 1e-4, 10, 1, horizon=np.inf)
        mean, _ = anchor.anchored_log_losses(fit, ("A", "B"), theta, log_c, None, cal,
                                             np.random.default_rng(0), beyond="law")
        moved.append(mean[1] - mean[0] - (best["B"] - best["A"]))
    assert np.max(np.abs(moved[0])) < 1e-12, np.max(np.abs(moved[0]))
    assert np.min(np.abs(moved[1])) > 1e-3, np.min(np.abs(moved[1]))


@pytest.mark.parametrize("drift", [False, True])
def test_fit_calibration_follows_the_latest_origin_when_the_origins_disagree(drift):
    """Three origins. With one weight for all (0.5), the latest-origin weight is that weight
    (the origins agree, so it stays pooled); when the law's share fades up the ladder (1.0,
    0.6, 0.1), it is the latest origin's 0.1, not the pooled ~0.6. Faults caught: ``origin``
    ignored (0.58 with the drift) and the first origin taken for the latest (1.00)."""
    rng = np.random.default_rng(11 + drift)
    per = 120
    origin = np.repeat([4, 5, 6], per)
    w_o = np.where(origin == 4, 1.0, np.where(origin == 5, 0.6, 0.1)) if drift else 0.5
    h = rng.choice([0.3, 0.6], origin.size)
    x = rng.normal(0.0, 0.03, origin.size)
    y = w_o * x + rng.normal(0.0, 0.003, origin.size)
    cal = fit_calibration(x, y, h, origin=origin)
    # each origin's own estimate is within ~0.01 here; the sd also carries how much the
    # weight varies between origins (t), so it is wide with the drift
    assert abs(cal.weight - (0.1 if drift else 0.5)) < 0.1, cal
    assert cal.weight_sd < (0.5 if drift else 0.1), cal


def test_zero_weight_fits_the_band_to_the_observed_changes_themselves():
    """With ``w`` held at 0 the band's variance terms are fitted to the observed changes ``y``
    (the law's part of them is error then), not to the residuals of a learned ``w``. Here the
    law's change is all real (``w = 1``): the zero-weight band must be as wide as ``y`` itself
    and several times wider than the learned one's. Fault caught: the variance terms fitted
    with the learned ``w`` and only the reported weight set to 0 (v0 / mean y^2 = 0.2)."""
    rng = np.random.default_rng(5)
    n, a, s2 = 240, 1e-4, 2e-4
    h = rng.choice([0.3, 0.6, 0.9], n)
    x = rng.normal(0.0, 0.03, n)
    y = x + rng.normal(0.0, np.sqrt(a + s2 * h))

    def total_var(cal):  # the band's variance of a difference, averaged over these comparisons
        return cal.noise_var + cal.drift_var * h.mean() + cal.weight_sd**2 * np.mean(x * x)

    zero, learned = fit_calibration(x, y, h, weight=0.0), fit_calibration(x, y, h)
    assert zero.weight == 0.0 and abs(learned.weight - 1.0) < 0.1, (zero, learned)
    assert 0.7 < total_var(zero) / np.mean(y * y) < 1.4, (total_var(zero), np.mean(y * y))
    assert total_var(zero) > 3 * total_var(learned), (zero, learned)


@pytest.fixture(scope="module")
def ladder_fit():
    runs, _, budgets = isoflop_ladder(0.15, 0.0, seed=3)
    return point_fake_fit(runs, 3), budgets


def _pred_rows(res):
    s = res.summary
    return s[s["band"] == "predictive"][["median", "lower", "upper", "p_b_better"]].to_numpy()


def test_the_api_and_the_report_default_to_keeping_the_observed_gap(ladder_fit):
    """``contrast_groups`` and the risk report's alternative-recipe section use ``w = 0`` unless
    told otherwise: the same draws as ``weighting="zero"``, not those of a learned weight (which
    differ here, so the check can fail). Faults caught: ``anchor.WEIGHTING = "latest"`` (API
    and report) and the report section passing ``weighting="pooled"`` (report)."""
    fit, budgets = ladder_fit
    c = 4.0 * budgets[-1]
    default = contrast_groups(fit, "A", "B", flops=c, random_seed=0)
    zero = contrast_groups(fit, "A", "B", flops=c, random_seed=0, weighting="zero")
    pooled = contrast_groups(fit, "A", "B", flops=c, random_seed=0, weighting="pooled")
    assert default.calibration["weighting"] == "zero" and default.calibration["weight"] == 0.0
    np.testing.assert_array_equal(_pred_rows(default), _pred_rows(zero))
    assert pooled.calibration["weight"] != 0.0
    assert not np.allclose(_pred_rows(pooled), _pred_rows(zero))
    n, d = 3e9, 6e10
    rec = recipe_entry(fit, "A", "B", n, d, random_seed=1)
    for w, same in (("zero", True), ("pooled", False)):
        ref = contrast_groups(fit, "A", "B", n_params=n, n_tokens=d, probs=(0.9,),
                              random_seed=1, weighting=w).summary.set_index(["quantity", "band"])
        got = [rec["difference_predictive"]["median"], rec["multiplier"]["median"]]
        want = [ref.loc[("difference", "predictive"), "median"],
                ref.loc[("multiplier", "predictive"), "median"]]
        assert np.allclose(got, want, rtol=1e-12, atol=0) == same, (w, got, want)


def test_the_cli_contrast_defaults_to_keeping_the_observed_gap(ladder_fit, tmp_path, capsys):
    """``bayes-scaling contrast`` says and uses ``weighting zero`` by default, and
    ``--weighting pooled`` gives the learned weight. Faults caught: the option's default set to
    ``latest``; the option not passed on to ``contrast_groups``."""
    fit, budgets = ladder_fit
    path = tmp_path / "ladder.nc"
    fit.save(path)
    args = ["contrast", str(path), "--groups", "A,B", "--flops", f"{4.0 * budgets[-1]:.6g}"]
    assert main(args) == 0
    assert "weighting zero" in capsys.readouterr().out
    payload = {}
    for w in ("default", "zero", "pooled"):
        assert main([*args, "--json", *(["--weighting", w] if w != "default" else [])]) == 0
        payload[w] = json.loads(capsys.readouterr().out)
    assert payload["default"]["calibration"]["weighting"] == "zero"
    assert payload["default"]["summary"] == payload["zero"]["summary"]
    assert payload["pooled"]["calibration"]["weighting"] == "pooled"
    assert payload["pooled"]["summary"] != payload["zero"]["summary"]


@pytest.mark.parametrize("kappa_true", [0.0, 1.0])
def test_fit_calibration_finds_how_fast_the_gap_changes_settle_up_the_ladder(kappa_true):
    """Gap changes from six origins whose drift rate falls tenfold per decade up the ladder
    (``kappa = 1``) or not at all (0): the fitted ``kappa`` is within 0.3 of the truth on
    either side (here 0.0 and 1.1) and the drift rate at the top within a factor 2. Faults
    caught: ``origin_x`` ignored (kappa 0 and the top rate 15x for kappa 1); the origin's
    distance to the top taken with the wrong sign (kappa 0.6, top rate 0.59x). Not caught:
    the rate at the origin times ``h`` instead of its integral over the change (a refinement
    these data cannot tell apart)."""
    rng = np.random.default_rng(21 + int(kappa_true))
    top, a, s2_top = 18.8, 2e-6, 4e-5
    xo = np.repeat(np.round(np.arange(17.0, 18.6, 0.3), 2), 60)
    h = rng.choice([0.3, 0.6, 0.9], xo.size)
    h = np.minimum(h, np.round(top - xo, 2))
    drift = drift_column(h, xo, top, kappa_true)
    x = rng.normal(0.0, 0.01, xo.size)
    y = rng.normal(0.0, np.sqrt(a + s2_top * drift))
    cal = fit_calibration(x, y, h, weight=0.0, origin_x=xo, top_x=top)
    assert abs(cal.drift_decay - kappa_true) < 0.3, cal
    assert 0.5 < cal.drift_var / s2_top < 2.0, cal
    assert cal.drift_at == top


def test_the_band_takes_the_drift_rate_at_its_own_anchor(ladder_fit):
    """The predictive spread of a difference ``h`` decades past the top is ``a + s²(x_top) h``
    with ``s²(x) = drift_var 10^(kappa (drift_at - x))``: a rate stored one decade below the
    top with ``kappa = 1`` is a tenth of it at the top. Fault caught: ``drift_var`` used as is
    (ratio 10 instead of 1)."""
    fit, budgets = ladder_fit
    lv = anchor.Levels(fit)
    theta = {g: {k: v[:, None] for k, v in anchor.group_theta(fit, g).items()} for g in "AB"}
    log_c = np.log(np.array([[4.0 * budgets[-1]]]))
    h = float(np.log10(4.0 * budgets[-1]) - lv.x[-1])
    cal = anchor.ContrastCalibration(0.0, 0.0, 1e-6, 1e-3, 10, 3, horizon=np.inf,
                                     weighting="zero", drift_decay=1.0, drift_at=lv.x[-1] - 1)
    rng = np.random.default_rng(0)
    spread = []
    for _ in range(20):  # 20 x S draws of the predictive minus the anchored mean difference
        mean, pred = anchor.anchored_log_losses(fit, ("A", "B"), theta, log_c, None, cal, rng,
                                                beyond="hold")
        spread.append((pred[1] - pred[0] - (mean[1] - mean[0])).ravel())
    want = 1e-6 + 1e-4 * h
    assert 0.8 < np.var(np.concatenate(spread)) / want < 1.25, (np.var(np.concatenate(spread)),
                                                                 want)


def test_fit_calibration_finds_a_drift_that_scales_with_the_gap():
    """Gap changes whose variance is ``a + r² g² h`` (``g`` the gap at the origin): given the
    gaps, the fit recovers ``r²`` within 2x and puts little of it in the flat drift ``s²``;
    without them there is no relative term. Faults caught: the gap not squared in its column
    (ratio 0.07); ``drift_rel`` read from the flat drift's coefficient (ratio 0.0003)."""
    rng = np.random.default_rng(11)
    n, a, r2 = 300, 1e-5, 0.05
    h = rng.choice([0.3, 0.6, 0.9], n)
    g = rng.uniform(-0.1, 0.1, n)
    y = rng.normal(0.0, np.sqrt(a + r2 * g**2 * h))
    x = rng.normal(0.0, 0.01, n)
    cal = fit_calibration(x, y, h, weight=0.0, gap=g)
    assert 0.5 < cal.drift_rel / r2 < 2.0, cal
    assert cal.drift_var < 0.25 * r2 * float(np.mean(g**2)), cal
    assert fit_calibration(x, y, h, weight=0.0).drift_rel == 0.0


def _top_gap(ladder_fit):
    """The fit's levels, the observed gap B - A between the groups' best runs at the top level,
    and ``h``, the decades from there to 4x the top budget."""
    fit, budgets = ladder_fit
    lv = anchor.Levels(fit)
    ll = fit.runs.log_loss
    g = float(ll[lv.best("B", len(lv.x) - 1)] - ll[lv.best("A", len(lv.x) - 1)])
    return lv, g, float(np.log10(4.0 * budgets[-1]) - lv.x[-1])


def _spread_var(ladder_fit, cal) -> float:
    """Variance of the anchored band's B - A about its mean at 4x the top budget (20 x the
    posterior draws, seed 0)."""
    fit, budgets = ladder_fit
    theta = {k: {p: v[:, None] for p, v in anchor.group_theta(fit, k).items()} for k in "AB"}
    log_c = np.log(np.array([[4.0 * budgets[-1]]]))
    rng = np.random.default_rng(0)
    spread = []
    for _ in range(20):
        mean, pred = anchor.anchored_log_losses(fit, ("A", "B"), theta, log_c, None, cal, rng,
                                                beyond="hold")
        spread.append((pred[1] - pred[0] - (mean[1] - mean[0])).ravel())
    return float(np.var(np.concatenate(spread)))


def test_the_band_scales_its_relative_drift_with_the_gap_at_the_anchor(ladder_fit):
    """The predictive spread of a difference ``h`` decades past the top is ``a + r² g² h`` with
    ``g`` the observed gap between the groups' best runs at the top level. Faults caught: the
    per-group factor 2 dropped (ratio 0.51); the gap measured from the first group's level
    instead of the groups' mean (ratio 2.0)."""
    _, g, h = _top_gap(ladder_fit)
    r2 = 1e-3 / g**2  # the relative term alone: 1e-3 per decade
    cal = anchor.ContrastCalibration(0.0, 0.0, 1e-6, 0.0, 10, 3, horizon=np.inf,
                                     weighting="zero", drift_rel=r2)
    var = _spread_var(ladder_fit, cal)
    want = 1e-6 + r2 * g**2 * h
    assert abs(g) > 1e-3, g  # the ladder has a gap to scale with
    assert 0.8 < var / want < 1.25, (var, want)


def _falling_drifts(kappa: float, seed: int):
    """Gap changes from six origins whose every drift term (flat, relative, the weight's
    spread) falls ``10^kappa``-fold per decade up the ladder: their rates at the top and data."""
    rng = np.random.default_rng(seed)
    top, a, rates = 18.8, 2e-6, (4e-5, 0.05, 0.3)  # s², r², t² at the top
    xo = np.repeat(np.round(np.arange(17.0, 18.6, 0.3), 2), 300)
    h = np.minimum(rng.choice([0.3, 0.6, 0.9], xo.size), np.round(top - xo, 2))
    g, x = rng.uniform(-0.1, 0.1, xo.size), rng.normal(0.0, 0.01, xo.size)
    mean_f = drift_column(h, xo, top, kappa) / h  # mean factor over each change
    v = a + mean_f * (rates[0] * h + rates[1] * g**2 * h + rates[2] * x**2)
    return rates, {"x": x, "y": rng.normal(0.0, np.sqrt(v)), "h": h, "weight": 0.0,
                   "origin_x": xo, "top_x": top, "gap": g, "decay_all": True}


def test_every_drift_term_is_fitted_at_its_rate_at_the_top():
    """:data:`anchor.DRIFT_AT_TOP`, least squares (``ml=False``): with every drift term falling
    tenfold per decade up the ladder, one ``kappa > 0`` scales them all, and the drift a
    comparison from the top would carry (``s² h + r² g² h + t² x²`` at the data's mean ``g²``
    and ``x²``) is within 0.5-3x of
    the truth (1.49x here); ``drift_rel`` falls as the flat drift; a drift that grows up the
    ladder is held at ``kappa = 0``. The least-squares variance fit under-estimates ``kappa``
    (0.9 here, 0.8-1.0 over 8 seeds; the test below recovers it by maximum likelihood): this
    test checks the direction and the drift at the top. Faults caught: the relative and
    weight columns not scaled (kappa 1.9); the grid not kept >= 0 (drift at the top 25.9x; on
    the growing drift kappa 0.9)."""
    rates, data = _falling_drifts(1.0, 5)
    cal = fit_calibration(**data, ml=False)
    assert 0.2 < cal.drift_decay < 1.3 and cal.rel_decay == cal.drift_decay, cal
    g2, x2 = float(np.mean(data["gap"] ** 2)), float(np.mean(data["x"] ** 2))
    ratio = ((cal.drift_var * 0.6 + cal.drift_rel * g2 * 0.6 + cal.weight_sd**2 * x2)
             / (rates[0] * 0.6 + rates[1] * g2 * 0.6 + rates[2] * x2))
    assert 0.5 < ratio < 3.0, (ratio, cal)
    assert fit_calibration(**_falling_drifts(-1.0, 6)[1], ml=False).drift_decay == 0.0


def test_the_variance_terms_by_maximum_likelihood_recover_the_drift_at_the_top():
    """:data:`anchor.ML_VARIANCE`: on the comparisons above (every drift term falling tenfold
    per decade, ``kappa = 1``) the likelihood fit recovers ``kappa`` within 0.15 (1.0 on all 8
    seeds tried) and ``s²``, ``r²`` and the drift at the top within 0.75-1.33x of the truth
    (1.07, 1.04, 1.05 here); least squares gives kappa 0.9, ``s²`` 1.93x, the drift 1.49x.
    Two-sided: a fit returning ``kappa = 0`` fails, as does one too high. Faults caught: the
    ``1/v²`` weights dropped (``s²`` 1.93x); the kappa profile compounding its column scaling
    (the bug before session 12: kappa 0.4); the kappa grid held at 0."""
    rates, data = _falling_drifts(1.0, 5)
    cal = fit_calibration(**data, ml=True)
    g2, x2 = float(np.mean(data["gap"] ** 2)), float(np.mean(data["x"] ** 2))
    drift = ((cal.drift_var * 0.6 + cal.drift_rel * g2 * 0.6 + cal.weight_sd**2 * x2)
             / (rates[0] * 0.6 + rates[1] * g2 * 0.6 + rates[2] * x2))
    assert abs(cal.drift_decay - 1.0) < 0.15 and cal.rel_decay == cal.drift_decay, cal
    for got in (cal.drift_var / rates[0], cal.drift_rel / rates[1], drift):
        assert 0.75 < got < 1.33, (got, cal)


def test_the_band_takes_the_relative_drift_at_its_own_anchor(ladder_fit):
    """The relative drift falls with ``rel_decay`` as the flat one with ``drift_decay``: an
    ``r²`` stored one decade below the top with ``kappa = 1`` is a tenth of it at the top.
    Fault caught: ``rel_decay`` not applied in :func:`anchor.anchored_log_losses` (ratio 10)."""
    lv, g, h = _top_gap(ladder_fit)
    cal = anchor.ContrastCalibration(0.0, 0.0, 1e-6, 0.0, 10, 3, horizon=np.inf,
                                     weighting="zero", drift_at=lv.x[-1] - 1,
                                     drift_rel=1e-2 / g**2, rel_decay=1.0)
    var = _spread_var(ladder_fit, cal)
    want = 1e-6 + 1e-3 * h
    assert 0.8 < var / want < 1.25, (var, want)


def test_the_default_band_scales_its_drift_with_the_gap(ladder_fit):
    """Since session 10 the default calibration has the relative drift (``r² g² h``,
    :data:`anchor.RELATIVE_DRIFT`, adopted by the gate of ``benchmarks/CRITERIA_s10_i17.md``):
    the API's calibration is the one fitted with the gaps, with a positive ``r²`` on this
    ladder, and the flat one differs. Fault caught: ``RELATIVE_DRIFT = False`` (drift_rel 0)."""
    fit, budgets = ladder_fit
    res = contrast_groups(fit, "A", "B", flops=4.0 * budgets[-1], random_seed=0)
    data = anchor.calibration_data(fit)
    rel = anchor.calibration_from(data, "zero", relative=True)
    flat = anchor.calibration_from(data, "zero", relative=False)
    assert rel.drift_rel > 0 and flat.drift_rel == 0.0, (rel, flat)
    assert res.calibration["drift_rel"] == pytest.approx(rel.drift_rel, rel=1e-12), res.calibration


@pytest.mark.slow
def test_the_default_band_is_calibrated_on_ladders_of_four_kinds():
    """The gate's suite in small (``benchmarks/contrast_gate.py``, ladders 0-11: 2-4 groups,
    recipe gaps that are law-consistent offsets, converge, diverge or mix; 400 held-out observed
    gaps at 4x and 32x the top budget): the default anchored predictive band's median |z| is
    within 0.45-1.0 (0.674 when calibrated; 0.628 here, 0.625 by least squares) and its 90%
    band covers 80-98% of the gaps (0.915). Two-sided: a band 2x too wide gives 0.31 and
    100%, 2x too narrow 1.26 and 61% (cached gate records). Faults caught (planted in
    ``anchored_log_losses``): the per-group noise sd doubled (median |z| 0.34) and halved
    (1.07)."""
    import sys  # lazy: the suite lives with the benchmarks

    sys.path.insert(0, "benchmarks")
    import contrast_gate  # lazy: benchmarks/ is on the path only here

    rows = [r for i in range(12)
            for r in contrast_gate.score_ladder(i, candidates={"default": (None, None, 1.0)})]
    m = contrast_gate.metrics(pd.DataFrame(rows), "default")
    assert 0.45 < m["med_z"] < 1.0, m
    assert 0.80 < m["cov90"] < 0.98, m


def _flat_slices(n_groups: int, seed: int, noise: float = 0.004):
    """``n_groups`` groups on one law (Chinchilla), isoFLOP slices of 5 splits at two budgets."""
    rng = np.random.default_rng(seed)
    theta = to_sampling("chinchilla", P)
    rows = []
    for c in (1e19, 2e19):
        n_opt, _ = laws.chinchilla_optimal(c, **P)
        for f in (0.35, 0.6, 1.0, 1.7, 3.0):
            n, d = n_opt * f, c / (6 * n_opt * f)
            mu = float(laws.log_chinchilla(np.log(n), np.log(d), **theta))
            rows += [{"group": f"g{j:03d}", "n_params": n, "n_tokens": d,
                      "loss": np.exp(mu + noise * rng.standard_normal())}
                     for j in range(n_groups)]
    return load_runs(pd.DataFrame(rows), group_col="group")


def test_the_slice_anchor_measures_a_groups_level_with_every_run_of_its_slice():
    """120 groups on one law, 5 runs per slice, run noise sd 0.004 in log loss; the fit's law
    is off by 2% of E. The slice anchor's error (against the true law at the best run) has
    variance sigma²/5 (ratio within 0.6-1.6, two-sided; 0.88 here) and no bias (the slice's
    residuals undo the law's error); the best run's has several times that (4.15 here), so the
    check can fail. Faults caught: the slice's mean residual dropped (ratio 0.0002), its sign
    flipped (bias 0.024), the best run used (ratio 4.15)."""
    runs = _flat_slices(120, seed=4)
    law = laws.LAWS["chinchilla"]
    off = {**P, "e": P["e"] * 1.02}
    fit = fake_fit("chinchilla", off, runs=runs, spread=1e-6, seed=0)
    lv, top = anchor.Levels(fit), 1
    true_theta = {k: np.array([[v]]) for k, v in to_sampling("chinchilla", P).items()}
    err = {True: [], False: []}
    for g in runs.group_names:
        th = {k: v[:, None] for k, v in anchor.group_theta(fit, g).items()}
        truth = float(lv.law_at_best(law, g, true_theta, top)[0])
        for whole in (True, False):
            err[whole].append(float(np.mean(lv.anchor_level(law, g, th, top, whole))) - truth)
    want = 0.004**2 / 5
    e = np.array(err[True])
    assert 0.6 < np.var(e) / want < 1.6, np.var(e) / want
    assert abs(np.mean(e)) < 3 * np.sqrt(want / e.size), np.mean(e)
    assert np.var(err[False]) / want > 2.0, np.var(err[False]) / want


def test_the_slice_anchored_call_keeps_the_slice_gap(ladder_fit):
    """With ``w = 0`` and the slice anchor, the anchored mean difference at any target is the
    gap between the two groups' slice-anchored levels at the top (draw by draw), not the gap
    between their best runs (which differ here, so the check can fail). Fault caught: the
    ``slice_anchor`` argument not passed on to the anchor (off by 1.3e-3)."""
    fit, budgets = ladder_fit
    lv, law = anchor.Levels(fit), fit.law
    top = len(lv.x) - 1
    theta = {g: {k: v[:, None] for k, v in anchor.group_theta(fit, g).items()} for g in "AB"}
    cal = anchor.ContrastCalibration(0.0, 0.0, 1e-4, 1e-4, 10, 1, horizon=np.inf)
    mean, _ = anchor.anchored_log_losses(fit, ("A", "B"), theta,
                                         np.log(np.array([[2.0, 8.0]]) * budgets[-1]), None,
                                         cal, np.random.default_rng(0), beyond="law",
                                         slice_anchor=True)
    gap = {w: lv.anchor_level(law, "B", theta["B"], top, w)
           - lv.anchor_level(law, "A", theta["A"], top, w) for w in (True, False)}
    assert np.max(np.abs(mean[1] - mean[0] - gap[True][:, None])) < 1e-12
    assert np.min(np.abs(gap[True] - gap[False])) > 1e-4, np.min(np.abs(gap[True] - gap[False]))
