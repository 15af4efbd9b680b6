"""Plots of curve-law fits: loss curves with predicted bands, and the critical batch size.

Like :mod:`bayes_scaling.plots.fits`: they take a fit (and results), draw on ``ax``, return the
Axes,
never sample a model and never change the caller's dicts; axes carry units and band names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from bayes_scaling.data.curves import CurveTable
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.curves import critical_batch_size, predict_curve
from bayes_scaling.query.summarize import band_columns


def _ax(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    return ax


def _size_colours(sizes: np.ndarray) -> dict[float, Any]:
    logs = np.log10(np.unique(sizes))
    span = max(float(logs.max() - logs.min()), 1e-9)
    cmap = plt.get_cmap("viridis")
    return {float(s): cmap(0.9 * (np.log10(s) - logs.min()) / span) for s in np.unique(sizes)}


def plot_curves(
    fit: ScalingFit,
    *,
    predict: Sequence[tuple[float, float]] = (),
    held_out: CurveTable | None = None,
    group: str | None = None,
    probs: Sequence[float] = (0.5, 0.9),
    ax: Axes | None = None,
    band_kws: Mapping[str, Any] | None = None,
    random_seed: int = 0,
) -> Axes:
    """Observed curves with their fitted law, and predicted curves with bands.

    Parameters
    ----------
    fit : ScalingFit
        A curve-law fit; its curves are drawn as dots (coloured by N) with the law's median
        along each (thin line).
    predict : sequence of (n_params, batch_size)
        Curves to predict (e.g. a larger model): predictive bands for ``probs`` and the law's
        median, over the fitted step range (or the held-out curves' steps, if wider).
    held_out : CurveTable, optional
        Curves not used in the fit (e.g. the largest model of a backtest), drawn as black
        crosses.
    """
    ax = _ax(ax)
    runs = fit.runs
    colours = _size_colours(np.append(runs.n, [n for n, _ in predict]))
    for cid in runs.curve_ids:
        part = runs.subset(np.asarray(runs.run_ids) == cid)
        n, b = float(part.n[0]), float(part.b[0])
        ax.scatter(part.s, part.loss, s=6, color=colours[n], zorder=3)
        med = predict_curve(fit, n, b, part.s, group=group, band="law", random_seed=random_seed)
        ax.plot(part.s, med.summary["median"], color=colours[n], lw=0.8)
    s_lo, s_hi = float(runs.s.min()), float(runs.s.max())
    if held_out is not None:
        s_lo, s_hi = min(s_lo, float(held_out.s.min())), max(s_hi, float(held_out.s.max()))
        ax.scatter(held_out.s, held_out.loss, marker="x", s=10, color="k", zorder=4,
                   label="held-out curve(s)")
    steps = np.geomspace(s_lo, s_hi, 80)
    kws = {"alpha": 0.18, **(band_kws or {})}
    for n, b in predict:
        res = predict_curve(fit, n, b, steps, group=group, probs=probs, random_seed=random_seed)
        for lo, hi, p in band_columns(res.summary):
            ax.fill_between(steps, res.summary[lo], res.summary[hi], color=colours[float(n)],
                            label=f"N={n:.3g}, B={b:.3g}: {p:.0%} predictive band", **kws)
        law = predict_curve(fit, n, b, steps, group=group, band="law", random_seed=random_seed)
        ax.plot(steps, law.summary["median"], color=colours[float(n)], lw=1.5, ls="--",
                label=f"N={n:.3g}: law median")
    ax.set(xscale="log", yscale="log", xlabel="optimizer steps S",
           ylabel="loss (nats/token)", title=f"{fit.spec.name}: loss curves (dots: fitted)")
    ax.legend(fontsize=7, loc="upper right")
    if fit.warning_banner:
        ax.text(0.01, 0.01, "NOT CONVERGED", transform=ax.transAxes, color="red")
    return ax


def plot_critical_batch(
    fit: ScalingFit,
    *,
    loss: Sequence[float] | None = None,
    group: str | None = None,
    probs: Sequence[float] = (0.5, 0.9),
    ax: Axes | None = None,
    random_seed: int = 0,
) -> Axes:
    """``B_crit(L)`` with its law bands, and the batch sizes of the fitted runs.

    Each fitted checkpoint is drawn at (its loss, its batch size): runs above the band trained
    past the critical batch size (steps-efficient, token-hungry), runs below it under it.
    """
    ax = _ax(ax)
    runs = fit.runs
    grid = (np.geomspace(runs.loss.min() * 0.8, runs.loss.max() * 1.2, 60) if loss is None
            else np.asarray(loss, dtype=float))
    res = critical_batch_size(fit, grid, group=group, probs=probs, random_seed=random_seed)
    s = res.summary
    for lo, hi, p in band_columns(s):
        ax.fill_between(grid, s[lo], s[hi], color="C1", alpha=0.2, label=f"{p:.0%} law band")
    ax.plot(grid, s["median"], color="C1", label="B_crit(L) median")
    ax.scatter(runs.loss, runs.b, s=8, color="C0", zorder=3, label="fitted runs' batch sizes")
    for b in np.unique(runs.b):
        ax.axhline(b, color="C0", lw=0.5, alpha=0.4)
    ax.set(xscale="log", yscale="log", xlabel="loss L (nats/token)",
           ylabel="batch size (tokens)", title="critical batch size B_crit(L) = B*/L^(1/alpha_B)")
    ax.legend(fontsize=7)
    return ax
