r"""Training dynamics: loss curves ``L(N, S, B)``, critical batch size, whole predicted curves.

The law (Kaplan et al. 2020, section 5; Su et al. 2024) and its solve live in
:mod:`bayes_scaling.laws.curve`, its fit in :mod:`bayes_scaling.fitting.dynamics`; this module
queries a fitted curve law (numpy only).

Curves are held in a :class:`~bayes_scaling.data.curves.CurveTable` (one row per evaluated
checkpoint). Queries on a fitted curve law
(:func:`predict_curve`, :func:`steps_needed`, :func:`tokens_needed_at_batch`,
:func:`critical_batch_size`, :func:`optimal_batch_size`) return
:class:`~bayes_scaling.query.summarize.QueryResult`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CHAIN, DEFAULT_INTERVAL, DEFAULT_PROBS, DRAW, POINT
from bayes_scaling.data.schedules import Schedule, schedule_areas
from bayes_scaling.errors import ExtrapolationWarning, QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.curve import (
    b_crit,
    steps_to_loss,
)
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.centre import transform_inputs
from bayes_scaling.query.predict import flat, group_theta, observation_noise, resolve_group
from bayes_scaling.query.summarize import (
    BANDS,
    QueryResult,
    check_probs,
    interval_table,
    positive_values,
)
from bayes_scaling.types import Band, SeedLike

# --------------------------------------------------------------------------------------------
# Queries (numpy only: a saved fit is loaded and queried without PyMC)
# --------------------------------------------------------------------------------------------
#: Decades of model size past the largest curve beyond which a query warns.
FAR_DECADES_N = 1.5
#: Default tolerance of :func:`optimal_batch_size`: within 10% of the fewest steps or tokens.
BATCH_TOLERANCE = 0.1



def _scalar(value: Any, name: str) -> float:
    a = positive_values(value, name)
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


def residual_noise(fit: ScalingFit, steps: np.ndarray, curve_index: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    r"""Checkpoint residuals on log loss, shape ``(draws, points)``, for points of new curves.

    A fit with ``residual = "ou"`` (posterior ``residual_length``) draws, per posterior draw and
    curve, the OU path its likelihood assumes (:func:`bayes_scaling.model.build_curves.
    ou_marginal_logp`): in step order, ``e_1 = sigma z_1`` and
    ``e_i = phi_i e_{i-1} + sigma sqrt(1 - phi_i^2) z_i``, ``phi_i = exp(-Delta log step /
    length)``: each point's marginal is ``Normal(0, sigma)``, neighbours move together. Other
    fits: independent checkpoint noise (:func:`observation_noise`).
    """
    steps, curve_index = np.asarray(steps, dtype=float), np.asarray(curve_index)
    n_draws = flat(fit.posterior["sigma"]).size
    if "residual_length" not in fit.posterior:
        return observation_noise(fit, (n_draws, steps.size), rng)
    sigma = flat(fit.posterior["sigma"])[:, None]
    length = flat(fit.posterior["residual_length"])[:, None]
    log_s = np.log(steps)
    order = np.lexsort((log_s, curve_index))
    ci, ls = curve_index[order], log_s[order]
    first = np.r_[True, ci[1:] != ci[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(ci.size), 0))
    rank = np.arange(ci.size) - start
    z = rng.standard_normal((n_draws, ci.size))
    e = np.empty_like(z)
    for k in range(int(rank.max()) + 1 if ci.size else 0):  # along curves, all curves at once
        at = np.flatnonzero(rank == k)
        if k == 0:
            e[:, at] = sigma * z[:, at]
            continue
        phi = np.exp(-np.maximum(ls[at] - ls[at - 1], MIN_LOG_GAP) / length)
        e[:, at] = phi * e[:, at - 1] + sigma * np.sqrt(1.0 - phi**2) * z[:, at]
    out = np.empty_like(e)
    out[:, order] = e
    return out


#: Smallest gap in log steps between two checkpoints of one curve in :func:`residual_noise`
#: (as in the OU likelihood of :mod:`bayes_scaling.model.build_curves`).
MIN_LOG_GAP = 1e-3


def curve_noise(fit: ScalingFit, shape: tuple[int, int], rng: np.random.Generator,
                steps: np.ndarray | None = None) -> np.ndarray:
    """Where one new run lands around the law, on log loss.

    A whole-curve offset of sd ``sigma_curve`` (one per draw, shared by its checkpoints) plus
    checkpoint residuals: with ``steps`` (the columns' steps, one curve), along the curve as
    the fit's residual model says (:func:`residual_noise`); without, independent per column.
    """
    out = (observation_noise(fit, shape, rng) if steps is None
           else residual_noise(fit, steps, np.zeros(shape[1], dtype=int), rng))
    if "sigma_curve" in fit.posterior:
        out = out + flat(fit.posterior["sigma_curve"])[:, None] * rng.standard_normal(
            (shape[0], 1))
    return out


def run_length_shift(fit: ScalingFit, x: np.ndarray) -> np.ndarray | float:
    """Per draw and column, a ``curve_offsets = "run_length"`` fit's offset mean.

    ``run_length_slope`` times the centred log schedule length ``x``; 0 for other fits.
    """
    if "run_length_slope" not in fit.posterior:
        return 0.0
    return flat(fit.posterior["run_length_slope"])[:, None] * np.asarray(x, float)[None, :]


def predict_curve(
    fit: ScalingFit,
    n_params: float,
    batch_size: float,
    steps: Any = None,
    *,
    group: str | None = None,
    band: Band = "predictive",
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    random_seed: SeedLike = None,
    schedule: Schedule | None = None,
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
    probs : sequence of float, default :data:`~bayes_scaling.constants.DEFAULT_PROBS`
        Central interval probabilities reported as ``lo_<p>``/``hi_<p>`` columns.
    interval : float, default 0.9
        The interval reported as ``lower``/``upper``.
    random_seed : int, numpy.random.Generator or None
        Seed of the draws (curve offsets, noise, unseen-group offsets).
    schedule : Schedule, optional
        The run's learning-rate schedule (default: constant). A fit of the law
        ``dynamics_schedule`` reads its forward area and annealing fraction at each step; a fit
        of ``dynamics`` (no schedule term) takes only a constant one.

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
         else positive_values(steps, "steps"))
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = {k: v[:, None] for k, v in group_theta(fit, g, rng=rng).items()}
    log_l = np.broadcast_to(
        curve_law_log_mean(fit, np.full(s.size, n), s, np.full(s.size, b), schedule, theta,
                           x=schedule_run_length(fit, schedule, s.size)),
        (next(iter(theta.values())).shape[0], s.size))
    if (schedule is not None and schedule.total_steps and "run_length_slope" in fit.posterior
            and fit.meta.get("run_length_centre") is not None):
        x = np.log(schedule.total_steps) - fit.meta["run_length_centre"]
        log_l = log_l + run_length_shift(fit, np.full(s.size, x))
    if band == "predictive":
        log_l = log_l + curve_noise(fit, log_l.shape, rng, steps=s)
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


def schedule_run_length(fit: ScalingFit, schedule: Schedule | None, size: int) -> np.ndarray:
    """Per point, the centred log schedule length of a query's ``schedule``.

    On the fit's training centre; 0 without a ``total_steps`` or a centre, as
    :func:`~bayes_scaling.model.centre.run_length_covariate` gives a training curve.
    """
    centre = fit.meta.get("run_length_centre")
    if schedule is None or not schedule.total_steps or centre is None:
        return np.zeros(size)
    return np.full(size, np.log(schedule.total_steps) - centre)


def curve_law_log_mean(fit: ScalingFit, n: np.ndarray, steps: np.ndarray, batch: np.ndarray,
                       schedule: Schedule | None, theta: dict[str, Any],
                       s1_anneal: tuple[np.ndarray, np.ndarray] | None = None,
                       x: np.ndarray | None = None) -> np.ndarray:
    """Log of the fitted curve law's mean at points (``theta``: constants per draw, ``(S, 1)``).

    The schedule gives the forward area and annealing fraction of a schedule-aware law (or
    ``s1_anneal`` gives them per point); a law without the term accepts only a constant rate.
    ``x`` (per point, default 0) is the centred log schedule length that a fit with a
    run-length term (``spec.likelihood.run_length_term``) reads with its ``run_length_kappa``.
    """
    law = CURVE_LAWS[fit.spec.law]
    if s1_anneal is None:
        s1_anneal = ((steps, np.zeros_like(steps)) if schedule is None
                     else schedule_areas(schedule, steps))
    s1, anneal = s1_anneal
    if "anneal" not in law.inputs and (np.any(anneal > 0)
                                       or not np.allclose(s1, steps, rtol=1e-6)):
            raise QueryError(f"the fit's law {law.name!r} has no learning-rate-schedule term: "
                             "it predicts one fixed schedule only (refit with --model "
                             "dynamics_schedule to query others)")
    values = {"n": np.log(n), "s": np.log(steps), "s1": np.log(s1), "b": np.log(batch),
              "anneal": anneal}
    inputs = tuple(values[k][None, :] for k in law.inputs)
    term = fit.spec.likelihood.run_length_term
    if term != "none" and x is not None:
        kappa = flat(fit.posterior["run_length_kappa"])[:, None]
        inputs = transform_inputs(law.inputs, inputs, term, kappa, np.asarray(x, float)[None, :])
    return law.log_mean(*inputs, **theta)


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


def _bcrit_l_draws(fit: ScalingFit, group: str, rng: np.random.Generator) -> dict[str, Any]:
    """:func:`_natural_draws` of a ``dynamics`` fit, else a one-line error.

    The batch-size and step-budget queries here are closed forms of B_crit(L) at a constant rate.
    """
    if fit.spec.law != "dynamics":
        raise QueryError(f"this query needs a fit of the law 'dynamics' (B_crit(L), constant "
                         f"rate); the fit's law is {fit.spec.law!r} (schedule laws: use "
                         "schedule-steps or curve)")
    return _natural_draws(fit, group, rng)


def _steps_draws(fit: ScalingFit, n: float, target: float, batch: np.ndarray, group: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    nat = _bcrit_l_draws(fit, group, rng)
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
    b = (np.unique(fit.runs.b) if batch_size is None else positive_values(batch_size, "batch_size"))
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
    b = (np.unique(fit.runs.b) if batch_size is None else positive_values(batch_size, "batch_size"))
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
    lv = positive_values(loss, "loss")
    g = resolve_group(fit, group)
    nat = _bcrit_l_draws(fit, g, np.random.default_rng(random_seed))
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
    nat = _bcrit_l_draws(fit, g, np.random.default_rng(random_seed))
    bc = b_crit(target, b_star=nat["b_star"], alpha_b=nat["alpha_b"])[:, 0]
    smin = steps_to_loss(n, target, np.inf, **nat)[:, 0]
    with np.errstate(invalid="ignore"):
        cols = {"batch_for_steps": bc / tolerance, "batch_for_tokens": tolerance * bc,
                "b_crit": bc, "s_min": smin, "e_min": smin * bc}
    draws = np.stack(list(cols.values()), axis=1)
    head = pd.DataFrame({"n_params": n, "target_loss": target, "quantity": list(cols),
                         "tolerance": float(tolerance), "group": g})
    return _budget_table(fit, draws, head, probs, interval, "batch", "tokens or steps")
