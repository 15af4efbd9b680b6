"""Every public ladder this project can read, one RunTable per ladder (one group each).

A *ladder* is one training recipe on one data distribution with one evaluation set: the unit a
user fits. Sources: Chinchilla (Epoch's extraction, 5 highest-loss runs dropped), Porian et al.
(2 corpora x 5 settings), the Step Law dense finals and the (Mis)Fitting open_lm finals (both
learning-rate sweeps, reduced to the best run per (N, D)), and the Gemstones runs (the final losses
of the constant-rate checkpoints and of the cooldown branches, base learning rate: two ladders).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from bayes_scaling.data.registry import load_dataset
from bayes_scaling.data.runs import RunTable, load_runs

DATA = Path(os.environ.get("BAYES_SCALING_DATA", Path(__file__).resolve().parents[2] /
                           "shared" / "data"))


def best_runs(frame: pd.DataFrame) -> RunTable:
    """The lowest-loss run per (N, D) of a sweep (:meth:`RunTable.best_of_sweeps`)."""
    return load_runs(frame[["n_params", "n_tokens", "loss"]].reset_index(drop=True)
                     ).best_of_sweeps()


def public_ladders() -> dict[str, tuple[str, RunTable]]:
    """``{ladder name: (source, runs)}`` for every public ladder."""
    out: dict[str, tuple[str, RunTable]] = {
        "chinchilla": ("chinchilla", load_dataset("chinchilla")),
        "steplaw_dense": ("steplaw", best_runs(load_dataset("steplaw_dense").frame)),
        "misfitting_openlm": ("misfitting", best_runs(load_dataset("misfitting_openlm").frame)),
    }
    por = pd.read_csv(DATA / "porian2024_isoflop" / "porian2024_isoflop.csv")
    short = {"base_hparams-long_warmup-kaplan_decay-kaplan_count-train_loss": "kaplan",
             "base_hparams-long_warmup-kaplan_decay-standard_count-val_loss": "count",
             "base_hparams-short_warmup-kaplan_decay-standard_count-val_loss": "warmup",
             "base_hparams-short_warmup-chinchilla_decay-standard_count-val_loss": "decay",
             "tuned_hparams-short_warmup-const_decay-standard_count-val_loss": "tuned"}
    for (corpus, setting), sub in por.groupby(["group", "setting"], sort=True):
        name = f"porian:{corpus}:{short.get(setting, setting)}"
        out[name] = ("porian", load_runs(sub[["n_params", "n_tokens", "loss"]]
                                         .reset_index(drop=True)))
    gem = pd.read_csv(DATA / "gemstones" / "gemstones_curves.csv")
    for schedule in ("constant", "cooldown_end"):
        sub = gem[(gem["schedule"] == schedule) & (gem["lr_variant"] == "base")]
        out[f"gemstones:{schedule}"] = ("gemstones", load_runs(
            sub[["n_params", "n_tokens", "loss"]].reset_index(drop=True), duplicates="drop"))
    return out
