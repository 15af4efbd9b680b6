"""Fitting a final-loss law: :func:`fit` (NUTS, gated, calibrated) and :func:`fit_baseline`.

:func:`fit` builds the model (:mod:`bayes_scaling.model.build`), samples it with
:func:`sample_gated` (the convergence gate and one retry, shared with
:func:`bayes_scaling.fitting.dynamics.fit_dynamics`), learns the extrapolation discrepancy
(:mod:`bayes_scaling.fitting.calibrate`) and returns a
:class:`~bayes_scaling.fitting.result.ScalingFit`. PyMC is imported inside the functions that
sample, so importing this module (as the report and evaluation code do) stays cheap.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bayes_scaling.constants import DEFAULT_BACKEND
from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.baseline import huber_bootstrap
from bayes_scaling.fitting.calibrate import attach_discrepancy
from bayes_scaling.fitting.draws import Draws
from bayes_scaling.fitting.result import ScalingFit, versions
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.centre import input_centre, use_centred
from bayes_scaling.model.gate import Diagnostics, check_convergence
from bayes_scaling.model.spec import ModelSpec, load_spec
from bayes_scaling.types import OnBad, ProgressFn, SeedLike

#: target_accept of the automatic retry after a failed convergence gate.
RETRY_TARGET_ACCEPT = 0.98
#: Chains whose r-hat exceeds this while each chain is stationary on its own sit in separate
#: modes: no retry (Gelman & Rubin 1992's threshold of clear non-convergence).
MODES_RHAT = 1.2
#: A chain is stationary on its own when the split r-hat of its two halves is at most this.
CHAIN_RHAT = 1.05


def posterior_var_names(spec: ModelSpec, n_groups: int) -> list[str]:
    """Posterior variables a fit keeps (the natural constants and the noise model)."""
    law = LAWS[spec.law]
    names = list(law.params)
    if n_groups > 1:
        for p in spec.hierarchy.varying:
            names += [f"{p}_pop", f"{p}_tau"]
    names.append("sigma")
    if spec.likelihood.family == "studentt":
        names.append("nu")
    return names


@dataclass(frozen=True)
class GatedSample:
    """What :func:`sample_gated` returns: the draws, their gate verdict and the settings used."""

    idata: Any  # the sampler's ArviZ InferenceData
    diagnostics: Diagnostics
    seconds: float
    target_accept: float
    tune: int
    attempt: int
    no_retry: str = ""


def sample_gated(pm_model: Any, var_names: list[str], *, backend: str, chains: int, draws: int,
                 tune: int, target_accept: float, random_seed: int, retries: int,
                 progress: bool = False, ess_target: float | None = None,
                 retry_target_accept: float = RETRY_TARGET_ACCEPT,
                 tell: ProgressFn | None = None, device: str | None = None) -> GatedSample:
    """Sample with NUTS, run the convergence gate and, on failure, resample.

    Up to ``retries`` resamples, with ``target_accept`` raised to ``retry_target_accept``, twice
    the warm-up at NUTS's full tree depth (the first attempt caps the warm-up's trees:
    :data:`~bayes_scaling.model.sampling.WARMUP_MAX_TREE_DEPTH`) and, when r-hat or an ESS
    failed (not only divergences), twice the draws.

    No retry when the chains sit in separate modes (:func:`separate_modes`): more warm-up and
    smaller steps do not move a chain across to another mode (the broken law on Chinchilla's
    runs: the same r-hat after a retry that cost four times the first attempt), so the retry
    would only cost time; ``no_retry`` then says why.

    A failed gate is never hidden: the verdict of the last attempt is returned (the caller
    records ``attempt > 0`` as ``meta["retried"]`` and warns or raises on a failure).
    """
    from bayes_scaling.model import sampling  # lazy: PyMC/JAX cost seconds; only sampling pays

    tell = tell or (lambda _msg: None)
    for attempt in range(retries + 1):
        idata, seconds = sampling.sample(pm_model, var_names=var_names, backend=backend,
                                          chains=chains, draws=draws, tune=tune,
                                          target_accept=target_accept, random_seed=random_seed,
                                          progress=progress, ess_target=ess_target,
                                          capped_warmup=attempt == 0, device=device)
        kept = [v for v in var_names if v in idata.posterior]
        diag = sampling.convergence_diagnostics(idata, kept, backend=backend, seed=random_seed,
                                                sampling_seconds=seconds)
        if diag.passed or attempt == retries:
            break
        modes = separate_modes(idata.posterior, kept)
        if modes:
            tell(f"gate failed ({'; '.join(diag.problems)}); not retried: {modes}")
            return GatedSample(idata, diag, seconds, target_accept, tune, attempt, modes)
        target_accept, tune = max(target_accept, retry_target_accept), 2 * tune
        draws = 2 * draws if diag.mixing_failed else draws
        tell(f"gate failed ({'; '.join(diag.problems)}); retrying with target_accept "
             f"{target_accept}, {tune} tuning steps and {draws} draws")
    return GatedSample(idata, diag, seconds, target_accept, tune, attempt)


def separate_modes(posterior: xr.Dataset, var_names: list[str]) -> str:
    """Why the chains sit in separate modes ("" when they do not).

    They do when some variable's r-hat across chains exceeds :data:`MODES_RHAT` while every
    chain, alone, is stationary (the r-hat of its own two halves at most :data:`CHAIN_RHAT`):
    each chain has settled, in a different place.
    """
    import arviz as az  # lazy: only after a failed gate; importing fit must not load ArviZ

    worst, name = 0.0, ""
    for v in var_names:
        x = np.asarray(posterior[v]).reshape(posterior.sizes["chain"], posterior.sizes["draw"],
                                             -1)
        for j in range(x.shape[2]):
            r = float(az.rhat(x[:, :, j]))
            if r > worst:
                worst, name = r, v
    if not worst > MODES_RHAT:
        return ""
    half = posterior.sizes["draw"] // 2
    within = max(float(az.rhat(np.asarray(posterior[v])[c, :2 * half].reshape(
        2, half, -1)[:, :, j])) for v in var_names for c in range(posterior.sizes["chain"])
                 for j in range(int(np.prod(posterior[v].shape[2:], dtype=int))))
    if within > CHAIN_RHAT:
        return ""
    return (f"the chains sit in separate modes (r-hat {worst:.2f} on {name} across chains, "
            f"at most {within:.3f} within each): more warm-up and smaller steps do not join "
            "them")


def init_mass_used(pm_model: Any) -> str:
    """The starting inverse mass matrix numpyro used (or fell back to: ``_nuts_kwargs``)."""
    from bayes_scaling.model import sampling  # lazy: PyMC/JAX cost seconds; only sampling pays

    return getattr(pm_model, "bayes_scaling_init_mass_used", None) or sampling.init_mass(pm_model)


def fit(
    model: str | os.PathLike[str] | ModelSpec,
    runs: RunTable,
    *,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    backend: str | None = None,
    target_accept: float = 0.9,
    random_seed: SeedLike = None,
    on_bad: OnBad = "warn",
    retries: int = 1,
    calibrate: bool = True,
    progress: bool = False,
    on_progress: ProgressFn | None = None,
    ess_target: float | None = None,
    dense_mass: bool | None = None,
    precision: str | None = None,
    device: str | None = None,
) -> ScalingFit:
    """Fit ``model`` (a shipped name, a spec path or a spec) to ``runs`` with NUTS.

    With ``ess_target`` (numpyro) ``draws`` is a cap: sampling stops once every constant has
    that bulk and tail ESS (:func:`bayes_scaling.model.sampling.sample`).

    After sampling, the convergence gate runs (:mod:`bayes_scaling.model.gate`); a failing fit
    is resampled up to ``retries`` times with ``target_accept`` 0.98 and twice the warm-up (and
    twice the draws if r-hat or ESS failed), and if it still fails it raises
    (``on_bad="raise"``) or warns and carries the flag. With
    ``calibrate`` the extrapolation discrepancy is learned from rolling-origin backtests inside
    the ladder (:mod:`bayes_scaling.fitting.calibrate`) and stored with the posterior.

    Parameters
    ----------
    model : str, path or ModelSpec
        A shipped model name (``"chinchilla"``, ``"kaplan"``, ...), a spec TOML path, or a spec.
    runs : RunTable
        The training runs (:func:`bayes_scaling.load_runs` or :func:`bayes_scaling.load_dataset`).
    chains, draws, tune : int, default 4, 1000, 1000
        NUTS chains (at least 2: r-hat needs them), draws kept per chain, warm-up steps.
    backend : {"numpyro", "nutpie", "pymc"}, optional
        Sampler; default :data:`~bayes_scaling.constants.DEFAULT_BACKEND`.
    target_accept : float, default 0.9
        NUTS target acceptance rate.
    random_seed : int, numpy.random.Generator or None
        Seed of every random step of the call (one Generator is made from it); the integer
        seed used is stored in the fit.
    on_bad : {"warn", "raise"}, default "warn"
        A fit that still fails the convergence gate after the retries: warn and carry the flag
        (every output shows it), or raise :class:`~bayes_scaling.errors.ConvergenceError`.
    retries : int, default 1
        Resamples after a failed gate.
    calibrate : bool, default True
        Learn the extrapolation discrepancy (``tau0``, ``kappa``).
    progress : bool, default False
        Show the sampler's progress bar.
    on_progress : callable, optional
        Called with one short line per step ("sampling: 4 chains ...").
    ess_target : float, optional
        Stop sampling once every constant has this bulk and tail ESS (numpyro).
    dense_mass : bool, optional
        A dense (True) or diagonal (False) mass matrix for numpyro's NUTS; by default dense
        for models of up to :data:`~bayes_scaling.model.build.DENSE_MAX_DIM` free dimensions.
    precision : {"float64", "float32"}, optional
        Precision of the per-run arithmetic (the sum and the constants stay float64); by
        default float32 from :data:`~bayes_scaling.model.build.FLOAT32_MIN_OBS` runs on
        (``BAYES_SCALING_PRECISION`` overrides the default).
    device : {"cpu", "gpu"}, optional
        Where JAX samples (numpyro): the CPU unless asked (``BAYES_SCALING_DEVICE`` overrides
        the default; :mod:`bayes_scaling.model.device`); recorded as ``meta["device"]``.

    Returns
    -------
    ScalingFit
        The posterior with its spec, runs, diagnostics and provenance; ``save`` writes it.
    """
    spec = load_spec(model)
    tell = on_progress or (lambda _msg: None)
    seed = seed_int(random_seed)
    backend = backend or DEFAULT_BACKEND
    tell(f"building {spec.name} on {runs.n_runs} runs, {runs.n_groups} group(s)")
    from bayes_scaling.model.build import build_model  # lazy: PyMC costs seconds to import

    pm_model = build_model(spec, runs, precision)
    if dense_mass is not None:
        pm_model.bayes_scaling_dense_mass = bool(dense_mass)
    var_names = posterior_var_names(spec, runs.n_groups)
    tell(f"sampling: {chains} chains x ({tune} tune + {draws} draws), backend {backend}"
         + (f", stopping at ESS {ess_target:g}" if ess_target else ""))
    run = sample_gated(pm_model, var_names, backend=backend, chains=chains, draws=draws,
                       tune=tune, target_accept=target_accept, random_seed=seed,
                       retries=retries, progress=progress, ess_target=ess_target, tell=tell,
                       device=device)
    idata, diag, seconds = run.idata, run.diagnostics, run.seconds
    target_accept, tune, attempt = run.target_accept, run.tune, run.attempt
    no_retry = run.no_retry
    tell(f"sampled in {seconds:.1f} s; " + ("gate passed" if diag.passed else diag.banner()))
    meta = {
        "method": "nuts", "seed": seed, "backend": backend, "target_accept": target_accept,
        "tune": tune, "draws": diag.draws, "draws_requested": draws, "chains": chains,
        "retried": attempt > 0, **({"not_retried": no_retry} if no_retry else {}),
        "ess_target": ess_target,
        "dense_mass": bool(getattr(pm_model, "bayes_scaling_dense_mass", False)),
        "precision": pm_model.bayes_scaling_precision,
        "device": getattr(pm_model, "bayes_scaling_device", "cpu"),
        **({"init_mass": init_mass_used(pm_model),
            "warmup_max_tree_depth": getattr(pm_model, "bayes_scaling_warmup_depth_used", None)}
           if backend == "numpyro" else {}),
        "centre": input_centre(spec, runs), "centred_offsets": use_centred(spec, runs),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    keep = {g: idata[g] for g in ("posterior", "sample_stats") if g in idata.groups()}
    result = ScalingFit(Draws(**keep), spec, runs, diag, meta)
    if calibrate:
        result = attach_discrepancy(result, random_seed=seed, on_progress=tell)
    check_convergence(diag, on_bad=on_bad)
    return result


def fit_baseline(model: str | os.PathLike[str] | ModelSpec, runs: RunTable, *,
                 n_boot: int = 100, random_seed: SeedLike = None,
                 calibrate: bool = False) -> ScalingFit:
    """The Hoffmann/Epoch point fit (Huber on log loss, bootstrap intervals) as a fit object.

    Its "posterior" holds the bootstrap refits (one chain, ``n_boot`` draws) and a constant
    ``sigma`` (robust scale of the residuals), so every query works on it unchanged; groups are
    not modelled (one law for all runs). ``method`` is ``"huber-bootstrap"``.

    Parameters
    ----------
    model : str, path or ModelSpec
        A shipped model name, a spec TOML path, or a spec (its law is used; priors are not).
    runs : RunTable
        The training runs; one group.
    n_boot : int, default 100
        Bootstrap refits.
    random_seed : int, numpy.random.Generator or None
        Seed of every random step of the call (one Generator is made from it); the integer
        seed used is stored in the fit.
    calibrate : bool, default False
        Learn the extrapolation discrepancy as for :func:`fit`.

    Returns
    -------
    ScalingFit
        A fit whose "posterior" holds the bootstrap refits.
    """
    spec = load_spec(model)
    law = LAWS[spec.law]
    if runs.n_groups > 1:
        raise BayesScalingError("the huber-bootstrap baseline fits one group at a time; "
                                f"this table has {runs.n_groups} groups")
    seed = seed_int(random_seed)
    src = {"n": runs.log_n, "d": runs.log_d}
    boot = huber_bootstrap({i: src[i] for i in law.inputs}, runs.log_loss, law=spec.law,
                           n_boot=n_boot, random_seed=seed)
    post = xr.Dataset({k: (("chain", "draw"), np.asarray(v, dtype=float))
                       for k, v in boot.to_posterior_dict().items()})
    diag = Diagnostics(max_rhat=1.0, min_ess_bulk=float(n_boot), min_ess_tail=float(n_boot),
                       divergences=0, chains=1, draws=n_boot, backend="huber-bootstrap",
                       seed=seed, sampling_seconds=0.0)
    meta = {"method": "huber-bootstrap", "seed": seed, "estimate": boot.estimate,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": versions()}
    result = ScalingFit(Draws(posterior=post), spec, runs, diag, meta)
    if calibrate:
        result = attach_discrepancy(result, random_seed=seed)
    return result


def seed_int(random_seed: SeedLike) -> int:
    """One integer seed from whatever the caller gave (recorded in the fit)."""
    if isinstance(random_seed, np.random.Generator):
        return int(random_seed.integers(2**31 - 1))
    if random_seed is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    return int(random_seed)


