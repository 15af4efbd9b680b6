"""Shared parts of the contrast benchmark (``bench_contrast.py``): paths, the fit cache, scores.

Split out of ``bench_contrast.py`` (session 8) with no change to what it computes or writes.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.fitting.fit import fit
from bayes_scaling.fitting.result import ScalingFit

RESULTS = Path(__file__).resolve().parent / "results"
JSON = RESULTS / "contrast.json"
DATA = Path(os.environ.get("BAYES_SCALING_DATA", Path(__file__).resolve().parents[2] /
                           "shared" / "data"))
SMALL = {"chains": 2, "draws": 300, "tune": 300}
BINS = np.linspace(0.0, 1.0, 11)
TIE_NATS = 0.01  # observed held-out gaps below this count as near-ties in the report
#: Rule for decisions the observed data leave undecided (stated in session 7 before any figure
#: under it was computed): a decision is a *tie* when the gap both calls start from, the two
#: groups' best losses at the largest training budget, is under ``TIE_ANCHOR_NATS`` nats (about a
#: fifth of the run-to-run noise of a best-of-slice loss; ``TIE_NATS`` is about twice it). In
#: the tie-scored accuracy (``*_ties``) every method, ours and the baseline alike, scores 0.5
#: on a tie; the raw accuracy is reported next to it.
TIE_ANCHOR_NATS = 0.001


def tie_scored(right: np.ndarray, anchor_gap: np.ndarray) -> float:
    """Accuracy with every tie (``|anchor_gap| < TIE_ANCHOR_NATS``) scored 0.5."""
    tie = np.abs(np.asarray(anchor_gap, float)) < TIE_ANCHOR_NATS
    return float(np.where(tie, 0.5, np.asarray(right, float)).mean())
#: Predictive bands compared: anchored (the default: past the longest horizon the refits tested
#: the gap is held), anchored extrapolating the law's group-specific change past it
#: (``beyond_law``), and the law's own band (``shared``).
MODES = ("anchored", "beyond_law", "shared")


def _mode(mode: str) -> dict:
    if mode == "beyond_law":
        return {"discrepancy": "anchored", "beyond": "law"}
    return {"discrepancy": mode, "beyond": "hold" if mode == "anchored" else None}


#: Fits are kept here (``--cache``) so the queries can be rerun without refitting.
CACHE: list[Path] = []


def _fit(runs, seed: int, calibrate: bool, model: str = "chinchilla", key: str | None = None):
    path = CACHE[0] / f"{key}.nc" if (CACHE and key) else None
    if path is not None and path.exists():
        return ScalingFit.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit(model, runs, random_seed=seed, calibrate=calibrate, **SMALL)
    if path is not None:
        f.save(path)
    return f


def _best_per_budget(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby(["setting", "flops"])["loss"].min().unstack("setting")


def reliability(p: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Binned predicted probability vs observed frequency."""
    idx = np.clip(np.digitize(p, BINS[1:-1]), 0, len(BINS) - 2)
    rows = []
    for k in range(len(BINS) - 1):
        sel = idx == k
        if sel.any():
            rows.append({"bin": f"{BINS[k]:.1f}-{BINS[k + 1]:.1f}", "n": int(sel.sum()),
                         "mean_p": float(p[sel].mean()), "observed": float(y[sel].mean())})
    return pd.DataFrame(rows)


def scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy of ``p > 0.5``, Brier score, mean P of the decision and observed frequency."""
    pc = np.clip(p, 1e-3, 1 - 1e-3)
    return {"n": int(p.size), "accuracy": float(((p > 0.5) == y).mean()),
            "brier": float(np.mean((p - y) ** 2)),
            "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
            "mean_confidence": float(np.mean(np.maximum(p, 1 - p)))}


def _md_table(frame: pd.DataFrame) -> list[str]:
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        out.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                                     for v in r.to_numpy()) + " |")
    return out
