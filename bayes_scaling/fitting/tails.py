r"""The shape of the extrapolation discrepancy: Normal, or a variance-matched Student-t.

The discrepancy of :mod:`bayes_scaling.fitting.calibrate` is Normal with a variance ``D`` that
grows with the extrapolation distance. Across the public ladders the standardized
rolling-origin errors are heavier-tailed than Normal (``benchmarks/CRITERIA_s13_i15.md``): a
Normal band right at 90% is then too wide at 50%. Here the discrepancy keeps its mean (the
drift) and its variance and becomes a Student-t with ``nu`` degrees of freedom, as a scale
mixture of normals:

.. math:: \delta = \mu + \sqrt{\lambda D}\, z, \quad z \sim \mathcal{N}(0, 1), \quad
          \lambda = (\nu - 2) / W, \quad W \sim \chi^2_\nu,

so :math:`E\lambda = 1` and the variance stays ``D`` (the Normal grid likelihood of
``(tau0, kappa)`` estimates a variance, which a Gaussian quasi-likelihood does consistently
whatever the shape). ``nu`` is learned across ladders from the same rolling-origin errors as
the cross-ladder prior (:func:`fit_nu`, grid :data:`NU_GRID`, ``inf`` = Normal) and shipped in
its file (``nu``); :func:`tail_draws` stores it in a fit's posterior as ``nu_discrepancy``,
which the predictive queries read (:func:`mixing_draws`: one ``lambda`` per posterior draw,
shared by its points, so each point's marginal is exact, as for the Student-t run noise).
It is an option of ``attach_discrepancy`` (``tails=True``), off by default.

The *pinned* shape (candidate Q of ``CRITERIA_s13_i15.md``) scales the t instead so that its 95%
quantile is the Normal's: :math:`\lambda = c_\nu^2 \nu / W`,
:math:`c_\nu = \Phi^{-1}(0.95) / t_\nu^{-1}(0.95)`. The discrepancy's 5% and 95% quantiles are
then exactly the Normal's (its 90% band unchanged) while its 50% band narrows and its tails
grow; ``nu`` needs no finite variance (:data:`PIN_GRID` goes below 2). A fit so made carries
``lambda_scale_discrepancy`` (:data:`SCALE_VAR`), the numerator of ``lambda``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bayes_scaling.data.support import discrepancy_mean, discrepancy_var
from bayes_scaling.errors import BayesScalingError

#: Degrees of freedom ``fit_nu`` chooses from (``inf``: the Normal discrepancy).
NU_GRID = (2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0, np.inf)
#: The pinned shape's grid (``fit_nu(..., pinned=True)``), wider below so an edge shows.
PIN_GRID = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
            30.0, 50.0, 100.0, np.inf)
#: The central probability whose band the pinned shape keeps (its upper quantile ``PIN_Q``).
PIN_Q = 0.95
#: Quadrature nodes of ``W`` that integrate the mixture in :func:`tail_loglik`.
N_NODES = 400
#: The posterior variable holding ``nu`` (absent: a Normal discrepancy).
NU_VAR = "nu_discrepancy"
#: The posterior variable holding ``lambda``'s numerator (absent: ``nu - 2``, variance-matched).
SCALE_VAR = "lambda_scale_discrepancy"
#: The posterior variable marking a t on the shape (hull) part only (absent: on all of it).
PART_VAR = "lambda_shape_only_discrepancy"
#: The parts a Student-t discrepancy may apply to (``DiscrepancyPrior.nu_part``).
PARTS = ("all", "shape")
TAIL_UNITS = {NU_VAR: "degrees of freedom of the discrepancy (Student-t)",
              PART_VAR: "1: lambda multiplies the shape (hull) part of the variance only",
              SCALE_VAR: "lambda = this / chi2(nu): nu - 2 variance-matched, "
                         "c^2 nu pinned at the Normal's 5% and 95% quantiles"}


@dataclass(frozen=True)
class TailTerms:
    """One ladder's rolling-origin errors as the shape's likelihood reads them."""

    resid: np.ndarray  # log error minus the drift's mean
    base_var: np.ndarray  # run noise + the refit's own variance
    disc_var: np.ndarray  # the discrepancy variance D at each error (posterior mean)
    shape_var: np.ndarray | None = None  # D's shape part, if only it is a t (else all of D)


def _check_nu(nu: float, pinned: bool = False) -> float:
    nu = float(nu)
    if not nu > (0.0 if pinned else 2.0):
        raise BayesScalingError("the discrepancy's degrees of freedom must exceed "
                                f"{0 if pinned else 2}, got {nu:g}")
    return nu


def lambda_scale(nu: float, pinned: bool = False) -> float:
    """``lambda``'s numerator: ``nu - 2`` (variance-matched) or ``c_nu^2 nu`` (pinned)."""
    nu = _check_nu(nu, pinned)
    if not pinned:
        return nu - 2.0
    from scipy import stats  # lazy: as in mixing_nodes

    return float((stats.norm.ppf(PIN_Q) / stats.t.ppf(PIN_Q, nu)) ** 2 * nu)


def mixing_nodes(nu: float, n: int = N_NODES, pinned: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature of the mixture: ``(lambda, weights)`` over ``W ~ chi2(nu)``.

    ``n`` log-spaced nodes of ``W`` between its ``1e-10`` and ``1 - 1e-10`` quantiles, weighted
    by its density (``pdf(W) W d log W``, normalised), with ``lambda = (nu - 2) / W`` rescaled so
    that its weighted mean is exactly 1: equal-probability quantiles miss the heavy upper tail
    of ``lambda`` near ``nu = 2`` (at ``nu = 3`` their mean is 0.85) and so shrink the variance.
    Normal (``inf``): one node at 1. ``pinned``: ``lambda = c_nu^2 nu / W``, not rescaled
    (its mean is infinite for ``nu <= 2``; the weights integrate the quantiles).
    """
    if np.isinf(nu):
        return np.ones(1), np.ones(1)
    from scipy import stats  # lazy: scipy is heavy and predict imports this module (mixing_draws)

    nu = _check_nu(nu, pinned)
    w = np.geomspace(stats.chi2.ppf(1e-10, nu), stats.chi2.ppf(1 - 1e-10, nu), n)
    wt = stats.chi2.pdf(w, nu) * w
    wt = wt / wt.sum()
    if pinned:
        return lambda_scale(nu, True) / w, wt
    lam = (nu - 2.0) / w
    return lam / (wt @ lam), wt


def tail_loglik(terms: TailTerms, nu: float, pinned: bool = False) -> float:
    """Log likelihood of the errors: ``N(0, base + lambda D)`` mixed over ``lambda``."""
    from scipy import special  # lazy: as in mixing_nodes

    lam, wt = mixing_nodes(nu, pinned=pinned)
    if terms.shape_var is None:
        var = terms.base_var[:, None] + lam[None, :] * terms.disc_var[:, None]
    else:  # the scale part Normal, the shape part the mixture
        var = ((terms.base_var + terms.disc_var - terms.shape_var)[:, None]
               + lam[None, :] * terms.shape_var[:, None])
    ll = -0.5 * (np.log(2 * np.pi * var) + terms.resid[:, None] ** 2 / var)
    return float(np.sum(special.logsumexp(ll, axis=1, b=wt[None, :])))


def fit_nu(terms: Sequence[TailTerms], weights: Sequence[float] | None = None,
           grid: Sequence[float] | None = None, pinned: bool = False) -> float:
    """The ``nu`` of ``grid`` (default :data:`NU_GRID`, pinned :data:`PIN_GRID`) that maximises
    the ladders' weighted log likelihood under the variance-matched or ``pinned`` scaling."""
    grid = (PIN_GRID if pinned else NU_GRID) if grid is None else grid
    if not terms:
        raise BayesScalingError("fit_nu needs at least one ladder")
    wts = np.ones(len(terms)) if weights is None else np.asarray(weights, dtype=float)
    score = [sum(w * tail_loglik(t, nu, pinned) for w, t in zip(wts, terms, strict=True))
             for nu in grid]
    return float(grid[int(np.argmax(score))])


def tail_terms(resid: np.ndarray, base_var: np.ndarray, far: Mapping[str, np.ndarray],
               grids: tuple[np.ndarray, np.ndarray], parts: Mapping[str, np.ndarray],
               drift: tuple[float, float] = (0.0, 0.0), part: str = "all") -> TailTerms:
    """A ladder's :class:`TailTerms` from its per-kind grid posteriors.

    ``far``: the ``scale`` and ``shape`` parts of each error's distance; ``grids``: the
    ``(tau0, kappa)`` grids; ``parts``: ``{"scale": weights, "shape": weights}``
    (:func:`~bayes_scaling.fitting.calibrate.discrepancy_posterior_parts`); ``drift``: the
    ladder's drift per part (subtracted); ``part``: ``"shape"`` also keeps ``D``'s shape part
    (:attr:`TailTerms.shape_var`). ``D`` is the posterior mean of the variance, which is
    linear in ``tau0^2`` and ``kappa^2``.
    """
    tg, kg = grids
    m2 = {p: (np.sqrt(tg**2 @ w.sum(axis=1)), np.sqrt(kg**2 @ w.sum(axis=0)))
          for p, w in parts.items()}
    pts = {k: np.asarray(far[k], dtype=float) for k in ("scale", "shape")}
    dvar = discrepancy_var(pts, *m2["scale"], *m2["shape"])
    mu = discrepancy_mean(pts, *drift)
    shp = (None if _check_part(part) == "all"
           else dvar - discrepancy_var(pts, *m2["scale"], *m2["shape"], shape_factor=0.0))
    return TailTerms(np.asarray(resid, float) - mu,
                     np.broadcast_to(np.asarray(base_var, float), dvar.shape), dvar, shp)


def _check_part(part: str) -> str:
    if part not in PARTS:
        raise BayesScalingError(f"a Student-t discrepancy applies to one of {', '.join(PARTS)}, "
                                f"got {part!r}")
    return part


def tail_draws(nu: float | None, shape: tuple[int, int],
               pinned: bool = False, part: str = "all") -> dict[str, np.ndarray]:
    """The posterior variables of a fit whose discrepancy has ``nu`` (none for a Normal one;
    ``pinned``: also ``lambda``'s numerator, :data:`SCALE_VAR`; ``part="shape"``: the t on the
    hull part only, :data:`PART_VAR`)."""
    if nu is None or np.isinf(nu):
        return {}
    out = {NU_VAR: np.full(shape, _check_nu(nu, pinned))}
    if pinned:
        out[SCALE_VAR] = np.full(shape, lambda_scale(nu, True))
    if _check_part(part) == "shape":
        out[PART_VAR] = np.ones(shape)
    return out


def prior_tail_draws(prior, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """:func:`tail_draws` of a cross-ladder prior's ``nu`` and ``nu_pinned`` (``None``: none).

    ``meta["calibration"]`` then records ``nu_discrepancy_mean`` and, pinned,
    ``lambda_scale_discrepancy_mean``.
    """
    if prior is None:
        return {}
    return tail_draws(prior.nu, shape, prior.nu_pinned, prior.nu_part)


def mixing_draws(nu: np.ndarray | None, rng: np.random.Generator,
                 scale: np.ndarray | None = None) -> np.ndarray | float:
    """Per posterior draw, ``lambda`` (shape ``(S, 1)``); 1.0 for a Normal discrepancy.

    ``nu``: the flat ``nu_discrepancy`` draws, or ``None``; ``scale``: the flat
    ``lambda_scale_discrepancy`` draws (``None``: ``nu - 2``, variance-matched). Draws nothing
    from ``rng`` for a Normal discrepancy, so a fit without the variable gets today's random
    numbers.
    """
    if nu is None:
        return 1.0
    nu = np.asarray(nu, dtype=float)[:, None]
    num = nu - 2.0 if scale is None else np.asarray(scale, dtype=float)[:, None]
    return num / rng.chisquare(nu)
