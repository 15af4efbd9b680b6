"""Run-length curve offsets (``curve_offsets = "run_length"``): the covariate, the spec and CLI
option, and a seeded recovery of the slope that a model ignoring the covariate fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.data.curves import load_curves
from bayes_scaling.errors import SpecError
from bayes_scaling.fitting.dynamics import curve_var_names, use_curve_effects
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.centre import run_length_covariate
from bayes_scaling.model.spec import ModelSpec, load_spec
from tests.test_residual import FIXED_B, LAW_TRUTH

#: The planted run-length slope (offset on log loss per unit of log schedule length), the
#: curve-to-curve sd around it and the checkpoint noise.
GAMMA, SIGMA_CURVE, SIGMA = 0.03, 0.004, 0.004
LENGTHS = (1000, 3000, 9000)
SIZES = tuple(np.geomspace(2e7, 6e8, 4))


class Stop(Exception):
    """Raised by the stubs once they have recorded their options."""


def cosine_curves(seed: int, lengths=LENGTHS, sizes=SIZES,
                  centre: float | None = None) -> pd.DataFrame:
    """Cosine curves (decay to 0.1x) of every size x schedule length, 10 checkpoints each, from
    the law, plus a whole-curve offset GAMMA * (log T - centre) + SIGMA_CURVE * z and iid
    noise SIGMA (``centre``: default the mean log length of ``lengths``)."""
    rng = np.random.default_rng(seed)
    centre = np.mean(np.log(lengths)) if centre is None else centre
    rows = []
    for i, n in enumerate(sizes):
        for t in lengths:
            steps = np.unique(np.geomspace(t / 10, t, 10).round())
            rows += [{"run_id": f"n{i}_t{t}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
                      "loss": 1.0, "lr_schedule": "cosine", "total_steps": float(t),
                      "final_lr_fraction": 0.1} for s in steps]
    frame = pd.DataFrame(rows)
    table = load_curves(frame, warmup_fraction=0.0, max_points_per_curve=None)
    law = CURVE_LAWS[FIXED_B]
    mu = law.log_mean(*table.law_inputs(law.inputs), **LAW_TRUTH)
    x = np.log(table.frame["total_steps"].to_numpy()) - centre
    off = GAMMA * x + SIGMA_CURVE * rng.standard_normal(table.n_curves)[table.curve_index]
    out = table.frame[["run_id", "n_params", "steps", "batch_size_tokens", "lr_schedule",
                       "total_steps"]].copy()
    out["final_lr_fraction"] = 0.1
    out["loss"] = np.exp(mu + off + SIGMA * rng.standard_normal(table.n_points))
    return out


def test_covariate_is_the_centred_log_schedule_length_and_zero_without_one():
    curves = load_curves(cosine_curves(1), warmup_fraction=0.0)
    x, centre = run_length_covariate(curves)
    assert centre == pytest.approx(np.mean(np.log(LENGTHS)))
    lengths = curves.frame.groupby("run_id", sort=False)["total_steps"].first().to_numpy()
    np.testing.assert_allclose(x, np.log(lengths) - centre)
    x2, c2 = run_length_covariate(curves, 1.0, training=False)  # held out: the fit's centre
    assert c2 == 1.0 and np.allclose(x2, np.log(lengths) - 1.0)
    x4, c4 = run_length_covariate(curves, None, training=False)  # the fit saw no length
    assert c4 is None and np.all(x4 == 0.0)
    constant = load_curves(cosine_curves(1).drop(columns=["total_steps", "lr_schedule",
                                                          "final_lr_fraction"]),
                           warmup_fraction=0.0)
    x3, c3 = run_length_covariate(constant)
    assert c3 is None and np.all(x3 == 0.0)


def test_spec_option_round_trips_and_keeps_offsets_and_slope():
    spec = load_spec(FIXED_B).with_curve_offsets("run_length")
    assert spec.likelihood.curve_offsets == "run_length"
    assert ModelSpec.from_json(spec.to_json()) == spec
    curves = load_curves(cosine_curves(1), warmup_fraction=0.0)
    assert use_curve_effects(spec, curves, None) is True
    names = curve_var_names(spec, curves, True)
    assert "sigma_curve" in names and "run_length_slope" in names
    assert "run_length_slope" not in curve_var_names(load_spec(FIXED_B), curves, True)
    raw = spec.to_dict()
    with pytest.raises(SpecError, match="curve, none, run_length"):
        ModelSpec.from_dict({**raw, "likelihood": {**raw["likelihood"],
                                                   "curve_offsets": "runlength"}})


def test_model_has_the_slope_with_its_prior_and_the_training_centre():
    from bayes_scaling.model.build_curves import RUN_LENGTH_SLOPE_PRIOR, build_dynamics_model

    curves = load_curves(cosine_curves(2), warmup_fraction=0.0)
    model = build_dynamics_model(load_spec(FIXED_B).with_curve_offsets("run_length"), curves)
    assert model.bayes_scaling_run_length_centre == pytest.approx(run_length_covariate(
        curves)[1])
    assert "run_length_slope" in model.named_vars and "sigma_curve" in model.named_vars
    logp = model.compile_logp(vars=[model["run_length_slope"]])
    point = model.initial_point()
    sd = RUN_LENGTH_SLOPE_PRIOR.kwargs["sigma"]
    at = {**point, "run_length_slope": np.array(sd)}
    assert float(logp(point) - logp(at)) == pytest.approx(0.5)  # Normal(0, sd) prior
    plain = build_dynamics_model(load_spec(FIXED_B), curves)
    assert "run_length_slope" not in plain.named_vars


def test_cli_passes_run_length_to_curve_fits_and_refuses_a_bad_value(monkeypatch, tmp_path,
                                                                      capsys):
    import bayes_scaling.fitting.dynamics as dyn
    from bayes_scaling.cli.app import main

    got = {}

    def stub(spec, curves, **kw):
        got["offsets"] = spec.likelihood.curve_offsets
        raise Stop("stopped after recording the options")

    monkeypatch.setattr(dyn, "fit_dynamics", stub)
    path = tmp_path / "curves.csv"
    cosine_curves(3).to_csv(path, index=False)
    with pytest.raises(Stop):
        main(["fit", str(path), "--model", FIXED_B, "--curve-offsets", "run_length",
              "--warmup-fraction", "0", "--out", str(tmp_path / "f.nc"), "-q"])
    assert got["offsets"] == "run_length"
    capsys.readouterr()
    rc = main(["fit", str(path), "--model", FIXED_B, "--curve-offsets", "length",
               "--out", str(tmp_path / "f.nc"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--curve-offsets" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.nc").exists()


@pytest.mark.slow
def test_run_length_fit_recovers_the_slope_and_predicts_a_longer_run():
    """Seeded cosine curves with a planted run-length slope: its 90% interval holds the truth
    and is learned (under a third of the prior's), and curves 3x longer than any trained one
    are predicted within 1% (median) though their offset mean is +3.3%; a model or query that
    ignores the covariate fails."""
    from bayes_scaling.fitting.dynamics import fit_dynamics
    from bayes_scaling.model.build_curves import RUN_LENGTH_SLOPE_PRIOR
    from bayes_scaling.query.schedules import checkpoint_draws

    curves = load_curves(cosine_curves(7), warmup_fraction=0.0, max_points_per_curve=None)
    fit = fit_dynamics(FIXED_B, curves, curve_offsets="run_length", chains=2, draws=300,
                       tune=300, random_seed=5, retries=0)
    assert fit.meta["curve_offsets"] == "run_length"
    assert fit.meta["run_length_centre"] == pytest.approx(np.mean(np.log(LENGTHS)))
    lo, hi = np.quantile(fit.posterior["run_length_slope"].values, [0.05, 0.95])
    assert lo <= GAMMA <= hi, (lo, GAMMA, hi)
    assert hi - lo < 2 * 1.645 * RUN_LENGTH_SLOPE_PRIOR.kwargs["sigma"] / 3
    longer = load_curves(cosine_curves(8, lengths=(27000,), sizes=np.geomspace(4e7, 3e8, 2),
                                       centre=fit.meta["run_length_centre"]),
                         warmup_fraction=0.0, max_points_per_curve=None)
    pred = np.median(checkpoint_draws(fit, longer, random_seed=1), axis=0)
    err = np.median(np.abs(pred / longer.loss - 1))
    assert err < 0.01, err
