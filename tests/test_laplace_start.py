"""The Laplace start at large data (``model.sampling.laplace_fit``, ``_whitened``).

At large data the default fit finds the mode and the inverse Hessian there, and runs NUTS in the
Laplace-whitened space ``x = mode + L u`` from overdispersed Laplace draws (PyMC's +-1 jitter is
thousands of posterior standard deviations at 24,500 runs: ``benchmarks/results/scale.md``). On
a Gaussian posterior the Laplace approximation is exact, so the matrix must equal the known
covariance; a flat direction must be clipped, not inverted to infinity; and the size rule, its
override and the fit's record must say which start was used.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.model import sampling
from bayes_scaling.testing import synthetic_runs

COV = np.array([[1.0, 0.8, 0.0], [0.8, 2.0, -0.3], [0.0, -0.3, 0.5]])


def _gaussian_model() -> pm.Model:
    with pm.Model() as model:
        pm.MvNormal("z", mu=np.array([1.0, -2.0, 0.5]), cov=COV)
    return model


def test_laplace_matrix_is_the_covariance_of_a_gaussian_posterior():
    model = _gaussian_model()
    dense = sampling.laplace_inverse_mass(model, dense=True)
    diag = sampling.laplace_inverse_mass(model, dense=False)
    np.testing.assert_allclose(dense, COV, atol=1e-6)
    np.testing.assert_allclose(diag, np.diag(COV), atol=1e-6)
    assert diag.shape == (3,)


def test_a_flat_direction_is_clipped_not_inverted_to_infinity():
    with pm.Model() as model:
        pm.Normal("sharp", 0.0, 0.1)
        pm.Normal("flat", 0.0, 1e4)  # curvature 1e-8: clipped at 1e-3
    inv = sampling.laplace_inverse_mass(model, dense=False)
    np.testing.assert_allclose(inv, [0.01, 1e3], rtol=1e-6)
    assert np.all(np.linalg.eigvalsh(sampling.laplace_inverse_mass(model, dense=True)) > 0)


def test_the_size_rule_and_its_override(monkeypatch):
    from bayes_scaling.model.build import build_model
    from bayes_scaling.model.spec import load_spec

    monkeypatch.delenv("BAYES_SCALING_INIT_MASS", raising=False)
    runs = synthetic_runs("chinchilla", PUBLISHED["epoch2024"], seed=1)
    model = build_model(load_spec("chinchilla"), runs)
    assert sampling.init_mass(model) == "identity"
    monkeypatch.setattr(sampling, "LAPLACE_MIN_OBS", runs.n_runs - 1)
    assert sampling.init_mass(model) == "laplace"
    sampling._nuts_kwargs(model)
    assert model.bayes_scaling_laplace is not None
    model.bayes_scaling_initvals = [{}]  # a model with its own start (the curve laws) ...
    assert sampling.init_mass(model) == "laplace"   # ... follows the same size rule
    monkeypatch.setenv("BAYES_SCALING_INIT_MASS", "identity")
    assert sampling.init_mass(model) == "identity"


@pytest.mark.parametrize(("curve", "n_obs", "mass"), [
    (True, 999, "identity"), (True, 1_000, "laplace"), (False, 1_000, "identity"),
    (False, 10_001, "laplace")])
def test_curve_fits_are_whitened_from_a_thousand_checkpoints(monkeypatch, curve, n_obs, mass):
    """Curve models follow their own size rule (bench_curve_whitening.py), runs theirs."""
    from types import SimpleNamespace

    monkeypatch.delenv("BAYES_SCALING_INIT_MASS", raising=False)
    model = SimpleNamespace(bayes_scaling_n_obs=n_obs, **({"bayes_scaling_curves": True}
                                                          if curve else {}))
    assert sampling.init_mass(model) == mass


def test_a_curve_model_is_marked_for_the_curve_rule():
    from bayes_scaling.model.build_curves import build_dynamics_model
    from bayes_scaling.model.spec import load_spec
    from bayes_scaling.testing import synthetic_curves

    curves = synthetic_curves(PUBLISHED["kaplan2020_dynamics"], steps=np.geomspace(300, 1e5, 120),
                              noise=0.01, seed=1)
    assert curves.n_points >= sampling.LAPLACE_MIN_CHECKPOINTS
    model = build_dynamics_model(load_spec("dynamics"), curves)
    assert sampling.init_mass(model) == "laplace"


@pytest.mark.slow
def test_a_fit_started_from_laplace_recovers_the_truth(monkeypatch):
    """Through ``fit`` (NUTS in the whitened space, draws mapped back): seeded synthetic ladder,
    the true exponents inside the 90% intervals, and intervals far narrower than the prior's."""
    from bayes_scaling.fitting.fit import fit

    monkeypatch.setenv("BAYES_SCALING_INIT_MASS", "laplace")
    truth = PUBLISHED["epoch2024"]
    runs = synthetic_runs("chinchilla", truth, noise=0.01, seed=3)
    f = fit("chinchilla", runs, chains=2, draws=400, tune=400, random_seed=5,
            calibrate=False, on_bad="warn")
    assert f.meta["init_mass"] == "laplace-whitened"  # sampled in the Laplace-whitened space
    # a 400-iteration warm-up is below WARMUP_CAP_MIN_TUNE: uncapped, and the record says so
    assert f.meta["warmup_max_tree_depth"] == 10
    assert f.diagnostics.passed, f.diagnostics.banner()
    post = f.idata["posterior"]
    for name in ("alpha", "beta"):
        lo, hi = np.quantile(np.asarray(post[name]).ravel(), [0.05, 0.95])
        assert lo <= truth[name] <= hi, (name, lo, hi, truth[name])
        assert hi - lo < 0.1, (name, lo, hi)


def test_a_failed_laplace_start_is_recorded_not_hidden(monkeypatch):
    """When the mode or Hessian is not finite the sampler starts from the identity, and says so
    (the fit's ``meta["init_mass"]`` reads what ``_nuts_kwargs`` used)."""
    monkeypatch.setenv("BAYES_SCALING_INIT_MASS", "laplace")
    model = _gaussian_model()
    monkeypatch.setattr(sampling, "laplace_fit", lambda m: None)
    sampling._nuts_kwargs(model)
    assert model.bayes_scaling_laplace is None
    assert model.bayes_scaling_init_mass_used.startswith("identity")
    monkeypatch.undo()
    monkeypatch.setenv("BAYES_SCALING_INIT_MASS", "laplace")
    sampling._nuts_kwargs(model)
    mode, cov, _ = model.bayes_scaling_laplace  # the whitened sampler's map
    assert np.all(np.isfinite(mode)) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert model.bayes_scaling_init_mass_used == "laplace"


def test_the_whitened_space_is_the_laplace_map():
    """NUTS runs on ``u`` with ``x = mode + L u``: the potential at ``u = 0`` is the one at the
    mode, a whitened Gaussian has the identity as its Hessian, the draws map back through the
    same ``x``, and the chains start at seeded, overdispersed and distinct points."""
    import jax

    model = _gaussian_model()
    mode, cov, unravel = sampling.laplace_fit(model)
    from pymc.sampling.jax import get_jaxified_logp

    potential = get_jaxified_logp(model, negative_logp=False)
    pot_u, starts, to_values = sampling._whitened((mode, cov, unravel), potential, 4, seed=3)
    assert float(pot_u(np.zeros(mode.size))) == pytest.approx(float(potential(unravel(mode))))
    np.testing.assert_allclose(np.asarray(jax.hessian(pot_u)(np.zeros(mode.size))),
                               np.eye(mode.size), atol=1e-6)
    u = np.random.default_rng(0).standard_normal((2, 5, mode.size))
    back = np.concatenate([np.asarray(v).reshape(2, 5, -1) for v in to_values(u)], axis=-1)
    np.testing.assert_allclose(back, mode + u @ np.linalg.cholesky(cov).T, rtol=1e-10)
    starts = np.asarray(starts)
    assert starts.shape == (4, mode.size) and len({tuple(r) for r in starts}) == 4
    assert 1.0 < starts.std() < 4.0  # LAPLACE_START_SCALE = 2 standard deviations
    _, again, _ = sampling._whitened((mode, cov, unravel), potential, 4, seed=3)
    np.testing.assert_array_equal(np.asarray(again), starts)


def test_a_model_with_its_own_starts_is_whitened_around_the_mode_next_to_them(monkeypatch):
    """A model that brings its own start points (the curve laws' multi-start point fit) has its
    Laplace fit started from the first of them, not from PyMC's initial point, and then runs
    whitened like any other large model."""
    import scipy.optimize

    monkeypatch.setenv("BAYES_SCALING_INIT_MASS", "laplace")
    model = _gaussian_model()
    own = np.array([3.0, 1.0, -2.0])
    model.bayes_scaling_initvals = [{"z": own}, {"z": own + 0.1}]
    seen, real = [], scipy.optimize.minimize
    monkeypatch.setattr(scipy.optimize, "minimize",
                        lambda f, x0, **kw: seen.append(np.array(x0)) or real(f, x0, **kw))
    kwargs = sampling._nuts_kwargs(model)
    np.testing.assert_allclose(seen[0], own)           # started from the model's own start
    assert "inverse_mass_matrix" not in kwargs
    mode, cov, _ = model.bayes_scaling_laplace         # ... and whitened around the mode
    np.testing.assert_allclose(mode, [1.0, -2.0, 0.5], atol=1e-4)
    np.testing.assert_allclose(cov, COV, rtol=1e-3, atol=1e-4)

