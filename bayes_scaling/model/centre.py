"""Where the sampler's constants are centred, and which offsets are centred (numpy only).

Kept apart from the graph builders so that a fit records its centre without importing PyMC.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.data.curves import CurveTable
from bayes_scaling.data.runs import RunTable
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.spec import CENTRED_MIN_RUNS, ModelSpec


def input_centre(spec: ModelSpec, runs: RunTable) -> dict[str, float]:
    """Mean log input of the runs, the point the sampler's constants refer to."""
    values = {"n": runs.log_n, "d": runs.log_d}
    return {i: float(np.mean(values[i])) for i in LAWS[spec.law].inputs}


def use_centred(spec: ModelSpec, runs: RunTable) -> bool:
    """Centred offsets for data-rich groups, non-centred for sparse ones (Betancourt 2015)."""
    choice = spec.hierarchy.parameterization
    if choice != "auto":
        return choice == "centred"
    counts = np.bincount(runs.group_index, minlength=runs.n_groups)
    return bool(counts.min() >= CENTRED_MIN_RUNS)


def curve_centre(curves: CurveTable) -> dict[str, float]:
    """Mean log N, S, B and loss of the curve points: the centre the sampler's constants use."""
    return {"n": float(np.mean(curves.log_n)), "s": float(np.mean(curves.log_s)),
            "b": float(np.mean(curves.log_b)), "loss": float(np.mean(curves.log_loss))}
