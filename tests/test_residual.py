"""Correlated residuals along curves (``residual = "ou"``): the exact likelihood, the option off
reproducing the iid model, the spec and CLI option, the predictive paths, and a small recovery."""

from __future__ import annotations

from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayes_scaling.constants import CHAIN, DRAW
from bayes_scaling.data.curves import load_curves
from bayes_scaling.errors import SpecError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.gate import Diagnostics
from bayes_scaling.model.spec import DEFAULT_RESIDUAL_LENGTH, ModelSpec, load_spec
from bayes_scaling.query.curves import residual_noise
from bayes_scaling.query.predict import observation_noise

FIXED_B = "dynamics_schedule_fixed_b"
LAW_TRUTH = {"log_n_c": np.log(8.8e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3),
             "alpha_s": 0.76, "log_c_anneal": -2.0}


def ou_path(log_s: np.ndarray, sigma: float, length: float, rng) -> np.ndarray:
    """One OU path in log steps, written out plainly (the model's definition, for the tests)."""
    e = np.empty(log_s.size)
    e[0] = sigma * rng.standard_normal()
    for k in range(1, log_s.size):
        phi = np.exp(-(log_s[k] - log_s[k - 1]) / length)
        e[k] = phi * e[k - 1] + sigma * np.sqrt(1 - phi**2) * rng.standard_normal()
    return e


def dense_logp(resid, log_s, curve, sigma, length, sd) -> float:
    """The same density by brute force: a dense covariance per curve."""
    same = curve[:, None] == curve[None, :]
    cov = sigma**2 * np.exp(-np.abs(log_s[:, None] - log_s[None, :]) / length)
    cov = np.where(same, cov + sd**2, 0.0)
    return float(stats.multivariate_normal(np.zeros(resid.size), cov).logpdf(resid))


def shuffled_curves(seed: int = 0) -> SimpleNamespace:
    """Three curves (one of a single point), uneven steps, rows in random order."""
    rng = np.random.default_rng(seed)
    parts = [pd.DataFrame({"c": k, "s": np.sort(rng.choice(np.arange(10, 9000), n, False))})
             for k, n in enumerate((6, 1, 9))]
    d = pd.concat(parts).sample(frac=1.0, random_state=seed)
    return SimpleNamespace(curve_index=d["c"].to_numpy(), s=d["s"].to_numpy(float), n_curves=3)


# ------------------------------------------------------------------------------ likelihood
@pytest.mark.parametrize("sd", [0.02, None])
def test_ou_logp_equals_the_dense_normal_in_numpy_and_pytensor(sd):
    import pytensor
    import pytensor.tensor as pt

    from bayes_scaling.model.build_curves import ou_layout, ou_marginal_logp

    cur = shuffled_curves()
    resid = np.random.default_rng(1).normal(0, 0.02, cur.s.size)
    want = dense_logp(resid, np.log(cur.s), cur.curve_index, 0.013, 0.7, sd or 0.0)
    lay = ou_layout(cur)
    assert ou_marginal_logp(resid, lay, 0.013, 0.7, sd) == pytest.approx(want, rel=1e-12)
    r, s, ell = pt.dvector("r"), pt.dscalar("s"), pt.dscalar("l")
    f = pytensor.function([r, s, ell], ou_marginal_logp(r, lay, s, ell, sd, xp=pt))
    assert f(resid, 0.013, 0.7) == pytest.approx(want, rel=1e-12)
    g = pytensor.function([r, s, ell], pt.grad(ou_marginal_logp(r, lay, s, ell, sd, xp=pt), ell))
    assert np.isfinite(g(resid, 0.013, 0.7))  # the first points' huge gap gives no NaN


def test_ou_with_vanishing_length_is_the_iid_marginal():
    from bayes_scaling.model.build_curves import _curve_marginal_logp, ou_layout, ou_marginal_logp

    cur = shuffled_curves(2)
    resid = np.random.default_rng(2).normal(0, 0.02, cur.s.size)
    iid = _curve_marginal_logp(resid, cur, 0.01, 0.03)
    iid = float(iid.eval()) if hasattr(iid, "eval") else float(iid)
    assert ou_marginal_logp(resid, ou_layout(cur), 0.01, 1e-6, 0.03) == pytest.approx(iid,
                                                                                      rel=1e-12)
    # and a real length does change it (the correlation is not ignored)
    assert abs(ou_marginal_logp(resid, ou_layout(cur), 0.01, 1.0, 0.03) - iid) > 1.0


def reference_table() -> pd.DataFrame:
    """The table on which the iid model's log density was recorded before the option existed."""
    rng = np.random.default_rng(16)
    rows = []
    for i, n in enumerate((3e7, 1e8, 3e8)):
        for j, top in enumerate((3000, 9000)):
            steps = np.unique(np.geomspace(top / 10, top, 7).round())
            loss = (n / 1e14) ** -0.076 + (steps / 2000) ** -0.7
            loss = loss * np.exp(0.01 * rng.standard_normal(steps.size))
            rows += [{"run_id": f"r{i}{j}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
                      "loss": y} for s, y in zip(steps, loss, strict=True)]
    return pd.DataFrame(rows)


#: The whole model's log density (priors + likelihood) of ``dynamics_schedule_fixed_b`` on
#: :func:`reference_table` at its initial point + 0.1, and the spec's hash, both recorded with
#: the code of commit 3646033 (before ``residual`` existed).
REFERENCE_LOGP = -172.04413905283334
REFERENCE_SHA = "1c9620b1119c4a686b5586cc31dac6767645a7e295da27a03d1bb6f15a61ae03"


def test_option_off_reproduces_the_iid_model_exactly():
    from bayes_scaling.model.build_curves import build_dynamics_model

    spec = load_spec(FIXED_B)
    assert spec.likelihood.residual == "iid" and spec.sha256() == REFERENCE_SHA
    assert spec.with_residual("ou").with_residual("iid") == spec
    curves = load_curves(reference_table(), warmup_fraction=0.0)
    for s in (spec, spec.with_residual("iid")):
        model = build_dynamics_model(s, curves)
        point = {k: v + 0.1 for k, v in model.initial_point().items()}
        assert float(model.compile_logp()(point)) == pytest.approx(REFERENCE_LOGP, rel=1e-12)
    ou = build_dynamics_model(spec.with_residual("ou"), curves)
    assert "residual_length" in ou.named_vars and "residual_length" not in model.named_vars


# ------------------------------------------------------------------------------ spec and CLI
def test_spec_residual_round_trips_and_refuses_what_it_cannot_fit():
    ou = load_spec(FIXED_B).with_residual("ou")
    assert ou.likelihood.residual_length.to_dict() == DEFAULT_RESIDUAL_LENGTH
    assert ModelSpec.from_json(ou.to_json()) == ou and ou.sha256() != load_spec(FIXED_B).sha256()
    raw = load_spec(FIXED_B).to_dict()
    for bad, msg in (({"residual": "ar9"}, "must be one of iid, ou"),
                     ({"residual": "ou", "family": "studentt"}, 'needs family = "normal"'),
                     ({"residual_length": {"dist": "LogNormal", "mu": 0, "sigma": 1}},
                      "only read with")):
        with pytest.raises(SpecError, match=msg):
            ModelSpec.from_dict({**raw, "likelihood": {**raw["likelihood"], **bad}})
    chin = load_spec("chinchilla").to_dict()
    chin["likelihood"].update(residual="ou", family="normal")
    with pytest.raises(SpecError, match="needs a curve law"):
        ModelSpec.from_dict(chin)
    with pytest.raises(SpecError, match="normal likelihood"):
        ou.with_likelihood("studentt")


def test_cli_curve_options_refuse_runs_models_and_too_few_points(capsys):
    from bayes_scaling.cli.app import main

    assert main(["fit", "chinchilla", "--model", "chinchilla", "--residual", "ou",
                 "--out", "x.nc"]) == 2
    assert "apply to curve models" in capsys.readouterr().err
    assert main(["backtest", "chinchilla", "--model", "chinchilla", "--max-points-per-curve",
                 "10"]) == 2
    err = capsys.readouterr().err
    assert "apply to curve-model backtests" in err and "--max-points-per-curve" in err
    assert main(["backtest", "x.csv", "--model", FIXED_B, "--max-points-per-curve", "2"]) == 2
    err = capsys.readouterr().err
    assert "at least 3" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ predictive
def fake_fit(sigma: float, length: float | None, draws: int = 4000) -> ScalingFit:
    post = {"sigma": xr.DataArray(np.full((1, draws), sigma), dims=(CHAIN, DRAW))}
    if length is not None:
        post["residual_length"] = xr.DataArray(np.full((1, draws), length), dims=(CHAIN, DRAW))
    diag = Diagnostics(max_rhat=1.0, min_ess_bulk=1e3, min_ess_tail=1e3, divergences=0,
                       chains=1, draws=draws, backend="fake", seed=0, sampling_seconds=0.0)
    spec = load_spec(FIXED_B).with_residual("iid" if length is None else "ou")
    return ScalingFit(az.InferenceData(posterior=xr.Dataset(post)), spec,
                      load_curves(reference_table(), warmup_fraction=0.0), diag, {"seed": 0})


def test_residual_noise_draws_the_ou_path_with_the_right_marginal_and_correlation():
    steps = np.array([100.0, 110.0, 300.0, 1000.0, 100.0, 5000.0])  # two curves, unsorted
    curve = np.array([0, 0, 0, 0, 1, 0])
    e = residual_noise(fake_fit(0.02, 0.5), steps, curve, np.random.default_rng(0))
    assert e.shape == (4000, 6)
    # marginal sd 0.02 at every point (chi-square bounds, two-sided, 4000 draws: +-~4%)
    assert np.all(np.abs(e.std(axis=0) / 0.02 - 1) < 0.06)
    corr = np.corrcoef(e.T)
    for i, j in ((0, 1), (1, 2), (0, 3)):
        want = np.exp(-abs(np.log(steps[i] / steps[j])) / 0.5)
        assert abs(corr[i, j] - want) < 0.05, (i, j, corr[i, j], want)
    assert abs(corr[0, 4]) < 0.05  # another curve at the same step: independent
    # an iid fit draws exactly the independent noise of before
    iid = fake_fit(0.02, None)
    assert np.array_equal(residual_noise(iid, steps, curve, np.random.default_rng(3)),
                          observation_noise(iid, (4000, 6), np.random.default_rng(3)))


# ------------------------------------------------------------------------------ recovery (slow)
def synthetic_ou_curves(seed: int, *, sigma: float, length: float, sd: float) -> pd.DataFrame:
    """Curves from the one-batch schedule law (constant rate) + curve offsets + OU residuals."""
    rng = np.random.default_rng(seed)
    law = CURVE_LAWS[FIXED_B]
    rows = []
    for i, n in enumerate(np.geomspace(2e7, 4e8, 4)):
        for top in (2000, 6000, 16000):
            steps = np.unique(np.geomspace(top / 50, top, 16).round())
            mu = law.log_mean(np.log(n), np.log(steps), 0.0 * steps, **LAW_TRUTH)
            y = np.exp(mu + sd * rng.standard_normal() + ou_path(np.log(steps), sigma, length,
                                                                 rng))
            rows += [{"run_id": f"r{i}-{top}", "n_params": n, "steps": s,
                      "batch_size_tokens": 5e5, "loss": v} for s, v in zip(steps, y, strict=True)]
    return pd.DataFrame(rows)


OU_TRUTH = {"sigma": 0.01, "residual_length": 0.8, "sigma_curve": 0.006}


@pytest.mark.slow
def test_ou_recovers_its_length_and_scales():
    """12 curves x 16 checkpoints (1.7 decades of steps each) with OU residuals of known
    sd and length: the length, sigma and sigma_curve inside their 98% intervals, and the
    length learned (90% interval of log length at most half the prior's)."""
    from bayes_scaling.fitting.dynamics import fit_dynamics

    df = synthetic_ou_curves(7, sigma=OU_TRUTH["sigma"], length=OU_TRUTH["residual_length"],
                             sd=OU_TRUTH["sigma_curve"])
    curves = load_curves(df, warmup_fraction=0.0, max_points_per_curve=None)
    fit = fit_dynamics(FIXED_B, curves, residual="ou", chains=2, draws=300, tune=300,
                       random_seed=3, retries=0)
    assert fit.diagnostics.divergences == 0
    for name, truth in OU_TRUTH.items():
        lo, hi = np.quantile(fit.posterior[name].values, [0.01, 0.99])
        assert lo <= truth <= hi, (name, lo, truth, hi)
    lo, hi = np.quantile(np.log(fit.posterior["residual_length"].values), [0.05, 0.95])
    prior_width = 2 * 1.645 * DEFAULT_RESIDUAL_LENGTH["sigma"]
    assert hi - lo < 0.5 * prior_width
