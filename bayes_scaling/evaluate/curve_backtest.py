"""Backtests of curve-law fits: refit without the largest sizes, score every held-out checkpoint.

``curve_backtest`` holds out the curves of the top K model sizes (per group), fits a curve law
(``dynamics`` or ``dynamics_schedule``) on the rest, predicts every checkpoint of the held-out
curves with its predictive band (one whole-curve offset per draw shared by a curve's
checkpoints, plus checkpoint residuals: independent, or the OU path of a ``residual = "ou"``
fit) and reports, per held-out curve and pooled: the median
absolute % error of the median and the coverage of the 50/80/90/95% bands; where the held-out
checkpoints follow several schedule shapes (``lr_schedule``: e.g. Gemstones' constant-rate
checkpoints and the cooled-down ones branched from them), also pooled per shape. The training curves
may be thinned (``train`` from :func:`~bayes_scaling.data.curves.load_curves`); the held-out
ones are scored on every checkpoint the ``test`` table holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import DEFAULT_PROBS
from bayes_scaling.data.curves import CurveTable
from bayes_scaling.data.support import levels
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.dynamics import fit_dynamics
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.schedules import checkpoint_draws
from bayes_scaling.query.summarize import pct
from bayes_scaling.types import SeedLike


@dataclass(frozen=True)
class CurveBacktest:
    """Held-out checkpoints with their bands (``points``), per-curve scores and the pooled ones."""

    points: pd.DataFrame
    curves: pd.DataFrame
    summary: Mapping[str, Any]
    fit: ScalingFit | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary plus per-curve records."""
        return {**self.summary, "curves": self.curves.to_dict(orient="records")}

    def to_text(self) -> str:
        """Per-curve rows and the pooled row, as a plain table."""
        cols = ["run_id", "n_params", "points", "median_abs_pct_error",
                *[c for c in self.curves.columns if c.startswith("coverage_")]]
        head = (f"curve backtest: model {self.summary['model']} (residual "
                f"{self.summary.get('residual', 'iid')}, likelihood "
                f"{self.summary.get('likelihood', 'normal')}, curve offsets "
                f"{self.summary.get('curve_offsets', 'curve')}"
                + (f", run-length term {self.summary['run_length_term']} (kappa "
                   f"{self.summary['run_length_kappa_median']:.2f})"
                   if self.summary.get("run_length_term", "none") != "none" else "")
                + "".join(f", {k} {v:g}" for k, v in self.summary.get("warmup_rule", {}).items())
                + f"), top {self.summary['holdout_top']}"
                f" size(s) held out; {self.summary['train_curves']} training curves "
                f"({self.summary['train_points']} points); gate "
                f"{'passed' if self.summary['gate_passed'] else 'FAILED'}")
        pooled = ", ".join(f"{k.removeprefix('coverage_')}%: {v:.0%}"
                           for k, v in self.summary.items() if k.startswith("coverage_"))
        tail = (f"pooled over {self.summary['test_points']} checkpoints: median abs % error "
                f"{self.summary['median_abs_pct_error']:.2f}; coverage {pooled}")
        for shape, sc in self.summary.get("by_schedule", {}).items():
            cov = ", ".join(f"{k.removeprefix('coverage_')}%: {v:.0%}"
                            for k, v in sc.items() if k.startswith("coverage_"))
            tail += (f"\n  {shape} checkpoints ({sc['points']}): median abs % error "
                     f"{sc['median_abs_pct_error']:.2f}; coverage {cov}")
        with pd.option_context("display.width", 200):
            body = self.curves[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return f"{head}\n{body}\n{tail}"


def split_top_sizes(curves: CurveTable, holdout_top: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(train, test)`` over checkpoints: test = curves at the top sizes.

    Sizes within 2% are one level; with several groups the levels are taken per group. At
    least 3 sizes must stay in every group.
    """
    if int(holdout_top) < 1:
        raise BayesScalingError(f"holdout_top must be >= 1, got {holdout_top}")
    test = np.zeros(curves.n_points, dtype=bool)
    gi, n = curves.group_index, curves.n
    for g in range(curves.n_groups):
        idx = np.flatnonzero(gi == g)
        lv = levels(n[idx])
        if lv.max() + 1 - holdout_top < 3:
            raise BayesScalingError(
                f"group {curves.group_names[g]!r} has {lv.max() + 1} model sizes: holding out "
                f"{holdout_top} leaves fewer than 3 to fit on")
        test[idx[lv > lv.max() - holdout_top]] = True
    return ~test, test


def score_curves(fit: ScalingFit, test: CurveTable, *, probs: Sequence[float] = DEFAULT_PROBS,
                 random_seed: SeedLike = None, offsets: str = "normal"
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Score every checkpoint of ``test``: ``(points, per-curve table, pooled scores)``.

    The pooled scores hold ``by_schedule`` (shape -> points, median abs % error, coverages)
    when the checkpoints carry more than one ``lr_schedule`` shape. ``offsets``: how a held-out
    curve's whole-curve offset is drawn (:func:`~bayes_scaling.query.schedules.checkpoint_draws`).
    """
    draws = checkpoint_draws(fit, test, band="predictive", random_seed=random_seed,
                             offsets=offsets)
    y = test.loss
    med = np.median(draws, axis=0)
    points = pd.DataFrame({"run_id": test.frame["run_id"].to_numpy(), "n_params": test.n,
                           "steps": test.s, "observed": y, "median": med,
                           "abs_pct_error": 100.0 * np.abs(med - y) / y})
    for p in sorted(probs):
        lo = np.quantile(draws, (1 - p) / 2, axis=0)
        hi = np.quantile(draws, (1 + p) / 2, axis=0)
        points[f"lo_{pct(p)}"], points[f"hi_{pct(p)}"] = lo, hi
        points[f"in_{pct(p)}"] = (y >= lo) & (y <= hi)
    inside = [f"in_{pct(p)}" for p in sorted(probs)]
    per = points.groupby("run_id", sort=False).agg(
        n_params=("n_params", "first"), points=("observed", "size"),
        median_abs_pct_error=("abs_pct_error", "median"),
        **{f"coverage_{c[3:]}": (c, "mean") for c in inside}).reset_index()
    pooled = {"test_curves": int(per.shape[0]), "test_points": len(points),
              "median_abs_pct_error": float(points["abs_pct_error"].median()),
              "median_of_curve_errors": float(per["median_abs_pct_error"].median()),
              "max_curve_error": float(per["median_abs_pct_error"].max()),
              **{f"coverage_{c[3:]}": float(points[c].mean()) for c in inside}}
    if "lr_schedule" in test.frame and test.frame["lr_schedule"].nunique() > 1:
        points["lr_schedule"] = test.frame["lr_schedule"].to_numpy()
        pooled["by_schedule"] = {
            str(shape): {"points": len(grp),
                         "median_abs_pct_error": float(grp["abs_pct_error"].median()),
                         **{f"coverage_{c[3:]}": float(grp[c].mean()) for c in inside}}
            for shape, grp in points.groupby("lr_schedule", sort=True)}
    return points, per, pooled


def curve_backtest(model: Any, train: CurveTable, test: CurveTable, *, holdout_top: int = 1,
                   chains: int = 4, draws: int = 1000, tune: int = 1000,
                   random_seed: SeedLike = 0, on_bad: str = "warn",
                   probs: Sequence[float] = DEFAULT_PROBS, **fit_kwargs: Any) -> CurveBacktest:
    """Fit ``model`` on ``train`` without its top sizes and score those sizes' curves in ``test``.

    Parameters
    ----------
    model : str or ModelSpec
        A curve-law model (``"dynamics"``, ``"dynamics_schedule"`` or a spec file).
    train : CurveTable
        The curves to fit (thinned as :func:`~bayes_scaling.data.curves.load_curves` chose);
        the curves at the top ``holdout_top`` sizes are dropped from it.
    test : CurveTable
        The curves to score (usually the same file loaded without thinning); only its curves
        at the held-out sizes are scored, on every checkpoint.
    holdout_top : int
        Number of largest sizes (per group) held out.
    chains, draws, tune, random_seed, on_bad, fit_kwargs
        Passed to :func:`~bayes_scaling.fitting.dynamics.fit_dynamics`.

    Returns
    -------
    CurveBacktest
    """
    keep, _ = split_top_sizes(train, holdout_top)
    cut = float(train.n[~keep].min())
    held = test.n >= cut * (1 - 0.02)
    if not held.any():
        raise BayesScalingError(f"{test.source}: no held-out curves at sizes >= {cut:.3g}")
    fit = fit_dynamics(model, train.subset(keep), chains=chains, draws=draws, tune=tune,
                       random_seed=random_seed, on_bad=on_bad, **fit_kwargs)
    points, per, pooled = score_curves(fit, test.subset(held), probs=probs,
                                       random_seed=np.random.default_rng([fit.meta["seed"], 7]))
    diag = fit.diagnostics
    summary = {"model": fit.spec.name, "residual": fit.spec.likelihood.residual,
               "likelihood": fit.spec.likelihood.family,
               "curve_offsets": (fit.meta.get("curve_offsets", "curve")
                                 if fit.meta.get("curve_effects") else "none"),
               "run_length_term": fit.spec.likelihood.run_length_term,
               "warmup_rule": dict(fit.meta.get("warmup_rule", {})),
               "holdout_top": int(holdout_top),
               "train_curves": int(train.subset(keep).n_curves),
               "train_points": int(keep.sum()), **pooled,
               "gate_passed": bool(diag.passed), "max_rhat": float(diag.max_rhat),
               "divergences": int(diag.divergences), "seconds": float(fit.meta.get(
                   "seconds", np.nan)),
               **{f"{v}_median": float(np.median(fit.posterior[v].values))
                  for v in ("sigma", "sigma_curve", "residual_length", "nu", "run_length_kappa")
                  if v in fit.posterior}}
    return CurveBacktest(points, per, summary, fit)
