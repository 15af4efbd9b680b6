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

import arviz as az
import numpy as np
import pymc as pm

from bayes_scaling.constants import DEFAULT_BACKEND, MAX_RHAT
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.model import device as devices
from bayes_scaling.model.gate import Diagnostics, Gate

BACKENDS = ("numpyro", "nutpie", "pymc")


#: Above this many observations of a float64 model numpyro runs the chains one after another
#: on the CPU: with one XLA host device per chain ("parallel") resident memory grows with every
#: NUTS step in proportion to the data (measured: 24,500 runs, 4 chains x 2000 steps -> 20 GB
#: peak; one after another: 1.1 GB, about 1.5x the time). The growth is glibc's allocator
#: keeping the data-sized buffers that XLA's device threads free, and only buffers above its
#: 128 kB mmap threshold grow (benchmarks/results/parallel_memory.md): 16,384 float64 values.
PARALLEL_MAX_OBS = 10_000
#: The same for a float32 model: its buffers stay below 128 kB up to 32,768 values. Measured in
#: parallel, default fits: 24,500 runs x 64 groups 1.1-1.4 GB (``bench_scale.py``), 18,040
#: checkpoints 0.85-1.0 GB (``bench_curve_speed.py``).
FLOAT32_PARALLEL_MAX_OBS = 32_768


def _n_observed(model: pm.Model) -> int:
    """Observations in the model's likelihood (a float32 model's is a ``Potential``)."""
    recorded = getattr(model, "bayes_scaling_n_obs", None)
    if recorded is not None:
        return int(recorded)
    total = 0
    for rv in model.observed_RVs:
        value = model.rvs_to_values[rv]
        data = getattr(value, "data", None)
        if data is None and hasattr(value, "get_value"):
            data = value.get_value()
        total += int(np.size(data)) if data is not None else 0
    return total


def _chain_method(chains: int, model: pm.Model) -> str:
    """How numpyro runs the chains: ``BAYES_SCALING_CHAIN_METHOD`` if set; else one host
    device per chain, unless the data are large on a CPU (then one chain after another:
    :data:`PARALLEL_MAX_OBS`, :data:`FLOAT32_PARALLEL_MAX_OBS`);
    vectorized when there are fewer devices than chains."""
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it

    forced = os.environ.get("BAYES_SCALING_CHAIN_METHOD")
    if forced in ("parallel", "vectorized", "sequential"):
        return forced
    limit = (FLOAT32_PARALLEL_MAX_OBS
             if getattr(model, "bayes_scaling_precision", None) == "float32" else PARALLEL_MAX_OBS)
    if jax.default_backend() == "cpu" and _n_observed(model) > limit:
        return "sequential"
    return "parallel" if jax.local_device_count() >= chains else "vectorized"


#: Above this many observations the chains start with a Laplace inverse mass matrix
#: (:func:`laplace_inverse_mass`) instead of the identity: at large data the posterior is narrow,
#: and with the identity NUTS spends most of its warm-up in long trajectories (measured in
#: ``benchmarks/results/warmup.md``: warm-up is 74-78% of all leapfrog steps of a default fit,
#: and a Laplace mass matrix cuts its steps by 24-37% with the chains' dispersed starts kept).
#: Below it the optimisation and Hessian cost about as much compile time as they save.
LAPLACE_MIN_OBS = 10_000
#: Curve models (``build_curves`` marks them) are whitened from this many checkpoints: the rule
#: stated before the runs of ``benchmarks/bench_curve_whitening.py`` (``curve_whitening.md``).
LAPLACE_MIN_CHECKPOINTS = 1_000


def init_mass(model: pm.Model) -> str:
    """``"laplace"`` or ``"identity"``: the starting inverse mass matrix of numpyro's NUTS;
    ``BAYES_SCALING_INIT_MASS`` overrides the size rules (:data:`LAPLACE_MIN_OBS` runs,
    :data:`LAPLACE_MIN_CHECKPOINTS` for a curve model)."""
    forced = os.environ.get("BAYES_SCALING_INIT_MASS")
    if forced in ("laplace", "identity"):
        return forced
    n = _n_observed(model)
    if getattr(model, "bayes_scaling_curves", False):
        return "laplace" if n >= LAPLACE_MIN_CHECKPOINTS else "identity"
    return "laplace" if n > LAPLACE_MIN_OBS else "identity"


def _jax_logp(model: pm.Model):
    """The model's JAX potential (minus its log density; PyMC's rewrites and translation take
    seconds on a large table), made once: the Laplace start and the sampler share it."""
    fn = getattr(model, "bayes_scaling_jax_logp", None)
    if fn is None:
        from pymc.sampling.jax import get_jaxified_logp  # lazy: loads JAX

        fn = get_jaxified_logp(model, negative_logp=False)
        model.bayes_scaling_jax_logp = fn  # type: ignore[attr-defined]
    return fn


def laplace_fit(model: pm.Model):
    """The mode of the log density in the unconstrained space and the inverse Hessian there.

    The mode is found by L-BFGS from the model's initial point, or from the first of its own
    start points when it brings them (``bayes_scaling_initvals``: the curve laws' multi-start
    point fit, so the mode found is the one next to it, not a far local one); eigenvalues of
    the Hessian are clipped at 1e-3 (a hierarchical scale drifting to zero makes it
    near-singular), so the covariance is positive definite. Returns ``(mode, cov, unravel)``
    (flat vectors; ``unravel`` maps one to the model's value variables), or None when the
    optimisation or the Hessian is not finite.
    """
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it
    from jax.flatten_util import ravel_pytree  # lazy: with JAX
    from pymc.initial_point import make_initial_point_fn  # lazy: with the sampler
    from scipy.optimize import minimize  # lazy: only this start needs it

    potential = _jax_logp(model)  # minus the log density
    own = getattr(model, "bayes_scaling_initvals", None)
    point = (make_initial_point_fn(model=model, overrides=own[0], jitter_rvs=set())(0)
             if own else model.initial_point())
    flat, unravel = ravel_pytree([np.asarray(point[v.name], dtype=np.float64)
                                  for v in model.value_vars])
    value_grad = jax.jit(jax.value_and_grad(lambda z: potential(unravel(z))))
    res = minimize(lambda z: tuple(np.asarray(v, dtype=np.float64) for v in value_grad(z)),
                   np.asarray(flat), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    if not np.all(np.isfinite(res.x)):
        return None
    hess = np.asarray(jax.jit(jax.hessian(lambda z: potential(unravel(z))))(res.x))
    if not np.all(np.isfinite(hess)):
        return None
    w, v = np.linalg.eigh(0.5 * (hess + hess.T))
    return np.asarray(res.x), (v / np.clip(w, 1e-3, None)) @ v.T, unravel


def laplace_inverse_mass(model: pm.Model, dense: bool) -> np.ndarray | None:
    """The inverse Hessian of minus the log density at its mode (:func:`laplace_fit`), dense
    ``(d, d)`` or its diagonal; None when it is not finite."""
    fitted = laplace_fit(model)
    return None if fitted is None else _as_mass(fitted[1], dense)


def _as_mass(cov: np.ndarray, dense: bool) -> np.ndarray:
    return cov if dense else np.diag(cov).copy()


#: Spread of the chains' starting points around the Laplace mode, in Laplace standard
#: deviations (overdispersed, so that r-hat can still see chains that do not mix).
LAPLACE_START_SCALE = 2.0


#: Deepest NUTS tree during warm-up: at most ``2**WARMUP_MAX_TREE_DEPTH`` leapfrog steps per
#: warm-up iteration (numpyro's ``max_tree_depth=(warm-up, sampling)``); sampling keeps NUTS's
#: usual depth of 10. In the first adaptation windows the step size and mass matrix are still
#: poor and trajectories run to hundreds of steps (``benchmarks/results/warmup.md``), yet those
#: draws only feed the adaptation; the cap halves a default fit's wall time with the same ESS
#: and r-hat (chosen by measurement over several laws and ladders:
#: ``benchmarks/results/warmup_depth.md``). A retry after a failed gate lifts the cap.
WARMUP_MAX_TREE_DEPTH = 5
MAX_TREE_DEPTH = 10
#: The cap applies only to warm-ups at least this long (the default's length, where it was
#: measured): with 2 chains x 400 warm-up iterations a capped warm-up left one seed of the
#: Chinchilla law with r-hat 1.44 on ``nu`` and 29 divergences, an uncapped one did not.
WARMUP_CAP_MIN_TUNE = 1000


def warmup_depth(capped: bool = True) -> int:
    """The warm-up's maximum tree depth: :data:`WARMUP_MAX_TREE_DEPTH` when ``capped``, else
    :data:`MAX_TREE_DEPTH`; ``BAYES_SCALING_WARMUP_DEPTH`` (1-10) overrides the default."""
    if not capped:
        return MAX_TREE_DEPTH
    forced = os.environ.get("BAYES_SCALING_WARMUP_DEPTH")
    if forced is None or forced == "":
        return WARMUP_MAX_TREE_DEPTH
    try:
        depth = int(forced)
    except ValueError:
        depth = 0
    if not 1 <= depth <= MAX_TREE_DEPTH:
        raise BayesScalingError(f"BAYES_SCALING_WARMUP_DEPTH must be an integer from 1 to "
                                f"{MAX_TREE_DEPTH}, got {forced!r}")
    return depth


def _nuts_kwargs(model: pm.Model, capped: bool = True) -> dict:
    """numpyro NUTS settings a model asks for: dense or diagonal mass, its start, and the
    warm-up's tree depth (:func:`warmup_depth`)."""
    dense = bool(getattr(model, "bayes_scaling_dense_mass", False))
    depth = warmup_depth(capped)
    out: dict = {"dense_mass": dense, "max_tree_depth": (depth, MAX_TREE_DEPTH)}
    model.bayes_scaling_warmup_depth_used = depth  # what the fit's meta records
    used = init_mass(model)
    model.bayes_scaling_laplace = None
    if used == "laplace":
        fitted = laplace_fit(model)
        if fitted is None:
            used = "identity (the Laplace start was not finite)"
        else:
            model.bayes_scaling_laplace = fitted  # NUTS runs whitened (_sample_numpyro_until)
    model.bayes_scaling_init_mass_used = used  # what the fit's meta records
    return out


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
    ess_target: float | None = None,
    capped_warmup: bool = True,
    device: str | None = None,
) -> tuple[az.InferenceData, float]:
    """Draw ``chains x draws`` posterior samples after ``tune`` warm-up steps.

    With ``ess_target`` (numpyro only) ``draws`` is a cap: draws come in blocks of
    ``ESS_BLOCK`` per chain and sampling stops as soon as every variable in ``var_names`` has
    bulk and tail ESS of at least ``ess_target`` (and r-hat <= 1.01), so no time is spent on
    draws the answer does not need. ``capped_warmup`` (numpyro) limits the warm-up's trees to
    :func:`warmup_depth` when ``tune`` is at least :data:`WARMUP_CAP_MIN_TUNE`; False (or a
    shorter warm-up) gives it NUTS's full depth. ``device`` (numpyro): ``"cpu"`` (default) or
    ``"gpu"`` (:mod:`bayes_scaling.model.device`; recorded as ``model.bayes_scaling_device``).
    Returns the ``InferenceData`` (posterior + sample_stats) and the wall time in seconds,
    compilation included.
    """
    if backend not in BACKENDS:
        raise BayesScalingError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if int(chains) < 2:
        raise BayesScalingError(f"chains must be >= 2 (the convergence gate's r-hat compares "
                                f"chains), got {chains}")
    if int(draws) < 1:
        raise BayesScalingError(f"draws must be >= 1, got {draws}")
    if int(tune) < 0:
        raise BayesScalingError(f"tune must be >= 0, got {tune}")
    if ess_target is not None and (not np.isfinite(ess_target) or ess_target <= 0):
        raise BayesScalingError(f"ess_target must be a positive number, got {ess_target}")
    if ess_target is not None and backend != "numpyro":
        raise BayesScalingError(f"ess_target needs the numpyro backend, not {backend!r}")
    capped_warmup = bool(capped_warmup) and int(tune) >= WARMUP_CAP_MIN_TUNE
    if backend != "numpyro" and devices.requested(device) != "cpu":
        raise BayesScalingError(f"device {devices.requested(device)} needs the numpyro backend")
    start = time.perf_counter()
    if backend == "numpyro":
        devices.setup_jax(chains)
        devices.select(device)
    model.bayes_scaling_device = devices.describe() if backend == "numpyro" else "cpu"
    with _quiet():
        if ess_target is not None:
            idata = _sample_numpyro_until(
                model, var_names=list(var_names) if var_names else None, chains=chains,
                max_draws=draws, tune=tune, target_accept=target_accept, seed=int(random_seed),
                progress=progress, ess_target=float(ess_target), capped=capped_warmup)
            return idata, time.perf_counter() - start
        extra = {"capped": capped_warmup} if backend == "numpyro" else {}
        idata = _SAMPLERS[backend](model, var_names=list(var_names) if var_names else None,
                                   chains=chains, draws=draws, tune=tune,
                                   target_accept=target_accept, seed=int(random_seed),
                                   progress=progress, **extra)
    return idata, time.perf_counter() - start


def _sample_numpyro(model, *, var_names, chains, draws, tune, target_accept, seed, progress,
                    capped=True):
    """numpyro NUTS in one block of :func:`_sample_numpyro_until`: PyMC's ``sample_numpyro_nuts``
    kernel, seed, start points and draws (bit for bit, ``tests/test_numpyro_path.py``), but the
    start points' log density is jitted in a fresh process (:func:`_start_logp`)."""
    return _sample_numpyro_until(
        model, var_names=var_names, chains=chains, max_draws=draws, tune=tune,
        target_accept=target_accept, seed=seed, progress=progress, ess_target=None,
        capped=capped)


_JAX_WARM: list[bool] = []  # set once a start point was evaluated in this process


def _start_logp(logp_fn):
    """The log density PyMC evaluates at each chain's start point: jitted for the process's
    first fit (op by op, JAX compiles every primitive first: 1.36 s against 0.29 s on the
    Chinchilla model), as it is afterwards (0.1 s, against 0.3 s for a new jit each fit)."""
    if _JAX_WARM:
        return logp_fn
    _JAX_WARM.append(True)
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it

    return jax.jit(logp_fn)


#: Draws per chain per block when sampling until an ESS target is met.
ESS_BLOCK = 200
_NUMPYRO_STATS = ("num_steps", "potential_energy", "energy", "adapt_state.step_size",
                  "accept_prob", "diverging")


def _sample_numpyro_until(model, *, var_names, chains, max_draws, tune, target_accept, seed,
                          progress, ess_target, capped=True):
    """numpyro NUTS on PyMC's log density, in blocks of draws until the ESS target is met
    (one block of ``max_draws`` without a target).

    The same kernel, start points and sample statistics as ``_sample_numpyro`` (PyMC's
    ``sample_numpyro_nuts``), except that a model with a Laplace start is sampled in the
    Laplace-whitened space (:func:`_whitened`); after warm-up each block continues the chains
    from their last state with the adapted step size and mass matrix, so the blocks form one
    chain each. JAX is set up by :func:`sample` (:func:`~bayes_scaling.model.device.setup_jax`,
    the device chosen) before either numpyro path runs.
    """
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it
    from numpyro.infer import MCMC, NUTS  # lazy: numpyro loads JAX; only its backend needs it
    from pymc.sampling.jax import (  # lazy: loads JAX; only the numpyro backend needs it
        _get_batched_jittered_initial_points,
        _numpyro_stats_to_dict,
        get_jaxified_graph,
    )
    from pymc.util import get_default_varnames  # lazy: with the numpyro imports it serves

    logp_fn = _jax_logp(model)
    nuts_kwargs = _nuts_kwargs(model, capped)
    to_values = None
    if model.bayes_scaling_laplace is not None:  # set by _nuts_kwargs
        logp_fn, init, to_values = _whitened(model.bayes_scaling_laplace, logp_fn, chains, seed)
        model.bayes_scaling_init_mass_used = "laplace-whitened"  # what the fit's meta records
    else:
        # a model's own start points, one per chain (fit_dynamics: near a multi-start point
        # fit, so no chain settles in a far local mode), then without PyMC's +-1 jitter
        initvals = getattr(model, "bayes_scaling_initvals", None)
        init = _get_batched_jittered_initial_points(
            model=model, chains=chains, initvals=initvals, random_seed=seed,
            jitter=initvals is None, logp_fn=_start_logp(logp_fn))
    kernel = NUTS(potential_fn=logp_fn, target_accept_prob=target_accept, **nuts_kwargs)
    block = min(ESS_BLOCK, max_draws) if ess_target is not None else max_draws
    method = _chain_method(chains, model)
    mcmc = MCMC(kernel, num_warmup=tune, num_samples=block, num_chains=chains,
                chain_method=method, progress_bar=progress)
    wanted = [v for v in model.unobserved_value_vars if var_names is None or v.name in var_names]
    outputs = list(get_default_varnames(wanted, include_transformed=False))
    constrain = jax.jit(jax.vmap(jax.vmap(get_jaxified_graph(inputs=model.value_vars,
                                                             outputs=outputs))))
    key = jax.random.PRNGKey(seed)
    mcmc.run(jax.random.split(key, chains) if chains > 1 else key, init_params=init,
             extra_fields=_NUMPYRO_STATS)
    draws: dict[str, list[np.ndarray]] = {v.name: [] for v in outputs}
    stats: dict[str, list[np.ndarray]] = {}
    while True:
        raw = mcmc.get_samples(group_by_chain=True)
        raw = to_values(raw) if to_values is not None else raw
        raw = raw if isinstance(raw, list | tuple) else [raw]
        for v, x in zip(outputs, constrain(*raw), strict=True):
            draws[v.name].append(np.asarray(x))
        for k, x in _numpyro_stats_to_dict(mcmc).items():
            stats.setdefault(k, []).append(np.asarray(x))
        post = {k: np.concatenate(x, axis=1) for k, x in draws.items()}
        n = next(iter(post.values())).shape[1]
        if ess_target is None or n + block > max_draws or _ess_met(post, ess_target):
            break
        mcmc.post_warmup_state = mcmc.last_state
        mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=_NUMPYRO_STATS)
    from pymc.backends.arviz import coords_and_dims_for_inferencedata as coords_dims  # lazy: PyMC

    coords, dims = coords_dims(model)
    return az.from_dict(posterior=post,
                        sample_stats={k: np.concatenate(x, axis=1) for k, x in stats.items()},
                        coords=coords, dims={k: v for k, v in dims.items() if k in post},
                        attrs={"tuning_steps": tune, "ess_target": ess_target})


def _whitened(laplace, potential, chains: int, seed: int):
    """NUTS in the Laplace-whitened space: ``x = mode + L u`` with ``L L' = cov``.

    At large data the posterior's scales differ by orders of magnitude and PyMC's +-1 jitter
    puts the chains thousands of posterior standard deviations from the mode: the warm-up then
    spends its iterations walking in, with step sizes and mass matrices adapted to the walk
    (``benchmarks/results/scale.md``). In ``u`` the posterior is close to a standard normal,
    NUTS starts from the identity mass matrix, and the chains start at overdispersed Laplace
    draws (``LAPLACE_START_SCALE`` standard deviations); the mass matrix (dense or diagonal, as
    the model asks) adapts from the identity. Returns the potential in ``u``, the
    chains' starts and the map from ``u`` draws (chain, draw, dim) back to the value variables.
    """
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it
    import jax.numpy as jnp  # lazy: with JAX

    mode, cov, unravel = laplace
    chol = jnp.asarray(np.linalg.cholesky(cov))
    centre = jnp.asarray(mode)
    rng = np.random.default_rng(seed)
    starts = LAPLACE_START_SCALE * rng.standard_normal((chains, mode.size))
    to_values = jax.jit(jax.vmap(jax.vmap(lambda u: unravel(centre + chol @ u))))
    return (lambda u: potential(unravel(centre + chol @ u)), jnp.asarray(starts),
            lambda u: list(to_values(u)))


def _ess_met(post: dict[str, np.ndarray], target: float) -> bool:
    """Every variable has bulk and tail ESS >= ``target`` and r-hat <= the gate's."""
    ds = az.convert_to_dataset(post)
    worst = [float(np.nanmin(np.asarray(v))) for m in ("bulk", "tail")
             for v in az.ess(ds, method=m).data_vars.values()]
    rhat = [float(np.nanmax(np.asarray(v))) for v in az.rhat(ds).data_vars.values()]
    return min(worst) >= target and max(rhat) <= MAX_RHAT


def _sample_nutpie(model, *, var_names, chains, draws, tune, target_accept, seed, progress):
    import nutpie  # lazy: optional backend (Rust extension); only --backend nutpie needs it

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


def convergence_diagnostics(idata: az.InferenceData, var_names: Sequence[str], *, backend: str,
             seed: int | None, sampling_seconds: float, gate: Gate | None = None) -> Diagnostics:
    """Compute r-hat, ESS and divergences for ``var_names`` and judge them against ``gate``."""
    gate = gate or Gate()
    post = idata.posterior[list(var_names)]
    rhat = az.rhat(post)
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")

    def extreme(ds, fn):
        vals = {k: float(fn(np.asarray(v))) for k, v in ds.data_vars.items()}
        key = (max if fn is np.nanmax else min)(vals, key=vals.get)
        return vals[key], key

    max_rhat, worst = extreme(rhat, np.nanmax)
    min_bulk, worst_bulk = extreme(ess_bulk, np.nanmin)
    min_tail, _ = extreme(ess_tail, np.nanmin)
    div = 0
    if "sample_stats" in idata and "diverging" in idata.sample_stats:
        div = int(np.asarray(idata.sample_stats["diverging"]).sum())
    problems = [msg for bad, msg in [
        (not np.isfinite(max_rhat) or max_rhat > gate.max_rhat,
         f"max r_hat {max_rhat:.3f} > {gate.max_rhat} ({worst})"),
        (min_bulk < gate.min_ess_bulk, f"min bulk ESS {min_bulk:.0f} < {gate.min_ess_bulk:.0f}"
         f" ({worst_bulk})"),
        (min_tail < gate.min_ess_tail, f"min tail ESS {min_tail:.0f} < {gate.min_ess_tail:.0f}"),
        (div > gate.max_divergences, f"{div} divergent transitions"),
    ] if bad]
    return Diagnostics(
        max_rhat=max_rhat, min_ess_bulk=min_bulk, min_ess_tail=min_tail, divergences=div,
        chains=int(post.sizes["chain"]), draws=int(post.sizes["draw"]), backend=backend,
        seed=seed, sampling_seconds=float(sampling_seconds), problems=tuple(problems),
        worst_param=worst,
    )
