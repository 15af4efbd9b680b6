"""Sample a PyMC model with NUTS: a fast backend by default, PyMC's own as the fallback.

The only module that samples. The default backend was chosen by measurement
(``benchmarks/bench_fit.py``, results in ``benchmarks/RESULTS.md``); every backend returns an
ArviZ ``InferenceData`` with ``posterior`` and ``sample_stats`` groups and is seeded explicitly.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm

from bayes_scaling.errors import BayesScalingError

BACKENDS = ("numpyro", "nutpie", "pymc")
DEFAULT_BACKEND = "numpyro"


def _jax_setup(chains: int) -> None:
    """Expose one XLA host device per chain (before JAX starts) and cache compiled code."""
    if "jax" not in __import__("sys").modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={max(chains, 4)}".strip())
    import jax

    cache = Path(os.environ.get("BAYES_SCALING_JAX_CACHE",
                                Path.home() / ".cache" / "bayes_scaling" / "jax"))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):  # read-only home or an old JAX: run uncached
        pass


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="pymc")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield


def sample(
    model: pm.Model,
    *,
    var_names: Sequence[str] | None = None,
    backend: str = DEFAULT_BACKEND,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    target_accept: float = 0.9,
    random_seed: int = 0,
    progress: bool = False,
) -> tuple[az.InferenceData, float]:
    """Draw ``chains x draws`` posterior samples after ``tune`` warm-up steps.

    Returns the ``InferenceData`` (posterior + sample_stats) and the wall time in seconds,
    compilation included.
    """
    if backend not in BACKENDS:
        raise BayesScalingError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    for name, value in (("chains", chains), ("draws", draws)):
        if int(value) < 1:
            raise BayesScalingError(f"{name} must be >= 1, got {value}")
    if int(tune) < 0:
        raise BayesScalingError(f"tune must be >= 0, got {tune}")
    start = time.perf_counter()
    with _quiet():
        idata = _SAMPLERS[backend](model, var_names=list(var_names) if var_names else None,
                                   chains=chains, draws=draws, tune=tune,
                                   target_accept=target_accept, seed=int(random_seed),
                                   progress=progress)
    return idata, time.perf_counter() - start


def _sample_numpyro(model, *, var_names, chains, draws, tune, target_accept, seed, progress):
    _jax_setup(chains)
    import jax
    from pymc.sampling.jax import sample_numpyro_nuts

    method = "parallel" if jax.local_device_count() >= chains else "vectorized"
    return sample_numpyro_nuts(
        draws=draws, tune=tune, chains=chains, target_accept=target_accept, random_seed=seed,
        model=model, var_names=var_names, progressbar=progress, chain_method=method,
        compute_convergence_checks=False, idata_kwargs={"log_likelihood": False},
        # a model may ask for a dense mass matrix (model.py sets it for strongly correlated
        # posteriors, e.g. the curve law's (S_c, alpha_S) pair)
        nuts_kwargs={"dense_mass": bool(getattr(model, "bayes_scaling_dense_mass", False))},
        # ... and its own start points, one per chain (dynamics.fit_dynamics: near a multi-start
        # point fit, so no chain settles in a far local mode); then PyMC's +-1 jitter is off
        initvals=getattr(model, "bayes_scaling_initvals", None),
        jitter=getattr(model, "bayes_scaling_initvals", None) is None,
    )


def _sample_nutpie(model, *, var_names, chains, draws, tune, target_accept, seed, progress):
    import nutpie

    compiled = nutpie.compile_pymc_model(model, var_names=var_names)
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                          progress_bar=progress, save_warmup=False, target_accept=target_accept)
    if "depth" in idata.sample_stats:  # make the stats look like PyMC's
        idata.sample_stats["tree_depth"] = idata.sample_stats["depth"]
    return idata


def _sample_pymc(model, *, var_names, chains, draws, tune, target_accept, seed, progress):
    with model:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                          random_seed=seed, target_accept=target_accept, progressbar=progress,
                          compute_convergence_checks=False, var_names=var_names)
    return idata


_SAMPLERS = {"numpyro": _sample_numpyro, "nutpie": _sample_nutpie, "pymc": _sample_pymc}


def find_map(model: pm.Model, *, random_seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior mode (a start point or a quick look, never the answer: DESIGN.md)."""
    with _quiet(), model:
        return pm.find_MAP(progressbar=False, seed=random_seed)
