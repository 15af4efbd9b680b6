"""Held out by compute: refit each family without a ladder's top compute budgets, predict them.

The rolling-origin refits behind the stacking weights of
:mod:`bayes_scaling.evaluate.stacking`: each family is refitted without the ladder's top 1, then
top 2, ... compute budgets (Huber point fit + bootstrap per group, with the ladder's
extrapolation discrepancy; or NUTS) and predicts the held-out runs (:class:`HeldOut`: draws and
log predictive densities). :func:`heldout_tasks` lays the refits out for any pool (``fit_stacked``
runs them in the same pool as the families' fits); :func:`heldout_predictions` runs them.

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

from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.backtest import score
from bayes_scaling.evaluate.parallel import run_many
from bayes_scaling.fitting.calibrate import InnerBacktest, attach_discrepancy, inner_backtest
from bayes_scaling.fitting.fit import fit, fit_baseline
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import log_loss_draws
from bayes_scaling.types import ProgressFn, SeedLike

#: Rolling origins used by default: hold out the top 1, then the top 2 budgets.
DEFAULT_STACK_TOPS: tuple[int, ...] = (1, 2)
#: Width of a compute budget, in decades of FLOPs (a factor of ~1.8).
BUDGET_WIDTH_DEX = 0.25
#: Fewest budgets a training ladder must keep.
MIN_TRAIN_BUDGETS = 3


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
          fit_kwargs: Mapping[str, Any] | None = None,
          shared: Mapping[int, InnerBacktest | None] | None = None,
          ) -> list[tuple[ScalingFit, np.ndarray]]:
    """``[(fit, groups)]``: one NUTS fit of ``train``, or one Huber bootstrap fit per group.

    ``groups`` are the group indices (of ``train``) that fit predicts. ``shared``: the
    Chinchilla law's inner backtest of each group of ``train`` (:func:`shared_backtests`),
    computed once per origin for every family; default: computed here.
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
        if cal == "shared" and shared is None:
            shared = shared_backtests(train)
        for g in range(train.n_groups):
            part = train.subset(train.group_index == g) if train.n_groups > 1 else train
            f = fit_baseline(model, part, n_boot=boot, random_seed=seed + g)
            bt = ((shared or {}).get(g) if cal == "shared" else
                  _backtest(part, f.spec.law) if cal else None)
            if bt is not None:  # None: too few sizes to learn it; the law + noise band
                f = attach_discrepancy(f, random_seed=seed + g, backtest=bt)
            out.append((f, np.array([g])))
        return out


def shared_backtests(train: RunTable) -> dict[int, InnerBacktest | None]:
    """The Chinchilla law's inner backtest of each group of ``train`` (None: too few sizes).

    The extrapolation discrepancy of the Huber refits is a property of the ladder, shared by
    every family (the broken law's own inner backtest costs ~20x more): learned once per
    origin and group, here, and handed to every family's refit.
    """
    return {g: _backtest(train.subset(train.group_index == g) if train.n_groups > 1 else train,
                         "chinchilla") for g in range(train.n_groups)}


def _backtest(runs: RunTable, law: str) -> InnerBacktest | None:
    try:
        return inner_backtest(runs, law)
    except BayesScalingError:
        return None


def refit_task(model: Any, k: int, train: RunTable, test: RunTable, method: str, seed: int,
               fit_kwargs: Mapping[str, Any] | None, draws: int,
               shared: Mapping[int, InnerBacktest | None] | None = None) -> dict[str, Any]:
    """Refit ``model`` on ``train`` and predict ``test`` (one origin of one family; one task of
    :func:`heldout_tasks`)."""
    rng = np.random.default_rng(seed)
    samples = np.empty((draws, test.n_runs))
    lpd = np.full(test.n_runs, -np.inf)
    ok, name = True, None
    for f, groups in refit(model, train, method=method, seed=seed, fit_kwargs=fit_kwargs,
                           shared=shared):
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
    tell = on_progress or (lambda _m: None)
    tasks = heldout_tasks(runs, models, tops=tops, fit_kwargs=fit_kwargs, draws=draws,
                          random_seed=random_seed, split=split, method=method, tell=tell)
    return collect_heldout(run_many(refit_task, tasks, workers=workers, on_progress=tell),
                           len(tops))


def heldout_tasks(runs: RunTable, models: Sequence[Any], *, tops: Sequence[int],
                  fit_kwargs: Mapping[str, Any] | None, draws: int, random_seed: SeedLike,
                  split: Callable[[RunTable, int], tuple[RunTable, RunTable]], method: str,
                  tell: ProgressFn) -> list[dict[str, Any]]:
    """The refits of :func:`heldout_predictions`, family-major, as keyword arguments of
    ``refit_task`` (for any pool); the Huber refits' shared discrepancy is learned here."""
    rng = np.random.default_rng(random_seed)
    splits = [(int(k), *split(runs, int(k))) for k in tops]
    # the Chinchilla law's inner backtest of each origin, once for every family (not once per
    # family and origin)
    cal = (fit_kwargs or {}).get("calibrate", "shared")
    shared = ({k: shared_backtests(train) for k, train, _ in splits}
              if method == "huber-bootstrap" and cal == "shared" else {})
    tasks = []
    for m in models:
        for k, train, test in splits:
            tell(f"held out by compute: {getattr(m, 'name', m)} without the top {k} budget(s) "
                 f"({train.n_runs} runs fitted, {test.n_runs} predicted; {method})")
            tasks.append({"model": m, "k": k, "train": train, "test": test, "method": method,
                          "seed": int(rng.integers(2**31 - 1)), "fit_kwargs": fit_kwargs,
                          "draws": draws, "shared": shared.get(k)})
    return tasks


def collect_heldout(done: Sequence[dict[str, Any]], n_origins: int) -> dict[str, HeldOut]:
    """``{family: HeldOut}`` from the results of :func:`heldout_tasks`' refits, in order."""
    out: dict[str, HeldOut] = {}
    for i in range(0, len(done), n_origins):
        parts = done[i:i + n_origins]
        name = parts[0]["name"]
        out[name] = HeldOut(name, pd.concat([p["table"] for p in parts], ignore_index=True),
                            np.concatenate([p["samples"] for p in parts], axis=1),
                            all(p["converged"] for p in parts))
    return out
