"""Synthetic recovery of the schedule law's constants, many seeds: per-constant 90% coverage.

Curves are drawn from a schedule law at known constants (``TRUTH``, Kaplan et al. 2020's
exponents and Tissue et al. 2024's annealing size; the layout of ``bench_schedule``'s section 4:
5 sizes, 20M-400M x 5 schedules: cosine to 0.1x of 2,000/6,000/16,000 steps, WSD cooling
8,000-10,000, constant to 12,000; 10 checkpoints each, batch 5e5) with the noise of the model
that fits them, so the model is right and its 90% intervals should hold each constant 90% of
the time:

- ``normal``: the packaged specs' noise, a whole-curve offset (sd 1%) plus Normal checkpoint
  noise (sd 0.4%), fitted with offsets (``--curve-offsets curve --likelihood normal``);
- ``studentt``: Student-t checkpoint noise (scale 0.4%, nu 3), no whole-curve offset, fitted with
  ``--curve-offsets none --likelihood studentt``.

Each fit is NUTS, 2 chains x (400 + 400), seeded by the seed. For each constant the table gives
how many seeds' 90% intervals hold the truth, with a 95% Clopper-Pearson interval for the rate
(calibrated: it contains 0.90), and the contraction: the posterior 90% width over the prior's
(prior draws of the spec pushed through the same centring), so a model that returned its prior
would show coverage near 100% *and* contraction near 1.

Run: ``nice -n 19 python benchmarks/bench_schedule_recovery.py --law dynamics_schedule_fixed_b
--noise studentt --seeds 1-20``; each fit is cached in
``benchmarks/results/schedule_recovery_cache/`` and the markdown
``benchmarks/results/schedule_recovery.md`` rebuilt from every cached fit.
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
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bayes_scaling.data.curves import load_curves  # noqa: E402
from bayes_scaling.data.schedules import SCHEDULE_FIELDS, Schedule, schedule_areas  # noqa: E402
from bayes_scaling.fitting.dynamics import _prior_draws, fit_dynamics  # noqa: E402
from bayes_scaling.laws.curve import uncentre  # noqa: E402
from bayes_scaling.laws.registry import CURVE_LAWS  # noqa: E402
from bayes_scaling.model.centre import curve_centre  # noqa: E402
from bayes_scaling.model.spec import load_spec  # noqa: E402

OUT = HERE / "results"
CACHE = OUT / "schedule_recovery_cache"
NUTS = {"chains": 2, "tune": 400, "draws": 400}
#: Known constants (Kaplan et al. 2020 section 5's N_c, alpha_N, S_c, alpha_S, B*, alpha_B;
#: an annealing constant of 0.15 nats, the size Gemstones' fits give, benchmarks/schedule.md).
TRUTH = {"log_n_c": np.log(8.8e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3),
         "alpha_s": 0.76, "log_b_star": np.log(2e8), "alpha_b": 0.21,
         "log_c_anneal": np.log(0.15)}
#: Noise of the synthetic curves and the fit options that match it.
NOISE = {"normal": {"offset_sd": 0.01, "point_sd": 0.004, "nu": None,
                    "fit": {"likelihood": "normal", "curve_offsets": "curve"}},
         "studentt": {"offset_sd": 0.0, "point_sd": 0.004, "nu": 3.0,
                      "fit": {"likelihood": "studentt", "curve_offsets": "none"}}}
SCHEDULES = [Schedule("cosine", total_steps=t, warmup_steps=50, final_fraction=0.1)
             for t in (2000, 6000, 16000)] + [
    Schedule("wsd", cooldown_start=8000, cooldown_steps=2000), Schedule("constant")]
warnings.simplefilter("ignore")


def truth(law: str) -> dict[str, float]:
    """The constants of ``law`` at :data:`TRUTH`."""
    return {p: float(TRUTH[p]) for p in CURVE_LAWS[law].params}


def synthetic_curves(seed: int, law: str = "dynamics_schedule",
                     noise: str = "normal") -> pd.DataFrame:
    """Curves drawn from ``law`` at :data:`TRUTH` with the noise :data:`NOISE` [``noise``]."""
    rng = np.random.default_rng(seed)
    f, th, nz = CURVE_LAWS[law], truth(law), NOISE[noise]
    rows = []
    for n in np.geomspace(2e7, 4e8, 5):
        for k, sched in enumerate(SCHEDULES):
            top = sched.end() if sched.shape != "constant" else 12000
            steps = np.unique(np.geomspace(top / 10, top, 10).round())
            s1, a = schedule_areas(sched, steps)
            inputs = {"n": np.log(n), "s1": np.log(s1), "b": np.log(5e5), "anneal": a}
            mu = f.log_mean(*(inputs[i] for i in f.inputs), **th)
            point = (rng.standard_t(nz["nu"], steps.size) if nz["nu"]
                     else rng.standard_normal(steps.size))
            mu = mu + nz["offset_sd"] * rng.standard_normal() + nz["point_sd"] * point
            for st, y in zip(steps, np.exp(mu), strict=True):
                rows.append({"run_id": f"N{n:.3g}-{k}", "n_params": n, "steps": st,
                             "batch_size_tokens": 5e5, "loss": y, "lr_schedule": sched.shape,
                             **{c: getattr(sched, f) for c, f in SCHEDULE_FIELDS.items()}})
    return pd.DataFrame(rows)


def prior_widths(law: str, curves: Any, size: int = 20000, seed: int = 0) -> dict[str, float]:
    """90% widths of the spec's priors on the law's natural constants at this table's centre."""
    spec = load_spec(law)
    rng = np.random.default_rng(seed)
    draws = {p: _prior_draws(spec.priors[p], rng, size) for p in CURVE_LAWS[law].params}
    with np.errstate(all="ignore"):
        nat = uncentre(draws, curve_centre(curves))
    return {p: float(np.subtract(*np.nanquantile(nat[p], [0.95, 0.05]))) for p in draws}


def one(law: str, noise: str, seed: int) -> dict[str, Any]:
    """Fit one synthetic table; cached."""
    path = CACHE / f"{law}_{noise}_{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    curves = load_curves(synthetic_curves(seed, law, noise), warmup_fraction=0.0)
    t0, c0 = time.time(), time.process_time()
    fit = fit_dynamics(law, curves, random_seed=seed, **NUTS, **NOISE[noise]["fit"])
    post, th, prior = fit.posterior, truth(law), prior_widths(law, curves)
    q = {p: [float(x) for x in np.quantile(post[p].values, [0.05, 0.5, 0.95])] for p in th}
    row = {"law": law, "noise": noise, "seed": seed, "quantiles": q,
           "inside": {p: bool(q[p][0] <= th[p] <= q[p][2]) for p in th},
           "contraction": {p: (q[p][2] - q[p][0]) / prior[p] for p in th},
           "passed": bool(fit.diagnostics.passed), "max_rhat": float(fit.diagnostics.max_rhat),
           "divergences": int(fit.diagnostics.divergences),
           "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
           "nu": (float(np.median(post["nu"].values)) if "nu" in post else None)}
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=1))
    return row


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a rate from ``k`` of ``n``."""
    a = (1 - level) / 2
    lo = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown per (law, noise): per-constant coverage with its interval, and contraction."""
    out = []
    for (law, noise), grp in pd.DataFrame(rows).groupby(["law", "noise"], sort=False):
        recs = grp.to_dict(orient="records")
        n = len(recs)
        fit = NOISE[noise]["fit"]
        out += [f"### `{law}`, {noise} noise (fitted with `--likelihood {fit['likelihood']} "
                f"--curve-offsets {fit['curve_offsets']}`), {n} seeds", "",
                "| constant | truth | inside 90% | rate [95% CI] | 0.90 in CI | "
                "median contraction |", "|---|---|---|---|---|---|"]
        ks = 0
        for p, v in truth(law).items():
            k = sum(r["inside"][p] for r in recs)
            ks += k
            lo, hi = clopper_pearson(k, n)
            con = np.median([r["contraction"][p] for r in recs])
            out.append(f"| {p} | {v:.4g} | {k}/{n} | {k / n:.2f} [{lo:.2f}, {hi:.2f}] | "
                       f"{'yes' if lo <= 0.9 <= hi else '**no**'} | {con:.3f} |")
        m = n * len(truth(law))
        lo, hi = clopper_pearson(ks, m)
        gates = sum(r["passed"] for r in recs)
        out += [f"| **all** | | {ks}/{m} | {ks / m:.2f} [{lo:.2f}, {hi:.2f}] | "
                f"{'yes' if lo <= 0.9 <= hi else '**no**'} | |", "",
                f"Gate passed {gates}/{n}; max r-hat {max(r['max_rhat'] for r in recs):.3f}; "
                f"divergences {sum(r['divergences'] for r in recs)}; CPU s per fit (median) "
                f"{np.median([r['cpu_s'] for r in recs]):.0f}"
                + (f"; nu median {np.median([r['nu'] for r in recs]):.1f} (truth 3)"
                   if noise == "studentt" else "") + ".",
                "(The pooled interval treats the constants of one seed as independent; they "
                "are not, so it is narrower than it should be.)", ""]
    return out


def write() -> None:
    rows = [json.loads(p.read_text()) for p in sorted(CACHE.glob("*.json"))]
    rows.sort(key=lambda r: (r["law"], r["noise"], r["seed"]))
    md = ["## Schedule law: synthetic recovery, per-constant coverage", "",
          "Written by `benchmarks/bench_schedule_recovery.py` (docstring: the design). Curves "
          "drawn from the law at known constants with the noise of the model that fits them; "
          "each seed a fresh table and a NUTS fit (2 chains x (400 + 400)). A calibrated model "
          "holds each constant inside its 90% interval at a rate whose 95% Clopper-Pearson "
          "interval contains 0.90. Contraction: posterior 90% width / prior 90% width (a model "
          "returning its prior: ~1).", ""]
    md += table(rows)
    (OUT / "schedule_recovery.md").write_text("\n".join(md))
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--law", default="dynamics_schedule_fixed_b")
    ap.add_argument("--noise", default="studentt", choices=sorted(NOISE))
    ap.add_argument("--seeds", default="1-20", help="first-last")
    a = ap.parse_args()
    first, last = (int(x) for x in a.seeds.split("-"))
    for seed in range(first, last + 1):
        r = one(a.law, a.noise, seed)
        print(seed, sum(r["inside"].values()), "/", len(r["inside"]),
              f"{r['cpu_s']:.0f} CPU s", r["passed"], flush=True)
        write()


if __name__ == "__main__":
    main()
