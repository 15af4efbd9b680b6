r"""Learn how wrong the law gets when it extrapolates, from the ladder itself.

The noise a law learns inside its ladder is far smaller than the error it makes past it
(DESIGN.md: on Chinchilla's runs a Huber fit and a plain Student-t posterior cover 0 of 6
held-out large runs with their 90% bands). So the predictive band carries a *model discrepancy*
whose scale grows with the distance of extrapolation:

.. math:: \log L_{run} = \log L_{law}(N, D) + \varepsilon + \delta, \quad
          \delta \sim \mathcal{N}(0,\ \tau_0^2\,\mathrm{ramp}(\Delta) + (\kappa\,\Delta)^2)

with :math:`\Delta` the decades from the runs' support (outside their hull in (log10 N, log10 D)
and past the largest budget), :math:`\varepsilon` the run noise, and ``ramp`` rising from 0 on
the support to 1 at 0.05 decades: an unseen size or budget carries an error of its own
(:math:`\tau_0`) on top of the growth with distance (:math:`\kappa` per decade).

The distance splits into two *kinds* (:func:`bayes_scaling.data.support.decades_outside`):
``scale``, N and D scaled up past the support (a larger budget), and ``shape``, a
tokens-per-parameter ratio no run had (a size hold-out). Per kind
(:func:`bayes_scaling.data.support.discrepancy_var`) each part has its own pair from the
matching refits (:func:`discrepancy_posterior_parts`), stored as ``tau0``/``kappa`` (scale) and
``tau0_shape``/``kappa_shape``. Its shape: :mod:`bayes_scaling.fitting.tails`.

:math:`(\tau_0, \kappa)` are learned by rolling-origin backtests *inside* the training runs:
hold out the largest 1, 2, 3 model sizes (and, separately, the largest compute budgets), refit
the law by the fast Huber point fit (with a small bootstrap) on the rest, and record each
held-out run's log error and distance. Their posterior is computed exactly on a 2-D grid under
a prior (the cross-ladder prior of :mod:`bayes_scaling.fitting.discrepancy_prior`,
learned from every public ladder's rolling-origin errors, or half-normal priors), from

.. math:: r_i \sim \mathcal{N}(0,\ s^2 + v_i + \tau_0^2\,\mathrm{ramp}(\Delta_i)
          + \kappa^2 \Delta_i^2)

with :math:`s` the in-sample residual scale and :math:`v_i` the variance of the refit's
prediction over bootstrap resamples (the refit's own parameter uncertainty, which the posterior's
law band already carries, so the discrepancy does not count it twice). A refit's errors share
a sign: the prior may temper the own likelihood to one observation per refit (``temper``) or
make a fraction ``shared`` of the variance common to a refit (:func:`discrepancy_loglik`).
Draws of :math:`(\tau_0, \kappa)` are stored in the posterior for every predictive query.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr

from bayes_scaling.constants import CHAIN, DRAW
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import (
    DISCREPANCY_RAMP_DECADES,
    DISTANCE,
    DISTANCE_KINDS,
    Box,
    Reach,
    budget_levels,
    decades_outside,
    discrepancy_var,
    levels,
)
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.baseline import huber_bootstrap, huber_fit
from bayes_scaling.fitting.discrepancy_prior import (
    DiscrepancyPrior,
    fit_population,
    load_prior,
)
from bayes_scaling.fitting.drift import OWN_DRIFT, ladder_drift, reach_distance
from bayes_scaling.fitting.result import ScalingFit, with_posterior
from bayes_scaling.fitting.tails import TAIL_UNITS, prior_tail_draws
from bayes_scaling.laws.final_loss import LAWS

#: Prior scale of kappa: discrepancy sd on log loss per decade of extrapolation.
KAPPA_PRIOR_SIGMA = 0.05
KAPPA_GRID = np.linspace(0.0, 0.3, 301)
#: Prior scale of tau0: the jump in error for any run outside the ladder (sd of log loss).
TAU0_PRIOR_SIGMA = 0.02
TAU0_GRID = np.linspace(0.0, 0.1, 201)
RAMP_DECADES = DISCREPANCY_RAMP_DECADES
#: Rolling origins: hold out the top k sizes (and top k compute budgets) for each k.
HOLDOUT_STEPS = (1, 2, 3)
#: Bootstrap refits per rolling origin: their spread is the refit's own parameter uncertainty,
#: which the posterior's law band already carries, so the discrepancy must not count it again.
INNER_BOOT = 30
#: A rolling-origin refit needs at least this many distinct sizes left to train on.
MIN_TRAIN_SIZES = 4
#: The parts of the distance that a per-kind discrepancy treats apart, and the rolling-origin
#: refits that inform each: top budgets held out (``"c"``) for the compute part, top sizes
#: (``"n"``) for the hull part.
PARTS = ("scale", "shape")
MATCHING = {"scale": "c", "shape": "n"}
#: Rounds of the per-part grid updates (each part's grid given the other part's mean).
PART_ROUNDS = 2


@dataclass(frozen=True)
class InnerBacktest:
    """Held-out log errors and distances from the rolling-origin refits inside a ladder."""

    residuals: np.ndarray
    distances: np.ndarray
    noise_scale: float
    n_refits: int
    law_var: np.ndarray | float = 0.0
    #: Index of the refit each held-out run came from.
    refit: np.ndarray | None = None
    #: Every distance measure of :data:`~bayes_scaling.data.support.DISTANCE_KINDS`, per run.
    by_kind: dict[str, np.ndarray] | None = None
    #: How each refit held runs out: ``"n"`` (top sizes) or ``"c"`` (top budgets), per run.
    split: np.ndarray | None = None
    #: The refit's group and how many top levels it held out, per run (shape ``(n, 2)``).
    origin: np.ndarray | None = None

    def with_distance(self, kind: str) -> InnerBacktest:
        """The same errors measured with another distance ``kind``."""
        if self.by_kind is None or kind not in self.by_kind:
            raise BayesScalingError(f"no {kind!r} distances recorded in this backtest")
        return InnerBacktest(self.residuals, self.by_kind[kind], self.noise_scale,
                             self.n_refits, self.law_var, self.refit, self.by_kind, self.split,
                             self.origin)

    def only(self, split: str) -> InnerBacktest | None:
        """The errors of one kind of hold-out (``"c"``: top budgets, ``"n"``: top sizes)."""
        if self.split is None or self.refit is None:
            raise BayesScalingError("this backtest did not record how each refit held runs out")
        m = self.split == split
        if not m.any():
            return None
        lv = np.broadcast_to(np.asarray(self.law_var, dtype=float), self.residuals.shape)[m]
        by_kind = {k: v[m] for k, v in self.by_kind.items()} if self.by_kind else None
        return InnerBacktest(self.residuals[m], self.distances[m], self.noise_scale,
                             len(np.unique(self.refit[m])), lv, self.refit[m], by_kind,
                             self.split[m], None if self.origin is None else self.origin[m])

    @property
    def n_effective(self) -> float:
        """Effective number of independent errors: one per refit (errors of a refit co-vary)."""
        return float(min(self.n_refits, self.residuals.size))


def _log_inputs(runs: RunTable, law_inputs) -> dict[str, np.ndarray]:
    src = {"n": runs.log_n, "d": runs.log_d}
    return {i: src[i] for i in law_inputs}


def _robust_scale(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _inner_splits(runs: RunTable, steps: tuple[int, ...]):
    """Every rolling origin inside ``runs``: ``(group, "n" or "c", k, train, test)``."""
    for g in range(runs.n_groups):
        grp = runs.subset(runs.group_index == g)
        for key in ("n", "c"):
            lv = levels(grp.n) if key == "n" else budget_levels(grp.flops)
            top = lv.max()
            for k in steps:
                if top + 1 - k < MIN_TRAIN_SIZES:
                    continue
                train, test = grp.subset(lv <= top - k), grp.subset(lv > top - k)
                sizes_left = levels(train.n).max() + 1
                if sizes_left < (MIN_TRAIN_SIZES if key == "n" else 3) or \
                        len(np.unique(train.d)) < 3:
                    continue
                yield g, key, k, train, test


#: What a backtest records per held-out run: every candidate distance and both decompositions.
RECORDED = (*DISTANCE_KINDS, *PARTS)


def inner_distances(runs: RunTable, steps: tuple[int, ...] = HOLDOUT_STEPS
                    ) -> dict[str, np.ndarray]:
    """The distances :func:`inner_backtest` records, per held-out run, in its order (no fits:
    re-measures a backtest saved before a measure existed)."""
    far = [decades_outside(Box.of(tr.n, tr.d), te.n, te.d)
           for _, _, _, tr, te in _inner_splits(runs, steps)]
    return {k: np.concatenate([f[k] for f in far]) for k in RECORDED}


def inner_origins(runs: RunTable, steps: tuple[int, ...] = HOLDOUT_STEPS) -> np.ndarray:
    """Per held-out run of :func:`inner_backtest` (its order; no fits): ``(group, depth)``."""
    return np.concatenate([np.tile([g, k], (te.n_runs, 1))
                           for g, _, k, _, te in _inner_splits(runs, steps)]).astype(int)


def inner_backtest(runs: RunTable, law_name: str,
                   steps: tuple[int, ...] = HOLDOUT_STEPS) -> InnerBacktest:
    """Rolling-origin backtests inside ``runs`` (per group), by model size and by compute."""
    law = LAWS[law_name]
    res, dist, law_var, refits, ids, kinds, split, origin = [], [], [], 0, [], [], [], []
    scales = []
    for g in range(runs.n_groups):
        grp = runs.subset(runs.group_index == g)
        full = huber_fit(_log_inputs(grp, law.inputs), grp.log_loss, law=law_name)
        r_in = grp.log_loss - law.evaluate_log(_log_inputs(grp, law.inputs), full)
        scales.append(_robust_scale(r_in))
    for g, key, depth, train, test in _inner_splits(runs, steps):
        boot = huber_bootstrap(_log_inputs(train, law.inputs), train.log_loss,
                               law=law_name, n_boot=INNER_BOOT, random_seed=refits)
        theta = {p: np.asarray(v)[:, None] for p, v in boot.draws.items()}
        pred = law.evaluate_log({i: v[None, :] for i, v in
                                 _log_inputs(test, law.inputs).items()}, theta)
        point = law.evaluate_log(_log_inputs(test, law.inputs), boot.estimate)
        res.append(test.log_loss - point)
        law_var.append(np.var(pred, axis=0))
        far = decades_outside(Box.of(train.n, train.d), test.n, test.d)
        dist.append(far["distance"])
        kinds.append({k: far[k] for k in RECORDED})
        ids.append(np.full(test.n_runs, refits))
        split.append(np.full(test.n_runs, key))
        origin.append(np.tile([g, depth], (test.n_runs, 1)))
        refits += 1
    if not res:
        raise BayesScalingError("too few distinct sizes for rolling-origin calibration "
                                f"(need > {MIN_TRAIN_SIZES} per group); fit with calibrate=False")
    by_kind = {k: np.concatenate([x[k] for x in kinds]) for k in RECORDED}
    return InnerBacktest(np.concatenate(res), np.concatenate(dist),
                         float(np.median(scales)), refits, np.concatenate(law_var),
                         np.concatenate(ids), by_kind, np.concatenate(split),
                         np.concatenate(origin).astype(int))


def ramp(distance: np.ndarray) -> np.ndarray:
    """0 inside the training box, rising linearly to 1 at ``RAMP_DECADES`` outside it."""
    return np.minimum(np.asarray(distance) / RAMP_DECADES, 1.0)


def discrepancy_sd(distance: np.ndarray, tau0: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Discrepancy sd on log loss at ``distance`` decades: ``sqrt(tau0^2 ramp + (kappa d)^2)``."""
    return np.sqrt(tau0**2 * ramp(distance) + (kappa * distance) ** 2)


def discrepancy_loglik(bt: InnerBacktest, shared: float = 0.0, part: str | None = None,
                       other: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Log likelihood of the held-out errors on the ``(TAU0_GRID, KAPPA_GRID)`` grid.

    ``part`` (``"scale"`` or ``"shape"``): the grid is that part's ``(tau0, kappa)`` of a
    per-kind discrepancy (:func:`~bayes_scaling.data.support.discrepancy_var`), the other part's
    fixed at ``other``; default: one ``(tau0, kappa)`` at ``bt.distances``.

    ``shared`` is the fraction of the discrepancy variance that the errors of one refit share
    (a systematic term: a refit's law is off in one direction for all its held-out runs). The
    errors of refit ``j`` are then jointly normal with covariance
    ``diag(s^2 + v_i + (1 - shared) D_i) + shared * sqrt(D) sqrt(D)^T`` (``D_i`` the discrepancy
    variance at run ``i``); ``shared = 0`` treats them as independent. A refit whose errors all
    share a sign is then one observation of the systematic part, not many.
    """
    out = np.empty((TAU0_GRID.size, KAPPA_GRID.size))
    lv = np.broadcast_to(np.asarray(bt.law_var, dtype=float), bt.residuals.shape)
    base = bt.noise_scale**2 + lv
    r = bt.residuals
    if shared > 0:
        if bt.refit is None:
            raise BayesScalingError("a shared discrepancy term needs each error's refit index")
        _, ids = np.unique(bt.refit, return_inverse=True)
        onehot = np.zeros((r.size, ids.max() + 1))
        onehot[np.arange(r.size), ids] = 1.0
    if part is not None:
        if part not in PARTS or bt.by_kind is None:
            raise BayesScalingError(f"no discrepancy part {part!r} in this backtest")
        far = {p: bt.by_kind[p][None, :] for p in PARTS}
    for j, k in enumerate(KAPPA_GRID):  # column by column: bounded memory on big ladders
        if part is None:
            dvar = discrepancy_sd(bt.distances[None, :], TAU0_GRID[:, None], k) ** 2
        elif part == "scale":
            dvar = discrepancy_var(far, TAU0_GRID[:, None], k, *other)
        else:
            dvar = discrepancy_var(far, *other, TAU0_GRID[:, None], k)
        var = base[None, :] + (1.0 - shared) * dvar
        out[:, j] = -0.5 * np.sum(np.log(var) + r[None, :] ** 2 / var, axis=1)
        if shared > 0:  # rank-one update per refit (matrix determinant lemma, Sherman-Morrison)
            u2 = shared * dvar / var
            ua = u2 @ onehot
            ur = (np.sqrt(shared * dvar) * r[None, :] / var) @ onehot
            out[:, j] += np.sum(-0.5 * np.log1p(ua) + 0.5 * ur**2 / (1.0 + ua), axis=1)
    return out


def half_normal_logprior() -> np.ndarray:
    """The single-ladder default prior on the grid: half-normals on ``tau0`` and ``kappa``."""
    return (-0.5 * (TAU0_GRID[:, None] / TAU0_PRIOR_SIGMA) ** 2
            - 0.5 * (KAPPA_GRID[None, :] / KAPPA_PRIOR_SIGMA) ** 2)


def discrepancy_posterior(bt: InnerBacktest, prior: DiscrepancyPrior | None = None,
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid posterior of ``(tau0, kappa)``: ``(tau0_grid, kappa_grid, weights[tau0, kappa])``.

    Parameters
    ----------
    bt : InnerBacktest
        The ladder's own rolling-origin errors.
    prior : DiscrepancyPrior, optional
        The cross-ladder prior; with it the likelihood is tempered to ``bt.n_effective``
        observations when ``prior.temper``, and a refit's errors share ``prior.shared`` of the
        discrepancy variance. Without it, half-normal priors, independent errors, no tempering.

    Returns
    -------
    tuple of ndarray
        The two grids and the normalised weights, shape ``(tau0, kappa)``.
    """
    loglik = discrepancy_loglik(bt, prior.shared if prior is not None else 0.0)
    if prior is None:
        logp = loglik + half_normal_logprior()
    else:
        weight = bt.n_effective / bt.residuals.size if prior.temper else 1.0
        logp = weight * loglik + prior.log_density(TAU0_GRID, KAPPA_GRID)
    w = np.exp(logp - logp.max())
    return TAU0_GRID, KAPPA_GRID, w / w.sum()


def _grid_mean(w: np.ndarray) -> tuple[float, float]:
    return float(TAU0_GRID @ w.sum(axis=1)), float(KAPPA_GRID @ w.sum(axis=0))


def _normalise(logp: np.ndarray) -> np.ndarray:
    w = np.exp(logp - logp.max())
    return w / w.sum()


def _part_loglik(bt: InnerBacktest, part: str, other: tuple[float, float], shared: float,
                 temper: bool) -> np.ndarray:
    """One part's grid log likelihood from the matching refits (zeros if there are none)."""
    sub = bt.only(MATCHING[part])
    if sub is None:
        return np.zeros((TAU0_GRID.size, KAPPA_GRID.size))
    weight = sub.n_effective / sub.residuals.size if temper else 1.0
    return weight * discrepancy_loglik(sub, shared, part, other)


def discrepancy_posterior_parts(bt: InnerBacktest, prior: DiscrepancyPrior | None = None,
                                rounds: int = PART_ROUNDS) -> dict[str, np.ndarray]:
    """Grid posteriors of each part's ``(tau0, kappa)`` of a per-kind discrepancy.

    The scale part's grid is updated by the errors of the refits that held out top budgets,
    the shape part's by those that held out top sizes, each given the other part at its
    posterior mean (``rounds`` alternations, starting from the other part off). ``prior``: a
    per-kind cross-ladder prior (:attr:`DiscrepancyPrior.per_kind`); ``None``: half-normals.

    Returns
    -------
    dict
        ``{"scale": weights, "shape": weights}``, each of shape ``(tau0, kappa)``.
    """
    est = dict.fromkeys(PARTS, (0.0, 0.0))
    out: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for part in PARTS:
            other = est["shape" if part == "scale" else "scale"]
            if prior is None:
                logp = _part_loglik(bt, part, other, 0.0, False) + half_normal_logprior()
            else:
                pp = prior.part(part)
                logp = (_part_loglik(bt, part, other, pp.shared, pp.temper)
                        + pp.log_density(TAU0_GRID, KAPPA_GRID))
            out[part] = _normalise(logp)
            est[part] = _grid_mean(out[part])
    return out


def fit_population_parts(bts: Sequence[InnerBacktest], *, weights: Sequence[float] | None = None,
                         temper: bool = False, shared: float = 0.0, source: str = "cross-ladder",
                         rounds: int = PART_ROUNDS) -> DiscrepancyPrior:
    """The per-kind cross-ladder prior: one population per part, from the matching refits.

    Each ladder's part likelihood is taken given its other part at that ladder's posterior mean
    under the other part's current population (``rounds`` alternations, starting from off).
    """
    est = [dict.fromkeys(PARTS, (0.0, 0.0)) for _ in bts]
    pops: dict[str, DiscrepancyPrior] = {}
    for _ in range(rounds):
        for part in PARTS:
            oth = "shape" if part == "scale" else "scale"
            lls = [_part_loglik(bt, part, e[oth], shared, temper)
                   for bt, e in zip(bts, est, strict=True)]
            pops[part] = fit_population(lls, TAU0_GRID, KAPPA_GRID, weights=weights,
                                        temper=temper, source=source, shared=shared)
            lp = pops[part].log_density(TAU0_GRID, KAPPA_GRID)
            for e, ll in zip(est, lls, strict=True):
                e[part] = _grid_mean(_normalise(ll + lp))
    return pops["scale"].with_shape(pops["shape"])


def sample_grid(weights: np.ndarray, shape: tuple[int, int],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws of ``(tau0, kappa)`` from the grid posterior, jittered inside each cell."""
    flat_idx = rng.choice(weights.size, size=shape, p=weights.ravel())
    i, j = np.unravel_index(flat_idx, weights.shape)
    dt, dk = TAU0_GRID[1] - TAU0_GRID[0], KAPPA_GRID[1] - KAPPA_GRID[0]
    tau0 = np.clip(TAU0_GRID[i] + rng.uniform(-dt / 2, dt / 2, shape), 0.0, None)
    kappa = np.clip(KAPPA_GRID[j] + rng.uniform(-dk / 2, dk / 2, shape), 0.0, None)
    return tau0, kappa


def ladder_reach(bt: InnerBacktest, prior: DiscrepancyPrior) -> dict[str, Reach]:
    """Per part, how far the ladder's rolling-origin refits reach (:func:`reach_distance`) and
    the cross-ladder rates past it: the drift population's mean (0 without one) and the prior's
    mean ``kappa`` of the part. Parts without a matching held-out run outside are left out."""
    out = {}
    for p in PARTS:
        x_max = reach_distance(bt, p)
        if x_max is not None:
            kappa = _grid_mean(_normalise(prior.part(p).log_density(TAU0_GRID, KAPPA_GRID)))[1]
            drift = prior.drift_population(p)[0] if prior.has_drift else 0.0
            out[p] = Reach(x_max, float(drift), kappa)
    return out


def attach_discrepancy(fit: ScalingFit, *, random_seed: int | None = None,
                       prior: DiscrepancyPrior | Literal["shipped", "none"] = "shipped",
                       on_progress: Callable[[str], None] | None = None,
                       backtest: InnerBacktest | None = None,
                       drift: bool = True, reach: bool = False,
                       own_drift: Literal["all", "nearest", "none"] = "all",
                       tails: bool = False) -> ScalingFit:
    """``fit`` with ``(tau0, kappa)`` draws in its posterior and the inner backtest in meta.

    With a per-kind prior that carries a drift population (the shipped one), the fit also gets
    the ladder's signed drift per part (``drift_scale``, ``drift_shape``: its own slope shrunk
    toward the population, :func:`~bayes_scaling.fitting.drift.ladder_drift`), which moves the
    predictive median; ``meta["calibration"]["drift"]`` records its value, band, provenance.

    Parameters
    ----------
    fit : ScalingFit
        A fitted law.
    random_seed : int, optional
        Seed of the grid draws.
    prior : DiscrepancyPrior or {"shipped", "none"}
        ``"shipped"``: the cross-ladder prior shipped with the package (``data/discrepancy_prior``);
        ``"none"``: half-normal priors (the ladder's own evidence alone).
    on_progress : callable, optional
        Receives progress messages.
    backtest : InnerBacktest, optional
        The rolling-origin errors of ``fit.runs`` if already computed
        (:func:`inner_backtest`); default: computed here.
    drift : bool, default True
        Attach the signed drift when the prior carries one; ``False``: a zero-mean discrepancy.
    reach : bool, default False
        Per kind with a cross-ladder prior only: past the distance its rolling-origin refits
        reach, the ladder's drift and ``kappa`` give way to the cross-ladder ones
        (:func:`ladder_reach`, :func:`bayes_scaling.data.support.past_reach`), recorded in
        ``meta["calibration"]["reach"]``.
    own_drift : {"all", "nearest", "none"}
        The drift's own slope: all matching refits', those that held out the fewest levels
        (:func:`~bayes_scaling.fitting.drift.nearest_slope`), or none (the population alone).
    tails : bool, default False
        A Student-t discrepancy with the prior's ``nu``, variance-matched or pinned at the
        Normal's 5%/95% quantiles (``nu_pinned``; :mod:`~bayes_scaling.fitting.tails`).

    Returns
    -------
    ScalingFit
    """
    tell = on_progress or (lambda _m: None)
    if own_drift not in OWN_DRIFT:
        raise BayesScalingError(f"own_drift is {own_drift!r}, not one of {', '.join(OWN_DRIFT)}")
    tell("calibrating the extrapolation discrepancy (rolling-origin refits inside the ladder)")
    bt = backtest if backtest is not None else inner_backtest(fit.runs, fit.spec.law)
    prior_ = load_prior() if prior == "shipped" else None if prior == "none" else prior
    rng = np.random.default_rng([int(random_seed or 0), 7])
    shape = (fit.posterior.sizes[CHAIN], fit.posterior.sizes[DRAW])
    per_kind = (prior_ is not None and prior_.per_kind and bt.split is not None
                and bt.by_kind is not None and prior_.distance == DISTANCE)
    draws: dict[str, np.ndarray] = {}
    if per_kind:
        parts = discrepancy_posterior_parts(bt, prior_)
        draws["tau0"], draws["kappa"] = sample_grid(parts["scale"], shape, rng)
        draws["tau0_shape"], draws["kappa_shape"] = sample_grid(parts["shape"], shape, rng)
    else:
        _, _, weights = discrepancy_posterior(bt, prior_)
        draws["tau0"], draws["kappa"] = sample_grid(weights, shape, rng)
    if own_drift == "nearest" and bt.origin is None:
        origin = inner_origins(fit.runs)
        if origin.shape[0] != bt.residuals.size:
            raise BayesScalingError("the backtest's held-out runs are not those of fit.runs")
        bt = dataclasses.replace(bt, origin=origin)
    drifts = (ladder_drift(bt, prior_, own_drift) if drift and per_kind and prior_.has_drift
              else None)
    if drifts is not None:
        draws.update({f"drift_{p}": np.full(shape, d.value) for p, d in drifts.items()})
    draws.update(prior_tail_draws(prior_ if tails else None, shape))
    units = {"kappa": "sd of log loss per decade of extrapolation",
             "tau0": "sd of log loss, any run outside the ladder"}
    if per_kind:
        units = {"kappa": "sd of log loss per decade of N and D scaled up past the runs",
                 "tau0": "sd of log loss, a run scaled up past the ladder",
                 "kappa_shape": "sd of log loss per decade off the runs' tokens per parameter",
                 "tau0_shape": "sd of log loss, a tokens-per-parameter ratio no run had",
                 "drift_scale": "mean log error per decade of N and D scaled up past the runs "
                                "(+: the run above the law)",
                 "drift_shape": "mean log error per decade off the runs' tokens per parameter "
                                "(+: the run above the law)"}
    units.update(TAIL_UNITS)
    post = {k: xr.DataArray(v, dims=(CHAIN, DRAW), attrs={"units": units[k]})
            for k, v in draws.items()}
    means = {f"{k}_mean": float(v.mean()) for k, v in draws.items()}
    tell(f"discrepancy: tau0 = {means['tau0_mean']:.4f}, kappa = {means['kappa_mean']:.4f} per "
         "decade" + (f" (scale part; shape part tau0 = {means['tau0_shape_mean']:.4f}, kappa = "
                     f"{means['kappa_shape_mean']:.4f})" if per_kind else "")
         + f", from {bt.residuals.size} held-out runs in {bt.n_refits} refits"
         + (f"; drift {drifts['scale'].value:+.4f} (scale), {drifts['shape'].value:+.4f} "
            "(shape) per decade" if drifts else ""))
    meta = {"calibration": {**means, "n_heldout": int(bt.residuals.size),
                            "n_refits": bt.n_refits, "noise_scale": bt.noise_scale,
                            "max_distance": float(bt.distances.max()),
                            "distance": DISTANCE, "per_kind": bool(per_kind),
                            "prior": prior_.source if prior_ is not None else "half-normal",
                            "drift": ({p: d.to_dict() for p, d in drifts.items()}
                                      if drifts else None), "own_drift": own_drift,
                            "tails": means.get("nu_discrepancy_mean"),
                            "reach": ({p: vars(r) for p, r in ladder_reach(bt, prior_).items()}
                                      if reach and per_kind else None)},
            "box": Box.of(fit.runs.n, fit.runs.d).to_dict()}
    return with_posterior(fit, post, meta)
