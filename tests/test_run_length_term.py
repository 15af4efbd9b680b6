"""Run-length terms of the schedule-aware curve law (``likelihood.run_length_term``): the input
transform, the spec and CLI option, the PyMC graph, and a seeded recovery on curves drawn from
the ``anneal`` form that a fit or query ignoring the term fails."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayes_scaling.data.curves import load_curves
from bayes_scaling.errors import SpecError
from bayes_scaling.fitting.dynamics import curve_var_names
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.centre import KAPPA_PRIOR, run_length_covariate, transform_inputs
from bayes_scaling.model.spec import ModelSpec, load_spec
from tests.test_residual import FIXED_B, LAW_TRUTH

#: Planted exponent of the ``anneal`` term, curve-offset sd and checkpoint noise.
KAPPA, SIGMA_CURVE, SIGMA = 0.8, 0.002, 0.003
LENGTHS = (600, 2000, 8000)
SIZES = tuple(np.geomspace(2e7, 6e8, 4))


class Stop(Exception):
    """Raised by the stub once it has recorded its options."""


def anneal_curves(seed: int, lengths=LENGTHS, sizes=SIZES, kappa: float = KAPPA,
                  centre: float | None = None) -> pd.DataFrame:
    """Cosine curves (decay to 0.1x) of every size x length, 12 checkpoints from 20% of the
    run, drawn from the law with the ``anneal`` term (``A exp(-kappa x)``, ``x`` the centred
    log length; ``centre`` default the mean log of ``lengths``), a whole-curve offset and noise."""
    rng = np.random.default_rng(seed)
    centre = np.mean(np.log(lengths)) if centre is None else centre
    rows = [{"run_id": f"n{i}_t{t}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
             "loss": 1.0, "lr_schedule": "cosine", "total_steps": float(t),
             "final_lr_fraction": 0.1}
            for i, n in enumerate(sizes) for t in lengths
            for s in np.unique(np.geomspace(t / 5, t, 12).round())]
    table = load_curves(pd.DataFrame(rows), warmup_fraction=0.0, max_points_per_curve=None)
    law = CURVE_LAWS[FIXED_B]
    x = np.log(table.frame["total_steps"].to_numpy()) - centre
    inputs = transform_inputs(law.inputs, table.law_inputs(law.inputs), "anneal", kappa, x)
    mu = law.log_mean(*inputs, **LAW_TRUTH)
    out = table.frame[["run_id", "n_params", "steps", "batch_size_tokens", "lr_schedule",
                       "total_steps"]].copy()
    out["final_lr_fraction"] = 0.1
    out["loss"] = np.exp(mu + SIGMA_CURVE * rng.standard_normal(table.n_curves)[
        table.curve_index] + SIGMA * rng.standard_normal(table.n_points))
    return out


def test_transform_scales_the_annealing_fraction_or_shifts_the_log_area():
    names = ("n", "s1", "anneal")
    inputs = (np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([0.5, 0.2]))
    x = np.array([0.5, -1.0])
    n, s1, a = transform_inputs(names, inputs, "anneal", 0.6, x)
    np.testing.assert_allclose(a, [0.5 * np.exp(-0.3), 0.2 * np.exp(0.6)])
    assert n is inputs[0] and s1 is inputs[1]
    n, s1, a = transform_inputs(names, inputs, "area", 0.6, x)
    np.testing.assert_allclose(s1, [3.3, 3.4])
    assert a is inputs[2]
    for term in ("none", "anneal", "area"):  # one schedule (x = 0) or kappa = 0: today's law
        for k, xx in ((0.6, np.zeros(2)), (0.0, x)):
            got = transform_inputs(names, inputs, term, k, xx)
            for g, i in zip(got, inputs, strict=True):
                np.testing.assert_array_equal(g, i)
    with pytest.raises(ValueError, match="'anneal'"):
        transform_inputs(("n", "s", "b"), inputs, "anneal", 0.6, x)


def test_spec_option_round_trips_names_kappa_and_refuses_bad_values():
    spec = load_spec(FIXED_B).with_run_length_term("anneal")
    assert spec.likelihood.run_length_term == "anneal"
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert load_spec(FIXED_B).to_dict() == ModelSpec.from_json(
        load_spec(FIXED_B).to_json()).to_dict()  # "none" keeps old hashes: not written
    assert "run_length_term" not in load_spec(FIXED_B).to_dict()["likelihood"]
    curves = load_curves(anneal_curves(1), warmup_fraction=0.0)
    assert "run_length_kappa" in curve_var_names(spec, curves, True)
    assert "run_length_kappa" not in curve_var_names(load_spec(FIXED_B), curves, True)
    raw = spec.to_dict()
    with pytest.raises(SpecError, match="none, anneal, area"):
        ModelSpec.from_dict({**raw, "likelihood": {**raw["likelihood"],
                                                   "run_length_term": "length"}})
    with pytest.raises(SpecError, match="schedule term"):
        load_spec("dynamics").with_run_length_term("anneal")


def test_graph_has_kappa_with_its_prior_and_reads_it_only_across_lengths():
    from bayes_scaling.model.build_curves import build_dynamics_model

    spec = load_spec(FIXED_B).with_run_length_term("anneal")
    curves = load_curves(anneal_curves(2), warmup_fraction=0.0)
    model = build_dynamics_model(spec, curves)
    assert model.bayes_scaling_run_length_centre == pytest.approx(run_length_covariate(
        curves)[1])
    prior = model.compile_logp(vars=[model["run_length_kappa"]])
    full = model.compile_logp()
    point = model.initial_point()
    at = {**point, "run_length_kappa": np.array(KAPPA_PRIOR.kwargs["sigma"])}
    assert float(prior(point) - prior(at)) == pytest.approx(0.5)   # Normal(0, 1)
    assert abs(float(full(point) - full(at)) - 0.5) > 1.0          # the likelihood reads it
    one = load_curves(anneal_curves(2, lengths=(2000,)), warmup_fraction=0.0)
    model1 = build_dynamics_model(spec, one)                      # one length: x = 0
    full1, p1 = model1.compile_logp(), model1.initial_point()
    at1 = {**p1, "run_length_kappa": np.array(1.0)}
    assert float(full1(p1) - full1(at1)) == pytest.approx(0.5)
    assert "run_length_kappa" not in build_dynamics_model(load_spec(FIXED_B), curves).named_vars


def test_cli_passes_the_term_to_curve_fits_and_refuses_a_bad_value(monkeypatch, tmp_path,
                                                                   capsys):
    import bayes_scaling.fitting.dynamics as dyn
    from bayes_scaling.cli.app import main

    got = {}

    def stub(spec, curves, **kw):
        got["term"] = spec.likelihood.run_length_term
        raise Stop("stopped after recording the options")

    monkeypatch.setattr(dyn, "fit_dynamics", stub)
    path = tmp_path / "curves.csv"
    anneal_curves(3).to_csv(path, index=False)
    with pytest.raises(Stop):
        main(["fit", str(path), "--model", FIXED_B, "--run-length-term", "anneal",
              "--warmup-fraction", "0", "--out", str(tmp_path / "f.nc"), "-q"])
    assert got["term"] == "anneal"
    capsys.readouterr()
    rc = main(["fit", str(path), "--model", FIXED_B, "--run-length-term", "length",
               "--out", str(tmp_path / "f.nc"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--run-length-term" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.nc").exists()


@pytest.mark.slow
def test_anneal_term_fit_recovers_kappa_and_predicts_a_longer_run(tmp_path):
    """Curves drawn from the ``anneal`` form: kappa's 90% interval holds the truth and is
    learned (under a third of the prior's width); a fit saved and loaded predicts curves 4x
    longer than any trained one within 0.5% (median), while the same draws read without the
    run's length (x = 0) miss them by more than twice that error and 0.5%."""
    from bayes_scaling.fitting.dynamics import fit_dynamics
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.query.schedules import checkpoint_draws

    # min_steps (the run-length-independent early cut) drops the 600-step runs' first point
    curves = load_curves(anneal_curves(7), warmup_fraction=0.0, min_steps=130,
                         max_points_per_curve=8)
    fit = fit_dynamics(FIXED_B, curves, run_length_term="anneal", chains=2, draws=200,
                       tune=200, random_seed=5, retries=0)
    assert fit.meta["run_length_term"] == "anneal"
    lo, hi = np.quantile(fit.posterior["run_length_kappa"].values, [0.05, 0.95])
    assert lo <= KAPPA <= hi, (lo, KAPPA, hi)
    assert hi - lo < 2 * 1.645 * KAPPA_PRIOR.kwargs["sigma"] / 3
    # this small fit may fail the gate on sigma_curve (few curves); kappa itself has converged
    kappa_rhat = float(az.rhat(fit.posterior["run_length_kappa"].values))
    assert kappa_rhat < 1.02, kappa_rhat
    fit.save(tmp_path / "f.nc")
    fit = ScalingFit.load(tmp_path / "f.nc")
    assert fit.meta["warmup_rule"] == {"warmup_fraction": 0.0, "min_steps": 130.0}
    longer = load_curves(anneal_curves(8, lengths=(32000,), sizes=np.geomspace(4e7, 3e8, 2),
                                       centre=fit.meta["run_length_centre"]),
                         warmup_fraction=0.0, max_points_per_curve=None)
    pred = np.median(checkpoint_draws(fit, longer, band="law", random_seed=1), axis=0)
    err = np.median(np.abs(pred / longer.loss - 1))
    assert err < 0.005, err
    from bayes_scaling.query.curves import curve_law_log_mean
    from bayes_scaling.query.predict import group_theta

    theta = {k: v[:, None] for k, v in group_theta(fit, None).items()}
    blind = np.median(curve_law_log_mean(fit, longer.n, longer.s, longer.b, None, theta,
                                         s1_anneal=(longer.forward_area, longer.anneal)),
                      axis=0)                            # the query without the length: x = 0
    err0 = np.median(np.abs(np.exp(blind) / longer.loss - 1))
    assert err0 > max(2 * err, 0.005), (err0, err)
