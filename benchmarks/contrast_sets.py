"""The contrast benchmark's three sets (``bench_contrast.py``): synthetic, Porian, Gemstones.

Each returns one record per decision (pair of groups and target); split out of
``bench_contrast.py`` (session 8) with no change to what it computes.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from contrast_common import DATA, MODES, _best_per_budget, _fit, _mode

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.query.contrast import contrast_groups, matching_log_compute, path_log_loss
from bayes_scaling.testing import synthetic_runs, to_sampling

# ----------------------------------------------------------------------------- synthetic
SYNTHETIC_SIZES = (2, 3, 4, 5, 6, 8)


def synthetic_ladder(i: int, seed: int = 0):
    """Ladder ``i`` of the synthetic set: its group offsets (truth) and runs (seed ``seed + i``),
    the same for ``synthetic`` here and ``bench_contrast_weights.synthetic``."""
    rng = np.random.default_rng(seed + i)
    k = SYNTHETIC_SIZES[i % len(SYNTHETIC_SIZES)]
    offs = {f"g{j}": {"log_e": rng.normal(0, 0.015), "log_a": rng.normal(0, 0.1),
                      "log_b": rng.normal(0, 0.1)} for j in range(k)}
    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"],
                          n_sizes=np.geomspace(2e7, 4e8, 5), tokens_per_param=(5, 20, 80),
                          noise=0.01, group_offsets=offs, seed=seed + i)
    return offs, runs


def synthetic(n_ladders: int, seed: int = 0, save=None) -> list[dict]:
    """Every pair of groups of ``n_ladders`` synthetic ladders: truth, interval, P(B better).

    ``save(rows)`` is called after each ladder (the records so far survive an interrupted run).
    """
    base = PUBLISHED["hoffmann2022"]
    law = LAWS["chinchilla"]
    rows = []
    for i in range(n_ladders):
        offs, runs = synthetic_ladder(i, seed)
        k = len(offs)
        t0 = time.perf_counter()
        f = _fit(runs, seed + i, calibrate=False, key=f"synthetic_{seed + i}")
        secs = time.perf_counter() - t0
        c = 100.0 * runs.flops.max()
        truth = {g: {p: np.array([[v + offs[g].get(p, 0.0)]])
                     for p, v in to_sampling("chinchilla", base).items()} for g in offs}
        log_c = np.log(np.array([[c]]))
        for a, b in itertools.combinations(offs, 2):
            la = path_log_loss(law, truth[a], log_c, None)
            lb = path_log_loss(law, truth[b], log_c, None)
            true_m = float(np.exp(log_c - matching_log_compute(law, truth[b], la, None,
                                                               log_c))[0, 0])
            alt = contrast_groups(f, a, b, flops=c, random_seed=i, beyond="law")
            res = contrast_groups(f, a, b, flops=c, random_seed=i, beyond="hold")
            s = res.summary.set_index(["quantity", "band"])
            m, dl = s.loc[("multiplier", "law")], s.loc[("difference", "law")]
            mp, dp = s.loc[("multiplier", "predictive")], s.loc[("difference", "predictive")]
            rows.append({"ladder": i, "groups": k, "a": a, "b": b, "flops": c,
                         "true_multiplier": true_m, "true_b_better": bool(lb[0, 0] < la[0, 0]),
                         "m_lower": float(m["lower"]), "m_upper": float(m["upper"]),
                         "m_median": float(m["median"]), "m_lo_50": float(m["lo_50"]),
                         "m_hi_50": float(m["hi_50"]), "p_b_better": float(dl["p_b_better"]),
                         "mp_lower": float(mp["lower"]), "mp_upper": float(mp["upper"]),
                         "p_pred_anchored": float(dp["p_b_better"]),
                         "p_pred_beyond_law": float(alt.summary.set_index(["quantity", "band"]).loc[
                             ("difference", "predictive"), "p_b_better"]),
                         "weight": res.calibration.get("weight", float("nan")),
                         "weighting": res.calibration.get("weighting", ""),
                         "rhat": f.diagnostics.max_rhat, "divergences": f.diagnostics.divergences,
                         "fit_seconds": secs})
        print(f"ladder {i}: {k} groups, {secs:.0f} s, r-hat {f.diagnostics.max_rhat:.3f}",
              flush=True)
        if save is not None:
            save(rows)
    return rows


# ----------------------------------------------------------------------------- real: Porian
PORIAN_TOP = 2  # held-out budgets
PORIAN_CUTS = (1, 4, 2)  # training budgets end this many budgets below the held-out ones


def porian(model: str = "chinchilla", save=None, corpora=None, cuts=None) -> list[dict]:
    """Held-out decisions between the settings of each corpus; ``save(rows)`` after each fit."""
    raw = pd.read_csv(DATA / "porian2024_isoflop" / "porian2024_isoflop.csv")
    budgets = np.sort(raw["flops"].unique())
    held = budgets[-PORIAN_TOP:]
    rows = []
    for corpus, frame in raw.groupby("group"):
        if corpora and corpus not in corpora:
            continue
        best = _best_per_budget(frame)
        settings = sorted(frame["setting"].unique())
        for cut in cuts or PORIAN_CUTS:
            top_train = budgets[-PORIAN_TOP - cut]
            train = frame[frame["flops"] <= top_train]
            runs = load_runs(train.assign(eval_set=corpus), group_col="setting")
            t0 = time.perf_counter()
            f = _fit(runs, 7, calibrate=True, model=model, key=f"porian_{model}_{corpus}_{cut}")
            secs = time.perf_counter() - t0
            print(f"porian ({model}) {corpus} cut {cut}: {runs.n_runs} runs, {secs:.0f} s, "
                  f"r-hat {f.diagnostics.max_rhat:.3f}", flush=True)
            ladder_c = float(train["flops"].sum())
            base_c = float(train.loc[train["flops"] == top_train, "flops"].sum())
            for a, b in itertools.combinations(settings, 2):
                for c in held:
                    if not (np.isfinite(best.loc[c, a]) and np.isfinite(best.loc[c, b])):
                        continue
                    rec = {"set": "porian", "model": model, "corpus": corpus, "cut": cut,
                           "a": a, "b": b,
                           "flops": float(c), "train_top": float(top_train),
                           "ladder_compute": ladder_c, "baseline_compute": base_c,
                           "observed_b_better": bool(best.loc[c, b] < best.loc[c, a]),
                           "observed_gap": float(best.loc[c, b] - best.loc[c, a]),
                           "baseline_b_better": bool(best.loc[top_train, b]
                                                     < best.loc[top_train, a]),
                           "anchor_gap": float(best.loc[top_train, b] - best.loc[top_train, a]),
                           "observed_multiplier": _observed_multiplier(best, a, b, c),
                           "fit_seconds": secs, "rhat": f.diagnostics.max_rhat}
                    rec.update(_predicted(f, a, b, flops=c))
                    rows.append(rec)
            if save is not None:
                save(rows)
    return rows


def _observed_multiplier(best: pd.DataFrame, a: str, b: str, c: float) -> float:
    """``c / C_B``: B's best loss interpolated in log-log to reach A's best loss at ``c``."""
    la = best.loc[c, a]
    curve = best[b].dropna()
    x, y = np.log(curve.index.to_numpy(float)), np.log(curve.to_numpy(float))
    if not (y.min() <= np.log(la) <= y.max()):
        return float("nan")
    order = np.argsort(-y)  # loss falls with compute: interpolate on increasing -log loss
    return float(c / np.exp(np.interp(-np.log(la), -y[order], x[order])))


def _predicted(f, a: str, b: str, **target) -> dict:
    """P(B better) per predictive mode; the multiplier's anchored predictive and law bands."""
    out = {}
    for mode in MODES:
        res = contrast_groups(f, a, b, random_seed=3, **_mode(mode), **target)
        s = res.summary.set_index(["quantity", "band"])
        out[f"p_pred_{mode}"] = float(s.loc[("difference", "predictive"), "p_b_better"])
        if mode == "anchored":
            m = s.loc[("multiplier", "predictive")]
            out.update({"m_median": float(m["median"]), "m_lower": float(m["lower"]),
                        "m_upper": float(m["upper"]), **{f"cal_{k}": v for k, v
                                                         in res.calibration.items()}})
    m = s.loc[("multiplier", "law")]
    out.update({"p_law": float(s.loc[("difference", "law"), "p_b_better"]),
                "m_law_median": float(m["median"]), "m_law_lower": float(m["lower"]),
                "m_law_upper": float(m["upper"])})
    return out


# ----------------------------------------------------------------------------- real: Gemstones
GEM_HELD = 0.85
GEM_CUTS = (0.85, 0.5)


def gemstone_pairs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gemstones' constant-rate checkpoints, and base vs half learning rate side by side."""
    raw = pd.read_csv(DATA / "gemstones" / "gemstones_curves.csv")
    raw = raw[raw["schedule"] == "constant"].copy()
    raw["flops"] = 6.0 * raw["n_params"] * raw["n_tokens"]
    wide = raw.pivot_table(index=["model", "steps"], columns="lr_variant",
                           values=["loss", "flops", "n_params", "n_tokens"]).dropna()
    pairs = pd.DataFrame({"n": wide[("n_params", "base")], "d": wide[("n_tokens", "base")],
                          "c": wide[("flops", "base")], "base": wide[("loss", "base")],
                          "half": wide[("loss", "half")]}).reset_index()
    return raw, pairs


def gemstones() -> list[dict]:
    raw, pairs = gemstone_pairs()
    held_c = np.quantile(raw["flops"], GEM_HELD)
    test = pairs[pairs["c"] > held_c]
    rows = []
    for q in GEM_CUTS:
        cut = np.quantile(raw["flops"], q)
        train = raw[raw["flops"] <= cut]
        runs = load_runs(train[["run_id", "lr_variant", "n_params", "n_tokens", "loss"]]
                         .rename(columns={"run_id": "curve"}).assign(eval_set="gemstones"),
                         group_col="lr_variant")
        t0 = time.perf_counter()
        f = _fit(runs, 5, calibrate=True, key=f"gemstones_{q}")
        secs = time.perf_counter() - t0
        print(f"gemstones cut {q}: {runs.n_runs} runs, {secs:.0f} s, "
              f"r-hat {f.diagnostics.max_rhat:.3f}", flush=True)
        if q == GEM_CUTS[0]:  # kept for the README's worked example
            f.save(Path(tempfile.gettempdir()) / "bench_contrast_gemstones.nc")
        tr_pairs = pairs[pairs["c"] <= cut]
        top = tr_pairs.loc[tr_pairs["c"].idxmax()]
        pred = _predicted_many(f, "base", "half", test["n"].to_numpy(), test["d"].to_numpy())
        for j, (_, r) in enumerate(test.iterrows()):
            rows.append({"set": "gemstones", "corpus": "gemstones", "cut": q, "a": "base",
                         "b": "half", "flops": float(r["c"]), "model": r["model"],
                         "ladder_compute": float(train["flops"].sum()),
                         "baseline_compute": float(top["c"]) * 2,
                         "observed_b_better": bool(r["half"] < r["base"]),
                         "observed_gap": float(r["half"] - r["base"]),
                         "baseline_b_better": bool(top["half"] < top["base"]),
                         "anchor_gap": float(top["half"] - top["base"]),
                         "observed_multiplier": float("nan"), "fit_seconds": secs,
                         "rhat": f.diagnostics.max_rhat, **{k: v[j] for k, v in pred.items()}})
    return rows


def _predicted_many(f, a, b, n, d) -> dict[str, np.ndarray]:
    out = {}
    for mode in MODES:
        res = contrast_groups(f, a, b, n_params=n, n_tokens=d, random_seed=3, **_mode(mode))
        s = res.summary
        sel = s[(s["quantity"] == "difference") & (s["band"] == "predictive")]
        out[f"p_pred_{mode}"] = sel["p_b_better"].to_numpy()
        if mode == "anchored":
            m = s[(s["quantity"] == "multiplier") & (s["band"] == "predictive")]
            out.update({"m_median": m["median"].to_numpy(), "m_lower": m["lower"].to_numpy(),
                        "m_upper": m["upper"].to_numpy(),
                        **{f"cal_{k}": np.full(len(n), v) for k, v in res.calibration.items()}})
    law = s[(s["quantity"] == "difference") & (s["band"] == "law")]
    out["p_law"] = law["p_b_better"].to_numpy()
    return out
