"""Curve-offset bands on held-out curves: the Normal offset band vs the empirical one.

Criteria (committed before scoring): ``benchmarks/CRITERIA_s10_i16.md`` (the empirical band)
and ``benchmarks/CRITERIA_s11_i16.md`` (run-length curve offsets, rows ``<set>_rl``). Fits the
packaged default noise model (Normal likelihood, curve offsets integrated out) on Gemstones
(base and half learning rate, 3 largest sizes held out, ``dynamics_schedule``) and on
(Mis)Fitting (top 1-3 sizes held out, ``dynamics_schedule_fixed_b``, the library's default
thinning), then scores every held-out checkpoint twice on the same posterior:
``offsets="normal"`` and ``"empirical"``
(:func:`bayes_scaling.query.schedules.checkpoint_draws`). Per row it also reports the range of
coverage a calibrated band would show on the same design (posterior predictive replicates scored
by the same band) and, for (Mis)Fitting, the error by phase of the run and by size.

Run: ``nice -n 19 python benchmarks/bench_schedule_bands.py [--only gem_base,mis_1]``; fits are
cached in ``benchmarks/results/cache/schedule_bands/`` (a killed run resumes), scores in
``benchmarks/results/schedule_bands.json``, the table in ``schedule_bands.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_schedule import NUTS, SEED, gemstones_wsd, misfitting_tables  # noqa: E402

from bayes_scaling.data.curves import load_curves  # noqa: E402
from bayes_scaling.evaluate.curve_backtest import score_curves  # noqa: E402
from bayes_scaling.fitting.dynamics import fit_dynamics  # noqa: E402
from bayes_scaling.fitting.result import ScalingFit  # noqa: E402
from bayes_scaling.query.schedules import checkpoint_draws  # noqa: E402

OUT = HERE / "results"
CACHE = OUT / "cache" / "schedule_bands"
ROWS = ("gem_base", "mis_1", "mis_2", "mis_3", "gem_half")
#: Rows fitted with Student-t noise and no curve offsets (the README's setting; the empirical
#: band does not apply to them): ``<row>_t``.
STUDENT_T = {"likelihood": "studentt", "curve_offsets": "none"}
#: Rows fitted with run-length curve offsets (session 11 candidate, ``CRITERIA_s11_i16.md``):
#: ``<row>_rl``.
RUN_LENGTH = {"curve_offsets": "run_length"}
#: ... and with Student-t checkpoint noise (candidate 2 of the same criteria): ``<row>_trl``.
SUFFIXES = {"_trl": {"likelihood": "studentt", "curve_offsets": "run_length"},
            "_rl10": RUN_LENGTH, "_t": STUDENT_T, "_rl": RUN_LENGTH}
#: Checkpoints per (Mis)Fitting training curve by suffix (default: the library's 30). ``_rl10``:
#: run-length offsets at 10 (an exploration after the s11 verdict, not part of its rule).
POINTS = {"_rl10": 10}


#: A row name ending in RETRY is fitted with the library's default ``retries=1`` (session 12,
#: ``CRITERIA_s12_i16.md``: gates as the library runs them); other rows with ``retries=0``.
RETRY = "+retry"


def split_retry(row: str) -> tuple[str, int]:
    """``(row without RETRY, retries)``."""
    return row.removesuffix(RETRY), int(row.endswith(RETRY))


def base_row(row: str) -> str:
    """The row's set, without its noise-model suffix (nor RETRY)."""
    row = split_retry(row)[0]
    return next((row.removesuffix(k) for k in SUFFIXES if row.endswith(k)), row)
warnings.simplefilter("ignore")


def tables(row: str):
    """``(model, train, test, seed)`` of a row."""
    row = split_retry(row)[0]
    if base_row(row).startswith("gem"):
        row = base_row(row)
        # gem6_*: the 6 largest held out (1.0-2.0B; added after the 3-model rows, whose 90%
        # coverage a right band shows anywhere in ~60-100%: a measurement, not a criterion)
        held = 6 if row.startswith("gem6_") else 3
        df = gemstones_wsd(row.split("_", 1)[1])
        cut = np.sort(df["n_params"].unique())[-held] * 0.98
        train = load_curves(df[df["n_params"] < cut])  # what `bayes-scaling fit` reads
        test = load_curves(df[df["n_params"] >= cut], warmup_fraction=0.0,
                           max_points_per_curve=None, max_points=None)
        return "dynamics_schedule", train, test, 1
    top = int(base_row(row).removeprefix("mis_"))
    per_curve = POINTS.get(row[len(base_row(row)):])
    train, test = misfitting_tables(top, **({"max_points_per_curve": per_curve}
                                            if per_curve else {}))
    return "dynamics_schedule_fixed_b", train, test, SEED + top


def get_fit(row: str, model: str, train, seed: int) -> ScalingFit:
    path = CACHE / f"{row}.nc"
    if path.exists():
        return ScalingFit.load(path)
    t0 = time.time()
    name, retries = split_retry(row)
    fit = fit_dynamics(model, train, random_seed=seed, retries=retries, **NUTS,
                       **SUFFIXES.get(name[len(base_row(name)):], {}))
    fit.meta["wall_s"] = time.time() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    fit.save(path)
    return fit


def calibrated_range(draws: np.ndarray, kinds: np.ndarray, rng: np.random.Generator,
                     reps: int = 400) -> dict[str, list[float]]:
    """5-95% range of 90% coverage when the truth is a posterior predictive draw."""
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    pick = rng.choice(draws.shape[0], reps, replace=False)
    out = {}
    for k in [*np.unique(kinds), "pooled"]:
        sel = np.ones(kinds.size, bool) if k == "pooled" else kinds == k
        cov = [np.mean((draws[i, sel] >= lo[sel]) & (draws[i, sel] <= hi[sel])) for i in pick]
        out[str(k)] = [float(np.quantile(cov, 0.05)), float(np.quantile(cov, 0.95))]
    return out


def phase_table(points: pd.DataFrame, test) -> dict[str, Any]:
    """Median abs % error and mean signed % error by phase of the run and by size."""
    f = points.assign(signed=100 * (points["median"] / points["observed"] - 1),
                      frac=test.s / test.frame.groupby("run_id")["steps"].transform("max"))
    f["phase"] = pd.cut(f["frac"], [0, 0.25, 0.5, 0.75, 1.0]).astype(str)
    agg = {"points": ("observed", "size"), "median_abs": ("abs_pct_error", "median"),
           "mean_signed": ("signed", "mean")}
    return {"by_phase": f.groupby("phase").agg(**agg).reset_index().to_dict(orient="records"),
            "by_size": f.groupby("n_params").agg(**agg).reset_index().to_dict(orient="records")}


def score_row(row: str) -> dict[str, Any]:
    model, train, test, seed = tables(row)
    fit = get_fit(row, model, train, seed)
    kinds = (test.frame["lr_schedule"].to_numpy() if "lr_schedule" in test.frame
             else np.full(test.n_points, "cosine"))
    res = {"row": row, "model": model, "train_curves": train.n_curves,
           "train_points": train.n_points, "test_curves": test.n_curves,
           "passed": bool(fit.diagnostics.passed), "max_rhat": float(fit.diagnostics.max_rhat),
           "divergences": int(fit.diagnostics.divergences), "wall_s": fit.meta.get("wall_s"),
           "retried": bool(fit.meta.get("retried", False)),
           "sigma": float(np.median(fit.posterior["sigma"])),
           **{f"{v}": float(np.median(fit.posterior[v]))
              for v in ("sigma_curve", "nu", "run_length_slope") if v in fit.posterior},
           **({"alpha_n": float(np.median(fit.posterior["alpha_n"]))}
              if "alpha_n" in fit.posterior else {})}
    for off in ("normal",) if split_retry(row)[0] != base_row(row) else ("normal", "empirical"):
        points, per, pooled = score_curves(fit, test, random_seed=SEED, offsets=off)
        draws = np.log(checkpoint_draws(fit, test, random_seed=SEED, offsets=off))
        res[off] = {"pooled": pooled, "curves": per.to_dict(orient="records"),
                    "calibrated_90": calibrated_range(draws, kinds,
                                                      np.random.default_rng([SEED, 3])),
                    **(phase_table(points, test) if off == "normal" else {})}
        print(row, off, {k: round(v, 3) for k, v in pooled.items() if isinstance(v, float)},
              flush=True)
    return res


def _rows(res: dict[str, Any], off: str) -> dict[str, dict[str, float]]:
    """The criterion's rows: Gemstones per kind, (Mis)Fitting pooled."""
    out = {}
    for row, r in res.items():
        pooled = r[off]["pooled"] if off in r else None
        if pooled is None:
            continue
        if row.startswith("gem"):
            for kind, sc in pooled.get("by_schedule", {"constant": pooled}).items():
                out[f"{row} {kind}"] = sc
        else:
            out[row] = pooled
    return out


def verdict(res: dict[str, Any]) -> tuple[bool, list[str]]:
    """The rule of benchmarks/CRITERIA_s10_i16.md, clause by clause."""
    norm, emp = _rows(res, "normal"), _rows(res, "empirical")
    need = ["gem_base constant", "gem_base wsd", "gem_half constant", "mis_1", "mis_2", "mis_3"]
    if any(k not in norm or k not in emp for k in need):
        return False, ["not every row is scored"]
    inside = lambda c: 0.85 <= c <= 0.95  # noqa: E731
    far = {k: (abs(norm[k]["coverage_90"] - 0.9), abs(emp[k]["coverage_90"] - 0.9)) for k in need}
    c1 = inside(emp["gem_base wsd"]["coverage_90"]) and (
        inside(emp["gem_base constant"]["coverage_90"])
        or far["gem_base constant"][1] <= far["gem_base constant"][0])
    c2 = all(far[k][1] <= far[k][0] + 0.05 and (inside(emp[k]["coverage_90"])
                                                 or not inside(norm[k]["coverage_90"]))
             for k in need)
    total = {o: sum(abs(t[k]["coverage_90"] - 0.9) + abs(t[k]["coverage_50"] - 0.5) for k in need)
             for o, t in (("normal", norm), ("empirical", emp))}
    c3 = total["empirical"] < total["normal"]
    c4 = all(emp[k]["median_abs_pct_error"] <= norm[k]["median_abs_pct_error"] + 0.10
             for k in need)
    lines = [f"1. Gemstones base cooled-down in 0.85-0.95 (constant-rate no worse): "
             f"{'met' if c1 else 'NOT met'}",
             f"2. every row within 0.05 of its Normal-band distance, none leaves 0.85-0.95: "
             f"{'met' if c2 else 'NOT met'}",
             f"3. summed |cov90 - 0.90| + |cov50 - 0.50|: {total['normal']:.3f} (Normal) -> "
             f"{total['empirical']:.3f} (empirical): {'met' if c3 else 'NOT met'}",
             f"4. no median abs error up by more than 0.10: {'met' if c4 else 'NOT met'}"]
    return c1 and c2 and c3 and c4, lines


def write_md(res: dict[str, Any]) -> None:
    names = {"gem_base": "Gemstones base LR, 3 largest held out",
             "gem_half": "Gemstones half LR, 3 largest held out",
             "gem6_base": "Gemstones base LR, 6 largest held out",
             **{f"mis_{k}": f"(Mis)Fitting, top {k} held out" for k in (1, 2, 3)}}
    lines = ["# Held-out bands of curve fits: Normal curve offsets vs empirical offsets, and "
             "run-length curve offsets (session 11, after the first table)", "",
             "`benchmarks/bench_schedule_bands.py`, 2 shared cores, `nice -n 19`; NUTS 2 chains x "
             "(500 + 500), no retry. Criterion committed before scoring: "
             "`benchmarks/CRITERIA_s10_i16.md`. Gemstones: `dynamics_schedule`; (Mis)Fitting: "
             "`dynamics_schedule_fixed_b`, library default thinning (30 checkpoints per training "
             "curve), every held-out checkpoint scored. Default noise (Normal, curve offsets "
             "integrated out) unless the row says Student-t. Both bands score the same posterior. "
             "'calibrated 90% range': the 5-95% range of 90% coverage when the held-out data are "
             "a posterior predictive draw scored by the same band (what a right band shows on "
             "this design).", "",
             "| set | kind | points | band | median abs % error | 50% / 90% coverage | "
             "calibrated 90% range | gate |", "|---|---|---|---|---|---|---|---|"]
    for row, r in res.items():
        label = names[base_row(row)] + {"_t": " (Student-t, no offsets)",
                                        "_rl": " (run-length offsets)",
                                        "_trl": " (Student-t, run-length offsets)",
                                        "_rl10": " (run-length offsets, 10 points/curve)"}.get(
            split_retry(row)[0][len(base_row(row)):], "") + (
            " (library retry)" if split_retry(row)[1] else "")
        gate = (f"{'passed' if r['passed'] else 'FAILED'} (r-hat {r['max_rhat']:.3f}, "
                f"{r['divergences']} div, {r['wall_s'] or 0:.0f} s)")
        for off in ("normal", "empirical"):
            if off not in r:
                continue
            pooled = r[off]["pooled"]
            kinds = {**pooled.get("by_schedule", {}), "pooled": pooled}
            for kind, sc in kinds.items():
                lo, hi = r[off]["calibrated_90"].get(kind, r[off]["calibrated_90"]["pooled"])
                lines.append(f"| {label} | {kind} | {sc.get('points', sc.get('test_points'))} | "
                             f"{off} | {sc['median_abs_pct_error']:.2f} | "
                             f"{sc['coverage_50']:.0%} / {sc['coverage_90']:.0%} | "
                             f"{lo:.0%}-{hi:.0%} | {gate} |")
    ok, why = verdict(res)
    lines += ["", f"**Verdict: {'ADOPT' if ok else 'not adopted'}** (all four must hold):", "",
              *[f"- {w}" for w in why], "", *run_length_section(res), *retry_section(res),
              "## Where the (Mis)Fitting error comes from (default noise, Normal band)", "",
              "Signed error = median prediction / observed - 1 (negative: predicted too low).", "",
              "| hold-out | by | group | points | median abs % | mean signed % |",
              "|---|---|---|---|---|---|"]
    for row, r in res.items():
        if not row.startswith("mis") or "by_phase" not in r["normal"]:
            continue
        for t in r["normal"]["by_phase"]:
            lines.append(f"| {row} | phase of run | {t['phase']} | {t['points']} | "
                         f"{t['median_abs']:.2f} | {t['mean_signed']:+.2f} |")
        for t in r["normal"]["by_size"]:
            lines.append(f"| {row} | size | {t['n_params']:.3g} | {t['points']} | "
                         f"{t['median_abs']:.2f} | {t['mean_signed']:+.2f} |")
    lines += ["", "Per held-out curve (Normal band; run length from the run's name):", "",
              "| hold-out | size | run length | median abs % | 90% coverage |",
              "|---|---|---|---|---|"]
    for row, r in res.items():
        if not row.startswith("mis"):
            continue
        for c in sorted(r["normal"]["curves"], key=lambda c: (c["n_params"], _length(c))):
            lines.append(f"| {row} | {c['n_params']:.3g} | {_length(c)} | "
                         f"{c['median_abs_pct_error']:.2f} | {c['coverage_90']:.0%} |")
    (OUT / "schedule_bands.md").write_text("\n".join(lines) + "\n")


#: The sets of CRITERIA_s11_i16.md and their error targets (% median abs error).
S11_SETS = {"mis_1": 1.5, "mis_2": 1.5, "mis_3": 1.5, "gem6_base": 1.0, "gem_base": 1.0,
            "gem_half": 1.0}


def targets_met(r: dict[str, Any] | None, err_max: float) -> list[bool] | None:
    """Targets (a)-(d) of CRITERIA_s11_i16.md on a row's pooled scores (None: not scored)."""
    if r is None:
        return None
    if not r["passed"]:
        return [False] * 4
    p = r["normal"]["pooled"]
    return [p["median_abs_pct_error"] <= err_max, 0.85 <= p["coverage_90"] <= 0.95,
            0.40 <= p["coverage_50"] <= 0.60, True]


def run_length_section(res: dict[str, Any]) -> list[str]:
    """Per set, the default against the run-length candidates, and the rule's verdicts."""
    lines = ["## Run-length curve offsets (session 11, `benchmarks/CRITERIA_s11_i16.md`)", "",
             "Pooled held-out scores per set (targets: error <= 1.5% (Mis)Fitting / 1.0% "
             "Gemstones, 90% coverage 0.85-0.95, 50% coverage 0.40-0.60, gate). Candidate 1: "
             "`_rl`, Normal noise with run-length offsets; candidate 2: `_trl`, Student-t "
             "noise with run-length offsets. Same seeds and settings as the default's fits.", "",
             "| set | fit | median abs % | 50% / 90% | gate | slope | alpha_N | targets met |",
             "|---|---|---|---|---|---|---|---|"]
    fits = {"default": "", "run_length": "_rl", "studentt+run_length": "_trl",
            "run_length, 10 points/curve (exploration, after the verdict)": "_rl10"}
    for row, err_max in S11_SETS.items():
        for name, suf in fits.items():
            r = res.get(row + suf)
            if r is None:
                if suf != "_rl10":
                    lines.append(f"| {row} | {name}: not scored | | | | | | |")
                continue
            p, t = r["normal"]["pooled"], targets_met(r, err_max)
            lines.append(f"| {row} | {name} | {p['median_abs_pct_error']:.2f} | "
                         f"{p['coverage_50']:.0%} / {p['coverage_90']:.0%} | "
                         f"{'passed' if r['passed'] else 'FAILED'} | "
                         + (f"{r['run_length_slope']:+.4f}" if "run_length_slope" in r
                            else "-") + f" | {r.get('alpha_n', float('nan')):.4f} | "
                         f"{sum(t)}/4 |")
    lines.append("")
    for name, suf in list(fits.items())[1:3]:
        ok, why = s11_verdict(res, suf)
        lines += [f"- **{name}: {'ADOPT' if ok else 'not adopted'}.** {why}"]
    return [*lines, ""]


def retry_section(res: dict[str, Any]) -> list[str]:
    """The 24-target count with the library's retry (session 12; no candidate is judged)."""
    lines = ["## Gates with the library's retry (session 12, `benchmarks/CRITERIA_s12_i16.md`)",
             "", "The same targets as above, with each fit's gate as `fit_dynamics` runs it by "
             f"default (`retries=1`), every row refitted with session 12's code (`<row>{RETRY}`"
             "; same seeds). The cached rows above come from sessions 10-11: with the same seed "
             "the current code samples differently (gem_base_rl: r-hat 1.012 then, 1.008 now at "
             "the first attempt; rerun twice now: 1.008 both times). A row marked 'cached' is "
             "a retries=0 fit from those sessions that passed. No candidate is judged here: "
             "session 12's screen built none (`noise_run_length.md`).", "",
             "| set | fit | median abs % | 50% / 90% | gate (retried) | targets met |",
             "|---|---|---|---|---|---|"]
    total = {}
    for name, suf in (("default", ""), ("run_length", "_rl")):
        total[name] = 0
        for row, err_max in S11_SETS.items():
            r = res.get(row + suf + RETRY)
            cached = r is None and res.get(row + suf, {}).get("passed")
            r = res.get(row + suf) if cached else r
            if r is None:
                lines.append(f"| {row} | {name}: not scored with the retry | | | | |")
                total[name] = None
                continue
            p, t = r["normal"]["pooled"], targets_met(r, err_max)
            lines.append(f"| {row} | {name} | {p['median_abs_pct_error']:.2f} | "
                         f"{p['coverage_50']:.0%} / {p['coverage_90']:.0%} | "
                         f"{'passed' if r['passed'] else 'FAILED'} (r-hat {r['max_rhat']:.3f}"
                         f"{', retried' if r.get('retried') else ''}"
                         f"{', cached' if cached else ''}) | {sum(t)}/4 |")
            total[name] = None if total[name] is None else total[name] + sum(t)
    lines += ["", "Targets met with the library's retry: " + ", ".join(
        f"{k} {'(not all sets scored)' if v is None else f'{v}/24'}"
        for k, v in total.items()) + ".", ""]
    return lines


def s11_verdict(res: dict[str, Any], suf: str) -> tuple[bool, str]:
    """The rule of CRITERIA_s11_i16.md for the candidate of rows ``<set><suf>``."""
    met = {"default": 0, "candidate": 0}
    lost, scored = [], []
    for row, err_max in S11_SETS.items():
        d, c = targets_met(res.get(row), err_max), targets_met(res.get(row + suf), err_max)
        if d is None or c is None:
            continue
        scored.append(row)
        met["default"] += sum(d)
        met["candidate"] += sum(c)
        lost += [f"{row} ({'abcd'[i]})" for i in range(4) if d[i] and not c[i]]
    ok = len(scored) >= 5 and not lost and met["candidate"] > met["default"]
    return ok, (f"Sets scored: {', '.join(scored) or 'none'}; targets met: default "
                f"{met['default']}, candidate {met['candidate']}; targets the default meets "
                f"and the candidate loses: {', '.join(lost) or 'none'}.")


def _length(curve: dict[str, Any]) -> int:
    """Run length in steps from a (Mis)Fitting run name (``.../S4000/...``)."""
    m = re.search(r"/S(\d+)/", str(curve["run_id"]))
    return int(m.group(1)) if m else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ROWS), help="Rows; '' rewrites the table only.")
    args = ap.parse_args()
    path = OUT / "schedule_bands.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for row in filter(None, args.only.split(",")):
        done[row] = score_row(row)
        path.write_text(json.dumps(done, indent=1, default=float))
    write_md(done)


if __name__ == "__main__":
    main()
