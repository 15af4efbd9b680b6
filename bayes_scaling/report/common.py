"""Helpers the report's sections share when they compute their numbers (no PyMC, no fitting).

:func:`band_entry` turns a summary row into the report's band entry, :func:`quiet` calls a
query with its extrapolation and convergence warnings silenced (the report states both itself),
:func:`diag` is a fit's convergence entry and :func:`constants_table` its posterior constants;
:func:`source_digest` names the package's code, for what a rebuild may reuse.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayes_scaling.data.registry import sha256_file
from bayes_scaling.errors import ConvergenceWarning, ExtrapolationWarning
from bayes_scaling.fitting.result import ScalingFit

#: Probabilities of the bands the report shows.
BAND_PROBS: tuple[float, ...] = (0.5, 0.9)
#: Points of the model-size and step grids of the report's curves.
CURVE_POINTS = 60


@functools.cache
def source_digest() -> str:
    """Sha256 of the package's Python sources: what a report rebuild reuses (kept entries,
    figures) must have been made by the same code, not only the same version number."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def band_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """Median, mean and the 50%/90% bounds of one summary row."""
    keys = ("median", "mean", "lo_50", "hi_50", "lo_90", "hi_90")
    return {k: float(row[k]) for k in keys if k in row}


def quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a query with its ExtrapolationWarning and ConvergenceWarning silenced (the report
    states the distance and the diagnostics itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def shown_path(path: str | os.PathLike[str] | None) -> str | None:
    """``path`` relative to the working folder when it lies inside it (reports travel)."""
    if path is None:
        return None
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Sha256 of a file's bytes."""
    return sha256_file(path)


def diag(fit_: ScalingFit) -> dict[str, Any]:
    """A fit's convergence entry: the gate's figures, the sampler, the calibration."""
    d = fit_.diagnostics
    return {"passed": d.passed, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail, "divergences": d.divergences, "chains": d.chains,
            "draws": d.draws, "backend": d.backend, "seed": d.seed,
            "sampling_seconds": d.sampling_seconds, "problems": list(d.problems),
            "banner": fit_.warning_banner, "calibration": fit_.meta.get("calibration")}


def constants_table(fit: ScalingFit, interval: float = 0.9) -> list[dict[str, Any]]:
    """Median and equal-tailed interval of every natural constant (per group).

    Parameters
    ----------
    fit : ScalingFit
        A fit of a final-loss or curve law.
    interval : float, default 0.9
        Mass of the equal-tailed interval.

    Returns
    -------
    list of dict
        One row per constant and group (``constant``, ``group``, ``median``, ``lower``,
        ``upper``, ``interval``), then ``sigma``, ``sigma_curve``, ``residual_length``, ``nu``,
        ``tau0``, ``kappa`` where the fit has them.
    """
    consts = fit.constants()
    lo_q, hi_q = (1 - interval) / 2, (1 + interval) / 2
    rows = []
    for name, da in consts.data_vars.items():
        groups = list(da["group"].values) if "group" in da.dims else [None]
        for g in groups:
            v = np.asarray(da.sel(group=g) if g is not None else da).ravel()
            rows.append({"constant": name, "group": g if g is not None else "(shared)",
                         "median": float(np.median(v)), "lower": float(np.quantile(v, lo_q)),
                         "upper": float(np.quantile(v, hi_q)), "interval": interval})
    for extra in ("sigma", "sigma_curve", "residual_length", "nu", "run_length_slope",
                  "run_length_kappa", "tau0", "kappa", "tau0_shape", "kappa_shape"):
        if extra in fit.posterior:
            v = np.asarray(fit.posterior[extra]).ravel()
            rows.append({"constant": extra, "group": "(shared)", "median": float(np.median(v)),
                         "lower": float(np.quantile(v, lo_q)),
                         "upper": float(np.quantile(v, hi_q)), "interval": interval})
    return rows
