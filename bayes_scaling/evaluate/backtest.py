"""Backtests: refit without the largest runs, predict them, and score the bands.

``backtest`` holds out the top K model sizes (or compute budgets), refits the model on the rest
(the Bayesian fit, or the Huber+bootstrap baseline with ``method="huber-bootstrap"``), predicts
every held-out run with its predictive band and reports, per run and in summary: coverage of
the 50/80/90/95% bands, the median absolute % error of the median, the mean log predictive
density, the 90% interval score and the CRPS. ``rolling_origin`` repeats it for K = 1, 2, 3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from bayes_scaling.constants import DEFAULT_PROBS
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import budget_levels, decades_outside, levels
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.parallel import run_many
from bayes_scaling.fitting.fit import fit, fit_baseline
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import (
    discrepancy_lambda,
    discrepancy_scale,
    discrepancy_shift,
    fit_box,
    flat,
    group_theta,
    log_loss_draws,
)
from bayes_scaling.query.summarize import pct
from bayes_scaling.types import ProgressFn, SeedLike

HOLDOUT_BY = ("n_params", "flops")
#: Bins of the PIT histogram.
PIT_BINS = 10
METHODS = ("bayes", "huber-bootstrap")


@dataclass(frozen=True)
class BacktestResult:
    """Per-run predictions of the held-out runs and their scores."""

    table: pd.DataFrame
    summary: Mapping[str, Any]
    fit: ScalingFit | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary plus per-run records."""
        return {**self.summary, "runs": self.table.to_dict(orient="records")}


def split_top(runs: RunTable, *, holdout_by: str = "n_params",
              holdout_top: int = 1) -> tuple[RunTable, RunTable]:
    """``(train, test)``: test = the runs at the top ``holdout_top`` levels of ``holdout_by``.

    Size levels merge values within 2% (digitised sizes); budget levels are log bins of
    :data:`~bayes_scaling.data.support.BUDGET_BIN_DECADES` anchored at the largest compute, as
    isoFLOP ladders are planned (:func:`~bayes_scaling.data.support.budget_levels`). With several
    groups, the levels are taken per group.

    Parameters
    ----------
    runs : RunTable
        The ladder.
    holdout_by : {"n_params", "flops"}
        Hold out the largest model sizes or compute budgets.
    holdout_top : int
        How many top levels to hold out.

    Returns
    -------
    tuple of RunTable
        ``(train, test)``.
    """
    if holdout_by not in HOLDOUT_BY:
        raise BayesScalingError(f"holdout_by must be one of {', '.join(HOLDOUT_BY)}, "
                                f"got {holdout_by!r}")
    if int(holdout_top) < 1:
        raise BayesScalingError(f"holdout_top must be >= 1, got {holdout_top}")
    values = runs.n if holdout_by == "n_params" else runs.flops
    test = np.zeros(runs.n_runs, dtype=bool)
    for g in range(runs.n_groups):
        idx = np.flatnonzero(runs.group_index == g)
        lv = levels(values[idx]) if holdout_by == "n_params" else budget_levels(values[idx])
        if lv.max() + 1 - holdout_top < 3:
            raise BayesScalingError(
                f"group {runs.group_names[g]!r} has {lv.max() + 1} distinct {holdout_by} levels: "
                f"holding out {holdout_top} leaves fewer than 3 to fit on")
        test[idx[lv > lv.max() - holdout_top]] = True
    return runs.subset(~test), runs.subset(test)


def _log_density(fit_: ScalingFit, test: RunTable, rng: np.random.Generator) -> np.ndarray:
    """Log p(observed log loss) per held-out run, averaged over draws.

    Per draw the predictive is a Student-t (or Normal) at the law's mean (moved by the fit's
    signed drift, if any) with scale ``sqrt(sigma^2 + discrepancy sd^2)``: exact without
    discrepancy, a moment-matched approximation of the noise-plus-discrepancy convolution otherwise.
    """
    law = fit_.law
    dens = np.zeros(test.n_runs)
    far = decades_outside(fit_box(fit_), test.n, test.d)
    post = fit_.posterior
    for g in np.unique(test.group_index):
        sel = test.group_index == g
        theta = {k: v[:, None] for k, v in
                 group_theta(fit_, test.group_names[g], rng=rng).items()}
        far_g = {k: v[sel] for k, v in far.items()}
        mu = law.evaluate_log({"n": test.log_n[sel][None, :], "d": test.log_d[sel][None, :]},
                              theta) + discrepancy_shift(fit_, far_g)
        sigma = flat(post["sigma"])[:, None]
        lam = discrepancy_lambda(fit_, rng)  # a Student-t discrepancy: its mixture, per draw
        scale = np.sqrt(sigma**2 + discrepancy_scale(fit_, far_g, lam) ** 2)
        y = test.log_loss[sel][None, :]
        if "nu" in post:
            lp = stats.t.logpdf(y, df=flat(post["nu"])[:, None], loc=mu, scale=scale)
        else:
            lp = stats.norm.logpdf(y, loc=mu, scale=scale)
        dens[sel] = special.logsumexp(lp, axis=0) - np.log(lp.shape[0])
    return dens


def _crps(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of sample-based forecasts (columns) at observations ``y`` (energy form)."""
    s = np.sort(samples, axis=0)
    m = s.shape[0]
    term1 = np.mean(np.abs(s - y[None, :]), axis=0)
    w = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    term2 = np.sum(w * s, axis=0) / (m * m)
    return term1 - term2


def score(fit_: ScalingFit, test: RunTable, *, probs: Sequence[float] = DEFAULT_PROBS,
          random_seed: int | np.random.Generator | None = None) -> BacktestResult:
    """Predict the runs of ``test`` with ``fit_`` and score the predictive bands."""
    rng = np.random.default_rng(random_seed)
    samples = np.empty((flat(fit_.posterior["sigma"]).shape[0], test.n_runs))
    for g in np.unique(test.group_index):
        sel = np.flatnonzero(test.group_index == g)
        name = test.group_names[g]
        group = name if name in fit_.group_names else "new"
        samples[:, sel] = np.exp(log_loss_draws(fit_, test.n[sel], test.d[sel], group=group,
                                                band="predictive", rng=rng))
    y = test.loss
    med = np.median(samples, axis=0)
    far = decades_outside(fit_box(fit_), test.n, test.d)
    table = pd.DataFrame({"run_id": test.run_ids, "group": [test.group_names[i] for i in
                                                            test.group_index],
                          "n_params": test.n, "n_tokens": test.d, "observed": y, "median": med,
                          "abs_pct_error": 100 * np.abs(med - y) / y,
                          "decades_out": far["distance"],
                          "decades_past_c": far["c_past_max"],
                          "pit": np.mean(samples < y[None, :], axis=0)})
    for p in sorted(set(probs) | {0.9}):
        lo = np.quantile(samples, (1 - p) / 2, axis=0)
        hi = np.quantile(samples, (1 + p) / 2, axis=0)
        table[f"lo_{pct(p)}"], table[f"hi_{pct(p)}"] = lo, hi
        table[f"in_{pct(p)}"] = (y >= lo) & (y <= hi)
    lo90, hi90 = table["lo_90"], table["hi_90"]
    interval_score = (hi90 - lo90) + (2 / 0.1) * ((lo90 - y) * (y < lo90) + (y - hi90) * (y > hi90))
    table["log_pred_density"] = _log_density(fit_, test, rng)
    table["crps"] = _crps(samples, y)
    table["interval_score_90"] = np.asarray(interval_score)
    summary = {"method": fit_.method, "model": fit_.spec.name, "n_train": fit_.runs.n_runs,
               **summarize_table(table, probs), "converged": fit_.diagnostics.passed}
    return BacktestResult(table=table, summary=summary, fit=fit_)


def summarize_table(table: pd.DataFrame, probs: Sequence[float] = DEFAULT_PROBS
                    ) -> dict[str, Any]:
    """Scores of a per-run backtest table (one :func:`score`, or several concatenated).

    Parameters
    ----------
    table : DataFrame
        Per-run rows as :func:`score` writes them.
    probs : sequence of float
        Nominal band probabilities to report coverage for.

    Returns
    -------
    dict
        ``n_holdout``, ``coverage`` (``{"50": ...}``), ``median_abs_pct_error``,
        ``mean_log_pred_density``, ``mean_crps``, ``mean_interval_score_90``,
        ``mean_rel_width_90``, ``pit_histogram`` (counts of the PIT values in ten equal bins:
        flat when calibrated, U-shaped when the bands are too narrow, peaked when too wide).
    """
    return {
        "n_holdout": len(table),
        "coverage": {pct(p): float(table[f"in_{pct(p)}"].mean()) for p in sorted(probs)},
        "median_abs_pct_error": float(np.median(table["abs_pct_error"])),
        "mean_log_pred_density": float(table["log_pred_density"].mean()),
        "mean_crps": float(table["crps"].mean()),
        "mean_interval_score_90": float(table["interval_score_90"].mean()),
        "mean_rel_width_90": float(np.mean((table["hi_90"] - table["lo_90"]) / table["median"])),
        "pit_histogram": np.histogram(table["pit"], bins=PIT_BINS, range=(0, 1))[0].tolist(),
    }


def split_query(runs: RunTable, test_query: str) -> tuple[RunTable, RunTable]:
    """``(train, test)``: test = the runs matching the pandas query ``test_query``.

    The query sees the columns ``n_params``, ``n_tokens``, ``flops``, ``loss`` and ``group``,
    e.g. ``"flops > 1e20"`` or ``"n_params >= 1e9 and n_tokens > 2e10"``.

    Parameters
    ----------
    runs : RunTable
        The ladder.
    test_query : str
        Which runs to hold out.

    Returns
    -------
    tuple of RunTable
        ``(train, test)``.
    """
    frame = pd.DataFrame({"n_params": runs.n, "n_tokens": runs.d, "flops": runs.flops,
                          "loss": runs.loss,
                          "group": [runs.group_names[i] for i in runs.group_index]})
    try:
        mask = np.asarray(frame.eval(test_query), dtype=bool)
    except Exception as exc:  # pandas raises many kinds for a bad expression
        raise BayesScalingError(f"--test-query {test_query!r}: {type(exc).__name__}: {exc} "
                                "(columns: n_params, n_tokens, flops, loss, group)") from None
    if mask.shape != (runs.n_runs,):
        raise BayesScalingError(f"--test-query {test_query!r} must give one true/false per run")
    if not mask.any():
        raise BayesScalingError(f"--test-query {test_query!r} selects no run to hold out")
    for g in range(runs.n_groups):
        left = np.sum(~mask & (runs.group_index == g))
        if np.any(mask & (runs.group_index == g)) and left < 3:
            raise BayesScalingError(f"--test-query {test_query!r} leaves {left} training runs in "
                                    f"group {runs.group_names[g]!r} (need at least 3)")
    return runs.subset(~mask), runs.subset(mask)


def _baseline_per_group(model: Any, train: RunTable, test: RunTable, *, probs: Sequence[float],
                        seed: int, rng: np.random.Generator) -> BacktestResult:
    """The Huber+bootstrap baseline fitted and scored one group at a time, pooled."""
    tables, n_train = [], 0
    for name in dict.fromkeys(test.group_names[i] for i in np.unique(test.group_index)):
        tr = train.subset(np.asarray(train.group_names)[train.group_index] == name)
        te = test.subset(np.asarray(test.group_names)[test.group_index] == name)
        fitted = fit_baseline(model, tr, random_seed=seed)
        tables.append(score(fitted, te, probs=probs, random_seed=rng).table)
        n_train += tr.n_runs
    table = pd.concat(tables, ignore_index=True)
    summary = {"method": "huber-bootstrap", "model": fitted.spec.name, "n_train": n_train,
               **summarize_table(table, probs), "converged": True,
               "note": "fitted per group (the baseline has no hierarchy)"}
    return BacktestResult(table=table, summary=summary, fit=None)


def backtest(
    runs: RunTable,
    model: Any = "chinchilla",
    *,
    holdout_by: Literal["n_params", "flops"] = "n_params",
    holdout_top: int = 1,
    test_query: str | None = None,
    method: Literal["bayes", "huber-bootstrap"] = "bayes",
    probs: Sequence[float] = DEFAULT_PROBS,
    random_seed: SeedLike = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    on_progress: ProgressFn | None = None,
) -> BacktestResult:
    """Hold out the runs a user will extrapolate to, refit on the rest, predict and score.

    Parameters
    ----------
    runs : RunTable
        The ladder (one or several groups).
    model : str or ModelSpec
        The model to fit.
    holdout_by : {"n_params", "flops"}
        Hold out the top ``holdout_top`` model sizes, or compute budgets (quarter-decade bins,
        :func:`split_top`).
    holdout_top : int
        How many top levels to hold out.
    test_query : str, optional
        An explicit split instead (:func:`split_query`), e.g. ``"flops > 1e20"``.
    method : {"bayes", "huber-bootstrap"}
        The Bayesian fit, or the Huber+bootstrap baseline (fitted per group).
    probs : sequence of float
        Band probabilities to score.
    random_seed : int or Generator, optional
        Seed of the refit and the predictive draws.
    fit_kwargs : mapping, optional
        Passed to :func:`~bayes_scaling.fitting.fit.fit`.
    on_progress : callable, optional
        Receives progress messages.

    Returns
    -------
    BacktestResult
        The held-out runs with their predicted bands and scores, and the refit.
    """
    if method not in METHODS:
        raise BayesScalingError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    rng = np.random.default_rng(random_seed)
    if test_query is not None:
        train, test = split_query(runs, test_query)
        what = f"query {test_query!r}"
    else:
        train, test = split_top(runs, holdout_by=holdout_by, holdout_top=holdout_top)
        what = f"top {holdout_top} by {holdout_by}"
    seed = int(rng.integers(2**31 - 1))
    tell = on_progress or (lambda _m: None)
    tell(f"backtest: {train.n_runs} training runs, {test.n_runs} held out ({what}), "
         f"method {method}")
    if method == "bayes":
        fitted = fit(model, train, random_seed=seed, on_progress=tell, **dict(fit_kwargs or {}))
        result = score(fitted, test, probs=probs, random_seed=rng)
    elif train.n_groups > 1:
        result = _baseline_per_group(model, train, test, probs=probs, seed=seed, rng=rng)
    else:
        result = score(fit_baseline(model, train, random_seed=seed), test, probs=probs,
                       random_seed=rng)
    result.summary.update({"holdout_by": holdout_by if test_query is None else "query",  # type: ignore[union-attr]
                           "holdout_top": holdout_top if test_query is None else None,
                           "test_query": test_query, "seed": seed})
    return result


def rolling_origin(runs: RunTable, model: Any = "chinchilla", *, tops: Sequence[int] = (1, 2, 3),
                   workers: int | None = None, address: Any = None,
                   on_progress: Callable[[str], None] | None = None,
                   **kwargs: Any) -> list[BacktestResult]:
    """:func:`backtest` for each number of held-out levels in ``tops``, run in parallel.

    ``workers`` local processes by default (:func:`bayes_scaling.evaluate.parallel.run_many`), or
    the
    Dask cluster at ``address``. Each refit gets the seed ``random_seed + k``.
    """
    seed = kwargs.pop("random_seed", 0)
    base = int(seed) if isinstance(seed, int | np.integer) else 0
    tasks = [{"runs": runs, "model": model, "holdout_top": k, "random_seed": base + k, **kwargs}
             for k in tops]
    return run_many(backtest, tasks, workers=workers, address=address, on_progress=on_progress)


def calibration_table(results: Sequence[BacktestResult],
                      probs: Sequence[float] = DEFAULT_PROBS) -> pd.DataFrame:
    """Nominal vs empirical coverage, pooled over the held-out runs of several backtests.

    One row per (method, nominal probability): ``method``, ``nominal``, ``empirical``,
    ``n_runs``; plus the pooled median absolute % error of the median prediction.
    """
    rows = []
    by_method: dict[str, list[pd.DataFrame]] = {}
    for r in results:
        by_method.setdefault(str(r.summary["method"]), []).append(r.table)
    for method, tables in by_method.items():
        t = pd.concat(tables, ignore_index=True)
        for p in probs:
            col = f"in_{pct(p)}"
            if col in t:
                rows.append({"method": method, "nominal": p, "empirical": float(t[col].mean()),
                             "n_runs": len(t),
                             "median_abs_pct_error": float(np.median(t["abs_pct_error"]))})
    return pd.DataFrame(rows)
