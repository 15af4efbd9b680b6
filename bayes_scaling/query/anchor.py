r"""Anchored contrasts: the observed gap at the top of the ladder, plus the law's change, trusted
as far as the ladder's own rolling-origin refits say.

Why: a law with group offsets fitted over a whole ladder lets the small budgets (where warmup,
schedule and learning-rate choices move the loss most) set the groups' offsets, and extrapolates
their *difference* with the law's shape. On Porian et al.'s five training settings that
predicted change is mostly wrong (the settings' losses converge faster than offsets on a shared
law allow), and the ranking by the observed loss at the largest budget beats it
(``benchmarks/results/contrast.md``). On ladders whose groups do follow the law, the law's
change is right. How much of it to trust is the weight ``w`` below; by default ``w = 0``
(:data:`WEIGHTING`): over the synthetic, Porian and Gemstones sets no learned weight beat
keeping the observed gap (``benchmarks/results/contrast_weights.md``):

.. math:: \log L_g(x^*) = \underbrace{\ell_g(x_g)}_{\text{observed level}}
          + \bar c + w\,(c_g - \bar c) + \varepsilon_g, \qquad
          \varepsilon_B - \varepsilon_A \sim \mathcal N(0,\ a + s^2 h),
          \quad w \sim \mathcal N(\hat w,\ \sigma_w^2 + t^2)

- ``x_g``: the group's budget level nearest the target (log10 compute); ``ℓ_g(x_g)`` the
  observed log loss of the group's best run there (the bottom of its isoFLOP slice: what the
  single-scale ranking compares);
- ``c_g``: the law's change of log loss from that run to the target (per posterior draw: it
  includes the law's view of how far the best run is from the compute-optimal split), ``c̄``
  its mean over the groups compared (the common part, which cancels in a difference);
- ``w``: how much of the law's *group-specific* change is real: 1 trusts the law, 0 keeps the
  observed gap (then the call is exactly the single-scale ranking's);
- ``a + s² h``: the variance of the anchored difference ``h`` decades from the anchor, and
  ``t``: how much ``w`` varies between pairs (a large predicted change is that much less sure).

``a``, ``s²`` and ``t`` (and a learned ``w``: its posterior under a ``N(1, 1)`` prior) come
from rolling-origin point refits inside the ladder
(:func:`bayes_scaling.fitting.contrast_refits.rolling_refits`): drop the top 1-3 budget
levels, refit, and for every pair of groups and held-out level regress the observed change of
the gap between their best runs on the refit's predicted change (with ``w = 0``: the spread
of the observed changes themselves). Numpy only, except the refits (SciPy, imported when a
calibration is first needed, and cached per fit).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from bayes_scaling.data.support import budget_levels
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.final_loss import Law
from bayes_scaling.query.allocate import optimal_split
from bayes_scaling.query.pooling import (
    drift_column,
    fit_terms,
    latest_origin,
    origin_profile,
    pair_spreads,
)
from bayes_scaling.query.predict import group_theta

#: Past the longest horizon the rolling-origin refits tested: extrapolate the law's group-specific
#: change (``"law"``) or hold the gap (``"hold"``). Default chosen by the mean held-out Brier over
#: the synthetic, Porian and Gemstones sets of ``benchmarks/bench_contrast.py``.
Beyond = Literal["law", "hold"]
BEYOND: Beyond = "hold"
#: How the weight ``w`` of the law's group-specific change is set. ``"zero"`` (the default):
#: ``w = 0``, the observed gap at the anchor kept (the single-scale ranking's call), the band the
#: spread of the refits' observed changes of gaps. Chosen by the mean held-out Brier over the
#: three bench sets (``results/contrast_weights.md``); the others: :func:`fit_calibration`.
Weighting = Literal["zero", "pooled", "latest", "eiv"]
WEIGHTINGS: tuple[str, ...] = ("zero", "pooled", "latest", "eiv")
WEIGHTING: Weighting = "zero"
#: Let the band's drift variance depend on where the rolling origin sits on the ladder (a
#: power of compute, :func:`fit_calibration`'s ``origin_x``). Off: it passed session 10's gate
#: (``benchmarks/CRITERIA_s10_i17.md``) like :data:`RELATIVE_DRIFT`, which its tie-break chose.
DRIFT_DECAY: bool = False
#: Add a drift that scales with the gap: ``r² g² h`` (``g``: the observed gap between the two
#: groups' best runs at the origin / anchor): fading gaps change in proportion to their size.
#: On since session 10 by a gate stated before scoring (``benchmarks/CRITERIA_s10_i17.md``):
#: gate Brier 0.0737 against 0.0733, mean bench Brier (synthetic, Porian, Gemstones) 0.068/0.074.
RELATIVE_DRIFT: bool = True
#: Anchor each group on its whole isoFLOP slice (the law at the best run plus the slice's mean
#: residual from it), not its best run. Off: gate Brier 0.068 against 0.074, but on Porian a
#: recipe's effect varies within a slice (72% right against 88%; ``results/contrast_slice.md``).
SLICE_ANCHOR: bool = False
#: Every drift term (``s²``, ``r²``, ``w``'s spread ``t²``) at its rate at the top of the ladder:
#: one ``kappa >= 0`` fitted as :data:`DRIFT_DECAY`'s scales them all. Off: the gate's 90%
#: coverage falls to 86.8% (87.2% by maximum likelihood; ``results/contrast_top(_ml).md``).
DRIFT_AT_TOP: bool = False
#: The variance terms (``a``, ``s²``, ``t²``, ``r²``) by maximum likelihood (NNLS on squared
#: errors reweighted by ``1/v²`` to its fixed point), not least squares. On since session 12
#: (``CRITERIA_s12_i17.md``, ``results/contrast_ml.md``): gate Brier 0.0740 against 0.0737,
#: mean bench Brier 0.0667 against 0.0682; Porian's mean confidence 0.787 against 0.779.
ML_VARIANCE: bool = True
#: ``w``'s spread ``t`` per pair of groups: each pair's own shrunk towards the pooled one by
#: random-effects empirical Bayes (:func:`~bayes_scaling.query.pooling.pair_spreads`), so a pair
#: whose refits agree gets a narrower band. Off: with ~6 comparisons per pair they rarely differ
#: beyond chance (5 of 6 Porian fits keep the pooled spread), and the mean bench Brier rose
#: (0.06678 against 0.06667; ``CRITERIA_s12b_i17.md``, ``results/contrast_pair.md``).
PAIR_SPREAD: bool = False
#: Bound ``w``'s spread term by the refits: ``t² min(x², Y²)``, ``Y`` the largest observed change
#: of a gap in the calibration (``spread_cap``), in the fit and at application (each group's
#: change about the groups' mean clipped to ``±Y/2``). Off: refitted, ``t`` mostly grows where
#: the cap binds, so Porian's confidence stays 0.787; mean bench Brier 0.06643 against 0.06667
#: but mean calgap 0.0307 against 0.0291 (``CRITERIA_s12c_i17.md``, ``results/contrast_cap.md``).
SPREAD_CAP: bool = False
#: Each refit comparison's variance times ``10^(beta (top_x - origin_x))`` in the fit (``beta``:
#: ``origin_scale``, free in sign, profiled as ``kappa``), the terms applied at the top. Off:
#: Porian's confidence 0.836 for 86.5% right (Brier 0.091 against 0.099), but ``beta`` rests on 3
#: origins and on synthetic ladders its noise narrows the band: gate coverage 85.5% (G3), multiplier
#: coverage 84.1% (R2; ``CRITERIA_s13_i17.md``, ``results/contrast_scale.md``).
ORIGIN_SCALE: bool = False
#: With :data:`ORIGIN_SCALE`: ``beta`` integrated over its grid (weights: profile likelihood times
#: the prior), the terms the weighted average of each ``beta``'s (the mixture's variance). Off:
#: coverage recovers (gate 88.5%, multiplier 90.5%), but a flat profile's negative ``beta`` widen
#: the band: gate Brier q95 +0.0054 (G1), Gemstones' confidence 0.937 for 100% right (R1;
#: ``CRITERIA_s13_i17.md`` addendum 2, ``results/contrast_mix.md``).
ORIGIN_MIX: bool = False
#: Prior sd of ``kappa`` (log10 of the drift variance per decade) and the grid it is fitted on.
DECAY_PRIOR_SD: float = 1.0
DECAY_GRID: np.ndarray = np.round(np.linspace(-2.0, 2.0, 41), 2)
#: Prior on the weight of the law's group-specific change: mean and sd (trust the law).
WEIGHT_PRIOR: tuple[float, float] = (1.0, 1.0)
_LN10 = float(np.log(10.0))
_LOG6 = float(np.log(6.0))
_DATA: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
_CACHE: dict[tuple[str, ...], ContrastCalibration | None] = {}


@dataclass(frozen=True)
class ContrastCalibration:
    """What the ladder's rolling-origin refits say about extrapolating group differences.

    ``weight`` (mean, sd; the sd includes how much the weight varies between pairs): the share
    of the law's group-specific change that held; ``noise_var`` (``a``) and ``drift_var``
    (``s²`` per decade): the variance of the anchored difference; ``n_obs`` comparisons from
    ``origins`` refits, ``horizon`` the longest (decades); ``weighting``: how ``weight`` was
    set; ``drift_decay`` (``kappa``): how fast the drift falls per decade up the ladder,
    ``drift_var`` its rate at log10 compute ``drift_at`` (:meth:`drift_at_anchor`);
    ``drift_rel`` (``r²``): the drift per decade per squared gap, falling as ``rel_decay``;
    ``spread_cap`` (``Y``, :data:`SPREAD_CAP`): the predicted change ``w``'s spread applies to;
    ``origin_scale`` (``beta``, :data:`ORIGIN_SCALE`): log10 of the variance per decade below
    (:data:`ORIGIN_MIX`: its mixture's mean, ``origin_scale_sd`` its sd).
    """

    weight: float
    weight_sd: float
    noise_var: float
    drift_var: float
    n_obs: int
    origins: int
    horizon: float = np.inf
    weighting: str = "pooled"
    drift_decay: float = 0.0
    drift_at: float = 0.0
    drift_rel: float = 0.0
    rel_decay: float = 0.0
    pair_sd: tuple[tuple[str, float], ...] = ()
    spread_cap: float = np.inf
    origin_scale: float = 0.0
    origin_scale_sd: float = 0.0

    def drift_at_anchor(self, x_anchor: np.ndarray) -> np.ndarray:
        """Drift variance per decade from anchors at log10 compute ``x_anchor``:
        ``drift_var * 10^(drift_decay (drift_at - x_anchor))``."""
        return self.drift_var * 10.0 ** (self.drift_decay * (self.drift_at
                                                              - np.asarray(x_anchor, float)))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)

    def weight_draws(self, rng: np.random.Generator, n: int, names: tuple[str, ...] = (),
                     ) -> np.ndarray:
        """``n`` draws of ``w``, shape ``(n, 1)``; sd: the pair ``names``' own (``pair_sd``,
        :data:`PAIR_SPREAD`) if it has one, else ``weight_sd``."""
        own = dict(self.pair_sd)
        sd = next((own[k] for k in ("|".join(names), "|".join(names[::-1])) if k in own),
                  self.weight_sd) if len(names) == 2 else self.weight_sd
        return (self.weight + sd * rng.standard_normal(n))[:, None]


def _path_log_loss(law: Law, theta: dict[str, np.ndarray], log_c: np.ndarray,
                   log_ratio: np.ndarray | None) -> np.ndarray:
    if log_ratio is None:
        n, d = optimal_split(law, np.exp(log_c), theta)
        log_n, log_d = np.log(n), np.log(d)
    else:
        log_n = 0.5 * (log_c - _LOG6 - log_ratio)
        log_d = log_n + log_ratio
    return law.evaluate_log({"n": log_n, "d": log_d}, theta)


class Levels:
    """Budget levels of a fit's runs: each level's log10 compute and the runs of each group."""

    def __init__(self, fit: ScalingFit) -> None:
        runs = fit.runs
        self.runs = runs
        self.level = budget_levels(runs.flops)
        lc = np.log10(runs.flops)
        self.x = np.array([np.median(lc[self.level == k]) for k in range(self.level.max() + 1)])
        gi = runs.group_index
        self.members = {g: {int(k): np.flatnonzero((gi == i) & (self.level == k))
                            for k in np.unique(self.level[gi == i])}
                        for i, g in enumerate(runs.group_names)}

    def best(self, group: str, level: int) -> int:
        """Row of ``group``'s best run (lowest loss) at ``level``.

        A budget's best run is what "the better recipe at this budget" is judged by (the
        bottom of an isoFLOP slice), and what the single-scale ranking compares.
        """
        idx = self.members[group][level]
        return int(idx[np.argmin(self.runs.log_loss[idx])])

    def law_at_best(self, law: Law, group: str, theta: dict[str, np.ndarray],
                    level: int) -> np.ndarray:
        """The law's log loss at ``group``'s best run of ``level``, per draw: ``(S,)``."""
        i, r = self.best(group, level), self.runs
        return law.evaluate_log({"n": r.log_n[i:i + 1][None, :],
                                 "d": r.log_d[i:i + 1][None, :]}, theta)[:, 0]

    def anchor_level(self, law: Law, group: str, theta: dict[str, np.ndarray], level: int,
                     whole_slice: bool) -> np.ndarray:
        """``group``'s observed log loss at ``level``, per draw ``(S,)``: its best run's, or
        (``whole_slice``, :data:`SLICE_ANCHOR`) the law at the best run plus the mean residual
        of every run of the group at that level from the law."""
        if not whole_slice:
            i = self.best(group, level)
            return np.full(np.shape(self.law_at_best(law, group, theta, level)),
                           self.runs.log_loss[i])
        idx, r = self.members[group][level], self.runs
        fitted = law.evaluate_log({"n": r.log_n[idx][None, :], "d": r.log_d[idx][None, :]},
                                  theta)
        return (self.law_at_best(law, group, theta, level)
                + np.mean(r.log_loss[idx][None, :] - fitted, axis=1))

    def nearest(self, group: str, x_target: np.ndarray) -> np.ndarray:
        """Per target, the group's level nearest in log10 compute (the higher on a tie)."""
        own = np.array(sorted(self.members[group]))
        dist = np.abs(self.x[own][None, :] - x_target[:, None]) - 1e-9 * own[None, :]
        return own[np.argmin(dist, axis=1)]


# ------------------------------------------------------------------------------ calibration
def calibrate_contrasts(fit: ScalingFit, weighting: Weighting | None = None,
                        ) -> ContrastCalibration | None:
    """The fit's contrast calibration (cached per runs and model); ``None`` if it cannot be had.

    Needs at least two groups with runs at the same budget levels and enough levels for one
    rolling-origin refit (:data:`~bayes_scaling.fitting.contrast_refits.MIN_TRAIN_LEVELS` + 1).
    ``weighting``: how ``w`` is set (default :data:`WEIGHTING`).
    """
    weighting = WEIGHTING if weighting is None else weighting
    if weighting not in WEIGHTINGS:
        raise QueryError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got {weighting!r}")
    key = (fit.runs.fingerprint(), fit.spec.name, fit.spec.law, str(SLICE_ANCHOR))
    if key not in _DATA:  # the refits: once per fit, whatever the weighting
        _DATA[key] = calibration_data(fit)
    ckey = (*key, weighting, *map(str, (DRIFT_AT_TOP, ML_VARIANCE, PAIR_SPREAD, SPREAD_CAP,
                                        ORIGIN_SCALE, ORIGIN_MIX)))
    if ckey not in _CACHE:
        _CACHE[ckey] = calibration_from(_DATA[key], weighting)
    return _CACHE[ckey]


def calibration_from(data: dict[str, np.ndarray], weighting: Weighting, *,
                     decay: bool | None = None, relative: bool | None = None,
                     top: bool | None = None, ml: bool | None = None,
                     pair: bool | None = None, cap: bool | None = None,
                     scale: bool | None = None, mix: bool | None = None,
                     ) -> ContrastCalibration | None:
    """The calibration of the comparisons ``data`` (:func:`calibration_data`) under ``weighting``;
    ``None`` with fewer than 3 comparisons. ``decay``: let the drift variance depend on where
    the origin sits (default :data:`DRIFT_DECAY`; needs ``data["origin_x"]``); ``relative``:
    add the drift that scales with the gap (default :data:`RELATIVE_DRIFT`; ``data["gap"]``);
    ``top``, ``ml``, ``pair``, ``cap``, ``scale``, ``mix``: default :data:`DRIFT_AT_TOP`,
    :data:`ML_VARIANCE`, :data:`PAIR_SPREAD`, :data:`SPREAD_CAP`, :data:`ORIGIN_SCALE`,
    :data:`ORIGIN_MIX`."""
    if data["x"].size < 3:
        return None
    decay = DRIFT_DECAY if decay is None else decay
    relative = RELATIVE_DRIFT if relative is None else relative
    top = DRIFT_AT_TOP if top is None else top
    decay, pair = decay or top, PAIR_SPREAD if pair is None else pair
    scale = ORIGIN_SCALE if scale is None else scale
    cal = fit_calibration(data["x"], data["y"], data["h"], cluster=data["cluster"],
                          origins=int(data["origins"]),
                          x_var=data["x_var"] if weighting == "eiv" else None,
                          origin=data["origin"] if weighting == "latest" else None,
                          weight=0.0 if weighting == "zero" else None,
                          origin_x=data["origin_x"] if decay else None,
                          top_x=float(data["top_x"]) if decay else 0.0,
                          gap=data["gap"] if relative else None, decay_all=top, ml=ml,
                          pair=data["pair"] if pair else None,
                          cap=SPREAD_CAP if cap is None else cap,
                          below=data["top_x"] - data["origin_x"] if scale else None,
                          mixture=ORIGIN_MIX if mix is None else mix)
    return replace(cal, horizon=float(np.max(data["h"])), weighting=weighting)


def calibration_data(fit: ScalingFit, slice_anchor: bool | None = None,
                     ) -> dict[str, np.ndarray]:
    """The rolling-origin comparisons a calibration is fitted to, one per (origin, pair, level).

    ``x``: the refit law's change of log loss from each group's best run at the origin level
    to its compute-optimal path at a held-out level, B's minus A's; ``x_var``: its variance
    under the refit's own uncertainty (its Gauss-Newton covariance); ``y``: the observed change
    of the gap between the two groups' best runs from the origin to that level; ``h``: decades
    ahead; ``gap``: the observed gap (B's best run minus A's) at the origin; ``cluster``:
    ``"origin|A|B"``; ``pair``: ``"A|B"``; ``origin``: the origin level;
    ``origin_x``: its log10 compute; ``top_x``: the top level's; ``origins``: refits made.
    ``slice_anchor`` (default :data:`SLICE_ANCHOR`): each group's level at the origin from its
    whole slice (:meth:`Levels.anchor_level`, under the refit's law), as the band anchors.
    """
    from bayes_scaling.fitting.contrast_refits import (  # lazy: SciPy only when calibrating
        rolling_refits,
    )

    law, lv = fit.law, Levels(fit)
    names = fit.group_names
    whole = SLICE_ANCHOR if slice_anchor is None else slice_anchor
    start = {p: np.array([float(np.median(group_theta(fit, g)[p])) for g in names])
             for p in law.params}
    rows: list[tuple[float, float, float, float, str, str, float]] = []
    refits = rolling_refits(fit.runs, law, start)
    for rf in refits:
        th = {g: {p: np.asarray(rf.theta[p][i], float).reshape(1, 1) for p in law.params}
              for i, g in enumerate(names)}
        td = {g: {p: rf.draws[p][:, i:i + 1] for p in law.params} for i, g in enumerate(names)}
        o = rf.top_level
        for a, b in itertools.combinations(names, 2):
            for k in range(o + 1, int(lv.level.max()) + 1):
                if not all(lev in lv.members[g] for g in (a, b) for lev in (o, k)):
                    continue
                # the law's change from each group's best run at o to its path at level k
                x, x_d = (sum(sign * (_path_log_loss(law, t[g], np.array([[lv.x[k] * _LN10]]),
                                                     None)[:, 0]
                                      - lv.law_at_best(law, g, t[g], o))
                              for sign, g in ((1.0, b), (-1.0, a))) for t in (th, td))
                obs = {(g, lev): float(lv.runs.log_loss[lv.best(g, lev)])
                       for g in (a, b) for lev in (o, k)}
                obs |= {(g, o): float(lv.anchor_level(law, g, th[g], o, whole)[0])
                        for g in (a, b)}
                y = (obs[(b, k)] - obs[(a, k)]) - (obs[(b, o)] - obs[(a, o)])
                rows.append((float(x[0]), y, float(lv.x[k] - lv.x[o]), float(np.var(x_d)),
                             f"{o}|{a}|{b}", f"{a}|{b}", obs[(b, o)] - obs[(a, o)]))
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return {"x": np.array(cols[0], float), "y": np.array(cols[1], float),
            "h": np.array(cols[2], float), "x_var": np.array(cols[3], float),
            "cluster": np.array(cols[4], str), "pair": np.array(cols[5], str),
            "gap": np.array(cols[6], float),
            "origin": np.array([int(c.split("|")[0]) for c in cols[4]], int),
            "origin_x": lv.x[np.array([int(c.split("|")[0]) for c in cols[4]], int)],
            "top_x": np.array(float(lv.x[-1])), "origins": np.array(len(refits))}


def fit_calibration(x: np.ndarray, y: np.ndarray, h: np.ndarray, *,
                    cluster: np.ndarray | None = None, origins: int = 1,
                    x_var: np.ndarray | None = None, origin: np.ndarray | None = None,
                    weight: float | None = None, origin_x: np.ndarray | None = None,
                    top_x: float = 0.0, gap: np.ndarray | None = None, iters: int = 30,
                    decay_all: bool = False, ml: bool | None = None,
                    pair: np.ndarray | None = None, cap: bool = False,
                    below: np.ndarray | None = None, mixture: bool = False,
                    ) -> ContrastCalibration:
    """Regress observed changes ``y`` of gaps on the law's predicted changes ``x``.

    ``y = w x + e`` with ``w ~ N(1, 1)`` a priori and ``Var e = a + s² h + t² x²`` (``h``
    decades ahead; ``t``: how much the weight varies from one pair and origin to the next, so
    a large predicted change carries a proportionally large error). Alternates the weighted
    posterior of ``w`` and a non-negative fit of ``(a, s², t²)`` to the squared errors, scaled
    by ``n / (n - fitted terms)``: ``ml`` (default :data:`ML_VARIANCE`) the Gaussian likelihood's
    maximum, else least squares. Comparisons of one ``cluster`` (a pair within one refit) share
    their refit and their anchor, so ``w``'s sd is inflated by ``sqrt(n / clusters)``.

    ``x_var``: the variance of each ``x`` under its refit's own uncertainty; given, the
    attenuation it causes is undone (errors-in-variables, Fuller 1987, *Measurement Error
    Models*, ch. 1). ``origin``: each comparison's origin level; given, ``w`` is the one the
    latest origin says, shrunk towards the mean over origins as much as the origins agree
    (random-effects empirical Bayes, DerSimonian & Laird 1986, Controlled Clinical Trials 7:177):
    the law may be trusted less near the top of a ladder than further down. ``weight``: ``w``
    fixed there (its sd 0: only ``t`` spreads it), the variance terms fitted to ``y - weight x``.

    ``origin_x``: each comparison's origin (log10 compute); given, the drift rate is a power of
    compute, ``s²(x) = s² 10^(kappa (top_x - x))`` (a gap that moves as a power law of compute,
    ``C^-alpha``, has ``kappa = 2 alpha``), and a change over ``[x_o, x_o + h]`` accumulates its
    integral (:func:`drift_column`) instead of ``s² h``: gaps that settle up the ladder
    (``kappa > 0``) are not given the drift of its lower origins at its top. ``kappa``: the
    maximum of the errors' Gaussian likelihood times a ``N(0, 1)`` prior (:data:`DECAY_PRIOR_SD`)
    over a grid; ``a`` stays constant; ``drift_var`` is the rate at ``top_x``.

    ``gap``: each comparison's observed gap at its origin; given, ``Var e`` also has
    ``r² gap² h`` (``drift_rel``): gaps that change in proportion to their size.
    ``decay_all`` (with ``origin_x``; :data:`DRIFT_AT_TOP`): ``kappa >= 0`` scales every drift
    term, each column times the mean of ``10^(kappa (top_x - x))`` over its change: ``r²`` and
    ``t²`` are their rates at ``top_x`` too (``t`` is applied as that, whatever the anchor).
    ``pair`` (each comparison's ``"A|B"``; :data:`PAIR_SPREAD`): ``t²`` per pair too, shrunk
    towards the pooled one (:func:`~bayes_scaling.query.pooling.pair_spreads`): ``pair_sd``.
    ``cap`` (:data:`SPREAD_CAP`): the column ``x²`` is ``min(x², Y²)``, ``Y = max |y|``.
    ``below`` (:data:`ORIGIN_SCALE`): decades each origin lies below the top; every term of a
    comparison times ``10^(beta below)``, ``beta`` profiled (:func:`~.pooling.origin_profile`);
    ``mixture`` (:data:`ORIGIN_MIX`): integrated over its grid, the terms the mixture's.
    """
    y_cap = float(np.max(np.abs(y))) if cap else np.inf
    cols = [np.ones_like(h), h, np.minimum(x * x, y_cap**2)]
    design = np.column_stack(cols if gap is None else [*cols, np.asarray(gap) ** 2 * h])
    u = np.zeros_like(x) if x_var is None else np.asarray(x_var, float)
    kappa, ml = 0.0, ML_VARIANCE if ml is None else ml
    w, w_sd, var = fit_terms(x, y, design, u, weight, iters, ml, WEIGHT_PRIOR)
    if origin_x is not None:
        best, base = -np.inf, design  # every kappa scales the unscaled columns
        for k in DECAY_GRID[DECAY_GRID >= 0] if decay_all else DECAY_GRID:
            des = base.copy()
            des[:, 1] = drift_column(h, np.asarray(origin_x, float), top_x, float(k))
            if decay_all:  # each drift term accumulates as the flat one does
                des[:, 2:] *= (des[:, 1] / np.maximum(h, 1e-12))[:, None]
            fitted_k = fit_terms(x, y, des, u, weight, iters, ml, WEIGHT_PRIOR)
            v = np.maximum(des @ fitted_k[2], 1e-12)
            score = (-0.5 * float(np.sum(np.log(v) + (y - fitted_k[0] * x) ** 2 / v))
                     - 0.5 * (k / DECAY_PRIOR_SD) ** 2)
            if score > best:
                best, kappa, (w, w_sd, var), design = score, float(k), fitted_k, des
    beta = beta_mode = beta_sd = 0.0
    if below is not None:  # the terms are then their values at the top (below = 0)
        beta, (w, w_sd, var), design, beta_mode, beta_sd = origin_profile(
            lambda d: fit_terms(x, y, d, u, weight, iters, ml, WEIGHT_PRIOR), x, y, design,
            np.asarray(below, float), DECAY_GRID, DECAY_PRIOR_SD, mixture)
    n_clusters = x.size if cluster is None else len(np.unique(cluster))
    w_sd *= float(np.sqrt(x.size / max(n_clusters, 1)))
    if origin is not None and weight is None:
        v = np.maximum(design @ var, 1e-12)
        w, w_sd = latest_origin(x * x - u, x * y, v, np.asarray(origin),
                                np.arange(x.size) if cluster is None else cluster, w, w_sd)
    # degrees of freedom: w, kappa and every variance term in use were fitted to these errors
    drifts = var[1:] if decay_all else var[1:2]
    fitted = (int(weight is None) + 1 + int(np.count_nonzero(var[1:]))
              + int(kappa != 0.0 and np.any(drifts > 0)) + int(beta_mode != 0.0))
    spreads = {} if pair is None else pair_spreads(
        design[:, 2], (y - w * x) ** 2, np.maximum(design @ var, 1e-12), float(var[2]),
        np.asarray(pair), np.arange(x.size) if cluster is None else np.asarray(cluster))
    dof = x.size / max(x.size - fitted, 1)
    var = var * dof
    pair_sd = tuple((k, float(np.hypot(w_sd, np.sqrt(t2 * dof)))) for k, t2 in spreads.items())
    return ContrastCalibration(float(w), float(np.hypot(w_sd, np.sqrt(var[2]))), float(var[0]),
                               float(var[1]), int(x.size), origins,
                               drift_decay=kappa if np.any(drifts > 0) else 0.0, drift_at=top_x,
                               drift_rel=float(var[3]) if gap is not None else 0.0,
                               rel_decay=kappa if decay_all else 0.0, pair_sd=pair_sd,
                               spread_cap=y_cap, origin_scale=beta,
                               origin_scale_sd=beta_sd)


# ------------------------------------------------------------------------------ application
def anchored_log_losses(fit: ScalingFit, names: tuple[str, ...],
                        theta: dict[str, dict[str, np.ndarray]], log_c: np.ndarray,
                        log_ratio: np.ndarray | None, calib: ContrastCalibration,
                        rng: np.random.Generator, *, beyond: Beyond | None = None,
                        slice_anchor: bool | None = None,
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Anchored mean and predictive log losses of ``names`` at targets ``log_c`` (per draw).

    ``theta[g]`` holds each group's constants of shape ``(S, 1)``; returns two lists of
    ``(S, points)`` arrays: the anchored laws (``w`` drawn, no noise) and one real run each
    (plus ``N(0, (a + s² h_g) / 2 + 2 r² h_g (ℓ_g - ℓ̄)²)`` per group, ``ℓ̄`` the groups' mean
    observed level, so a difference of two gets ``a + s² (h_A + h_B)/2 + r² g² h``).
    ``beyond``: past the longest horizon the refits tested, keep extrapolating the law's
    group-specific change (``"law"``) or hold the gap there (``"hold"``; the common change,
    the variance's growth with ``h`` and ``w``'s spread still apply). ``slice_anchor``: the
    observed level from the whole slice (default :data:`SLICE_ANCHOR`).
    """
    whole = SLICE_ANCHOR if slice_anchor is None else slice_anchor
    beyond = BEYOND if beyond is None else beyond
    if beyond not in ("law", "hold"):
        raise QueryError(f"beyond must be 'law' or 'hold', got {beyond!r}")
    law, lv = fit.law, Levels(fit)
    x_t = np.asarray(log_c, float).reshape(-1) / _LN10
    s = max(np.shape(v)[0] for v in theta[names[0]].values())
    w = calib.weight_draws(rng, s, tuple(names))
    base, change, specific, horizon, anchors, level = [], [], [], [], [], []
    for g in names:
        near = lv.nearest(g, x_t)
        x_a = lv.x[near]
        own = {int(k): lv.law_at_best(law, g, theta[g], int(k)) for k in np.unique(near)}
        ref = np.stack([own[int(k)] for k in near], axis=1)  # the law at the anchor runs
        seen = {int(k): lv.anchor_level(law, g, theta[g], int(k), whole) for k in np.unique(near)}
        obs = np.stack([seen[int(k)] for k in near], axis=1)  # (S, points)
        at = {}
        for key, x in (("target", x_t),
                       ("tested", x_a + np.clip(x_t - x_a, -calib.horizon, calib.horizon))):
            at[key] = _path_log_loss(law, theta[g], x[None, :] * _LN10, log_ratio)
        anchors.append(x_a)
        level.append(obs.mean(axis=0))
        base.append(np.broadcast_to(obs, (s, x_t.size)))
        change.append(np.broadcast_to(at["target"] - ref, (s, x_t.size)))
        upto = "target" if beyond == "law" else "tested"
        specific.append(np.broadcast_to(at[upto] - ref, (s, x_t.size)))
        horizon.append(np.abs(x_t - x_a))
    common = np.mean(change, axis=0)
    common_specific = np.mean(specific, axis=0)
    lim = calib.spread_cap / 2.0  # SPREAD_CAP: w's spread on the clipped change only
    mean = [b + common + (w * (c - common_specific) if np.isinf(lim) else calib.weight
                          * (c - common_specific) + (w - calib.weight)
                          * np.clip(c - common_specific, -lim, lim))
            for b, c in zip(base, specific, strict=True)]
    mid = np.mean(level, axis=0)
    pred = [m + np.sqrt((calib.noise_var + calib.drift_at_anchor(xa)[None, :] * hz[None, :])
                        / 2.0 + 2.0 * calib.drift_rel * hz[None, :] * (lg - mid)[None, :] ** 2
                        * 10.0 ** (calib.rel_decay * (calib.drift_at - xa))[None, :])
            * rng.standard_normal(m.shape)
            for m, hz, xa, lg in zip(mean, horizon, anchors, level, strict=True)]
    if beyond == "hold":  # the law's untested change is held at 0, and counted as 1 sd
        dropped = [c - sp for c, sp in zip(change, specific, strict=True)]
        mean_dropped = np.mean(dropped, axis=0)
        z = rng.standard_normal(pred[0].shape)
        pred = [p + w * (d - mean_dropped) * z for p, d in zip(pred, dropped, strict=True)]
    return mean, pred
