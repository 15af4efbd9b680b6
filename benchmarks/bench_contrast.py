"""Which recipe wins at scale: compute multipliers and P(B better) on synthetic and real ladders.

Three parts, each writing its records into ``benchmarks/results/contrast.json``; ``--part
report`` (run by every part) turns them into ``contrast.md`` and ``contrast_reliability.png``.

- ``synthetic``: ladders with known truth (2-8 groups; random offsets on log E, log A, log B,
  shared exponents; 5 sizes x 3 ratios per group, 1% noise on log loss). Each is fitted with
  the default ``chinchilla`` model (small NUTS runs) and every pair of groups is contrasted at
  100x the largest training compute (compute-optimal path): does the 90% interval of the compute
  multiplier cover the true multiplier, and is P(B better) (law band) calibrated against the
  sign of the true loss difference?
- ``porian``: Porian et al. (2024, arXiv:2406.19146) IsoFLOP points, the five training settings
  within each corpus (each corpus has its own validation set; corpora are never compared).
  The top two budgets are held out; the law is fitted on budgets up to a cut (two cuts). The
  observed winner of a pair at a held-out budget is the setting with the lower best loss over
  that budget's IsoFLOP slice; ours predicts it from the contrast at that budget (compute-
  optimal path); the baseline ranks by the best loss at the largest training budget.
- ``gemstones``: McLeish et al. (2025, arXiv:2502.06857), constant-learning-rate checkpoints,
  base vs half learning rate. The top 15% of compute is held out; decisions are matched
  (model, step) pairs, predicted at their (N, D); the baseline ranks by the matched pair of
  largest compute in the training part.

Run (about 15-25 minutes on 2 shared cores):
``BAYES_SCALING_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/bench_contrast.py``
(``--part synthetic|porian|gemstones|report``; ``--ladders`` for fewer synthetic ladders).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the parts (split for length in session 8); their names are re-exported for
# bench_contrast_weights.py and other callers of this module
from contrast_common import (  # noqa: F401
    BINS,
    CACHE,
    DATA,
    JSON,
    MODES,
    RESULTS,
    SMALL,
    TIE_ANCHOR_NATS,
    TIE_NATS,
    _best_per_budget,
    _fit,
    _md_table,
    _mode,
    reliability,
    scores,
    tie_scored,
)
from contrast_report import report
from contrast_sets import (  # noqa: F401
    GEM_CUTS,
    GEM_HELD,
    PORIAN_CUTS,
    PORIAN_TOP,
    gemstone_pairs,
    gemstones,
    porian,
    synthetic,
)

from bayes_scaling.files import atomic_write_text
from bayes_scaling.query import anchor
from bayes_scaling.query.summarize import jsonable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "synthetic", "porian", "porian_slopes",
                                       "gemstones", "report"), default="all")
    ap.add_argument("--ladders", type=int, default=24)
    ap.add_argument("--corpora", default=None, help="Porian corpora, comma-separated")
    ap.add_argument("--cuts", default=None, help="Porian cuts, comma-separated (default "
                    f"{','.join(map(str, PORIAN_CUTS))})")
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder of saved fits: reused when present, written when not")
    ap.add_argument("--drift-decay", action="store_true",
                    help="the band's drift settling as a power of compute (anchor.DRIFT_DECAY, "
                    "off by default), without the relative drift; the report goes to "
                    "contrast_decay.md")
    ap.add_argument("--flat-drift", action="store_true",
                    help="the band's drift not scaling with the gap at the anchor "
                    "(anchor.RELATIVE_DRIFT off: the default before session 10); the report "
                    "goes to contrast_flat.md")
    ap.add_argument("--slice-anchor", action="store_true",
                    help="each group's level at the anchor from its whole isoFLOP slice "
                    "(anchor.SLICE_ANCHOR, session 11's candidate); the report goes to "
                    "contrast_slice_bench.md")
    ap.add_argument("--drift-at-top", action="store_true",
                    help="every drift term of the band at its rate at the top of the ladder "
                    "(anchor.DRIFT_AT_TOP, session 11b's candidate); the report goes to "
                    "contrast_top_bench.md")
    ap.add_argument("--ml-variance", action="store_true",
                    help="the band's variance terms by maximum likelihood (anchor.ML_VARIANCE, "
                    "session 12's candidate, the default since; with --drift-at-top both); the "
                    "report goes to "
                    "contrast_ml_bench.md or contrast_top_ml_bench.md")
    ap.add_argument("--pair-spread", action="store_true",
                    help="the spread of w per pair of groups (anchor.PAIR_SPREAD, session 12b's "
                    "candidate); the report goes to contrast_pair_bench.md")
    ap.add_argument("--spread-cap", action="store_true",
                    help="w's spread term capped by the refits' largest observed change of a gap "
                    "(anchor.SPREAD_CAP, session 12c's candidate); the report goes to "
                    "contrast_cap_bench.md")
    ap.add_argument("--origin-scale", action="store_true",
                    help="each refit comparison's variance scaled by its origin's place below "
                    "the top (anchor.ORIGIN_SCALE, session 13's candidate); the report goes to "
                    "contrast_scale_bench.md")
    ap.add_argument("--origin-mix", action="store_true",
                    help="with --origin-scale: beta integrated over its grid, the band the "
                    "mixture's (anchor.ORIGIN_MIX, session 13's second candidate); the report "
                    "goes to contrast_mix_bench.md")
    ap.add_argument("--json", type=Path, default=JSON,
                    help=f"the records' file (default {JSON.relative_to(JSON.parents[2])})")
    args = ap.parse_args()
    if args.drift_decay:  # as scored in session 8: with the flat drift
        anchor.DRIFT_DECAY, anchor.RELATIVE_DRIFT = True, False
    if args.flat_drift:
        anchor.RELATIVE_DRIFT = False
    if args.slice_anchor:
        anchor.SLICE_ANCHOR = True
    if args.drift_at_top:
        anchor.DRIFT_AT_TOP = True
    if args.ml_variance:
        anchor.ML_VARIANCE = True
    if args.pair_spread:
        anchor.PAIR_SPREAD = True
    if args.spread_cap:
        anchor.SPREAD_CAP = True
    if args.origin_scale:
        anchor.ORIGIN_SCALE = True
    if args.origin_mix:
        anchor.ORIGIN_MIX = True
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
        CACHE.append(args.cache)
    path = args.json
    store = json.loads(path.read_text()) if path.exists() else {}
    parts = ("synthetic", "porian", "gemstones") if args.part == "all" else (args.part,)

    def save(part: str, rows: list[dict]) -> None:
        # re-read first: parts run in parallel keep each other's records
        store.update(json.loads(path.read_text()) if path.exists() else {})
        store[part] = rows
        atomic_write_text(path, json.dumps(jsonable(store), indent=1))

    for part in parts:
        if part == "synthetic":
            save(part, synthetic(args.ladders, save=lambda rows: save("synthetic", rows)))
        elif part == "porian_slopes":  # exponents vary by setting too
            save(part, porian("chinchilla_slopes",
                              save=lambda rows: save("porian_slopes", rows)))
        elif part == "porian":
            save(part, porian(corpora=args.corpora and args.corpora.split(","),
                              cuts=args.cuts and [int(c) for c in args.cuts.split(",")],
                              save=lambda rows: save("porian", rows)))
        elif part != "report":
            save(part, globals()[part]())
    if args.origin_scale and args.origin_mix:
        report(store, "contrast_mix_bench", " - each refit comparison's variance scaled by its "
               "origin's place below the top, `beta` integrated (`--origin-scale --origin-mix`, "
               "`anchor.ORIGIN_MIX`)")
    elif args.origin_scale:
        report(store, "contrast_scale_bench", " - each refit comparison's variance scaled by its "
               "origin's place below the top (`--origin-scale`, `anchor.ORIGIN_SCALE`)")
    elif args.spread_cap:
        report(store, "contrast_cap_bench", " - `w`'s spread term capped by the refits' largest "
               "observed change of a gap (`--spread-cap`, `anchor.SPREAD_CAP`)")
    elif args.pair_spread:
        report(store, "contrast_pair_bench", " - the spread of `w` per pair of groups "
               "(`--pair-spread`, `anchor.PAIR_SPREAD`)")
    elif args.ml_variance:
        top = "top_" if args.drift_at_top else ""
        report(store, f"contrast_{top}ml_bench", " - the band's variance terms by maximum "
               "likelihood (`--ml-variance`, `anchor.ML_VARIANCE`)"
               + (" and every drift term at its rate at the top (`--drift-at-top`)" if top else ""))
    elif args.drift_decay:
        report(store, "contrast_decay", " - drift settling as a power of compute "
               "(`--drift-decay`, `anchor.DRIFT_DECAY`; not the default)")
    elif args.drift_at_top:
        report(store, "contrast_top_bench", " - every drift term at its rate at the top of the "
               "ladder (`--drift-at-top`, `anchor.DRIFT_AT_TOP`)")
    elif args.slice_anchor:
        report(store, "contrast_slice_bench", " - each group's level at the anchor from its "
               "whole isoFLOP slice (`--slice-anchor`, `anchor.SLICE_ANCHOR`)")
    elif args.flat_drift:
        report(store, "contrast_flat", " - drift not scaling with the gap (`--flat-drift`, "
               "`anchor.RELATIVE_DRIFT` off: the default before session 10)")
    else:
        report(store)


if __name__ == "__main__":
    main()
