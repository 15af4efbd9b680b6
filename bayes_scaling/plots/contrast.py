"""Plot of a contrast against compute: the compute multiplier of B over A and P(B better).

Takes a fit (queries are numpy), draws on ``ax`` and returns the Axes; never samples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.anchor import Weighting
from bayes_scaling.query.contrast import DiscrepancyMode, contrast_groups
from bayes_scaling.query.summarize import band_columns
from bayes_scaling.types import OnBad


def default_flops(fit: ScalingFit, points: int = 40) -> np.ndarray:
    """Budgets from the smallest training run to 1000x the largest."""
    c = fit.runs.flops
    return np.geomspace(c.min(), 1e3 * c.max(), points)


def plot_contrast(
    fit: ScalingFit,
    group_a: str,
    group_b: str,
    *,
    flops: Sequence[float] | None = None,
    tokens_per_param: float | None = None,
    discrepancy: DiscrepancyMode = "anchored",
    weighting: Weighting | None = None,
    on_mixed: OnBad = "raise",
    ax: Axes | None = None,
    random_seed: int = 0,
) -> Axes:
    """Compute multiplier of B over A (log scale) and P(B better) against compute.

    The multiplier's predictive median and 50%/90% bands (and the law's median) go on ``ax``
    (left axis); P(B better) under the
    law and predictive bands on a twin axis (right, 0-1). The largest training budget is marked.

    Parameters
    ----------
    fit : ScalingFit
    group_a, group_b : str
        Reference and alternative group.
    flops : sequence of float, optional
        Budgets (default :func:`default_flops`).
    tokens_per_param, discrepancy, weighting, on_mixed
        As :func:`bayes_scaling.query.contrast.contrast_groups`.
    ax : matplotlib Axes, optional
    random_seed : int

    Returns
    -------
    matplotlib.axes.Axes
        The multiplier's axes (the twin holds P(B better)).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.6, 4.4))
    c = default_flops(fit) if flops is None else np.asarray(flops, dtype=float)
    res = contrast_groups(fit, group_a, group_b, flops=c, tokens_per_param=tokens_per_param,
                          discrepancy=discrepancy, weighting=weighting, on_mixed=on_mixed,
                          probs=(0.5, 0.9),
                          random_seed=random_seed)
    s = res.summary
    m = s[(s["quantity"] == "multiplier") & (s["band"] == "predictive")]
    for lo, hi, p in band_columns(m):
        ax.fill_between(m["flops"], m[lo], m[hi], color="C0", alpha=0.15 + 0.15 * (p < 0.9),
                        lw=0, label=f"multiplier, {p:.0%} predictive band")
    ax.plot(m["flops"], m["median"], color="C0", lw=1.5, label="multiplier, predictive median")
    m_law = s[(s["quantity"] == "multiplier") & (s["band"] == "law")]
    ax.plot(m_law["flops"], m_law["median"], color="C0", lw=1.0, ls="--",
            label="multiplier, law median")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.axvline(fit.runs.flops.max(), color="0.3", lw=0.8, ls="--", label="largest training run")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOP)",
           ylabel=f"compute multiplier of {res.groups[1]} over {res.groups[0]} (C / C_B)",
           title=f"{res.groups[1]} vs {res.groups[0]}")
    twin = ax.twinx()
    for band, style in (("law", "-"), ("predictive", "--")):
        d = s[(s["quantity"] == "difference") & (s["band"] == band)]
        twin.plot(d["flops"], d["p_b_better"], color="C3", ls=style,
                  label=f"P({res.groups[1]} better), {band}")
    twin.set(ylim=(0, 1), ylabel="P(B better)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    if fit.warning_banner:
        ax.text(0.01, 0.01, "NOT CONVERGED", transform=ax.transAxes, color="red")
    return ax


def save_contrast_plot(fit: ScalingFit, group_a: str, group_b: str,
                       path: str | os.PathLike[str], **kwargs) -> None:
    """:func:`plot_contrast` written to ``path`` (PNG) atomically."""
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    plot_contrast(fit, group_a, group_b, ax=ax, **kwargs)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
