"""Sampling: real Chinchilla runs, synthetic truth, save/load (slow: runs NUTS)."""

from __future__ import annotations

import subprocess
import sys

import arviz as az
import numpy as np
import pytest

from bayes_scaling.constants import EPOCH2024_95, PUBLISHED
from bayes_scaling.errors import FitFileError
from bayes_scaling.fitting.fit import fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import predict_loss
from bayes_scaling.testing import synthetic_runs, to_sampling
from tests.conftest import SMALL
from tests.learning import assert_learned, prior_draws, to_sampler_scale

P = PUBLISHED["hoffmann2022"]


@pytest.mark.slow
def test_chinchilla_posterior_lands_in_epochs_intervals(chinchilla_posterior):
    fit_ = chinchilla_posterior
    assert fit_.diagnostics.passed, fit_.diagnostics.problems
    consts = fit_.constants()
    for name in ("e", "alpha", "beta"):
        lo, hi = EPOCH2024_95[name]
        assert lo < float(consts[name].median()) < hi, name
    assert "kappa" in fit_.posterior and "tau0" in fit_.posterior


@pytest.mark.slow
def test_saved_fit_round_trips_and_checks_its_hashes(chinchilla_posterior, tmp_path):
    path = chinchilla_posterior.save(tmp_path / "fit.nc")
    loaded = ScalingFit.load(path)
    assert loaded.spec == chinchilla_posterior.spec
    assert loaded.runs.fingerprint() == chinchilla_posterior.runs.fingerprint()
    a = predict_loss(chinchilla_posterior, 7e10, 1.4e12, random_seed=1).summary
    b = predict_loss(loaded, 7e10, 1.4e12, random_seed=1).summary
    assert a["median"].iloc[0] == b["median"].iloc[0]
    assert loaded.meta["seed"] == chinchilla_posterior.meta["seed"]
    assert "pymc" in loaded.meta["versions"]
    # tamper with the stored spec: the hash check must refuse it
    import h5py

    with h5py.File(path, "r+") as h5:
        spec = h5["posterior"].attrs["spec_json"]
        h5["posterior"].attrs["spec_json"] = spec.replace('"sigma": 0.05', '"sigma": 0.06')
    with pytest.raises(FitFileError, match="hash"):
        ScalingFit.load(path)


@pytest.mark.slow
def test_loading_and_querying_a_fit_does_not_import_pymc(chinchilla_posterior, tmp_path):
    path = chinchilla_posterior.save(tmp_path / "fit.nc")
    code = ("import sys; from bayes_scaling.fitting.fit import ScalingFit; "
            "from bayes_scaling.query.predict import predict_loss; "
            "from bayes_scaling.query.allocate import compute_optimal; "
            f"f = ScalingFit.load({str(path)!r}); predict_loss(f, 7e10, 1.4e12); "
            "compute_optimal(f, 5.88e23); assert 'pymc' not in sys.modules, 'pymc imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_recovers_synthetic_truth_one_group():
    """Every constant learned: truth inside its 90% interval, the interval <= 1/4 of the prior's
    (a sampler returning the prior passes "truth inside" alone: issue 20)."""
    runs = synthetic_runs("chinchilla", P, noise=0.01, seed=3)
    f = fit("chinchilla", runs, random_seed=4, calibrate=False, **SMALL)
    assert f.diagnostics.passed, f.diagnostics.problems
    truth = to_sampling("chinchilla", P)
    assert_learned(f, truth, truth)


#: Every constant about 2 prior sds from its prior median on the sampler's scale (log E: -2.0,
#: the N and D terms at the ladder's centre: +2.0, alpha and beta: +2.0), so a prior that pulls
#: would show: A and B are set so the terms are e^1.0 nats at the default ladder's centre.
FAR = {"e": 0.6, "a": 1.5485e7, "b": 1.16404e8, "alpha": 0.82, "beta": 0.8}


@pytest.mark.slow
def test_recovers_a_ladder_far_from_the_prior_centre():
    runs = synthetic_runs("chinchilla", FAR, noise=0.01, seed=5)
    f = fit("chinchilla", runs, random_seed=7, calibrate=False, **SMALL)
    assert f.diagnostics.passed, f.diagnostics.problems
    truth = to_sampling("chinchilla", FAR)
    prior_smp, _ = prior_draws(f.spec, f.meta["centre"])
    true_smp = to_sampler_scale(f.spec, truth, f.meta["centre"])
    z = {p: (np.log(true_smp[p]) if p in ("alpha", "beta") else true_smp[p]) for p in truth}
    for p, v in z.items():  # the premise: every constant sits far out in its prior
        draws = np.log(prior_smp[p]) if p in ("alpha", "beta") else prior_smp[p]
        assert abs(v - np.median(draws)) > 1.8 * np.std(draws), p
    assert_learned(f, truth, truth)


@pytest.mark.slow
def test_recovers_synthetic_truth_four_groups_and_covers_fresh_runs():
    offsets = {"a": {"log_e": 0.0}, "b": {"log_e": 0.06, "log_b": 0.2},
               "c": {"log_e": -0.05, "log_a": -0.2}, "d": {"log_e": 0.03}}
    runs = synthetic_runs("chinchilla", P, noise=0.01, group_offsets=offsets, seed=14)
    f = fit("chinchilla", runs, random_seed=6, calibrate=False, **SMALL)
    assert f.diagnostics.passed, f.diagnostics.problems
    truth = to_sampling("chinchilla", P)
    checks = [(np.asarray(f.posterior[p].sel(group=g)).ravel(), truth[p] + offs.get(p, 0.0))
              for g, offs in offsets.items() for p in ("log_e", "log_a", "log_b")]
    checks += [(np.asarray(f.posterior[p]).ravel(), truth[p]) for p in ("alpha", "beta")]
    # 14 constants: each inside its 99% interval, and ~90% of them inside their 90% intervals
    inside90 = []
    for draws, true in checks:
        lo99, lo90, hi90, hi99 = np.quantile(draws, [0.005, 0.05, 0.95, 0.995])
        assert lo99 < true < hi99
        inside90.append(lo90 < true < hi90)
    assert np.mean(inside90) >= 0.75, inside90
    # the 90% predictive band covers about 90% of fresh runs from the same ladder
    fresh = synthetic_runs("chinchilla", P, noise=0.01, group_offsets=offsets, seed=99)
    inside = []
    for g in offsets:
        sub = fresh.subset(np.asarray(fresh.group_index) == fresh.group_names.index(g))
        s = predict_loss(f, sub.n, sub.d, group=g, random_seed=1).summary
        inside += list((sub.loss >= s["lo_90"]) & (sub.loss <= s["hi_90"]))
    assert 0.8 <= np.mean(inside) <= 0.98, np.mean(inside)


@pytest.mark.slow
def test_sampling_until_an_ess_target_stops_early_and_keeps_the_group_coords():
    offsets = {"a": {"log_e": 0.0}, "b": {"log_e": 0.06, "log_b": 0.2},
               "c": {"log_e": -0.05, "log_a": -0.2}, "d": {"log_e": 0.03}}
    runs = synthetic_runs("chinchilla", P, noise=0.01, group_offsets=offsets, seed=14)
    f = fit("chinchilla", runs, random_seed=6, calibrate=False, draws=2000, ess_target=400)
    d = f.diagnostics
    # stopped in 200-draw blocks as soon as the target was met, well before the 2000 cap
    assert d.draws % 200 == 0 and d.draws < 2000
    assert d.passed, d.problems
    assert d.min_ess_bulk >= 400 and d.min_ess_tail >= 400 and d.max_rhat <= 1.01
    assert f.meta["draws"] == d.draws and f.meta["ess_target"] == 400
    assert list(f.posterior["log_e"].coords["group"].values) == ["a", "b", "c", "d"]
    assert "diverging" in f.idata.sample_stats
    truth = to_sampling("chinchilla", P)
    draws = np.asarray(f.posterior["alpha"]).ravel()
    assert np.quantile(draws, 0.005) < truth["alpha"] < np.quantile(draws, 0.995)


def test_ess_target_is_refused_without_numpyro_or_when_not_positive():
    from bayes_scaling.errors import BayesScalingError

    runs = synthetic_runs("chinchilla", P, noise=0.01, seed=1)
    with pytest.raises(BayesScalingError, match="numpyro"):
        fit("chinchilla", runs, backend="pymc", ess_target=400, calibrate=False)
    with pytest.raises(BayesScalingError, match="positive"):
        fit("chinchilla", runs, ess_target=0, calibrate=False)


def test_large_data_runs_chains_one_after_another_on_the_cpu(monkeypatch):
    from bayes_scaling.model import device as devices
    from bayes_scaling.model import sampling as inference
    from bayes_scaling.model.build import build_model
    from bayes_scaling.model.spec import load_spec

    monkeypatch.delenv("BAYES_SCALING_CHAIN_METHOD", raising=False)
    runs = synthetic_runs("chinchilla", P, noise=0.01, seed=1)
    model = build_model(load_spec("chinchilla"), runs)
    devices.setup_jax(4)
    assert inference._n_observed(model) == runs.n_runs
    assert inference._chain_method(4, model) == "parallel"
    monkeypatch.setattr(inference, "PARALLEL_MAX_OBS", runs.n_runs - 1)
    assert inference._chain_method(4, model) == "sequential"
    monkeypatch.setenv("BAYES_SCALING_CHAIN_METHOD", "vectorized")
    assert inference._chain_method(4, model) == "vectorized"


@pytest.mark.parametrize(("precision", "n_obs", "method"), [
    ("float64", 10_001, "sequential"), ("float32", 24_500, "parallel"),
    ("float32", 32_768, "parallel"), ("float32", 32_769, "sequential")])
def test_float32_data_run_chains_in_parallel_below_the_allocator_threshold(
        monkeypatch, precision, n_obs, method):
    """Float32 per-observation buffers stay under glibc's 128 kB mmap threshold up to 32,768
    values, where parallel chains do not grow in memory (parallel_memory.md)."""
    from types import SimpleNamespace

    from bayes_scaling.model import device as devices
    from bayes_scaling.model import sampling as inference

    monkeypatch.delenv("BAYES_SCALING_CHAIN_METHOD", raising=False)
    devices.setup_jax(4)
    model = SimpleNamespace(bayes_scaling_n_obs=n_obs, bayes_scaling_precision=precision)
    assert inference._chain_method(4, model) == method


@pytest.mark.parametrize("retries", [0, 1])
def test_a_failed_gate_is_resampled_with_smaller_steps_and_longer_warmup(monkeypatch, retries):
    """``sample_gated`` (used by ``fit`` and ``fit_dynamics``): a fit with divergences is
    resampled at the retry's target_accept with twice the warm-up, and the last verdict kept."""
    from bayes_scaling.fitting.fit import sample_gated
    from bayes_scaling.model import sampling as inference

    calls = []

    def fake_sample(model, *, var_names, backend, chains, draws, tune, target_accept,
                    random_seed, progress, ess_target, capped_warmup=True, device=None):
        calls.append((target_accept, tune, capped_warmup))
        diverging = np.zeros((chains, draws), dtype=bool)
        diverging[0, :3] = len(calls) == 1  # the first attempt diverges, the second does not
        x = np.random.default_rng(len(calls)).standard_normal((chains, draws))
        return az.from_dict(posterior={"x": x}, sample_stats={"diverging": diverging}), 0.1

    monkeypatch.setattr(inference, "sample", fake_sample)
    messages = []
    run = sample_gated(None, ["x"], backend="numpyro", chains=2, draws=1000, tune=300,
                       target_accept=0.95, random_seed=1, retries=retries,
                       retry_target_accept=0.99, tell=messages.append)
    if retries:
        # divergences only: the draws stay; the retry warms up at NUTS's full tree depth
        assert calls == [(0.95, 300, True), (0.99, 600, False)]
        assert run.diagnostics.passed and run.attempt == 1
        assert (run.target_accept, run.tune) == (0.99, 600)
        assert "3 divergent transitions" in messages[0]
    else:
        assert calls == [(0.95, 300, True)]
        assert not run.diagnostics.passed and run.attempt == 0 and messages == []


def test_a_retry_after_poor_mixing_also_doubles_the_draws(monkeypatch):
    from bayes_scaling.fitting.fit import sample_gated
    from bayes_scaling.model import sampling as inference

    calls = []

    def fake_sample(model, *, var_names, backend, chains, draws, tune, target_accept,
                    random_seed, progress, ess_target, capped_warmup=True, device=None):
        calls.append(draws)
        x = np.random.default_rng(len(calls)).standard_normal((chains, draws))
        if len(calls) == 1:
            x[0] += 1.0  # one chain off: r-hat fails, no divergences
        return az.from_dict(posterior={"x": x}), 0.1

    monkeypatch.setattr(inference, "sample", fake_sample)
    run = sample_gated(None, ["x"], backend="numpyro", chains=2, draws=1000, tune=300,
                       target_accept=0.9, random_seed=1, retries=1)
    assert calls == [1000, 2000] and run.diagnostics.passed


def test_chains_in_separate_modes_are_not_resampled(monkeypatch):
    """One chain settled 3 sd away from the others, each chain stationary: a retry (4x the
    cost) would not join them, so there is none, and the reason is kept; the failed verdict
    stays."""
    from bayes_scaling.fitting.fit import sample_gated
    from bayes_scaling.model import sampling as inference

    calls = []

    def fake_sample(model, *, var_names, backend, chains, draws, tune, target_accept,
                    random_seed, progress, ess_target, capped_warmup=True, device=None):
        calls.append(draws)
        x = np.random.default_rng(len(calls)).standard_normal((chains, draws))
        x[0] += 3.0  # every attempt: the same two modes
        return az.from_dict(posterior={"x": x}), 0.1

    monkeypatch.setattr(inference, "sample", fake_sample)
    messages = []
    run = sample_gated(None, ["x"], backend="numpyro", chains=4, draws=1000, tune=300,
                       target_accept=0.9, random_seed=1, retries=1, tell=messages.append)
    assert calls == [1000] and run.attempt == 0 and not run.diagnostics.passed
    assert "separate modes" in run.no_retry and "not retried" in messages[0]


def test_allocator_tuning_is_opt_in_and_passes_the_settings_to_mallopt(monkeypatch):
    """``device._tune_malloc`` (the workaround for parallel chains' memory growth) does nothing
    unless ``BAYES_SCALING_MALLOC_TUNE=1``, then hands glibc each setting (a fake libc records
    them)."""
    import ctypes
    import platform

    from bayes_scaling.model import device as inference

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda _name: FakeLibc())
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.delenv("BAYES_SCALING_MALLOC_TUNE", raising=False)
    assert inference._tune_malloc() is False and calls == []
    monkeypatch.setenv("BAYES_SCALING_MALLOC_TUNE", "1")
    assert inference._tune_malloc() is True
    assert calls == list(inference.MALLOC_SETTINGS)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    calls.clear()
    assert inference._tune_malloc() is False and calls == []
