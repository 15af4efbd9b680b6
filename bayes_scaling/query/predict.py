"""Queries on a fit: predicted loss and tokens needed, as draws plus a tidy summary.

Never imports PyMC: a saved fit is loaded and queried in numpy. Every query takes ``group``
(a seen data distribution, or ``"new"`` for the population predictive of an unseen one) and
returns a :class:`~bayes_scaling.query.summarize.QueryResult` whose ``band`` says what it is:

- ``"law"``: the spread of the law's mean over the posterior (epistemic);
- ``"predictive"``: where one real run would land: the law band, plus run-to-run noise, plus
  the extrapolation discrepancy learned by calibration (its scale grows with the decades past
  the training runs; see :mod:`bayes_scaling.fitting.calibrate`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import (
    CHAIN,
    DEFAULT_INTERVAL,
    DEFAULT_PROBS,
    DRAW,
    GROUP,
    NEW_GROUP,
    POINT,
)
from bayes_scaling.data.support import (
    DRIFT_VARS,
    FAR_DECADES_C,
    Box,
    Reach,
    decades_outside,
    discrepancy_mean,
    discrepancy_var,
)
from bayes_scaling.errors import ExtrapolationWarning, QueryError
from bayes_scaling.fitting.families import FamilyFit, draw_shape, mix
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.fitting.tails import NU_VAR, PART_VAR, SCALE_VAR, mixing_draws
from bayes_scaling.laws.final_loss import LAWS, natural
from bayes_scaling.query.summarize import BANDS, QueryResult, check_probs, interval_table
from bayes_scaling.types import Band, SeedLike


# ------------------------------------------------------------------------------ helpers
def resolve_group(fit: ScalingFit, group: str | None) -> str:
    """The group a query refers to; ``None`` is allowed only for single-group fits."""
    names = fit.group_names
    if group is None:
        if len(names) == 1:
            return names[0]
        raise QueryError(f"this fit has {len(names)} groups ({', '.join(names)}): choose one "
                         f"with group=..., or group='{NEW_GROUP}' for an unseen one")
    if group == NEW_GROUP or group in names:
        return group
    raise QueryError(f"unknown group {group!r}; the fit has {', '.join(names)} "
                     f"(or '{NEW_GROUP}' for an unseen group)")


def require_nd_law(fit: ScalingFit | FamilyFit) -> None:
    """Refuse L(N, D) queries on a training-dynamics fit, with a pointer to the right ones."""
    if isinstance(fit, FamilyFit):
        for f in fit.fits.values():
            require_nd_law(f)
        return
    if fit.spec.law not in LAWS:
        raise QueryError(f"this is a {fit.spec.law!r} (training-dynamics) fit: query it with "
                         "`bayes-scaling curve` or `bayes-scaling batch`")


def flat(da: xr.DataArray) -> np.ndarray:
    """``(chain, draw, ...)`` -> ``(chain*draw, ...)``."""
    a = np.asarray(da)
    return a.reshape(-1, *a.shape[2:])


def group_theta(fit: ScalingFit, group: str | None, *,
                rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Law constants per draw, shape ``(S,)``, for ``group`` (``"new"``: fresh offsets)."""
    g = resolve_group(fit, group)
    post = fit.posterior
    if g == NEW_GROUP and "centre" in fit.meta:
        return _new_group_theta(fit, rng if rng is not None else np.random.default_rng(0))
    theta = {}
    for p in fit.law.params:
        da = post[p]
        if GROUP not in da.dims:
            theta[p] = flat(da)
        elif g != NEW_GROUP:
            theta[p] = flat(da.sel({GROUP: g}))
        else:  # a fit without its input centre (fake fits): offsets on the natural scale
            rng = rng if rng is not None else np.random.default_rng(0)
            pop, tau = flat(post[f"{p}_pop"]), flat(post[f"{p}_tau"])
            theta[p] = pop + tau * rng.standard_normal(pop.shape)
    return theta


def _new_group_theta(fit: ScalingFit, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Constants of an unseen group: fresh offsets drawn on the scale the model draws them.

    :func:`bayes_scaling.model.build.build_model` puts group offsets on the centred log constants
    (``log A - alpha m_N``, ...), on ``log`` of a varying exponent, and on ``alpha * p_c`` for a
    scaled constant (Kaplan's laws); the natural ``<p>_tau`` it records converts back. Drawing
    there and uncentring keeps e.g. ``log A`` and ``alpha`` of the new group consistent when
    the exponents vary too (``models/chinchilla_slopes.toml``).
    """
    law, post, centre = fit.law, fit.posterior, fit.meta["centre"]
    varying = [p for p in law.params if GROUP in post[p].dims]
    pop_c = law.centre({p: flat(post[f"{p}_pop"] if p in varying else post[p])
                        for p in law.params}, centre)
    z = {p: rng.standard_normal(pop_c[p].shape) for p in varying}
    new_c = dict(pop_c)
    for p in (q for q in varying if q in law.exponents):  # exponents first: scaled use them
        new_c[p] = pop_c[p] * np.exp(z[p] * flat(post[f"{p}_tau"]) / pop_c[p])
    for p in (q for q in varying if q not in law.exponents):
        tau = flat(post[f"{p}_tau"])
        if p in law.scaled:  # offsets on s = k * p_c, with sd tau * k_pop
            k = law.scaled[p]
            new_c[p] = (pop_c[p] * pop_c[k] + z[p] * tau * pop_c[k]) / new_c[k]
        else:
            new_c[p] = pop_c[p] + z[p] * tau
    return law.uncentre(new_c, centre)


def fit_box(fit: ScalingFit | FamilyFit) -> Box:
    """The training range of the fit."""
    if isinstance(fit, FamilyFit):
        fit = fit.first
    if "box" in fit.meta:
        return Box.from_dict(fit.meta["box"])
    return Box.of(fit.runs.n, fit.runs.d)


def _points(n: Any, d: Any = None) -> tuple[np.ndarray, np.ndarray]:
    try:
        n_arr = np.atleast_1d(np.asarray(n, dtype=float))
        d_arr = np.atleast_1d(np.asarray(d if d is not None else np.nan, dtype=float))
        n_arr, d_arr = np.broadcast_arrays(n_arr, d_arr)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"n_params and n_tokens must be numbers of matching length ({exc})") \
            from None
    for name, a in (("n_params", n_arr), ("n_tokens", d_arr)):
        if d is None and name == "n_tokens":
            continue
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            bad = a[~(np.isfinite(a) & (a > 0))][:3]
            raise QueryError(f"{name} must be positive and finite, got "
                             f"{', '.join(f'{v:g}' for v in bad)}")
    return n_arr.ravel().copy(), d_arr.ravel().copy()


def _wrap(fit: ScalingFit | FamilyFit, samples: np.ndarray, name: str,
          **attrs: Any) -> xr.DataArray:
    c, d = draw_shape(fit, samples.shape[0])
    if isinstance(fit, FamilyFit):
        attrs = {**attrs, "weights": fit.weights_label()}
    arr = samples.reshape(c, d, *samples.shape[1:])
    dims = (CHAIN, DRAW, POINT)[: arr.ndim]
    return xr.DataArray(arr, dims=dims, name=name, attrs=attrs)


def observation_noise(fit: ScalingFit, shape: tuple[int, ...],
                      rng: np.random.Generator) -> np.ndarray:
    """Run-to-run noise on log loss, per draw: Normal or Student-t with the fitted scale.

    Student-t noise is drawn as a scale mixture of normals, ``z * sqrt(nu / W)`` with
    ``W ~ chi2(nu)``, one ``W`` per posterior draw shared by that draw's points: every point's
    marginal predictive distribution is exact (and 4x cheaper than independent t draws); the
    draws of two points of one posterior draw share that scale, which no summary here uses.
    """
    sigma = flat(fit.posterior["sigma"])[:, None]
    eps = rng.standard_normal(shape)
    if "nu" in fit.posterior:
        nu = flat(fit.posterior["nu"])[:, None]
        eps = eps * np.sqrt(nu / rng.chisquare(nu))
    return sigma * eps


def discrepancy(fit: ScalingFit, far: Mapping[str, np.ndarray] | np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Extrapolation discrepancy on log loss, per draw and point (zero if uncalibrated).

    Its sd is :func:`discrepancy_scale`'s, times a standard normal (and ``sqrt(lambda)``, one
    per draw, for a Student-t discrepancy, :func:`discrepancy_lambda`).
    """
    if "kappa" not in fit.posterior:
        size = far["distance"].size if isinstance(far, Mapping) else np.size(far)
        return np.zeros((fit.posterior.sizes[CHAIN] * fit.posterior.sizes[DRAW], size))
    sd = np.asarray(discrepancy_scale(fit, far))
    z = rng.standard_normal(sd.shape)
    lam = discrepancy_lambda(fit, rng)
    return (sd if lam is None else np.asarray(discrepancy_scale(fit, far, lam))) * z


def discrepancy_lambda(fit: ScalingFit, rng: np.random.Generator) -> np.ndarray | None:
    """Per draw, the multiplier ``lambda`` (shape ``(S, 1)``) of the discrepancy variance.

    For a Student-t discrepancy (:mod:`bayes_scaling.fitting.tails`); ``None``, drawing
    nothing, if Normal. Every query multiplies :func:`discrepancy_scale`'s variance by it,
    drawing it after its normals (so a Student-t shape reuses a Normal fit's random numbers).
    """
    post = fit.posterior
    if NU_VAR not in post:
        return None
    return mixing_draws(flat(post[NU_VAR]), rng,
                        flat(post[SCALE_VAR]) if SCALE_VAR in post else None)


def discrepancy_scale(fit: ScalingFit, far: Mapping[str, np.ndarray] | np.ndarray,
                      lam: np.ndarray | float | None = None) -> np.ndarray | float:
    """Per-draw discrepancy sd at points ``far`` from the support, shape ``(S, points)``.

    ``far``: :func:`~bayes_scaling.data.support.decades_outside`'s output (or the distance
    alone, for a fit whose discrepancy has one ``(tau0, kappa)``); the variance is
    :func:`~bayes_scaling.data.support.discrepancy_var`: ``tau0^2 ramp(distance) +
    (kappa distance)^2``, or per kind of extrapolation when the fit has ``tau0_shape`` and
    ``kappa_shape`` draws. 0 if the fit is uncalibrated. ``lam``: a Student-t discrepancy's
    :func:`discrepancy_lambda`, multiplying the variance (or only its shape part, for a fit
    with :data:`~bayes_scaling.fitting.tails.PART_VAR`).
    """
    post = fit.posterior
    if "kappa" not in post:
        return 0.0
    if lam is not None and PART_VAR not in post:
        return np.sqrt(lam) * discrepancy_scale(fit, far)
    kappa = flat(post["kappa"])[:, None]
    tau0 = flat(post["tau0"])[:, None] if "tau0" in post else np.zeros_like(kappa)
    shape = {k: flat(post[k])[:, None] for k in ("tau0_shape", "kappa_shape") if k in post}
    if lam is not None or (shape and isinstance(far, Mapping)
                           and fit_box(fit).distance == "hull_compute"):
        if not isinstance(far, Mapping):
            raise QueryError("a Student-t on the shape part needs the parts of the distance")
        pts = {k: np.asarray(far[k], dtype=float)[None, :] for k in ("scale", "shape")}
        return np.sqrt(discrepancy_var(pts, tau0, kappa, shape.get("tau0_shape", tau0),
                                       shape.get("kappa_shape", kappa),
                                       Reach.from_meta(fit.meta.get("calibration")), lam))
    d = np.asarray(far["distance"] if isinstance(far, Mapping) else far, dtype=float)[None, :]
    return np.sqrt(discrepancy_var(d, tau0, kappa))


def discrepancy_shift(fit: ScalingFit, far: Mapping[str, np.ndarray] | np.ndarray,
                      ) -> np.ndarray | float:
    """Per-draw mean of the discrepancy (log loss) at points ``far``, shape ``(S, points)``.

    The fit's signed drift per kind of extrapolation
    (:func:`~bayes_scaling.data.support.discrepancy_mean`, :mod:`bayes_scaling.fitting.drift`);
    0 for a fit without ``drift_scale``/``drift_shape`` draws (a zero-mean discrepancy) or for a
    distance given without its parts.
    """
    post = fit.posterior
    if not all(k in post for k in DRIFT_VARS) or not isinstance(far, Mapping) \
            or fit_box(fit).distance != "hull_compute":
        return 0.0
    pts = {k: np.asarray(far[k], dtype=float)[None, :] for k in ("scale", "shape")}
    return discrepancy_mean(pts, *(flat(post[k])[:, None] for k in DRIFT_VARS),
                            Reach.from_meta(fit.meta.get("calibration")))


#: z of the drift's reported band (90%).
Z90 = 1.6448536269514722


def drift_columns(fit: ScalingFit | FamilyFit, far: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per point: the predictive median's shift by the drift, in % of loss, and its 90% band.

    ``drift_pct`` is ``100 (exp(mean) - 1)`` of :func:`discrepancy_shift`; ``drift_lo_pct`` and
    ``drift_hi_pct`` the same at ``mean -/+ 1.645 sd`` (the drift's own posterior sd per part,
    ``meta["calibration"]["drift"]``, combined as independent). Zeros without a drift; for
    several families, their weighted average.
    """
    size = np.asarray(far["distance"]).size
    fits = ({k: f for k, f in fit.fits.items() if fit.weights[k] > 0}
            if isinstance(fit, FamilyFit) else {"": fit})
    wts = {k: (fit.weights[k] if isinstance(fit, FamilyFit) else 1.0) for k in fits}
    out = np.zeros((3, size))
    for k, f in fits.items():
        shift = discrepancy_shift(f, far)
        if np.ndim(shift) == 0:
            continue
        # the band of the drift as attach_discrepancy recorded it (none recorded: no band)
        drift = (f.meta.get("calibration") or {}).get("drift") or {}
        mean = np.mean(shift, axis=0)
        sd = np.hypot(drift.get("scale", {}).get("sd", 0.0) * np.asarray(far["scale"], float),
                      drift.get("shape", {}).get("sd", 0.0) * np.asarray(far["shape"], float))
        for i, v in enumerate((mean, mean - Z90 * sd, mean + Z90 * sd)):
            out[i] += wts[k] * 100.0 * np.expm1(v)
    total = sum(wts.values())
    return pd.DataFrame({"drift_pct": out[0] / total, "drift_lo_pct": out[1] / total,
                         "drift_hi_pct": out[2] / total})


def extrapolation_warnings(fit: ScalingFit, n: np.ndarray, d: np.ndarray) -> list[str]:
    """Plain-language warnings for points far outside the training runs."""
    out = []
    far = decades_outside(fit_box(fit), n, d)
    worst = float(np.max(far["c_past_max"]))
    if worst > FAR_DECADES_C:
        out.append(f"extrapolating {worst:.1f} decades of compute past the largest run "
                   f"(> {FAR_DECADES_C:g}): the law's form is untested there")
    dist = float(np.max(far["distance"]))
    if worst <= FAR_DECADES_C < dist:
        out.append(f"a query lies {dist:.1f} decades from the runs' support (outside their "
                   f"convex hull in log N x log D; > {FAR_DECADES_C:g}): no run had a comparable "
                   "size and token count, and the law's form is untested there")
    return out


def _emit(messages: Sequence[str], fit: ScalingFit) -> tuple[str, ...]:
    msgs = [*([fit.warning_banner] if fit.warning_banner else []), *messages]
    for m in messages:
        warnings.warn(m, ExtrapolationWarning, stacklevel=3)
    return tuple(msgs)


# ------------------------------------------------------------------------------ queries
def log_loss_draws(fit: ScalingFit, n: np.ndarray, d: np.ndarray, *, group: str | None,
                   band: str, rng: np.random.Generator) -> np.ndarray:
    """Draws of log loss, shape ``(S, points)``, under ``band``."""
    if band not in BANDS:
        raise QueryError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    theta = {k: v[:, None] for k, v in group_theta(fit, group, rng=rng).items()}
    log_inputs = {"n": np.log(n)[None, :], "d": np.log(d)[None, :]}
    log_mu = fit.law.evaluate_log(log_inputs, theta)
    log_mu = np.broadcast_to(log_mu, (log_mu.shape[0], n.size))
    if band == "law":
        return np.array(log_mu)
    far = decades_outside(fit_box(fit), n, d)
    # noise and discrepancy are both normal given a draw's scales (Student-t noise as a scale
    # mixture, see observation_noise), so one normal draw with the summed variance is exact
    post = fit.posterior
    var = flat(post["sigma"])[:, None] ** 2
    if "nu" in post:
        nu = flat(post["nu"])[:, None]
        var = var * (nu / rng.chisquare(nu))
    z = rng.standard_normal(log_mu.shape)
    # a Student-t discrepancy (fitting.tails) as a scale mixture too, one lambda per draw
    var = var + np.asarray(discrepancy_scale(fit, far, discrepancy_lambda(fit, rng))) ** 2
    return log_mu + discrepancy_shift(fit, far) + np.sqrt(var) * z


def predict_loss(
    fit: ScalingFit | FamilyFit,
    n_params: Any,
    n_tokens: Any,
    *,
    group: str | None = None,
    band: Band = "predictive",
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    random_seed: SeedLike = None,
) -> QueryResult:
    """Loss (nats/token) of models of ``n_params`` trained on ``n_tokens``, with bands.

    Parameters
    ----------
    fit : ScalingFit or FamilyFit
        A fit of an L(N, D) law (:func:`bayes_scaling.fit` or ``ScalingFit.load``), or several
        law families (:func:`bayes_scaling.load_fit`): then the draws are their weighted
        quantile average (one chain; ``fitting.families.quantile_average``) and the summary
        names the weights (``models``).
    n_params, n_tokens : float or array_like
        Model sizes (parameters) and training tokens; broadcast against each other.
    group : str, optional
        A group (data distribution) of the fit, ``"new"`` for an unseen one drawn from the
        population, or None for the only group (an error when there are several).
    band : {"predictive", "law"}, default "predictive"
        ``"law"``: the law's mean (parameter uncertainty); ``"predictive"``: one new run
        (plus run-to-run noise and the learned extrapolation discrepancy).
    probs : sequence of float, default :data:`~bayes_scaling.constants.DEFAULT_PROBS`
        Central interval probabilities reported as ``lo_<p>``/``hi_<p>`` columns.
    interval : float, default 0.9
        The interval reported as ``lower``/``upper``.
    random_seed : int, numpy.random.Generator or None
        Seed of every random step of the call (one Generator is made from it).

    Returns
    -------
    QueryResult
        ``draws`` (``chain, draw, point``) and a ``summary`` with one row per point:
        ``n_params``, ``n_tokens``, ``flops``, ``group``, ``band``, ``mean``, ``median``,
        ``lower``, ``upper``, ``interval``, ``lo_<p>``/``hi_<p>``, the decades outside the
        training runs and, for the predictive band, how far the fit's signed drift moved the
        median (``drift_pct`` and its 90% band ``drift_lo_pct``/``drift_hi_pct``,
        :func:`drift_columns`).
    """
    require_nd_law(fit)
    probs, interval = check_probs(probs, interval)
    rng = np.random.default_rng(random_seed)
    n, d = _points(n_params, n_tokens)
    g = resolve_group(fit, group)
    if isinstance(fit, FamilyFit):
        loss = mix(fit, {k: np.exp(log_loss_draws(f, n, d, group=g, band=band, rng=rng))
                         for k, f in fit.fits.items() if fit.weights[k] > 0}, rng)
    else:
        loss = np.exp(log_loss_draws(fit, n, d, group=g, band=band, rng=rng))
    far = decades_outside(fit_box(fit), n, d)
    summary = pd.concat([
        pd.DataFrame({"n_params": n, "n_tokens": d, "flops": 6.0 * n * d, "group": g,
                      "band": band}),
        interval_table(loss, probs=probs, interval=interval),
        pd.DataFrame({"decades_past_n": far["n"], "decades_past_d": far["d"],
                      "decades_past_c": far["c_past_max"],
                      "decades_outside_hull": far["hull"],
                      "extrapolation_distance": far["distance"]}),
        *([drift_columns(fit, far)] if band == "predictive" else []),
        *([pd.DataFrame({"models": [fit.weights_label()] * n.size})]
          if isinstance(fit, FamilyFit) else []),
    ], axis=1)
    msgs = _emit(extrapolation_warnings(fit, n, d), fit)
    draws = _wrap(fit, loss, "loss", band=band, units="nats/token", group=g)
    return QueryResult(draws=draws, summary=summary, band=band, warnings=msgs)


def tokens_needed(
    fit: ScalingFit | FamilyFit,
    n_params: Any,
    target_loss: float,
    *,
    group: str | None = None,
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    random_seed: SeedLike = None,
) -> QueryResult:
    """Training tokens a model of ``n_params`` needs for its expected loss to reach the target.

    Per draw, the law is inverted in closed form; where the target is at or below the size's
    floor (e.g. ``E + A/N^alpha``) the draw is ``inf`` and counts toward ``p_unreachable``.
    Quantiles include the ``inf`` draws, so an ``upper`` of ``inf`` means the target may be out
    of reach at this size. Band: ``"law"`` (the law's mean, not one noisy run).

    Parameters
    ----------
    fit : ScalingFit or FamilyFit
        A fit of an L(N, D) law with a token axis, or several families (their weighted
        quantile average).
    n_params : float or array_like
        Model sizes (parameters).
    target_loss : float
        The loss (nats/token) to reach.
    group : str, optional
        A group (data distribution) of the fit, ``"new"`` for an unseen one drawn from the
        population, or None for the only group (an error when there are several).
    probs : sequence of float, default :data:`~bayes_scaling.constants.DEFAULT_PROBS`
        Central interval probabilities reported as ``lo_<p>``/``hi_<p>`` columns.
    interval : float, default 0.9
        The interval reported as ``lower``/``upper``.
    random_seed : int, numpy.random.Generator or None
        Seed of every random step of the call (one Generator is made from it).

    Returns
    -------
    QueryResult
        ``draws`` of tokens (``inf`` where unreachable) and a ``summary`` per size with the
        quantiles and ``p_unreachable``.
    """
    require_nd_law(fit)
    probs, interval = check_probs(probs, interval)
    for f in fit.fits.values() if isinstance(fit, FamilyFit) else (fit,):
        if f.law.tokens_needed is None:
            raise QueryError(f"law {f.law.name!r} has no token axis: tokens needed is "
                             "undefined")
    try:
        target = float(target_loss)
    except (TypeError, ValueError):
        raise QueryError(f"target loss must be a number, got {target_loss!r}") from None
    if not np.isfinite(target) or target <= 0:
        raise QueryError(f"target loss must be positive and finite, got {target_loss}")
    rng = np.random.default_rng(random_seed)
    n, _ = _points(n_params)
    g = resolve_group(fit, group)
    if isinstance(fit, FamilyFit):
        d_star = mix(fit, {k: _tokens_draws(f, n, target, g, rng) for k, f in fit.fits.items()
                           if fit.weights[k] > 0}, rng)
    else:
        d_star = _tokens_draws(fit, n, target, g, rng)
    reachable = np.isfinite(d_star)
    p_unreach = 1.0 - reachable.mean(axis=0)
    table = interval_table(d_star, probs=probs, interval=interval)
    with np.errstate(invalid="ignore"):
        med_if = np.array([np.median(d_star[reachable[:, j], j]) if reachable[:, j].any()
                           else np.inf for j in range(n.size)])
    summary = pd.concat([
        pd.DataFrame({"n_params": n, "target_loss": target, "group": g, "band": "law",
                      "p_unreachable": p_unreach}),
        table.rename(columns={"mean": "mean_if_reachable"}),
        pd.DataFrame({"median_if_reachable": med_if,
                      "median_tokens_per_param": table["median"].to_numpy() / n}),
    ], axis=1)
    found = np.isfinite(med_if)  # how far the run that reaches the target lies past the data
    msgs = list(_emit(extrapolation_warnings(fit, n[found], med_if[found]) if found.any()
                      else [], fit))
    for j in np.flatnonzero(p_unreach > 0.5):
        msgs.append(f"target {target:g} is below the posterior floor at N={n[j]:.3g} in "
                    f"{p_unreach[j]:.0%} of draws: most likely unreachable at this size")
    draws = _wrap(fit, d_star, "n_tokens", band="law", units="tokens", group=g)
    return QueryResult(draws=draws, summary=summary, band="law", warnings=tuple(msgs))


def _tokens_draws(fit: ScalingFit, n: np.ndarray, target: float, group: str,
                  rng: np.random.Generator) -> np.ndarray:
    """Tokens needed per draw and size, shape ``(S, sizes)`` (``inf``: unreachable)."""
    theta = natural({k: v[:, None] for k, v in group_theta(fit, group, rng=rng).items()})
    return fit.law.tokens_needed(n[None, :], target, **theta)
