"""Where the two remaining misfits sit: signed residuals of today's law at its MAP.

Session 13 of issue 16, round 3 (diagnosis before any candidate). Today's law
(``dynamics_schedule`` on Gemstones, ``dynamics_schedule_fixed_b`` on (Mis)Fitting), curve
offsets, MAP by ``law_run_length.map_cell`` (signed % errors of the law's mean, offsets not
added). Two questions:

(a) Gemstones, base and half learning rate (``--holdout-top 2``: 3 held-out models): is the
    held-out error a level shared by every held-out size, a slope with size, or tied to the
    cooldown rows? Reported: signed error per held-out model and phase, and the training
    curves' mean residual against log N (its least-squares slope per e-fold of N).
(b) (Mis)Fitting (top 1-3 held out): the signed error against absolute step, by size, for
    the training curves and the held-out ones, under today's 10% rule and the m = 1 cut.

Run: ``nice -n 19 python benchmarks/law_diagnosis.py`` (one JSON per set and cut in
``results/residual_cache/law_diag_*.json``); writes ``results/law_diagnosis.md``.
"""

from __future__ import annotations

import json
import os
import warnings
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
from law_run_length import map_cell
from law_warmup_cut import cut_tables
from residual_candidates import tables

warnings.simplefilter("ignore")
HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "residual_cache"
GEM = ("gem", "gemhalf")
MIS = tuple((f"mis{k}", c) for k in (1, 2, 3) for c in ("10%", "m1"))
STEPS = (50, 128, 256, 384, 512, 1024, 2048, 4096, 1e9)


def _cell(name: str, cut: str | None):
    path = CACHE / f"law_diag_{name}_{(cut or 'default').replace('%', 'pct')}.json"
    loaded = tables(name, None) if cut is None else cut_tables(name, cut)
    if not path.exists():
        out = map_cell(*loaded, "none", "curve", signed=True)
        path.write_text(json.dumps(out))
        print(name, cut, out["err"], flush=True)
    return loaded, json.loads(path.read_text())


def _frame(t, pct) -> pd.DataFrame:
    f = t.frame
    phase = (f["lr_schedule"].astype(str) if "lr_schedule" in f else pd.Series("-", f.index))
    return pd.DataFrame({"run": f["run_id"].astype(str).to_numpy(), "n": t.n,
                         "step": f["steps"].to_numpy(float), "phase": phase.to_numpy(),
                         "pct": np.asarray(pct)})


def gem_section(name: str) -> list[str]:
    (_, train, test), out = _cell(name, None)
    te, tr = _frame(test, out["test_pct"]), _frame(train, out["train_pct"])
    lines = [f"### {name} (held-out median abs error {out['err']:.2f}%, sigma "
             f"{100 * out['sigma']:.2f}%, sigma_curve {100 * out['sigma_curve']:.2f}%)", "",
             "| held-out model | N | phase | points | mean signed % | first / last step's % |",
             "|---|---|---|---|---|---|"]
    for (run, ph), g in te.groupby(["run", "phase"], sort=False):
        g = g.sort_values("step")
        lines.append(f"| {run} | {g['n'].iloc[0]:.3g} | {ph} | {len(g)} | {g['pct'].mean():+.2f}"
                     f" | {g['pct'].iloc[0]:+.2f} / {g['pct'].iloc[-1]:+.2f} |")
    per = tr.groupby("run").agg(n=("n", "first"), m=("pct", "mean"))
    slope = np.polyfit(np.log(per["n"]), per["m"], 1)[0]
    lo = per["n"] < np.median(per["n"])
    lines += ["", f"Training curves ({len(per)}): mean residual {per['m'].mean():+.2f}%, sd "
              f"{per['m'].std():.2f}%; slope against log N {slope:+.2f}% per e-fold; smaller "
              f"half {per.loc[lo, 'm'].mean():+.2f}%, larger half "
              f"{per.loc[~lo, 'm'].mean():+.2f}%."]
    if (tr["phase"] == "wsd").any():
        by = tr.groupby("phase")["pct"].mean()
        lines.append("Training rows by phase (mean signed %): " + ", ".join(
            f"{k} {v:+.2f}" for k, v in by.items()) + ".")
    steps = np.sort(te["step"].unique())
    lines += ["", "Held-out mean signed % by step: " + ", ".join(
        f"{s:g}: {te.loc[te['step'] == s, 'pct'].mean():+.2f}" for s in steps) + "."]
    return [*lines, ""]


def lr_section() -> list[str]:
    """Model-free: each model's half-rate constant curve against its base-rate one."""
    d = pd.read_csv(Path(os.environ.get("BAYES_SCALING_DATA", "/work/shared/data"))
                    / "gemstones" / "gemstones_curves.csv")
    d = d[d["schedule"] == "constant"]
    lines = ["### Gemstones: the half-rate curve against the base-rate curve (no law)", "",
             "Per model: mean % of half-rate loss over base-rate loss at the same step, and at "
             "half the step (log-log interpolation of the base curve; what a forward area "
             "`S1 = sum lr` predicts: equal); `f`: the base-curve step at which the base loss "
             "equals the half-rate loss, over the half-rate step (median over checkpoints; "
             "`S1 = sum lr` predicts 0.5).", "",
             "| model | N | half/base at s | half/base at s/2 | f (median) | f at 2nd / 9th "
             "checkpoint |", "|---|---|---|---|---|---|"]
    rows = []
    for model, g in d.groupby("model"):
        b = g[g["lr_variant"] == "base"].sort_values("steps")
        h = g[g["lr_variant"] == "half"].sort_values("steps")
        if h.empty:
            continue
        ls, lb = np.log(b["steps"].to_numpy()), np.log(b["loss"].to_numpy())
        hs, hl = np.log(h["steps"].to_numpy()), np.log(h["loss"].to_numpy())
        same = np.interp(hs, ls, lb, left=np.nan, right=np.nan)
        half = np.interp(hs - np.log(2), ls, lb, left=np.nan, right=np.nan)
        f = np.exp(np.interp(-hl, -lb, ls, left=np.nan, right=np.nan) - hs)
        rows.append((g["n_params"].iloc[0], model, 100 * np.nanmean(np.exp(hl - same) - 1),
                     100 * np.nanmean(np.exp(hl - half) - 1), np.nanmedian(f), f[1], f[-2]))
    for n, model, a, c, fm, f2, f9 in sorted(rows):
        lines.append(f"| {model} | {n:.3g} | {a:+.2f} | {c:+.2f} | {fm:.2f} | {f2:.2f} / "
                     f"{f9:.2f} |")
    arr = np.array([(np.log(r[0]), r[2]) for r in rows])
    lines += ["", f"Slope of half/base at s against log N: {np.polyfit(*arr.T, 1)[0]:+.2f}% per "
              "e-fold."]
    return [*lines, ""]


def shape_check() -> list[str]:
    """Refit without the training curves of aspect ratio (width/depth) >= 200."""
    lines = ["### Gemstones refit without the extreme-shape training curves (width/depth >= 200:"
             " 768x3, 1792x7, 2560x8), same held-out models", "",
             "| set | error | 90% | 50% | mean signed % per held-out model |",
             "|---|---|---|---|---|"]
    for name in GEM:
        path = CACHE / f"law_diag_{name}_noshape.json"
        model, train, test = tables(name, None)
        if not path.exists():
            wd = train.frame["run_id"].astype(str).str.extract(r"(\d+)x(\d+)").astype(float)
            keep = (wd[0] / wd[1]).to_numpy() < 200
            path.write_text(json.dumps(map_cell(model, train.subset(keep), test, "none", "curve",
                                                signed=True)))
        out = json.loads(path.read_text())
        per = _frame(test, out["test_pct"]).groupby("run", sort=False)["pct"].mean()
        lines.append(f"| {name} | {out['err']:.2f} | {out['c90']:.0%} | {out['c50']:.0%} | "
                     + ", ".join(f"{k.split(':')[0]} {v:+.2f}" for k, v in per.items()) + " |")
    return [*lines, ""]


def mis_section() -> list[str]:
    bins = [f"{a:g}-{b:g}" if b < 1e9 else f">={a:g}" for a, b in pairwise(STEPS)]
    lines = ["### (Mis)Fitting: mean signed % error by absolute step", "",
             "Rows: set, cut, training (`tr`, by size class) or held-out (`te`). Columns: "
             "step bins (lower edge included).", "",
             f"| set | cut | rows | {' | '.join(bins)} |", f"|---|---|---|{'---|' * len(bins)}"]
    for name, cut in MIS:
        (_, train, test), out = _cell(name, cut)
        tr, te = _frame(train, out["train_pct"]), _frame(test, out["test_pct"])
        sizes = np.sort(tr["n"].unique())
        groups = [("tr small", tr[tr["n"] <= sizes[len(sizes) // 2 - 1]]),
                  ("tr large", tr[tr["n"] > sizes[len(sizes) // 2 - 1]]), ("te", te)]
        for lab, g in groups:
            b = pd.cut(g["step"], STEPS, right=False, labels=bins)
            m = g.groupby(b, observed=False)["pct"].mean()
            lines.append(f"| {name} | {cut} | {lab} | " + " | ".join(
                "-" if np.isnan(m[k]) else f"{m[k]:+.1f}" for k in bins) + " |")
    (_, train, _), out = _cell("mis1", "m1")
    tr = _frame(train, out["train_pct"]).assign(T=train.frame["total_steps"].to_numpy(float))
    lines += ["", "mis1, cut m1, training curves by run length (total steps): mean signed % by "
              "step bin (is the early pattern tied to absolute step or to the run's length?)", "",
              f"| total steps | curves | {' | '.join(bins)} |", f"|---|---|{'---|' * len(bins)}"]
    for T, g in tr.groupby("T"):
        m = g.groupby(pd.cut(g["step"], STEPS, right=False, labels=bins), observed=False)["pct"]
        m = m.mean()
        lines.append(f"| {T:g} | {g['run'].nunique()} | " + " | ".join(
            "-" if np.isnan(m[k]) else f"{m[k]:+.1f}" for k in bins) + " |")
    return [*lines, ""]


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    lines = ["# Where today's law misses: signed residuals at the MAP", "",
             "`benchmarks/law_diagnosis.py` (session 13, issue 16, round 3). Today's law, curve "
             "offsets (not added: the law's mean), MAP of `law_run_length.map_cell`. Signed "
             "error = predicted / observed - 1 (%): positive means the law predicts too high.",
             ""]
    for name in GEM:
        lines += gem_section(name)
    lines += lr_section() + shape_check()
    lines += mis_section()
    lines += ["*Regenerate: `nice -n 19 .venv/bin/python benchmarks/law_diagnosis.py` (cached "
              "in `results/residual_cache/law_diag_*.json`)*"]
    (HERE / "results" / "law_diagnosis.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
