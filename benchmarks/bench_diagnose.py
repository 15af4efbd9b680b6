"""Detection and false-alarm rates of the scaling-pattern detectors (bayes_scaling.evaluate.checks).

Synthetic ladders with one planted pattern each (or none), drawn with per-seed variety: 7-9
model sizes log-spaced over 2.2-2.8 decades from ~1e7 parameters, 5 tokens-per-parameter ratios
(5-80), Chinchilla constants near Hoffmann et al.'s (E 1.6-1.9, alpha 0.30-0.38, beta
0.26-0.34) and Normal noise on log loss with sd U(0.005, 0.015) (real ladders: Chinchilla 0.005,
Porian et al. 0.013, the open_lm ladder 0.022). Planted patterns:

- ``none``: the law exactly; ``none_groups``: two groups differing only in E and B (offsets);
- ``cold_start``: log loss + 0.10 exp(-(log N - log N_min) / 0.5): +10% at the smallest size,
  about +2% at the next;
- ``bend``: the N term's slope steepens by +1.0 at the ladder's middle size
  (``chinchilla_broken``, ``alpha_2 = alpha + 1``);
- ``plateau`` (hard case, reported apart): the N term flattens to ``alpha_2 = 0.04`` at the
  middle size; Chinchilla's E absorbs most of it;
- ``slope``: two groups; the second has alpha + 0.15, pivoting at the ladder's centre;
- ``few_sizes``: 3 model sizes only;
- ``outliers``: 2 runs with log loss raised by 8-15 noise sd (diverged / not converged).

These sizes are the smallest detected in >= 95% of the calibration seeds 1000-1039; the power
sweep (``--sweep``, on the evaluation seeds) shows the detection rate of smaller ones.

The detectors' thresholds were set on seeds 1000-1039 of ``none`` and ``none_groups``; the
rates here use seeds 0..N-1. Only point fits (no NUTS): about 1-3 s per ladder on one core.

Run: ``.venv/bin/python benchmarks/bench_diagnose.py [--seeds 40]``; writes
``benchmarks/results/diagnose.md`` and ``diagnose.json``. ``--loo`` instead runs the slow,
full-posterior checks on the real ladders (NUTS fits; PSIS-LOO of the broken law on Chinchilla's
runs, of the pooled-exponent model on Porian et al.'s two data sets) and writes
``diagnose_loo.md``.
"""

from __future__ import annotations

import os

from bayes_scaling.evaluate.patterns import diagnose_runs
from bayes_scaling.evaluate.pointfit import point_fit

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # L-BFGS-B is ~10x slower with BLAS threads

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.evaluate import checks as dg
from bayes_scaling.files import atomic_write_text
from bayes_scaling.laws.final_loss import LAWS

RESULTS = Path(__file__).resolve().parent / "results"
RATIOS = (5.0, 10.0, 20.0, 40.0, 80.0)
#: pattern -> the detector(s) that should fire on it.
TARGETS: dict[str, tuple[str, ...]] = {
    "cold_start": ("cold_start",), "bend": ("bend",), "slope": ("slope_differs",),
    "few_sizes": ("few_sizes", "exponent_uncertainty"), "outliers": ("outliers",),
    "plateau": ("bend",),
}
NULLS = ("none", "none_groups")
#: Planted size of each pattern: cold start excess log loss at the smallest size; bend: rise of
#: the N slope; plateau: the N slope after the break; slope: rise of the second group's alpha;
#: outliers: least shift in noise sd (up to +7 more). The smallest sizes of SWEEP detected in
#: >= 95% of seeds 1000-1039 (90% left too little margin: 40 seeds vary by +-5-10%).
MAGNITUDES: dict[str, float] = {"cold_start": 0.1, "bend": 1.0, "plateau": 0.04,
                                "slope": 0.15, "outliers": 8.0}
#: Sizes of the power sweep (--sweep).
SWEEP: dict[str, tuple[float, ...]] = {"cold_start": (0.04, 0.07, 0.1),
                                       "bend": (0.4, 0.7, 1.0),
                                       "slope": (0.05, 0.1, 0.15),
                                       "outliers": (4.0, 6.0, 8.0)}
DETECTORS = ("outliers", "few_sizes", "exponent_uncertainty", "cold_start", "bend",
             "slope_differs")


def planted_ladder(pattern: str, seed: int, size: float | None = None) -> tuple[RunTable, dict]:
    """A synthetic ladder with ``pattern`` planted at ``size`` (default :data:`MAGNITUDES`)."""
    size = MAGNITUDES.get(pattern, 0.0) if size is None else size
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.005, 0.015)
    n_sizes = 3 if pattern == "few_sizes" else int(rng.integers(7, 10))
    lo = 1e7 * 10 ** rng.uniform(-0.3, 0.3)
    sizes = np.geomspace(lo, lo * 10 ** rng.uniform(2.2, 2.8), n_sizes)
    th = {"log_e": np.log(rng.uniform(1.6, 1.9)), "log_a": np.log(406.4),
          "log_b": np.log(410.7), "alpha": rng.uniform(0.3, 0.38),
          "beta": rng.uniform(0.26, 0.34)}
    n = np.repeat(sizes, len(RATIOS))
    d = n * np.tile(RATIOS, n_sizes)
    ln, ld = np.log(n), np.log(d)
    groups = {"all": dict(th)}
    if pattern in ("none_groups", "slope"):
        b = dict(th)
        b["log_e"] += rng.choice([-1, 1]) * rng.uniform(0.02, 0.05)
        b["log_b"] += rng.uniform(-0.2, 0.2)
        if pattern == "slope":  # steeper, pivoting at the centre: same loss there
            b["alpha"] += size
            b["log_a"] += size * ln.mean()
        groups = {"a": th, "b": b}
    frames = []
    for g, t in groups.items():
        law, theta = "chinchilla", t
        if pattern in ("bend", "plateau"):
            a2 = t["alpha"] + size if pattern == "bend" else size
            law, theta = "chinchilla_broken", {**t, "log_n_b": float(np.log(sizes).mean()),
                                               "alpha_2": a2}
        y = LAWS[law].evaluate_log({"n": ln, "d": ld}, theta) + noise * rng.standard_normal(
            n.size)
        if pattern == "cold_start":
            y = y + size * np.exp(-(ln - ln.min()) / 0.5)
        if pattern == "outliers":
            idx = rng.choice(n.size, 2, replace=False)
            y[idx] += noise * rng.uniform(size, size + 7, 2)
        frames.append(pd.DataFrame({"group": g, "n_params": n, "n_tokens": d,
                                    "loss": np.exp(y)}))
    runs = load_runs(pd.concat(frames, ignore_index=True),
                     group_col="group" if len(groups) > 1 else None)
    return runs, {"law": law, "theta": theta, "noise": noise}


def extrapolation_error(runs: RunTable, truth: dict) -> float:
    """|log error| of the plain Chinchilla point fit at 10x the largest N, 20 tokens/param."""
    pf = point_fit(runs, "chinchilla")
    n = 10 * runs.n.max()
    x = {"n": np.log([n]), "d": np.log([20 * n])}
    true = LAWS[truth["law"]].evaluate_log(x, truth["theta"])
    return float(abs(LAWS["chinchilla"].evaluate_log(x, pf.theta) - true)[0])


def run(patterns: list[str], seeds: int) -> pd.DataFrame:
    """One row per (pattern, seed): each detector's flag and value, and the seconds taken."""
    rows = []
    for pat in patterns:
        for s in range(seeds):
            runs, truth = planted_ladder(pat, s)
            t0 = time.perf_counter()
            res = diagnose_runs(runs)
            row = {"pattern": pat, "seed": s, "noise": truth["noise"],
                   "seconds": time.perf_counter() - t0}
            for f in res.findings:
                row[f["code"]] = f["severity"] == "warning"
                row[f"{f['code']}_value"] = f["value"]
            if pat in ("bend", "plateau"):
                row["extrapolation_error"] = extrapolation_error(runs, truth)
            rows.append(row)
        print(f"{pat}: {seeds} seeds done", flush=True)
    return pd.DataFrame(rows)


def sweep(seeds: int, df: pd.DataFrame) -> pd.DataFrame:
    """Detection rate of each planted pattern at every size of :data:`SWEEP` (headline sizes
    are taken from ``df``, the main run)."""
    rows = []
    for pat, sizes in SWEEP.items():
        for size in sizes:
            main = df[df["pattern"] == pat]
            if size == MAGNITUDES[pat] and len(main) == seeds:
                hits = main[list(TARGETS[pat])].any(axis=1).tolist()
            else:
                hits = [any(diagnose_runs(planted_ladder(pat, s, size)[0]).flagged(c)
                            for c in TARGETS[pat]) for s in range(seeds)]
            rows.append({"pattern": pat, "size": size, "detected": float(np.mean(hits)),
                         "seeds": seeds, "headline": size == MAGNITUDES[pat]})
        print(f"sweep {pat} done", flush=True)
    return pd.DataFrame(rows)


def real_findings() -> dict[str, list[dict]]:
    """The detectors on the real data sets available here (skipped when missing)."""
    from bayes_scaling.data.registry import load_dataset
    from bayes_scaling.errors import BayesScalingError

    out = {}
    for name in ("chinchilla", "porian2024_isoflop", "misfitting_openlm"):
        try:
            res = diagnose_runs(load_dataset(name))
        except BayesScalingError as exc:
            out[name] = [{"code": "unavailable", "severity": "info", "message": str(exc)}]
            continue
        out[name] = [{k: f[k] for k in ("code", "severity", "value", "threshold", "message")}
                     for f in res.findings]
    return out


def rates_table(df: pd.DataFrame) -> pd.DataFrame:
    """Fraction of seeds in which each detector fired, per pattern."""
    return df.groupby("pattern", sort=False)[list(DETECTORS)].mean()


def markdown(df: pd.DataFrame, real: dict, seeds: int, seconds: float,
             power: pd.DataFrame | None = None) -> str:
    """The results page."""
    rates = rates_table(df)
    lines = ["# Scaling-pattern detectors: detection and false-alarm rates", "",
             f"`benchmarks/bench_diagnose.py --seeds {seeds}`: {seeds} seeds per pattern, "
             f"seeds 0-{seeds - 1} (thresholds were set on seeds 1000-1039 of the clean "
             f"ladders); point fits only, {df['seconds'].mean():.1f} s per ladder on one core, "
             f"{seconds / 60:.1f} min in all. Patterns and magnitudes: see the script's docstring.",
             "", "## Planted patterns: detection rate (target: >= 90%)", "",
             "| pattern | detector | detected | seeds |", "|---|---|---|---|"]
    for pat, dets in TARGETS.items():
        if pat == "plateau" or pat not in rates.index:
            continue
        hit = df[df["pattern"] == pat][list(dets)].any(axis=1)
        lines.append(f"| {pat} | {' or '.join(dets)} | {hit.mean():.0%} | {hit.size} |")
    lines += ["", "## Clean ladders: false alarms (target: <= 10%)", "",
              "| ladder | any detector | " + " | ".join(DETECTORS) + " |",
              "|---|---|" + "---|" * len(DETECTORS)]
    for pat in NULLS:
        sub = df[df["pattern"] == pat]
        if sub.empty:
            continue
        cells = " | ".join(f"{sub[d].mean():.0%}" for d in DETECTORS)
        lines.append(f"| {pat} | {sub[list(DETECTORS)].any(axis=1).mean():.0%} | {cells} |")
    lines += ["", "## Every detector on every pattern (fraction of seeds flagged)", "",
              "| pattern | " + " | ".join(DETECTORS) + " |", "|---|" + "---|" * len(DETECTORS)]
    for pat, r in rates.iterrows():
        lines.append(f"| {pat} | " + " | ".join(f"{r[d]:.0%}" for d in DETECTORS) + " |")
    lines += _power_section(power) + _plateau_section(df) + _real_section(real)
    return "\n".join(lines) + "\n"


def _power_section(power: pd.DataFrame | None) -> list[str]:
    if power is None or power.empty:
        return []
    units = {"cold_start": "excess log loss at the smallest size",
             "bend": "rise of the N slope at the middle size",
             "slope": "rise of the second group's alpha",
             "outliers": "least shift, noise sd"}
    out = ["", "## Power: detection rate vs planted size (evaluation seeds)", "",
           "| pattern | size | detected |", "|---|---|---|"]
    for _, r in power.iterrows():
        mark = " (headline)" if r["headline"] else ""
        out.append(f"| {r['pattern']} | {r['size']:g} ({units[r['pattern']]}){mark} | "
                   f"{r['detected']:.0%} |")
    return out


def _plateau_section(df: pd.DataFrame) -> list[str]:
    pl, bd = df[df["pattern"] == "plateau"], df[df["pattern"] == "bend"]
    if pl.empty:
        return []
    return ["", "## Hard case: a plateau in N", "",
            f"The N term flattening to a slope of 0.04 at the middle size is flagged in "
            f"{pl['bend'].mean():.0%} of seeds: in Chinchilla's form a larger E absorbs it "
            "within the ladder. It then matters little for extrapolation along N: the plain "
            "law's median |log error| at 10x the largest size (20 tokens/param) is "
            f"{pl['extrapolation_error'].median():.1%} for plateaus vs "
            f"{bd['extrapolation_error'].median():.1%} for the (detected) steepening bends."]


def _real_section(real: dict) -> list[str]:
    out = ["", "## Real ladders (point-fit checks)", "",
           "The full-posterior checks (PSIS-LOO of the broken law and of the pooled-exponent "
           "model) are in [diagnose_loo.md](diagnose_loo.md) (`--loo`).", ""]
    for name, findings in real.items():
        out.append(f"**{name}**")
        out.append("")
        out += [f"- {f['severity'].upper()} `{f['code']}`: {f['message']}" for f in findings]
        out.append("")
    return out


def loo_checks(seed: int = 0) -> str:
    """The PSIS-LOO checks on real ladders (NUTS: a few minutes), as a Markdown page."""
    from bayes_scaling.data.registry import load_dataset
    from bayes_scaling.fitting.fit import fit

    kw = {"chains": 4, "draws": 1000, "tune": 1000, "calibrate": False}
    lines = ["# Full-posterior pattern checks on real ladders (PSIS-LOO)", "",
             f"`benchmarks/bench_diagnose.py --loo`: NUTS fits, {kw['chains']} chains x "
             f"{kw['draws']} draws, seed {seed}.", ""]
    for name, models in (("chinchilla", ("chinchilla", "broken")),
                         ("porian2024_isoflop", ("chinchilla", "chinchilla_slopes"))):
        runs = load_dataset(name)
        t0 = time.perf_counter()
        fits = {m: fit(m, runs, random_seed=seed, **kw) for m in models}
        res = dg.diagnose(fits["chinchilla"], fits={m: f for m, f in fits.items()
                                                   if m != "chinchilla"})
        secs = time.perf_counter() - t0
        lines += [f"## {name} ({runs.n_runs} runs, {runs.n_groups} group(s)); "
                  f"{secs / 60:.1f} min", ""]
        for m, f in fits.items():
            d = f.diagnostics
            lines.append(f"- fit `{m}`: max r-hat {d.max_rhat:.3f}, min bulk ESS "
                         f"{d.min_ess_bulk:.0f}, {d.divergences} divergences, "
                         f"{d.sampling_seconds:.0f} s")
        lines += [f"- {f['severity'].upper()} `{f['code']}`: {f['message']}"
                  for f in res.findings if f["code"] in ("broken_law_loo", "same_slope_loo",
                                                         "outliers")]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and write the results page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--patterns", default=",".join((*NULLS, *TARGETS)))
    ap.add_argument("--no-sweep", action="store_true", help="Skip the power sweep.")
    ap.add_argument("--loo", action="store_true", help="Only the slow LOO checks (NUTS).")
    args = ap.parse_args()
    if args.loo:
        RESULTS.mkdir(exist_ok=True)
        atomic_write_text(RESULTS / "diagnose_loo.md", loo_checks())
        print((RESULTS / "diagnose_loo.md").read_text())
        return
    t0 = time.perf_counter()
    df = run(args.patterns.split(","), args.seeds)
    power = None if args.no_sweep else sweep(args.seeds, df)
    real = real_findings()
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "diagnose.md", markdown(df, real, args.seeds,
                                                        time.perf_counter() - t0, power))
    payload = {"rates": rates_table(df).reset_index().to_dict("records"),
               "power": [] if power is None else power.to_dict("records"),
               "runs": df.to_dict("records"), "real": real}
    atomic_write_text(RESULTS / "diagnose.json", json.dumps(payload, indent=1, default=float))
    print((RESULTS / "diagnose.md").read_text())


if __name__ == "__main__":
    main()
