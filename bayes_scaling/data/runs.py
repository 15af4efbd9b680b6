r"""Runs tables: load, validate and hold the training runs a scaling law is fitted to.

A runs table has one row per training run (or per evaluated checkpoint) and these columns:

========================= ======== ==========================================================
column                    required meaning
========================= ======== ==========================================================
``n_params``              yes      N, model parameters (see ``param_count``)
``n_tokens``              yes [1]_ D, training tokens seen
``loss``                  yes      L, loss in nats/token (natural log)
``flops``                 no       C, training FLOPs; :math:`C = 6 N D` when absent
``run_id``                no       unique id of the row; ``r0001``, ``r0002``, ... when absent
``group``                 no       data distribution the run belongs to; ``"all"`` when absent
``n_params_nonembedding`` no       N without embedding parameters (Kaplan et al. 2020)
``steps``                 no       optimizer steps
``batch_size_tokens``     no       batch size in tokens
``learning_rate``         no       (peak) learning rate
``context_length``        no       sequence length in tokens
========================= ======== ==========================================================

.. [1] When ``n_tokens`` is absent but ``flops`` is present (Epoch AI's digitization of the
   Chinchilla runs), :math:`D = C / (6 N)`, as Besiroglu et al. (2024) do.

Columns named otherwise (an experiment tracker's export: ``parameter_count``, ``tokens_seen``,
``eval/c4_en/loss``) are mapped with ``columns={"n_params": "parameter_count", ...}``; a missing
or ambiguous column is never guessed, the error proposes candidates by name and content
(:mod:`bayes_scaling.data.columns`). A FLOP column in another unit is read with ``flops_unit``
(``"GFLOP"``, ``"PF-days"``) and checked against 6·N·D (:mod:`bayes_scaling.data.units`).

Other spellings are recognised case-insensitively (spaces and hyphens count as ``_``): e.g.
``Model Size``, ``N``, ``params`` mean ``n_params``; ``D``, ``tokens`` mean ``n_tokens``;
``Training FLOP``, ``C``, ``FLOPs`` mean ``flops``; ``Loss``, ``L`` mean ``loss``; ``lr`` means
``learning_rate``; ``run`` means ``run_id`` where its values are unique (in a table of checkpoints
it names a curve, not a row, and the rows get generated ids). A column spelled exactly like the
canonical name wins over other spellings; two other spellings of one column are refused as
ambiguous.

Validation collects every bad row and raises one :class:`~bayes_scaling.errors.DataError`
whose message is a single line naming the source, the file line (the header is line 1; for a
DataFrame or a Parquet file, the row index) and the reason.

Reading (CSV, TSV, JSON Lines, Parquet), cell parsing, the query filter and the row checks live
in :mod:`bayes_scaling.data.readers`; the column names and spellings in
:mod:`bayes_scaling.data.columns`; the base shared with curve tables in
:mod:`bayes_scaling.data.frame`. This module holds :class:`RunTable`, :func:`load_runs`'s
options and the table checks.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CANONICAL_COLUMNS, FLOPS_PER_PARAM_TOKEN, RUN
from bayes_scaling.data.columns import check_mapping, mapped_sources
from bayes_scaling.data.frame import FrameTable
from bayes_scaling.data.readers import (
    _MAX_REPORTED,
    _NUMERIC,
    _STRINGS,
    _apply_query,
    _bad_rows_message,
    _canonicalize,
    _check_run_ids,
    _check_strings,
    _generated_ids,
    _mark_duplicates,
    _read_source,
    _with_eval_set,
)
from bayes_scaling.data.units import FlopsUnit, check_flops, flops_unit_name
from bayes_scaling.errors import DataError, DataWarning

#: Conventions for counting N: all parameters, or without embeddings (Kaplan et al. 2020).
PARAM_COUNTS: tuple[str, ...] = ("total", "nonembedding")
_DERIVED_RTOL = 1e-9  # flops within this of 6 N D count as derived (with_param_count)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
class RunTable(FrameTable):
    """A validated table of training runs, in canonical columns.

    Build it with :func:`load_runs` (which validates) rather than directly. Equality is not
    defined on the frame; compare :meth:`fingerprint` values instead.

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical columns (see :data:`CANONICAL_COLUMNS`), index ``0 .. n-1``.
    source : str
        Where the runs came from: a file path, or ``"<DataFrame>"``.
    param_count : {"total", "nonembedding"}
        What ``n_params`` counts: all parameters, or parameters without embeddings.
    """

    frame: pd.DataFrame
    source: str
    param_count: str = "total"

    def __post_init__(self) -> None:
        """Check the frame has the canonical shape (catches misuse of the constructor)."""
        self._check_frame("runs", ("run_id", "group", "n_params", "n_tokens", "flops", "loss"),
                          CANONICAL_COLUMNS, "load_runs")
        if self.param_count not in PARAM_COUNTS:
            raise DataError(f"{self.source}: unknown param_count {self.param_count!r}; "
                            f"use one of {', '.join(PARAM_COUNTS)}")

    def __repr__(self) -> str:
        """Summarize without printing every run."""
        return (f"RunTable({self.n_runs} runs, {self.n_groups} groups, "
                f"param_count={self.param_count!r}, source={self.source!r})")

    @property
    def n(self) -> np.ndarray:
        """N, parameters of each run (float64; convention in :attr:`param_count`)."""
        return self._floats("n_params")

    @property
    def d(self) -> np.ndarray:
        """D, training tokens of each run (float64)."""
        return self._floats("n_tokens")

    @property
    def loss(self) -> np.ndarray:
        """Loss of each run in nats/token (float64)."""
        return self._floats("loss")

    @property
    def flops(self) -> np.ndarray:
        """C, training FLOPs of each run (float64)."""
        return self._floats("flops")

    @property
    def log_n(self) -> np.ndarray:
        """Natural log of :attr:`n`."""
        return np.log(self.n)

    @property
    def log_d(self) -> np.ndarray:
        """Natural log of :attr:`d`."""
        return np.log(self.d)

    @property
    def log_loss(self) -> np.ndarray:
        """Natural log of :attr:`loss`."""
        return np.log(self.loss)

    @property
    def n_runs(self) -> int:
        """Number of runs (rows)."""
        return len(self.frame)

    def best_of_sweeps(self) -> RunTable:
        """The lowest-loss run per (group, N, D), in table order.

        A learning-rate or batch-size sweep trains several runs of one size on one budget; a
        scaling law describes the well-tuned one (Porian et al. 2024, arXiv:2406.19146, show
        that untuned hyperparameters shift the fitted law), and the others would count as noise.
        """
        keep = self.frame.groupby(["group", "n_params", "n_tokens"], sort=False)["loss"].idxmin()
        return self.subset(np.sort(keep.to_numpy()))

    def fingerprint(self) -> str:
        """Sha256 of the table's content, however it was loaded.

        Hashes the canonical columns present (names, values: floats as little-endian float64
        bytes, strings as UTF-8 JSON) and :attr:`param_count`; not :attr:`source`.

        Returns
        -------
        str
            64 hex digits.
        """
        cols = [c for c in CANONICAL_COLUMNS if c in self.frame.columns]
        head = {"format": "bayes_scaling.runs/1", "param_count": self.param_count,
                "n_runs": self.n_runs, "columns": cols}
        return self._digest(json.dumps(head, sort_keys=True).encode(), cols, _STRINGS)

    def to_xarray(self) -> xr.Dataset:
        """Return the table as an xarray Dataset along dim ``run`` (netCDF-safe).

        Returns
        -------
        xarray.Dataset
            Coordinate ``run`` holds the run ids; one variable per other canonical column
            (strings as ``str`` arrays); attrs ``source``, ``param_count``, ``fingerprint``.
        """
        data_vars = {}
        for col in self.frame.columns:
            if col != "run_id":
                data_vars[col] = (RUN, self._column_array(col, _STRINGS))
        coords = {RUN: np.array(self.run_ids, dtype=str)}
        attrs = {"source": self.source, "param_count": self.param_count,
                 "fingerprint": self.fingerprint()}
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> RunTable:
        """Rebuild a table written by :meth:`to_xarray` (exact round trip).

        Parameters
        ----------
        ds : xarray.Dataset
            As written by :meth:`to_xarray`, possibly read back from netCDF.

        Returns
        -------
        RunTable

        Raises
        ------
        DataError
            If ``ds`` lacks the ``run`` dimension or a required column, or its content no
            longer matches the ``fingerprint`` attribute stored with it.
        """
        source = str(ds.attrs.get("source", "<xarray>"))
        if RUN not in ds.coords:
            raise DataError(f"{source}: dataset has no {RUN!r} coordinate; not a runs table")
        frame = {"run_id": [str(v) for v in ds[RUN].values]}
        for col in CANONICAL_COLUMNS[1:]:
            if col not in ds.data_vars:
                continue
            values = ds[col].values
            frame[col] = ([str(v) for v in values] if col in _STRINGS
                          else np.asarray(values, dtype=np.float64))
        runs = cls(pd.DataFrame(frame), source, str(ds.attrs.get("param_count", "total")))
        stored = ds.attrs.get("fingerprint")
        if stored is not None and str(stored) != runs.fingerprint():
            raise DataError(f"{source}: runs table does not match its stored fingerprint "
                            f"(stored {stored}, computed {runs.fingerprint()})")
        return runs

    def subset(self, mask_or_index: Any) -> RunTable:
        """Keep some runs: a boolean mask of length :attr:`n_runs`, or integer positions.

        Parameters
        ----------
        mask_or_index : array_like of bool or int
            Which runs to keep (positions may reorder or repeat runs).

        Returns
        -------
        RunTable
            Re-indexed ``0 .. k-1``; same :attr:`source` and :attr:`param_count`.
        """
        return RunTable(self._selected(mask_or_index, "runs"), self.source, self.param_count)

    def with_param_count(self, param_count: str) -> RunTable:
        """Return the same runs with N counted another way.

        ``"nonembedding"`` copies ``n_params_nonembedding`` into ``n_params``. If ``flops``
        equal :math:`6 N D` (to 1e-9 relative, for every run: they were derived or follow
        that convention) they are recomputed with the new N; otherwise they are kept as given.
        The total count is not kept, so going back to ``"total"`` means reloading.

        Parameters
        ----------
        param_count : {"total", "nonembedding"}

        Returns
        -------
        RunTable

        Raises
        ------
        DataError
            Unknown ``param_count``; ``n_params_nonembedding`` missing or NaN for some run;
            or asking for ``"total"`` from a non-embedding table.
        """
        _check_param_count(param_count, self.source)
        if param_count == self.param_count:
            return self
        if param_count == "total":
            raise DataError(f"{self.source}: n_params already counts non-embedding "
                            "parameters and the total count is not kept; reload with "
                            "param_count='total'")
        bad = _nonembedding_problems(self.frame, self.source)
        if bad:
            ids = ", ".join(str(self.frame["run_id"].iloc[i]) for i in bad[:_MAX_REPORTED])
            more = f" (and {len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
            raise DataError(f"{self.source}: n_params_nonembedding is NaN or <= 0 for "
                            f"{len(bad)} runs: {ids}{more}")
        frame = self.frame.copy()
        n, d, c = self.n, self.d, self.flops
        derived = bool(np.all(np.abs(c - FLOPS_PER_PARAM_TOKEN * n * d) <= _DERIVED_RTOL * c))
        frame["n_params"] = self._floats("n_params_nonembedding")
        if derived:
            frame["flops"] = FLOPS_PER_PARAM_TOKEN * frame["n_params"] * frame["n_tokens"]
        return RunTable(frame, self.source, param_count)

    def range_summary(self) -> dict[str, float | int]:
        """Return the span of the runs: what a law fitted to them has seen.

        Returns
        -------
        dict
            ``n_min, n_max, d_min, d_max, flops_min, flops_max, loss_min, loss_max`` (floats)
            and ``n_distinct, d_distinct, n_runs, n_groups`` (ints).
        """
        out: dict[str, float | int] = {}
        for key, x in (("n", self.n), ("d", self.d), ("flops", self.flops),
                       ("loss", self.loss)):
            out[f"{key}_min"], out[f"{key}_max"] = float(x.min()), float(x.max())
        out["n_distinct"] = len(np.unique(self.n))
        out["d_distinct"] = len(np.unique(self.d))
        out["n_runs"], out["n_groups"] = self.n_runs, self.n_groups
        return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def load_runs(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    group_col: str | None = None,
    drop_highest_loss: int = 0,
    param_count: str = "total",
    min_distinct: Sequence[str] = ("n_params", "n_tokens"),
    query: str | None = None,
    duplicates: str = "error",
    columns: Mapping[str, str] | None = None,
    flops_unit: FlopsUnit | str = "FLOP",
    eval_set_col: str | None = None,
) -> RunTable:
    """Read, map, validate and return a table of runs.

    Parameters
    ----------
    source : str, path or pandas.DataFrame
        A ``.csv``, ``.tsv``, ``.jsonl`` (JSON Lines; nested keys flattened with ``/``),
        ``.parquet`` or ``.pq`` file (UTF-8 for text), or a DataFrame (not modified).
    group_col : str, optional
        Column holding each run's group (data distribution), e.g. ``"setting"``. Default: a
        ``group`` column if there is one, else every run is in group ``"all"``.
    drop_highest_loss : int, default 0
        Drop the K highest-loss runs, as Besiroglu et al. (2024) do with K = 5: keep runs whose
        loss is strictly below the K-th highest (ties at that value are all dropped).
    param_count : {"total", "nonembedding"}, default "total"
        ``"nonembedding"`` puts ``n_params_nonembedding`` in ``n_params``
        (see :meth:`RunTable.with_param_count`).
    min_distinct : sequence of str, default ("n_params", "n_tokens")
        Canonical columns that must hold at least 3 distinct values, without which the law's
        exponents cannot be identified.
    query : str, optional
        A :meth:`pandas.DataFrame.query` expression (python engine) applied after column
        mapping, e.g. ``"fraction_of_run == 1"``; mapped columns go by their canonical names,
        ``group`` is the chosen group column, other columns keep their own names.
    duplicates : {"error", "drop"}, default "error"
        What to do with exact duplicates (same group, n_params, n_tokens and loss as an earlier
        row): report them as bad rows, or keep only the first. Repeated (N, D) with another loss
        (seeds) is always allowed.
    columns : mapping, optional
        Canonical name -> the source's column, for tables named otherwise, e.g.
        ``{"n_params": "parameter_count", "n_tokens": "tokens_seen",
        "loss": "eval/c4_en/loss"}``. Any canonical column may be mapped (``group`` acts as
        ``group_col``); unmapped ones are found by their known spellings.
    flops_unit : str, default "FLOP"
        Unit of the FLOP column: ``FLOP``, ``GFLOP``, ``TFLOP``, ``PFLOP``, ``PF-days``, ...
        (:data:`~bayes_scaling.constants.FLOPS_UNITS`). When both tokens and FLOPs are given,
        a :class:`~bayes_scaling.errors.DataWarning` names the ratio flops / (6·N·D) if runs
        disagree by more than 10%; a ratio off by more than 30x is refused as a unit mix-up.
    eval_set_col : str, optional
        Column naming the evaluation set each loss was measured on, copied into ``eval_set``
        (default: an ``eval_set`` column or a spelling of it, if any). Contrasts refuse groups
        evaluated on different sets (:func:`bayes_scaling.query.contrast.check_comparable`).

    Returns
    -------
    RunTable

    Raises
    ------
    DataError
        One line naming the source and, for row problems, every bad row with its reason:
        ``"runs.csv: 2 bad rows; line 17: n_params <= 0 (-5); line 20: loss is NaN"``; a
        missing column with the likely candidates; a bad column mapping or FLOP unit.
    """
    _check_options(param_count, drop_highest_loss, min_distinct, duplicates)
    where = str(source) if isinstance(source, str | os.PathLike) else "<DataFrame>"
    columns = check_mapping(columns, CANONICAL_COLUMNS, where)
    flops_unit = flops_unit_name(flops_unit, where)
    raw, labels, name = _read_source(source, group_col,
                                     mapped=mapped_sources(columns, group_col))
    if eval_set_col is not None:
        raw = _with_eval_set(raw, eval_set_col, name)
    work, problems, ids_from_run, sources = _canonicalize(raw, name, group_col,
                                                          columns=columns,
                                                          flops_unit=flops_unit)
    if flops_unit != "FLOP" and "flops" not in sources:
        raise DataError(f"{name}: flops_unit={flops_unit!r} given, but the table has no FLOP "
                        "column; map one with --columns flops=COLUMN (columns= in Python)")
    if query is not None:
        work = _apply_query(work, query, name)
    if ids_from_run and (work["run_id"].isna().any() or not work["run_id"].is_unique):
        work["run_id"] = _generated_ids(work.index, len(raw))  # a curve's name, not a row's
    problems = {pos: problems[pos] for pos in work.index if pos in problems}
    _check_strings(work, problems)
    ok = [pos for pos in work.index if pos not in problems]
    dropped = _mark_duplicates(work.loc[ok], problems, labels, drop=duplicates == "drop")
    _check_run_ids(work.loc[[p for p in ok if p not in dropped]], problems, labels)
    if problems:
        raise DataError(_bad_rows_message(name, problems, labels))
    work = work.drop(index=list(dropped))
    if drop_highest_loss:
        work = _drop_highest(work, drop_highest_loss, name)
    cols = [c for c in CANONICAL_COLUMNS if c in work.columns]
    if "flops" in sources and "n_tokens" in sources:
        nd_c = (work[c].to_numpy(np.float64) for c in ("n_params", "n_tokens", "flops"))
        note = check_flops(*nd_c, name=name, column=sources["flops"], unit=flops_unit)
        if note:
            warnings.warn(note, DataWarning, stacklevel=2)
    if param_count == "nonembedding":
        _check_nonembedding(work[cols], name, labels)
    runs = RunTable(work[cols].reset_index(drop=True), name).with_param_count(param_count)
    _check_distinct(runs, min_distinct)
    return runs


def _check_param_count(param_count: object, source: str) -> None:
    if param_count not in PARAM_COUNTS:
        raise DataError(f"{source}: unknown param_count {param_count!r}; "
                        f"use one of {', '.join(PARAM_COUNTS)}")


def _check_options(param_count: object, drop_highest_loss: object,
                   min_distinct: Sequence[str], duplicates: object) -> None:
    """Refuse impossible keyword arguments before reading anything."""
    _check_param_count(param_count, "load_runs")
    if (isinstance(drop_highest_loss, bool) or not isinstance(drop_highest_loss, int | np.integer)
            or drop_highest_loss < 0):
        raise DataError(f"load_runs: drop_highest_loss must be an integer >= 0, "
                        f"not {drop_highest_loss!r}")
    if isinstance(min_distinct, str):
        raise DataError(f"load_runs: min_distinct must be a sequence of column names, "
                        f"not the string {min_distinct!r}")
    unknown = [c for c in min_distinct if c not in _NUMERIC]
    if unknown:
        raise DataError(f"load_runs: min_distinct names unknown column(s) {unknown}; "
                        f"use canonical numeric columns: {', '.join(_NUMERIC)}")
    if duplicates not in ("error", "drop"):
        raise DataError(f"load_runs: duplicates must be 'error' or 'drop', not {duplicates!r}")



def _drop_highest(work: pd.DataFrame, k: int, name: str) -> pd.DataFrame:
    loss = work["loss"].to_numpy(dtype=np.float64)
    if k >= len(loss):
        raise DataError(f"{name}: drop_highest_loss={k} would drop all {len(loss)} runs")
    threshold = np.sort(loss)[-k]
    return work.loc[loss < threshold]


def _nonembedding_problems(frame: pd.DataFrame, source: str) -> list[int]:
    """Positions whose non-embedding count is unusable; DataError if the column is absent."""
    if "n_params_nonembedding" not in frame.columns:
        raise DataError(f"{source}: param_count='nonembedding' needs an n_params_nonembedding "
                        f"column; found columns: {', '.join(map(str, frame.columns))}")
    x = frame["n_params_nonembedding"].to_numpy(dtype=np.float64)
    return [int(i) for i in np.flatnonzero(~(np.isfinite(x) & (x > 0)))]


def _check_nonembedding(frame: pd.DataFrame, name: str, labels: list[str]) -> None:
    bad = _nonembedding_problems(frame, name)
    if bad:
        problems = {int(frame.index[i]): ["n_params_nonembedding is NaN (needed for "
                                          "param_count='nonembedding')"] for i in bad}
        raise DataError(_bad_rows_message(name, problems, labels))


def _check_distinct(runs: RunTable, min_distinct: Sequence[str]) -> None:
    short = []
    for col in min_distinct:
        k = runs.frame[col].nunique(dropna=True) if col in runs.frame.columns else 0
        if k < 3:
            short.append(f"{k} distinct {col} value{'s' if k != 1 else ''}")
    if short:
        raise DataError(f"{runs.source}: only {' and '.join(short)} (need at least 3 each): "
                        "the exponents cannot be identified")
