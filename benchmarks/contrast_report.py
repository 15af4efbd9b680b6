"""The contrast benchmark's report (``bench_contrast.py --part report``): ``contrast.md`` and
``contrast_reliability.png`` from the records in ``contrast.json``.

Split out of ``bench_contrast.py`` (session 8) with no change to what it writes.
"""

from __future__ import annotations

import os
import platform

import numpy as np
import pandas as pd
from contrast_common import (
    DATA,
    MODES,
    RESULTS,
    SMALL,
    TIE_ANCHOR_NATS,
    TIE_NATS,
    _best_per_budget,
    _md_table,
    reliability,
    scores,
    tie_scored,
)

from bayes_scaling.files import atomic_savefig, atomic_write_text


def _real_section(real: pd.DataFrame, title: str, tag: str, figs: dict) -> list[str]:
    """Decision accuracy, calibration and multiplier coverage on held-out real runs."""
    lines: list[str] = []
    lines += [f"### Real recipes: held-out decisions ({title})", "",
              "Porian et al. 2024: the five settings within each corpus (10 pairs per "
              "corpus), the top two budgets (1.28e19, 2.56e19 FLOPs) held out, trained on "
              "budgets up to the cut; observed winner = lower best loss over the held-out "
              "IsoFLOP slice. Note: setting 1 counts N without the embedding or output "
              "layer and reports training loss (the others: validation loss), so its "
              "budgets are not the same compute. Gemstones: base vs half learning rate, "
              "constant-rate checkpoints, top 15% of compute held out, matched (model, "
              "step) pairs. Baseline: the winner at the largest common training budget.",
              ""]
    rows = []
    for (name, cut), g in real.groupby(["corpus", "cut"], sort=False):
        y = g["observed_b_better"].to_numpy(float)
        row = {"data": name, "cut": cut, "decisions": len(g),
               "ladder_flops": g["ladder_compute"].iloc[0],
               "baseline_flops": g["baseline_compute"].iloc[0],
               "acc_ours": scores(g["p_pred_anchored"].to_numpy(), y)["accuracy"],
               "acc_baseline": float((g["baseline_b_better"] == g["observed_b_better"])
                                     .mean()), **_tie_columns(g)}
        for mode in MODES:
            row[f"brier_{mode}"] = scores(g[f"p_pred_{mode}"].to_numpy(), y)["brier"]
        if "cal_weight" in g:
            row["w"] = float(g["cal_weight"].iloc[0])
        rows.append(row)
    table = pd.DataFrame(rows)
    lines += ["Per data set and cut (`ladder_flops`: compute of every training run; "
              "`baseline_flops`: of the runs at the largest training budget only; `w`: the "
              "weight of the law's group-specific change, 1 = trust the law, 0 = keep the "
              f"observed gap; `ties`: decisions whose gap at the largest training budget is "
              f"under {TIE_ANCHOR_NATS} nats, which the observed data leave undecided, and "
              "`*_ties` the accuracy with every method scoring 0.5 on them, a rule stated "
              "before it was first applied; `acc_*` the raw accuracy):", "",
              *_md_table(table), ""]
    if "observed_gap" in real:
        lines += _decidable(real)
    lines += _per_compute(real)
    pooled = []
    for name, g in [("porian", real[real["set"] == "porian"]),
                    ("gemstones", real[real["set"] == "gemstones"]), ("pooled", real)]:
        if not len(g):
            continue
        y = g["observed_b_better"].to_numpy(float)
        for mode in MODES:
            pooled.append({"data": name, "discrepancy": mode,
                           **scores(g[f"p_pred_{mode}"].to_numpy(), y),
                           "acc_baseline": float((g["baseline_b_better"]
                                                  == g["observed_b_better"]).mean()),
                           **({"acc_ours_ties": tie_scored(
                               (g[f"p_pred_{mode}"] > 0.5) == g["observed_b_better"],
                               g["anchor_gap"]),
                               "acc_baseline_ties": _tie_columns(g)["acc_baseline_ties"]}
                              if "anchor_gap" in g else {}),
                           "brier_baseline": float((g["baseline_b_better"]
                                                    != g["observed_b_better"]).mean())})
    lines += ["Per data set and pooled (all cuts), predictive P(B better) (`brier_baseline`: "
              "the baseline's hard 0/1 call scored the same way, i.e. its error rate):", "",
              *_md_table(pd.DataFrame(pooled)), ""]
    y = real["observed_b_better"].to_numpy(float)
    for mode in MODES:
        lines += [f"Reliability of the predictive P(B better), discrepancy `{mode}`, "
                  "pooled:", "", *_md_table(reliability(real[f"p_pred_{mode}"].to_numpy(),
                                                        y)), ""]
        sets = list(real["set"].unique())
        if mode == "anchored" and len(sets) > 1:  # per set next to the pooled one
            for name in sets:
                g = real[real["set"] == name]
                sc = scores(g["p_pred_anchored"].to_numpy(), g["observed_b_better"]
                            .to_numpy(float))
                lines += [f"The same, {name} only ({len(g)} decisions; mean confidence "
                          f"{sc['mean_confidence']:.3f} for accuracy {sc['accuracy']:.1%}):",
                          "", *_md_table(reliability(g["p_pred_anchored"].to_numpy(),
                                                     g["observed_b_better"].to_numpy(float))),
                          ""]
        label = f"real{' ' + tag if tag else ''}, predictive ({mode})"
        figs[label] = (real[f"p_pred_{mode}"].to_numpy(), y)
    por = real[real["set"] == "porian"]
    std = por[~(por["a"].str.contains("kaplan_count") | por["b"].str.contains("kaplan_count"))]
    if len(std):
        y = std["observed_b_better"].to_numpy(float)
        lines += [f"Porian without setting 1 (the only one with Kaplan's parameter count and "
                  f"training loss): {len(std)} decisions, accuracy "
                  f"{scores(std['p_pred_anchored'].to_numpy(), y)['accuracy']:.1%} (baseline "
                  f"{float((std['baseline_b_better'] == std['observed_b_better']).mean()):.1%})"
                  f", Brier {scores(std['p_pred_anchored'].to_numpy(), y)['brier']:.3f}.", ""]
    obs = real["observed_multiplier"].to_numpy(float)
    ok = np.isfinite(obs)
    if ok.any():
        cov = (real["m_lower"][ok] <= obs[ok]) & (obs[ok] <= real["m_upper"][ok])
        lines += [f"Observed compute multipliers (Porian; B's best-loss curve interpolated "
                  f"to A's held-out loss; {int(ok.sum())} measurable): the 90% interval "
                  f"covers {cov.mean():.1%}; median |log10 error| of the median "
                  f"{np.median(np.abs(np.log10(real['m_median'][ok] / obs[ok]))):.2f} "
                  "decades.", ""]
        per = real[ok].assign(cover=cov, width=real["m_upper"][ok] / real["m_lower"][ok])
        tab = per.groupby(["corpus", "cut"], sort=False).agg(
            n=("cover", "size"), cover_90=("cover", "mean"), median_width=("width", "median"))
        lines += ["Per corpus and cut (`median_width`: upper / lower of the 90% interval):", "",
                  *_md_table(tab.reset_index()), ""]
        if "m_law_lower" in real:
            law_cov = ((real["m_law_lower"][ok] <= obs[ok])
                       & (obs[ok] <= real["m_law_upper"][ok])).mean()
            lines += [f"The law band's multiplier interval (before this change) covers "
                      f"{law_cov:.1%} of the same.", ""]
    return lines


def _tie_columns(g: pd.DataFrame) -> dict[str, float]:
    """Ties, and tie-scored accuracy of ours (anchored) and the baseline (``TIE_ANCHOR_NATS``)."""
    if "anchor_gap" not in g:
        return {}
    y = g["observed_b_better"]
    return {"ties": int((g["anchor_gap"].abs() < TIE_ANCHOR_NATS).sum()),
            "acc_ours_ties": tie_scored((g["p_pred_anchored"] > 0.5) == y, g["anchor_gap"]),
            "acc_baseline_ties": tie_scored(g["baseline_b_better"] == y, g["anchor_gap"])}


def _decidable(real: pd.DataFrame) -> list[str]:
    """Accuracy on near-ties vs clear gaps (observed |gap| vs twice the median run noise)."""
    gap = real["observed_gap"].abs()
    tie = float(TIE_NATS)
    out = []
    for name, sel in (("near-ties", gap < tie), ("clear gaps", gap >= tie)):
        g = real[sel]
        if not len(g):
            continue
        y = g["observed_b_better"].to_numpy(float)
        out.append({"decisions": name, "n": len(g),
                    "acc_ours": scores(g["p_pred_anchored"].to_numpy(), y)["accuracy"],
                    "acc_baseline": float((g["baseline_b_better"] == g["observed_b_better"])
                                          .mean()),
                    "brier_ours": scores(g["p_pred_anchored"].to_numpy(), y)["brier"],
                    "mean_confidence": scores(g["p_pred_anchored"].to_numpy(), y)
                    ["mean_confidence"]})
    return [f"Near-ties (observed held-out gap under {tie} nats, about twice the run-to-run "
            "noise of a best-of-slice loss) against clear gaps:", "",
            *_md_table(pd.DataFrame(out)), ""]


def _per_compute(real: pd.DataFrame) -> list[str]:
    """Accuracy against ladder compute: ours at each cut vs the baseline at equal compute."""
    out = []
    for name, g in real.groupby("corpus", sort=False):
        base = _baseline_curve(name, g)
        for cut, h in g.groupby("cut", sort=False):
            y = h["observed_b_better"].to_numpy(float)
            c_ours = float(h["ladder_compute"].iloc[0])
            afford = base[base["compute"] <= c_ours]
            b = afford.iloc[-1] if len(afford) else base.iloc[0]
            out.append({"data": name, "cut": cut, "ours_flops": c_ours,
                        "acc_ours": scores(h["p_pred_anchored"].to_numpy(), y)["accuracy"],
                        "baseline_budget": float(b["budget"]),
                        "baseline_flops": float(b["compute"]),
                        "acc_baseline": float(b["accuracy"]),
                        **({"acc_ours_ties": _tie_columns(h)["acc_ours_ties"],
                            "acc_baseline_ties": float(b["accuracy_ties"])}
                           if "anchor_gap" in h else {})})
    return ["Decision accuracy per unit of ladder compute: ours at each cut (all training "
            "runs' compute) against the single-scale baseline given at most the same compute "
            "(the largest budget whose isoFLOP slice costs no more; Porian's baseline is "
            "evaluated at every budget, Gemstones' at the cuts); `*_ties`: ties at the budget "
            "each call starts from scored 0.5 (`TIE_ANCHOR_NATS`):", "",
            *_md_table(pd.DataFrame(out)), ""]


def _baseline_curve(name: str, g: pd.DataFrame) -> pd.DataFrame:
    """Baseline accuracy on ``g``'s decisions when ranking at each affordable budget."""
    if g["set"].iloc[0] != "porian":
        rows = [{"budget": float(h["train_top"].iloc[0]) if "train_top" in h else float("nan"),
                 "compute": float(h["baseline_compute"].iloc[0]),
                 "accuracy": float((h["baseline_b_better"] == h["observed_b_better"]).mean()),
                 "accuracy_ties": tie_scored(h["baseline_b_better"] == h["observed_b_better"],
                                             h["anchor_gap"] if "anchor_gap" in h
                                             else np.full(len(h), np.inf))}
                for _, h in g.groupby("cut")]
        return pd.DataFrame(rows).sort_values("compute").reset_index(drop=True)
    raw = pd.read_csv(DATA / "porian2024_isoflop" / "porian2024_isoflop.csv")
    frame = raw[raw["group"] == name]
    best = _best_per_budget(frame)
    dec = g.drop_duplicates(["a", "b", "flops"])
    rows = []
    for c in np.sort(frame["flops"].unique()):
        if c >= dec["flops"].min():
            break
        gap = best.loc[c, dec["b"]].to_numpy() - best.loc[c, dec["a"]].to_numpy()
        right = (gap < 0) == dec["observed_b_better"].to_numpy()
        rows.append({"budget": float(c), "compute": float(frame.loc[frame["flops"] == c,
                                                                     "flops"].sum()),
                     "accuracy": float(right.mean()), "accuracy_ties": tie_scored(right, gap)})
    return pd.DataFrame(rows)


def report(store: dict, name: str = "contrast", title: str = "") -> None:
    """Write ``RESULTS/<name>.md`` and ``<name>_reliability.png`` from the records ``store``."""
    lines = [f"## Contrasts between groups (which recipe wins at scale){title}", "",
             "`benchmarks/bench_contrast.py`: compute multiplier of group B over A (`C / C_B`, "
             "the compute with which B matches A's loss at budget C), P(B better) and the "
             "pairwise decision, from one hierarchical fit (`chinchilla` model, 2 chains x "
             f"({SMALL['tune']} + {SMALL['draws']}) NUTS steps per fit). Predictive bands "
             "compared: `anchored` (the default: each group's observed best loss at the budget "
             "level nearest the target, plus the law's change from that run, its group-"
             "specific part weighted by `w` (default `w = 0`, `weighting=\"zero\"`: the gap "
             "at the top of the ladder is kept, so the call is the single-scale ranking's) and "
             "the band's spread from rolling-origin point refits inside the ladder, the gap "
             "held past the longest horizon the refits tested; `bayes_scaling.query.anchor`), "
             "`beyond_law` (the same, extrapolating the law's group-specific change past that "
             "horizon) and `shared` (the law plus its own "
             "extrapolation discrepancy, the band before this change). Decisions and "
             "multiplier intervals below use the anchored band unless named.", "",
             f"Machine: {platform.node()} ({os.cpu_count()} cores, shared), load "
             f"{os.getloadavg()[0]:.1f} at writing; numpy {np.__version__}, pandas "
             f"{pd.__version__}. Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 15 "
             "python benchmarks/bench_contrast.py --part porian --cuts 1,4,2 --cache FITS && "
             "... --part gemstones --cache FITS && ... --part synthetic --ladders 6 --cache "
             "FITS` (fits are written to FITS once, queries rerun from them).", ""]
    figs = {}
    syn = pd.DataFrame(store.get("synthetic", []))
    if len(syn):
        cover90 = (syn["m_lower"] <= syn["true_multiplier"]) & \
                  (syn["true_multiplier"] <= syn["m_upper"])
        cover50 = (syn["m_lo_50"] <= syn["true_multiplier"]) & \
                  (syn["true_multiplier"] <= syn["m_hi_50"])
        per_k = syn.assign(c90=cover90, c50=cover50).groupby("groups").agg(
            ladders=("ladder", "nunique"), pairs=("c90", "size"), cover_90=("c90", "mean"),
            cover_50=("c50", "mean"))
        sc = scores(syn["p_b_better"].to_numpy(), syn["true_b_better"].to_numpy(float))
        lines += ["### Synthetic ladders with known truth", "",
                  f"{syn['ladder'].nunique()} ladders (2-8 groups, offsets on log E ~ N(0, "
                  "0.015), log A and log B ~ N(0, 0.1); 5 sizes x 3 ratios per group, 1% "
                  "noise), every pair contrasted at 100x the largest training compute "
                  f"(compute-optimal path): **{len(syn)} pairs**. The 90% interval of the "
                  f"compute multiplier covers the true multiplier in **{cover90.mean():.1%}** "
                  f"of pairs (target 85-95%); the 50% interval in {cover50.mean():.1%}. "
                  f"Median width of the 90% interval: "
                  f"{np.median(syn['m_upper'] / syn['m_lower']):.2f}x. Max r-hat over the "
                  f"fits {syn['rhat'].max():.3f}, divergences {int(syn['divergences'].sum())}.",
                  "", *_md_table(per_k.reset_index()), "",
                  f"P(B better) (law band) against the sign of the true difference: accuracy "
                  f"{sc['accuracy']:.1%}, Brier {sc['brier']:.3f}. Reliability:", "",
                  *_md_table(reliability(syn['p_b_better'].to_numpy(),
                                         syn['true_b_better'].to_numpy(float))), ""]
        figs["synthetic (law band vs true sign)"] = (syn["p_b_better"].to_numpy(),
                                                     syn["true_b_better"].to_numpy(float))
        if "p_pred_anchored" in syn:
            sa = scores(syn["p_pred_anchored"].to_numpy(), syn["true_b_better"].to_numpy(float))
            w_med = float(syn.groupby("ladder")["weight"].first().median())
            cov_p = ((syn["mp_lower"] <= syn["true_multiplier"])
                     & (syn["true_multiplier"] <= syn["mp_upper"])).mean()
            lines += [f"Anchored predictive band (the default): P(B better) accuracy "
                      f"{sa['accuracy']:.1%}, Brier {sa['brier']:.3f} against the true sign; "
                      f"its 90% multiplier interval covers the true (law) multiplier in "
                      f"{cov_p:.1%} (wider than the law band by design: it is for one real "
                      f"run of each recipe). Weight of the law's group-specific change, "
                      f"median over ladders: {w_med:.2f} (`weighting="
                      f"{syn['weighting'].iloc[0] if 'weighting' in syn else 'latest'}`). "
                      "Reliability of the anchored predictive P(B better) against the true "
                      "sign:", "",
                      *_md_table(reliability(syn["p_pred_anchored"].to_numpy(),
                                             syn["true_b_better"].to_numpy(float))), ""]
            figs["synthetic (anchored predictive vs true sign)"] = (
                syn["p_pred_anchored"].to_numpy(), syn["true_b_better"].to_numpy(float))
    real = pd.DataFrame(store.get("porian", []) + store.get("gemstones", []))
    if len(real):
        lines += _real_section(real, "model `chinchilla`: offsets vary by group, exponents "
                               "shared", "", figs)
    slopes = pd.DataFrame(store.get("porian_slopes", []))
    if len(slopes):
        corpora = ", ".join(sorted(slopes["corpus"].unique()))
        lines += _real_section(slopes, f"Porian ({corpora}), model `chinchilla_slopes`: "
                               "exponents vary by group too", "slopes", figs)
    lines += _beyond_choice(syn, real)
    if figs:
        _plot(figs, RESULTS / f"{name}_reliability.png")
        lines += [f"Reliability diagram: `benchmarks/results/{name}_reliability.png`.", ""]
    atomic_write_text(RESULTS / f"{name}.md", "\n".join(lines))


def _beyond_choice(syn: pd.DataFrame, real: pd.DataFrame) -> list[str]:
    """Brier score of the anchored band's two ``beyond`` options on every set (the default)."""
    sets = []
    if len(syn) and "p_pred_beyond_law" in syn:
        sets.append(("synthetic", syn, "true_b_better"))
    for name in ("porian", "gemstones"):
        if len(real) and "p_pred_beyond_law" in real and (real["set"] == name).any():
            sets.append((name, real[real["set"] == name], "observed_b_better"))
    if not sets:
        return []
    rows = [{"data": name, "n": len(g),
             **{f"brier_{m}": scores(g[f"p_pred_{m}"].to_numpy(), g[y].to_numpy(float))["brier"]
                for m in ("anchored", "beyond_law")}} for name, g, y in sets]
    table = pd.DataFrame(rows)
    mean = {m: float(table[f"brier_{m}"].mean()) for m in ("anchored", "beyond_law")}
    best = "hold" if mean["anchored"] <= mean["beyond_law"] else "law"
    return ["Past the longest horizon the rolling-origin refits tested, hold the gap "
            "(`anchored`, the default `beyond=\"hold\"`) or extrapolate the law's "
            "group-specific change (`beyond_law`)? Brier score per set and their mean (each "
            "set weighs the same):", "", *_md_table(table), "",
            f"Mean Brier: hold {mean['anchored']:.4f}, law {mean['beyond_law']:.4f}: "
            f"`beyond=\"{best}\"` is better on these sets.", ""]


def _plot(figs: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for label, (p, y) in figs.items():
        t = reliability(p, y)
        ax.plot(t["mean_p"], t["observed"], marker="o", label=f"{label} (n={p.size})")
    ax.set(xlabel="predicted P(B better)", ylabel="observed frequency of B better",
           xlim=(0, 1), ylim=(0, 1), title="Reliability of P(B better)")
    ax.legend(fontsize=7, loc="upper left")
    atomic_savefig(fig, path)
    plt.close(fig)
