r"""Schedule queries on a fitted curve law: cooldown planning, steps to a target, checkpoints.

For fits of ``dynamics_schedule`` (:mod:`bayes_scaling.laws.schedule`): the loss after a
cooldown started at a given step (warmup-stable-decay planning), the schedule length that reaches a
target loss, and the predictive draws at the checkpoints of a curve table (what the curve
backtests score). Numpy only: a saved fit is queried without PyMC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import DEFAULT_INTERVAL, DEFAULT_PROBS, NEW_GROUP
from bayes_scaling.data.curves import CurveTable
from bayes_scaling.data.schedules import Schedule, schedule_areas
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.model.centre import run_length_covariate
from bayes_scaling.query.curves import (
    _messages,
    _scalar,
    _target,
    _wrap_draws,
    curve_law_log_mean,
    curve_noise,
    residual_noise,
    run_length_shift,
    schedule_run_length,
)
from bayes_scaling.query.predict import flat, group_theta, resolve_group
from bayes_scaling.query.summarize import (
    BANDS,
    QueryResult,
    check_probs,
    interval_table,
    positive_values,
)
from bayes_scaling.types import SeedLike

#: Schedule lengths tried per decade by :func:`steps_for_loss` (then interpolated in log steps).
LENGTHS_PER_DECADE = 24


#: How a new curve's whole-curve offset is drawn in :func:`checkpoint_draws`: ``"normal"``
#: (sd ``sigma_curve``, the fit's own assumption) or ``"empirical"`` (the offset of a training
#: curve picked at random, from its conditional posterior: :func:`training_offsets`).
OFFSET_DRAWS = ("normal", "empirical")


def training_offsets(fit: ScalingFit, rng: np.random.Generator) -> np.ndarray:
    r"""Each training curve's whole-curve offset per posterior draw, shape ``(draws, curves)``.

    For a fit with Normal curve offsets integrated out and independent residuals, the offset
    of curve ``j`` given draw ``k`` is Normal with mean
    :math:`\sigma_c^2 \sum_i r_i / (\sigma^2 + n_j \sigma_c^2)` and variance
    :math:`\sigma_c^2 \sigma^2 / (\sigma^2 + n_j \sigma_c^2)` (``r``: the curve's residuals
    on log loss at that draw's constants and, for a ``run_length`` fit, the curve's offset
    mean); one draw from it per (draw, curve): the part of the offset off that mean.
    """
    if "sigma_curve" not in fit.posterior or "residual_length" in fit.posterior \
            or "nu" in fit.posterior:
        raise QueryError("empirical curve offsets need a fit with Normal curve offsets and "
                         "independent Normal residuals")
    train = fit.runs
    resid = train.log_loss - np.log(checkpoint_draws(fit, train, band="law"))
    idx = train.curve_index
    n = np.bincount(idx, minlength=train.n_curves).astype(float)
    s1 = np.stack([np.bincount(idx, weights=r, minlength=train.n_curves) for r in resid])
    var, sd2 = flat(fit.posterior["sigma"])[:, None] ** 2, flat(
        fit.posterior["sigma_curve"])[:, None] ** 2
    denom = var + n * sd2
    return sd2 * s1 / denom + np.sqrt(sd2 * var / denom) * rng.standard_normal(s1.shape)


def checkpoint_draws(fit: ScalingFit, curves: CurveTable, *, band: str = "predictive",
                     random_seed: SeedLike = None, offsets: str = "normal") -> np.ndarray:
    """Draws of the loss at every checkpoint of ``curves``, shape ``(draws, points)``.

    Each point uses its own schedule inputs (forward area, annealing fraction). Groups the fit
    has not seen get fresh offsets (``"new"``). ``"predictive"``: each curve gets one
    whole-curve offset per draw, shared by its checkpoints (``offsets``: ``"normal"``, sd
    ``sigma_curve``; ``"empirical"``, the conditional offset of a training curve picked at
    random, :func:`training_offsets`), plus checkpoint residuals (independent, or the OU path
    of a ``residual = "ou"`` fit: :func:`~bayes_scaling.query.curves.residual_noise`);
    ``"law"``: the law's mean. A ``curve_offsets = "run_length"`` fit adds, in both bands, each
    curve's offset mean at its schedule length
    (:func:`~bayes_scaling.query.curves.run_length_shift`; 0 for a curve without one).
    """
    if band not in BANDS:
        raise QueryError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    if offsets not in OFFSET_DRAWS:
        raise QueryError(f"offsets must be one of {', '.join(OFFSET_DRAWS)}, got {offsets!r}")
    rng = np.random.default_rng(random_seed)
    groups = curves.frame["group"].to_numpy()
    out = None
    x, _ = run_length_covariate(curves, fit.meta.get("run_length_centre"), training=False)
    x = x[curves.curve_index]
    for g in dict.fromkeys(groups):
        sel = groups == g
        key = g if g in fit.group_names else NEW_GROUP
        theta = {k: v[:, None] for k, v in group_theta(fit, resolve_group(fit, key),
                                                       rng=rng).items()}
        part = curves.subset(sel)
        mu = curve_law_log_mean(fit, part.n, part.s, part.b, None, theta,
                                s1_anneal=(part.forward_area, part.anneal), x=x[sel])
        if out is None:
            out = np.empty((mu.shape[0], curves.n_points))
        out[:, sel] = mu
    if "run_length_slope" in fit.posterior:
        out = out + run_length_shift(fit, x)
    if band == "predictive":
        out = out + residual_noise(fit, curves.s, curves.curve_index, rng)
        if "sigma_curve" in fit.posterior and offsets == "empirical":
            pool = training_offsets(fit, rng)
            pick = rng.integers(0, pool.shape[1], (out.shape[0], curves.n_curves))
            off = np.take_along_axis(pool, pick, axis=1)
            out = out + off[:, curves.curve_index]
        elif "sigma_curve" in fit.posterior:
            z = rng.standard_normal((out.shape[0], curves.n_curves))
            out = out + flat(fit.posterior["sigma_curve"])[:, None] * z[:, curves.curve_index]
    return np.exp(out)


def cooldown_loss(fit: ScalingFit, n_params: float, batch_size: float, cooldown_start: Any, *,
                  cooldown_fraction: float = 0.1, warmup_steps: float = 0.0,
                  final_fraction: float = 0.0, group: str | None = None,
                  band: str = "predictive", probs: Sequence[float] = DEFAULT_PROBS,
                  interval: float = DEFAULT_INTERVAL, random_seed: SeedLike = None
                  ) -> QueryResult:
    r"""Loss at the end of a cooldown started at each step of ``cooldown_start`` (WSD planning).

    The run holds the peak rate until ``cooldown_start`` and decays linearly to
    ``final_fraction`` of it over ``cooldown_fraction * cooldown_start`` more steps. Rows per
    start: the loss at the end of the cooldown (``quantity = "cooled"``) and the loss the
    constant-rate run has at the same step (``"constant"``), each with the band; the gain is
    their difference.

    Parameters
    ----------
    fit : ScalingFit
        A fit of the law ``dynamics_schedule``.
    n_params, batch_size : float
        Model size and batch size in tokens.
    cooldown_start : array_like
        Steps at which the cooldown starts.
    cooldown_fraction : float
        Cooldown length as a fraction of its start step (Gemstones: 0.1).
    band : {"predictive", "law"}
        As for :func:`~bayes_scaling.query.curves.predict_curve` (one whole-curve offset per
        draw, shared by the two rows of a start).

    Returns
    -------
    QueryResult
        Rows ``cooldown_start, end_step, tokens, quantity, group, band`` and intervals.
    """
    probs, interval = check_probs(probs, interval)
    if band not in BANDS:
        raise QueryError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    n, b = _scalar(n_params, "n_params"), _scalar(batch_size, "batch_size")
    starts = positive_values(cooldown_start, "cooldown_start")
    if not 0.0 < float(cooldown_fraction) <= 10.0:
        raise QueryError(f"cooldown_fraction must be in (0, 10], got {cooldown_fraction}")
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = {k: v[:, None] for k, v in group_theta(fit, g, rng=rng).items()}
    ends = starts * (1.0 + cooldown_fraction)
    s1, a = np.empty(2 * starts.size), np.zeros(2 * starts.size)
    for j, (t0, t1) in enumerate(zip(starts, ends, strict=True)):
        sched = Schedule("wsd", warmup_steps=warmup_steps, final_fraction=final_fraction,
                         cooldown_start=t0, cooldown_steps=t1 - t0)
        s1[j], a[j] = (x[0] for x in schedule_areas(sched, np.array([t1])))
        const = Schedule("constant", warmup_steps=warmup_steps)
        s1[starts.size + j] = schedule_areas(const, np.array([t1]))[0][0]
    steps = np.concatenate([ends, ends])
    log_l = curve_law_log_mean(fit, np.full(steps.size, n), steps, np.full(steps.size, b), None,
                               theta, s1_anneal=(s1, a))
    log_l = np.broadcast_to(log_l, (next(iter(theta.values())).shape[0], steps.size))
    if band == "predictive":
        log_l = log_l + curve_noise(fit, log_l.shape, rng)
    loss = np.exp(log_l)
    head = pd.DataFrame({"n_params": n, "batch_size_tokens": b,
                         "cooldown_start": np.concatenate([starts, starts]), "end_step": steps,
                         "tokens": steps * b,
                         "quantity": ["cooled"] * starts.size + ["constant"] * starts.size,
                         "group": g, "band": band})
    summary = pd.concat([head, interval_table(loss, probs=probs, interval=interval)], axis=1)
    return QueryResult(_wrap_draws(fit, loss, "loss", band=band, units="nats/token", group=g),
                       summary, band, _messages(fit))


def steps_for_loss(fit: ScalingFit, n_params: float, target_loss: float, batch_size: float,
                   schedule: Schedule, *, group: str | None = None,
                   probs: Sequence[float] = DEFAULT_PROBS, interval: float = DEFAULT_INTERVAL,
                   random_seed: SeedLike = None) -> QueryResult:
    r"""Shortest schedule that ends at ``target_loss``: steps and tokens, with law bands.

    ``schedule`` is a template whose length is scaled: a cosine or linear schedule of
    ``total_steps = T`` (warm-up kept), a WSD schedule cooling down over the same fraction of
    ``T`` as the template (``cooldown_steps / (cooldown_start + cooldown_steps)``), or a constant
    one. Per draw, the loss at the end of the schedule of length ``T`` is evaluated on a grid of
    ``T`` (:data:`LENGTHS_PER_DECADE` per decade, 0.01x to 10,000x the fitted curves' longest)
    and the first crossing of the target interpolated in ``log T``; ``inf`` (counted in
    ``p_unreachable``) where no length on the grid reaches it. Band ``"law"``.

    Returns
    -------
    QueryResult
        Rows ``quantity`` = ``steps`` and ``tokens``.
    """
    probs, interval = check_probs(probs, interval)
    n, b = _scalar(n_params, "n_params"), _scalar(batch_size, "batch_size")
    target = _target(target_loss)
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = {k: v[:, None] for k, v in group_theta(fit, g, rng=rng).items()}
    top = float(fit.runs.s.max())
    lengths = np.geomspace(top / 100.0, top * 1e4, 6 * LENGTHS_PER_DECADE + 1)
    s1, a, x = np.empty(lengths.size), np.empty(lengths.size), np.zeros(lengths.size)
    for j, t in enumerate(lengths):
        sched = _scaled(schedule, t)
        s1[j], a[j] = (v[0] for v in schedule_areas(sched, np.array([t])))
        x[j] = schedule_run_length(fit, sched, 1)[0]
    log_l = curve_law_log_mean(fit, np.full(lengths.size, n), lengths, np.full(lengths.size, b),
                               None, theta, s1_anneal=(s1, a), x=x)
    log_l = np.broadcast_to(log_l, (next(iter(theta.values())).shape[0], lengths.size))
    steps = _first_crossing(np.log(lengths), log_l, np.log(target))
    draws = np.stack([steps, steps * b], axis=1)
    reach = np.isfinite(draws)
    head = pd.DataFrame({"n_params": n, "target_loss": target, "batch_size_tokens": b,
                         "schedule": schedule.shape, "quantity": ["steps", "tokens"],
                         "group": g, "band": "law", "p_unreachable": 1.0 - reach.mean(axis=0)})
    summary = pd.concat([head, interval_table(draws, probs=probs, interval=interval)], axis=1)
    msgs = list(_messages(fit))
    if summary["p_unreachable"].iloc[0] > 0.5:
        msgs.append(f"target {target:g} is not reached by any schedule length up to "
                    f"{lengths[-1]:.3g} steps in {summary['p_unreachable'].iloc[0]:.0%} of draws")
    return QueryResult(_wrap_draws(fit, draws, "steps", band="law", units="steps or tokens"),
                       summary, "law", tuple(msgs))


def _scaled(template: Schedule, total: float) -> Schedule:
    """The template schedule stretched to ``total`` steps (see :func:`steps_for_loss`)."""
    if template.shape == "wsd":
        frac = template.cooldown_steps / (template.cooldown_start + template.cooldown_steps)
        return replace(template, cooldown_start=total * (1.0 - frac),
                       cooldown_steps=total * frac)
    if template.shape in ("cosine", "linear"):
        return replace(template, total_steps=total)
    return template


def _first_crossing(log_t: np.ndarray, log_l: np.ndarray, log_target: float) -> np.ndarray:
    """Per row, ``exp`` of the first ``log_t`` where ``log_l`` falls to the target (linear
    interpolation); ``inf`` where it never does, the grid's start where it starts below."""
    below = log_l <= log_target
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    out = np.full(log_l.shape[0], np.inf)
    at_start = first == 0
    out[at_start] = np.exp(log_t[0])
    mid = first > 0
    j = first[mid]
    rows = np.flatnonzero(mid)
    l0, l1 = log_l[rows, j - 1], log_l[rows, j]
    w = (l0 - log_target) / np.where(l0 > l1, l0 - l1, 1.0)
    out[mid] = np.exp(log_t[j - 1] + w * (log_t[j] - log_t[j - 1]))
    return out
