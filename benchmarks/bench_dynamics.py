"""Training dynamics L(N, S, B): real-curve backtests, synthetic recovery and fit speed.

Writes ``benchmarks/results/dynamics.md`` (and ``dynamics.json``, two figures). Sections:

1. **Real curves, one batch size** (``misfitting_openlm``, Li et al. 2025; non-embedding N):
   per model size the longest run at its best learning rate (lowest final loss), i.e. one
   whole curve per size, 12M-303M. Fit on the 8 smaller sizes, predict the full curve of the
   largest (all its checkpoints after the warm-up rule, unthinned); median absolute % error of
   the predictive median and coverage of the 50/80/90/95% predictive bands. Also with the two
   largest held out, and a rolling origin (top 1-4 sizes held out in turn, every held-out
   curve scored alone, then pooled): one curve's checkpoints share one whole-curve offset, so
   only the pooled curves give a coverage rate.
2. **Real final losses, 13 batch sizes** (``steplaw_dense``, Li et al. 2025, Step Law): the best
   learning rate at each (N, D, B) as one-point curves (S = D/B); fit on the 4 smaller sizes,
   predict every (S, B) of the largest (1.07e9). No public set has whole curves at several
   batch sizes, so:
3. **Synthetic curves from Kaplan's constants** at 4 batch sizes (Kaplan et al. 2020 section 5):
   are the constants inside their 90% intervals?
3b. **Synthetic curve backtests** (the law exactly right, ladders like section 1's): pooled
   coverage of the held-out curves' bands, and how often one curve's coverage lands in 80-98%.
4. **Speed**: a 20,000-point curve table through ``load_curves`` (default warm-up rule and
   thinning) and ``fit_dynamics`` (4 chains x 1000 tune + 1000 draws), timed end to end.

Run once (about 30 minutes on 2 cores):
``BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_dynamics.py``
(``--only rolling,offsets,one_schedule,calibration`` redoes just those sections, keeping the
saved rest; ``--only all_lr`` adds the opt-in fit on every run at the best learning rate;
``--render-only`` rewrites the page from ``dynamics.json``).
"""

from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.curves import CurveTable, load_curves
from bayes_scaling.data.registry import fetch
from bayes_scaling.files import atomic_savefig, atomic_write_text
from bayes_scaling.fitting.dynamics import fit_dynamics
from bayes_scaling.query import curves as dy
from bayes_scaling.testing import synthetic_curves

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20240311
PROBS = (0.5, 0.8, 0.9, 0.95)
K = PUBLISHED["kaplan2020_dynamics"]


def tell(msg: str) -> None:
    print(f"[bench_dynamics] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ scoring
def score_curves(fit: Any, test: CurveTable) -> dict[str, Any]:
    """Predict every held-out checkpoint (one band draw per curve); error and coverage."""
    med, inside = [], {p: [] for p in PROBS}
    for k, cid in enumerate(test.curve_ids):
        part = test.subset(np.asarray(test.run_ids) == cid)
        s = dy.predict_curve(fit, part.n[0], part.b[0], part.s, probs=PROBS,
                             random_seed=SEED + k).summary
        med.append(s["median"].to_numpy() / part.loss - 1.0)
        for p in PROBS:
            pc = f"{100 * p:g}"
            inside[p].append((part.loss >= s[f"lo_{pc}"]) & (part.loss <= s[f"hi_{pc}"]))
    err = np.abs(np.concatenate(med))
    bias = np.concatenate(med)
    out = {"n_points": int(test.n_points), "n_curves": int(test.n_curves),
           "mape_pct": float(100 * np.median(err)), "max_ape_pct": float(100 * err.max()),
           "median_signed_pct": float(100 * np.median(bias))}
    for p in PROBS:
        out[f"coverage_{100 * p:g}"] = float(np.mean(np.concatenate(inside[p])))
    return out


def fit_summary(fit: Any) -> dict[str, Any]:
    d = fit.diagnostics
    post = fit.posterior
    consts = {p: [float(q) for q in np.quantile(post[p].values, [0.05, 0.5, 0.95])]
              for p in (*fit.law.params, "sigma", "sigma_curve") if p in post}
    return {"max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences,
            "sampling_s": d.sampling_seconds, "passed": d.passed, "constants_90": consts,
            "n_points": fit.runs.n_points, "n_curves": fit.runs.n_curves}


# ------------------------------------------------------------------------------ data
def misfitting_selection(all_runs_at_best_lr: bool = False) -> pd.DataFrame:
    """Checkpoints of the longest run per size at its best learning rate (or all its runs)."""
    df = pd.read_csv(fetch("misfitting_openlm"))
    runs = df.groupby("run").agg(model=("model", "first"), lr=("learning_rate", "first"),
                                 total=("total_steps", "first"), last=("loss", "last"),
                                 n_points=("steps", "size"))
    best = runs.sort_values(["total", "last"], ascending=[False, True]).groupby("model").head(1)
    if not all_runs_at_best_lr:
        return df[df["run"].isin(best.index)]
    best_lr = dict(zip(best["model"], best["lr"], strict=True))
    chosen = runs[(runs["lr"] == runs["model"].map(best_lr)) & (runs["n_points"] >= 5)].index
    return df[df["run"].isin(chosen)]


def split_by_size(df: pd.DataFrame, top: int, **load: Any) -> tuple[CurveTable, CurveTable]:
    sizes = np.sort(df["n_params_nonembedding"].unique())
    cut = sizes[-top]
    train = load_curves(df[df["n_params_nonembedding"] < cut], param_count="nonembedding",
                           **load)
    test = load_curves(df[df["n_params_nonembedding"] >= cut], param_count="nonembedding",
                          max_points_per_curve=None, max_points=None)
    return train, test


def steplaw_points() -> pd.DataFrame:
    """Best learning rate at each (N, D, B) of the Step Law grid: one-point curves."""
    df = pd.read_csv(fetch("steplaw_dense"))
    best = df.loc[df.groupby(["n_params", "n_tokens", "batch_size_tokens"])["loss"].idxmin()]
    return best.assign(run_id=[f"N{n:.3g}-D{d:.3g}-B{b:.0f}" for n, d, b in
                               zip(best.n_params, best.n_tokens, best.batch_size_tokens,
                                   strict=True)])


# ------------------------------------------------------------------------------ sections
def run_fit(curves: CurveTable, **kw: Any) -> Any:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = fit_dynamics("dynamics", curves, random_seed=SEED, on_progress=tell, **kw)
    tell(f"fit in {time.perf_counter() - t:.0f} s")
    return fitted


def section_misfitting() -> tuple[dict[str, Any], Any, CurveTable]:
    out: dict[str, Any] = {}
    one = misfitting_selection()
    train, test = split_by_size(one, top=1)
    fitted = run_fit(train)
    out["top1"] = {"fit": fit_summary(fitted), "score": score_curves(fitted, test),
                   "held_out_n": float(test.n[0]), "held_out_steps": float(test.s.max())}
    train2, test2 = split_by_size(one, top=2)
    out["top2"] = {"fit": fit_summary(f2 := run_fit(train2)), "score": score_curves(f2, test2)}
    return out, fitted, test


def section_offsets() -> dict[str, Any]:
    """In-sample whole-curve offsets of the top-1 fit (mean log residual of each training curve
    from the law's median) next to each run's schedule length: what sigma_curve learns from."""
    train, test = split_by_size(misfitting_selection(), top=1)
    fitted = run_fit(train)  # the same seed and data as section 1's top-1 fit
    band = dy.predict_curve(fitted, test.n[0], test.b[0], test.s, probs=(0.9,),
                            random_seed=SEED).summary
    half = float(100 * np.median((band["hi_90"] - band["lo_90"]) / band["median"] / 2))
    rows = []
    for cid in train.curve_ids:
        part = train.subset(np.asarray(train.run_ids) == cid)
        law = dy.predict_curve(fitted, part.n[0], part.b[0], part.s, band="law",
                               random_seed=SEED).summary
        resid = np.log(part.loss) - np.log(law["median"].to_numpy())
        rows.append({"n_params": float(part.n[0]), "n_points": int(part.n_points),
                     "total_steps": float(part.frame["total_steps"].iloc[0]),
                     "mean_offset_pct": float(100 * resid.mean()),
                     "sd_within_pct": float(100 * resid.std())})
    return {"rows": rows, "held_out_half_width_90_pct": half,
            "sigma_curve_90": [float(q) for q in np.quantile(
                fitted.posterior["sigma_curve"].values, [0.05, 0.5, 0.95])]}


def offsets_markdown(o: dict[str, Any]) -> list[str]:
    lo, med, hi = (100 * q for q in o["sigma_curve_90"])
    lines = ["In-sample whole-curve offsets of the 303M-held-out fit (each training curve's mean "
             "log residual from the law's median), by the run's schedule length (`total_steps`; "
             "the learning rate decays to 0.1x at its end):", "",
             "| size | schedule (total steps) | checkpoints | curve offset | sd within the curve |",
             "|---|---|---|---|---|"]
    for r in sorted(o["rows"], key=lambda r: r["n_params"]):
        lines.append(f"| {r['n_params'] / 1e6:.0f}M | {r['total_steps']:,.0f} | {r['n_points']} | "
                     f"{r['mean_offset_pct']:+.2f}% | {r['sd_within_pct']:.2f}% |")
    lines += ["", "The offsets line up with the schedule length (the 4,000-step runs sit "
              "lowest, the 16,000-step runs highest; in this selection schedule and size are "
              "partly confounded, as both 4,000-step runs are the two smallest models, so a bend "
              "in the size law would look alike), and sigma_curve is learned from them: "
              f"posterior median "
              f"{med:.2f}% (90%: {lo:.2f}-{hi:.2f}%). The law has no schedule term "
              "(`load_curves` warns when a table mixes schedule lengths), so this spread enters "
              "every predicted curve's band.", ""]
    return lines


#: The one schedule length that 6 of the 9 sizes share, the largest (303M) among them.
ONE_SCHEDULE_STEPS = 4000


def section_one_schedule() -> dict[str, Any]:
    """The same backtest on curves of one schedule length (4,000 steps, best learning rate per
    size): does removing the schedule spread tighten the held-out curve's band?"""
    df = pd.read_csv(fetch("misfitting_openlm"))
    df = df[df["total_steps"] == ONE_SCHEDULE_STEPS]
    last = df.groupby("run").agg(model=("model", "first"), last=("loss", "last"))
    one = df[df["run"].isin(last.loc[last.groupby("model")["last"].idxmin()].index)]
    train, test = split_by_size(one, top=1)
    fitted = run_fit(train)
    return {"total_steps": ONE_SCHEDULE_STEPS, "fit": fit_summary(fitted),
            "score": score_curves(fitted, test), "held_out_n": float(test.n[0]),
            "sizes_m": [round(float(n) / 1e6) for n in np.unique(train.n)]}


def section_all_lr() -> dict[str, Any]:
    """Every run at each size's best learning rate (all schedule lengths), top size held out.

    Opt-in (``--only all_lr``, about 15 minutes on 2 cores): it fails the convergence gate, and
    the page says how.
    """
    every = misfitting_selection(all_runs_at_best_lr=True)
    train, _ = split_by_size(every, top=1)
    t = time.perf_counter()
    fitted = run_fit(train)
    chains = fitted.posterior["alpha_b"].median("draw").values
    return {"when": time.strftime("%Y-%m-%d"), "fit": fit_summary(fitted),
            "wall_s": time.perf_counter() - t,
            "n_schedules": int(every["total_steps"].nunique()),
            "alpha_b_chain_medians": [float(c) for c in np.ravel(chains)]}


def all_lr_markdown(m: dict[str, Any]) -> list[str]:
    """The all-learning-rates sentence: from ``--only all_lr`` when run, else a dated note."""
    if "all_lr" not in m:
        return ["Dated note (2026-11-25, commit 653ded6; typed by hand from one run while "
                "developing, 2 cores; not regenerated: `--only all_lr` reruns it): training on "
                "*every* run at each size's best learning rate (45 curves of 6 schedule lengths; "
                "the learning rate decays to 0.1x by each run's end) fails the convergence gate "
                "(max r-hat 1.37, 13 divergences, 850 s): the law has no schedule term and bends "
                "B_crit(L) to mimic the end-of-run dips in two ways (chains at alpha_B ~1.0 and "
                "~0.3)."]
    a, f = m["all_lr"], m["all_lr"]["fit"]
    chains = ", ".join(f"{c:.2f}" for c in a["alpha_b_chain_medians"])
    return [f"Training on *every* run at each size's best learning rate ({f['n_curves']} "
            f"curves of {a['n_schedules']} schedule lengths; the learning rate decays to 0.1x "
            f"by each run's end; `--only all_lr`, {a['when']}): gate "
            f"{'passed' if f['passed'] else 'FAILED'} (max r-hat {f['max_rhat']:.2f}, "
            f"{f['divergences']} divergences, {a['wall_s']:.0f} s); median alpha_B per chain: "
            f"{chains}. The law has no schedule term, so B_crit(L) is what bends to follow the "
            "end-of-run dips."]


ROLLING_TOPS = (1, 2, 3, 4)


def section_rolling() -> dict[str, Any]:
    """Rolling origin: hold out the top k sizes (k = 1..4) in turn and score each held-out
    curve on its own. One curve's points share one whole-curve offset, so a curve is either
    covered or not; pooling the curve predictions is what gives a coverage *rate*."""
    one = misfitting_selection()
    rows = []
    for k in ROLLING_TOPS:
        train, test = split_by_size(one, top=k)
        fitted = run_fit(train)
        for cid in test.curve_ids:
            part = test.subset(np.asarray(test.run_ids) == cid)
            sc = score_curves(fitted, part)
            rows.append({"held_out_top": k, "n_train_curves": int(train.n_curves),
                         "n_params": float(part.n[0]), "passed": fitted.diagnostics.passed,
                         **sc})
    cov = {f"{100 * p:g}": float(np.mean([r[f"coverage_{100 * p:g}"] for r in rows]))
           for p in PROBS}
    whole = {f"{100 * p:g}": float(np.mean([r[f"coverage_{100 * p:g}"] >= 0.5 for r in rows]))
             for p in PROBS}
    return {"rows": rows, "pooled_point_coverage": cov, "curves_mostly_inside": whole,
            "pooled_mape_pct": float(np.median([r["mape_pct"] for r in rows]))}


def rolling_markdown(r: dict[str, Any]) -> list[str]:
    lines = ["## 1b. Rolling origin on the real curves: every held-out curve on its own", "",
             "The top k sizes held out in turn (k = 1-4; the fit sees the rest), each held-out "
             "curve scored alone. A curve's points share one whole-curve offset, so a single "
             "curve is covered almost entirely or not at all; the pooled rows are the coverage "
             "rate.", "",
             "| held out | train curves | curve N | points | median abs % error | 50% | 80% | "
             "90% | 95% | gate |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(f"| top {x['held_out_top']} | {x['n_train_curves']} | "
                     f"{x['n_params'] / 1e6:.0f}M | {x['n_points']} | {x['mape_pct']:.2f} | "
                     f"{pct(x['coverage_50'])} | {pct(x['coverage_80'])} | "
                     f"**{pct(x['coverage_90'])}** | {pct(x['coverage_95'])} | "
                     f"{'passed' if x['passed'] else 'FAILED'} |")
    c, w = r["pooled_point_coverage"], r["curves_mostly_inside"]
    lines += ["", f"Pooled over the {len(r['rows'])} curve predictions: checkpoints inside the "
              f"50/80/90/95% bands {pct(c['50'])} / {pct(c['80'])} / **{pct(c['90'])}** / "
              f"{pct(c['95'])}; curves with most checkpoints inside {pct(w['50'])} / "
              f"{pct(w['80'])} / **{pct(w['90'])}** / {pct(w['95'])}; median abs % error "
              f"{r['pooled_mape_pct']:.2f}.", ""]
    return lines


def section_steplaw() -> tuple[dict[str, Any], Any]:
    pts = steplaw_points()
    top = pts["n_params"].max()
    load = {"warmup_fraction": 0.0, "max_points": None}
    train = load_curves(pts[pts["n_params"] < top], **load)
    test = load_curves(pts[pts["n_params"] == top], **load)
    fitted = run_fit(train, target_accept=0.99)  # 0.95 leaves 2-4 divergences on this set
    return {"fit": fit_summary(fitted), "score": score_curves(fitted, test),
            "n_batch_sizes": len(np.unique(train.b))}, fitted


def section_synthetic(replicates: int = 3) -> dict[str, Any]:
    """Kaplan's constants recovered? Several replicate data sets (a calibrated 90% interval
    misses a given constant 10% of the time, so one data set proves little)."""
    truth = {"log_n_c": np.log(K["n_c"]), "alpha_n": K["alpha_n"],
             "log_s_c": np.log(K["s_c"]), "alpha_s": K["alpha_s"],
             "log_b_star": np.log(K["b_star"]), "alpha_b": K["alpha_b"]}
    reps = []
    for rep in range(replicates):
        curves = synthetic_curves(K, steps=np.geomspace(1e3, 1e5, 20), noise=0.005,
                                     curve_sd=0.01, seed=rep + 1)
        fitted = run_fit(curves)
        rows = {}
        for p, v in truth.items():
            lo, med, hi = np.quantile(fitted.posterior[p].values, [0.05, 0.5, 0.95])
            rows[p] = {"truth": float(v), "median": float(med), "lo_90": float(lo),
                       "hi_90": float(hi), "inside": bool(lo <= v <= hi)}
        reps.append({"seed": rep + 1, "fit": fit_summary(fitted), "recovery": rows})
    return {"replicates": reps}


#: Synthetic stand-ins for the real one-batch-size ladder (section 1): 9 sizes 12M-300M, 30
#: checkpoints from 500 to 16,000 steps, checkpoint noise 0.4% and whole-curve offsets of sd 1.5%
#: (about what the real fit learns); the law is exactly Kaplan's, so the band should be right.
CALIBRATION_LADDER = {"n_sizes": tuple(np.geomspace(1.2e7, 3e8, 9)),
                      "steps": tuple(np.geomspace(500, 16000, 30)), "noise": 0.004,
                      "curve_sd": 0.015}
CALIBRATION_BATCHES = {"one batch size": (2**20,), "three batch sizes": (2**18, 2**20, 2**22)}
CALIBRATION_REPLICATES = {"one batch size": 20, "three batch sizes": 8}


def calibration_replicate(design: str, seed: int) -> list[dict[str, Any]]:
    """One synthetic ladder: fit all but the largest size, score each held-out curve alone."""
    curves = synthetic_curves(K, batch_sizes=CALIBRATION_BATCHES[design], seed=seed,
                                 **CALIBRATION_LADDER)
    frame, top = curves.frame, max(CALIBRATION_LADDER["n_sizes"])
    train = load_curves(frame[frame["n_params"] < top], warmup_fraction=0.0)
    test = load_curves(frame[frame["n_params"] >= top], warmup_fraction=0.0,
                          max_points_per_curve=None, max_points=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = fit_dynamics("dynamics", train, random_seed=seed)
    rows = []
    for cid in test.curve_ids:
        part = test.subset(np.asarray(test.run_ids) == cid)
        band = dy.predict_curve(fitted, part.n[0], part.b[0], part.s, probs=(0.9,),
                                random_seed=seed).summary
        rows.append({"design": design, "seed": seed, "batch": float(part.b[0]),
                     "passed": fitted.diagnostics.passed,
                     "retried": bool(fitted.meta.get("retried")),
                     "half_width_90_pct": float(100 * np.median(
                         (band["hi_90"] - band["lo_90"]) / band["median"] / 2)),
                     **score_curves(fitted, part)})
    return rows


def section_calibration(workers: int = 2) -> dict[str, Any]:
    """Synthetic curve backtests where the law is right: pooled coverage of the held-out curves'
    bands, and how often one calibrated curve's coverage lands in the issue's 80-98% range."""
    from bayes_scaling.evaluate.parallel import run_many

    tasks = [{"design": d, "seed": 1000 + r} for d, n in CALIBRATION_REPLICATES.items()
             for r in range(n)]
    t0 = time.perf_counter()
    rows = [x for part in run_many(calibration_replicate, tasks, workers=workers,
                                   on_progress=tell) for x in part]
    out: dict[str, Any] = {"rows": rows, "seconds": time.perf_counter() - t0,
                           "workers": workers, "designs": {}}
    for design in CALIBRATION_REPLICATES:
        sel = [r for r in rows if r["design"] == design]
        c90 = np.array([r["coverage_90"] for r in sel])
        out["designs"][design] = {
            "curves": len(sel), "fits": len({r["seed"] for r in sel}),
            "passed": len({r["seed"] for r in sel if r["passed"]}),
            "retried": len({r["seed"] for r in sel if r["retried"]}),
            "pooled": {f"{100 * p:g}": float(np.mean([r[f"coverage_{100 * p:g}"] for r in sel]))
                       for p in PROBS},
            "curve_share_all_inside_90": float(np.mean(c90 == 1.0)),
            "curve_share_80_98_90": float(np.mean((c90 >= 0.8) & (c90 <= 0.98))),
            "curve_share_below_80_90": float(np.mean(c90 < 0.8)),
            "mape_pct": float(np.median([r["mape_pct"] for r in sel])),
            "half_width_90_pct": float(np.median([r["half_width_90_pct"] for r in sel]))}
    return out


def calibration_markdown(c: dict[str, Any], section1_cov90: float) -> list[str]:
    lines = ["## 3b. Synthetic curve backtests: is the band calibrated when the law is right?",
             "", "Ladders drawn from Kaplan's constants like the real one of section 1: 9 sizes "
             "(12M-300M), 30 checkpoints (500-16,000 steps), checkpoint noise 0.4%, whole-curve "
             "offsets of sd 1.5%; fit on the 8 smaller sizes (default settings: target_accept "
             "0.99 with one batch size, 0.95 with three, one automatic retry at 0.99 after a "
             "failed gate), predict each curve of the "
             "largest size and score it alone, as in section 1. Coverage is pooled over "
             f"replicates (seeds 1000, 1001, ...; {c['seconds']:.0f} s with {c['workers']} "
             "worker processes).", "",
             "| design | fits (gate passed; retried) | held-out curves | median abs % error | "
             "90% band half-width | 50% | 80% | 90% | 95% | curves 100% inside the 90% band | "
             "curves with 80-98% inside | curves below 80% |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for design, d in c["designs"].items():
        pc = d["pooled"]
        lines.append(f"| {design} | {d['fits']} ({d['passed']}; {d['retried']}) | {d['curves']} | "
                     f"{d['mape_pct']:.2f} | {d['half_width_90_pct']:.1f}% | {pct(pc['50'])} | "
                     f"{pct(pc['80'])} | **{pct(pc['90'])}** | {pct(pc['95'])} | "
                     f"{pct(d['curve_share_all_inside_90'])} | "
                     f"**{pct(d['curve_share_80_98_90'])}** | "
                     f"{pct(d['curve_share_below_80_90'])} |")
    lines += ["", "A held-out curve's checkpoints share its whole-curve offset, and checkpoint "
              "noise (0.4%) is small next to the band, so one curve is almost always entirely "
              "inside the 90% band or partly outside it: even when the band is right (pooled "
              "coverage near 90%), the coverage of *one* curve lands in 80-98% only in the share "
              "of replicates the table shows. Section 1's single-curve figure "
              f"({pct(section1_cov90)}) is "
              + ("what a calibrated band gives most of the time." if section1_cov90 == 1.0 else
                 "to be read against that share."), ""]
    return lines


def section_speed() -> dict[str, Any]:
    big = synthetic_curves(K, n_sizes=np.geomspace(1e6, 1e8, 10),
                              batch_sizes=(2**16, 2**18, 2**20, 2**22),
                              steps=np.geomspace(100, 1e5, 500), noise=0.005, curve_sd=0.01,
                              seed=7)
    frame = big.frame
    t0 = time.perf_counter()
    curves = load_curves(frame)
    fitted = run_fit(curves)
    wall = time.perf_counter() - t0
    return {"input_points": len(frame), "fitted_points": int(curves.n_points),
            "n_curves": int(curves.n_curves), "wall_s": wall, "fit": fit_summary(fitted)}


# ------------------------------------------------------------------------------ report
def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def markdown(res: dict[str, Any]) -> str:
    m = res["misfitting"]
    lines = ["# Training dynamics: L(N, S, B) backtests, recovery and speed", "",
             f"`benchmarks/bench_dynamics.py`, {res['meta']['when']}, {res['meta']['machine']}; "
             "4 chains x 1000 tune + 1000 draws (numpyro), model `dynamics`, default target_accept "
             "(0.99 at one batch size, 0.95 at several) with one retry after a failed gate.",
             "",
             "## 1. Real curves, one batch size (misfitting_openlm, non-embedding N)", "",
             "Longest run per size at its best learning rate (one curve per size, 1,048,576 "
             "tokens per batch); warm-up rule: checkpoints before 10% of a run's steps dropped; "
             "training curves thinned to 30 checkpoints; held-out curves scored on every "
             "checkpoint. Predictive band = law + whole-curve offset (sigma_curve) + "
             "checkpoint noise.", "",
             "| held out | train curves (points) | held-out points | median abs % error | "
             "50% | 80% | 90% | 95% | r-hat | div |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, label in (("top1", "largest size (303M), whole curve"),
                       ("top2", "two largest (199M, 303M)")):
        s, f = m[key]["score"], m[key]["fit"]
        lines.append(f"| {label} | {f['n_curves']} ({f['n_points']}) | {s['n_points']} | "
                     f"{s['mape_pct']:.2f} | {pct(s['coverage_50'])} | {pct(s['coverage_80'])} "
                     f"| **{pct(s['coverage_90'])}** | {pct(s['coverage_95'])} | "
                     f"{f['max_rhat']:.3f} | {f['divergences']} |")
    failed = [k for k in ("top1", "top2") if not m[k]["fit"]["passed"]]
    if failed:
        lines += ["", f"**Convergence gate failed** for {', '.join(failed)}: do not trust "
                  "those rows."]
    top1 = m["top1"]["score"]
    lines += [""]
    if "offsets" in m and "calibration" in res:
        one = res["calibration"]["designs"]["one batch size"]
        lines += [f"The 90% band of the held-out curve is about +-"
                  f"{m['offsets']['held_out_half_width_90_pct']:.1f}% around a median that misses "
                  f"by {top1['mape_pct']:.2f}%: {pct(top1['coverage_90'])} of the curve lies "
                  "inside it, against the 80-98% target. The band is that wide because of the "
                  "training curves, not the sampler: the whole-curve offsets below (sigma_curve) "
                  "and the barely identified B_crit(L) of one batch size. On synthetic ladders of "
                  "the same shape where the law is exactly right (section 3b) the same machinery "
                  f"gives {pct(one['pooled']['90'])} pooled coverage of its 90% bands, and one "
                  "held-out curve lands inside 80-98% in only "
                  f"{pct(one['curve_share_80_98_90'])} of replicates "
                  f"({pct(one['curve_share_all_inside_90'])} are wholly inside): a single curve's "
                  "coverage is not a calibration test.", ""]
    lines += all_lr_markdown(m)
    if "offsets" in m:
        lines += ["", *offsets_markdown(m["offsets"])]
    if "one_schedule" in m:
        o, sc, f = m["one_schedule"], m["one_schedule"]["score"], m["one_schedule"]["fit"]
        lines += [f"One schedule length instead ({o['total_steps']:,} steps, best learning rate "
                  f"per size; fitted on {', '.join(f'{x}M' for x in o['sizes_m'])}, the "
                  f"{o['held_out_n'] / 1e6:.0f}M curve held out): median abs % error "
                  f"{sc['mape_pct']:.2f}, 50/80/90/95% coverage {pct(sc['coverage_50'])} / "
                  f"{pct(sc['coverage_80'])} / **{pct(sc['coverage_90'])}** / "
                  f"{pct(sc['coverage_95'])}, sigma_curve median "
                  f"{100 * f['constants_90']['sigma_curve'][1]:.2f}%, gate "
                  f"{'passed' if f['passed'] else 'FAILED'} (max r-hat {f['max_rhat']:.3f}, "
                  f"{f['divergences']} divergences). Compare section 1's first row: "
                  "selecting one schedule length leaves fewer sizes, shorter curves and best "
                  "learning rates that differ by size, and does not by itself remove the "
                  "curve-to-curve spread (sigma_curve).", ""]
    st = res["steplaw"]
    s, f = st["score"], st["fit"]
    lines += ["", "Figure: `dynamics_curves.png` (fitted curves, predicted 303M curve with bands, "
              "held-out checkpoints).", ""]
    if "rolling" in m:
        lines += rolling_markdown(m["rolling"])
    lines += ["## 2. Real final losses at 13 batch sizes (steplaw_dense)", "",
              "Best learning rate per (N, D, B), each a one-point curve at S = D/B (no curve "
              "effects); fit on the 4 smaller sizes (0.4 decades of N), predict all (S, B) of "
              "N = 1.07e9 (0.3 decades past them). target_accept 0.99 (0.95 left 2-4 "
              "divergences).", "",
              "| train points | held-out points | median abs % error | 50% | 80% | 90% | 95% | "
              "r-hat | div |", "|---|---|---|---|---|---|---|---|---|",
              f"| {f['n_points']} | {s['n_points']} | {s['mape_pct']:.2f} | "
              f"{pct(s['coverage_50'])} | {pct(s['coverage_80'])} | **{pct(s['coverage_90'])}** "
              f"| {pct(s['coverage_95'])} | {f['max_rhat']:.3f} | {f['divergences']} |", "",
              "B_crit(L) from this fit: `dynamics_bcrit.png`. Constants (90%): "
              + ", ".join(f"{k} {v[1]:.4g} [{v[0]:.4g}, {v[2]:.4g}]"
                          for k, v in f["constants_90"].items()) + ".", "",
              "## 3. Synthetic curves from Kaplan's constants (several batch sizes)", "",
              "No public set has whole curves at several batch sizes, so the law is also checked "
              "on curves drawn from it: 5 sizes (1e6-1e8) x 4 batch sizes (65K-4M tokens) x 20 "
              "steps (1e3-1e5), checkpoint noise 0.5%, curve offsets 1%; "
              f"{len(res['synthetic']['replicates'])} replicate data sets (seeds 1, 2, ...).", "",
              "| constant | truth | " + " | ".join(
                  f"seed {r['seed']}: median [90%]" for r in res["synthetic"]["replicates"])
              + " | inside |", "|---|---|" + "---|" * len(res["synthetic"]["replicates"]) + "---|"]
    reps = res["synthetic"]["replicates"]
    for p in reps[0]["recovery"]:
        cells = [f"{r['recovery'][p]['median']:.4g} [{r['recovery'][p]['lo_90']:.4g}, "
                 f"{r['recovery'][p]['hi_90']:.4g}]" for r in reps]
        hits = sum(r["recovery"][p]["inside"] for r in reps)
        lines.append(f"| {p} | {reps[0]['recovery'][p]['truth']:.4g} | " + " | ".join(cells)
                     + f" | {hits}/{len(reps)} |")
    sp = res["speed"]
    lines += ["", "Convergence: " + "; ".join(
        f"seed {r['seed']}: max r-hat {r['fit']['max_rhat']:.3f}, min bulk ESS "
        f"{r['fit']['min_ess_bulk']:.0f}, {r['fit']['divergences']} divergences, "
        f"{r['fit']['sampling_s']:.0f} s" for r in reps) + ".", ""]
    if "calibration" in res:
        lines += calibration_markdown(res["calibration"],
                                      m["top1"]["score"]["coverage_90"])
    lines += ["## 4. Speed", "",
              f"{sp['input_points']:,} checkpoints ({sp['n_curves']} curves of 500) -> "
              f"`load_curves` (warm-up rule, thinning to 30 per curve) -> {sp['fitted_points']:,} "
              f"points -> `fit_dynamics`: **{sp['wall_s']:.0f} s** end to end (sampling "
              f"{sp['fit']['sampling_s']:.0f} s; max r-hat {sp['fit']['max_rhat']:.3f}, "
              f"{sp['fit']['divergences']} divergences). Without thinning the solve costs about "
              "10 ms per gradient at 20,000 points on one core, too slow for NUTS in 10 minutes: "
              "the default thinning (`MAX_POINTS_PER_CURVE = 30`, `MAX_POINTS = 3000`) is what "
              "keeps fits fast.", ""]
    return "\n".join(lines)


def figures(fitted: Any, test: CurveTable, steplaw_fit: Any) -> None:
    import matplotlib.pyplot as plt

    from bayes_scaling.plots.dynamics import plot_critical_batch, plot_curves

    ax = plot_curves(fitted, predict=[(float(test.n[0]), float(test.b[0]))], held_out=test)
    atomic_savefig(ax.figure, RESULTS / "dynamics_curves.png", dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    ax = plot_critical_batch(steplaw_fit)
    atomic_savefig(ax.figure, RESULTS / "dynamics_bcrit.png", dpi=100, bbox_inches="tight")
    plt.close(ax.figure)


def main() -> None:
    if "--render-only" in sys.argv:  # rewrite dynamics.md from dynamics.json
        res = json.loads((RESULTS / "dynamics.json").read_text())
        atomic_write_text(RESULTS / "dynamics.md", markdown(res))
        return
    only = {"rolling"} if "--rolling-only" in sys.argv else set()
    if "--only" in sys.argv:  # e.g. --only rolling,calibration: redo those, keep the rest
        only |= set(sys.argv[sys.argv.index("--only") + 1].split(","))
    if only:
        res = json.loads((RESULTS / "dynamics.json").read_text())
        if "rolling" in only:
            tell("rolling origin on misfitting_openlm")
            res["misfitting"]["rolling"] = section_rolling()
        if "one_schedule" in only:
            tell("one schedule length on misfitting_openlm")
            res["misfitting"]["one_schedule"] = section_one_schedule()
        if "offsets" in only:
            tell("in-sample curve offsets on misfitting_openlm")
            res["misfitting"]["offsets"] = section_offsets()
        if "calibration" in only:
            tell("synthetic curve backtests")
            res["calibration"] = section_calibration()
        if "all_lr" in only:
            tell("every run at the best learning rate on misfitting_openlm")
            res["misfitting"]["all_lr"] = section_all_lr()
        atomic_write_text(RESULTS / "dynamics.json", json.dumps(res, indent=2, default=float))
        atomic_write_text(RESULTS / "dynamics.md", markdown(res))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"meta": {"when": time.strftime("%Y-%m-%d"),
                                    "machine": f"{platform.machine()}, "
                                               f"{__import__('os').cpu_count()} cores"}}
    tell("1/4 misfitting_openlm backtests")
    res["misfitting"], fitted, test = section_misfitting()
    res["misfitting"]["rolling"] = section_rolling()
    res["misfitting"]["offsets"] = section_offsets()
    res["misfitting"]["one_schedule"] = section_one_schedule()
    tell("2/4 steplaw_dense backtest")
    res["steplaw"], steplaw_fit = section_steplaw()
    tell("3/4 synthetic recovery")
    res["synthetic"] = section_synthetic()
    res["calibration"] = section_calibration()
    tell("4/4 speed")
    res["speed"] = section_speed()
    figures(fitted, test, steplaw_fit)
    atomic_write_text(RESULTS / "dynamics.json", json.dumps(res, indent=2, default=float))
    atomic_write_text(RESULTS / "dynamics.md", markdown(res))
    tell(f"wrote {RESULTS / 'dynamics.md'}")


if __name__ == "__main__":
    main()
