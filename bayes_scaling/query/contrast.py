"""Contrasts between two groups of one fit: which recipe wins at scale, by how much, how surely.

For groups A and B of one hierarchical fit (each a data distribution or training recipe: offsets
on a shared law), at a target budget, every quantity is computed draw by draw on the joint
posterior (numpy only, never PyMC):

- the loss difference ``L_B - L_A``, with its law band (the laws' means) and its predictive band
  (one real run of each recipe: run-to-run noise and the extrapolation discrepancy added);
- the **compute multiplier** of B over A: ``C / C_B``, where ``C_B`` is the compute with which B
  reaches A's loss at the target budget ``C`` along the same path. ``> 1``: B is worth that many
  times more compute than A ("effective compute multiplier"); ``< 1``: B needs more. A draw where
  B can never reach A's loss (it lies below B's floor) has multiplier 0;
- ``P(B better)``: the probability that ``L_B < L_A`` (law and predictive);
- the **crossing scale**: the largest budget, within a range, at which the two laws cross, and
  the probability that they cross at all in that range.

A target is a FLOP budget spent on the compute-optimal split of each group and draw
(``tokens_per_param=None``), a budget spent at fixed tokens per parameter, or a model
``(N, D)`` (the path through it keeps ``D/N``). Only comparable groups are contrasted: when the
runs carry an ``eval_set`` column and two groups were evaluated on different sets, their losses
are not comparable and :func:`check_comparable` refuses (or warns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import (
    DEFAULT_INTERVAL,
    DEFAULT_PROBS,
    FLOPS_PER_PARAM_TOKEN,
    NEW_GROUP,
    POINT,
)
from bayes_scaling.data.support import decades_outside
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.final_loss import Law
from bayes_scaling.query.allocate import optimal_split
from bayes_scaling.query.anchor import (
    Beyond,
    Weighting,
    anchored_log_losses,
    calibrate_contrasts,
)
from bayes_scaling.query.predict import (
    _emit,
    _wrap,
    discrepancy_lambda,
    discrepancy_scale,
    discrepancy_shift,
    extrapolation_warnings,
    fit_box,
    group_theta,
    observation_noise,
    require_nd_law,
    resolve_group,
)
from bayes_scaling.query.summarize import check_probs, interval_table, jsonable, positive_values
from bayes_scaling.types import OnBad, SeedLike

#: How the predictive band treats the extrapolation discrepancy of two groups: ``"anchored"``
#: (the default): each group's observed level nearest the target plus the law's change, its
#: group-specific part weighted and its error scaled as the ladder's rolling-origin refits say
#: (:mod:`bayes_scaling.query.anchor`); or the law's own discrepancy, one error of the law's form
#: shared by both groups (it cancels in their log ratio) or an independent error each.
DiscrepancyMode = Literal["anchored", "shared", "independent"]
DISCREPANCY_MODES: tuple[str, ...] = ("anchored", "shared", "independent")
#: The run-table column naming the evaluation set each run's loss was measured on.
EVAL_SET = "eval_set"
#: Decades searched on either side of the target for the matching compute.
MATCH_DECADES = 17.0
_LOG6 = float(np.log(FLOPS_PER_PARAM_TOKEN))


# ------------------------------------------------------------------------------ comparability
def check_comparable(fit: ScalingFit, groups: Sequence[str], *,
                     on_mixed: OnBad = "raise") -> tuple[str, ...]:
    """Refuse (or warn about) groups whose losses were measured on different evaluation sets.

    Reads the runs' ``eval_set`` column when the table has one (nothing can be detected
    without it). Returns the warning lines (empty when the groups are comparable).

    Parameters
    ----------
    fit : ScalingFit
    groups : sequence of str
        Seen groups of ``fit``.
    on_mixed : {"raise", "warn"}
        What a mismatch does: raise :class:`~bayes_scaling.errors.QueryError`, or return it as
        a warning line.

    Returns
    -------
    tuple of str
    """
    frame = fit.runs.frame
    if EVAL_SET not in frame.columns:
        return ()
    sets = {g: sorted(set(frame.loc[frame["group"] == g, EVAL_SET].astype(str))) for g in groups}
    distinct = sorted({s for v in sets.values() for s in v})
    if len(distinct) <= 1:
        return ()
    named = "; ".join(f"{g}: {', '.join(v)}" for g, v in sets.items())
    msg = (f"groups were evaluated on different evaluation sets ({named}): their losses are "
           "not comparable; contrast groups that share one eval_set")
    if on_mixed == "raise":
        raise QueryError(msg)
    return (f"WARNING: {msg}",)


def seen_groups(fit: ScalingFit, groups: Sequence[str]) -> tuple[str, ...]:
    """Distinct seen groups, checked (``"new"`` has no data to compare)."""
    if len(fit.group_names) < 2:
        raise QueryError("this fit has one group: contrasts need a fit with several groups "
                         "(a group column)")
    out = tuple(resolve_group(fit, g) for g in groups)
    if NEW_GROUP in out:
        raise QueryError(f"contrasts compare seen groups; '{NEW_GROUP}' has no runs")
    if len(set(out)) != len(out):
        raise QueryError(f"contrast needs distinct groups, got {', '.join(out)}")
    return out


# ------------------------------------------------------------------------------ targets and paths
@dataclass(frozen=True)
class Targets:
    """Budgets to compare at, and how each is spent.

    ``flops`` has one entry per point; ``tokens_per_param`` is ``None`` (each group's
    compute-optimal split, per draw) or one ratio ``D/N`` per point.
    """

    flops: np.ndarray
    tokens_per_param: np.ndarray | None

    @property
    def log_c(self) -> np.ndarray:
        """``log C`` as a row ``(1, points)``."""
        return np.log(self.flops)[None, :]

    @property
    def log_ratio(self) -> np.ndarray | None:
        """``log(D/N)`` as a row, or ``None`` on the compute-optimal path."""
        return None if self.tokens_per_param is None else np.log(self.tokens_per_param)[None, :]



def make_targets(flops: Any = None, n_params: Any = None, n_tokens: Any = None,
                 tokens_per_param: float | None = None) -> Targets:
    """Targets from FLOP budgets (optionally at fixed tokens per parameter) or from (N, D).

    Parameters
    ----------
    flops : array_like, optional
        Budgets ``C``; spent on the compute-optimal split unless ``tokens_per_param`` is given.
    n_params, n_tokens : array_like, optional
        Models ``(N, D)`` instead of ``flops`` (``C = 6 N D``, path at fixed ``D/N``).
    tokens_per_param : float, optional
        With ``flops``: spend each budget at this ``D/N``.

    Returns
    -------
    Targets
    """
    if (flops is None) == (n_params is None and n_tokens is None):
        raise QueryError("give a target as flops, or as n_params and n_tokens (not both)")
    if flops is not None:
        c = positive_values(flops, "flops")
        if tokens_per_param is None:
            return Targets(c, None)
        r = positive_values(tokens_per_param, "tokens_per_param")
        return Targets(c, np.broadcast_to(r, c.shape).copy())
    if n_params is None or n_tokens is None:
        raise QueryError("a model target needs both n_params and n_tokens")
    n, d = np.broadcast_arrays(positive_values(n_params, "n_params"),
                               positive_values(n_tokens, "n_tokens"))
    return Targets(FLOPS_PER_PARAM_TOKEN * n * d, d / n)


def path_split(law: Law, theta: dict[str, np.ndarray], log_c: np.ndarray,
               log_ratio: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(log N, log D)`` of budgets ``log_c`` spent along a path, per draw.

    ``theta`` holds sampling-scale constants of shape ``(S, 1)``; ``log_ratio`` ``None`` is the
    compute-optimal split of each draw, else ``log(D/N)``.
    """
    if log_ratio is None:
        n, d = optimal_split(law, np.exp(log_c), theta)
        return np.log(n), np.log(d)
    log_n = 0.5 * (log_c - _LOG6 - log_ratio)
    return log_n, log_n + log_ratio


def path_log_loss(law: Law, theta: dict[str, np.ndarray], log_c: np.ndarray,
                  log_ratio: np.ndarray | None) -> np.ndarray:
    """Log of the law's loss at budgets ``log_c`` along a path, shape ``(S, points)``."""
    log_n, log_d = path_split(law, theta, log_c, log_ratio)
    out = law.evaluate_log({"n": log_n, "d": log_d}, theta)
    return np.broadcast_to(out, np.broadcast_shapes(out.shape, np.shape(log_c)))


def matching_log_compute(law: Law, theta: dict[str, np.ndarray], log_loss: np.ndarray,
                         log_ratio: np.ndarray | None, log_c0: np.ndarray,
                         iters: int = 60) -> np.ndarray:
    """Per draw, the ``log C`` at which the law ``theta`` reaches ``log_loss`` along a path.

    Loss falls strictly with compute along either path, so bisection in ``log C`` within
    :data:`MATCH_DECADES` of ``log_c0`` finds the one root; ``inf`` where the loss is not
    reached within that range (at or below the law's floor), ``-inf`` where even the smallest
    budget searched does better.
    """
    span = MATCH_DECADES * np.log(10.0)
    shape = np.broadcast_shapes(np.shape(log_loss), np.shape(log_c0))
    lo = np.broadcast_to(log_c0 - span, shape).astype(float)
    hi = np.broadcast_to(log_c0 + span, shape).astype(float)
    beyond = path_log_loss(law, theta, hi, log_ratio) > log_loss
    below = path_log_loss(law, theta, lo, log_ratio) < log_loss
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = path_log_loss(law, theta, mid, log_ratio) > log_loss  # not there yet
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    out = 0.5 * (lo + hi)
    return np.where(beyond, np.inf, np.where(below, -np.inf, out))


# ------------------------------------------------------------------------------ noise
def predictive_log_losses(fit: ScalingFit, law_log: Sequence[np.ndarray],
                          splits: Sequence[tuple[np.ndarray, np.ndarray]], *,
                          discrepancy: DiscrepancyMode, rng: np.random.Generator,
                          ) -> list[np.ndarray]:
    """One real run per group: each law's log loss plus its own noise and the discrepancy.

    ``splits`` holds each group's ``(log N, log D)`` per draw; the discrepancy scale is taken at
    the median split of each point. With ``discrepancy="shared"`` the groups share one standard
    normal (the law's form errs alike for both), else each draws its own. The fit's signed drift
    (if any) moves each group's run by its mean at that group's point: the same log shift for
    both groups at the same ``(N, D)``, so it cancels from their log-loss ratio there (their loss
    difference scales by its ``exp``).
    """
    if discrepancy not in ("shared", "independent"):
        raise QueryError(f"discrepancy must be one of {', '.join(DISCREPANCY_MODES)}, "
                         f"got {discrepancy!r}")
    shape = law_log[0].shape
    z_shared = rng.standard_normal(shape)
    lam = discrepancy_lambda(fit, rng)  # one lambda per draw, shared by the groups
    out = []
    box = fit_box(fit)
    for log_mu, (log_n, log_d) in zip(law_log, splits, strict=True):
        n = np.exp(np.median(np.broadcast_to(log_n, shape), axis=0))
        d = np.exp(np.median(np.broadcast_to(log_d, shape), axis=0))
        far = decades_outside(box, n, d)
        sd = np.asarray(discrepancy_scale(fit, far, lam))
        z = z_shared if discrepancy == "shared" else rng.standard_normal(shape)
        out.append(log_mu + discrepancy_shift(fit, far) + observation_noise(fit, shape, rng)
                   + sd * z)
    return out


def predictive_draws(fit: ScalingFit, names: tuple[str, ...],
                     theta: dict[str, dict[str, np.ndarray]], law_log: Sequence[np.ndarray],
                     splits: Sequence[tuple[np.ndarray, np.ndarray]], tg: Targets, *,
                     discrepancy: DiscrepancyMode, rng: np.random.Generator,
                     beyond: Beyond | None = None, weighting: Weighting | None = None,
                     ) -> tuple[list[np.ndarray], dict[str, Any], list[str]]:
    """One real run per group, per draw: anchored, or the law plus its discrepancy.

    Returns the predictive log losses, the anchored calibration used (empty if none) and
    warning lines.
    """
    if discrepancy == "anchored":
        calib = calibrate_contrasts(fit, weighting)
        if calib is not None:
            _, pred = anchored_log_losses(fit, names, theta, tg.log_c, tg.log_ratio, calib, rng,
                                          beyond=beyond)
            return pred, calib.to_dict(), []
        note = ("WARNING: too few compute-budget levels shared by the groups to calibrate an "
                "anchored contrast; the predictive band uses the law's shared discrepancy")
        return (predictive_log_losses(fit, law_log, splits, discrepancy="shared", rng=rng),
                {}, [note])
    return predictive_log_losses(fit, law_log, splits, discrepancy=discrepancy, rng=rng), {}, []


# ------------------------------------------------------------------------------ the contrast
@dataclass(frozen=True)
class Contrast:
    """Result of :func:`contrast_groups`.

    Attributes
    ----------
    groups
        ``(A, B)``.
    draws
        ``xarray.Dataset`` (dims ``chain, draw, point``): ``loss_a``, ``loss_b`` (law),
        ``difference`` (law), ``difference_predictive`` and ``multiplier``.
    summary
        One row per (target, quantity): ``flops``, ``n_params_a``/``n_tokens_a`` (A's median
        split), ``quantity``, ``band``, ``median``, ``mean``, ``lower``, ``upper``, ``lo_<p>``
        /``hi_<p>``, and ``p_b_better`` on the ``difference`` and ``multiplier`` rows.
    crossing
        One row: the budget range searched, ``p_cross`` (draws whose laws cross in it) and, among
        those, the largest crossing budget's ``median``, ``lower``, ``upper``.
    """

    groups: tuple[str, str]
    draws: xr.Dataset
    summary: pd.DataFrame
    crossing: pd.DataFrame
    warnings: tuple[str, ...] = field(default_factory=tuple)
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_records(self) -> dict[str, Any]:
        """JSON-ready form: groups, summary and crossing records, warnings, calibration."""
        return jsonable({"group_a": self.groups[0], "group_b": self.groups[1],
                         "summary": self.summary.to_dict(orient="records"),
                         "crossing": self.crossing.to_dict(orient="records"),
                         "warnings": list(self.warnings), "calibration": self.calibration})


def contrast_groups(
    fit: ScalingFit,
    group_a: str,
    group_b: str,
    *,
    flops: Any = None,
    n_params: Any = None,
    n_tokens: Any = None,
    tokens_per_param: float | None = None,
    crossing_range: tuple[float, float] | None = None,
    discrepancy: DiscrepancyMode = "anchored",
    beyond: Beyond | None = None,
    weighting: Weighting | None = None,
    on_mixed: OnBad = "raise",
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    random_seed: SeedLike = None,
) -> Contrast:
    """Contrast group B with group A at target budgets: loss difference, multiplier, P(B better).

    Parameters
    ----------
    fit : ScalingFit
        A fit with several groups (offsets on one law).
    group_a, group_b : str
        The reference recipe A and the alternative B.
    flops, n_params, n_tokens, tokens_per_param
        The targets (see :func:`make_targets`).
    crossing_range : (float, float), optional
        Budgets searched for a crossing of the two laws; default from the smallest training
        compute to 100 times the larger of the largest target and the largest training run.
    discrepancy : {"anchored", "shared", "independent"}
        How the predictive band treats the extrapolation discrepancy of the two groups (see
        :data:`DiscrepancyMode`); ``"anchored"`` falls back to ``"shared"`` with a warning when
        the ladder has too few budget levels to calibrate it.
    beyond : {"law", "hold"}, optional
        Anchored band, past the longest horizon the ladder's refits tested: extrapolate the
        law's group-specific change, or hold the gap (default
        :data:`bayes_scaling.query.anchor.BEYOND`).
    weighting : {"zero", "pooled", "latest", "eiv"}, optional
        Anchored band: the weight of the law's group-specific change, 0 (keep the observed gap)
        or learned from the ladder's rolling-origin refits (default
        :data:`bayes_scaling.query.anchor.WEIGHTING`, ``"zero"``).
    on_mixed : {"raise", "warn"}
        Groups evaluated on different evaluation sets: refuse, or warn.
    probs, interval
        Interval probabilities of the summary.
    random_seed
        Seed of the predictive draws.

    Returns
    -------
    Contrast
    """
    require_nd_law(fit)
    if not {"n", "d"} <= set(fit.law.inputs):
        raise QueryError(f"law {fit.law.name!r} does not depend on both N and D: no budget path")
    probs, interval = check_probs(probs, interval)
    a, b = seen_groups(fit, (group_a, group_b))
    notes = list(check_comparable(fit, (a, b), on_mixed=on_mixed))
    tg = make_targets(flops, n_params, n_tokens, tokens_per_param)
    rng = np.random.default_rng(random_seed)
    law = fit.law
    th = {g: {k: v[:, None] for k, v in group_theta(fit, g).items()} for g in (a, b)}
    split = {g: path_split(law, th[g], tg.log_c, tg.log_ratio) for g in (a, b)}
    law_log = {g: np.broadcast_to(law.evaluate_log({"n": split[g][0], "d": split[g][1]}, th[g]),
                                  (_n_draws(th[a]), tg.flops.size)) for g in (a, b)}
    (pred_a, pred_b), calib, more = predictive_draws(
        fit, (a, b), th, [law_log[a], law_log[b]], [split[a], split[b]], tg,
        discrepancy=discrepancy, rng=rng, beyond=beyond, weighting=weighting)
    notes += more
    loss_a, loss_b = np.exp(law_log[a]), np.exp(law_log[b])
    diff_law, diff_pred = loss_b - loss_a, np.exp(pred_b) - np.exp(pred_a)
    log_cb = matching_log_compute(law, th[b], law_log[a], tg.log_ratio, tg.log_c)
    # B's predictive curve is its law shifted by its predictive offset at the target
    log_cb_pred = matching_log_compute(law, th[b], pred_a - (pred_b - law_log[b]),
                                       tg.log_ratio, tg.log_c)
    with np.errstate(over="ignore"):
        multiplier = np.exp(tg.log_c - log_cb)
        multiplier_pred = np.exp(tg.log_c - log_cb_pred)
    p_law, p_pred = (diff_law < 0).mean(axis=0), (diff_pred < 0).mean(axis=0)
    quantities = [("loss_a", "law", loss_a, np.full(tg.flops.size, np.nan)),
                  ("loss_b", "law", loss_b, np.full(tg.flops.size, np.nan)),
                  ("difference", "law", diff_law, p_law),
                  ("difference", "predictive", diff_pred, p_pred),
                  ("multiplier", "law", multiplier, p_law),
                  ("multiplier", "predictive", multiplier_pred, p_pred)]
    med_n = np.exp(np.median(np.broadcast_to(split[a][0], diff_law.shape), axis=0))
    med_d = np.exp(np.median(np.broadcast_to(split[a][1], diff_law.shape), axis=0))
    frames = []
    for name, band, values, p in quantities:
        t = interval_table(values, probs=probs, interval=interval)
        head = pd.DataFrame({"flops": tg.flops, "n_params_a": med_n, "n_tokens_a": med_d,
                             "group_a": a, "group_b": b, "quantity": name, "band": band,
                             "p_b_better": p})
        frames.append(pd.concat([head, t], axis=1))
    summary = pd.concat(frames, ignore_index=True)
    summary["p_out_of_reach"] = np.nan
    for band, lc in (("law", log_cb), ("predictive", log_cb_pred)):
        summary.loc[(summary["quantity"] == "multiplier") & (summary["band"] == band),
                    "p_out_of_reach"] = np.isposinf(lc).mean(axis=0)
    c_range = crossing_range or default_crossing_range(fit, tg.flops)
    crossing = crossing_table(law, th[a], th[b], c_range, tg.log_ratio, probs=probs,
                              interval=interval)
    notes += _emit(extrapolation_warnings(fit, med_n, med_d), fit)
    draws = xr.Dataset({
        "loss_a": _wrap(fit, loss_a, "loss_a", band="law", units="nats/token"),
        "loss_b": _wrap(fit, loss_b, "loss_b", band="law", units="nats/token"),
        "difference": _wrap(fit, diff_law, "difference", band="law", units="nats/token"),
        "difference_predictive": _wrap(fit, diff_pred, "difference_predictive",
                                       band="predictive", units="nats/token"),
        "multiplier": _wrap(fit, multiplier, "multiplier", band="law", units="ratio"),
        "multiplier_predictive": _wrap(fit, multiplier_pred, "multiplier_predictive",
                                       band="predictive", units="ratio"),
    }).assign_coords({POINT: tg.flops}).assign_attrs(group_a=a, group_b=b)
    return Contrast((a, b), draws, summary, crossing, tuple(notes), calib)


def _n_draws(theta: dict[str, np.ndarray]) -> int:
    return max(np.shape(v)[0] for v in theta.values())


def default_crossing_range(fit: ScalingFit, flops: np.ndarray) -> tuple[float, float]:
    """From the smallest training compute to 100x the largest of targets and training runs."""
    c = fit.runs.flops
    return float(c.min()), float(100.0 * max(c.max(), float(np.max(flops))))


def crossing_table(law: Law, theta_a: dict[str, np.ndarray], theta_b: dict[str, np.ndarray],
                   c_range: tuple[float, float], log_ratio: np.ndarray | None, *,
                   probs: Sequence[float] = DEFAULT_PROBS, interval: float = DEFAULT_INTERVAL,
                   grid: int = 161) -> pd.DataFrame:
    """Where the two laws cross within ``c_range``: ``p_cross`` and the largest crossing budget.

    The difference of the laws is evaluated on a log grid of budgets per draw; the largest
    sign change is located by linear interpolation in ``log C`` (the one that decides the
    winner at scale). With a fixed-ratio path of several points, the first point's ratio is used.
    """
    lo, hi = (float(v) for v in c_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise QueryError(f"crossing range must be two increasing positive budgets, got {c_range}")
    log_c = np.linspace(np.log(lo), np.log(hi), grid)[None, :]
    ratio = None if log_ratio is None else np.broadcast_to(log_ratio[:, :1], log_c.shape)
    diff = path_log_loss(law, theta_b, log_c, ratio) - path_log_loss(law, theta_a, log_c, ratio)
    sign = np.sign(diff)
    change = sign[:, 1:] * sign[:, :-1] < 0
    crosses = change.any(axis=1)
    last = change.shape[1] - 1 - np.argmax(change[:, ::-1], axis=1)
    rows = np.arange(diff.shape[0])
    d0, d1 = diff[rows, last], diff[rows, last + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(d1 != d0, d0 / (d0 - d1), 0.5)
    step = log_c[0, 1] - log_c[0, 0]
    at = np.exp(log_c[0, last[crosses]] + frac[crosses] * step)
    base = {"c_min": lo, "c_max": hi, "p_cross": float(crosses.mean()),
            "p_b_better_at_c_max": float((diff[:, -1] < 0).mean())}
    if crosses.any():
        t = interval_table(at, probs=probs, interval=interval)
        return pd.concat([pd.DataFrame([base]), t], axis=1)
    return pd.DataFrame([{**base, "median": np.nan, "lower": np.nan, "upper": np.nan}])
