"""Curve-offset bands on held-out curves: the Normal offset band vs the empirical one.

Criterion (committed before scoring): ``benchmarks/CRITERIA_s10_i16.md``. Fits the packaged
default noise model (Normal likelihood, curve offsets integrated out) on Gemstones (base and half
learning rate, 3 largest sizes held out, ``dynamics_schedule``) and on (Mis)Fitting (top 1-3 sizes
held out, ``dynamics_schedule_fixed_b``, the library's default thinning), then scores every
held-out checkpoint twice on the same posterior: ``offsets="normal"`` and ``"empirical"``
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
warnings.simplefilter("ignore")


def tables(row: str):
    """``(model, train, test, seed)`` of a row."""
    if row.startswith("gem"):
        df = gemstones_wsd(row.removeprefix("gem_"))
        cut = np.sort(df["n_params"].unique())[-3] * 0.98
        train = load_curves(df[df["n_params"] < cut])  # what `bayes-scaling fit` reads
        test = load_curves(df[df["n_params"] >= cut], warmup_fraction=0.0,
                           max_points_per_curve=None, max_points=None)
        return "dynamics_schedule", train, test, 1
    top = int(row.removeprefix("mis_"))
    train, test = misfitting_tables(top)
    return "dynamics_schedule_fixed_b", train, test, SEED + top


def get_fit(row: str, model: str, train, seed: int) -> ScalingFit:
    path = CACHE / f"{row}.nc"
    if path.exists():
        return ScalingFit.load(path)
    t0 = time.time()
    fit = fit_dynamics(model, train, random_seed=seed, retries=0, **NUTS)
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
           "sigma": float(np.median(fit.posterior["sigma"])),
           "sigma_curve": float(np.median(fit.posterior["sigma_curve"]))}
    for off in ("normal", "empirical"):
        points, per, pooled = score_curves(fit, test, random_seed=SEED, offsets=off)
        draws = np.log(checkpoint_draws(fit, test, random_seed=SEED, offsets=off))
        res[off] = {"pooled": pooled, "curves": per.to_dict(orient="records"),
                    "calibrated_90": calibrated_range(draws, kinds,
                                                      np.random.default_rng([SEED, 3])),
                    **(phase_table(points, test) if off == "normal" else {})}
        print(row, off, {k: round(v, 3) for k, v in pooled.items() if isinstance(v, float)},
              flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ROWS))
    args = ap.parse_args()
    path = OUT / "schedule_bands.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for row in args.only.split(","):
        done[row] = score_row(row)
        path.write_text(json.dumps(done, indent=1, default=float))


if __name__ == "__main__":
    main()
