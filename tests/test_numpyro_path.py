"""The default numpyro fit runs through this package's own loop (``sampling._sample_numpyro_until``,
which jits the start points' log density) and must draw exactly what PyMC's
``sample_numpyro_nuts`` draws with the same seed: same kernel, seed derivation, start points and
sample statistics, so the switch changed no fit."""

from __future__ import annotations

import numpy as np

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.model import device, sampling
from bayes_scaling.model.build import build_model
from bayes_scaling.model.spec import load_spec
from bayes_scaling.testing import synthetic_runs


def test_the_default_fit_draws_what_pymcs_numpyro_sampler_draws():
    from pymc.sampling.jax import sample_numpyro_nuts

    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"], noise=0.01, seed=3)
    device.setup_jax(2)
    device.select("cpu")
    ours_model = build_model(load_spec("chinchilla"), runs)
    theirs_model = build_model(load_spec("chinchilla"), runs)
    with sampling._quiet():
        ours, _ = sampling.sample(ours_model, chains=2, draws=60, tune=60, random_seed=11,
                                  capped_warmup=False)
        theirs = sample_numpyro_nuts(
            draws=60, tune=60, chains=2, target_accept=0.9, random_seed=11, model=theirs_model,
            progressbar=False, chain_method=sampling._chain_method(2, theirs_model),
            compute_convergence_checks=False, idata_kwargs={"log_likelihood": False},
            nuts_kwargs=sampling._nuts_kwargs(theirs_model, False))
    names = sorted(ours.posterior.data_vars)
    assert names == sorted(theirs.posterior.data_vars) and "alpha" in names
    for v in names:
        np.testing.assert_array_equal(np.asarray(ours.posterior[v]),
                                      np.asarray(theirs.posterior[v]), err_msg=v)
    for v in ("diverging", "n_steps", "step_size", "lp"):
        np.testing.assert_array_equal(np.asarray(ours.sample_stats[v]),
                                      np.asarray(theirs.sample_stats[v]), err_msg=v)


def test_the_start_points_log_density_is_jitted_only_for_a_processs_first_fit(monkeypatch):
    """Op by op JAX compiles every primitive on first use (1.36 s on the Chinchilla model), a
    jit costs 0.3 s each time, and warm op by op costs 0.1 s: jit once, then not."""
    def logp(x):
        return -0.5 * (x**2).sum()

    monkeypatch.setattr(sampling, "_JAX_WARM", [])
    first = sampling._start_logp(logp)
    assert first is not logp and hasattr(first, "lower")  # a jax.jit wrapper
    assert sampling._start_logp(logp) is logp
    assert sampling._start_logp(logp) is logp
