"""Rival law families stacked by how they extrapolate: does the average beat Chinchilla alone?

For each public ladder (leave-one-ladder-out: nothing here is tuned, the stacking weights of a
ladder come from that ladder's own training runs only):

1. hold out the ladder's top ``--outer`` compute budgets (0.25-decade FLOP bins,
   :func:`bayes_scaling.evaluate.stacking.split_by_budget`);
2. on the rest, refit each family without its own top budget(s) (``--inner``) and stack them
   on those held-out-by-compute predictions
   (:func:`~bayes_scaling.evaluate.stacking.stacking_weights`);
3. fit each family on the rest and predict the held-out runs; score each family and the
   weighted mixture (median abs % error of the median, 50/90% coverage, 90% interval score,
   mean log predictive density).

The time of steps 2-3 on Chinchilla's 240-run ladder (four families fitted, plus the stacking
refits) is the speed figure. Writes ``benchmarks/results/families.md`` (and ``families.json``),
rewritten after each ladder so a cut-short run still reports what it measured.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 10 .venv/bin/python
benchmarks/bench_families.py`` (small NUTS settings: ``SMALL_FIT``).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.registry import load_dataset
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.evaluate.stacking import (
    heldout_predictions,
    heldout_scores,
    split_by_budget,
    weights_from_heldout,
)
from bayes_scaling.testing import synthetic_runs

RESULTS = Path(__file__).resolve().parent / "results"
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


def ladders(names: list[str]) -> dict[str, RunTable]:
    """The public ladders, prepared for an L(N, D) fit."""
    make = {"chinchilla": lambda: load_dataset("chinchilla"),
            "porian2024_isoflop": lambda: load_dataset("porian2024_isoflop"),
            "misfitting_openlm (best lr)": lambda: best_runs(
                load_dataset("misfitting_openlm").frame),
            "steplaw_dense (best lr, bs)": lambda: best_runs(
                load_dataset("steplaw_dense").frame)}
    return {k: make[k]() for k in names}


def one_ladder(runs: RunTable, outer: int, inner: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Weights from the training part, scores on the top ``outer`` budgets."""
    train, test = split_by_budget(runs, outer)
    t0 = time.perf_counter()
    inner_pred = heldout_predictions(train, FAMILIES, tops=inner, fit_kwargs=SMALL_FIT,
                                     random_seed=seed, on_progress=print)
    weights = weights_from_heldout(inner_pred)
    t_stack = time.perf_counter() - t0
    outer_pred = heldout_predictions(runs, FAMILIES, tops=(outer,), fit_kwargs=SMALL_FIT,
                                     random_seed=seed + 1, on_progress=print)
    t_all = time.perf_counter() - t0
    scores = heldout_scores(outer_pred, weights, random_seed=seed)
    equal = heldout_scores(outer_pred, dict.fromkeys(FAMILIES, 1.0), random_seed=seed)
    return {"n_runs": runs.n_runs, "n_train": train.n_runs, "n_test": test.n_runs,
            "train_max_flops": float(train.flops.max()), "test_flops": [
                float(test.flops.min()), float(test.flops.max())],
            "weights": weights, "scores": scores.to_dict(orient="records"),
            "equal_weights_average": equal.iloc[-1].to_dict(),
            "converged": {m: h.converged for m, h in {**inner_pred, **outer_pred}.items()},
            "seconds_stacking": t_stack, "seconds_total": t_all}


def synthetic_ladder(family: str, seed: int) -> RunTable:
    """40 runs drawn from ``family``: 8 sizes 1e7-3e9 x 5 tokens-per-parameter, 1% noise."""
    return synthetic_runs(LAW_OF[family], TRUTH[family], n_sizes=tuple(np.geomspace(1e7, 3e9, 8)),
                          tokens_per_param=(5, 10, 20, 40, 80), noise=0.01, seed=seed)


def synthetic_markdown(synth: dict[str, Any]) -> list[str]:
    """The synthetic part: the average's held-out error vs the true family's own."""
    rows = []
    for fam, r in synth.items():
        s = pd.DataFrame(r["scores"]).set_index("model")
        own, av = s.loc[fam, "median_abs_pct_error"], s.loc["average", "median_abs_pct_error"]
        rows.append({"true family": fam, "n_test": r["n_test"], "own error %": own,
                     "average error %": av, "ratio": av / own, "within 10%": av <= 1.1 * own,
                     "weight on truth": r["weights"][fam],
                     "own is90": s.loc[fam, "interval_score_90"],
                     "average is90": s.loc["average", "interval_score_90"]})
    if not rows:
        return []
    return ["## Synthetic ladders drawn from each family", "",
            "40 runs each (8 sizes 1e7-3e9 x 5 tokens-per-parameter ratios, 1% noise on log "
            "loss), same protocol as above; `ratio` = the average's median abs error over the "
            "true family's own (target <= 1.1).", "", md(pd.DataFrame(rows)), ""]


def write(results: dict[str, Any], args: argparse.Namespace,
          synth: dict[str, Any] | None = None) -> None:
    """families.md and families.json from the ladders measured so far."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "families.json").write_text(json.dumps({"real": results, "synthetic": synth or {}},
                                                      indent=1, default=float))
    lines = ["# Law families stacked by held-out-by-compute predictions", "",
             f"Families: {', '.join(FAMILIES)}. Per ladder: the top {args.outer} compute "
             "budget(s) (0.25-decade FLOP bins) held out; stacking weights from refits of the "
             f"rest without its own top {list(args.inner)} budget(s); NUTS {SMALL_FIT} for every "
             "fit (small, no gate retry, no discrepancy calibration: bands are law + noise). "
             "Machine: 2 cores shared by ~8 engineers (heavily loaded), `nice -n 10`.", ""]
    pooled = []
    for name, r in results.items():
        s = pd.DataFrame(r["scores"])
        ch = s.set_index("model").loc["chinchilla"]
        av = s.set_index("model").loc["average"]
        gain = 100 * (1 - av["median_abs_pct_error"] / ch["median_abs_pct_error"])
        pooled.append({"ladder": name, "n_test": r["n_test"],
                       "chinchilla_mape": ch["median_abs_pct_error"],
                       "average_mape": av["median_abs_pct_error"], "mape_reduction_%": gain,
                       "chinchilla_is90": ch["interval_score_90"],
                       "average_is90": av["interval_score_90"],
                       "chinchilla_cov90": ch["coverage_90"], "average_cov90": av["coverage_90"]})
        lines += [f"## {name}", "",
                  f"{r['n_runs']} runs; fitted on {r['n_train']} (C <= "
                  f"{r['train_max_flops']:.3g} FLOP), {r['n_test']} held out (C "
                  f"{r['test_flops'][0]:.3g}-{r['test_flops'][1]:.3g}). Weights: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in r["weights"].items())
                  + f". Stacking refits {r['seconds_stacking']:.0f} s, all fits "
                  f"{r['seconds_total']:.0f} s. Converged: {r['converged']}.", "",
                  md(s), "",
                  "Equal-weight average: median abs error "
                  f"{r['equal_weights_average']['median_abs_pct_error']:.3g}%, interval score "
                  f"{r['equal_weights_average']['interval_score_90']:.3g}.", ""]
    if pooled:
        p = pd.DataFrame(pooled)
        lines += ["## Per ladder: the stacked average vs Chinchilla alone", "",
                  md(p), "",
                  f"Mean reduction of the median abs error over ladders: "
                  f"{p['mape_reduction_%'].mean():.1f}% (target: 25%); ladders where the "
                  f"average's interval score is lower: "
                  f"{int((p['average_is90'] < p['chinchilla_is90']).sum())} of {len(p)}.", ""]
    if "chinchilla" in results:
        r = results["chinchilla"]
        lines += [f"Speed: four families fitted and stacked on Chinchilla's ladder "
                  f"({r['n_train']} training runs; {len(args.inner)} stacking origin(s), "
                  f"{len(FAMILIES) * (len(args.inner) + 1)} NUTS fits at the small settings): "
                  f"{r['seconds_total']:.0f} s wall on the loaded machine (target < 120 s).", ""]
    lines += synthetic_markdown(synth or {})
    (RESULTS / "families.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ladders", default="chinchilla;porian2024_isoflop;"
                    "misfitting_openlm (best lr);steplaw_dense (best lr, bs)")
    ap.add_argument("--outer", type=int, default=3)
    ap.add_argument("--inner", type=lambda s: tuple(int(v) for v in s.split(",")), default=(1,))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=["real", "synthetic", "all"], default="all",
                    help="run one part; the other is kept from families.json")
    ap.add_argument("--synthetic", default="farseer,chinchilla,broken,kaplan_e")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    old = (json.loads((RESULTS / "families.json").read_text())
           if (RESULTS / "families.json").exists() else {})
    if old and "real" not in old:  # the first format: ladders at the top level
        old = {"real": old}
    results: dict[str, Any] = {} if args.part != "synthetic" else old.get("real", {})
    synth: dict[str, Any] = {} if args.part != "real" else old.get("synthetic", {})
    if args.part != "synthetic":
        for name, runs in ladders(args.ladders.split(";")).items():
            print(f"== {name}: {runs.n_runs} runs", flush=True)
            results[name] = one_ladder(runs, args.outer, args.inner, args.seed)
            write(results, args, synth)
    if args.part != "real":
        for i, fam in enumerate(args.synthetic.split(",")):
            print(f"== synthetic {fam}", flush=True)
            synth[fam] = one_ladder(synthetic_ladder(fam, 100 + i), args.outer, args.inner,
                                    args.seed)
            write(results, args, synth)
    print((RESULTS / "families.md").read_text())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
