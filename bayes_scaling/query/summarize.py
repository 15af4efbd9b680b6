"""Tidy summaries of draws: the one place intervals are computed (numpy and pandas only).

Intervals are equal-tailed (quantile) intervals: a 90% interval runs from the 5% to the 95%
quantile of the draws, so "90% of outcomes fall inside" is exactly what a backtest checks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import DEFAULT_INTERVAL, DEFAULT_PROBS
from bayes_scaling.errors import QueryError

BANDS: tuple[str, ...] = ("law", "predictive")


def check_probs(probs: Sequence[float], interval: float) -> tuple[tuple[float, ...], float]:
    """Validate interval probabilities (each in (0, 1)); ``interval`` is added to ``probs``."""
    for p in (*probs, interval):
        if not 0.0 < float(p) < 1.0:
            raise QueryError(f"interval probability must be between 0 and 1, got {p}")
    return tuple(sorted({float(p) for p in (*probs, interval)})), float(interval)


def pct(p: float) -> str:
    """``0.9 -> "90"``, ``0.975 -> "97.5"``."""
    return f"{100 * p:g}"


def interval_table(samples: np.ndarray, *, probs: Sequence[float] = DEFAULT_PROBS,
                   interval: float = DEFAULT_INTERVAL) -> pd.DataFrame:
    """Summarise ``samples`` of shape (draws, points): one row per point.

    Columns: ``mean``, ``median``, ``lower``, ``upper`` (the chosen ``interval``), ``interval``,
    and ``lo_<p>``/``hi_<p>`` for every probability in ``probs``. ``inf`` draws are kept (a
    quantile may be ``inf``); ``mean`` is over finite draws.
    """
    probs, interval = check_probs(probs, interval)
    s = np.asarray(samples, dtype=float)
    if s.ndim == 1:
        s = s[:, None]
    qs = sorted({0.5} | {(1 - p) / 2 for p in probs} | {(1 + p) / 2 for p in probs})
    q = sorted_quantiles(s, qs)
    at = dict(zip(qs, q, strict=True))
    finite = np.where(np.isfinite(s), s, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-inf columns: mean is NaN
        mean = np.nanmean(finite, axis=0)
    cols: dict[str, Any] = {"mean": mean, "median": at[0.5],
                            "lower": at[(1 - interval) / 2], "upper": at[(1 + interval) / 2],
                            "interval": np.full(s.shape[1], interval)}
    for p in probs:
        cols[f"lo_{pct(p)}"] = at[(1 - p) / 2]
        cols[f"hi_{pct(p)}"] = at[(1 + p) / 2]
    return pd.DataFrame(cols)


def sorted_quantiles(samples: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles along axis 0 (numpy's default "linear" rule), shape ``(len(qs), points)``.

    Sorting once and interpolating is several times faster than ``np.quantile`` with many
    probabilities; ``inf`` draws give ``inf`` quantiles where they are reached.
    """
    srt = np.sort(np.ascontiguousarray(np.asarray(samples, dtype=float).T), axis=1)
    m = srt.shape[1]
    pos = np.asarray(qs, dtype=float) * (m - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, m - 1)
    frac = (pos - lo)[:, None]
    a, b = srt[:, lo].T, srt[:, hi].T
    with np.errstate(invalid="ignore"):
        out = np.where(frac == 0, a, a + (b - a) * frac)
    return np.where(np.isnan(out), np.inf, out)


def band_columns(summary: pd.DataFrame) -> list[tuple[str, str, float]]:
    """``(lo_col, hi_col, p)`` for every interval in a summary, widest first."""
    out = []
    for col in summary.columns:
        if col.startswith("lo_"):
            p = float(col[3:]) / 100
            out.append((col, f"hi_{col[3:]}", p))
    return sorted(out, key=lambda t: -t[2])


@dataclass(frozen=True)
class QueryResult:
    """Draws (xarray: ``chain, draw, point``) plus a tidy summary (pandas), and their band."""

    draws: xr.DataArray | xr.Dataset
    summary: pd.DataFrame
    band: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready records of the summary (``inf`` written as the string ``"inf"``)."""
        recs = self.summary.to_dict(orient="records")
        return [{k: jsonable(v) for k, v in r.items()} for r in recs]


def jsonable(v: Any) -> Any:
    """Plain JSON types, recursively: numpy scalars and arrays unwrapped, paths as strings,
    ``inf`` as ``"inf"`` and NaN as ``None`` (JSON has neither). Every ``to_json`` uses it."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [jsonable(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, PurePath):
        return str(v)
    return v


def positive_values(values: Any, name: str) -> np.ndarray:
    """``values`` as a flat float array; QueryError naming ``name`` unless all are > 0 and finite.

    Parameters
    ----------
    values : float or array_like
        What the caller passed.
    name : str
        The argument's name, for the one-line error.

    Returns
    -------
    numpy.ndarray
        1-D float64 array, at least one element.
    """
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be numbers, got {values!r}") from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise QueryError(f"{name} must be positive and finite, got {values!r}")
    return a
