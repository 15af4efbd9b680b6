"""Heavy-tailed checkpoint noise for curve fits: ``likelihood = "studentt"`` without whole-curve
offsets (the noise model chosen in ``benchmarks/results/residual.md``), its likelihood, and the
``--likelihood`` option of curve backtests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_scaling.data.curves import load_curves
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.dynamics import use_curve_effects
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.spec import load_spec
from tests.test_curve_offsets import synthetic_curves
from tests.test_residual import FIXED_B, REFERENCE_SHA, reference_table


class Stop(BayesScalingError):
    """Raised by the stubs below once they have recorded what they were given."""


def test_studentt_without_offsets_is_the_student_t_of_the_law():
    """At a random point, the observed term equals the sum of Student-t log densities of the
    log losses around the law (numpy) with the model's own nu and sigma; no sigma_curve."""
    import pytensor

    from bayes_scaling.model.build_curves import build_dynamics_model

    spec = load_spec(FIXED_B).with_curve_offsets("none").with_likelihood("studentt")
    assert load_spec(FIXED_B).sha256() == REFERENCE_SHA  # the default spec is untouched
    curves = load_curves(reference_table(), warmup_fraction=0.0)
    law = CURVE_LAWS[spec.law]
    model = build_dynamics_model(spec, curves,
                                 curve_effects=use_curve_effects(spec, curves, None))
    assert "sigma_curve" not in model.named_vars and "nu" in model.named_vars
    rng = np.random.default_rng(8)
    point = {k: v + 0.1 * rng.standard_normal(np.shape(v))
             for k, v in model.initial_point().items()}
    outs = model.replace_rvs_by_values([model[p] for p in (*law.params, "sigma", "nu")])
    natural = pytensor.function(model.value_vars, outs, on_unused_input="ignore")(
        *(point[v.name] for v in model.value_vars))
    theta = dict(zip(law.params, (float(v) for v in natural[:-2]), strict=True))
    mu = law.log_mean(*curves.law_inputs(law.inputs), **theta)
    sigma, nu = float(natural[-2]), float(natural[-1])
    expected = stats.t.logpdf(curves.log_loss, nu, mu, sigma).sum()
    observed = model.compile_logp(vars=[model["log_loss"]])(point)
    assert float(observed) == pytest.approx(expected, rel=1e-9)
    assert expected != pytest.approx(stats.norm.logpdf(curves.log_loss, mu, sigma).sum(),
                                     rel=1e-3)


def test_fit_dynamics_applies_the_likelihood_override(monkeypatch):
    """``fit_dynamics(likelihood="studentt")`` samples a Student-t model and keeps ``nu``;
    without the override the spec's Normal model is sampled."""
    import bayes_scaling.fitting.dynamics as dyn

    seen = []

    def stub(model, names, **_kw):
        seen.append(("nu" in model.named_vars, "nu" in names))
        raise Stop("stop")

    monkeypatch.setattr(dyn, "sample_gated", stub)
    curves = load_curves(reference_table(), warmup_fraction=0.0)
    for likelihood in ("studentt", None):
        with pytest.raises(Stop):
            dyn.fit_dynamics(FIXED_B, curves, likelihood=likelihood, curve_offsets="none",
                             chains=2, random_seed=1)
    assert seen == [(True, True), (False, False)]


def test_cli_backtest_passes_likelihood_to_curve_refits_and_refuses_it_for_runs(
        monkeypatch, tmp_path, capsys):
    import bayes_scaling.evaluate.curve_backtest as cb
    from bayes_scaling.cli.app import main

    got = {}

    def stub(model, curves, **kw):
        got.update(kw)
        raise Stop("stopped after recording the options")

    monkeypatch.setattr(cb, "fit_dynamics", stub)
    path = tmp_path / "curves.csv"
    synthetic_curves(3).to_csv(path, index=False)   # 5 sizes: one can be held out
    rc = main(["backtest", str(path), "--model", FIXED_B, "--holdout-top", "1",
               "--likelihood", "studentt", "--curve-offsets", "none", "--warmup-fraction", "0",
               "--json", "-q"])
    assert rc == 2 and got["likelihood"] == "studentt" and got["curve_offsets"] == "none"
    capsys.readouterr()
    assert main(["backtest", "chinchilla", "--model", "chinchilla", "--likelihood",
                 "studentt"]) == 2
    err = capsys.readouterr().err
    assert "apply to curve-model backtests" in err and len(err.strip().splitlines()) == 1
