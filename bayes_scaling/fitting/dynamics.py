r"""Fitting a curve law :math:`L(N, S, B)` to loss curves: start points, gated NUTS, defaults.

The law (Kaplan et al. 2020, section 5; Su et al. 2024) is :mod:`bayes_scaling.laws.curve`, its
graph :mod:`bayes_scaling.model.build_curves`; queries on the fitted law are
:mod:`bayes_scaling.query.curves`.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from bayes_scaling.constants import DEFAULT_BACKEND
from bayes_scaling.data.curves import CurveTable
from bayes_scaling.errors import DataWarning, SpecError
from bayes_scaling.fitting.draws import Draws
from bayes_scaling.fitting.fit import init_mass_used, sample_gated, seed_int
from bayes_scaling.fitting.result import ScalingFit, versions
from bayes_scaling.laws.curve import centre_constants, uncentre
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.centre import curve_centre
from bayes_scaling.model.gate import check_convergence
from bayes_scaling.model.spec import Prior, load_spec
from bayes_scaling.types import OnBad, ProgressFn, SeedLike

# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------
#: NUTS target acceptance of curve fits with several batch sizes (8 of 8 synthetic ladders
#: passed the gate at it, benchmarks/bench_dynamics.py section 3b).
TARGET_ACCEPT = 0.95


#: ... and with one batch size, where B_crit's constants are barely identified: at 0.95, 13 of
#: 20 synthetic one-batch-size ladders left 1-4 divergences (section 3b); at 0.99 none did.
#: Laws without a batch-size input (no B_crit) keep :data:`TARGET_ACCEPT`: at 0.95 every table of
#: ``benchmarks/bench_target_accept.py`` passed the gate with 0 divergences on the first attempt,
#: with half the leapfrog steps per draw of 0.99 (the rule was stated before the runs).
ONE_BATCH_TARGET_ACCEPT = 0.99


#: target_accept of the automatic retry after a failed gate.
RETRY_TARGET_ACCEPT = 0.99


def default_target_accept(curves: CurveTable, law: str = "dynamics") -> float:
    """:data:`ONE_BATCH_TARGET_ACCEPT` for a ``B_crit`` law on one batch size, else the usual.

    Else :data:`TARGET_ACCEPT`: several batch sizes, or a law without a batch-size input.
    """
    one_batch = np.unique(curves.b).size == 1 and "b" in CURVE_LAWS[law].inputs
    return ONE_BATCH_TARGET_ACCEPT if one_batch else TARGET_ACCEPT


#: Random starts (drawn from the priors, besides the prior medians) of :func:`curve_point_fit`.
POINT_FIT_STARTS = 12


#: Spread of the chains' start points around the point fit (in prior sds; exponents: relative).
START_SPREAD = 0.05


def _prior_draws(prior: Prior, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draws from a spec prior (numpy; the distributions :mod:`bayes_scaling.model.spec` allows)."""
    k = prior.kwargs
    if prior.dist in ("Normal", "TruncatedNormal"):
        x = rng.normal(k["mu"], k["sigma"], size)
        return np.clip(x, k.get("lower", -np.inf), k.get("upper", np.inf))
    if prior.dist == "LogNormal":
        return np.exp(rng.normal(k["mu"], k["sigma"], size))
    if prior.dist == "HalfNormal":
        return np.abs(rng.normal(0.0, k["sigma"], size))
    if prior.dist == "Gamma":
        return rng.gamma(k["alpha"], 1.0 / k["beta"], size)
    return rng.exponential(1.0 / k["lam"], size)


def curve_point_fit(spec: Any, curves: CurveTable, *, starts: int = POINT_FIT_STARTS,
              random_seed: SeedLike = None) -> dict[str, float]:
    """Robust least-squares fit of the centred constants to log loss, best of several starts.

    A start point for NUTS, not an answer (DESIGN.md): curve data can hold far local optima
    (e.g. a tiny ``alpha_B`` with a huge ``B*``) where a chain started at random may settle.
    Starts: the prior medians and ``starts`` draws from the priors; soft-L1 loss (scale 0.02 in
    log loss). Returns the centred constants (the sampler's scale) and ``rms``, the robust
    residual scale.
    """
    rng = np.random.default_rng(random_seed)
    law = CURVE_LAWS[spec.law]
    params, centre = law.params, curve_centre(curves)
    inputs = curves.law_inputs(law.inputs)
    positive = [not p.startswith("log_") for p in params]
    draws = np.stack([_prior_draws(spec.priors[p], rng, 4001) for p in params], axis=1)
    inits = np.vstack([np.median(draws, axis=0), draws[:starts]])
    inits[:, positive] = np.log(inits[:, positive])

    def resid(x: np.ndarray) -> np.ndarray:
        theta = {p: float(np.exp(v) if pos else v)
                 for p, v, pos in zip(params, x, positive, strict=True)}
        with np.errstate(all="ignore"):
            mu = law.log_mean(*inputs, **uncentre(theta, centre), log_start=curves.log_loss)
        r = curves.log_loss - mu
        return np.where(np.isfinite(r), r, 1e3)

    best = min((least_squares(resid, x0, loss="soft_l1", f_scale=0.02, max_nfev=300)
                for x0 in inits), key=lambda res: res.cost)
    out = {p: float(np.exp(v) if pos else v)
           for p, v, pos in zip(params, best.x, positive, strict=True)}
    r = resid(best.x)
    out["rms"] = float(1.4826 * np.median(np.abs(r - np.median(r))))
    return out


#: Most checkpoints the start-point fit reads (an unthinned table is thinned for it only: a
#: start point needs to be near the mode, not at it).
START_FIT_MAX_POINTS = 3000


def start_points(spec: Any, curves: CurveTable, model: Any, chains: int,
                 rng: np.random.Generator) -> list[dict[str, float]]:
    """One start per chain near the multi-start :func:`curve_point_fit`, for the sampler."""
    part = curves
    if curves.n_points > START_FIT_MAX_POINTS:
        idx = np.unique(np.linspace(0, curves.n_points - 1, START_FIT_MAX_POINTS).astype(int))
        part = curves.subset(idx)
    fit0 = curve_point_fit(spec, part, random_seed=rng)
    if part is not curves:  # the constants on the full table's centring
        params = CURVE_LAWS[spec.law].params
        nat = uncentre({p: fit0[p] for p in params}, curve_centre(part))
        fit0.update(centre_constants(nat, curve_centre(curves)))
    out = []
    for _ in range(chains):
        point: dict[str, float] = {}
        for p in CURVE_LAWS[spec.law].params:
            name = next((n for n in (f"{p}_c", f"{p}_c_pop") if n in model.named_vars), None)
            if name is None:
                continue
            z = START_SPREAD * rng.standard_normal()
            point[name] = (fit0[p] * np.exp(z) if not p.startswith("log_")
                           else fit0[p] + z * spec.priors[p].kwargs.get("sigma", 1.0))
        point["sigma"] = max(fit0["rms"], 1e-4) * np.exp(START_SPREAD * rng.standard_normal())
        if "run_length_kappa" in model.named_vars:  # the start fit is the law without it
            point["run_length_kappa"] = 0.0
        out.append(point)
    return out


def one_batch_note(law: str, curves: CurveTable) -> str | None:
    """A warning when a law with a critical batch size is fitted on curves of one batch size.

    There ``B_crit`` identifies no batch effect: ``B_crit(L)`` only slows each curve down as the
    loss it reaches falls, and the loss falls with N, so it trades off against the size term.
    Measured (benchmarks/results/schedule.md): on Gemstones (constant rate, long runs) that
    slowdown is what the curves need (3 sizes held out: 0.6% error with it, 2.6% without); on
    (Mis)Fitting (short cosine runs, 6 training sizes) it ran to alpha_B ~ 0.04 and put the 3
    held-out sizes 5% high (1.5% without). Neither is right everywhere: backtest both.
    """
    if np.unique(curves.b).size > 1 or "b" not in CURVE_LAWS[law].inputs:
        return None
    return (f"{curves.source}: every curve has one batch size, so the critical batch size of "
            f"law {law!r} is not identified by the data and trades off against the size term "
            "when extrapolating in N; compare with --model dynamics_schedule_fixed_b (no "
            "B_crit) by `bayes-scaling backtest CURVES --holdout-top 1,2,3`")


def curve_var_names(spec: Any, curves: CurveTable, curve_effects: bool) -> list[str]:
    """Posterior variables a curve fit keeps (natural constants and the noise model)."""
    law = CURVE_LAWS[spec.law]
    names = list(law.params)
    if curves.n_groups > 1:
        for p in spec.hierarchy.varying:
            names += [f"{p}_pop", f"{p}_tau"]
    names.append("sigma")
    if spec.likelihood.family == "studentt":
        names.append("nu")
    if curve_effects:
        names.append("sigma_curve")
        if spec.likelihood.curve_offsets == "run_length":
            names.append("run_length_slope")
    if spec.likelihood.residual == "ou":
        names.append("residual_length")
    if spec.likelihood.run_length_term != "none":
        names.append("run_length_kappa")
    return names


def use_curve_effects(spec: Any, curves: CurveTable, curve_effects: bool | None) -> bool:
    """Whether a curve fit has whole-curve offsets.

    ``curve_effects`` when given; else the spec's ``curve_offsets`` is not ``"none"`` and
    some curve has at least 3 checkpoints.
    """
    if curve_effects is not None:
        return bool(curve_effects)
    return (spec.likelihood.curve_offsets != "none"
            and bool(curves.curves()["n_points"].max() >= 3))


def fit_dynamics(
    model: Any,
    curves: CurveTable,
    *,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    backend: str | None = None,
    target_accept: float | None = None,
    random_seed: SeedLike = None,
    on_bad: OnBad = "warn",
    retries: int = 1,
    curve_effects: bool | None = None,
    residual: str | None = None,
    curve_offsets: str | None = None,
    likelihood: str | None = None,
    progress: bool = False,
    on_progress: ProgressFn | None = None,
    precision: str | None = None,
    run_length_term: str | None = None,
) -> ScalingFit:
    """Fit a curve-law model (a spec whose ``law`` is ``"dynamics"``) to ``curves`` with NUTS.

    ``curve_effects`` (default: when some curve has at least 3 checkpoints) gives each curve an
    offset on log loss, so the predictive band of a new curve includes a whole-curve shift, not
    only point noise. Chains start near a multi-start least-squares fit (:func:`start_points`;
    numpyro backend) and sample with a dense mass matrix, at ``target_accept`` (default
    :func:`default_target_accept`: 0.99 with one batch size for a law with ``B_crit``, else
    0.95). A fit that fails the
    convergence gate is resampled up to ``retries`` times with ``target_accept``
    :data:`RETRY_TARGET_ACCEPT` and twice the warm-up, keeping the last verdict. Returns a
    :class:`~bayes_scaling.fitting.fit.ScalingFit` (its ``runs`` is the :class:`CurveTable`); the
    convergence gate runs as in :func:`bayes_scaling.fitting.fit.fit`.

    Parameters
    ----------
    model : str, path or ModelSpec
        A curve-law spec (``"dynamics"``).
    curves : CurveTable
        Loss curves (:func:`bayes_scaling.load_curves`).
    chains, draws, tune : int, default 4, 1000, 1000
        NUTS chains (at least 2: r-hat needs them), draws kept per chain, warm-up steps.
    backend : {"numpyro", "nutpie", "pymc"}, optional
        Sampler; default :data:`~bayes_scaling.constants.DEFAULT_BACKEND`.
    target_accept : float, optional
        Default :func:`default_target_accept`.
    random_seed : int, numpy.random.Generator or None
        Seed of every random step of the call (one Generator is made from it); the integer
        seed used is stored in the fit.
    on_bad : {"warn", "raise"}, default "warn"
        What a fit that still fails the gate does (as in :func:`bayes_scaling.fit`).
    retries : int, default 1
        Resamples after a failed gate.
    curve_effects : bool, optional
        Whole-curve offsets (default: when the spec's ``curve_offsets`` is ``"curve"`` and
        some curve has at least 3 checkpoints).
    residual : {"iid", "ou"}, optional
        Override the spec's residual structure along each curve
        (:meth:`~bayes_scaling.model.spec.ModelSpec.with_residual`): ``"ou"`` makes the
        residuals an Ornstein-Uhlenbeck process in log steps (AR(1) at uneven spacing) of
        stationary sd ``sigma`` and correlation length ``residual_length``, so that many
        checkpoints of one curve count as less than as many independent ones.
    curve_offsets : {"curve", "none", "run_length"}, optional
        Override the spec's whole-curve offsets
        (:meth:`~bayes_scaling.model.spec.ModelSpec.with_curve_offsets`): ``"none"`` fits the
        law without them, so a misfit shared by every curve (the early-step excess of short
        cosine runs) cannot pull the shared size exponent through them
        (``benchmarks/results/residual.md``); the curve-to-curve spread then goes into
        ``sigma``. ``"run_length"``: offsets whose mean is ``run_length_slope`` times the
        curve's centred log schedule length (``total_steps``; 0 for a curve without one), so a
        run-length effect is carried by one slope and a held-out curve of known length gets
        its predicted offset (``benchmarks/results/schedule_bands.md``); the centre is saved
        as ``meta["run_length_centre"]``.
    likelihood : {"normal", "studentt"}, optional
        Override the spec's likelihood family
        (:meth:`~bayes_scaling.model.spec.ModelSpec.with_likelihood`): ``"studentt"`` gives the
        checkpoint residuals Student-t tails (``nu`` fitted), so the early checkpoints of short
        runs, far noisier than the late ones, widen the tails of the predictive band instead
        of its middle (``benchmarks/results/residual.md``, noise models).
    progress : bool, default False
        Show the sampler's progress bar.
    on_progress : callable, optional
        Called with one short line per step.
    precision : {"float64", "float32"}, optional
        Per-checkpoint arithmetic of the law and its solve (residuals and sums stay float64);
        default float32 from :data:`~bayes_scaling.model.build.FLOAT32_MIN_OBS` checkpoints
        on (``BAYES_SCALING_PRECISION`` overrides the default).
    run_length_term : {"none", "anneal", "area"}, optional
        Override the spec's run-length term of a schedule-aware law
        (:meth:`~bayes_scaling.model.spec.ModelSpec.with_run_length_term`;
        :func:`~bayes_scaling.model.centre.transform_inputs`): the annealing fraction or the
        forward area the law reads scaled by ``exp(-/+ run_length_kappa * x)``, ``x`` the
        curve's centred log ``total_steps``; measured, not the default
        (``benchmarks/results/law_run_length.md``). Its centre is ``meta["run_length_centre"]``.

    Returns
    -------
    ScalingFit
        The curve-law posterior; its ``runs`` is the :class:`CurveTable`.
    """
    spec = load_spec(model)
    if spec.law not in CURVE_LAWS:
        raise SpecError(f"model {spec.name!r} has law {spec.law!r}, not a curve law "
                        f"({', '.join(CURVE_LAWS)}); fit it with bayes_scaling.fitting.fit.fit")
    if residual is not None and residual != spec.likelihood.residual:
        spec = spec.with_residual(residual)
    if curve_offsets is not None and curve_offsets != spec.likelihood.curve_offsets:
        spec = spec.with_curve_offsets(curve_offsets)
    if run_length_term is not None and run_length_term != spec.likelihood.run_length_term:
        spec = spec.with_run_length_term(run_length_term)
    if likelihood is not None and likelihood != spec.likelihood.family:
        spec = spec.with_likelihood(likelihood)
    tell = on_progress or (lambda _msg: None)
    if (note := one_batch_note(spec.law, curves)) is not None:
        warnings.warn(note, DataWarning, stacklevel=2)
    seed, backend = seed_int(random_seed), backend or DEFAULT_BACKEND
    target_accept = (default_target_accept(curves, spec.law) if target_accept is None
                     else target_accept)
    curve_effects = use_curve_effects(spec, curves, curve_effects)
    tell(f"building {spec.name} on {curves.n_points} points of {curves.n_curves} curves, "
         f"{curves.n_groups} group(s)")

    from bayes_scaling.model.build_curves import build_dynamics_model  # lazy: PyMC import cost

    pm_model = build_dynamics_model(spec, curves, curve_effects=curve_effects,
                                    precision=precision)
    tell("start points: multi-start least-squares fit")
    pm_model.bayes_scaling_initvals = start_points(spec, curves, pm_model, chains,
                                                   np.random.default_rng([seed, 1]))
    names = curve_var_names(spec, curves, curve_effects)
    tell(f"sampling: {chains} chains x ({tune} tune + {draws} draws), backend {backend}")
    run = sample_gated(pm_model, names, backend=backend, chains=chains, draws=draws, tune=tune,
                       target_accept=target_accept, random_seed=seed, retries=retries,
                       progress=progress, retry_target_accept=RETRY_TARGET_ACCEPT, tell=tell)
    idata, diag, seconds = run.idata, run.diagnostics, run.seconds
    tell(f"sampled in {seconds:.1f} s; " + ("gate passed" if diag.passed else diag.banner()))
    meta = {"method": "nuts", "seed": seed, "backend": backend,
            "target_accept": run.target_accept, "tune": run.tune, "draws": diag.draws,
            "draws_requested": draws,
            "chains": chains, "retried": run.attempt > 0, "seconds": float(seconds),
            "precision": pm_model.bayes_scaling_precision,
            **({"warmup_max_tree_depth": getattr(pm_model, "bayes_scaling_warmup_depth_used",
                                                 None),
                "init_mass": init_mass_used(pm_model)} if backend == "numpyro" else {}),
            "centre": curve_centre(curves), "curve_effects": curve_effects,
            "residual": spec.likelihood.residual, "likelihood": spec.likelihood.family,
            "curve_offsets": spec.likelihood.curve_offsets,
            "run_length_term": spec.likelihood.run_length_term,
            "warmup_rule": {k: float(curves.rule[k]) for k in ("warmup_fraction", "min_steps")
                            if k in curves.rule},
            **({"run_length_centre": pm_model.bayes_scaling_run_length_centre}
               if hasattr(pm_model, "bayes_scaling_run_length_centre") else {}),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": versions()}
    keep = {g: idata[g] for g in ("posterior", "sample_stats") if g in idata.groups()}
    result = ScalingFit(Draws(**keep), spec, curves, diag, meta)
    check_convergence(diag, on_bad=on_bad)
    return result
