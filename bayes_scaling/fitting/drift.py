r"""A signed drift of the extrapolation error, per kind of extrapolation.

The discrepancy of :mod:`bayes_scaling.fitting.calibrate` is zero-mean: the bands widen with the
distance from the runs but stay centred on the law. Across the public ladders the errors of one
kind of extrapolation share a sign (a law fitted on a ladder's lower budgets over-predicts its top
budgets; one fitted without its top sizes under-predicts them, which are under-trained), and so
do a ladder's own rolling-origin errors of the same kind. The drift is the mean log error per
decade of each part of the distance (:func:`bayes_scaling.data.support.decades_outside`:
``scale``, N and D scaled up together past the runs; ``shape``, a tokens-per-parameter ratio no
run had), so the predictive median moves by

.. math:: \mu = \beta_{scale}\, a + \beta_{shape}\, r

(:func:`bayes_scaling.data.support.discrepancy_mean`; + = the law under-predicts). Per part:

- the ladder's own drift is the least-squares slope of its rolling-origin errors of the matching
  kind (top budgets held out for ``scale``, top sizes for ``shape``) on that part's distance,
  with its standard error from the spread of the refits' own slopes (the errors of one refit
  share a sign, so a refit counts once; :func:`ladder_slope`);
- the population (mean and sd of the drifts across the public ladders, each source weighing
  one, by the method of moments: :func:`population_drift`) is shipped in the cross-ladder prior
  file (``data/discrepancy_prior/prior.json``, ``drift_<part>_mu``/``_sd``);
- the ladder's drift is its own slope shrunk toward the population (normal-normal,
  :func:`shrink`), with the posterior sd as its band.

The shift is the drift's posterior mean: the discrepancy's spread was learned from errors that
include the drift, so adding the drift's own uncertainty would count it twice. No constant is
set by hand: the shrinkage comes from the ladders' own spread.

A ladder's own slope is measured only as far as its rolling-origin refits reach
(:func:`reach_distance`). With ``reach=True`` (an option of
:func:`bayes_scaling.fitting.calibrate.attach_discrepancy`, off by default) the drift past that
distance grows at the population's mean instead
(:func:`bayes_scaling.data.support.past_reach`): the own deviation from the population is
carried with weight ``x_max / x`` at a query ``x`` decades out.

A refit that holds out ``k`` top levels trains on a shorter ladder than the fit it calibrates,
and the least-squares slope weighs the deepest hold-outs most (their distances are the
largest). ``own_drift="nearest"`` (an option of ``attach_discrepancy``, off by default;
``benchmarks/CRITERIA_s12_i15.md``) takes the own slope from the refits that held out the
fewest levels, the nearest to the fit's own ladder, with the other refits' disagreement as its
standard error (:func:`nearest_slope`); ``"none"`` uses the population alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from bayes_scaling.data.support import DISTANCE

#: The parts of the distance and the rolling-origin refits that inform each (as in
#: :data:`bayes_scaling.fitting.calibrate.MATCHING`).
DRIFT_PARTS = ("scale", "shape")
DRIFT_MATCHING = {"scale": "c", "shape": "n"}
#: Which own slope a ladder's drift is shrunk from (:func:`ladder_drift`).
OWN_DRIFT = ("all", "nearest", "none")


class _Backtest(Protocol):  # the fields of calibrate.InnerBacktest read here
    residuals: np.ndarray
    refit: np.ndarray | None
    split: np.ndarray | None
    by_kind: dict[str, np.ndarray] | None
    origin: np.ndarray | None


@dataclass(frozen=True)
class Slope:
    """A ladder's own drift on one part: LS slope and its standard error (per decade)."""

    beta: float
    se: float


@dataclass(frozen=True)
class Drift:
    """The drift of one part learned for a ladder: shrunk value, its sd and how it was made."""

    value: float
    sd: float
    own: float | None
    own_se: float | None
    pop_mean: float
    pop_sd: float
    #: Weight of the ladder's own slope (0: the population mean alone).
    weight: float

    def to_dict(self) -> dict[str, float | None]:
        """JSON form (for a fit's meta)."""
        return {"value": self.value, "sd": self.sd, "own": self.own, "own_se": self.own_se,
                "population_mean": self.pop_mean, "population_sd": self.pop_sd,
                "own_weight": self.weight}


def _refit_slopes(bt: _Backtest, part: str):
    """The matching errors ``(a, r, refit)`` of ``part`` and, per refit with a distance along
    it, its id, weight ``sum a^2`` and own slope; ``None`` without such errors."""
    if part not in DRIFT_PARTS:
        raise ValueError(f"no drift part {part!r} ({' or '.join(DRIFT_PARTS)})")
    if bt.split is None or bt.refit is None or bt.by_kind is None or part not in bt.by_kind:
        return None
    m = bt.split == DRIFT_MATCHING[part]
    a, r, ref = bt.by_kind[part][m], bt.residuals[m], bt.refit[m]
    ids = np.array([j for j in np.unique(ref) if (a[ref == j] ** 2).sum() > 0], dtype=int)
    w = np.array([(a[ref == j] ** 2).sum() for j in ids])
    per = np.array([(a[ref == j] * r[ref == j]).sum() for j in ids]) / np.maximum(w, 1e-300)
    return (a, r), ids, w, per


def ladder_slope(bt: _Backtest, part: str) -> Slope | None:
    """A ladder's drift on ``part`` from its rolling-origin errors of the matching kind.

    The slope through the origin of the errors on the part's distance; its standard error is
    the weighted spread of the refits' own slopes around it over the effective number of refits
    (one observation per refit). ``None`` without two refits that reach along the part.
    """
    got = _refit_slopes(bt, part)
    if got is None or len(got[1]) < 2:
        return None
    (a, r), _, w, per = got
    beta = float((a * r).sum() / (a**2).sum())
    var = float(np.sum(w * (per - beta) ** 2) / w.sum())
    n_eff = w.sum() ** 2 / (w**2).sum()
    return Slope(beta, float(np.sqrt(max(var, 1e-12) / max(n_eff - 1.0, 1.0))))


def nearest_slope(bt: _Backtest, part: str) -> Slope | None:
    """The own drift on ``part`` from the refits nearest the fit's ladder.

    Per group, the matching refits that held out the fewest top levels (``bt.origin``: group
    and depth per run) give the slope, their ``sum a^2``-weighted mean; its standard error is
    the weighted spread of ALL matching refits' slopes around it over the effective number of
    those nearest refits. ``None`` without two matching refits.
    """
    got = _refit_slopes(bt, part)
    if got is None or len(got[1]) < 2:
        return None
    if bt.origin is None:
        raise ValueError("the nearest refits need each run's origin (group, depth) recorded")
    _, ids, w, per = got
    first = np.array([np.flatnonzero(bt.refit == j)[0] for j in ids])
    grp, depth = bt.origin[first, 0], bt.origin[first, 1]
    near = np.array([depth[i] == depth[grp == grp[i]].min() for i in range(ids.size)])
    beta = float(np.sum(w[near] * per[near]) / w[near].sum())
    spread = float(np.sum(w * (per - beta) ** 2) / w.sum())
    n_eff = w[near].sum() ** 2 / (w[near] ** 2).sum()
    return Slope(beta, float(np.sqrt(max(spread, 1e-12) / n_eff)))


def population_drift(slopes: Sequence[Slope], sources: Sequence[str]) -> tuple[float, float]:
    """Method-of-moments mean and sd of the ladders' drifts (each source weighs one).

    The sd is the spread of the slopes less their mean squared standard error (0 if negative).
    """
    if not slopes:
        raise ValueError("a drift population needs at least one ladder's slope")
    srcs = list(sources)
    w = np.array([1.0 / srcs.count(s) for s in srcs])
    b = np.array([s.beta for s in slopes])
    se2 = np.array([s.se**2 for s in slopes])
    mu = float(np.sum(w * b) / w.sum())
    tau2 = float(np.sum(w * (b - mu) ** 2) / w.sum() - np.sum(w * se2) / w.sum())
    return mu, float(np.sqrt(max(tau2, 0.0)))


def shrink(own: Slope | None, pop_mean: float, pop_sd: float) -> Drift:
    """The ladder's drift: its own slope shrunk toward the population (normal-normal)."""
    if own is None or pop_sd == 0:
        return Drift(pop_mean, pop_sd, own.beta if own else None, own.se if own else None,
                     pop_mean, pop_sd, 0.0)
    k = pop_sd**2 / (pop_sd**2 + own.se**2)
    sd = float(np.sqrt(1.0 / (1.0 / pop_sd**2 + 1.0 / max(own.se, 1e-12) ** 2)))
    return Drift(pop_mean + k * (own.beta - pop_mean), sd, own.beta, own.se, pop_mean, pop_sd,
                 float(k))


def ladder_drift(bt, prior, own: Literal["all", "nearest", "none"] = "all"
                 ) -> dict[str, Drift]:
    """The ladder's signed drift per part: its own slope (``own``: all matching refits,
    :func:`ladder_slope`; the nearest, :func:`nearest_slope`; ``"none"``: no own slope) shrunk
    toward ``prior``'s drift population (``prior.drift_population(part)``)."""
    if own not in OWN_DRIFT:
        raise ValueError(f"own_drift is {own!r}, not one of {', '.join(OWN_DRIFT)}")
    bt = bt if bt.by_kind is None or DISTANCE not in bt.by_kind else bt.with_distance(DISTANCE)
    slope = {"all": ladder_slope, "nearest": nearest_slope, "none": lambda _b, _p: None}[own]
    return {p: shrink(slope(bt, p), *prior.drift_population(p)) for p in DRIFT_PARTS}


def reach_distance(bt: _Backtest, part: str) -> float | None:
    """How far the ladder's own evidence on ``part`` reaches: the largest ``part`` distance of
    its rolling-origin held-out runs of the matching kind (``None``: no such run outside)."""
    if part not in DRIFT_PARTS:
        raise ValueError(f"no drift part {part!r} ({' or '.join(DRIFT_PARTS)})")
    if bt.split is None or bt.by_kind is None or part not in bt.by_kind:
        return None
    x = bt.by_kind[part][bt.split == DRIFT_MATCHING[part]]
    return float(x.max()) if x.size and x.max() > 0 else None
