r"""Weights of law families from how they extrapolate: held-out-by-compute stacking.

PSIS-LOO scores a family on runs inside the ladder (interpolation); a proposal depends on runs
past it. Here each family is refitted without the ladder's top compute budgets (rolling origin:
without the top 1, then the top 2, ... budgets), predicts the held-out runs, and the families
are stacked on those predictions: the weights ``w`` maximise the summed log score of the
mixture, :math:`\sum_i \log \sum_k w_k p_k(y_i)` over the held-out runs ``i`` (Yao, Vehtari,
Simpson & Gelman 2018, doi:10.1214/17-BA1091, eq. 4, with held-out-by-compute predictive
densities in place of LOO ones). :func:`heldout_scores` scores each family and the weighted
mixture on the same runs: median absolute % error of the median, coverage of the 50% / 90%
bands, 90% interval score (Gneiting & Raftery 2007) and mean log predictive density.

Compute budgets: FLOPs binned into :data:`BUDGET_WIDTH_DEX`-decade bins counted down from the
largest run's, so an isoFLOP ladder's budgets (a factor 2 apart) are one bin each and a
continuous ladder (Chinchilla's) gets budgets of comparable width. The split is
:func:`split_by_budget`; swap it for :func:`bayes_scaling.evaluate.backtest.split_top` (issue 15)
by passing ``split=``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import score
from bayes_scaling.fitting.fit import fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import log_loss_draws
from bayes_scaling.types import ProgressFn, SeedLike

#: Width of a compute budget, in decades of FLOPs (a factor of ~1.8).
BUDGET_WIDTH_DEX = 0.25
#: Rolling origins used by default: hold out the top 1, then the top 2 budgets.
DEFAULT_STACK_TOPS: tuple[int, ...] = (1, 2)
#: Fewest budgets a training ladder must keep.
MIN_TRAIN_BUDGETS = 3
#: Columns of :func:`heldout_scores`.
SCORE_COLUMNS: tuple[str, ...] = ("model", "weight", "n_heldout", "median_abs_pct_error",
                                  "coverage_50", "coverage_90", "interval_score_90", "mean_lpd")


@dataclass(frozen=True)
class HeldOut:
    """One family's predictions of the runs held out by compute, over every origin.

    Attributes
    ----------
    model
        The family's spec name.
    table
        One row per (origin, held-out run): ``top`` (budgets held out), ``run_id``,
        ``n_params``, ``n_tokens``, ``flops``, ``observed`` (loss) and ``log_pred_density``
        (of the observed log loss).
    samples
        Predictive draws of the loss, shape ``(draws, rows of table)``.
    converged
        Whether every refit passed the convergence gate.
    """

    model: str
    table: pd.DataFrame
    samples: np.ndarray
    converged: bool


# ------------------------------------------------------------------------------ budgets
def budget_index(flops: np.ndarray, width_dex: float = BUDGET_WIDTH_DEX) -> np.ndarray:
    """Budget of each run: 0 for the largest, 1 for the next non-empty bin, ...

    Bins are ``width_dex`` decades wide, counted down from the largest run's FLOPs.
    """
    lg = np.log10(np.asarray(flops, dtype=float))
    raw = np.floor((lg.max() - lg) / width_dex + 1e-9).astype(int)
    return np.searchsorted(np.unique(raw), raw)


def split_by_budget(runs: RunTable, top: int,
                    width_dex: float = BUDGET_WIDTH_DEX) -> tuple[RunTable, RunTable]:
    """``(train, test)``: ``test`` holds the runs in the top ``top`` compute budgets.

    Budgets are counted over the whole ladder (all groups together: a budget is a FLOP range).
    """
    if int(top) < 1:
        raise BayesScalingError(f"the number of budgets held out must be >= 1, got {top}")
    b = budget_index(runs.flops, width_dex)
    if b.max() + 1 - top < MIN_TRAIN_BUDGETS:
        raise BayesScalingError(f"{b.max() + 1} compute budgets: holding out {top} leaves fewer "
                                f"than {MIN_TRAIN_BUDGETS} to fit on")
    test = b < top
    return runs.subset(~test), runs.subset(test)


# ------------------------------------------------------------------------------ predictions
def predict_heldout(fit_: ScalingFit, test: RunTable, *, draws: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, log_pred_density)`` of ``test``'s runs under ``fit_``'s predictive band.

    ``samples`` has ``draws`` rows (resampled from the posterior when it has fewer).
    """
    lpd = score(fit_, test, probs=(0.9,), random_seed=rng).table["log_pred_density"].to_numpy()
    out = np.empty((draws, test.n_runs))
    for g in np.unique(test.group_index):
        sel = np.flatnonzero(test.group_index == g)
        name = test.group_names[g]
        group = name if name in fit_.group_names else "new"
        s = np.exp(log_loss_draws(fit_, test.n[sel], test.d[sel], group=group,
                                  band="predictive", rng=rng))
        out[:, sel] = s[rng.choice(s.shape[0], size=draws, replace=s.shape[0] < draws)]
    return out, lpd


def heldout_predictions(runs: RunTable, models: Sequence[Any], *,
                        tops: Sequence[int] = DEFAULT_STACK_TOPS,
                        fit_kwargs: Mapping[str, Any] | None = None, draws: int = 1000,
                        random_seed: SeedLike = None,
                        split: Callable[[RunTable, int], tuple[RunTable, RunTable]] =
                        split_by_budget,
                        on_progress: ProgressFn | None = None) -> dict[str, HeldOut]:
    """Refit every family without the top budgets (each origin in ``tops``) and predict them.

    Parameters
    ----------
    runs : RunTable
        The ladder.
    models : sequence of str, path or ModelSpec
        The families (shipped names, spec paths or specs).
    tops : sequence of int, default :data:`DEFAULT_STACK_TOPS`
        Rolling origins: numbers of top compute budgets held out.
    fit_kwargs : mapping, optional
        Sampler settings of the refits (``chains``, ``draws``, ``tune``, ...).
    draws : int, default 1000
        Predictive draws kept per held-out run and family.
    random_seed : int, numpy.random.Generator or None
        Seed of the refits and the draws.
    split : callable, default :func:`split_by_budget`
        ``split(runs, top) -> (train, test)``.
    on_progress : callable, optional
        Called with one short line per refit.

    Returns
    -------
    dict
        ``{model name: HeldOut}``; every family predicts the same rows.
    """
    rng = np.random.default_rng(random_seed)
    tell = on_progress or (lambda _m: None)
    splits = [(int(k), *split(runs, int(k))) for k in tops]
    out: dict[str, HeldOut] = {}
    for m in models:
        parts, samples, ok, name = [], [], True, None
        for k, train, test in splits:
            seed = int(rng.integers(2**31 - 1))
            tell(f"held out by compute: {getattr(m, 'name', m)} without the top {k} budget(s) "
                 f"({train.n_runs} runs fitted, {test.n_runs} predicted)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = fit(m, train, random_seed=seed, **dict(fit_kwargs or {}))
            name = f.spec.name
            ok = ok and f.diagnostics.passed
            s, lpd = predict_heldout(f, test, draws=draws, rng=rng)
            samples.append(s)
            parts.append(pd.DataFrame({"top": k, "run_id": test.run_ids, "n_params": test.n,
                                       "n_tokens": test.d, "flops": test.flops,
                                       "observed": test.loss, "log_pred_density": lpd}))
        out[str(name)] = HeldOut(str(name), pd.concat(parts, ignore_index=True),
                                 np.concatenate(samples, axis=1), ok)
    return out


# ------------------------------------------------------------------------------ stacking
def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    r"""Weights maximising :math:`\sum_i \log \sum_k w_k \exp(\mathrm{lpd}_{ik})` on the simplex.

    Parameters
    ----------
    lpd : array, shape (runs, families)
        Held-out log predictive densities.

    Returns
    -------
    numpy.ndarray
        Non-negative weights summing to 1, one per family (column).
    """
    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[1] == 0 or lpd.shape[0] == 0:
        raise BayesScalingError(f"stacking needs a (runs, families) array, got {lpd.shape}")
    k = lpd.shape[1]
    if k == 1:
        return np.ones(1)
    lpd = np.where(np.isfinite(lpd), lpd, -1e6)

    def loss(z: np.ndarray) -> tuple[float, np.ndarray]:
        logw = z - special.logsumexp(z)
        t = lpd + logw[None, :]
        row = special.logsumexp(t, axis=1)
        resp = np.exp(t - row[:, None])  # each family's share of each run's density
        w = np.exp(logw)
        grad = -(resp.sum(axis=0) - lpd.shape[0] * w)
        return -float(row.sum()), grad

    res = optimize.minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B")
    w = special.softmax(res.x)
    w[w < 1e-6] = 0.0
    return w / w.sum()


def weights_from_heldout(heldout: Mapping[str, HeldOut]) -> dict[str, float]:
    """Stacking weights of the families from their held-out-by-compute densities."""
    names = list(heldout)
    lpd = np.column_stack([heldout[m].table["log_pred_density"].to_numpy() for m in names])
    return dict(zip(names, map(float, stacking_weights(lpd)), strict=True))


def mixture_samples(heldout: Mapping[str, HeldOut], weights: Mapping[str, float],
                    rng: np.random.Generator) -> np.ndarray:
    """Draws of the weighted mixture, each family contributing its weight's share of rows."""
    names = [m for m in heldout if weights.get(m, 0.0) > 0]
    w = np.array([weights[m] for m in names])
    total = heldout[names[0]].samples.shape[0]
    counts = np.floor(w / w.sum() * total).astype(int)
    counts[np.argmax(w)] += total - counts.sum()
    parts = [heldout[m].samples[rng.choice(heldout[m].samples.shape[0], size=c, replace=False)]
             for m, c in zip(names, counts, strict=True) if c > 0]
    return np.concatenate(parts)


def score_samples(samples: np.ndarray, observed: np.ndarray,
                  lpd: np.ndarray) -> dict[str, float]:
    """Median abs % error, 50/90% coverage, 90% interval score and mean lpd of predictions."""
    y = np.asarray(observed, dtype=float)
    med = np.median(samples, axis=0)
    lo50, hi50, lo90, hi90 = np.quantile(samples, [0.25, 0.75, 0.05, 0.95], axis=0)
    iscore = (hi90 - lo90) + (2 / 0.1) * ((lo90 - y) * (y < lo90) + (y - hi90) * (y > hi90))
    return {"n_heldout": int(y.size),
            "median_abs_pct_error": float(np.median(100 * np.abs(med - y) / y)),
            "coverage_50": float(np.mean((y >= lo50) & (y <= hi50))),
            "coverage_90": float(np.mean((y >= lo90) & (y <= hi90))),
            "interval_score_90": float(np.mean(iscore)), "mean_lpd": float(np.mean(lpd))}


def heldout_scores(heldout: Mapping[str, HeldOut], weights: Mapping[str, float], *,
                   random_seed: SeedLike = None) -> pd.DataFrame:
    """Scores of each family and of the ``weights`` mixture on the held-out runs.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`; one row per family, then ``"average"``.
    """
    rng = np.random.default_rng(random_seed)
    first = next(iter(heldout.values()))
    y = first.table["observed"].to_numpy()
    rows = [{"model": m, "weight": float(weights.get(m, 0.0)),
             **score_samples(h.samples, y, h.table["log_pred_density"].to_numpy())}
            for m, h in heldout.items()]
    names = list(heldout)
    lpd = np.column_stack([heldout[m].table["log_pred_density"].to_numpy() for m in names])
    w = np.array([max(weights.get(m, 0.0), 0.0) for m in names])
    with np.errstate(divide="ignore"):
        mix_lpd = special.logsumexp(lpd + np.log(w / w.sum())[None, :], axis=1)
    rows.append({"model": "average", "weight": 1.0,
                 **score_samples(mixture_samples(heldout, weights, rng), y, mix_lpd)})
    return pd.DataFrame(rows)[list(SCORE_COLUMNS)]
