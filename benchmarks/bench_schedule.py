"""Schedule-aware training dynamics: form choice, curve backtests, Gemstones WSD, recovery, speed.

Writes ``benchmarks/results/schedule.md``. Sections (``--only 1,2,...``; the shared machine is
small, so every NUTS fit here is 2 chains x 500 tune + 500 draws unless said otherwise):

1. **Form choice** (least-squares point fits, cheap): on the 45 (Mis)Fitting best-learning-rate
   curves (6+ schedule lengths, cosine to 0.1x, 50 warm-up steps), the held-out error of the top
   1-3 sizes for the law without a schedule term (``dynamics``) and Tissue et al.'s annealing
   term at lambda 0.99, 0.999 and 0.9995.
2. **(Mis)Fitting, NUTS**: all 45 curves in one fit (gate), and rolling origin by size (top 1-3
   held out), every held-out checkpoint scored, each curve alone and pooled.
3. **Gemstones WSD**: constant-rate curves and the cooled-down losses (each cooldown a linear
   decay to 0 over the last ~10% of steps, branched from a constant-rate checkpoint); the
   largest sizes held out; constant-rate and cooled-down points scored.
4. **Synthetic recovery** of the schedule law's constants (3 seeds).
5. **Speed**: a 20,000-checkpoint table, no thinning, one batch size: the one-batch-size law
   ``dynamics_schedule_fixed_b`` (closed form) and ``dynamics_schedule`` (a solve per point).

Run: ``nice -n 10 python benchmarks/bench_schedule.py [--only 1,2]``; results are cached per
section in ``benchmarks/results/schedule_*.json`` and the markdown rebuilt from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench_dynamics import misfitting_selection  # noqa: E402

from bayes_scaling.data.curves import load_curves  # noqa: E402
from bayes_scaling.data.schedules import SCHEDULE_FIELDS, Schedule, schedule_areas  # noqa: E402
from bayes_scaling.evaluate.curve_backtest import score_curves  # noqa: E402
from bayes_scaling.fitting.dynamics import curve_point_fit, fit_dynamics  # noqa: E402
from bayes_scaling.laws.curve import uncentre  # noqa: E402
from bayes_scaling.laws.registry import CURVE_LAWS  # noqa: E402
from bayes_scaling.model.centre import curve_centre  # noqa: E402
from bayes_scaling.model.spec import load_spec  # noqa: E402

OUT = HERE / "results"
SEED = 20261206
NUTS = {"chains": 2, "tune": 500, "draws": 500}
#: (Mis)Fitting schedule (hadasah/scaling_laws, open_lm/misfitting config: NUM_WARMUP_STEPS 50,
#: END_LR_RATIO 0.1, cosine decay).
MISFITTING_SCHEDULE = {"shape": "cosine", "warmup_steps": 50.0, "final_fraction": 0.1}
#: Model of the NUTS sections 2, 2b and 3 (both sets have one batch size; ``--model``).
MODEL = "dynamics_schedule_fixed_b"
#: Extra options of section 3's ``fit`` (``--fit-flags``, e.g. the noise model).
FIT_FLAGS: list[str] = []
#: Warm-up rule of the (Mis)Fitting NUTS sections: also drop checkpoints before this step
#: (``--min-steps``; 0: the default rule alone, 10% of each run).
MIN_STEPS = 0.0
warnings.simplefilter("ignore")


# ------------------------------------------------------------------------------ data
def misfitting_45() -> pd.DataFrame:
    """Every run (>= 5 checkpoints) at each size's best learning rate: 45 curves."""
    return misfitting_selection(all_runs_at_best_lr=True)


def gemstones_wsd(lr_variant: str = "base") -> pd.DataFrame:
    """Gemstones as a schedule table: constant-rate rows, and one WSD branch per cooldown row.

    A cooldown row's branch holds the peak rate until the constant-rate checkpoint it starts
    from (the largest constant-rate step below it) and decays linearly to 0 until its own step
    (PROVENANCE.md: "learning rate decayed to zero over ~10% more tokens"; linear assumed).
    Warm-up is not in the files (0 assumed; every kept checkpoint is past 10B tokens). A
    model's constant-rate checkpoints and its cooldown branches are one curve (``run_id`` =
    model:lr_variant, rows in step order): the branches share the run's state up to the
    cooldown, so they share its whole-curve offset (with one offset per branch set, the offsets
    absorb the cooldown gain and the annealing constant is barely identified).
    """
    d = pd.read_csv(Path(os.environ.get("BAYES_SCALING_DATA", "/work/shared/data"))
                    / "gemstones" / "gemstones_curves.csv")
    d = d[d["lr_variant"] == lr_variant].copy()
    const = d[d["schedule"] == "constant"].copy()
    const["lr_schedule"] = "constant"
    cool = d[d["schedule"] == "cooldown_end"].copy()
    starts = []
    for model, step in zip(cool["model"], cool["steps"], strict=True):
        c = const.loc[const["model"] == model, "steps"].to_numpy()
        below = c[c < step]
        starts.append(float(below.max()) if below.size else np.nan)
    cool["cooldown_start"] = starts
    cool = cool[np.isfinite(cool["cooldown_start"])]
    cool["cooldown_steps"] = cool["steps"] - cool["cooldown_start"]
    cool["lr_schedule"] = "wsd"
    cool["final_lr_fraction"] = 0.0
    cols = ["run_id", "model", "n_params", "steps", "batch_size_tokens", "loss", "lr_schedule",
            "cooldown_start", "cooldown_steps", "final_lr_fraction"]
    out = pd.concat([const, cool], ignore_index=True)
    out["run_id"] = out["model"] + ":" + lr_variant
    out = out.sort_values(["run_id", "steps"], kind="stable").reset_index(drop=True)
    return out[[c for c in cols if c in out.columns]]


def misfitting_tables(top: int, **load: Any):
    df = misfitting_45()
    sizes = np.sort(df["n_params_nonembedding"].unique())
    cut = sizes[-top]
    common = {"param_count": "nonembedding", "schedule": MISFITTING_SCHEDULE}
    train = load_curves(df[df["n_params_nonembedding"] < cut], **common, **load)
    # the held-out curves: every checkpoint (no thinning), the same areas and warm-up rule
    same = {k: v for k, v in load.items() if k not in ("max_points_per_curve", "max_points")}
    test = load_curves(df[df["n_params_nonembedding"] >= cut], **common, **same,
                       max_points_per_curve=None, max_points=None)
    return train, test


# ------------------------------------------------------------------------------ 1. form choice
def point_scores(model: str, train, test) -> dict[str, float]:
    spec = load_spec(model)
    law = CURVE_LAWS[spec.law]
    theta_c = curve_point_fit(spec, train, random_seed=SEED, starts=6)
    theta = uncentre({p: theta_c[p] for p in law.params}, curve_centre(train))
    mu = law.log_mean(*test.law_inputs(law.inputs), **theta)
    err = 100 * np.abs(np.exp(mu) / test.loss - 1)
    per = pd.Series(err).groupby(test.curve_index).median()
    return {"median_abs_pct": float(np.median(err)), "worst_curve": float(per.max()),
            "rms_train": theta_c["rms"]}


def gemstones_point(decay: float | None, top: int = 3,
                    schedule_model: str = "dynamics_schedule") -> dict[str, float]:
    """Point-fit error on the constant-rate and cooled-down losses of the top Gemstones sizes."""
    df = gemstones_wsd()
    cut = np.sort(df["n_params"].unique())[-top] * 0.98
    load = {"warmup_fraction": 0.0, "anneal_decay": decay or 0.999}
    train = load_curves(df[df["n_params"] < cut], **load)
    test = load_curves(df[df["n_params"] >= cut], **load, max_points_per_curve=None,
                       max_points=None)
    model = "dynamics" if decay is None else schedule_model
    if decay is None:  # the law without the term sees steps only: drop the cooled losses
        train = train.subset(train.frame["lr_schedule"].to_numpy() == "constant")
    spec = load_spec(model)
    law = CURVE_LAWS[spec.law]
    theta_c = curve_point_fit(spec, train, random_seed=SEED, starts=4)
    theta = uncentre({p: theta_c[p] for p in law.params}, curve_centre(train))
    inputs = test.law_inputs(law.inputs)
    err = 100 * np.abs(np.exp(law.log_mean(*inputs, **theta)) / test.loss - 1)
    shape = test.frame["lr_schedule"].to_numpy()
    return {"constant": float(np.median(err[shape == "constant"])),
            "cooled": float(np.median(err[shape == "wsd"])), "rms_train": theta_c["rms"]}


def section_form() -> dict[str, Any]:
    rows = []
    forms = (("none (dynamics)", "dynamics", None),
             *((f"Tissue + B_crit(L), lambda {d:g}", "dynamics_schedule", d)
               for d in (0.99, 0.998)),
             *((f"Tissue, one batch size (fixed_b), lambda {d:g}", "dynamics_schedule_fixed_b", d)
               for d in (0.99, 0.995, 0.998, 0.999)))
    for label, model, decay in forms:
        row = {"form": label, "gemstones": gemstones_point(decay, schedule_model=model)}
        for top in (1, 2, 3):
            load = {} if decay is None else {"anneal_decay": decay}
            train, test = misfitting_tables(top, **load)
            row[f"top{top}"] = point_scores(model, train, test)
        rows.append(row)
        print(rows[-1], flush=True)
    return {"rows": rows}


# ------------------------------------------------------------------------------ 2. misfitting
def section_misfitting() -> dict[str, Any]:
    df = misfitting_45()
    full = load_curves(df, param_count="nonembedding", schedule=MISFITTING_SCHEDULE,
                       min_steps=MIN_STEPS)
    t0 = time.time()
    fit = fit_dynamics(MODEL, full, random_seed=SEED, **NUTS)
    d = fit.diagnostics
    allfit = {"curves": full.n_curves, "points": full.n_points,
              "lengths": int(df["total_steps"].nunique()), "passed": bool(d.passed),
              "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
              "divergences": d.divergences, "seconds": time.time() - t0,
              "constants": _constants(fit)}
    return {"all": allfit}


#: Checkpoints per training curve in the rolling-origin refits (the shared machine is busy).
ROLLING_POINTS_PER_CURVE = 10


#: Sizes held out in turn by section 2b (``--tops``).
TOPS = (1, 2, 3)


def section_rolling() -> dict[str, Any]:
    rolls = []
    for top in TOPS:
        train, test = misfitting_tables(top, max_points_per_curve=ROLLING_POINTS_PER_CURVE,
                                        min_steps=MIN_STEPS)
        # no automatic retry (it doubles the warm-up): the gate's verdict is reported instead
        fit = fit_dynamics(MODEL, train, random_seed=SEED + top, retries=0,
                           **NUTS)
        _, per, pooled = score_curves(fit, test, random_seed=SEED + top)
        rolls.append({"top": top, "train_curves": train.n_curves, "pooled": pooled,
                      "curves": per.to_dict(orient="records"),
                      "passed": bool(fit.diagnostics.passed),
                      "max_rhat": fit.diagnostics.max_rhat,
                      "divergences": fit.diagnostics.divergences})
        print(rolls[-1]["pooled"], flush=True)
    return {"rolling": rolls, "points_per_curve": ROLLING_POINTS_PER_CURVE,
            "min_steps": MIN_STEPS}


def _constants(fit) -> dict[str, list[float]]:
    post = fit.posterior
    return {p: [float(q) for q in np.quantile(post[p].values, [0.05, 0.5, 0.95])]
            for p in (*fit.law.params, "sigma", "sigma_curve", "nu") if p in post}


# ------------------------------------------------------------------------------ 3. gemstones
def section_gemstones() -> dict[str, Any]:
    """The README's worked WSD example, run through the CLI, then scored on the held-out sizes."""
    import contextlib
    import io
    import tempfile

    from bayes_scaling.cli.app import main as cli
    from bayes_scaling.fitting.result import ScalingFit

    df = gemstones_wsd()
    sizes = np.sort(df["n_params"].unique())
    cut = sizes[-3] * 0.98
    tmp = Path(tempfile.mkdtemp())
    csv, nc = tmp / "gem_wsd.csv", tmp / "gem.nc"
    df.to_csv(csv, index=False)
    big = df[df["n_params"] >= cut].groupby("model")["n_params"].first().sort_values()
    n_query = float(big.iloc[0])
    commands = [
        ["fit", str(csv), "--model", MODEL, "--query", f"n_params < {cut:.4g}",
         "--chains", "2", "--draws", "500", "--tune", "500", "--seed", "1", "--out", str(nc),
         *FIT_FLAGS, "-q"],
        ["cooldown", str(nc), "--n-params", f"{n_query:.4g}", "--batch-size", "4194000",
         "--start", "4770,11925,21465"],
        ["curve", str(nc), "--n-params", f"{n_query:.4g}", "--batch-size", "4194000",
         "--schedule", "wsd", "--cooldown-start", "21465", "--cooldown-steps", "2145",
         "--steps", "4770,11925,21465,22537,23610"],
        ["schedule-steps", str(nc), "--n-params", f"{n_query:.4g}", "--batch-size", "4194000",
         "--target-loss", "2.6", "--schedule", "wsd", "--cooldown-start", "10",
         "--cooldown-steps", "1"],
    ]
    transcript = []
    t0 = time.time()
    for cmd in commands:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = cli(cmd)
        shown = ["gem_wsd.csv" if a == str(csv) else "gem.nc" if a == str(nc) else a
                 for a in cmd]
        transcript.append({"command": "bayes-scaling " + " ".join(shown), "rc": rc,
                           "output": buf.getvalue()})
        print(transcript[-1]["command"], rc, flush=True)
    seconds = time.time() - t0
    fit = ScalingFit.load(nc)
    test = load_curves(df[df["n_params"] >= cut], warmup_fraction=0.0,
                       max_points_per_curve=None, max_points=None)
    points, per, pooled = score_curves(fit, test, random_seed=SEED)
    observed = df[(df["model"] == big.index[0])][["steps", "loss", "lr_schedule"]]
    kinds = {}
    shape = test.frame["lr_schedule"].to_numpy()
    for kind in ("constant", "wsd"):
        sel = shape == kind
        kinds[kind] = {"points": int(sel.sum()),
                       "median_abs_pct": float(points.loc[sel, "abs_pct_error"].median()),
                       **{c: float(points.loc[sel, c].mean())
                          for c in points.columns if c.startswith("in_")}}
    row = {"held_out": "3 largest (1.9-2.0B), constant and cooled rows of a model one curve",
           "train_curves": fit.runs.n_curves, "train_points": fit.runs.n_points,
           "pooled": pooled, "by_kind": kinds, "curves": per.to_dict(orient="records"),
           "passed": bool(fit.diagnostics.passed), "max_rhat": fit.diagnostics.max_rhat,
           "divergences": fit.diagnostics.divergences, "seconds": seconds,
           "constants": _constants(fit)}
    print(pooled, kinds, flush=True)
    return {"rows": [row], "transcript": transcript, "query_model": str(big.index[0]),
            "observed": observed.to_dict(orient="records")}


# ------------------------------------------------------------------------------ 4. recovery
TRUTH = {"log_n_c": np.log(8.8e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3),
         "alpha_s": 0.76, "log_b_star": np.log(2e8), "alpha_b": 0.21,
         "log_c_anneal": np.log(0.15)}


def synthetic_schedule_curves(seed: int) -> pd.DataFrame:
    """Curves drawn from the schedule law: 5 sizes x (cosine of 3 lengths, WSD, constant)."""
    rng = np.random.default_rng(seed)
    law = CURVE_LAWS["dynamics_schedule"]
    rows = []
    for n in np.geomspace(2e7, 4e8, 5):
        for k, sched in enumerate([Schedule("cosine", total_steps=t, warmup_steps=50,
                                            final_fraction=0.1) for t in (2000, 6000, 16000)]
                                  + [Schedule("wsd", cooldown_start=8000, cooldown_steps=2000),
                                     Schedule("constant")]):
            top = sched.end() if sched.shape != "constant" else 12000
            steps = np.unique(np.geomspace(top / 10, top, 10).round())
            s1, a = schedule_areas(sched, steps)
            mu = law.log_mean(np.log(n), np.log(s1), np.log(5e5), a, **TRUTH)
            mu = mu + 0.01 * rng.standard_normal() + 0.004 * rng.standard_normal(steps.size)
            for st, y, ss1, aa in zip(steps, np.exp(mu), s1, a, strict=True):
                rows.append({"run_id": f"N{n:.3g}-{k}", "n_params": n, "steps": st,
                             "batch_size_tokens": 5e5, "loss": y, "current_s1": ss1,
                             "current_a": aa, "lr_schedule": sched.shape,
                             **{c: getattr(sched, f) for c, f in SCHEDULE_FIELDS.items()}})
    return pd.DataFrame(rows)


def section_recovery() -> dict[str, Any]:
    out = []
    for seed in (1, 2, 3):
        df = synthetic_schedule_curves(seed).drop(columns=["current_s1", "current_a"])
        curves = load_curves(df, warmup_fraction=0.0)
        fit = fit_dynamics("dynamics_schedule", curves, random_seed=seed, **NUTS)
        c = _constants(fit)
        out.append({"seed": seed, "constants": c, "passed": bool(fit.diagnostics.passed),
                    "max_rhat": fit.diagnostics.max_rhat,
                    "divergences": fit.diagnostics.divergences,
                    "inside": {p: bool(c[p][0] <= float(TRUTH[p]) <= c[p][2]) for p in TRUTH}})
        print(out[-1]["inside"], flush=True)
    return {"rows": out, "truth": {k: float(v) for k, v in TRUTH.items()}}


# ------------------------------------------------------------------------------ 5. speed
#: Models timed by section 5: the one-batch-size law (closed form) and the law with B_crit(L)
#: (a solve per checkpoint), on the same unthinned table.
SPEED_MODELS = ("dynamics_schedule_fixed_b", "dynamics_schedule")


def speed_table() -> pd.DataFrame:
    """20,000 checkpoints: 40 cosine runs (8 sizes x 5 lengths) of 500 checkpoints each."""
    rng = np.random.default_rng(5)
    law = CURVE_LAWS["dynamics_schedule"]
    rows = []
    for j, n in enumerate(np.repeat(np.geomspace(2e7, 4e8, 8), 5)):
        t = [2000, 4000, 8000, 12000, 16000][j % 5]
        sched = Schedule("cosine", total_steps=t, warmup_steps=50, final_fraction=0.1)
        steps = np.linspace(t / 500, t, 500).round()
        s1, a = schedule_areas(sched, steps)
        mu = law.log_mean(np.log(n), np.log(s1), np.log(5e5), a, **TRUTH)
        mu = mu + 0.01 * rng.standard_normal() + 0.004 * rng.standard_normal(steps.size)
        rows += [{"run_id": f"r{j}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
                  "loss": y, "total_steps": t} for s, y in zip(steps, np.exp(mu), strict=True)]
    return pd.DataFrame(rows)


def gradient_seconds(model: str, curves, repeats: int = 200) -> dict[str, float]:
    """Wall and CPU seconds per JAX log-density-and-gradient evaluation of ``model``'s graph on
    ``curves`` (what NUTS pays per leapfrog step), after compilation."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    from bayes_scaling.model.build_curves import build_dynamics_model

    pm_model = build_dynamics_model(load_spec(model), curves)
    logp = get_jaxified_logp(pm_model)
    point = pm_model.initial_point()
    x = [np.asarray(point[v.name]) for v in pm_model.value_vars]
    f = jax.jit(jax.value_and_grad(lambda *a: logp(list(a)), argnums=tuple(range(len(x)))))
    jax.block_until_ready(f(*x))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        jax.block_until_ready(f(*x))
    return {"wall_ms": 1e3 * (time.perf_counter() - t0) / repeats,
            "cpu_ms": 1e3 * (time.process_time() - c0) / repeats}


def section_gradient() -> dict[str, Any]:
    """Per-gradient cost of the two laws on the same unthinned 20,000-checkpoint table,
    interleaved (A, B, A, B) so that load changes hit both."""
    df = speed_table()
    curves = load_curves(df, schedule={"shape": "cosine", "warmup_steps": 50.0,
                                       "final_fraction": 0.1},
                         max_points_per_curve=None, max_points=None)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in SPEED_MODELS}
    load0 = os.getloadavg()[0]
    for _ in range(2):
        for m in SPEED_MODELS:
            rows[m].append(gradient_seconds(m, curves))
            print(m, rows[m][-1], flush=True)
    return {"points": curves.n_points, "loadavg_start": load0, "loadavg_end": os.getloadavg()[0],
            "runs": {m: {k: float(np.median([r[k] for r in v])) for k in v[0]}
                     for m, v in rows.items()}}


def section_speed() -> dict[str, Any]:
    """A 20,000-checkpoint table, no thinning (warm-up rule only), one batch size; each model
    timed end to end (load + fit), wall and CPU seconds, with the load average."""
    models = SPEED_MODELS
    df = speed_table()
    out = {"rows_read": len(df), "settings": NUTS, "cores": os.cpu_count(), "runs": []}
    for model in models:
        load0 = os.getloadavg()[0]
        t0, c0 = time.time(), time.process_time()
        curves = load_curves(df, schedule={"shape": "cosine", "warmup_steps": 50.0,
                                           "final_fraction": 0.1},
                             max_points_per_curve=None, max_points=None)
        t_load = time.time() - t0
        fit = fit_dynamics(model, curves, random_seed=SEED, retries=0, **NUTS)
        row = {"model": model, "points_fitted": curves.n_points, "load_s": t_load,
               "total_s": time.time() - t0, "cpu_s": time.process_time() - c0,
               "sampling_s": float(fit.meta["seconds"]), "loadavg_start": load0,
               "loadavg_end": os.getloadavg()[0], "passed": bool(fit.diagnostics.passed),
               "max_rhat": fit.diagnostics.max_rhat,
               "min_ess_bulk": fit.diagnostics.min_ess_bulk,
               "divergences": fit.diagnostics.divergences}
        out["runs"].append(row)
        print(row, flush=True)
    return out


#: Section 5d's runs: (model, NUTS settings). The one-batch-size law with the library's default
#: fit (the issue-18 figure); the law with B_crit(L) with section 5's settings, to compare with
#: its row there.
SPEED_RUNS = (("dynamics_schedule_fixed_b", {}), ("dynamics_schedule", NUTS))


def multi_batch_table():
    """20,000 checkpoints at 4 batch sizes drawn from the law ``dynamics`` (Kaplan et al.'s
    constants; ``bench_dynamics.py`` section 4's table), not thinned (the default warm-up rule
    keeps 6,680 of the log-spaced steps): where B_crit(L) is identified and its solve is the
    model to fit."""
    from bayes_scaling.constants import PUBLISHED
    from bayes_scaling.testing import synthetic_curves

    big = synthetic_curves(PUBLISHED["kaplan2020_dynamics"], n_sizes=np.geomspace(1e6, 1e8, 10),
                           batch_sizes=(2**16, 2**18, 2**20, 2**22),
                           steps=np.geomspace(100, 1e5, 500), noise=0.005, curve_sd=0.01, seed=7)
    return load_curves(big.frame, max_points_per_curve=None, max_points=None)


def _timed_fit(model: str, load, settings: dict[str, Any]) -> dict[str, Any]:
    """One end-to-end curve fit (``load()`` then ``fit_dynamics``, no retry): wall and CPU
    seconds, the gate, leapfrog steps per draw, the start and precision used, and the
    process's peak resident memory so far."""
    import resource

    load0, t0, c0 = os.getloadavg()[0], time.time(), time.process_time()
    curves = load()
    fit = fit_dynamics(model, curves, random_seed=SEED, retries=0, **settings)
    d = fit.diagnostics
    row = {"model": model, "points_fitted": curves.n_points,
           "settings": settings or "default (4 chains x 1000 + 1000)",
           "total_s": time.time() - t0, "cpu_s": time.process_time() - c0,
           "sampling_s": float(fit.meta["seconds"]), "loadavg_start": load0,
           "loadavg_end": os.getloadavg()[0], "passed": bool(d.passed),
           "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
           "min_ess_tail": d.min_ess_tail, "divergences": d.divergences,
           "steps_per_draw": float(np.asarray(fit.idata.sample_stats["n_steps"]).mean()),
           "init_mass": fit.meta.get("init_mass"), "precision": fit.meta.get("precision"),
           "target_accept": fit.meta.get("target_accept"),
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(row, flush=True)
    return row


def section_speed_solve() -> dict[str, Any]:
    """The solve law ``dynamics`` (B_crit(L)) on :func:`multi_batch_table`, default fit (the
    table's generation and loading not timed)."""
    curves = multi_batch_table()
    return {"runs": [_timed_fit("dynamics", lambda: curves, {})],
            "table": "multi-batch (4 batch sizes, 10 sizes, 500 steps)"}


def section_speed_now() -> dict[str, Any]:
    """Section 5 again after the curve graph's changes (2026-12-07: the solve's stop-gradient
    kept through JAX, float32 checkpoints, Laplace-whitened NUTS above 10,000 checkpoints,
    target acceptance 0.95 without B_crit): wall and CPU seconds (loading included), leapfrog
    steps per draw, peak resident memory (the process's, so far), in one process, models in
    turn."""
    df = speed_table()

    def load():
        return load_curves(df, schedule={"shape": "cosine", "warmup_steps": 50.0,
                                         "final_fraction": 0.1},
                           max_points_per_curve=None, max_points=None)

    return {"rows_read": len(df), "cores": os.cpu_count(),
            "runs": [_timed_fit(model, load, settings) for model, settings in SPEED_RUNS]}


SECTIONS = {"1": section_form, "2": section_misfitting, "2b": section_rolling,
            "3": section_gemstones,
            "4": section_recovery, "5": section_speed, "5g": section_gradient,
            "5d": section_speed_now, "5e": section_speed_solve}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--model", default=MODEL, help="Model of sections 2, 2b and 3.")
    ap.add_argument("--min-steps", type=float, default=MIN_STEPS,
                    help="Warm-up rule of sections 2 and 2b: drop checkpoints before this step.")
    ap.add_argument("--tag", default="", help="Suffix of the results file of each section.")
    ap.add_argument("--tops", default="1,2,3", help="Sizes held out in turn by section 2b.")
    ap.add_argument("--points-per-curve", type=int, default=ROLLING_POINTS_PER_CURVE,
                    help="Thinning of section 2b's training curves (the library default is 30).")
    ap.add_argument("--speed-models", default=",".join(SPEED_MODELS),
                    help="Models timed by section 5.")
    ap.add_argument("--write-gemstones", default=None, metavar="CSV",
                    help="Only write the Gemstones schedule table (README example) and exit.")
    ap.add_argument("--fit-flags", default="",
                    help="Extra options of section 3's fit, e.g. '--likelihood studentt'.")
    args = ap.parse_args()
    globals()["FIT_FLAGS"] = args.fit_flags.split()
    if args.write_gemstones:
        gemstones_wsd().to_csv(args.write_gemstones, index=False)
        return
    globals()["MODEL"], globals()["MIN_STEPS"] = args.model, args.min_steps
    globals()["TOPS"] = tuple(int(k) for k in args.tops.split(","))
    globals()["ROLLING_POINTS_PER_CURVE"] = args.points_per_curve
    globals()["SPEED_MODELS"] = tuple(args.speed_models.split(","))
    for key in args.only.split(","):
        t0 = time.time()
        res = SECTIONS[key]()
        res["wall_s"] = time.time() - t0
        res["model"], res["min_steps_rule"] = args.model, args.min_steps
        res["fit_flags"] = args.fit_flags
        text = json.dumps(res, indent=1, default=float)
        (OUT / f"schedule_{key}{args.tag}.json").write_text(text)
    from bench_schedule_report import write_report
    write_report(OUT)


if __name__ == "__main__":
    main()
