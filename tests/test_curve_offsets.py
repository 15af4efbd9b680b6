"""Curve laws without whole-curve offsets (``curve_offsets = "none"``): the spec and CLI option,
the default unchanged, the likelihood it builds, and a small seeded recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_scaling.data.curves import load_curves
from bayes_scaling.errors import SpecError
from bayes_scaling.fitting.dynamics import use_curve_effects
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.spec import ModelSpec, load_spec
from tests.test_residual import FIXED_B, REFERENCE_SHA, reference_table

TRUTH = {"log_n_c": np.log(8.8e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3),
         "alpha_s": 0.76}
SIGMA = 0.01


def test_spec_option_round_trips_keeps_the_default_hash_and_refuses_bad_input():
    spec = load_spec(FIXED_B)
    assert spec.likelihood.curve_offsets == "curve" and spec.sha256() == REFERENCE_SHA
    assert "curve_offsets" not in spec.to_dict()["likelihood"]
    none = spec.with_curve_offsets("none")
    assert none.likelihood.curve_offsets == "none" and none.sha256() != REFERENCE_SHA
    assert ModelSpec.from_json(none.to_json()) == none
    assert none.with_curve_offsets("curve") == spec
    assert none.with_residual("ou").likelihood.curve_offsets == "none"
    raw = spec.to_dict()
    with pytest.raises(SpecError, match="must be one of curve, none"):
        ModelSpec.from_dict({**raw, "likelihood": {**raw["likelihood"], "curve_offsets": "run"}})
    chin = load_spec("chinchilla").to_dict()
    chin["likelihood"]["curve_offsets"] = "none"
    with pytest.raises(SpecError, match="needs a curve law"):
        ModelSpec.from_dict(chin)


def test_the_spec_decides_the_curve_effects_and_an_explicit_choice_wins():
    curves = load_curves(reference_table(), warmup_fraction=0.0)
    spec = load_spec(FIXED_B)
    assert use_curve_effects(spec, curves, None) is True
    assert use_curve_effects(spec.with_curve_offsets("none"), curves, None) is False
    assert use_curve_effects(spec.with_curve_offsets("none"), curves, True) is True
    assert use_curve_effects(spec, curves, False) is False
    single = load_curves(reference_table().groupby("run_id").tail(1), warmup_fraction=0.0)
    assert use_curve_effects(spec, single, None) is False  # one point per curve: no offsets


def test_no_offsets_likelihood_is_the_plain_normal_of_the_law():
    """At a random point, the observed term of the model without offsets equals the sum of
    Normal log densities of the table's log losses around the law (numpy), and it has no
    ``sigma_curve``; the model with offsets differs (the offsets are not silently dropped)."""
    import pytensor

    from bayes_scaling.model.build_curves import build_dynamics_model

    spec = load_spec(FIXED_B).with_curve_offsets("none")
    curves = load_curves(reference_table(), warmup_fraction=0.0)
    law = CURVE_LAWS[spec.law]
    model = build_dynamics_model(spec, curves, curve_effects=use_curve_effects(spec, curves,
                                                                               None))
    assert "sigma_curve" not in model.named_vars
    rng = np.random.default_rng(5)
    point = {k: v + 0.1 * rng.standard_normal(np.shape(v))
             for k, v in model.initial_point().items()}
    outs = model.replace_rvs_by_values([model[p] for p in (*law.params, "sigma")])
    natural = pytensor.function(model.value_vars, outs, on_unused_input="ignore")(
        *(point[v.name] for v in model.value_vars))
    theta = dict(zip(law.params, (float(v) for v in natural[:-1]), strict=True))
    mu = law.log_mean(*curves.law_inputs(law.inputs), **theta)
    expected = stats.norm.logpdf(curves.log_loss, mu, float(natural[-1])).sum()
    observed = model.compile_logp(vars=[model["log_loss"]])(point)
    assert float(observed) == pytest.approx(expected, rel=1e-9)
    with_offsets = build_dynamics_model(load_spec(FIXED_B), curves)
    assert "sigma_curve" in with_offsets.named_vars


def test_cli_refuses_curve_offsets_for_runs_models(capsys):
    from bayes_scaling.cli.app import main

    assert main(["fit", "chinchilla", "--model", "chinchilla", "--curve-offsets", "none",
                 "--out", "x.nc"]) == 2
    err = capsys.readouterr().err
    assert "apply to curve models" in err and len(err.strip().splitlines()) == 1


def synthetic_curves(seed: int) -> pd.DataFrame:
    """10 curves (5 sizes x 2 lengths) x 12 checkpoints from the law, iid noise SIGMA."""
    rng = np.random.default_rng(seed)
    law = CURVE_LAWS[FIXED_B]
    rows = []
    for i, n in enumerate(np.geomspace(2e7, 6e8, 5)):
        for j, top in enumerate((2000, 8000)):
            steps = np.unique(np.geomspace(top / 20, top, 12).round())
            mu = law.log_mean(np.log(n), np.log(steps), 0.0, **TRUTH, log_c_anneal=-2.0)
            loss = np.exp(mu + SIGMA * rng.standard_normal(steps.size))
            rows += [{"run_id": f"r{i}{j}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
                      "loss": y} for s, y in zip(steps, loss, strict=True)]
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_no_offsets_fit_recovers_the_constants():
    """Seeded curves with known constants and noise: without offsets, every constant and
    sigma inside its 98% interval, and alpha_N learned (the 90% interval of log alpha_N at
    most half the prior's), so a model that returns its prior fails."""
    from bayes_scaling.fitting.dynamics import fit_dynamics

    curves = load_curves(synthetic_curves(11), warmup_fraction=0.0, max_points_per_curve=None)
    fit = fit_dynamics(FIXED_B, curves, curve_offsets="none", chains=2, draws=300, tune=300,
                       random_seed=4, retries=0)
    assert "sigma_curve" not in fit.posterior and fit.meta["curve_offsets"] == "none"
    for name, truth in {**TRUTH, "sigma": SIGMA}.items():
        lo, hi = np.quantile(fit.posterior[name].values, [0.01, 0.99])
        assert lo <= truth <= hi, (name, lo, truth, hi)
    lo, hi = np.quantile(np.log(fit.posterior["alpha_n"].values), [0.05, 0.95])
    prior_sd = load_spec(FIXED_B).priors["alpha_n"].kwargs["sigma"]
    assert hi - lo < 0.5 * 2 * 1.645 * prior_sd
