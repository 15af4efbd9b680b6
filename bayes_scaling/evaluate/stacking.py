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

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import DISCREPANCY_VARS
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import score
from bayes_scaling.evaluate.parallel import run_many
from bayes_scaling.fitting.calibrate import attach_discrepancy
from bayes_scaling.fitting.families import FamilyFit, family_meta
from bayes_scaling.fitting.fit import fit, fit_baseline
from bayes_scaling.fitting.result import ScalingFit, with_posterior
from bayes_scaling.model.spec import load_spec
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


#: How the stacking refits are made: ``"huber-bootstrap"`` (point fit + bootstrap, per group;
#: seconds) or ``"nuts"`` (the full posterior; minutes). Measured to give the same weights on the
#: public ladders (``benchmarks/results/families.md``).
REFIT_METHODS: tuple[str, ...] = ("huber-bootstrap", "nuts")
#: Bootstrap refits per Huber refit.
REFIT_BOOT = 60


def refit(model: Any, train: RunTable, *, method: str, seed: int,
          fit_kwargs: Mapping[str, Any] | None = None) -> list[tuple[ScalingFit, np.ndarray]]:
    """``[(fit, groups)]``: one NUTS fit of ``train``, or one Huber bootstrap fit per group.

    ``groups`` are the group indices (of ``train``) that fit predicts.
    """
    if method not in REFIT_METHODS:
        raise BayesScalingError(f"refit method must be one of {', '.join(REFIT_METHODS)}, "
                                f"got {method!r}")
    kw = dict(fit_kwargs or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "nuts":
            return [(fit(model, train, random_seed=seed, **kw), np.arange(train.n_groups))]
        out = []
        boot, cal = int(kw.get("n_boot", REFIT_BOOT)), kw.get("calibrate", "shared")
        for g in range(train.n_groups):
            part = train.subset(train.group_index == g) if train.n_groups > 1 else train
            f = fit_baseline(model, part, n_boot=boot, random_seed=seed + g)
            if cal:
                f = _calibrated(f, shared=cal == "shared", seed=seed + g)
            out.append((f, np.array([g])))
        return out


_SHARED: dict[tuple, ScalingFit] = {}


def _calibrated(f: ScalingFit, *, shared: bool, seed: int) -> ScalingFit:
    """``f`` with the extrapolation discrepancy of its ladder (unchanged if it can't be learned).

    ``shared``: learned with the Chinchilla law's inner backtests (a property of the ladder,
    shared by every family; the broken law's own inner backtest costs ~20x more). Too few
    sizes to learn it: ``f`` unchanged (law + noise band).
    """
    try:
        if not shared or f.spec.law == "chinchilla":
            return attach_discrepancy(f, random_seed=seed)
        # the ladder's inner backtest under the Chinchilla law, draws shaped as f's (learned
        # once per table and shape in this process: every family of a ladder shares it)
        key = (f.runs.fingerprint(), tuple(f.posterior.sizes.values()))
        if key not in _SHARED:
            _SHARED.clear()
            _SHARED[key] = attach_discrepancy(ScalingFit(f.idata, load_spec("chinchilla"),
                                                         f.runs, f.diagnostics, f.meta),
                                              random_seed=seed)
        ref = _SHARED[key]
    except BayesScalingError:
        return f
    return with_posterior(f, {k: ref.posterior[k] for k in DISCREPANCY_VARS
                              if k in ref.posterior},
                          {k: ref.meta[k] for k in ("calibration", "box")})


def _one_refit(model: Any, k: int, train: RunTable, test: RunTable, method: str, seed: int,
               fit_kwargs: Mapping[str, Any] | None, draws: int) -> dict[str, Any]:
    """Refit ``model`` on ``train`` and predict ``test`` (one origin of one family)."""
    rng = np.random.default_rng(seed)
    samples = np.empty((draws, test.n_runs))
    lpd = np.full(test.n_runs, -np.inf)
    ok, name = True, None
    for f, groups in refit(model, train, method=method, seed=seed, fit_kwargs=fit_kwargs):
        name = f.spec.name
        ok = ok and f.diagnostics.passed
        names = {train.group_names[g] for g in groups}
        sel = np.flatnonzero([test.group_names[g] in names or method == "nuts"
                              for g in test.group_index])
        if sel.size == 0:
            continue
        sub = test.subset(np.isin(np.arange(test.n_runs), sel))
        samples[:, sel], lpd[sel] = predict_heldout(f, sub, draws=draws, rng=rng)
    return {"name": str(name), "converged": ok, "samples": samples, "table": pd.DataFrame(
        {"top": k, "run_id": test.run_ids, "n_params": test.n, "n_tokens": test.d,
         "flops": test.flops, "observed": test.loss, "log_pred_density": lpd})}


def heldout_predictions(runs: RunTable, models: Sequence[Any], *,
                        tops: Sequence[int] = DEFAULT_STACK_TOPS,
                        fit_kwargs: Mapping[str, Any] | None = None, draws: int = 1000,
                        random_seed: SeedLike = None,
                        split: Callable[[RunTable, int], tuple[RunTable, RunTable]] =
                        split_by_budget, method: str = "nuts", workers: int = 1,
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
        Settings of the refits: NUTS (``chains``, ``draws``, ``tune``, ...) or, for the Huber
        refits, ``n_boot`` and ``calibrate``.
    draws : int, default 1000
        Predictive draws kept per held-out run and family.
    random_seed : int, numpy.random.Generator or None
        Seed of the refits and the draws.
    split : callable, default :func:`split_by_budget`
        ``split(runs, top) -> (train, test)``.
    method : {"nuts", "huber-bootstrap"}, default "nuts"
        How the refits are made (:data:`REFIT_METHODS`); Huber refits fit each group alone.
    workers : int, default 1
        Refits run in this many local processes (:func:`~bayes_scaling.evaluate.parallel.run_many`).
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
    tasks = []
    for m in models:
        for k, train, test in splits:
            tell(f"held out by compute: {getattr(m, 'name', m)} without the top {k} budget(s) "
                 f"({train.n_runs} runs fitted, {test.n_runs} predicted; {method})")
            tasks.append({"model": m, "k": k, "train": train, "test": test, "method": method,
                          "seed": int(rng.integers(2**31 - 1)), "fit_kwargs": fit_kwargs,
                          "draws": draws})
    done = run_many(_one_refit, tasks, workers=workers, on_progress=tell)
    out: dict[str, HeldOut] = {}
    per = len(splits)
    for i in range(0, len(done), per):
        parts = done[i:i + per]
        name = parts[0]["name"]
        out[name] = HeldOut(name, pd.concat([p["table"] for p in parts], ignore_index=True),
                            np.concatenate([p["samples"] for p in parts], axis=1),
                            all(p["converged"] for p in parts))
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


# ------------------------------------------------------------------------------ fitting
#: Families compared by default (shipped specs in ``models/``).
DEFAULT_MODELS: tuple[str, ...] = ("chinchilla", "kaplan", "kaplan_e")
#: Families a stacked fit uses by default: the rivals of issue 19.
STACK_MODELS: tuple[str, ...] = ("chinchilla", "farseer", "kaplan_e", "broken")
#: A ladder whose own rolling origin predicts fewer runs than this is short: its weights come
#: from the cross-ladder weights (:func:`cross_ladder_weights`).
MIN_OWN_ROWS = 10


def _fit_one(model: Any, runs: RunTable, seed: int, kwargs: Mapping[str, Any]) -> ScalingFit:
    return fit(model, runs, random_seed=seed, **dict(kwargs))


def fit_families(runs: RunTable, models: Sequence[Any] = DEFAULT_MODELS, *,
                 random_seed: SeedLike = None, fit_kwargs: Mapping[str, Any] | None = None,
                 workers: int = 1, on_progress: ProgressFn | None = None
                 ) -> dict[str, ScalingFit]:
    """Fit every model in ``models`` (shipped names, spec paths or specs) to the same ``runs``.

    Each fit gets its own seed drawn from ``random_seed``; with ``workers`` > 1 they run in
    that many local processes. Returns ``{spec name: fit}`` in the order given; the first is
    the reference of :func:`~bayes_scaling.evaluate.compare.compare`'s divergence scan.
    """
    if not models:
        raise BayesScalingError("no models to compare: give at least one, e.g. chinchilla,kaplan")
    specs = [load_spec(m) for m in models]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise BayesScalingError(f"models named twice: {', '.join(names)}")
    seeds = np.random.default_rng(random_seed).integers(2**31 - 1, size=len(specs))
    tell = on_progress or (lambda _m: None)
    kw = dict(fit_kwargs or {})
    if workers > 1:
        tell(f"fitting {len(specs)} families in {workers} processes: {', '.join(names)}")
        fits = run_many(_fit_one, [{"model": s, "runs": runs, "seed": int(seed), "kwargs": kw}
                                   for s, seed in zip(specs, seeds, strict=True)],
                        workers=workers, on_progress=tell)
        return dict(zip(names, fits, strict=True))
    out = {}
    for i, (spec, seed) in enumerate(zip(specs, seeds, strict=True)):
        tell(f"fit {i + 1}/{len(specs)}: {spec.name} ({spec.law})")
        out[spec.name] = fit(spec, runs, random_seed=int(seed), on_progress=tell, **kw)
    return out


def cross_ladder_weights(names: Sequence[str]) -> dict[str, float]:
    """Weights learned on every public ladder (shipped; ``benchmarks/bench_families.py``).

    Restricted to ``names`` and renormalised; equal weights when none of them is shipped.
    """
    text = resources.files("bayes_scaling").joinpath("_data/family_weights.json").read_text()
    shipped = json.loads(text)["weights"]
    w = {k: float(shipped.get(k, 0.0)) for k in names}
    total = sum(w.values())
    return {k: v / total for k, v in w.items()} if total > 0 else dict.fromkeys(names,
                                                                                1 / len(names))


def stack_weights(runs: RunTable, models: Sequence[Any], *,
                  tops: Sequence[int] = DEFAULT_STACK_TOPS, method: str = "huber-bootstrap",
                  fit_kwargs: Mapping[str, Any] | None = None, workers: int = 1,
                  random_seed: SeedLike = None,
                  on_progress: ProgressFn | None = None) -> tuple[dict[str, float], dict]:
    """``(weights, provenance)``: held-out-by-compute stacking, or cross-ladder when short.

    The ladder is short when none of ``tops`` leaves :data:`MIN_TRAIN_BUDGETS` budgets to fit
    on, or the origins predict fewer than :data:`MIN_OWN_ROWS` runs; its weights are then the
    shipped cross-ladder ones (:func:`cross_ladder_weights`).
    """
    names = [load_spec(m).name for m in models]
    nb = int(budget_index(runs.flops).max()) + 1
    ok = [int(k) for k in tops if nb - int(k) >= MIN_TRAIN_BUDGETS]
    preds = (heldout_predictions(runs, models, tops=ok, fit_kwargs=fit_kwargs,
                                 random_seed=random_seed, method=method, workers=workers,
                                 on_progress=on_progress) if ok else {})
    n_rows = len(next(iter(preds.values())).table) if preds else 0
    if n_rows < MIN_OWN_ROWS:
        why = (f"{nb} compute budgets: too few for an origin" if not ok else
               f"the origins predict {n_rows} runs (< {MIN_OWN_ROWS})")
        return cross_ladder_weights(names), {"weights_method": "cross-ladder", "why": why,
                                             "stack_tops": ok, "n_heldout": n_rows}
    w = weights_from_heldout(preds)
    scores = heldout_scores(preds, w, random_seed=random_seed)
    return w, {"weights_method": "heldout-by-compute", "stack_tops": ok,
               "refit_method": method, "n_heldout": n_rows,
               "scores": scores.to_dict(orient="records"),
               "refits_converged": {k: h.converged for k, h in preds.items()}}


def fit_stacked(runs: RunTable, models: Sequence[Any] = STACK_MODELS, *,
                tops: Sequence[int] = DEFAULT_STACK_TOPS, refit_method: str = "huber-bootstrap",
                fit_kwargs: Mapping[str, Any] | None = None,
                refit_kwargs: Mapping[str, Any] | None = None, workers: int = 1,
                random_seed: SeedLike = None,
                on_progress: ProgressFn | None = None) -> FamilyFit:
    """Fit several law families to ``runs`` and weigh them by how they extrapolate.

    Each family gets a full fit (:func:`~bayes_scaling.fitting.fit.fit`, ``fit_kwargs``); the
    weights come from :func:`stack_weights` (refits without the top ``tops`` compute budgets,
    by ``refit_method``: Huber + bootstrap by default, seconds per refit). Queries on the
    result use the weighted average; :meth:`FamilyFit.family` gives one family's fit.

    Parameters
    ----------
    runs : RunTable
        The ladder.
    models : sequence of str, path or ModelSpec, default :data:`STACK_MODELS`
        The families.
    tops : sequence of int, default :data:`DEFAULT_STACK_TOPS`
        Rolling origins of the stacking refits: numbers of top compute budgets held out.
    refit_method : {"huber-bootstrap", "nuts"}, default "huber-bootstrap"
        How the stacking refits are made.
    fit_kwargs : mapping, optional
        Settings of the families' NUTS fits (``chains``, ``draws``, ``tune``, ...).
    refit_kwargs : mapping, optional
        Settings of the stacking refits (Huber: ``n_boot``, ``calibrate``; NUTS: as
        ``fit_kwargs``).
    workers : int, default 1
        Local processes for the fits and the refits.
    random_seed : int, numpy.random.Generator or None
        Seed of every fit and refit.
    on_progress : callable, optional
        Called with one short line per step.

    Returns
    -------
    FamilyFit
        The fits, the weights and their provenance (``save`` writes one file).
    """
    rng = np.random.default_rng(random_seed)
    seeds = rng.integers(2**31 - 1, size=2)
    tell = on_progress or (lambda _m: None)
    fits = fit_families(runs, models, random_seed=int(seeds[0]), fit_kwargs=fit_kwargs,
                        workers=workers, on_progress=tell)
    tell(f"stacking weights: refits without the top {list(tops)} compute budget(s) "
         f"({refit_method})")
    weights, meta = stack_weights(runs, [f.spec for f in fits.values()], tops=tops,
                                  method=refit_method, fit_kwargs=refit_kwargs,
                                  workers=workers, random_seed=int(seeds[1]), on_progress=tell)
    tell("weights: " + ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
         + f" ({meta['weights_method']})")
    return FamilyFit(fits, weights, family_meta(**meta))
