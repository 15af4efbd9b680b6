"""Small fits behind the anchored contrast's calibration (:mod:`bayes_scaling.query.anchor`):
non-negative least squares on a few columns, and random-effects pooling of estimates made per
refit origin or per pair of groups (DerSimonian & Laird 1986, Controlled Clinical Trials 7:177).
Numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np


def between_variance(est: np.ndarray, se2: np.ndarray) -> tuple[float, float, float]:
    """DerSimonian-Laird: ``tau²`` between the estimates ``est`` (sampling variances ``se2``),
    and the random-effects mean and its variance."""
    fe = 1.0 / se2
    q = float(np.sum(fe * (est - np.sum(fe * est) / np.sum(fe)) ** 2))
    tau2 = max(0.0, (q - (est.size - 1)) / (np.sum(fe) - np.sum(fe**2) / np.sum(fe)))
    re = 1.0 / (se2 + tau2)
    return tau2, float(np.sum(re * est) / np.sum(re)), float(1.0 / np.sum(re))


def latest_origin(xx: np.ndarray, xy: np.ndarray, v: np.ndarray, origin: np.ndarray,
                  cluster: np.ndarray, w: float, w_sd: float) -> tuple[float, float]:
    """Weight and sd at the latest origin: its own estimate shrunk to the origins' mean.

    Per origin a weighted estimate; ``tau²`` by DerSimonian-Laird; the latest origin's shrunk
    to the random-effects mean by ``tau² / (tau² + se²)`` (fewer than two origins: unchanged).
    """
    est, se2 = [], []
    for o in np.unique(origin):  # ascending: the latest origin last
        m = origin == o
        info = float(np.sum(xx[m] / v[m]))
        if info <= 0:
            return w, w_sd  # an origin that says nothing: keep the pooled weight
        est.append(float(np.sum(xy[m] / v[m])) / info)
        se2.append(float(m.sum()) / len(np.unique(cluster[m])) / info)
    if len(est) < 2:
        return w, w_sd
    e, s2 = np.array(est), np.array(se2)
    tau2, mean, mean_var = between_variance(e, s2)
    k = tau2 / (tau2 + s2[-1])
    var = k * s2[-1] + (1.0 - k) ** 2 * mean_var
    return mean + k * (e[-1] - mean), float(np.sqrt(var))


def pair_spreads(d: np.ndarray, e2: np.ndarray, v: np.ndarray, t2: float, pair: np.ndarray,
                 cluster: np.ndarray) -> dict[str, float]:
    """Each pair's variance term ``t²`` of column ``d`` (``Var e = v``, of which ``t² d`` is the
    pooled term), shrunk towards the pooled ``t2``.

    Per pair, one Fisher-scoring step of the Gaussian likelihood of its squared errors ``e2``
    from ``t2`` (the other terms held): ``t2 + score / info``, ``info = sum d² / (2 v²)``, its
    variance ``1 / info`` times the pair's comparisons per cluster (they share a refit).
    ``tau²`` between pairs by DerSimonian-Laird; each pair's ``t2 + tau² / (tau² + se²)``
    (own − ``t2``), at least 0. Fewer than two informative pairs: every pair gets ``t2``.
    """
    keys, est, se2 = [], [], []
    for p in np.unique(pair):
        m = pair == p
        info = 0.5 * float(np.sum(d[m] ** 2 / v[m] ** 2))
        if info <= 1e-12:
            continue
        keys.append(str(p))
        est.append(t2 + 0.5 * float(np.sum(d[m] * (e2[m] - v[m]) / v[m] ** 2)) / info)
        se2.append(float(m.sum()) / len(np.unique(cluster[m])) / info)
    out = {str(p): t2 for p in np.unique(pair)}
    if len(est) < 2:
        return out
    e, s2 = np.array(est), np.array(se2)
    tau2 = between_variance(e, s2)[0]
    for key, own, s in zip(keys, e, s2, strict=True):
        out[key] = max(t2 + tau2 / (tau2 + s) * (own - t2), 0.0)
    return out


def nonneg_lstsq(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares of ``target`` on a few columns, every coefficient >= 0 (every subset of
    columns tried: the best fit whose coefficients are all non-negative wins)."""
    k = design.shape[1]
    best, best_sse = np.zeros(k), float(np.sum(target**2))
    for mask in itertools.product((False, True), repeat=k):
        cols = np.flatnonzero(mask)
        if not cols.size:
            continue
        coef, *_ = np.linalg.lstsq(design[:, cols], target, rcond=None)
        if np.any(coef < 0):
            continue
        full = np.zeros(k)
        full[cols] = coef
        sse = float(np.sum((design @ full - target) ** 2))
        if sse < best_sse:
            best, best_sse = full, sse
    return best


def drift_column(h: np.ndarray, origin_x: np.ndarray, top_x: float, kappa: float,
                  ) -> np.ndarray:
    """Drift accumulated from ``origin_x`` over the next ``h`` decades, per unit of the drift
    rate at ``top_x``: the integral of ``10^(kappa (top_x - x))`` from ``origin_x`` to
    ``origin_x + h``."""
    if kappa == 0.0:
        return np.asarray(h, float)
    return (10.0 ** (kappa * (top_x - origin_x)) * (1.0 - 10.0 ** (-kappa * np.asarray(h)))
            / (kappa * np.log(10.0)))


def fit_terms(x: np.ndarray, y: np.ndarray, design: np.ndarray, u: np.ndarray,
              weight: float | None, iters: int, ml: bool, prior: tuple[float, float],
              ) -> tuple[float, float, np.ndarray]:
    """Alternate ``w``'s weighted posterior (``prior``: its mean and sd) and the NNLS fit of the
    variance terms (``ml``: each squared error weighted by ``1/v²`` under the last fit; at the
    fixed point the Gaussian likelihood's score ``sum_i d_ij (e_i² - v_i) / v_i²`` is 0 for
    every free term). ``weight``: ``w`` fixed there (sd 0). Returns ``w``, its sd, the terms."""
    m0, sd0 = prior
    var = np.full(design.shape[1], 0.0)
    var[0] = float(np.var(y - x)) + 1e-12
    w, w_sd = (m0, sd0) if weight is None else (float(weight), 0.0)
    for _ in range(iters):
        v = np.maximum(design @ var, 1e-12)
        if weight is None:
            prec = max(float(np.sum((x * x - u) / v)), 0.0) + 1.0 / sd0**2
            w = (float(np.sum(x * y / v)) + m0 / sd0**2) / prec
            w_sd = prec ** -0.5
        r = v if ml else np.ones_like(v)  # rows over v: weights 1/v² on the squares
        var = nonneg_lstsq(design / r[:, None], (y - w * x) ** 2 / r)
        var[0] = max(var[0], 1e-10)
    return w, w_sd, var


def origin_profile(fit: Callable[[np.ndarray], tuple[float, float, np.ndarray]], x: np.ndarray,
                   y: np.ndarray, design: np.ndarray, below: np.ndarray, grid: np.ndarray,
                   prior_sd: float, mixture: bool = False,
                   ) -> tuple[float, tuple[float, float, np.ndarray], np.ndarray, float, float]:
    """``beta`` that maximises the Gaussian likelihood of ``y - w x`` (variance ``design @ var``
    with every row times ``10^(beta below)``) plus a ``N(0, prior_sd)`` log prior, over ``grid``;
    ``fit(design)`` returns ``(w, w_sd, var)`` for a design. A tie keeps the ``beta`` nearest 0
    (one origin: 0). Returns ``beta``, its fit, its scaled design, the maximum and ``beta``'s sd.

    ``mixture``: ``beta`` integrated instead: weights ``exp(score)`` over the grid, the terms
    their weighted average (the mixture's variance, the variance being linear in them), ``w``
    and its variance the mixture's moments; ``beta`` the weights' mean, its sd theirs. Fewer
    than two origins (``below`` one value): ``beta`` is not identified, 0 (the reference)."""
    grid = np.array(sorted(np.asarray(grid, float), key=abs))  # 0 first
    if mixture and np.ptp(below) < 1e-9:
        return 0.0, fit(design), design, 0.0, 0.0
    scores, fits, designs = [], [], []
    for b in grid:
        des = design * (10.0 ** (b * below))[:, None]
        fitted = fit(des)
        v = np.maximum(des @ fitted[2], 1e-12)
        scores.append(-0.5 * float(np.sum(np.log(v) + (y - fitted[0] * x) ** 2 / v))
                      - 0.5 * (b / prior_sd) ** 2)
        fits.append(fitted)
        designs.append(des)
    sc = np.array(scores)
    i = 0
    for j in range(1, sc.size):  # a later beta only if better by more than 1e-9
        i = j if sc[j] > sc[i] + 1e-9 else i
    if not mixture:
        return float(grid[i]), fits[i], designs[i], float(grid[i]), 0.0
    p = np.exp(sc - sc.max())
    p /= p.sum()
    w = np.array([f[0] for f in fits])
    w_mean = float(p @ w)
    w_var = float(p @ (np.array([f[1] for f in fits]) ** 2 + (w - w_mean) ** 2))
    var = p @ np.array([f[2] for f in fits])
    mean = float(p @ grid)
    return (mean, (w_mean, float(np.sqrt(w_var)), var), designs[i], float(grid[i]),
            float(np.sqrt(p @ (grid - mean) ** 2)))
