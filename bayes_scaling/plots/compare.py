"""Plots of a family comparison: loss bands of each family on one compute axis, and N_opt(C).

Like :mod:`bayes_scaling.plots.fits`: functions take fits (or a comparison), draw on ``ax`` and
return the Axes; they never sample a model and label the axes with units and the band.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from bayes_scaling.evaluate.compare import CompareResult
from bayes_scaling.evaluate.families import DIVERGE_MAX_FLOPS, allocation
from bayes_scaling.files import atomic_savefig
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.allocate import compute_optimal
from bayes_scaling.query.predict import predict_loss
from bayes_scaling.query.summarize import band_columns

C_LABEL = "training compute C = 6ND (FLOP)"


def _ax(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(6.8, 4.6))
    return ax


def _flops_grid(fits: Mapping[str, ScalingFit], flops: Sequence[float] | None) -> np.ndarray:
    if flops is not None:
        return np.asarray(flops, dtype=float)
    runs = next(iter(fits.values())).runs
    return np.geomspace(runs.flops.min() / 2, DIVERGE_MAX_FLOPS, 60)


def plot_compare_loss(
    fits: Mapping[str, ScalingFit],
    *,
    reference: str | None = None,
    tokens_per_param: float | None = None,
    flops: Sequence[float] | None = None,
    group: str | None = None,
    band: str = "predictive",
    probs: Sequence[float] = (0.9,),
    diverge: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    random_seed: int = 0,
) -> Axes:
    """Every family's loss band along one allocation, with the runs, on a compute axis.

    ``(N, D)`` at each budget is the reference's compute-optimal split (the first fit unless
    ``reference``), or ``D = tokens_per_param * N``. ``diverge`` (from
    :func:`bayes_scaling.evaluate.compare.where_they_part`) marks where the bands part.
    """
    ax = _ax(ax)
    names = list(fits)
    ref = reference or names[0]
    c = _flops_grid(fits, flops)
    n, d, how = allocation(fits[ref], c, group=group, tokens_per_param=tokens_per_param,
                           random_seed=random_seed)
    for i, (name, f) in enumerate(fits.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = predict_loss(f, n, d, group=group, band=band, probs=probs,
                             random_seed=random_seed).summary
        color = f"C{i}"
        for lo, hi, p in band_columns(s):
            if p in probs:
                ax.fill_between(c, s[lo], s[hi], color=color, alpha=0.2,
                                label=f"{name}: {p:.0%} {band} band")
        ax.plot(c, s["median"], color=color, lw=1.2)
    runs = fits[ref].runs
    ax.scatter(runs.flops, runs.loss, s=8, color="k", alpha=0.5, zorder=3, label="runs")
    ax.axvline(runs.flops.max(), color="grey", ls=":", lw=1, label="largest run")
    if diverge and diverge.get("flops"):
        ax.axvline(diverge["flops"], color="C3", ls="--", lw=1,
                   label=f"{diverge['interval']:.0%} {diverge.get('band', band)} bands part")
    ax.set(xscale="log", yscale="log", xlabel=C_LABEL, ylabel="loss (nats/token)",
           title=f"families compared; N, D: {how}")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7, loc="upper right")
    return ax


def plot_compare_optimal(
    fits: Mapping[str, ScalingFit],
    *,
    flops: Sequence[float] | None = None,
    group: str | None = None,
    probs: Sequence[float] = (0.5, 0.9),
    ax: Axes | None = None,
    random_seed: int = 0,
) -> Axes:
    """``N_opt(C)`` of every family with both inputs (N and D), with its law bands."""
    ax = _ax(ax)
    c = _flops_grid(fits, flops)
    for i, (name, f) in enumerate(fits.items()):
        if not {"n", "d"} <= set(f.law.inputs):
            continue
        res = compute_optimal(f, c, group=group, probs=probs, random_seed=random_seed)
        s = res.summary[res.summary["quantity"] == "n_opt"]
        for lo, hi, p in band_columns(s):
            ax.fill_between(s["flops"], s[lo], s[hi], color=f"C{i}",
                            alpha=0.3 if p < 0.9 else 0.15, label=f"{name}: {p:.0%} law band")
        ax.plot(s["flops"], s["median"], color=f"C{i}", lw=1.2, label=f"{name} median")
    runs = next(iter(fits.values())).runs
    ax.axvline(runs.flops.max(), color="grey", ls=":", lw=1, label="largest run")
    ax.set(xscale="log", yscale="log", xlabel=C_LABEL, ylabel="compute-optimal N (parameters)",
           title="compute-optimal model size by family")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def save_compare_plots(result: CompareResult, out_dir: str | Path, *,
                       random_seed: int = 0) -> list[Path]:
    """Write ``compare_loss.png`` and ``compare_optimal.png`` to ``out_dir`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    group = result.meta.get("group")
    written = []
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    plot_compare_loss(result.fits, group=group, diverge=result.diverge, ax=ax,
                      reference=result.diverge.get("reference"),
                      tokens_per_param=result.diverge.get("tokens_per_param"),
                      random_seed=random_seed)
    written.append(atomic_savefig(fig, out / "compare_loss.png", dpi=130, bbox_inches="tight"))
    plt.close(fig)
    if any({"n", "d"} <= set(f.law.inputs) for f in result.fits.values()):
        fig, ax = plt.subplots(figsize=(7.2, 4.8))
        plot_compare_optimal(result.fits, group=group, ax=ax, random_seed=random_seed)
        written.append(atomic_savefig(fig, out / "compare_optimal.png", dpi=130,
                                      bbox_inches="tight"))
        plt.close(fig)
    return written
