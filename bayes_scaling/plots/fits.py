"""Matplotlib plots of fits: they take results or fits, draw on ``ax`` and return the Axes.

They never sample a model (queries are numpy), never change the caller's dicts, and label the
axes with units and the kind of band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FormatStrFormatter, LogLocator

from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.allocate import compute_optimal
from bayes_scaling.query.predict import predict_loss
from bayes_scaling.query.summarize import band_columns

AXIS_LABELS = {"n": "parameters N", "d": "training tokens D", "c": "training compute C (FLOP)"}


def _ax(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    return ax


def plot_loss_bands(
    fit: ScalingFit,
    *,
    x: str = "n",
    tokens_per_param: float = 20.0,
    query: tuple[float, float] | None = None,
    group: str | None = None,
    probs: Sequence[float] = (0.5, 0.9),
    ax: Axes | None = None,
    band_kws: Mapping[str, Any] | None = None,
    random_seed: int = 0,
) -> Axes:
    """Runs, the law band and the predictive band along ``D = tokens_per_param * N``.

    ``x`` is ``"n"`` or ``"c"``. ``query`` = ``(n, d)`` marks a proposed run and extends the
    curve to it.
    """
    ax = _ax(ax)
    runs = fit.runs
    n_hi = max(runs.n.max(), query[0] if query else 0) * 1.5
    n_grid = np.geomspace(runs.n.min() / 1.5, n_hi, 80)
    d_grid = tokens_per_param * n_grid
    xs = n_grid if x == "n" else 6 * n_grid * d_grid
    kws = {"alpha": 0.18, **(band_kws or {})}
    for band, color in (("predictive", "C0"), ("law", "C1")):
        res = predict_loss(fit, n_grid, d_grid, group=group, band=band, probs=probs,
                           random_seed=random_seed)
        s = res.summary
        for lo, hi, p in band_columns(s):
            ax.fill_between(xs, s[lo], s[hi], color=color, label=f"{p:.0%} {band} band", **kws)
        if band == "law":
            ax.plot(xs, s["median"], color="k", lw=1, label="median (law)")
    rx = runs.n if x == "n" else runs.flops
    sc = ax.scatter(rx, runs.loss, c=np.log10(runs.d), s=10, cmap="viridis", zorder=3,
                    label="runs")
    plt.colorbar(sc, ax=ax, label="log10 training tokens")
    if query is not None:
        qn, qd = query
        qx = qn if x == "n" else 6 * qn * qd
        res = predict_loss(fit, [qn], [qd], group=group, band="predictive", interval=0.9,
                           random_seed=random_seed)
        row = res.summary.iloc[0]
        ax.errorbar([qx], [row["median"]], yerr=[[row["median"] - row["lower"]],
                                                 [row["upper"] - row["median"]]],
                    fmt="*", color="C3", ms=12, capsize=4, zorder=4,
                    label=f"proposal: {row['median']:.3f} (90% predictive)")
    ax.set(xscale="log", yscale="log", xlabel=AXIS_LABELS[x], ylabel="loss (nats/token)",
           title=f"{fit.spec.name}: loss at D = {tokens_per_param:g}·N")
    _plain_y(ax)
    ax.legend(fontsize=7, loc="upper right")
    if fit.warning_banner:
        ax.text(0.01, 0.01, "NOT CONVERGED", transform=ax.transAxes, color="red")
    return ax


def _plain_y(ax: Axes) -> None:
    """Loss ticks as plain numbers (2.0, 2.5, 3) on a log axis."""
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0,
                                                         5.0, 6.0, 8.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter(""))


def plot_compute_optimal(fit: ScalingFit, *, flops: Sequence[float] | None = None,
                         group: str | None = None, ax: Axes | None = None,
                         random_seed: int = 0) -> Axes:
    """``N_opt(C)`` with its 50% and 90% law bands."""
    ax = _ax(ax)
    c = np.geomspace(1e18, 1e26, 40) if flops is None else np.asarray(flops, dtype=float)
    res = compute_optimal(fit, c, group=group, probs=(0.5, 0.9), random_seed=random_seed)
    s = res.summary[res.summary["quantity"] == "n_opt"]
    for lo, hi, p in band_columns(s):
        ax.fill_between(s["flops"], s[lo], s[hi], alpha=0.2, color="C2",
                        label=f"{p:.0%} law band")
    ax.plot(s["flops"], s["median"], color="C2", label=f"{fit.spec.name} median")
    ax.set(xscale="log", yscale="log", xlabel=AXIS_LABELS["c"], ylabel="compute-optimal N",
           title="compute-optimal model size")
    ax.legend(fontsize=7)
    return ax


def plot_posterior(fit: ScalingFit, *, kind: str = "forest", ax: Axes | Any = None) -> Any:
    """Posterior of the law's constants via ArviZ (``"forest"`` or ``"pair"``)."""
    import arviz as az  # lazy: ArviZ loads scipy.stats and its plotting stack (~1 s)

    names = list(fit.law.params)
    if kind == "pair":
        return az.plot_pair(fit.idata.to_arviz(), var_names=names, kind="kde", marginals=True,
                            ax=ax,
                            figsize=(8, 8))
    axes = az.plot_forest(fit.idata.to_arviz(), var_names=names, combined=True, hdi_prob=0.9,
                          ax=ax,
                          figsize=(6, 4))
    return axes[0] if isinstance(axes, np.ndarray) else axes
