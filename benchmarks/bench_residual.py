"""Correlated residuals along curves: iid checkpoint noise vs an OU process in log steps.

Writes ``benchmarks/results/residual.md``. Every backtest is the user's command,
``bayes-scaling backtest CURVES --model M --holdout-top K --residual R
--max-points-per-curve T --json`` (run in-process), one fit per (set, residual, thinning, K),
each cached in ``benchmarks/results/residual_cache/`` so a killed run resumes.

Sets (one batch size each, so the one-batch law where it wins, as measured in
``benchmarks/results/schedule.md``):

- **(Mis)Fitting**: every run with >= 5 checkpoints at each size's best learning rate (48
  curves, 6 schedule lengths; cosine to 0.1x after 50 warm-up steps; non-embedding N),
  ``dynamics_schedule_fixed_b``; top 1, 2, 3 sizes held out; training curves thinned to 30
  checkpoints (the library default) or kept whole (``0``: up to 113 per curve).
- **Gemstones** (WSD): constant-rate checkpoints and the cooled-down losses of a model as one
  curve (``bench_schedule.gemstones_wsd``), ``dynamics_schedule`` (B_crit(L)); the 3 largest
  models (1.9-2.0B, ``--holdout-top 2``: sizes within 2% are one level) held out; every
  checkpoint kept (``--warmup-fraction 0``: the first is at 10% of the run).
- **Curve offsets** (``--jobs set:residual:thinning:top:none``): the same backtest with
  ``--curve-offsets none`` (no whole-curve offsets).
- **Candidates** (``--only candidates``, ``residual_candidates.py``): a MAP screen of fixes
  for the early-step shortfall on every curve set (early-step term, offsets shrunk / shared
  per size / none, a larger warm-up fraction).
- **Noise models** (``--only noise``, ``noise_candidates.py``): a MAP + Laplace screen of
  checkpoint-noise models (variance by step or by fraction of the run, Student-t) on every
  curve set, and (``--jobs set:residual:thin:top:offsets:studentt``) the CLI backtests with
  ``--likelihood studentt``; ``gemhalf`` is Gemstones at half the learning rate.
- **MAP** (``--only map``): the residual model alone, at its maximum a posteriori point.
- **Speed** (``--only speed``): the chosen model on the 20,000-checkpoint synthetic table of
  ``bench_schedule.speed_table`` at the chosen thinning, CPU and wall seconds with the load.

Run: ``nice -n 19 python benchmarks/bench_residual.py [--only mis,gem,speed]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_schedule import gemstones_wsd, misfitting_45, speed_table  # noqa: E402

OUT = HERE / "results"
CACHE = OUT / "residual_cache"
SEED = 20261207
NUTS = ["--chains", "2", "--draws", "500", "--tune", "500"]
MIS = {"model": "dynamics_schedule_fixed_b", "tops": (1, 2, 3), "thinning": (30, 0),
       "options": ["--param-count", "nonembedding", "--schedule", "cosine", "--warmup-steps",
                   "50", "--final-lr-fraction", "0.1"]}
GEM = {"model": "dynamics_schedule", "tops": (2,), "thinning": (30,),
       "options": ["--warmup-fraction", "0"]}
RESIDUALS = ("ou", "iid")
OFFSETS = ("curve", "none")
LIKELIHOODS = ("normal", "studentt")
warnings.simplefilter("ignore")


def _csv(name: str, frame) -> str:
    path = Path(tempfile.gettempdir()) / f"bench_residual_{name}.csv"
    if not path.exists():
        frame.to_csv(path, index=False)
    return str(path)


def _key(set_name: str, residual: str, thin: int, top: int, offsets: str = "curve",
         likelihood: str = "normal") -> str:
    return (f"{set_name}_{residual}_t{thin}_top{top}"
            + ("" if offsets == "curve" else f"_off{offsets}")
            + ("" if likelihood == "normal" else f"_{likelihood}"))


def backtest(set_name: str, cfg: dict[str, Any], csv: str, residual: str, thin: int,
             top: int, offsets: str = "curve", likelihood: str = "normal") -> dict[str, Any]:
    """One cached ``bayes-scaling backtest`` (JSON output parsed), with its CPU and wall time."""
    from bayes_scaling.cli.app import main as cli

    key = CACHE / f"{_key(set_name, residual, thin, top, offsets, likelihood)}.json"
    if key.exists():
        return json.loads(key.read_text())
    cmd = ["backtest", csv, "--model", cfg["model"], "--holdout-top", str(top),
           "--residual", residual, "--max-points-per-curve", str(thin), *cfg["options"],
           *(["--curve-offsets", offsets] if offsets != "curve" else []),
           *(["--likelihood", likelihood] if likelihood != "normal" else []),
           *NUTS, "--seed", str(SEED), "--json", "-q"]
    buf = io.StringIO()
    load0, t0, c0 = os.getloadavg()[0], time.time(), time.process_time()
    with contextlib.redirect_stdout(buf):
        rc = cli(cmd)
    out = {"command": "bayes-scaling " + " ".join(
        Path(a).name if a == csv else a for a in cmd), "rc": rc,
        "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0, "load_start": load0,
        "load_end": os.getloadavg()[0]}
    if rc == 0:
        out["result"] = json.loads(buf.getvalue())["curve_backtests"][0]
    else:
        out["output"] = buf.getvalue()[-2000:]
    CACHE.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps(out, indent=1, default=float))
    print(set_name, residual, thin, top, offsets, likelihood, _row(out), flush=True)
    return out


def _row(rec: dict[str, Any]) -> str:
    if rec.get("rc") != 0:
        return f"rc {rec.get('rc')}"
    r = rec["result"]
    return (f"{r['median_abs_pct_error']:.2f} / {r['coverage_90']:.0%} / "
            f"{r['coverage_50']:.0%}")


SETS = {"mis": (MIS, lambda: _csv("misfitting45", misfitting_45())),
        "gem": (GEM, lambda: _csv("gemstones_wsd", gemstones_wsd())),
        "gemhalf": (GEM, lambda: _csv("gemstones_wsd_half", gemstones_wsd("half")))}


def run_sets(which: list[str]) -> None:
    for name in which:
        cfg, make = SETS[name]
        csv = make()
        for thin in cfg["thinning"]:
            for top in cfg["tops"]:
                for residual in RESIDUALS:
                    backtest(name, cfg, csv, residual, thin, top)


def run_jobs(jobs: str) -> None:
    """Backtests in a given order, ``set:residual:thinning:top[:offsets[:likelihood]]``
    comma-separated (offsets ``curve``, the default, or ``none``; likelihood ``normal``, the
    default, or ``studentt``; the machine is shared: the most telling rows first)."""
    for job in jobs.split(","):
        name, residual, thin, top, *rest = job.split(":")
        cfg, make = SETS[name]
        backtest(name, cfg, make(), residual, int(thin), int(top), *rest)


def run_speed(residual: str, thin: int) -> None:
    """The chosen model on 20,000 synthetic checkpoints: ``bayes-scaling fit`` end to end."""
    from bayes_scaling.cli.app import main as cli

    key = CACHE / f"speed_{residual}_t{thin}.json"
    if key.exists():
        return
    csv = _csv("speed20k", speed_table())
    nc = Path(tempfile.mkdtemp()) / "speed.nc"
    cmd = ["fit", csv, "--model", "dynamics_schedule_fixed_b", "--residual", residual,
           "--max-points-per-curve", str(thin), "--schedule", "cosine", "--warmup-steps", "50",
           "--final-lr-fraction", "0.1", *NUTS, "--seed", str(SEED), "--out", str(nc), "-q"]
    buf = io.StringIO()
    load0, t0, c0 = os.getloadavg()[0], time.time(), time.process_time()
    with contextlib.redirect_stdout(buf):
        rc = cli(cmd)
    out = {"command": "bayes-scaling " + " ".join(Path(a).name if a in (csv, str(nc)) else a
                                                   for a in cmd),
           "rc": rc, "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
           "load_start": load0, "load_end": os.getloadavg()[0], "cores": os.cpu_count(),
           "output": buf.getvalue()[-3000:]}
    CACHE.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps(out, indent=1, default=float))
    print("speed", residual, thin, out["wall_s"], out["cpu_s"], flush=True)


# ------------------------------------------------------------------------------ MAP fits
def map_scores(thin: int, top: int) -> dict[str, Any]:
    """(Mis)Fitting, top ``top`` sizes held out, training curves thinned to ``thin`` (0: all):
    held-out median abs % error of the law at the maximum a posteriori point (Nelder-Mead, no
    priors but a N(0, 1) on log length) of: least squares without offsets (the start fit),
    iid + offsets, OU + offsets (length free), and OU at fixed lengths 0.5 and 2. Cheap (no
    NUTS): how the residual model alone moves the law."""
    import numpy as np
    from bench_schedule import misfitting_tables
    from scipy.optimize import minimize

    from bayes_scaling.fitting.dynamics import curve_point_fit
    from bayes_scaling.laws.curve import uncentre
    from bayes_scaling.laws.registry import CURVE_LAWS
    from bayes_scaling.model.build_curves import ou_layout, ou_marginal_logp
    from bayes_scaling.model.centre import curve_centre
    from bayes_scaling.model.spec import load_spec

    spec = load_spec(MIS["model"])
    law = CURVE_LAWS[spec.law]
    pos = [not p.startswith("log_") for p in law.params]
    kw = {} if thin == 30 else {"max_points_per_curve": None if thin == 0 else thin}
    train, test = misfitting_tables(top, **kw)
    centre, lay = curve_centre(train), ou_layout(train)
    inputs, test_inputs = train.law_inputs(law.inputs), test.law_inputs(law.inputs)
    th0 = curve_point_fit(spec, train, random_seed=1, starts=4)
    x0 = np.array([np.log(th0[p]) if q else th0[p] for p, q in zip(law.params, pos, strict=True)])

    def theta(x):
        return uncentre({p: float(np.exp(v) if q else v)
                         for p, v, q in zip(law.params, x, pos, strict=True)}, centre)

    def nll(z, length):
        r = train.log_loss - law.log_mean(*inputs, **theta(z[:5]))
        if not np.all(np.isfinite(r)):
            return 1e10
        ell = np.exp(z[7]) if length is None else length
        return (-ou_marginal_logp(r, lay, np.exp(z[5]), ell, np.exp(z[6]))
                + (0.5 * z[7] ** 2 if length is None else 0.0))

    def err(x):
        return float(np.median(100 * np.abs(np.exp(law.log_mean(*test_inputs, **theta(x)))
                                            / test.loss - 1)))

    out = {"points": train.n_points, "least squares": err(x0)}
    opts = {"maxiter": 20000, "maxfev": 20000, "xatol": 1e-7, "fatol": 1e-7}
    for label, length in (("iid", 1e-6), ("ou", None), ("ou, length 0.5", 0.5),
                          ("ou, length 2", 2.0)):
        z = np.r_[x0, np.log(0.01), np.log(0.02), *([0.0] if length is None else [])]
        for _ in range(2):
            z = minimize(nll, z, args=(length,), method="Nelder-Mead", options=opts).x
        out[label] = err(z[:5])
        if length is None:
            out["ou length"] = float(np.exp(z[7]))
    return out


def run_map() -> None:
    for thin, top in ((10, 1), (30, 1), (0, 1), (0, 3)):
        key = CACHE / f"map_t{thin}_top{top}.json"
        if not key.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            key.write_text(json.dumps(map_scores(thin, top), indent=1))
            print("map", thin, top, key.read_text(), flush=True)


# ------------------------------------------------------------------------------ report
def _load(name: str) -> dict[str, Any] | None:
    path = CACHE / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _gate(r: dict[str, Any]) -> str:
    return (f"{'passed' if r['gate_passed'] else 'FAILED'} (r-hat {r['max_rhat']:.3f}, "
            f"{r['divergences']} div)")


def write_report() -> None:
    lines = ["# Correlated residuals along curves: iid vs OU in log steps", "",
             "`benchmarks/bench_residual.py`, x86_64, 2 shared cores, `nice -n 19`; every row is "
             "`bayes-scaling backtest CURVES --model M --holdout-top K --residual R "
             "--max-points-per-curve T --chains 2 --draws 500 --tune 500 --json` (seed "
             f"{SEED}; no retry beyond the library's one after a failed gate). Held-out curves "
             "are scored on every checkpoint: median abs % error of the predictive median "
             "(pooled over checkpoints), pooled 90% and 50% coverage; targets: error <= 1.5% "
             "((Mis)Fitting) / 1.0% (Gemstones), 90% coverage 0.85-0.95, 50% 0.40-0.60.", "",
             "`iid`: checkpoint noise independent given the law and a whole-curve offset. `ou`: "
             "the residual along each curve is an Ornstein-Uhlenbeck process in log steps "
             "(AR(1) with phi = exp(-gap in log steps / length) between neighbouring "
             "checkpoints), stationary sd `sigma`, length `residual_length` "
             "(LogNormal(0, 1) prior), curve offset integrated out exactly. Curve offsets "
             "`curve`: one whole-curve offset per curve (sd `sigma_curve`, HalfNormal(0.03), "
             "integrated out; the default); `none`: `--curve-offsets none`, no offsets (the "
             "curve-to-curve spread goes into `sigma`). Likelihood `normal` (the spec's) or "
             "`studentt` (`--likelihood studentt`: Student-t checkpoint residuals, `nu` "
             "~ Gamma(2, 0.1) fitted).", ""]
    for name, title, cfg in (("mis", "(Mis)Fitting best-LR curves, `dynamics_schedule_fixed_b`",
                              MIS),
                             ("gem", "Gemstones WSD, `dynamics_schedule` (B_crit(L)), "
                              "3 largest models held out", GEM),
                             ("gemhalf", "Gemstones WSD at half the learning rate, "
                              "`dynamics_schedule`, 3 largest models held out", GEM)):
        lines += [f"## {title}", "",
                  "| residual | curve offsets | likelihood | points per training curve | "
                  "held out | train points | held-out curves (points) | median abs % error | "
                  "90% cov | 50% cov | OU length / nu (median) | gate | CPU s (load) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for thin, top, residual, offsets, lik in itertools.product(
                cfg["thinning"], cfg["tops"], RESIDUALS, OFFSETS, LIKELIHOODS):
            rec = _load(_key(name, residual, thin, top, offsets, lik))
            if rec is None or rec.get("rc") != 0:
                continue
            r = rec["result"]
            length = r.get("residual_length_median", r.get("nu_median"))
            lines.append(
                f"| {residual} | {offsets} | {lik} | {thin or 'all'} | top {top} | "
                f"{r['train_points']} | {r['test_curves']} ({r['test_points']}) | "
                f"{r['median_abs_pct_error']:.2f} | {r['coverage_90']:.0%} | "
                f"{r['coverage_50']:.0%} | {'' if length is None else f'{length:.2f}'} | "
                f"{_gate(r)} | {rec['cpu_s']:.0f} ({rec['load_start']:.0f}) |")
        lines.append("")
    maps = {p.stem: json.loads(p.read_text()) for p in sorted(CACHE.glob("map_*.json"))}
    if maps:
        cols = ["least squares", "iid", "ou", "ou, length 0.5", "ou, length 2"]
        lines += ["## (Mis)Fitting, MAP fits: the residual model alone", "",
                  "`map_scores`: held-out median abs % error of the law at each noise model's "
                  "maximum a posteriori point (no NUTS). Offsets integrated out in all but "
                  "least squares.", "",
                  "| thinning, held out | train points | " + " | ".join(cols)
                  + " | OU length (MAP) |", "|---|---|" + "---|" * (len(cols) + 1)]
        for stem, m in maps.items():
            thin, top = stem.removeprefix("map_t").split("_top")
            lines.append(f"| {'all' if thin == '0' else thin} per curve, top {top} | "
                         f"{m['points']} | " + " | ".join(f"{m[c]:.2f}" for c in cols)
                         + f" | {m['ou length']:.1f} |")
        lines.append("")
    lines += candidate_lines()
    lines += noise_lines()
    speed = [json.loads(p.read_text()) for p in sorted(CACHE.glob("speed_*.json"))]
    if speed:
        lines += ["## Speed: 20,000 checkpoints", "",
                  "`bench_schedule.speed_table()` (40 cosine curves x 500 checkpoints, one batch "
                  "size), `bayes-scaling fit` end to end (load, start fit, NUTS 2 x (500 + 500), "
                  "save).", "",
                  "| command | wall s | CPU s | load avg (start -> end) | rc |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{s['command']}` | {s['wall_s']:.0f} | {s['cpu_s']:.0f} | "
                  f"{s['load_start']:.1f} -> {s['load_end']:.1f} | {s['rc']} |" for s in speed]
        lines.append("")
    (OUT / "residual.md").write_text("\n".join(lines))


def candidate_lines() -> list[str]:
    """The MAP screen of fixes (``residual_candidates``): held-out median abs % error."""
    from residual_candidates import CANDIDATES, SETS, _file

    cols = [("default", c) for c in CANDIDATES] + [
        (w, c) for w in (0.2, 0.3) for c in ("curve offsets", "no offsets")]
    rows = []
    for name in SETS:
        cells = []
        for w, c in cols:
            path = CACHE / _file(name, None if w == "default" else w, c)
            cells.append(f"{json.loads(path.read_text())['err']:.2f}" if path.exists() else "")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    head = [c if w == "default" else f"{c}, warm-up {w}" for w, c in cols]
    return ["## Fixes for the early-step shortfall, MAP screen", "",
            "`residual_candidates.py` (`--only candidates`): held-out median abs % error of "
            "the law at each candidate's MAP (no NUTS). mis1-3: (Mis)Fitting, top 1-3 sizes "
            "held out; gem / gemhalf: Gemstones WSD / half learning rate, 3 largest models "
            "held out. Empty: not run.", "",
            "| set | " + " | ".join(head) + " |", "|---|" + "---|" * len(cols), *rows, "",
            "Reading: no offsets (or offsets with sd fixed at 0.003) is best on 4 of 5 rows and "
            "its worst row is 0.72% (curve offsets: 4.99%); the early-step term, looser offset "
            "priors, offsets per size (confounded with the size term) and a larger warm-up "
            "fraction do not fix (Mis)Fitting. Gemstones WSD prefers offsets (0.44 vs 0.58%), "
            "so `--curve-offsets none` is opt-in, not the default.", ""]


def noise_lines() -> list[str]:
    """The MAP + Laplace screen of noise models (``noise_candidates``) and the pick."""
    from noise_candidates import NOISE, OFFSETS, criterion, noise_file
    from residual_candidates import SETS

    rows, table = [], {}
    for noise in NOISE:
        for off in OFFSETS:
            got = {s: json.loads((CACHE / noise_file(s, noise, off)).read_text())
                   for s in SETS if (CACHE / noise_file(s, noise, off)).exists()}
            if not got:
                continue
            table[(noise, off)] = got
    base = {off: table.get(("constant", off), {}) for off in OFFSETS}
    scored = []
    for (noise, off), got in table.items():
        full = len(got) == len(SETS)
        guard = all(got[s]["err"] <= base[off][s]["err"] + 0.1 for s in got if s in base[off])
        crit = criterion(got) if full else float("nan")
        if full and guard:
            scored.append((crit, noise, off))
        cells = " | ".join(f"{got[s]['err']:.2f} / {got[s]['c90']:.0%} / {got[s]['c50']:.0%}"
                           if s in got else "" for s in SETS)
        rows.append(f"| {noise} | {off} | {cells} | "
                    + (f"{crit:.3f}" if full else "(not all sets)")
                    + f" | {'yes' if guard else 'no'} |")
    pick = min(scored) if scored else None
    free = min(((criterion(g), n, o) for (n, o), g in table.items() if len(g) == len(SETS)),
               default=None)
    return ["## Checkpoint noise models, MAP + Laplace screen", "",
            "`noise_candidates.py` (`--only noise`): each noise model at its MAP on the "
            "training curves, scored on every held-out checkpoint: median abs % error of the "
            "law at the MAP / coverage of the 90% / 50% predictive bands of a Laplace "
            "approximation (law uncertainty, then a new curve's noise; 1000 draws). Sets as in "
            "the fixes screen above. The criterion, fixed before scoring: mean over the 5 sets "
            "of |c90 - 0.90| + |c50 - 0.50|, lowest wins; a model is out if its error on any "
            "set is more than 0.1 points above the constant-noise model's with the same "
            "offsets (guard). Curve offsets with non-constant noise were screened on mis1 and "
            "mis3 only (2.4-12% error there: out by the guard).", "",
            "| noise | curve offsets | " + " | ".join(SETS) + " | criterion | guard |",
            "|---|---|" + "---|" * (len(SETS) + 2), *rows, "",
            (f"Pick by the stated rule (criterion and guard): {pick[1]}, offsets {pick[2]} "
             f"({pick[0]:.3f})." if pick else "No model passes the stated rule."),
            (f"Lowest criterion without the guard: **{free[1]}, offsets {free[2]}** "
             f"({free[0]:.3f})." if free else ""), "",
            "Reading: the variances that fall with the step make the law follow the late "
            "checkpoints and shrink the bands to a 0.2-0.3% floor, so the held-out law error "
            "(0.5-0.7%) falls outside them; the fraction-of-run ones stay too wide. Student-t "
            "puts the early-step scatter in the tails: best criterion by far, but it misses "
            "the guard on mis1, mis2 and gemhalf, so it was confirmed under NUTS (the "
            "`studentt` rows of the tables above) rather than picked by the stated rule.", ""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="mis,gem")
    ap.add_argument("--speed-residual", default="ou")
    ap.add_argument("--speed-thinning", type=int, default=30)
    ap.add_argument("--jobs", default=None,
                    help="Instead of --only's sets: set:residual:thinning:top,... in order.")
    args = ap.parse_args()
    if args.jobs:
        run_jobs(args.jobs)
        write_report()
        return
    which = args.only.split(",")
    run_sets([w for w in which if w in ("mis", "gem")])
    if "map" in which:
        run_map()
    if "candidates" in which:
        from residual_candidates import screen

        screen(CACHE)
        screen(CACHE, candidates=("curve offsets", "no offsets"), warmups=(0.2, 0.3))
    if "noise" in which:
        from noise_candidates import screen_noise

        screen_noise(CACHE)
    if "speed" in which:
        run_speed(args.speed_residual, args.speed_thinning)
    write_report()


if __name__ == "__main__":
    main()
