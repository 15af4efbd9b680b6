"""Rival law families stacked by how they extrapolate: does the average beat Chinchilla alone?

For each public ladder (leave-one-ladder-out: nothing here is tuned, the stacking weights of a
ladder come from that ladder's own training runs only):

1. hold out the ladder's top ``--outer`` compute budgets (0.25-decade FLOP bins,
   :func:`bayes_scaling.evaluate.heldout.split_by_budget`);
2. on the rest, refit each family without its own top budget(s) (``--inner``) and stack them
   on those held-out-by-compute predictions
   (:func:`~bayes_scaling.evaluate.stacking.stacking_weights`);
3. fit each family on the rest and predict the held-out runs; score each family and the
   weighted mixture (median abs % error of the median, 50/90% coverage, 90% interval score,
   mean log predictive density).

``--part speed``: ``fit_stacked`` on Chinchilla's 240 runs, timed; ``--part agree``: Huber vs
NUTS stacking weights; ``--part synthetic``: ladders drawn from each family. Writes
``benchmarks/results/families.md`` (and ``families.json``, ``families_extra.json``), rewritten
after each ladder so a cut-short run still reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.registry import load_dataset
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.evaluate.heldout import (
    HeldOut,
    budget_index,
    heldout_predictions,
    split_by_budget,
)
from bayes_scaling.evaluate.stacking import (  # MIN_OWN_ROWS: a short ladder, fixed a priori
    MIN_OWN_ROWS,
    STACK_MODELS,
    combine,
    fit_stacked,
    heldout_scores,
    shrink_k,
    shrink_weights,
    stack_weights,
    stacking_weights,
)
from bayes_scaling.testing import synthetic_runs

RESULTS = Path(__file__).resolve().parent / "results"
EXTRA = RESULTS / "families_extra.json"
FAMILIES = ("chinchilla", "farseer", "broken", "kaplan_e")
#: Small NUTS settings for the many refits (no gate retry, no discrepancy calibration).
SMALL_FIT = {"chains": 2, "draws": 250, "tune": 250, "retries": 0, "calibrate": False}
#: Truth of each generating family for the synthetic ladders (kaplan_e: as bench_compare.py).
TRUTH: dict[str, dict[str, float]] = {
    "farseer": {**PUBLISHED["hoffmann2022"], "gamma": 0.06},
    "chinchilla": PUBLISHED["hoffmann2022"],
    "broken": {**PUBLISHED["hoffmann2022"], "n_b": 1.7e8, "alpha_2": 0.6},
    "kaplan_e": {"e": 1.61, "n_c": float(np.exp(19.645)), "d_c": float(np.exp(22.595)),
                 "alpha_n": 0.257, "alpha_d": 0.289},
}
LAW_OF = {"farseer": "farseer", "chinchilla": "chinchilla", "broken": "chinchilla_broken",
          "kaplan_e": "kaplan_e"}


def md(df: pd.DataFrame) -> str:
    """A pipe table (numbers to 4 significant digits)."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [" | ".join(map(str, df.columns)), " | ".join("---" for _ in df.columns)]
    rows += [" | ".join(cell(v) for v in r) for r in df.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


def best_runs(frame: pd.DataFrame) -> RunTable:
    """The lowest-loss run per (N, D) of a sweep."""
    return load_runs(frame[["n_params", "n_tokens", "loss"]].reset_index(drop=True)
                     ).best_of_sweeps()


DATA = Path(os.environ.get("BAYES_SCALING_DATA", "../shared/data"))
#: Refits of the benchmark: Huber point fit + bootstrap with the learned discrepancy (the
#: calibrated predictive band of issue 15), one per family, ladder and origin.
OUTER_FIT = {"n_boot": 50, "calibrate": "shared"}
INNER_FIT = {"n_boot": 30, "calibrate": False}


def porian_ladders() -> dict[str, RunTable]:
    """Porian et al.'s isoFLOP ladders: one per corpus x setting (10)."""
    raw = pd.read_csv(DATA / "porian2024_isoflop" / "porian2024_isoflop.csv")
    out = {}
    for (corpus, setting), f in raw.groupby(["group", "setting"], sort=True):
        short = setting.replace("_hparams", "").replace("_warmup", "").replace("_decay", "") \
            .replace("_count", "").replace("_loss", "")
        out[f"porian {corpus} {short}"] = load_runs(
            f[["n_params", "n_tokens", "loss"]].reset_index(drop=True)).best_of_sweeps()
    return out


def gemstones_finals() -> RunTable:
    """Gemstones: the loss at the end of each cooldown branch (base learning rate)."""
    raw = pd.read_csv(DATA / "gemstones" / "gemstones_curves.csv")
    f = raw[(raw["schedule"] == "cooldown_end") & (raw["lr_variant"] == "base")]
    return load_runs(f[["n_params", "n_tokens", "loss"]].reset_index(drop=True)).best_of_sweeps()


def ladders(names: list[str] | None = None) -> dict[str, RunTable]:
    """Every public final-loss ladder in ``BAYES_SCALING_DATA``, prepared for an L(N, D) fit."""
    out = {"chinchilla": load_dataset("chinchilla"), **porian_ladders(),
           "misfitting_openlm (best lr)": best_runs(load_dataset("misfitting_openlm").frame),
           "steplaw_dense (best lr, bs)": best_runs(load_dataset("steplaw_dense").frame),
           "gemstones (cooldown ends)": gemstones_finals()}
    return out if not names else {k: out[k] for k in names}


def one_ladder(runs: RunTable, outer: int, inner: tuple[int, ...], seed: int,
               method: str = "huber-bootstrap") -> dict[str, Any]:
    """Inner held-out densities of the training part, and the families' outer predictions."""
    train, test = split_by_budget(runs, outer)
    inner_fit = INNER_FIT if method != "nuts" else SMALL_FIT
    outer_fit = OUTER_FIT if method != "nuts" else SMALL_FIT
    t0 = time.perf_counter()
    inner_lpd, why_short = None, ""
    try:
        tops = [k for k in inner if budget_index(train.flops).max() + 1 - k >= 3]
        if not tops:
            raise BayesScalingError("too few budgets for an inner origin")
        inner_pred = heldout_predictions(train, FAMILIES, tops=tuple(tops), fit_kwargs=inner_fit,
                                         random_seed=seed, method=method, on_progress=print)
        inner_lpd = {m: h.table["log_pred_density"].tolist() for m, h in inner_pred.items()}
    except BayesScalingError as exc:
        why_short = str(exc)
    t_stack = time.perf_counter() - t0
    outer_pred = heldout_predictions(runs, FAMILIES, tops=(outer,), fit_kwargs=outer_fit,
                                     random_seed=seed + 1, method=method, on_progress=print)
    return {"n_runs": runs.n_runs, "n_train": train.n_runs, "n_test": test.n_runs,
            "train_max_flops": float(train.flops.max()), "test_flops": [
                float(test.flops.min()), float(test.flops.max())],
            "inner_lpd": inner_lpd, "why_short": why_short,
            "outer": {m: {"lpd": h.table["log_pred_density"].tolist(),
                          "samples": h.samples[::5].tolist(), "converged": h.converged}
                      for m, h in outer_pred.items()},
            "observed": test.loss.tolist(),
            "seconds_stacking": t_stack, "seconds_total": time.perf_counter() - t0}


def _heldout_from(r: dict[str, Any]) -> dict[str, HeldOut]:
    tab = pd.DataFrame({"observed": r["observed"]})
    return {m: HeldOut(m, tab.assign(log_pred_density=o["lpd"]), np.asarray(o["samples"]),
                       o["converged"]) for m, o in r["outer"].items()}


def weights_for(name: str, results: dict[str, Any]) -> dict[str, Any]:
    """Own, cross-ladder (leave-one-ladder-out) and chosen weights of one ladder: chosen =
    the product's rule (own shrunk toward cross by the shipped ``k``; cross when short)."""
    def stack(rows: list[np.ndarray]) -> dict[str, float]:
        lpd = np.concatenate(rows)
        return dict(zip(FAMILIES, map(float, stacking_weights(lpd)), strict=True))

    def rows(r):
        return np.column_stack([r["inner_lpd"][m] for m in FAMILIES])

    r = results[name]
    others = [rows(o) for k, o in results.items() if k != name and o["inner_lpd"]]
    own = stack([rows(r)]) if r["inner_lpd"] else None
    n_own = len(next(iter(r["inner_lpd"].values()))) if r["inner_lpd"] else 0
    cross = stack(others) if others else None
    short = own is None or n_own < MIN_OWN_ROWS
    return {"own": own, "cross": cross, "n_own_rows": n_own, "short": short,
            "chosen": (cross if short else shrink_weights(own, cross, n_own, shrink_k()))
            or own or dict.fromkeys(FAMILIES, 1.0)}


def ladder_scores(name: str, results: dict[str, Any], seed: int) -> dict[str, Any]:
    """Scores of each family and of the own / cross / chosen / equal-weight averages."""
    w = weights_for(name, results)
    held = _heldout_from(results[name])
    scores = heldout_scores(held, w["chosen"], random_seed=seed)
    extra = {}
    for label, ww in (("own", w["own"]), ("cross", w["cross"]),
                      ("equal", dict.fromkeys(FAMILIES, 1.0))):
        if ww:
            extra[label] = heldout_scores(held, ww, random_seed=seed).iloc[-1].to_dict()
    return {"weights": w, "scores": scores.to_dict(orient="records"), "variants": extra}


def synthetic_ladder(family: str, seed: int) -> RunTable:
    """40 runs drawn from ``family``: 8 sizes 1e7-3e9 x 5 tokens-per-parameter, 1% noise."""
    return synthetic_runs(LAW_OF[family], TRUTH[family], n_sizes=tuple(np.geomspace(1e7, 3e9, 8)),
                          tokens_per_param=(5, 10, 20, 40, 80), noise=0.01, seed=seed)


def _pooled_row(label: str, per: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ch = np.concatenate([p["chinchilla_err"] for p in per])
    av = np.concatenate([p[key] for p in per])
    return {"set": label, "n_test": ch.size, "chinchilla_median_err_%": float(np.median(ch)),
            "average_median_err_%": float(np.median(av)),
            "reduction_%": 100 * (1 - np.median(av) / np.median(ch))}


def write(results: dict[str, Any], args: argparse.Namespace,
          synth: dict[str, Any] | None = None) -> None:
    """families.md and families.json from the ladders measured so far."""
    RESULTS.mkdir(exist_ok=True)
    lines = ["# Law families stacked by held-out-by-compute predictions", "",
             f"Families: {', '.join(FAMILIES)}. Leave-one-ladder-out over every public "
             f"final-loss ladder in `{DATA.name}/`: per ladder the top {args.outer} compute "
             "budget(s) (0.25-decade FLOP bins) are held out; each family is fitted on the rest "
             f"(Huber point fit + {OUTER_FIT['n_boot']}-refit bootstrap, plus the ladder's "
             "extrapolation discrepancy of issue 15, learned from the Chinchilla law's inner "
             "backtests and shared by every family: the broken law's own costs ~20x more) and "
             "predicts them. Weights (stacking on held-out-by-compute log densities): **own** = "
             f"from refits of the ladder's training part without its own top {list(args.inner)} "
             f"budget(s) (Huber, {INNER_FIT['n_boot']} bootstrap refits); **cross** = the same "
             "rows of every *other* ladder stacked together (leave-one-ladder-out); **chosen** "
             "= the product's rule (`stacking.shrink_weights`): own shrunk toward cross by the "
             f"n inner held-out runs, (n own + k cross)/(n + k), with the shipped k = "
             f"{shrink_k():g} (chosen on these same 14 ladders: in-sample here; the "
             "out-of-sample figures of choosing k are in `families_shrink.md`), or cross where "
             f"the ladder is short (no inner origin or < {MIN_OWN_ROWS} inner held-out runs). "
             "The **average** is the product's: the weighted quantile average of the families' "
             "draws (`stacking.combine`; the linear pool before session 8, see "
             "`families_combine.md`). Nothing is tuned per ladder.", "",
             f"Machine: 2 cores shared with 5 other jobs; load {os.getloadavg()[0]:.1f} when "
             "written; `nice -n 15`. Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 15 "
             ".venv/bin/python benchmarks/bench_families.py --part real "
             "--workers 6` (about 60 min at load 17-41; the measured run); from the saved "
             "`families.json` without fitting: `... bench_families.py --part write`.", ""]
    per, table = [], []
    for name in results:
        sc = ladder_scores(name, results, args.seed)
        s = pd.DataFrame(sc["scores"]).set_index("model")
        held = _heldout_from(results[name])
        y = np.asarray(results[name]["observed"])
        err = {m: 100 * np.abs(np.median(h.samples, axis=0) - y) / y for m, h in held.items()}
        mix = combine(held, sc["weights"]["chosen"], np.random.default_rng(args.seed))
        per.append({"chinchilla_err": err["chinchilla"],
                    "avg_err": 100 * np.abs(np.median(mix, axis=0) - y) / y})
        ch, av = s.loc["chinchilla"], s.loc["average"]
        v = sc["variants"]
        table.append({
            "ladder": name, "n_test": results[name]["n_test"],
            "weights": "shrunk" if not sc["weights"]["short"] else "cross",
            "chinchilla_err": ch["median_abs_pct_error"], "avg_err": av["median_abs_pct_error"],
            "reduction_%": 100 * (1 - av["median_abs_pct_error"] / ch["median_abs_pct_error"]),
            "own_err": v.get("own", {}).get("median_abs_pct_error", float("nan")),
            "cross_err": v.get("cross", {}).get("median_abs_pct_error", float("nan")),
            "equal_err": v["equal"]["median_abs_pct_error"],
            "chinchilla_is90": ch["interval_score_90"], "avg_is90": av["interval_score_90"],
            "chinchilla_cov90": ch["coverage_90"], "avg_cov90": av["coverage_90"],
            "chinchilla_cov50": ch["coverage_50"], "avg_cov50": av["coverage_50"]})
        wtxt = ", ".join(f"{k} {x:.2f}" for k, x in sc["weights"]["chosen"].items())
        lines += [f"## {name}", "",
                  f"{results[name]['n_runs']} runs; fitted on {results[name]['n_train']} "
                  f"(C <= {results[name]['train_max_flops']:.3g} FLOP), "
                  f"{results[name]['n_test']} held out (C {results[name]['test_flops'][0]:.3g}"
                  f"-{results[name]['test_flops'][1]:.3g}). Chosen weights "
                  f"({_why(results[name], sc['weights']['short'])}): "
                  f"{wtxt}. {sc['weights']['n_own_rows']} inner held-out runs. Fits "
                  f"{results[name]['seconds_total']:.0f} s.", "", md(s.reset_index()), ""]
    if table:
        t = pd.DataFrame(table)
        head = lines.index("## " + next(iter(results)))
        lines = [*lines[:head], *summary_lines(t, per), *variant_lines(results, args.seed),
                 *lines[head:]]
        ship_weights(results)
    lines += extra_lines()
    lines += ["## Synthetic ladders", "", "See `families_synth.md` (`bench_families_synth.py`:"
              " seeded isoFLOP ladders per family, weighted by the product's rule).", ""]
    (RESULTS / "families.md").write_text("\n".join(lines))


def summary_lines(t: pd.DataFrame, per: list[dict[str, Any]]) -> list[str]:
    """The per-ladder table, the pooled row and the verdicts against the issue's targets."""
    pooled = pd.DataFrame([_pooled_row("pooled (all held-out runs)", per, "avg_err")])
    n = t["n_test"]
    won = int((t["avg_is90"] < t["chinchilla_is90"]).sum())
    return ["## Summary: the stacked average vs Chinchilla alone", "", md(t), "", md(pooled), "",
            f"Mean per-ladder reduction of the median abs error: {t['reduction_%'].mean():.1f}%;"
            f" median {t['reduction_%'].median():.1f}% (target: >= 25%). Interval score lower "
            f"on {won} of {len(t)} ladders; runs-weighted mean interval score "
            f"{np.average(t['avg_is90'], weights=n):.4g} (average) vs "
            f"{np.average(t['chinchilla_is90'], weights=n):.4g} (Chinchilla). Runs-weighted 90% "
            f"coverage: average {np.average(t['avg_cov90'], weights=n):.3f}, Chinchilla "
            f"{np.average(t['chinchilla_cov90'], weights=n):.3f} (target 0.85-0.95; lowest "
            f"ladder: average {t['avg_cov90'].min():.3f}, Chinchilla "
            f"{t['chinchilla_cov90'].min():.3f}; target >= 0.70); 50%: average "
            f"{np.average(t['avg_cov50'], weights=n):.3f}, Chinchilla "
            f"{np.average(t['chinchilla_cov50'], weights=n):.3f} (target 0.40-0.60). "
            f"{int(n.sum())} held-out runs in all.", ""]


def ship_weights(results: dict[str, Any]) -> None:
    """Write the cross-ladder weights (every ladder's inner rows stacked) for short ladders."""
    rows = [np.column_stack([r["inner_lpd"][m] for m in FAMILIES])
            for r in results.values() if r["inner_lpd"]]
    if not rows:
        return
    w = stacking_weights(np.concatenate(rows))
    path = Path(__file__).resolve().parents[1] / "data" / "family_weights.json"
    # shrink_k (bench_families_shrink.py, which reruns from families.json) is kept
    keep = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**keep,
        "weights": dict(zip(FAMILIES, map(float, w), strict=True)),
        "source": f"benchmarks/bench_families.py: stacking of the held-out-by-compute log "
                  f"densities of {sum(len(x) for x in rows)} runs over {len(rows)} public "
                  f"ladders (Huber refits without each ladder's top budgets)"}, indent=1) + "\n")


def variant_lines(results: dict[str, Any], seed: int) -> list[str]:
    """Pooled scores of the average under each weighting: chosen, cross-ladder only, equal."""
    chin = {"chinchilla": 1.0, **{k: 0.0 for k in FAMILIES if k != "chinchilla"}}
    rows = []
    for variant in ("chosen", "cross", "equal", "chinchilla alone"):
        errs, reds, isc, cov, ch_all = [], [], 0.0, 0.0, []
        for name, r in results.items():
            w = weights_for(name, results)
            ww = {"equal": dict.fromkeys(FAMILIES, 1.0), "chinchilla alone": chin}.get(
                variant) or w[variant] or w["chosen"]
            held, y = _heldout_from(r), np.asarray(r["observed"])
            mix = combine(held, ww, np.random.default_rng(seed))
            e = 100 * np.abs(np.median(mix, axis=0) - y) / y
            ch = 100 * np.abs(np.median(held["chinchilla"].samples, axis=0) - y) / y
            lo, hi = np.quantile(mix, [0.05, 0.95], axis=0)
            isc += float(np.sum(hi - lo + 20 * ((lo - y) * (y < lo) + (y - hi) * (y > hi))))
            cov += float(np.sum((y >= lo) & (y <= hi)))
            errs.append(e)
            ch_all.append(ch)
            reds.append(100 * (1 - np.median(e) / np.median(ch)))
        n = sum(len(e) for e in errs)
        pooled, pooled_ch = np.median(np.concatenate(errs)), np.median(np.concatenate(ch_all))
        rows.append({"weights": variant, "pooled median abs err %": pooled,
                     "pooled reduction %": 100 * (1 - pooled / pooled_ch),
                     "mean per-ladder reduction %": float(np.mean(reds)),
                     "median per-ladder reduction %": float(np.median(reds)),
                     "ladders improved": int(np.sum(np.asarray(reds) > 0)),
                     "interval score 90": isc / n, "coverage 90": cov / n})
    return ["## Pooled over every ladder, by weighting", "",
            "chosen = the product's rule (own shrunk toward cross by the shipped k; cross where "
            "short); cross = "
            "every ladder on the weights learned on the *other* ladders only (leave-one-ladder-"
            "out); equal = 1/4 each. Reductions are of the median abs % error against "
            "Chinchilla's law alone, on the same held-out runs.", "",
            md(pd.DataFrame(rows)), ""]


def extra_lines() -> list[str]:
    """The speed figure and the Huber-vs-NUTS agreement of the weights, when measured."""
    extra = json.loads(EXTRA.read_text()) if EXTRA.exists() else {}
    out = []
    if "speed" in extra:
        sp = extra["speed"]
        tm = sp.get("timings") or {}
        per = "; ".join(f"{k}: {v['wall_s']:.0f} s wall, {v['cpu_s']:.0f} s CPU (sampler "
                        f"{v['sampling_s']:.0f} s)" for k, v in (tm.get("fits") or {}).items())
        ref = tm.get("refits") or {}
        out += ["## Speed: four families + stacking on Chinchilla's 240 runs", "",
                f"`fit_stacked` (the CLI's `fit --model chinchilla,farseer,kaplan_e,broken "
                f"--workers {sp['workers']}`): four NUTS fits (4 chains x 1000 draws, the "
                "default, with the gate and its retry, and each family's discrepancy "
                f"calibration) and the stacking refits in one pool of {sp['workers']} "
                f"processes. **Wall {sp['wall_s']:.0f} s, CPU {sp['cpu_s']:.0f} s** (all "
                "processes; target < 120 s wall on 2 cores) at nice "
                f"{sp.get('nice', '?')}; load average {sp['load_start']:.1f} at the start, "
                f"{sp.get('load_mean', float('nan')):.1f} on average (every 5 s), "
                f"{sp.get('load_max', float('nan')):.1f} at most; JAX compile cache: "
                f"{sp.get('jax_cache_entries_at_start', '?')} entries at the start. Gate: "
                f"{sp['gate']}. Per family (its worker's wall and CPU seconds): {per}. "
                f"Stacking refits: {ref.get('n', 0)} ({ref.get('cpu_s', 0):.0f} s CPU"
                f"{'; none: ' + sp['meta'].get('why', '') if not ref.get('n') else ''}). "
                "Not retried: " + (", ".join(f"{k} ({v})" for k, v in
                                             (sp.get("not_retried") or {}).items() if v)
                                   or "none") + ". Weights: "
                + ", ".join(f"{k} {v:.3f}" for k, v in sp["weights"].items())
                + f" ({sp['meta'].get('weights_method')}).", "",
                "Regenerate: `... bench_families.py --part speed --workers 2`.", ""]
    if "agree" in extra:
        rows = []
        for name, r in extra["agree"].items():
            h, n = r["huber-bootstrap"], r["nuts"]
            rows.append({"ladder": name, **{f"huber {k}": v for k, v in h["weights"].items()},
                         **{f"nuts {k}": v for k, v in n["weights"].items()},
                         "max |diff|": max(abs(h["weights"][k] - n["weights"][k])
                                           for k in h["weights"]),
                         "huber s": h["seconds"], "nuts s": n["seconds"],
                         "nuts refits passed gate": all((n["converged"] or {}).values())})
        out += ["## Do Huber refits give the weights NUTS refits give?", "",
                "Stacking weights of the whole ladder (origins: top 1 and top 2 budgets held "
                "out), from Huber + bootstrap refits (the default) and from NUTS refits (2 "
                "chains x 1000 draws, gate retry, calibrated).", "", md(pd.DataFrame(rows)), "",
                "Regenerate: `... bench_families.py --part agree --ladders '<name>;...'`.", ""]
    return out


def _why(r: dict[str, Any], short: bool) -> str:
    return ("cross-ladder: " + (r["why_short"] or "few inner held-out runs") if short else
            f"own shrunk toward cross, k = {shrink_k():g}")


def _ladder_task(name: str, outer: int, inner: tuple[int, ...], seed: int) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    runs = ladders([name])[name] if not name.startswith("synthetic ") else \
        synthetic_ladder(name.split()[1], int(name.split()[2]))
    print(f"== {name}: {runs.n_runs} runs", flush=True)
    return one_ladder(runs, outer, inner, seed)


def speed(seed: int, workers: int) -> dict[str, Any]:
    """Four families (NUTS, the CLI's default 4 chains x 1000) + stacking on Chinchilla's 240:
    wall and CPU s, load every 5 s, the JAX cache at the start, where the time went."""
    runs = load_dataset("chinchilla")
    cache = Path(os.environ.get("BAYES_SCALING_JAX_CACHE",
                                Path.home() / ".cache" / "bayes_scaling" / "jax"))
    n_cached = len(list(cache.glob("*"))) if cache.is_dir() else 0
    loads, stop = [os.getloadavg()[0]], threading.Event()
    sampler = threading.Thread(target=lambda: [loads.append(os.getloadavg()[0]) for _ in
                                               iter(lambda: stop.wait(5.0), True)], daemon=True)
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.start()
    fam = fit_stacked(runs, STACK_MODELS, workers=workers, random_seed=seed, on_progress=print)
    wall = time.perf_counter() - t0
    stop.set()
    r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
           + c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    fam.save(Path(os.environ.get("TMPDIR", "/tmp")) / "bench_families_chinchilla.nc")
    return {"n_runs": runs.n_runs, "wall_s": wall, "cpu_s": cpu, "workers": workers,
            "nice": os.nice(0), "jax_cache_entries_at_start": n_cached,
            "load_start": loads[0], "load_mean": float(np.mean(loads)),
            "load_max": float(np.max(loads)), "load_end": os.getloadavg()[0],
            "weights": fam.weights, "timings": fam.meta.get("timings"),
            "meta": {k: v for k, v in fam.meta.items() if k not in ("scores", "timings")},
            "gate": {k: f.diagnostics.passed for k, f in fam.fits.items()},
            "not_retried": {k: f.meta.get("not_retried", "") for k, f in fam.fits.items()},
            "sampling_s": {k: f.diagnostics.sampling_seconds for k, f in fam.fits.items()}}


def agree(names: list[str], seed: int) -> dict[str, Any]:
    """Stacking weights from Huber refits vs NUTS refits (2 chains x 1000, gate retry)."""
    out = {}
    for name, runs in ladders(names).items():
        res = {}
        for method, kw in (("huber-bootstrap", None),
                           ("nuts", {"chains": 2, "draws": 1000, "tune": 1000,
                                     "calibrate": True})):
            t0 = time.perf_counter()
            w, meta = stack_weights(runs, FAMILIES, method=method, fit_kwargs=kw,
                                    random_seed=seed, on_progress=print)
            res[method] = {"weights": w, "seconds": time.perf_counter() - t0,
                           "converged": meta.get("refits_converged"),
                           "weights_method": meta["weights_method"]}
        out[name] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ladders", default="", help="';'-separated names (default: every one)")
    ap.add_argument("--outer", type=int, default=3)
    ap.add_argument("--inner", type=lambda s: tuple(int(v) for v in s.split(",")),
                    default=(1, 2))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--part", choices=["real", "synthetic", "write", "speed", "agree"],
                    default="real", help="measure one part (the others are kept); write: "
                    "only rewrite families.md")
    ap.add_argument("--synthetic", default="farseer,chinchilla,broken,kaplan_e")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    raw_path = RESULTS / "families.json"
    old = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    results: dict[str, Any] = old.get("real", {}) if "inner_lpd" in str(old)[:100000] else {}
    synth: dict[str, Any] = old.get("synthetic", {}) if results else {}
    todo: list[dict[str, Any]] = []
    if args.part == "real":
        todo = [{"name": n, "outer": args.outer, "inner": args.inner, "seed": args.seed}
                for n in (args.ladders.split(";") if args.ladders else ladders())]
    elif args.part == "synthetic":
        todo = [{"name": f"synthetic {f} {100 + i}", "outer": args.outer, "inner": args.inner,
                 "seed": args.seed} for i, f in enumerate(args.synthetic.split(","))]
    if args.part in ("speed", "agree"):
        got = (speed(args.seed, args.workers) if args.part == "speed" else
               agree(args.ladders.split(";") if args.ladders else
                     ["misfitting_openlm (best lr)"], args.seed))
        extra = json.loads(EXTRA.read_text()) if EXTRA.exists() else {}  # parts run at once
        EXTRA.write_text(json.dumps({**extra, args.part: got}, indent=1, default=float))
    with ProcessPoolExecutor(max_workers=max(1, args.workers),
                             mp_context=get_context("spawn")) as pool:
        futs = {pool.submit(_ladder_task, **t): t["name"] for t in todo}
        for fut in as_completed(futs):  # written after each ladder: a cut-short run reports
            name = futs[fut]
            (results if args.part == "real" else synth)[
                name if args.part == "real" else name.split()[1]] = fut.result()
            raw_path.write_text(json.dumps({"real": results, "synthetic": synth},
                                           default=float))
            write(results, args, synth)
    write(results, args, synth)
    print((RESULTS / "families.md").read_text())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
