"""The figures of the risk report, drawn from the report dict alone (no fit, no PyMC).

:func:`make_figures` returns matplotlib figures keyed by the section that shows them
(``extrapolation``, ``alternative``, ``backtest``, ``dynamics``); :func:`png_bytes` renders one
reproducibly (no timestamp in the file). :mod:`bayes_scaling.report.write` places them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import ScalarFormatter

from bayes_scaling.report.blocks import LIKELY, primary_family
from bayes_scaling.report.formats import human

#: Resolution of the report's figures.
FIGURE_DPI = 100


def _arr(v: Any) -> np.ndarray:
    return np.array([np.nan if x is None else (np.inf if x == "inf" else x) for x in v],
                    dtype=float)


def make_figures(risk: Mapping[str, Any]) -> dict[str, Any]:
    """The report's matplotlib figures, drawn from the dict only.

    Parameters
    ----------
    risk : Mapping
        The report dict (``report.json``).

    Returns
    -------
    dict of str to Figure
        ``extrapolation`` and ``alternative`` always, ``backtest`` when the backtest ran,
        ``dynamics`` when that section is included.
    """
    figs = {"extrapolation": _fig_extrapolation(risk), "alternative": _fig_alternative(risk)}
    t = risk["trust"]
    if isinstance(t, Mapping) and t.get("status") == "ok":
        figs["backtest"] = _fig_backtest(risk)
    if risk["dynamics"].get("included"):
        figs["dynamics"] = _fig_dynamics(risk)
    return figs


def _fig_dynamics(risk: Mapping[str, Any]) -> Any:
    dyn = risk["dynamics"]
    cv = dyn["curve"]
    s = _arr(cv["steps"])
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.fill_between(s, _arr(cv["predictive"]["lo_90"]), _arr(cv["predictive"]["hi_90"]),
                    color="C0", alpha=0.15, label="90% predictive")
    ax.fill_between(s, _arr(cv["predictive"]["lo_50"]), _arr(cv["predictive"]["hi_50"]),
                    color="C0", alpha=0.3, label="50% predictive")
    ax.fill_between(s, _arr(cv["law"]["lo_90"]), _arr(cv["law"]["hi_90"]), color="C1",
                    alpha=0.4, label="90% law band")
    ax.plot(s, _arr(cv["law"]["median"]), color="k", lw=1, label="median (law)")
    ax.axhline(risk["plan"]["target_loss"], color="C3", ls=":", lw=0.8, label="target")
    ax.axvline(dyn["steps_plan"], color="C3", ls="--", lw=0.8, label="planned steps")
    ax.set(xscale="log", yscale="log", xlabel="optimizer steps S", ylabel="loss (nats/token)",
           title=f"planned run's loss curve at B = {human(dyn['batch_size'])} tokens")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fig_extrapolation(risk: Mapping[str, Any]) -> Any:
    fam = primary_family(risk)
    runs, curves = risk["figures"]["runs"], risk["figures"]["curve"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.3))
    cv = curves[fam]
    c = _arr(cv["flops"])
    ax.fill_between(c, _arr(cv["predictive"]["lo_90"]), _arr(cv["predictive"]["hi_90"]),
                    color="C0", alpha=0.15, label=f"90% predictive ({fam})")
    for p, a in ((90, 0.25), (50, 0.45)):
        ax.fill_between(c, _arr(cv["law"][f"lo_{p}"]), _arr(cv["law"][f"hi_{p}"]), color="C1",
                        alpha=a, label=f"{p}% law band ({fam})")
    for i, (name, other) in enumerate(curves.items()):
        ax.plot(_arr(other["flops"]), _arr(other["law"]["median"]), lw=1,
                ls="-" if name == fam else "--", color="k" if name == fam else f"C{i + 2}",
                label=f"median, {name}")
    sc = ax.scatter(_arr(runs["flops"]), _arr(runs["loss"]), c=np.log10(_arr(runs["n_tokens"])),
                    s=9, cmap="viridis", zorder=3, label="runs")
    fig.colorbar(sc, ax=ax, label="log10 tokens")
    plan, v = risk["plan"], risk["verdict"]["families"][fam]["predictive"]
    ax.errorbar([plan["flops"]], [v["median"]], yerr=[[v["median"] - v["lo_90"]],
                                                       [v["hi_90"] - v["median"]]],
                fmt="*", ms=13, color="C3", capsize=4, zorder=4, label="plan (90% predictive)")
    ax.axhline(plan["target_loss"], color="C3", lw=0.8, ls=":", label="target")
    ax.axvline(risk["extrapolation"]["flops"]["largest_run"], color="0.5", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOP)",
           ylabel="loss (nats/token)", title="loss vs compute, D/N as planned")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.legend(fontsize=6.5, loc="upper right")
    n, d = _arr(runs["n_params"]), _arr(runs["n_tokens"])
    bx.scatter(n, d, s=9, c="0.3", label="runs")
    alt = risk["alternative"]["average"] or risk["alternative"]["families"][risk["families"][0]]
    grid_n = np.geomspace(n.min() / 2, max(n.max(), plan["n_params"]) * 4, 50)
    bx.plot(grid_n, plan["flops"] / (6 * grid_n), color="C3", lw=0.8, ls="--",
            label="same FLOPs as the plan")
    bx.plot([plan["n_params"]], [plan["n_tokens"]], "*", ms=13, color="C3", label="plan")
    bx.plot([alt["best"]["n_params"]], [alt["best"]["n_tokens"]], "D", ms=7, color="C2",
            label="best split (P(target))")
    bx.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="training tokens D",
           title="runs and plan in (N, D)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fig_alternative(risk: Mapping[str, Any]) -> Any:
    g = risk["figures"]["grid"]
    r, k = _arr(g["tokens_per_param"]), _arr(g["budget_decades"])
    row = int(np.argmin(np.abs(k)))
    grids = {("model average" if f == "average" else f): np.array(v, dtype=float)
             for f, v in sorted(g["p_target"].items(), key=lambda kv: kv[0] != "average")}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    plan = risk["plan"]
    for i, (name, p) in enumerate(grids.items()):
        style = {"color": "k", "lw": 2} if name == "model average" else {"color": f"C{i}"}
        ax.plot(r, p[row], label=name, **style)
        bx.plot(plan["flops"] * 10**k, p.max(axis=1), label=name, **style)
    for a in (ax, bx):
        a.axhline(LIKELY, color="0.4", ls=":", lw=0.8)
        a.set(xscale="log", ylim=(-0.02, 1.02), ylabel="P(loss ≤ target), predictive")
        a.legend(fontsize=7)
    ax.axvline(plan["tokens_per_param"], color="C3", ls="--", lw=0.8)
    ax.set(xlabel="tokens per parameter at the planned FLOPs", title="splits of the plan's budget")
    bx.axvline(plan["flops"], color="C3", ls="--", lw=0.8)
    bx.set(xlabel="FLOP budget (best split)", title="best split of each budget")
    fig.tight_layout()
    return fig


def _fig_backtest(risk: Mapping[str, Any]) -> Any:
    t = risk["trust"]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    order = {q["run_id"]: i for i, q in enumerate(t["bayes"]["runs"])}
    for j, (key, label) in enumerate((("bayes", "Bayesian"), ("baseline", "Huber + bootstrap"))):
        rec = t.get(key) or {}
        if rec.get("status", "ok") != "ok":
            continue
        runs = [q for q in rec["runs"] if q["run_id"] in order]
        x = np.array([order[q["run_id"]] for q in runs]) + (j - 0.5) * 0.2
        med = _arr([q["median"] for q in runs])
        lo, hi = _arr([q["lo_90"] for q in runs]), _arr([q["hi_90"] for q in runs])
        ax.errorbar(x, med, yerr=[med - lo, hi - med], fmt="o", ms=4, capsize=3, color=f"C{j}",
                    label=f"{label}: median, 90% band")
    obs = _arr([q["observed"] for q in t["bayes"]["runs"]])
    ax.plot(np.arange(obs.size), obs, "kx", ms=8, mew=2, label="observed")
    ax.set_xticks(np.arange(obs.size))
    ax.set_xticklabels([f"{q['n_params']:.2g}\n{q['n_tokens']:.2g}" for q in t["bayes"]["runs"]],
                       fontsize=7)
    ax.set(xlabel="held-out run (N over D)", ylabel="loss (nats/token)",
           title="held-out predictions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes at the report's resolution, without a timestamp.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure of :func:`make_figures`.

    Returns
    -------
    bytes
        The PNG file's bytes.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buf.getvalue()


def figure_pngs(risk: Mapping[str, Any]) -> dict[str, bytes]:
    """Every figure of :func:`make_figures` as PNG bytes (the figures closed afterwards).

    Parameters
    ----------
    risk : Mapping
        The report dict (``report.json``).

    Returns
    -------
    dict of str to bytes
        PNG bytes per figure key.
    """
    out = {}
    for key, fig in make_figures(risk).items():
        out[key] = png_bytes(fig)
        plt.close(fig)
    return out
