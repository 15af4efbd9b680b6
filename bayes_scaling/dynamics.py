r"""Training dynamics: loss curves ``L(N, S, B)``, critical batch size, whole predicted curves.

The law (Kaplan et al. 2020, section 5 and eqs. 5.4-5.6; Su et al. 2024, "Unraveling the
Mystery of Scaling Laws: Part I", arXiv:2403.06563, who fit it on 1M-60M models and predict the
curves of 2B-33B ones), in nats/token, with ``N`` parameters, ``S`` optimizer steps, ``B`` batch
size in tokens and ``E = S B`` tokens:

.. math::
    L(N, S_{min}) = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S}, \qquad
    B_{crit}(L) = B^* / L^{1/\alpha_B},

    S_{min} = S / (1 + B_{crit}(L)/B), \qquad E_{min} = E / (1 + B/B_{crit}(L)).

``L(N, S, B)`` has ``L`` on both sides; it is the root of a strictly monotone function, found by
:func:`log_loss_nsb` / :func:`solve_step_term` (safeguarded Newton, vectorised). With
``v = log(L - (N_c/N)^alpha_N)`` (the log of the step term),

.. math:: h(v) = v - \alpha_S \log(S_c/S) - \alpha_S \log\bigl(1 + B_{crit}(L(v))/B\bigr) = 0,

:math:`h'(v) \in [1, 1 + \alpha_S/\alpha_B]`: one root, bracketed by
``[alpha_S log(S_c/S), alpha_S log(S_c/S) + alpha_S log1p(B_crit(L_N)/B)]``.

The laws here are plain numpy (queries never import PyMC); the solver takes its array operations
from an ``xp`` namespace so that ``model.py`` builds the same body in PyTensor. There, the
iterations run with gradients stopped and one last Newton step carries them: at the root its
gradient is exactly the implicit-function gradient :math:`-\partial_\theta h / \partial_v h`.
The graph starts each checkpoint's solve from its observed loss (or the default guess, if
closer), so a fixed :data:`GRAPH_ITERATIONS` converge wherever the posterior has mass and the
likelihood is the exact residual ``log L_obs - log L(N, S, B)``, not an errors-in-variables
approximation (as fitting ``L(N, S_min)`` at ``S_min`` computed from the *observed* loss would be).

Curves are held in a :class:`~bayes_scaling.curves.CurveTable` (one row per evaluated
checkpoint; :mod:`bayes_scaling.curves`, re-exported here). Queries on a fitted curve law
(:func:`predict_curve`, :func:`steps_needed`, :func:`tokens_needed_at_batch`,
:func:`critical_batch_size`, :func:`optimal_batch_size`) return
:class:`~bayes_scaling.summarize.QueryResult`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CHAIN, DEFAULT_INTERVAL, DEFAULT_PROBS, DRAW, POINT

# the curve-table API is re-exported here: dynamics.load_curves, dynamics.CurveTable, ...
from bayes_scaling.curves import (  # noqa: F401
    CURVE,
    MAX_POINTS,
    MAX_POINTS_PER_CURVE,
    OBS,
    WARMUP_FRACTION,
    CurveTable,
    load_curves,
    schedule_note,
    thin_indices,
)
from bayes_scaling.errors import ExtrapolationWarning, QueryError
from bayes_scaling.laws import Law
from bayes_scaling.predict import flat, group_theta, observation_noise, resolve_group
from bayes_scaling.spec import CURVE_LAWS, Prior
from bayes_scaling.summarize import BANDS, QueryResult, check_probs, interval_table

if TYPE_CHECKING:
    from bayes_scaling.fit import ScalingFit

SeedLike = int | np.random.Generator | None

#: Most Newton iterations of the numpy solve (it stops earlier once every point has converged).
MAX_ITERATIONS = 60
#: Iterations inside the PyMC graph, started from each checkpoint's observed loss or the default
#: guess, whichever is closer: near the posterior (within 3%) they converge to 1e-10 in 3, and
#: anywhere in the prior range to 1e-6 in 6 (tests/test_dynamics.py). An unconverged solve
#: would break the match between NUTS's energy and its gradient.
GRAPH_ITERATIONS = 6
#: The numpy solve stops once every ``|h(v)|`` is below this (``v`` is a log: relative error).
TOLERANCE = 1e-13
#: Within this ``|h|`` of the root Newton steps are always taken (quadratic convergence).
NEAR_ROOT = 1e-6


def _np_done(h: np.ndarray) -> bool:
    return bool(np.all(np.abs(h) < TOLERANCE))


#: Array operations of the solver on numpy (``model.py`` passes PyTensor's).
NUMPY_SOLVER_OPS = SimpleNamespace(exp=np.exp, log=np.log, logaddexp=np.logaddexp,
                                   where=np.where, stop_gradient=lambda x: x, done=_np_done)


# --------------------------------------------------------------------------------------------
# The law in natural form (numpy; readers, tests and queries)
# --------------------------------------------------------------------------------------------
def b_crit(loss, *, b_star, alpha_b):
    r"""Critical batch size in tokens at loss ``loss`` (Kaplan et al. 2020, eq. 5.4).

    .. math:: B_{crit}(L) = B^* / L^{1/\alpha_B}
    """
    return b_star / loss ** (1.0 / alpha_b)


def s_min(steps, batch, loss, *, b_star, alpha_b):
    r"""Minimum steps to reach ``loss`` (at ``B >> B_crit``) (Kaplan et al. 2020, eq. 5.4).

    .. math:: S_{min} = S / (1 + B_{crit}(L)/B)
    """
    return steps / (1.0 + b_crit(loss, b_star=b_star, alpha_b=alpha_b) / batch)


def e_min(tokens, batch, loss, *, b_star, alpha_b):
    r"""Minimum tokens to reach ``loss`` (at ``B << B_crit``) (Kaplan et al. 2020, eq. 5.5).

    .. math:: E_{min} = E / (1 + B/B_{crit}(L))
    """
    return tokens / (1.0 + batch / b_crit(loss, b_star=b_star, alpha_b=alpha_b))


def l_n_smin(n, s_min_, *, n_c, alpha_n, s_c, alpha_s):
    r"""Loss after ``s_min_`` minimum steps at size ``n`` (Kaplan et al. 2020, eq. 5.6).

    .. math:: L(N, S_{min}) = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S}
    """
    return (n_c / n) ** alpha_n + (s_c / s_min_) ** alpha_s


def _softplus(x, xp):
    return xp.logaddexp(0.0 * x, x)


def solve_step_term(log_floor, a, c, *, alpha_s, alpha_b, xp=NUMPY_SOLVER_OPS,
                    iterations: int = MAX_ITERATIONS, log_start=None):
    r"""Log of the step term ``v = log(L - L_N)`` at the root of :math:`h(v) = 0`.

    Parameters
    ----------
    log_floor
        ``log L_N = alpha_N log(N_c/N)``: log of the loss at infinitely many steps.
    a
        ``alpha_S log(S_c/S)``: ``v`` when ``B >> B_crit`` (the lower end of the bracket).
    c
        ``log(B*/B)``.
    alpha_s, alpha_b
        Exponents.
    xp
        Array operations (``exp, log, logaddexp, where, stop_gradient, done``).
    iterations
        Most safeguarded Newton steps (a bisection step whenever Newton leaves the bracket);
        ``xp.done(h)`` may stop earlier. A last Newton step follows with gradients on.
    log_start
        Optional log loss to start from, where it is closer to the root than the default
        guess (e.g. the observed loss of each checkpoint, within a few percent of the root
        wherever the posterior has mass: there 2-3 steps converge; far from it, the default
        guess converges in 6 over the whole prior range).

    Returns
    -------
    array_like
        ``v``, same shape as the broadcast inputs.
    """
    r = alpha_s / alpha_b

    def h_and_slope(v):
        log_l = xp.logaddexp(log_floor, v)
        logk = c - log_l / alpha_b                       # log(B_crit(L) / B)
        h = v - a - alpha_s * _softplus(logk, xp)
        slope = 1.0 + r * xp.exp(logk - _softplus(logk, xp) + v - log_l)
        return h, slope

    def clip(x):
        return xp.where(x > lo, xp.where(x < hi, x, hi), lo)

    lo = a + 0.0 * log_floor + 0.0 * c
    hi = a + alpha_s * _softplus(c - log_floor / alpha_b, xp)
    v = clip((a + alpha_s * c) / (1.0 + r))               # B << B_crit and L ~ step term
    if log_start is not None:  # start from log(L_start - L_N) where that is the better guess
        excess = xp.exp(log_start) - xp.exp(log_floor)
        v_start = clip(xp.where(excess > 0, xp.log(xp.where(excess > 0, excess, 1.0)), lo))
        h_guess, _ = h_and_slope(v)
        h_start, _ = h_and_slope(v_start)
        lo = xp.where(h_guess <= 0, xp.where(v > lo, v, lo), lo)
        hi = xp.where(h_guess >= 0, xp.where(v < hi, v, hi), hi)
        lo = xp.where(h_start <= 0, xp.where(v_start > lo, v_start, lo), lo)
        hi = xp.where(h_start >= 0, xp.where(v_start < hi, v_start, hi), hi)
        v = xp.where(h_start * h_start < h_guess * h_guess, v_start, v)
    h_before = 1e30 + 0.0 * lo
    for _ in range(iterations):
        h, slope = h_and_slope(v)
        if xp.done(h):
            break
        lo = xp.where(h <= 0, v, lo)
        hi = xp.where(h >= 0, v, hi)
        newton = v - h / slope
        # Newton, unless it leaves the bracket or, still far from the root, the last step did
        # not halve |h| (a sharp bend of B_crit(L), small alpha_B, makes Newton overshoot by up
        # to alpha_S/alpha_B): then bisect
        h2 = h * h
        fast = (h2 <= 0.25 * h_before * h_before) + (h2 < NEAR_ROOT**2) > 0
        v = xp.where((newton >= lo) * (newton <= hi) * fast, newton, 0.5 * (lo + hi))
        h_before = h
    v = xp.stop_gradient(v)
    h, slope = h_and_slope(v)
    return v - h / slope


def log_loss_nsb(log_n, log_s, log_b, *, log_n_c, alpha_n, log_s_c, alpha_s, log_b_star,
                 alpha_b, xp=NUMPY_SOLVER_OPS, iterations: int = MAX_ITERATIONS,
                 log_start=None):
    r"""``log L(N, S, B)``: the loss after ``S`` steps of batch ``B`` tokens at size ``N``.

    Solves :math:`L = (N_c/N)^{\alpha_N} + (S_c/S_{min}(S, B, L))^{\alpha_S}` for ``L``
    (Kaplan et al. 2020, section 5; Su et al. 2024) with :func:`solve_step_term`. Inputs are
    natural logs; broadcasting follows numpy (or xarray, or PyTensor through ``xp``).
    """
    log_floor = alpha_n * (log_n_c - log_n)
    v = solve_step_term(log_floor, alpha_s * (log_s_c - log_s), log_b_star - log_b,
                        alpha_s=alpha_s, alpha_b=alpha_b, xp=xp, iterations=iterations,
                        log_start=log_start)
    return xp.logaddexp(log_floor, v)


def loss_nsb(n, steps, batch, *, n_c, alpha_n, s_c, alpha_s, b_star, alpha_b):
    """``L(N, S, B)`` in nats/token from natural constants (see :func:`log_loss_nsb`)."""
    return np.exp(log_loss_nsb(np.log(n), np.log(steps), np.log(batch), log_n_c=np.log(n_c),
                               alpha_n=alpha_n, log_s_c=np.log(s_c), alpha_s=alpha_s,
                               log_b_star=np.log(b_star), alpha_b=alpha_b))


def steps_to_loss(n, target, batch, *, n_c, alpha_n, s_c, alpha_s, b_star, alpha_b):
    r"""Steps of batch ``batch`` tokens a model of ``n`` parameters needs to reach ``target``.

    Closed form (no solve): :math:`S = S_{min}(L^*) (1 + B_{crit}(L^*)/B)` with
    :math:`S_{min}(L^*) = S_c (L^* - (N_c/N)^{\alpha_N})^{-1/\alpha_S}`; ``inf`` where the target
    is at or below the size's floor ``(N_c/N)^alpha_N``. ``batch = inf`` gives ``S_min``.
    """
    gap = np.asarray(target - (n_c / n) ** alpha_n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        smin = np.where(gap > 0, s_c * np.where(gap > 0, gap, 1.0) ** (-1.0 / alpha_s), np.inf)
        return smin * (1.0 + b_crit(target, b_star=b_star, alpha_b=alpha_b) / batch)


def uncentre(theta_c: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
    r"""The law's natural log constants from the sampler's centred ones.

    The sampler works with the log of each term at the ladder's centre (``m_x`` the mean log of
    ``x`` over the curve points): ``log_n_c`` is sampled as :math:`\alpha_N(\log N_c - m_N)`,
    ``log_s_c`` as :math:`\alpha_S(\log S_c - m_S)` and ``log_b_star`` as
    :math:`\log B^* - m_L/\alpha_B - m_B` (the log of ``B_crit/B`` at the centre). This removes
    the curved ridges between the constants and their exponents (only the products are pinned
    by the loss level) without changing the model.
    """
    out = dict(theta_c)
    out["log_n_c"] = centre["n"] + theta_c["log_n_c"] / theta_c["alpha_n"]
    out["log_s_c"] = centre["s"] + theta_c["log_s_c"] / theta_c["alpha_s"]
    out["log_b_star"] = theta_c["log_b_star"] + centre["b"] + centre["loss"] / theta_c["alpha_b"]
    return out


def centre_constants(theta: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
    """Inverse of :func:`uncentre`."""
    out = dict(theta)
    out["log_n_c"] = theta["alpha_n"] * (theta["log_n_c"] - centre["n"])
    out["log_s_c"] = theta["alpha_s"] * (theta["log_s_c"] - centre["s"])
    out["log_b_star"] = theta["log_b_star"] - centre["b"] - centre["loss"] / theta["alpha_b"]
    return out


#: Natural-scale size of a centred offset: ``d(natural)/d(centred)`` is ``1/exponent`` (or 1).
OFFSET_SCALE: dict[str, str | None] = {"log_n_c": "alpha_n", "log_s_c": "alpha_s",
                                       "log_b_star": None}


def _log_loss_law(log_n, log_s, log_b, *, xp=NUMPY_SOLVER_OPS, **theta):
    return log_loss_nsb(log_n, log_s, log_b, xp=xp, **theta)


#: The curve law, as a :class:`~bayes_scaling.laws.Law` (inputs ``n, s, b``); not in ``LAWS``,
#: whose laws are ``L(N, D)`` laws.
DYNAMICS = Law(
    "dynamics", ("n", "s", "b"), CURVE_LAWS["dynamics"], log_mean=_log_loss_law,
    citation="Kaplan et al. (2020), arXiv:2001.08361, section 5; Su et al. (2024), "
             "arXiv:2403.06563",
    formula="L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S, S_min = S/(1 + B_crit(L)/B), "
            "B_crit(L) = B*/L^(1/alpha_B)",
)
#: Registry of curve laws (the name a model spec's ``law`` gives).
DYNAMICS_LAWS: dict[str, Law] = {"dynamics": DYNAMICS}





def synthetic_curves(
    params: Mapping[str, float],
    *,
    n_sizes: Sequence[float] = (1e6, 3e6, 1e7, 3e7, 1e8),
    batch_sizes: Sequence[float] = (2**16, 2**18, 2**20, 2**22),
    steps: Sequence[float] = tuple(np.geomspace(300, 1e5, 25)),
    noise: float = 0.005,
    curve_sd: float = 0.0,
    group_offsets: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 0,
) -> CurveTable:
    """Loss curves drawn from the law with natural constants ``params`` (for tests, benchmarks).

    One curve per (group, size, batch size), evaluated at ``steps``; log loss gets a per-curve
    Normal offset of sd ``curve_sd`` and per-point Normal noise of sd ``noise``.
    ``group_offsets`` maps a group to additive offsets on the log constants
    (``{"b": {"log_n_c": 0.5}}``). No warm-up rule or thinning is applied.
    """
    rng = np.random.default_rng(seed)
    base = {p: float(np.log(params[p[4:]]) if p.startswith("log_") else params[p])
            for p in DYNAMICS.params}
    s = np.asarray(steps, dtype=float)
    rows = []
    for g, offs in (group_offsets or {"all": {}}).items():
        theta = {p: base[p] + offs.get(p, 0.0) for p in DYNAMICS.params}
        for n in n_sizes:
            for b in batch_sizes:
                mu = log_loss_nsb(np.log(n), np.log(s), np.log(b), **theta)
                loss = np.exp(mu + curve_sd * rng.standard_normal() +
                              noise * rng.standard_normal(s.size))
                rows.append(pd.DataFrame({"run_id": f"{g}/N{n:.3g}/B{b:.3g}", "group": g,
                                          "n_params": n, "steps": s, "batch_size_tokens": b,
                                          "loss": loss}))
    return load_curves(pd.concat(rows, ignore_index=True), warmup_fraction=0.0,
                       max_points_per_curve=None, max_points=None)


#: Prior of ``sigma_curve``, the curve-to-curve sd of log loss (a run's whole curve sits above
#: or below the law: seed, learning rate, schedule), used when a fit has curve effects.
CURVE_SD_PRIOR = Prior("HalfNormal", {"sigma": 0.03})
#: Up to this many curve offsets the sampler adapts a dense mass matrix (``model.py``).
DENSE_MAX_CURVES = 100


def input_centre(curves: CurveTable) -> dict[str, float]:
    """Mean log N, S, B and loss of the curve points: the centre the sampler's constants use."""
    return {"n": float(np.mean(curves.log_n)), "s": float(np.mean(curves.log_s)),
            "b": float(np.mean(curves.log_b)), "loss": float(np.mean(curves.log_loss))}


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------
#: NUTS target acceptance of curve fits with several batch sizes (8 of 8 synthetic ladders
#: passed the gate at it, benchmarks/bench_dynamics.py section 3b).
TARGET_ACCEPT = 0.95
#: ... and with one batch size, where B_crit's constants are barely identified: at 0.95, 13 of
#: 20 synthetic one-batch-size ladders left 1-4 divergences (section 3b); at 0.99 none did.
ONE_BATCH_TARGET_ACCEPT = 0.99
#: target_accept of the automatic retry after a failed gate.
RETRY_TARGET_ACCEPT = 0.99


def default_target_accept(curves: CurveTable) -> float:
    """:data:`ONE_BATCH_TARGET_ACCEPT` for curves at one batch size, else :data:`TARGET_ACCEPT`."""
    return ONE_BATCH_TARGET_ACCEPT if np.unique(curves.b).size == 1 else TARGET_ACCEPT
#: Random starts (drawn from the priors, besides the prior medians) of :func:`point_fit`.
POINT_FIT_STARTS = 12
#: Spread of the chains' start points around the point fit (in prior sds; exponents: relative).
START_SPREAD = 0.05


def _prior_draws(prior: Prior, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draws from a spec prior (numpy; the distributions :mod:`bayes_scaling.spec` allows)."""
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


def point_fit(spec: Any, curves: CurveTable, *, starts: int = POINT_FIT_STARTS,
              random_seed: SeedLike = None) -> dict[str, float]:
    """Robust least-squares fit of the centred constants to log loss, best of several starts.

    A start point for NUTS, not an answer (DESIGN.md): curve data can hold far local optima
    (e.g. a tiny ``alpha_B`` with a huge ``B*``) where a chain started at random may settle.
    Starts: the prior medians and ``starts`` draws from the priors; soft-L1 loss (scale 0.02 in
    log loss). Returns the centred constants (the sampler's scale) and ``rms``, the robust
    residual scale.
    """
    from scipy.optimize import least_squares

    rng = np.random.default_rng(random_seed)
    params, centre = DYNAMICS.params, input_centre(curves)
    positive = [not p.startswith("log_") for p in params]
    draws = np.stack([_prior_draws(spec.priors[p], rng, 4001) for p in params], axis=1)
    inits = np.vstack([np.median(draws, axis=0), draws[:starts]])
    inits[:, positive] = np.log(inits[:, positive])

    def resid(x: np.ndarray) -> np.ndarray:
        theta = {p: float(np.exp(v) if pos else v)
                 for p, v, pos in zip(params, x, positive, strict=True)}
        with np.errstate(all="ignore"):
            mu = log_loss_nsb(curves.log_n, curves.log_s, curves.log_b,
                              **uncentre(theta, centre), log_start=curves.log_loss)
        r = curves.log_loss - mu
        return np.where(np.isfinite(r), r, 1e3)

    best = min((least_squares(resid, x0, loss="soft_l1", f_scale=0.02, max_nfev=300)
                for x0 in inits), key=lambda res: res.cost)
    out = {p: float(np.exp(v) if pos else v)
           for p, v, pos in zip(params, best.x, positive, strict=True)}
    r = resid(best.x)
    out["rms"] = float(1.4826 * np.median(np.abs(r - np.median(r))))
    return out


def start_points(spec: Any, curves: CurveTable, model: Any, chains: int,
                 rng: np.random.Generator) -> list[dict[str, float]]:
    """One start per chain near the multi-start :func:`point_fit`, for the sampler."""
    fit0 = point_fit(spec, curves, random_seed=rng)
    out = []
    for _ in range(chains):
        point: dict[str, float] = {}
        for p in DYNAMICS.params:
            name = next((n for n in (f"{p}_c", f"{p}_c_pop") if n in model.named_vars), None)
            if name is None:
                continue
            z = START_SPREAD * rng.standard_normal()
            point[name] = (fit0[p] * np.exp(z) if not p.startswith("log_")
                           else fit0[p] + z * spec.priors[p].kwargs.get("sigma", 1.0))
        point["sigma"] = max(fit0["rms"], 1e-4) * np.exp(START_SPREAD * rng.standard_normal())
        out.append(point)
    return out


def posterior_var_names(spec: Any, curves: CurveTable, curve_effects: bool) -> list[str]:
    """Posterior variables a curve fit keeps (natural constants and the noise model)."""
    law = DYNAMICS_LAWS[spec.law]
    names = list(law.params)
    if curves.n_groups > 1:
        for p in spec.hierarchy.varying:
            names += [f"{p}_pop", f"{p}_tau"]
    names.append("sigma")
    if spec.likelihood.family == "studentt":
        names.append("nu")
    if curve_effects:
        names.append("sigma_curve")
    return names


def fit_dynamics(
    model: Any,
    curves: CurveTable,
    *,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    backend: str | None = None,
    target_accept: float | None = None,
    random_seed: int | np.random.Generator | None = None,
    on_bad: str = "warn",
    retries: int = 1,
    curve_effects: bool | None = None,
    progress: bool = False,
    on_progress: Any = None,
) -> ScalingFit:
    """Fit a curve-law model (a spec whose ``law`` is ``"dynamics"``) to ``curves`` with NUTS.

    ``curve_effects`` (default: when some curve has at least 3 checkpoints) gives each curve an
    offset on log loss, so the predictive band of a new curve includes a whole-curve shift, not
    only point noise. Chains start near a multi-start least-squares fit (:func:`start_points`;
    numpyro backend) and sample with a dense mass matrix, at ``target_accept`` (default
    :func:`default_target_accept`: 0.99 with one batch size, else 0.95). A fit that fails the
    convergence gate is resampled up to ``retries`` times with ``target_accept``
    :data:`RETRY_TARGET_ACCEPT` and twice the warm-up, keeping the last verdict. Returns a
    :class:`~bayes_scaling.fit.ScalingFit` (its ``runs`` is the :class:`CurveTable`); the
    convergence gate runs as in :func:`bayes_scaling.fit.fit`.
    """
    import datetime as dt

    import arviz as az

    from bayes_scaling import inference
    from bayes_scaling.diagnostics import check_convergence
    from bayes_scaling.errors import SpecError
    from bayes_scaling.fit import ScalingFit, _seed, sample_gated, versions
    from bayes_scaling.model import build_dynamics_model
    from bayes_scaling.spec import load_spec

    spec = load_spec(model)
    if spec.law not in DYNAMICS_LAWS:
        raise SpecError(f"model {spec.name!r} has law {spec.law!r}, not a curve law "
                        f"({', '.join(DYNAMICS_LAWS)}); fit it with bayes_scaling.fit.fit")
    tell = on_progress or (lambda _msg: None)
    seed, backend = _seed(random_seed), backend or inference.DEFAULT_BACKEND
    target_accept = default_target_accept(curves) if target_accept is None else target_accept
    if curve_effects is None:
        curve_effects = bool(curves.curves()["n_points"].max() >= 3)
    tell(f"building {spec.name} on {curves.n_points} points of {curves.n_curves} curves, "
         f"{curves.n_groups} group(s)")
    pm_model = build_dynamics_model(spec, curves, curve_effects=curve_effects)
    tell("start points: multi-start least-squares fit")
    pm_model.bayes_scaling_initvals = start_points(spec, curves, pm_model, chains,
                                                   np.random.default_rng([seed, 1]))
    names = posterior_var_names(spec, curves, curve_effects)
    tell(f"sampling: {chains} chains x ({tune} tune + {draws} draws), backend {backend}")
    run = sample_gated(pm_model, names, backend=backend, chains=chains, draws=draws, tune=tune,
                       target_accept=target_accept, random_seed=seed, retries=retries,
                       progress=progress, retry_target_accept=RETRY_TARGET_ACCEPT, tell=tell)
    idata, diag, seconds = run.idata, run.diagnostics, run.seconds
    tell(f"sampled in {seconds:.1f} s; " + ("gate passed" if diag.passed else diag.banner()))
    meta = {"method": "nuts", "seed": seed, "backend": backend,
            "target_accept": run.target_accept, "tune": run.tune, "draws": diag.draws,
            "draws_requested": draws,
            "chains": chains, "retried": run.attempt > 0,
            "centre": input_centre(curves), "curve_effects": curve_effects,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": versions()}
    keep = {g: idata[g] for g in ("posterior", "sample_stats") if g in idata.groups()}
    result = ScalingFit(az.InferenceData(**keep), spec, curves, diag, meta)
    check_convergence(diag, on_bad=on_bad)
    return result


# --------------------------------------------------------------------------------------------
# Queries (numpy only: a saved fit is loaded and queried without PyMC)
# --------------------------------------------------------------------------------------------
#: Decades of model size past the largest curve beyond which a query warns.
FAR_DECADES_N = 1.5
#: Default tolerance of :func:`optimal_batch_size`: within 10% of the fewest steps or tokens.
BATCH_TOLERANCE = 0.1


def _positive(values: Any, name: str) -> np.ndarray:
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be numbers, got {values!r}") from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise QueryError(f"{name} must be positive and finite, got {values!r}")
    return a


def _scalar(value: Any, name: str) -> float:
    a = _positive(value, name)
    if a.size != 1:
        raise QueryError(f"{name} must be one number here, got {a.size}")
    return float(a[0])


def _natural_draws(fit: ScalingFit, group: str, rng: np.random.Generator) -> dict[str, Any]:
    """Natural constants per draw, shape ``(S, 1)`` (``n_c``, ``alpha_n``, ..., ``b_star``)."""
    theta = group_theta(fit, group, rng=rng)
    return {(k[4:] if k.startswith("log_") else k): (np.exp(v) if k.startswith("log_") else v)
            [:, None] for k, v in theta.items()}


def _wrap_draws(fit: ScalingFit, samples: np.ndarray, name: str, **attrs: Any) -> xr.DataArray:
    c, d = fit.posterior.sizes[CHAIN], fit.posterior.sizes[DRAW]
    return xr.DataArray(samples.reshape(c, d, -1), dims=(CHAIN, DRAW, POINT), name=name,
                        attrs=attrs)


def _messages(fit: ScalingFit, extra: Sequence[str] = ()) -> tuple[str, ...]:
    for m in extra:
        warnings.warn(m, ExtrapolationWarning, stacklevel=3)
    return (*([fit.warning_banner] if fit.warning_banner else []), *extra)


def curve_noise(fit: ScalingFit, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Where one new run lands around the law, on log loss: a whole-curve offset of sd
    ``sigma_curve`` (one per draw, shared by its checkpoints) plus checkpoint noise."""
    out = observation_noise(fit, shape, rng)
    if "sigma_curve" in fit.posterior:
        out = out + flat(fit.posterior["sigma_curve"])[:, None] * rng.standard_normal(
            (shape[0], 1))
    return out


def predict_curve(
    fit: ScalingFit,
    n_params: float,
    batch_size: float,
    steps: Any = None,
    *,
    group: str | None = None,
    band: str = "predictive",
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    random_seed: SeedLike = None,
) -> QueryResult:
    """Loss curve (nats/token vs steps) of a model of ``n_params`` trained at ``batch_size``.

    Parameters
    ----------
    fit : ScalingFit
        A curve-law fit (:func:`fit_dynamics`).
    n_params, batch_size : float
        Model size (counted as in the fit) and batch size in tokens.
    steps : array_like, optional
        Optimizer steps; default 50 log-spaced steps over the fitted curves' range.
    group : str, optional
        A seen group, or ``"new"`` for an unseen data distribution.
    band : {"predictive", "law"}
        ``"law"``: the law's mean; ``"predictive"``: where one new run would land (law, a
        whole-curve offset and checkpoint noise).

    Returns
    -------
    QueryResult
        Summary rows per step: ``n_params, batch_size_tokens, steps, tokens, group, band``,
        the interval columns and ``decades_past_n`` (past the largest fitted size).
    """
    probs, interval = check_probs(probs, interval)
    if band not in BANDS:
        raise QueryError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    n, b = _scalar(n_params, "n_params"), _scalar(batch_size, "batch_size")
    s = (np.geomspace(fit.runs.s.min(), fit.runs.s.max(), 50) if steps is None
         else _positive(steps, "steps"))
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = {k: v[:, None] for k, v in group_theta(fit, g, rng=rng).items()}
    log_l = np.broadcast_to(log_loss_nsb(np.log(n), np.log(s)[None, :], np.log(b), **theta),
                            (next(iter(theta.values())).shape[0], s.size))
    if band == "predictive":
        log_l = log_l + curve_noise(fit, log_l.shape, rng)
    loss = np.exp(log_l)
    past = max(0.0, float(np.log10(n / fit.runs.n.max())))
    summary = pd.concat([
        pd.DataFrame({"n_params": n, "batch_size_tokens": b, "steps": s, "tokens": s * b,
                      "group": g, "band": band}),
        interval_table(loss, probs=probs, interval=interval),
        pd.DataFrame({"decades_past_n": np.full(s.size, past)})], axis=1)
    warn = ([f"predicting {past:.1f} decades of model size past the largest fitted curve"]
            if past > FAR_DECADES_N else [])
    return QueryResult(_wrap_draws(fit, loss, "loss", band=band, units="nats/token", group=g),
                       summary, band, _messages(fit, warn))


def _target(target_loss: Any) -> float:
    try:
        t = float(target_loss)
    except (TypeError, ValueError):
        raise QueryError(f"target loss must be a number, got {target_loss!r}") from None
    if not np.isfinite(t) or t <= 0:
        raise QueryError(f"target loss must be positive and finite, got {target_loss}")
    return t


def _budget_table(fit: ScalingFit, draws: np.ndarray, head: pd.DataFrame, probs: Sequence[float],
                  interval: float, name: str, units: str) -> QueryResult:
    reach = np.isfinite(draws)
    table = pd.concat([head.assign(band="law", p_unreachable=1.0 - reach.mean(axis=0)),
                       interval_table(draws, probs=probs, interval=interval)], axis=1)
    msgs = list(_messages(fit))
    for j in np.flatnonzero(table["p_unreachable"].to_numpy() > 0.5):
        msgs.append(f"target {head['target_loss'].iloc[j]:g} is below the loss floor "
                    f"(N_c/N)^alpha_N at N={head['n_params'].iloc[j]:.3g} in "
                    f"{table['p_unreachable'].iloc[j]:.0%} of draws: most likely unreachable")
    return QueryResult(_wrap_draws(fit, draws, name, band="law", units=units), table, "law",
                       tuple(msgs))


def _steps_draws(fit: ScalingFit, n: float, target: float, batch: np.ndarray, group: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    nat = _natural_draws(fit, group, rng)
    return steps_to_loss(n, target, batch[None, :], **nat), nat


def steps_needed(fit: ScalingFit, n_params: float, target_loss: float, batch_size: Any = None,
                 *, group: str | None = None, probs: Sequence[float] = DEFAULT_PROBS,
                 interval: float = DEFAULT_INTERVAL, random_seed: SeedLike = None
                 ) -> QueryResult:
    r"""Optimizer steps to reach ``target_loss`` at each batch size, and the minimum over them.

    Per draw, closed form: :math:`S = S_{min}(L^*)(1 + B_{crit}(L^*)/B)`; the row with
    ``batch_size_tokens = inf`` (``quantity = "s_min"``) is the fewest steps of any batch size,
    approached as :math:`B \gg B_{crit}`. ``inf`` draws (target below the size's floor) count in
    ``p_unreachable``. Band ``"law"``. ``batch_size`` defaults to the fitted curves' sizes.
    """
    probs, interval = check_probs(probs, interval)
    n, target = _scalar(n_params, "n_params"), _target(target_loss)
    b = (np.unique(fit.runs.b) if batch_size is None else _positive(batch_size, "batch_size"))
    g = resolve_group(fit, group)
    b_all = np.append(b, np.inf)
    draws, _ = _steps_draws(fit, n, target, b_all, g, np.random.default_rng(random_seed))
    head = pd.DataFrame({"n_params": n, "target_loss": target, "batch_size_tokens": b_all,
                         "quantity": ["steps"] * b.size + ["s_min"], "group": g})
    return _budget_table(fit, draws, head, probs, interval, "steps", "optimizer steps")


def tokens_needed_at_batch(fit: ScalingFit, n_params: float, target_loss: float,
                           batch_size: Any = None, *, group: str | None = None,
                           probs: Sequence[float] = DEFAULT_PROBS,
                           interval: float = DEFAULT_INTERVAL,
                           random_seed: SeedLike = None) -> QueryResult:
    r"""Training tokens ``E = S B`` to reach ``target_loss`` at each batch size, and the minimum.

    :math:`E = S_{min}(L^*)(B + B_{crit}(L^*))`; the row with ``batch_size_tokens = 0``
    (``quantity = "e_min"``) is the fewest tokens of any batch size, approached as
    :math:`B \ll B_{crit}` (Kaplan et al. 2020, eq. 5.5). Band ``"law"``.
    """
    probs, interval = check_probs(probs, interval)
    n, target = _scalar(n_params, "n_params"), _target(target_loss)
    b = (np.unique(fit.runs.b) if batch_size is None else _positive(batch_size, "batch_size"))
    g = resolve_group(fit, group)
    steps, nat = _steps_draws(fit, n, target, b, g, np.random.default_rng(random_seed))
    with np.errstate(invalid="ignore"):
        smin = steps_to_loss(n, target, np.inf, **nat)
        draws = np.concatenate([steps * b[None, :], smin * b_crit(target, b_star=nat["b_star"],
                                                                  alpha_b=nat["alpha_b"])], 1)
    head = pd.DataFrame({"n_params": n, "target_loss": target,
                         "batch_size_tokens": np.append(b, 0.0),
                         "quantity": ["tokens"] * b.size + ["e_min"], "group": g})
    return _budget_table(fit, draws, head, probs, interval, "tokens", "tokens")


def critical_batch_size(fit: ScalingFit, loss: Any, *, group: str | None = None,
                        probs: Sequence[float] = DEFAULT_PROBS, interval: float = DEFAULT_INTERVAL,
                        random_seed: SeedLike = None) -> QueryResult:
    r"""Critical batch size :math:`B_{crit}(L) = B^*/L^{1/\alpha_B}` (tokens) at each loss.

    The batch size that trades steps against tokens evenly: training at it takes twice the
    fewest steps and twice the fewest tokens (Kaplan et al. 2020; McCandlish et al. 2018).
    Band ``"law"``; summary rows per loss: ``loss, group, band`` and the interval columns.
    """
    probs, interval = check_probs(probs, interval)
    lv = _positive(loss, "loss")
    g = resolve_group(fit, group)
    nat = _natural_draws(fit, g, np.random.default_rng(random_seed))
    draws = b_crit(lv[None, :], b_star=nat["b_star"], alpha_b=nat["alpha_b"])
    summary = pd.concat([pd.DataFrame({"loss": lv, "group": g, "band": "law"}),
                         interval_table(draws, probs=probs, interval=interval)], axis=1)
    return QueryResult(_wrap_draws(fit, draws, "b_crit", band="law", units="tokens"),
                       summary, "law", _messages(fit))


def optimal_batch_size(fit: ScalingFit, n_params: float, target_loss: float, *,
                       tolerance: float = BATCH_TOLERANCE, group: str | None = None,
                       probs: Sequence[float] = DEFAULT_PROBS, interval: float = DEFAULT_INTERVAL,
                       random_seed: SeedLike = None) -> QueryResult:
    r"""Batch sizes that minimise steps or tokens to reach ``target_loss``, with bands.

    Steps fall and tokens rise with the batch size, so neither has an interior minimum: steps
    approach :math:`S_{min}` only as :math:`B \to \infty` and tokens :math:`E_{min}` only as
    :math:`B \to 0`. Rows (``quantity``): ``batch_for_steps`` = :math:`B_{crit}/\epsilon`, the
    smallest batch within ``1 + tolerance`` of the fewest steps; ``batch_for_tokens`` =
    :math:`\epsilon B_{crit}`, the largest batch within ``1 + tolerance`` of the fewest tokens;
    ``b_crit``, the balanced choice (2 S_min steps, 2 E_min tokens); and ``s_min``, ``e_min``.
    Band ``"law"``.
    """
    probs, interval = check_probs(probs, interval)
    n, target = _scalar(n_params, "n_params"), _target(target_loss)
    if not 0.0 < float(tolerance) < 1.0:
        raise QueryError(f"tolerance must be between 0 and 1, got {tolerance}")
    g = resolve_group(fit, group)
    nat = _natural_draws(fit, g, np.random.default_rng(random_seed))
    bc = b_crit(target, b_star=nat["b_star"], alpha_b=nat["alpha_b"])[:, 0]
    smin = steps_to_loss(n, target, np.inf, **nat)[:, 0]
    with np.errstate(invalid="ignore"):
        cols = {"batch_for_steps": bc / tolerance, "batch_for_tokens": tolerance * bc,
                "b_crit": bc, "s_min": smin, "e_min": smin * bc}
    draws = np.stack(list(cols.values()), axis=1)
    head = pd.DataFrame({"n_params": n, "target_loss": target, "quantity": list(cols),
                         "tolerance": float(tolerance), "group": g})
    return _budget_table(fit, draws, head, probs, interval, "batch", "tokens or steps")
