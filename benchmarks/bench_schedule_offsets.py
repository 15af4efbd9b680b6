"""Where the whole-curve offsets go wrong: point and MAP fits on Gemstones and (Mis)Fitting.

Cheap (no NUTS) exploration behind ``benchmarks/results/schedule_bands.md``:

1. **Gemstones** (3 largest sizes held out, ``dynamics_schedule``, robust least-squares point
   fit): each training model's mean residual (its whole-curve offset), the within-curve spread
   of constant-rate and cooled-down residuals.
2. **(Mis)Fitting** (top 1-3 sizes held out, ``dynamics_schedule_fixed_b``, the library's default
   thinning): the MAP of the default model (Normal, curve offsets integrated out, exact marginal
   likelihood) against the MAP without offsets, with the first quarter of every training run
   dropped, at 10 checkpoints per training curve, and with run-length offsets (session 11:
   offset mean = slope x centred log schedule length, ``benchmarks/CRITERIA_s11_i16.md``;
   ``--map-only`` runs these rows alone); held-out error overall, in the first and last
   quarter of each run.
3. **(Mis)Fitting, top 1 held out**: the default model's training-curve offsets (conditional
   means at the MAP) against run length and size.

Writes ``benchmarks/results/schedule_offsets.md``. Run:
``nice -n 19 python benchmarks/bench_schedule_offsets.py`` (a few CPU-minutes).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_schedule import SEED, gemstones_wsd, misfitting_tables  # noqa: E402

from bayes_scaling.data.curves import load_curves  # noqa: E402
from bayes_scaling.fitting.dynamics import curve_point_fit  # noqa: E402
from bayes_scaling.laws.curve import uncentre  # noqa: E402
from bayes_scaling.laws.registry import CURVE_LAWS  # noqa: E402
from bayes_scaling.model.build_curves import RUN_LENGTH_SLOPE_PRIOR  # noqa: E402
from bayes_scaling.model.centre import curve_centre, run_length_covariate  # noqa: E402
from bayes_scaling.model.spec import load_spec  # noqa: E402

OUT = HERE / "results"
#: Which variants of section 2 run (all; ``--map-only`` runs the candidate's alone).
ONLY_VARIANT = slice(None)
warnings.simplefilter("ignore")


def _log_mean(spec, train, x, table) -> np.ndarray:
    law = CURVE_LAWS[spec.law]
    th = {p: float(np.exp(v) if not p.startswith("log_") else v)
          for p, v in zip(law.params, x, strict=True)}
    return law.log_mean(*table.law_inputs(law.inputs), **uncentre(th, curve_centre(train)))


def _start(spec, train) -> np.ndarray:
    th = curve_point_fit(spec, train, random_seed=SEED, starts=4)
    return np.array([th[p] if p.startswith("log_") else np.log(th[p])
                     for p in CURVE_LAWS[spec.law].params]), th["rms"]


def gemstones_offsets() -> list[str]:
    df = gemstones_wsd("base")
    cut = np.sort(df["n_params"].unique())[-3] * 0.98
    train = load_curves(df[df["n_params"] < cut], warmup_fraction=0.0)
    spec = load_spec("dynamics_schedule")
    x, _ = _start(spec, train)
    f = train.frame.assign(r=100 * (train.log_loss - _log_mean(spec, train, x, train)))
    f["within"] = f["r"] - f.groupby("run_id")["r"].transform("mean")
    off = f.groupby("run_id")["r"].mean().sort_values()
    lines = ["## 1. Gemstones: whole-curve offsets of the training models (point fit)", "",
             "| model | offset % |", "|---|---|"]
    lines += [f"| {k.split(':')[0]} | {v:+.2f} |" for k, v in off.items()]
    kinds = f.groupby("lr_schedule")["within"].std()
    lines += ["", f"Offset sd {off.std():.2f}%; without the 3 largest offsets "
              f"{off.iloc[:-3].std():.2f}%. Within-curve residual sd: constant-rate "
              f"{kinds.get('constant', np.nan):.2f}%, cooled-down {kinds.get('wsd', np.nan):.2f}%.",
              ""]
    return lines


def _negpost(z, spec, train, offsets: bool, w: np.ndarray, x: np.ndarray | None = None
             ) -> float:
    k = len(CURVE_LAWS[spec.law].params)
    r = train.log_loss - _log_mean(spec, train, z[:k], train)
    prior = 0.0
    if x is not None:  # run-length offsets: mean gamma * x_c, gamma ~ Normal(0, 0.1)
        r = r - z[k + 2] * x[train.curve_index]
        prior = 0.5 * (z[k + 2] / RUN_LENGTH_SLOPE_PRIOR.kwargs["sigma"]) ** 2
    if not np.all(np.isfinite(r)):
        return 1e10
    s2, c2 = np.exp(2 * z[k]), np.exp(2 * z[k + 1])
    if not offsets:
        return 0.5 * float(np.sum(w * (r**2 / s2 + np.log(s2))))
    idx = train.curve_index
    n = np.bincount(idx, weights=w)
    s1, sq = np.bincount(idx, weights=w * r), np.bincount(idx, weights=w * r * r)
    v = s2 + n * c2
    return prior + 0.5 * float(np.sum((n - 1) * np.log(s2) + np.log(v)
                                      + (sq - c2 * s1**2 / v) / s2))


def map_fit(spec, train, offsets: bool, drop_early: float = 0.0,
            run_length: bool = False) -> np.ndarray:
    frac = train.s / train.frame.groupby("run_id")["steps"].transform("max").to_numpy()
    w = (frac >= drop_early).astype(float)
    x0, rms = _start(spec, train)
    z = np.r_[x0, np.log(max(rms, 1e-3)), np.log(0.01)]
    x = run_length_covariate(train)[0] if run_length else None
    if run_length:
        z = np.r_[z, 0.0]
    args = (spec, train, offsets, w, x)
    z = minimize(_negpost, z, args=args, method="Nelder-Mead",
                 options={"maxiter": 20000, "maxfev": 20000, "xatol": 1e-6, "fatol": 1e-6}).x
    return minimize(_negpost, z, args=args, method="Powell").x


def misfitting_map() -> list[str]:
    spec = load_spec("dynamics_schedule_fixed_b")
    k = len(CURVE_LAWS[spec.law].params)
    lines = ["## 2. (Mis)Fitting: MAP of the default model and variants, held-out error", "",
             "Signed = prediction / observed - 1 (negative: predicted too low); first / last "
             "quarter of each held-out run.", "",
             "| held out | fit | median abs % | mean signed % | first quarter | last quarter | "
             "alpha_n | sigma | sigma_curve |", "|---|---|---|---|---|---|---|---|---|"]
    variants = [("Normal, curve offsets (default)", True, 0.0, 30, False),
                ("Normal, no offsets", False, 0.0, 30, False),
                ("default, first quarter of each training run dropped", True, 0.25, 30, False),
                ("default, 10 checkpoints per training curve", True, 0.0, 10, False),
                ("run-length offsets (session 11 candidate)", True, 0.0, 30, True)]
    for top in (1, 2, 3):
        for name, offsets, drop, ppc, run_length in variants[ONLY_VARIANT]:
            train, test = misfitting_tables(top, max_points_per_curve=ppc)
            z = map_fit(spec, train, offsets, drop, run_length)
            log_mu = _log_mean(spec, train, z[:k], test)
            if run_length:  # the held-out curves' offset mean at their schedule length
                centre = run_length_covariate(train)[1]
                log_mu = log_mu + z[k + 2] * run_length_covariate(test, centre)[0][
                    test.curve_index]
                name += f" (slope {z[k + 2]:+.4f})"
            signed = 100 * (np.exp(log_mu) / test.loss - 1)
            fr = test.s / test.frame.groupby("run_id")["steps"].transform("max").to_numpy()
            alpha = np.exp(z[CURVE_LAWS[spec.law].params.index("alpha_n")])
            lines.append(f"| top {top} | {name} | {np.median(np.abs(signed)):.2f} | "
                         f"{signed.mean():+.2f} | {signed[fr < 0.25].mean():+.2f} | "
                         f"{signed[fr > 0.75].mean():+.2f} | {alpha:.4f} | {np.exp(z[k]):.4f} | "
                         + (f"{np.exp(z[k + 1]):.4f} |" if offsets else "- |"))
            print(lines[-1], flush=True)
    return [*lines, ""]


def offsets_vs_length() -> list[str]:
    spec = load_spec("dynamics_schedule_fixed_b")
    k = len(CURVE_LAWS[spec.law].params)
    train, _ = misfitting_tables(1)
    z = map_fit(spec, train, True)
    r = train.log_loss - _log_mean(spec, train, z[:k], train)
    s2, c2 = np.exp(2 * z[k]), np.exp(2 * z[k + 1])
    idx = train.curve_index
    n, s1 = np.bincount(idx), np.bincount(idx, weights=r)
    f = train.frame.assign(c=idx, size=train.n).groupby("c").agg(
        n=("size", "first"), steps=("total_steps", "first"))
    f["off"] = 100 * c2 * s1 / (s2 + n * c2)
    log_t = np.log(f["steps"])
    slope = np.polyfit(log_t - log_t.groupby(f["n"]).transform("mean"),
                       f["off"] - f.groupby("n")["off"].transform("mean"), 1)[0]
    tab = f.groupby(["n", "steps"])["off"].mean().reset_index()
    c_t, c_n = np.corrcoef(f["off"], log_t)[0, 1], np.corrcoef(f["off"], np.log(f["n"]))[0, 1]
    lines = ["## 3. (Mis)Fitting, top 1 held out: the default model's training-curve offsets", "",
             f"Correlation of a curve's offset with log run length {c_t:.2f}, with log size "
             f"{c_n:.2f}; within a size the "
             f"offset rises {slope:.2f} points per unit of log run length.", "",
             "| size | run length (steps) | offset % |", "|---|---|---|"]
    lines += [f"| {r.n:.3g} | {r.steps:.0f} | {r.off:+.2f} |" for r in tab.itertuples()]
    return [*lines, ""]


def main() -> None:
    global ONLY_VARIANT
    if "--map-only" in sys.argv:  # exploration: the run-length candidate's MAP rows alone
        ONLY_VARIANT = slice(4, 5)
        print("\n".join(misfitting_map()))
        return
    lines = ["# Whole-curve offsets: where they go wrong (point and MAP fits)", "",
             "`benchmarks/bench_schedule_offsets.py`; no NUTS. Read with "
             "`schedule_bands.md`.", ""]
    lines += gemstones_offsets() + misfitting_map() + offsets_vs_length()
    (OUT / "schedule_offsets.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
