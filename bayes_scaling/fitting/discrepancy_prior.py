r"""A cross-ladder prior on the extrapolation discrepancy ``(tau0, kappa)``.

One ladder sees extrapolations of a few tenths of a decade; users ask about one to three. So
how the law's log error grows with the extrapolation distance is learned across ladders:
every public ladder's rolling-origin errors (:func:`bayes_scaling.fitting.calibrate.inner_backtest`
on the whole ladder) give a grid log likelihood of that ladder's ``(tau0, kappa)``, and the
ladders are pooled hierarchically,

.. math:: \log\tau_{0,l} \sim \mathcal{N}(\mu_\tau, s_\tau^2), \quad
          \log\kappa_l \sim \mathcal{N}(\mu_\kappa, s_\kappa^2),

with :math:`(\mu, s)` set by maximising the marginal likelihood over the ladders (empirical Bayes,
a half-normal(1) hyperprior on each :math:`s`). A new ladder's prior is the population
distribution; the ladder's own rolling-origin evidence then updates it
(:func:`bayes_scaling.fitting.calibrate.discrepancy_posterior`). The errors of one refit share a
sign (a *systematic* per-refit term), so a ladder's evidence counts as one observation per refit
(``temper``): its many held-out runs do not swamp the prior.

Per kind of extrapolation (:func:`bayes_scaling.data.support.discrepancy_var`), the scale part
and the shape part each get such a population prior (``log_tau0_shape_mu`` ... for the shape
part; the plain fields are the scale part's), learned from the matching rolling-origin refits:
top budgets held out for the scale part, top sizes for the shape part
(:func:`bayes_scaling.fitting.calibrate.fit_population_parts`).

The learned prior is shipped as ``data/discrepancy_prior/prior.json`` with its provenance;
``benchmarks/bench_discrepancy_prior.py`` rebuilds it and validates it leave-one-ladder-out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special

from bayes_scaling.errors import BayesScalingError
from bayes_scaling.files import shipped

#: The shipped prior, relative to the shipped data folder (:func:`bayes_scaling.files.shipped`).
SHIPPED_PRIOR = Path("discrepancy_prior") / "prior.json"
#: Hyperprior scale of the population sds (on log tau0 and log kappa).
HYPER_SD = 1.0


@dataclass(frozen=True)
class DiscrepancyPrior:
    """Log-normal population prior on ``tau0`` and ``kappa`` (independent)."""

    log_tau0_mu: float
    log_tau0_sd: float
    log_kappa_mu: float
    log_kappa_sd: float
    temper: bool = True
    distance: str = "hull_compute"
    source: str = "cross-ladder"
    #: Fraction of the discrepancy variance shared by the errors of one rolling-origin refit
    #: (:func:`bayes_scaling.fitting.calibrate.discrepancy_loglik`); 0: independent errors.
    shared: float = 0.0
    #: The shape part's population (per-kind discrepancy); ``None``: one ``(tau0, kappa)``.
    log_tau0_shape_mu: float | None = None
    log_tau0_shape_sd: float | None = None
    log_kappa_shape_mu: float | None = None
    log_kappa_shape_sd: float | None = None
    #: The population of the signed drift per part (log loss per decade; mean and sd across
    #: ladders, :mod:`bayes_scaling.fitting.drift`); ``None``: a zero-mean discrepancy.
    drift_scale_mu: float | None = None
    drift_scale_sd: float | None = None
    drift_shape_mu: float | None = None
    drift_shape_sd: float | None = None
    #: Degrees of freedom of a variance-matched Student-t discrepancy, learned across ladders
    #: (:mod:`bayes_scaling.fitting.tails`); ``None``: a Normal discrepancy.
    nu: float | None = None
    #: ``nu``'s t pinned at the Normal's 5% and 95% quantiles (``False``: variance-matched).
    nu_pinned: bool = False
    #: The part of the discrepancy that is a Student-t: ``"all"``, or ``"shape"`` (the hull part
    #: only, the scale part Normal; candidate P of ``CRITERIA_s13_i15.md``).
    nu_part: str = "all"

    @property
    def has_drift(self) -> bool:
        """Whether the prior carries a drift population (shifts a per-kind band's median)."""
        return None not in (self.drift_scale_mu, self.drift_scale_sd, self.drift_shape_mu,
                            self.drift_shape_sd)

    def drift_population(self, part: str) -> tuple[float, float]:
        """``(mean, sd)`` of the drift population of ``part`` (``"scale"`` or ``"shape"``)."""
        if not self.has_drift or part not in ("scale", "shape"):
            raise BayesScalingError(f"this prior has no drift population for {part!r}")
        return (float(getattr(self, f"drift_{part}_mu")), float(getattr(self, f"drift_{part}_sd")))

    def with_drift(self, pops: Mapping[str, tuple[float, float]] | None) -> DiscrepancyPrior:
        """This prior with the drift populations ``{part: (mean, sd)}`` (``None``: none)."""
        if pops is None:
            return replace(self, drift_scale_mu=None, drift_scale_sd=None, drift_shape_mu=None,
                           drift_shape_sd=None)
        return replace(self, drift_scale_mu=pops["scale"][0], drift_scale_sd=pops["scale"][1],
                       drift_shape_mu=pops["shape"][0], drift_shape_sd=pops["shape"][1])

    @property
    def per_kind(self) -> bool:
        """Whether the scale and shape parts of the distance have priors of their own."""
        return self.log_tau0_shape_mu is not None

    def part(self, name: str) -> DiscrepancyPrior:
        """The prior of one part, ``"scale"`` (the plain fields) or ``"shape"``."""
        if name == "scale" or not self.per_kind:
            return self
        if name != "shape":
            raise BayesScalingError(f"no discrepancy part {name!r} (scale or shape)")
        return replace(self, log_tau0_mu=self.log_tau0_shape_mu, log_tau0_sd=self.log_tau0_shape_sd,
                       log_kappa_mu=self.log_kappa_shape_mu, log_kappa_sd=self.log_kappa_shape_sd)

    def with_shape(self, shape: DiscrepancyPrior) -> DiscrepancyPrior:
        """This prior (the scale part's) with ``shape``'s population as the shape part's."""
        return replace(self, log_tau0_shape_mu=shape.log_tau0_mu,
                       log_tau0_shape_sd=shape.log_tau0_sd, log_kappa_shape_mu=shape.log_kappa_mu,
                       log_kappa_shape_sd=shape.log_kappa_sd)

    def log_density(self, tau0_grid: np.ndarray, kappa_grid: np.ndarray) -> np.ndarray:
        """Log prior mass of each grid cell, shape ``(tau0, kappa)``, normalised to sum 1."""
        return _grid_logp(tau0_grid, kappa_grid, self.log_tau0_mu, self.log_tau0_sd,
                          self.log_kappa_mu, self.log_kappa_sd)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DiscrepancyPrior:
        """Inverse of :meth:`to_dict` (unknown keys, e.g. provenance, are ignored)."""
        keys = cls.__dataclass_fields__
        return cls(**{k: raw[k] for k in keys if k in raw})


def _lognormal_logpdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return -np.log(x * sd) - 0.5 * ((np.log(x) - mu) / sd) ** 2


def _grid_logp(tg: np.ndarray, kg: np.ndarray, mt: float, st: float, mk: float,
               sk: float) -> np.ndarray:
    # cell masses ~ density at the cell's value; the cell at 0 is valued at half a cell
    t = np.maximum(tg, (tg[1] - tg[0]) / 2)
    k = np.maximum(kg, (kg[1] - kg[0]) / 2)
    lp = _lognormal_logpdf(t, mt, st)[:, None] + _lognormal_logpdf(k, mk, sk)[None, :]
    return lp - special.logsumexp(lp)


def fit_population(logliks: Sequence[np.ndarray], tau0_grid: np.ndarray,
                   kappa_grid: np.ndarray, *, weights: Sequence[float] | None = None,
                   temper: bool = True,
                   distance: str = "hull_compute",
                   source: str = "cross-ladder", shared: float = 0.0) -> DiscrepancyPrior:
    """The population prior that maximises the ladders' marginal likelihood.

    Parameters
    ----------
    logliks : sequence of ndarray
        One grid log likelihood per ladder, shape ``(tau0, kappa)`` (already tempered if the
        prior will be used tempered).
    tau0_grid, kappa_grid : ndarray
        The grids.
    weights : sequence of float, optional
        Weight of each ladder's marginal log likelihood (e.g. 1 / ladders of its source, so a
        paper with ten ladders counts as much as a paper with one). Default 1 each.
    temper, distance, source, shared : optional
        Recorded in the prior: how a ladder's own evidence is weighed, which distance and which
        shared fraction the likelihoods used, and a label.

    Returns
    -------
    DiscrepancyPrior
    """
    if not logliks:
        raise BayesScalingError("fit_population needs at least one ladder")
    # every other grid point: the population's log-normals are smooth on the grid's scale
    ll = np.stack(logliks)[:, ::2, ::2]
    tau0_grid, kappa_grid = tau0_grid[::2], kappa_grid[::2]
    wts = np.ones(len(ll)) if weights is None else np.asarray(weights, dtype=float)

    def neg(theta: np.ndarray) -> float:
        mt, lst, mk, lsk = theta
        st, sk = np.exp(lst), np.exp(lsk)
        lp = _grid_logp(tau0_grid, kappa_grid, mt, st, mk, sk)
        marg = special.logsumexp(ll + lp[None], axis=(1, 2))
        hyper = -0.5 * (st / HYPER_SD) ** 2 - 0.5 * (sk / HYPER_SD) ** 2 + lst + lsk
        return -float(np.sum(wts * marg) + hyper)

    start = np.array([np.log(0.01), np.log(0.5), np.log(0.03), np.log(0.5)])
    best = optimize.minimize(neg, start, method="Nelder-Mead",
                             options={"xatol": 1e-3, "fatol": 1e-4, "maxiter": 2000})
    mt, lst, mk, lsk = best.x
    return DiscrepancyPrior(float(mt), float(np.exp(lst)), float(mk), float(np.exp(lsk)),
                            temper=temper, distance=distance, source=source, shared=shared)


@cache
def _read(path: str) -> DiscrepancyPrior:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BayesScalingError(f"{path}: cannot read the discrepancy prior ({exc})") from None
    try:
        return DiscrepancyPrior.from_dict(raw)
    except TypeError as exc:
        raise BayesScalingError(f"{path}: malformed discrepancy prior ({exc})") from None


def load_prior(path: str | Path | None = None) -> DiscrepancyPrior:
    """The cross-ladder prior shipped with the package (or the one at ``path``).

    Parameters
    ----------
    path : path, optional
        A JSON file written by ``benchmarks/bench_discrepancy_prior.py``.

    Returns
    -------
    DiscrepancyPrior
    """
    return _read(str(path or shipped("data") / SHIPPED_PRIOR))


def prior_provenance(path: str | Path | None = None) -> dict[str, Any]:
    """Where the shipped prior came from, for reports: sources, ladders and its validation.

    Parameters
    ----------
    path : path, optional
        A prior file (default: the shipped one).

    Returns
    -------
    dict
        ``source``, ``n_ladders``, ``n_errors`` (rolling-origin errors it was learned from),
        ``built_by``, ``distance``, ``tau0_median``, ``kappa_median`` (the scale part's, for a
        per-kind prior, whose ``tau0_shape_median`` and ``kappa_shape_median`` are the shape
        part's; ``None`` otherwise), ``drift`` (``{part: {"mean", "sd"}}`` of the drift
        population per decade, or ``None``) and ``validation`` (the
        leave-one-ladder-out figures the benchmark recorded, or ``None``).
    """
    p = Path(path or shipped("data") / SHIPPED_PRIOR)
    _read(str(p))  # one-line error on a bad file
    raw = json.loads(p.read_text())
    ladders = raw.get("ladders") or {}
    return {"source": raw.get("source", "cross-ladder"), "n_ladders": len(ladders),
            "n_errors": int(sum(v.get("errors", 0) for v in ladders.values())),
            "built_by": raw.get("built_by"), "distance": raw.get("distance"),
            "tau0_median": raw.get("tau0_median"), "kappa_median": raw.get("kappa_median"),
            "tau0_shape_median": raw.get("tau0_shape_median"),
            "kappa_shape_median": raw.get("kappa_shape_median"),
            "drift": ({p: {"mean": raw[f"drift_{p}_mu"], "sd": raw[f"drift_{p}_sd"]}
                       for p in ("scale", "shape")}
                      if raw.get("drift_scale_mu") is not None else None),
            "validation": raw.get("validation")}
