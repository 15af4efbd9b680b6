"""How far a query lies from the runs a law was fitted on, in decades (numpy only).

A user extrapolates *compute*: the planned run is usually compute-optimal at a budget far past
the ladder's largest, and such a point can lie inside the bounding box of the runs in
(log10 N, log10 D) while being far from every run. Four measures are computed per point:

- ``box``: Euclidean norm of the decades outside the training range in log10 N and log10 D;
- ``hull``: Euclidean distance (decades) to the convex hull of the runs in (log10 N, log10 D);
- ``compute``: decades of compute past the largest training budget (0 below it);
- ``hull_compute``: ``sqrt(hull**2 + compute**2)``.

``distance``, the one used everywhere (the calibration discrepancy, warnings, ``predict`` JSON,
reports, backtest tables), is :data:`DISTANCE`; it was chosen by leave-one-ladder-out held-out
scores over every public ladder (``benchmarks/bench_discrepancy_prior.py``). Two parts
split the same distance into two *kinds* of extrapolation: ``scale`` (N and D scaled up together
past the runs, what a user planning a larger budget does) and ``shape`` (a size and token count
no run had within the budgets the ladder covers: the top sizes of an isoFLOP ladder, held out,
are under-trained). The discrepancy may grow differently along each (:func:`discrepancy_var`);
the distance stays one number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

#: A query this many decades past the largest training compute, or this far from the runs'
#: support (``distance``), gets a loud warning.
FAR_DECADES_C = 2.0
#: Distance (decades) over which the calibration's out-of-ladder jump ``tau0`` ramps in.
DISCREPANCY_RAMP_DECADES = 0.05
#: log10 of the FLOPs per parameter per token (C = 6 N D).
_LOG10_6 = float(np.log10(6.0))

DistanceKind = Literal["box", "hull", "compute", "hull_compute"]
DISTANCE_KINDS: tuple[str, ...] = ("box", "hull", "compute", "hull_compute")
#: The extrapolation distance used everywhere (see the module docstring).
DISTANCE: DistanceKind = "hull_compute"


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices (counter-clockwise) of the convex hull of 2-D ``points`` (monotone chain).

    Fewer than three distinct points, or collinear ones, give the segment's two end points
    (or the one point).
    """
    pts = np.unique(np.asarray(points, dtype=float).reshape(-1, 2), axis=0)
    if len(pts) <= 2:
        return pts

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    lower: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 1e-12:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 1e-12:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1])
    return hull if len(hull) >= 2 else pts[[0, -1]]


def hull_distance(hull: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distance from points ``(x, y)`` to the convex polygon ``hull`` (0 inside)."""
    p = np.stack([np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()], 1)
    h = np.asarray(hull, dtype=float)
    if len(h) == 1:
        return np.hypot(*(p - h[0]).T)
    a, b = h, np.roll(h, -1, axis=0)
    if len(h) == 2:
        a, b = h[:1], h[1:]
    ab = b - a                                                     # (k, 2)
    ap = p[:, None, :] - a[None, :, :]                             # (m, k, 2)
    t = np.clip(np.sum(ap * ab, axis=2) / np.maximum(np.sum(ab * ab, axis=1), 1e-300), 0, 1)
    dist = np.linalg.norm(ap - t[:, :, None] * ab[None, :, :], axis=2).min(axis=1)
    if len(h) >= 3:
        crs = ab[None, :, 0] * ap[:, :, 1] - ab[None, :, 1] * ap[:, :, 0]
        dist = np.where(np.all(crs >= -1e-12, axis=1), 0.0, dist)
    return dist


@dataclass(frozen=True)
class Box:
    """The training support: range in log10 of N, D and C, and the hull in (log10 N, log10 D)."""

    n: tuple[float, float]
    d: tuple[float, float]
    c: tuple[float, float]
    #: Convex-hull vertices ``(log10 N, log10 D)``; empty means the box's corners.
    hull: tuple[tuple[float, float], ...] = field(default=())
    #: The measure ``distance`` means for this support (a fit keeps the one it was calibrated on).
    distance: str = DISTANCE

    @classmethod
    def of(cls, n: np.ndarray, d: np.ndarray) -> Box:
        """The support of runs with sizes ``n`` and tokens ``d``."""
        ln, ld = np.log10(n), np.log10(d)
        lc = _LOG10_6 + ln + ld
        hull = convex_hull(np.stack([ln, ld], 1))
        return cls((float(ln.min()), float(ln.max())), (float(ld.min()), float(ld.max())),
                   (float(lc.min()), float(lc.max())),
                   tuple((float(a), float(b)) for a, b in hull))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Sequence]) -> Box:
        """Inverse of :meth:`to_dict`.

        A fit saved before the hull existed gets the box's corners and the ``"box"`` distance
        its discrepancy was learned on, so its bands do not change.
        """
        hull = tuple((float(a), float(b)) for a, b in raw.get("hull", ()))
        kind = str(raw.get("distance", "box"))
        return cls(tuple(raw["n"]), tuple(raw["d"]), tuple(raw["c"]), hull,  # type: ignore[arg-type]
                   kind if kind in DISTANCE_KINDS else "box")

    def to_dict(self) -> dict[str, list]:
        """JSON form."""
        return {"n": list(self.n), "d": list(self.d), "c": list(self.c),
                "hull": [list(v) for v in self.hull], "distance": self.distance}

    def vertices(self) -> np.ndarray:
        """Hull vertices, or the box's four corners for a support saved without a hull."""
        if self.hull:
            return np.asarray(self.hull, dtype=float)
        (n0, n1), (d0, d1) = self.n, self.d
        return convex_hull(np.array([[n0, d0], [n1, d0], [n1, d1], [n0, d1]]))

    def extended(self, n: float, d: float) -> Box:
        """The support after adding a run at ``(n, d)``."""
        ln, ld = float(np.log10(n)), float(np.log10(d))
        lc = _LOG10_6 + ln + ld
        if (hull_distance(self.vertices(), ln, ld)[0] == 0
                and self.c[0] <= lc <= self.c[1]):
            return self  # a run inside the support changes nothing

        def ext(lo_hi: tuple[float, float], v: float) -> tuple[float, float]:
            return (min(lo_hi[0], v), max(lo_hi[1], v))

        hull = convex_hull(np.vstack([self.vertices(), [[ln, ld]]]))
        return Box(ext(self.n, ln), ext(self.d, ld), ext(self.c, lc),
                   tuple((float(a), float(b)) for a, b in hull), self.distance)


def _outside(x: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    lo, hi = lo_hi
    return np.maximum(x - hi, 0.0) + np.maximum(lo - x, 0.0)


def decades_outside(box: Box, n, d, kind: DistanceKind | None = None) -> dict[str, np.ndarray]:
    """Decades from the support per point.

    Parameters
    ----------
    box : Box
        The training support.
    n, d : array_like
        Model sizes and training tokens of the query points.
    kind : {"box", "hull", "compute", "hull_compute"}, optional
        Which measure ``distance`` holds (default: the support's own, ``box.distance``).

    Returns
    -------
    dict
        ``n``, ``d`` (decades outside the range of each), ``c`` (outside the compute range),
        ``c_past_max`` (signed decades above the largest training compute), every measure of
        :data:`DISTANCE_KINDS`, ``distance`` (the chosen one), and the two kinds of
        extrapolation ``hull_compute`` splits into: ``shape`` (decades outside the runs' hull
        of the point scaled back, at its tokens per parameter, to the largest training budget:
        a size and token count no run had at any budget it covers) and ``scale``
        (``sqrt(hull_compute**2 - shape**2)``: the point's N and D scaled up together past the
        runs). A compute-optimal plan at 20x the largest budget is nearly all scale; the top
        sizes of an isoFLOP ladder, under-trained at the budgets it has, are all shape.
    """
    kind = kind or box.distance
    if kind not in DISTANCE_KINDS:
        raise ValueError(f"distance kind must be one of {', '.join(DISTANCE_KINDS)}, got {kind!r}")
    ln = np.log10(np.asarray(n, dtype=float))
    ld = np.log10(np.asarray(d, dtype=float))
    ln, ld = np.broadcast_arrays(ln, ld)
    dn, dd = _outside(ln, box.n), _outside(ld, box.d)
    lc = _LOG10_6 + ln + ld
    compute = np.maximum(lc - box.c[1], 0.0)
    hull = hull_distance(box.vertices(), ln, ld).reshape(ln.shape)
    # the point scaled back along its tokens per parameter to the largest budget: how far
    # outside the runs it still lies is its shape; the rest of the distance is scale
    back = hull_distance(box.vertices(), ln - compute / 2, ld - compute / 2).reshape(ln.shape)
    hc = np.hypot(hull, compute)
    shape = np.minimum(back, hc)
    out = {"n": dn, "d": dd, "c": _outside(lc, box.c), "c_past_max": lc - box.c[1],
           "box": np.hypot(dn, dd), "hull": hull, "compute": compute, "hull_compute": hc,
           "shape": shape, "scale": np.sqrt(np.maximum(hc**2 - shape**2, 0.0))}
    out["distance"] = out[kind]
    return out


#: Posterior variables of the extrapolation discrepancy: ``tau0``, ``kappa`` (the scale part, or
#: both parts when the fit has no shape ones), ``tau0_shape``, ``kappa_shape`` (the shape part)
#: and the signed drift per part, ``drift_scale``, ``drift_shape`` (log loss per decade).
DISCREPANCY_VARS: tuple[str, ...] = ("kappa", "tau0", "kappa_shape", "tau0_shape",
                                     "drift_scale", "drift_shape")
#: The drift variables, in the order of their parts (``scale``, ``shape``).
DRIFT_VARS: tuple[str, str] = ("drift_scale", "drift_shape")


@dataclass(frozen=True)
class Reach:
    """How far a ladder's own evidence on one part of the distance reaches, and the
    cross-ladder rates carried past it (an option of
    :func:`bayes_scaling.fitting.calibrate.attach_discrepancy`, ``reach=True``).

    ``x_max``: the largest distance of that part among the ladder's rolling-origin held-out
    runs of the matching kind; ``drift_pop``: the drift population's mean; ``kappa_pop``: the
    cross-ladder prior's mean growth rate of the part.
    """

    x_max: float
    drift_pop: float
    kappa_pop: float

    @classmethod
    def from_meta(cls, cal: Mapping | None) -> dict[str, Reach] | None:
        """The reach per part recorded in a fit's ``meta["calibration"]`` (``None``: none)."""
        raw = (cal or {}).get("reach")
        return {p: cls(float(v["x_max"]), float(v["drift_pop"]), float(v["kappa_pop"]))
                for p, v in raw.items()} if raw else None


def past_reach(x, rate, rate_pop, x_max: float) -> np.ndarray:
    """``rate * min(x, x_max) + rate_pop * max(x - x_max, 0)``: a rate learned up to ``x_max``
    decades, the cross-ladder rate beyond (the own rate's weight falls as ``x_max / x``)."""
    x = np.asarray(x, dtype=float)
    return rate * np.minimum(x, x_max) + rate_pop * np.maximum(x - x_max, 0.0)


def _times(x: np.ndarray, rate, reach: Mapping[str, Reach] | None, part: str, pop: str):
    """``rate * x``, or past the part's reach the cross-ladder rate ``pop`` of :class:`Reach`."""
    hit = reach.get(part) if reach else None
    return rate * x if hit is None else past_reach(x, rate, getattr(hit, pop), hit.x_max)


def discrepancy_mean(far: Mapping[str, np.ndarray], drift_scale, drift_shape,
                     reach: Mapping[str, Reach] | None = None) -> np.ndarray:
    r"""Mean of the extrapolation discrepancy (log loss) at points ``far`` from the support.

    The signed drift per kind of extrapolation (:mod:`bayes_scaling.fitting.drift`):
    :math:`\beta_{scale}\,a + \beta_{shape}\,r`, with :math:`a` and :math:`r` the ``scale``
    and ``shape`` parts of the distance (:func:`decades_outside`); 0 on the support. Positive:
    the run is expected above the law. Broadcast over the points and the drifts. ``reach``
    (per part, :class:`Reach`): past ``x_max`` the part grows at the population's drift.
    """
    a = np.asarray(far["scale"], dtype=float)
    r = np.asarray(far["shape"], dtype=float)
    return (_times(a, drift_scale, reach, "scale", "drift_pop")
            + _times(r, drift_shape, reach, "shape", "drift_pop"))


def discrepancy_var(far: Mapping[str, np.ndarray] | np.ndarray, tau0, kappa,
                    tau0_shape=None, kappa_shape=None,
                    reach: Mapping[str, Reach] | None = None, shape_factor=None) -> np.ndarray:
    r"""Variance of the extrapolation discrepancy (log loss) at points ``far`` from the support.

    With one ``(tau0, kappa)`` for every kind of extrapolation, at distance :math:`\Delta`
    (``distance``):

    .. math:: \tau_0^2\,\mathrm{ramp}(\Delta) + \kappa^2 \Delta^2.

    Per kind, :math:`\Delta^2 = a^2 + r^2` is split into its ``shape`` part :math:`r` (outside
    the runs' hull once scaled back to the largest budget, :func:`decades_outside`) and its
    ``scale`` part :math:`a` (the rest: N and D scaled up together past the runs);
    each part grows at its own rate and the out-of-ladder jump is the parts' jumps weighted by
    their shares of :math:`\Delta^2`:

    .. math:: \mathrm{ramp}(\Delta)\,\frac{a^2 \tau_{0}^2 + r^2 \tau_{0,r}^2}{\Delta^2}
              + \kappa^2 a^2 + \kappa_r^2 r^2,

    which is the first form when the parts share their parameters.

    Parameters
    ----------
    far : dict or ndarray
        :func:`decades_outside`'s output (``scale``, ``shape``, ``distance``), or the distance
        alone (then the parts cannot differ: the shape parameters must be ``None``).
    tau0, kappa : array_like
        The scale part's parameters (both parts' when the shape ones are ``None``).
    tau0_shape, kappa_shape : array_like, optional
        The shape part's parameters.
    reach : dict of Reach, optional
        Per part: past ``x_max`` its ``kappa`` term grows at the cross-ladder ``kappa_pop``
        (:func:`past_reach`); per kind only.
    shape_factor : array_like, optional
        Multiplies the shape part's variance (its ``r`` terms) only: a Student-t on the hull
        part as a scale mixture (:mod:`bayes_scaling.fitting.tails`); 0 gives the scale part;
        per kind only.

    Returns
    -------
    ndarray
        Broadcast over the points and the parameters.
    """
    if tau0_shape is None and kappa_shape is None:
        if reach or shape_factor is not None:
            raise ValueError("a reach or shape factor applies to a discrepancy per kind of "
                             "extrapolation")
        dist = np.asarray(far["distance"] if isinstance(far, Mapping) else far, dtype=float)
        ramp = np.minimum(dist / DISCREPANCY_RAMP_DECADES, 1.0)
        return tau0**2 * ramp + (kappa * dist) ** 2
    if not isinstance(far, Mapping):
        raise ValueError("a discrepancy per kind of extrapolation needs the scale and shape parts")
    a = np.asarray(far["scale"], dtype=float)
    r = np.asarray(far["shape"], dtype=float)
    t_r = tau0 if tau0_shape is None else tau0_shape
    k_r = kappa if kappa_shape is None else kappa_shape
    d2 = a**2 + r**2
    ramp = np.minimum(np.sqrt(d2) / DISCREPANCY_RAMP_DECADES, 1.0)
    w_r = np.where(d2 > 0, r**2 / np.where(d2 > 0, d2, 1.0), 0.5)
    if shape_factor is None:  # today's sum, in today's order (the same floats)
        return (ramp * (w_r * t_r**2 + (1.0 - w_r) * tau0**2)
                + _times(r, k_r, reach, "shape", "kappa_pop") ** 2
                + _times(a, kappa, reach, "scale", "kappa_pop") ** 2)
    shp = ramp * w_r * t_r**2 + _times(r, k_r, reach, "shape", "kappa_pop") ** 2
    scl = ramp * (1.0 - w_r) * tau0**2 + _times(a, kappa, reach, "scale", "kappa_pop") ** 2
    return scl + shape_factor * shp


def levels(values: np.ndarray, rel_tol: float = 0.02) -> np.ndarray:
    """Distinct levels of ``values`` (sorted), merging values within ``rel_tol`` of each other.

    Digitised ladders (e.g. Epoch's Chinchilla extraction) give one model size as several floats
    differing in the 7th digit; backtests hold out *sizes*, not floats. Returns, per value, the
    index of its level (0 = smallest).
    """
    v = np.asarray(values, dtype=float)
    order = np.argsort(v)
    lv = np.log(v[order])
    new = np.concatenate([[True], np.diff(lv) > np.log1p(rel_tol)])
    idx_sorted = np.cumsum(new) - 1
    out = np.empty(v.size, dtype=int)
    out[order] = idx_sorted
    return out


#: Width of a compute-budget bin (decades): isoFLOP ladders plan budgets on a log grid of
#: 2-4 per decade (Hoffmann et al. 2022: 6e18 ... 3e21; Porian et al. 2024: factors of 2).
BUDGET_BIN_DECADES = 0.25


def budget_levels(flops: np.ndarray, width: float = BUDGET_BIN_DECADES) -> np.ndarray:
    """Compute-budget level per run (0 = smallest), on log bins anchored at the largest budget.

    Runs within ``width`` decades below the largest compute form the top level, the next
    ``width`` decades the next one, and so on; empty bins are skipped, so ``levels`` are ranks of
    the budgets present. An isoFLOP ladder planned at 2-4 budgets per decade gets one level per
    budget; a grid ladder (every size at every token count) gets quarter-decade bands of compute.
    """
    lc = np.log10(np.asarray(flops, dtype=float))
    bins = np.floor((lc.max() - lc) / width + 1e-9).astype(int)
    present = np.unique(bins)
    rank_from_top = np.searchsorted(present, bins)
    return (len(present) - 1) - rank_from_top
