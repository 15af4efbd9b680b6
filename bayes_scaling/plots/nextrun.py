"""Plots of the next-run ranking (matplotlib; takes the ranking table, returns the Axes)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import LogNorm

from bayes_scaling.constants import DEFAULT_INTERVAL


def plot_next_runs(table: pd.DataFrame, *, ax: Any = None, top: int = 5) -> Any:
    """Expected band at the target after each candidate vs its cost; the best ``top`` labelled.

    Returns the matplotlib Axes. Colour: tokens per parameter; the dashed line is the band now.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    tpp = table["tokens_per_param"].to_numpy()
    sc = ax.scatter(table["flops"], table["band_after"], c=tpp, cmap="viridis",
                    norm=LogNorm(vmin=tpp.min(), vmax=max(tpp.max(), tpp.min() * 1.01)),
                    s=28, zorder=3)
    ax.figure.colorbar(sc, ax=ax, label="tokens per parameter")
    now = float(table.attrs.get("band_now", table["band_now"].iloc[0]))
    ax.axhline(now, color="k", ls="--", lw=1, label=f"{table.attrs.get('band', '')} band now")
    for _, r in table.head(top).iterrows():
        ax.annotate(f"#{int(r['rank'])} N={r['n_params']:.2g}", (r["flops"], r["band_after"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    interval = float(table.attrs.get("interval", DEFAULT_INTERVAL))
    ax.set(xscale="log", xlabel="cost of the candidate run (FLOPs, 6ND)",
           ylabel=f"expected {interval:.0%} band at the target (nats/token)",
           title="Which run next: band after the run vs its cost")
    ax.legend(loc="lower left", fontsize=8)
    return ax
