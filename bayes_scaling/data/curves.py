"""Loss-curve tables: one row per evaluated checkpoint of a training run.

:func:`load_curves` reads and validates curves (steps increasing within a run, one batch size
per run, every bad row named in one line), drops the warm-up and early transient by a rule the
user can change (``warmup_fraction``, ``min_steps``), and thins dense curves so that a fit stays
fast. :class:`CurveTable` shares its base with the runs table
(:class:`bayes_scaling.data.frame.FrameTable`).
The laws fitted to these tables are in :mod:`bayes_scaling.query.curves`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.data.columns import (
    check_mapping,
    mapped_sources,
    missing_message,
    rename_columns,
    resolve_columns,
)
from bayes_scaling.data.frame import FrameTable
from bayes_scaling.data.readers import _bad_rows_message, _read_source, check_query
from bayes_scaling.errors import DataError, DataWarning

#: Dimension of a curve table (one entry per evaluated checkpoint) and of the curves themselves.
OBS, CURVE = "obs", "curve"

# --------------------------------------------------------------------------------------------
# Curve tables
# --------------------------------------------------------------------------------------------
#: Default warm-up rule: drop checkpoints before this fraction of each curve's last step ...
WARMUP_FRACTION = 0.1
#: ... and before this many steps (both apply; 0 switches the absolute threshold off).
MIN_STEPS = 0
#: Default thinning: at most this many checkpoints per curve, log-spaced in steps ...
MAX_POINTS_PER_CURVE = 30
#: ... and at most this many in all (fewer per curve until it fits, never below 3 per curve),
#: so a fit stays fast: about 1 ms per NUTS gradient at 3,000 points on one core.
MAX_POINTS = 3000

CURVE_REQUIRED: tuple[str, ...] = ("run_id", "n_params", "steps", "batch_size_tokens", "loss")
CURVE_OPTIONAL: tuple[str, ...] = ("learning_rate", "context_length", "n_params_nonembedding",
                                   "total_steps")
#: Columns of a :class:`CurveTable` frame, in order.
CURVE_COLUMNS: tuple[str, ...] = ("run_id", "group", *CURVE_REQUIRED[1:], *CURVE_OPTIONAL)
CURVE_ALIASES: dict[str, tuple[str, ...]] = {
    "run_id": ("run", "run_name", "curve", "curve_id"),
    "group": (),
    "n_params": ("n", "params", "parameters", "model_size", "num_params", "n_parameters"),
    "steps": ("step", "n_steps", "current_steps", "iteration", "iter"),
    "batch_size_tokens": ("batch_tokens", "batch_size", "b"),
    "loss": ("l", "eval_loss", "val_loss"),
    "learning_rate": ("lr", "peak_lr"),
    "context_length": ("seq_len", "sequence_length"),
    "total_steps": ("schedule_steps", "max_steps", "train_steps"),
    "n_params_nonembedding": ("n_no_emb", "n_nonembedding", "nonembedding_params",
                              "non_embedding_params"),
}
_STRING_COLUMNS = ("run_id", "group")


@dataclass(frozen=True, eq=False, repr=False)
class CurveTable(FrameTable):
    """Validated loss curves: one row per evaluated checkpoint of a training run.

    Build it with :func:`load_curves` (which validates, drops the warm-up and thins). Compare
    tables by :meth:`fingerprint`.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns of :data:`CURVE_COLUMNS` (the optional ones where known), index ``0 .. n-1``;
        the rows of one curve are contiguous with increasing ``steps``.
    source : str
        Where the curves came from.
    param_count : {"total", "nonembedding"}
        What ``n_params`` counts.
    rule : mapping
        The warm-up and thinning rule applied (``warmup_fraction``, ``min_steps``,
        ``max_points_per_curve``) and ``n_points_read`` before it.
    """

    frame: pd.DataFrame
    source: str
    param_count: str = "total"
    rule: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the frame has the canonical shape."""
        self._check_frame("curve", ("run_id", "group", *CURVE_REQUIRED[1:]), CURVE_COLUMNS,
                          "load_curves")

    def __repr__(self) -> str:
        """Summarize without printing every point."""
        return (f"CurveTable({self.n_points} points, {self.n_curves} curves, {self.n_groups} "
                f"groups, param_count={self.param_count!r}, source={self.source!r})")

    n = property(lambda self: self._floats("n_params"), doc="N, parameters (per point).")
    s = property(lambda self: self._floats("steps"), doc="S, optimizer steps (per point).")
    b = property(lambda self: self._floats("batch_size_tokens"),
                 doc="B, batch size in tokens (per point).")
    loss = property(lambda self: self._floats("loss"), doc="Loss in nats/token (per point).")
    tokens = property(lambda self: self.s * self.b, doc="E = S B, tokens seen (per point).")
    log_n = property(lambda self: np.log(self.n), doc="log N.")
    log_s = property(lambda self: np.log(self.s), doc="log S.")
    log_b = property(lambda self: np.log(self.b), doc="log B.")
    log_loss = property(lambda self: np.log(self.loss), doc="log loss.")

    curve_ids = property(lambda self: self._levels("run_id")[0],
                         doc="Distinct curves, in order of first appearance.")
    curve_index = property(lambda self: self._levels("run_id")[1],
                           doc="Position of each point's curve in :attr:`curve_ids` (int64).")

    n_points = property(lambda self: len(self.frame), doc="Number of checkpoints (rows).")
    n_curves = property(lambda self: len(self.curve_ids), doc="Number of curves.")
    n_runs = property(lambda self: self.n_curves, doc="Number of training runs (= curves).")

    def curves(self) -> pd.DataFrame:
        """One row per curve.

        Columns ``run_id, group, n_params, batch_size_tokens, first_step, last_step, n_points,
        last_loss``.
        """
        g = self.frame.groupby("run_id", sort=False)
        return pd.DataFrame({
            "group": g["group"].first(), "n_params": g["n_params"].first(),
            "batch_size_tokens": g["batch_size_tokens"].first(),
            "first_step": g["steps"].first(), "last_step": g["steps"].last(),
            "n_points": g.size(), "last_loss": g["loss"].last()}).reset_index()

    def fingerprint(self) -> str:
        """Sha256 of the content (columns, values, ``param_count`` and ``rule``), 64 hex digits."""
        cols = [c for c in CURVE_COLUMNS if c in self.frame.columns]
        head = {"format": "bayes_scaling.data.curves/1", "param_count": self.param_count,
                "n_points": self.n_points, "columns": cols, "rule": dict(self.rule)}
        return self._digest(json.dumps(head, sort_keys=True, default=str).encode(), cols,
                            _STRING_COLUMNS)

    def to_xarray(self) -> xr.Dataset:
        """The table along dim ``obs`` (netCDF-safe); attrs ``table="curves"``, the rule, hash."""
        data_vars = {col: (OBS, self._column_array(col, _STRING_COLUMNS))
                     for col in self.frame.columns}
        attrs = {"table": "curves", "source": self.source, "param_count": self.param_count,
                 "rule_json": json.dumps(dict(self.rule), sort_keys=True),
                 "fingerprint": self.fingerprint()}
        return xr.Dataset(data_vars, coords={OBS: np.arange(self.n_points)}, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> CurveTable:
        """Rebuild a table written by :meth:`to_xarray`; DataError if it fails its hash."""
        source = str(ds.attrs.get("source", "<xarray>"))
        if OBS not in ds.dims or ds.attrs.get("table") != "curves":
            raise DataError(f"{source}: not a curve table (no {OBS!r} dimension)")
        frame = {col: ([str(v) for v in ds[col].values] if col in _STRING_COLUMNS
                       else np.asarray(ds[col].values, dtype=np.float64))
                 for col in CURVE_COLUMNS if col in ds.data_vars}
        rule = json.loads(str(ds.attrs.get("rule_json", "{}")))
        table = cls(pd.DataFrame(frame), source, str(ds.attrs.get("param_count", "total")), rule)
        stored = ds.attrs.get("fingerprint")
        if stored is not None and str(stored) != table.fingerprint():
            raise DataError(f"{source}: curve table does not match its stored fingerprint")
        return table

    def subset(self, mask_or_index: Any) -> CurveTable:
        """Keep some points: a boolean mask over points, or integer positions."""
        return CurveTable(self._selected(mask_or_index, "points"), self.source,
                          self.param_count, self.rule)

    def range_summary(self) -> dict[str, float | int]:
        """Span of the curves.

        Keys ``n_min, n_max, s_min, s_max, b_min, b_max, loss_min, loss_max``, ``n_distinct,
        b_distinct, n_curves, n_points, n_groups``.
        """
        out: dict[str, float | int] = {}
        for key, x in (("n", self.n), ("s", self.s), ("b", self.b), ("loss", self.loss)):
            out[f"{key}_min"], out[f"{key}_max"] = float(x.min()), float(x.max())
        out["n_distinct"], out["b_distinct"] = len(np.unique(self.n)), len(np.unique(self.b))
        out["n_curves"], out["n_points"] = self.n_curves, self.n_points
        out["n_groups"] = self.n_groups
        return out


def thin_indices(steps: np.ndarray, k: int) -> np.ndarray:
    """Positions of at most ``k`` checkpoints of one curve, spread evenly in ``log(steps)``.

    Keeps the first and last checkpoint and, for each point of a log-spaced grid between them,
    the nearest checkpoint (so dense late stretches do not outweigh the early curve).
    """
    steps = np.asarray(steps, dtype=float)
    if k <= 0 or steps.size <= k:
        return np.arange(steps.size)
    grid = np.linspace(np.log(steps[0]), np.log(steps[-1]), k)
    nearest = np.abs(np.log(steps)[None, :] - grid[:, None]).argmin(axis=1)
    return np.unique(np.concatenate([[0, steps.size - 1], nearest]))


def warmup_mask(frame: pd.DataFrame, warmup_fraction: float, min_steps: float) -> np.ndarray:
    """Checkpoints kept by the warm-up rule: ``steps >= max(min_steps, f * last step of run)``.

    The rule of Kaplan et al. (2020) and Su et al. (2024), who fit only past the learning-rate
    warm-up and the early transient, in a form a user can change: ``f = warmup_fraction``
    (default :data:`WARMUP_FRACTION`) of each run's own length, and an absolute
    ``min_steps`` (default :data:`MIN_STEPS`). A run's last checkpoint always satisfies the
    fraction rule, so runs with a final loss only are kept unless ``min_steps`` excludes them.
    """
    last = frame.groupby("run_id", sort=False)["steps"].transform("max").to_numpy(float)
    steps = frame["steps"].to_numpy(float)
    return (steps >= warmup_fraction * last) & (steps >= min_steps)


def _read_curve_source(source: Any, group_col: str | None,
                       columns: Mapping[str, str] | None = None,
                       ) -> tuple[pd.DataFrame, list[str], str]:
    """A copy of the raw table, a label per position (``line k`` / ``row k``) and its name.

    The runs tables' reader (:func:`bayes_scaling.data.readers._read_source`: encodings, separators,
    quoting and blank lines are checked the same way); run ids and groups are read as text.
    """
    text_columns = {c: CURVE_ALIASES[c] for c in ("run_id", "group")}
    raw, labels, name = _read_source(source, group_col, text_columns,
                                     mapped=mapped_sources(columns, group_col))
    labels = [labels[i] for i in raw.index]  # positions from here on (blank lines dropped)
    return raw.reset_index(drop=True), labels, name


def _map_curve_columns(raw: pd.DataFrame, name: str, group_col: str | None,
                       columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rename mapped and recognised columns to canonical names (others are kept for ``query``).

    ``columns`` is the user's ``{canonical: source}`` mapping, applied before the spellings
    of :data:`CURVE_ALIASES` (see :func:`bayes_scaling.data.columns.resolve_columns`).
    """
    numeric = [c for c in CURVE_COLUMNS if c not in _STRING_COLUMNS]
    mapping, group_source = resolve_columns(raw, name, aliases=CURVE_ALIASES,
                                            user=columns or {}, group_col=group_col,
                                            numeric=numeric)
    work = rename_columns(raw, mapping, group_source)
    missing = [c for c in CURVE_REQUIRED if c not in work.columns]
    if missing:
        raise DataError(missing_message(raw, name, missing, mapping, what=" for loss curves"))
    return work


def _parse_curve_rows(work: pd.DataFrame, labels: list[str], name: str) -> pd.DataFrame:
    """Numeric columns as float64; one DataError naming every bad row."""
    problems: dict[int, list[str]] = {}
    for col in (*CURVE_REQUIRED[1:], *CURVE_OPTIONAL):
        if col not in work.columns:
            continue
        values = pd.to_numeric(work[col], errors="coerce").to_numpy(dtype=float)
        required = col in CURVE_REQUIRED
        for pos in np.flatnonzero(~(values > 0) | ~np.isfinite(values)):
            cell = work[col].iloc[pos]
            if not required and pd.isna(cell):
                continue
            why = "is missing" if pd.isna(cell) else (
                "is not a number" if np.isnan(values[pos]) else f"<= 0 or infinite ({cell})")
            problems.setdefault(int(pos), []).append(f"{col} {why}")
        work[col] = values
    for col in _STRING_COLUMNS:
        if col == "group" and col not in work.columns:
            work[col] = "all"
            continue
        text = [None if pd.isna(v) else str(v).strip() or None for v in work[col]]
        for pos in [i for i, v in enumerate(text) if v is None]:
            problems.setdefault(pos, []).append(f"{col} is missing")
        work[col] = text
    _raise_if_bad(problems, labels, name)
    return work


def _raise_if_bad(problems: dict[int, list[str]], labels: list[str], name: str) -> None:
    if problems:
        raise DataError(_bad_rows_message(name, problems, labels))


def _check_curves(work: pd.DataFrame, labels: list[str], name: str) -> None:
    """Within a run: one size, one batch size, one group; steps strictly increasing."""
    problems: dict[int, list[str]] = {}
    for run, rows in work.groupby("run_id", sort=False).groups.items():
        rows = np.asarray(rows)
        part = work.loc[rows]
        for col, what in (("n_params", "model size"), ("batch_size_tokens", "batch size"),
                          ("group", "group"), ("total_steps", "schedule length")):
            if col not in part.columns:
                continue
            values = part[col].fillna(-1.0) if col == "total_steps" else part[col]
            first = part[col].iloc[0]
            for pos in rows[(values != values.iloc[0]).to_numpy()]:
                problems.setdefault(int(pos), []).append(
                    f"run {run!r} changes {what} ({first} at {labels[rows[0]]}); one {what} "
                    "per run")
        steps = part["steps"].to_numpy(float)
        for k in np.flatnonzero(np.diff(steps) <= 0):
            problems.setdefault(int(rows[k + 1]), []).append(
                f"steps of run {run!r} do not increase ({steps[k + 1]:g} after {steps[k]:g})")
    _raise_if_bad(problems, labels, name)


def load_curves(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    group_col: str | None = None,
    param_count: str = "total",
    query: str | None = None,
    warmup_fraction: float = WARMUP_FRACTION,
    min_steps: float = MIN_STEPS,
    max_points_per_curve: int | None = MAX_POINTS_PER_CURVE,
    max_points: int | None = MAX_POINTS,
    columns: Mapping[str, str] | None = None,
) -> CurveTable:
    r"""Read, validate, drop the warm-up of and thin a table of loss curves.

    One row per (run, evaluation step): ``run_id`` (or ``run``: names the curve), ``n_params``,
    ``steps``, ``batch_size_tokens``, ``loss`` (nats/token); optional ``group``,
    ``learning_rate``, ``context_length``, ``n_params_nonembedding`` and ``total_steps`` (the
    length of the run's learning-rate schedule; curves from several schedule lengths raise a
    :class:`~bayes_scaling.errors.DataWarning`, see :func:`schedule_note`). A table of final
    losses (one row per run) is a table of one-point curves.

    Parameters
    ----------
    source : str, path or pandas.DataFrame
        ``.csv``, ``.tsv``, ``.parquet``/``.pq`` or a DataFrame (not modified).
    group_col : str, optional
        Column naming each run's data distribution (default: ``group`` if present, else all
        runs form one group ``"all"``).
    param_count : {"total", "nonembedding"}
        ``"nonembedding"`` takes N from ``n_params_nonembedding`` (Kaplan et al. 2020 count).
    query : str, optional
        A :meth:`pandas.DataFrame.query` filter on the canonical (and any other) columns,
        applied before validation, e.g. ``"learning_rate == 0.002"``.
    warmup_fraction, min_steps : float
        Warm-up rule (:func:`warmup_mask`): keep checkpoints with
        ``steps >= max(min_steps, warmup_fraction * last step of the run)``.
    max_points_per_curve : int or None
        Thinning (:func:`thin_indices`): at most this many checkpoints per curve, log-spaced in
        steps; ``None`` keeps all.
    max_points : int or None
        Cap on the whole table: the per-curve limit is lowered (not below 3) until the table
        fits; ``None`` for no cap. The limit used is recorded in ``rule``.
    columns : mapping, optional
        Canonical name -> the source's column (e.g. ``{"n_params": "params_active",
        "steps": "step", "loss": "eval/loss"}``), applied before the known spellings.

    Returns
    -------
    CurveTable

    Raises
    ------
    DataError
        One line naming the source and every bad row with its reason: non-positive or missing
        values, a run whose size, batch size or group changes, steps that do not increase.
    """
    if param_count not in ("total", "nonembedding"):
        raise DataError(f"load_curves: unknown param_count {param_count!r}")
    if not 0.0 <= float(warmup_fraction) < 1.0 or float(min_steps) < 0:
        raise DataError("load_curves: warmup_fraction must be in [0, 1) and min_steps >= 0")
    where = str(source) if isinstance(source, str | os.PathLike) else "<DataFrame>"
    columns = check_mapping(columns, CURVE_COLUMNS, where)
    raw, labels, name = _read_curve_source(source, group_col, columns)
    work = _map_curve_columns(raw, name, group_col, columns)
    if query is not None:
        check_query(query, name)  # comparisons and arithmetic only: nothing executes
        try:
            work = work.query(query, engine="python")
        except Exception as exc:
            raise DataError(f"{name}: query {query!r} failed: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())}") from None
        if work.empty:
            raise DataError(f"{name}: query {query!r} selected no rows")
        labels = [labels[i] for i in work.index]
        work = work.reset_index(drop=True)
    work = _parse_curve_rows(work, labels, name)
    if param_count == "nonembedding":
        if "n_params_nonembedding" not in work.columns or work[
                "n_params_nonembedding"].isna().any():
            raise DataError(f"{name}: param_count='nonembedding' needs n_params_nonembedding "
                            "on every row")
        work["n_params"] = work["n_params_nonembedding"]
    _check_curves(work, labels, name)
    rule = {"warmup_fraction": float(warmup_fraction), "min_steps": float(min_steps),
            "max_points_per_curve": max_points_per_curve, "max_points": max_points,
            "n_points_read": len(work)}
    table = _apply_rule(work, name, param_count, rule)
    note = schedule_note(table)
    if note:
        warnings.warn(note, DataWarning, stacklevel=2)
    return table


def schedule_note(curves: CurveTable) -> str | None:
    """A warning when the curves' schedules (``total_steps``) differ, else ``None``.

    The law ``L(N, S, B)`` has no learning-rate-schedule term: a checkpoint partway through a
    decaying schedule sits above the end of a shorter run at the same step. With several
    schedule lengths the whole-curve offsets (``sigma_curve``) absorb the difference, and every
    predictive band widens by it. Measured on misfitting_openlm (one run per size, schedules of
    4,000-16,000 steps): the in-sample curve offsets ranged from -1.8% to +1.5% and lined up
    with the schedule length (benchmarks/results/dynamics.md, section 1).
    """
    if "total_steps" not in curves.frame.columns:
        return None
    per = curves.frame.groupby("run_id", sort=False).agg(total=("total_steps", "first"),
                                                        k=("steps", "size"))
    lengths = np.unique(per.loc[per["k"] >= 3, "total"].dropna())
    if lengths.size < 2:
        return None
    return (f"{curves.source}: the curves come from {lengths.size} schedule lengths "
            f"({lengths.min():g}-{lengths.max():g} total steps); the law has no learning-rate-"
            "schedule term, so the whole-curve offsets absorb the difference and every "
            "predicted curve's band widens by it")


def _per_curve_limit(sizes: np.ndarray, per_curve: int | None, total: int | None) -> int:
    """The largest per-curve limit (<= ``per_curve``, >= 3) keeping the sum under ``total``."""
    k = int(per_curve) if per_curve else int(sizes.max())
    while total and k > 3 and np.minimum(sizes, k).sum() > total:
        k -= 1
    return k


def _apply_rule(work: pd.DataFrame, name: str, param_count: str,
                rule: dict[str, Any]) -> CurveTable:
    work = work.loc[warmup_mask(work, rule["warmup_fraction"], rule["min_steps"])]
    if work.empty:
        raise DataError(f"{name}: the warm-up rule (warmup_fraction={rule['warmup_fraction']}, "
                        f"min_steps={rule['min_steps']}) leaves no checkpoints")
    groups = list(work.groupby("run_id", sort=False).groups.values())
    k = _per_curve_limit(np.array([len(g) for g in groups]), rule["max_points_per_curve"],
                         rule["max_points"])
    keep = [np.asarray(g)[thin_indices(work.loc[g, "steps"].to_numpy(float), k)]
            for g in groups]
    cols = [c for c in CURVE_COLUMNS if c in work.columns]
    frame = work.loc[np.concatenate(keep), cols].reset_index(drop=True)
    return CurveTable(frame, name, param_count, {**rule, "points_per_curve_used": k})
