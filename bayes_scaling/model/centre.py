"""Where the sampler's constants are centred, and which offsets are centred (numpy only).

Kept apart from the graph builders so that a fit records its centre without importing PyMC.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.data.curves import CurveTable
from bayes_scaling.data.runs import RunTable
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.spec import CENTRED_MIN_RUNS, ModelSpec, Prior


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


def curve_log_lengths(curves: CurveTable) -> np.ndarray:
    """Per curve (order of ``curve_ids``), the log of its schedule length ``total_steps``.

    NaN for a curve without one (a constant-rate run, WSD branches; or a table without the
    column): its run length does not set its schedule.
    """
    out = np.full(curves.n_curves, np.nan)
    if "total_steps" not in curves.frame.columns:
        return out
    total = curves.frame["total_steps"].to_numpy(dtype=float)
    ok = np.isfinite(total) & (total > 0)
    idx = curves.curve_index[ok]
    out[idx] = np.log(total[ok])  # one length per run (checked by load_curves)
    return out


def run_length_covariate(curves: CurveTable, centre: float | None = None, *,
                         training: bool = True) -> tuple[np.ndarray, float | None]:
    """Per curve, its centred log schedule length (0 where it has none), and the centre.

    The centre is that of the training curves (``training``, default: the mean over the
    curves that have a length; ``None`` when none has one), saved in a fit's meta so that
    held-out curves use the same one (``training=False`` with that ``centre``; a ``None``
    centre gives every held-out curve 0: a fit that saw no length predicts none).
    """
    logs = curve_log_lengths(curves)
    has = np.isfinite(logs)
    if training and centre is None:
        centre = float(np.mean(logs[has])) if has.any() else None
    if centre is None:
        return np.zeros(curves.n_curves), None
    return np.where(has, logs - centre, 0.0), float(centre)


#: Prior of ``run_length_kappa``, the exponent of a run-length term
#: (:data:`bayes_scaling.model.spec.RUN_LENGTH_TERMS`; two-sided: either sign may fit).
KAPPA_PRIOR = Prior("Normal", {"mu": 0.0, "sigma": 1.0})


def transform_inputs(names: tuple[str, ...], inputs, term: str, kappa, x, *, xp=np) -> tuple:
    r"""The law's inputs with a run-length term applied (numpy, or PyTensor through ``xp``).

    Tissue et al. (2024, arXiv:2408.11029) let a decay take effect through a momentum of
    fixed memory in steps; Luo et al. (2025, arXiv:2503.12811) make a drop's effect saturate
    in the forward area after it and shift the power law's clock by the warm-up area. Where
    runs of very different lengths share one law, neither fixed constant fits every length;
    these terms let one exponent ``kappa`` carry the difference:

    - ``"anneal"``: ``A -> A exp(-kappa x)`` (input ``anneal``);
    - ``"area"``: ``log S1 -> log S1 + kappa x`` (input ``s1``, a log).

    ``x`` is each point's curve's centred log schedule length (0 for a curve without one), so
    with every run on one schedule (``x = 0``), or ``kappa = 0``, the law is unchanged.
    """
    if term == "none":
        return tuple(inputs)
    key = {"anneal": "anneal", "area": "s1"}[term]
    if key not in names:
        raise ValueError(f"run-length term {term!r} needs a law with the input {key!r}")
    out = list(inputs)
    i = names.index(key)
    out[i] = out[i] * xp.exp(-kappa * x) if term == "anneal" else out[i] + kappa * x
    return tuple(out)
