"""The base both table kinds share: a canonical frame with ``run_id`` and ``group`` columns.

:class:`FrameTable` holds what :class:`~bayes_scaling.data.runs.RunTable` and
:class:`~bayes_scaling.data.curves.CurveTable` have in common: shape checks, row selection, the
netCDF-safe column arrays, the content hash and the group and run levels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.errors import DataError


def first_seen(column: pd.Series) -> tuple[tuple[str, ...], np.ndarray]:
    """Distinct values of ``column`` in order of first appearance, and each row's position."""
    codes, uniques = pd.factorize(column, sort=False)
    return tuple(str(u) for u in uniques), np.asarray(codes, dtype=np.int64)


class FrameTable:
    """What the runs table and the curve table share.

    A canonical ``frame`` with ``run_id`` and ``group`` columns (index ``0 .. n-1``) and a
    ``source`` to name in errors.
    """

    frame: pd.DataFrame
    source: str

    def _check_frame(self, kind: str, required: Sequence[str], known: Sequence[str],
                     loader: str) -> None:
        cols = list(self.frame.columns)
        missing = [c for c in required if c not in cols]
        unknown = [c for c in cols if c not in known]
        if missing or unknown:
            raise DataError(f"{self.source}: not a canonical {kind} frame (missing {missing}, "
                            f"unknown {unknown}); build it with {loader}")
        if not self.frame.index.equals(pd.RangeIndex(len(self.frame))):
            raise DataError(f"{self.source}: a {kind} frame must have the index 0..n-1")

    def _floats(self, column: str) -> np.ndarray:
        return self.frame[column].to_numpy(dtype=np.float64, copy=True)

    def _selected(self, mask_or_index: Any, noun: str) -> pd.DataFrame:
        """The rows a boolean mask or integer positions select, re-indexed ``0 .. k-1``.

        Raises DataError naming ``noun`` (runs, points) for a wrong mask, no rows or a bad
        position.
        """
        n = len(self.frame)
        sel = np.asarray(mask_or_index)
        if sel.dtype == bool:
            if sel.shape != (n,):
                raise DataError(f"{self.source}: mask of shape {sel.shape} for {n} {noun}")
            sel = np.flatnonzero(sel)
        elif sel.size and not np.issubdtype(sel.dtype, np.integer):
            raise DataError(f"{self.source}: subset takes a boolean mask or integer positions, "
                            f"not {sel.dtype}")
        sel = sel.astype(np.int64).ravel()
        if sel.size == 0:
            raise DataError(f"{self.source}: subset selects no {noun}")
        if sel.min() < -n or sel.max() >= n:
            raise DataError(f"{self.source}: subset position out of range for {n} {noun}")
        return self.frame.iloc[sel].reset_index(drop=True)

    def _column_array(self, column: str, strings: Sequence[str]) -> np.ndarray:
        """A column as a netCDF-safe array: ``str`` for the text columns, float64 otherwise."""
        if column in strings:
            return np.array([str(v) for v in self.frame[column]], dtype=str)
        return self._floats(column)

    def _digest(self, head: bytes, columns: Sequence[str], strings: Sequence[str]) -> str:
        """The content hash of both table kinds.

        Sha256 of ``head`` then each column: text as JSON, numbers as little-endian float64
        (every NaN with one bit pattern).
        """
        digest = hashlib.sha256(head)
        for col in columns:
            if col in strings:
                values = [str(v) for v in self.frame[col]]
                digest.update(json.dumps(values, ensure_ascii=False).encode("utf-8"))
            else:
                x = self._floats(col)
                x[np.isnan(x)] = np.nan
                digest.update(x.astype("<f8").tobytes())
        return digest.hexdigest()

    def _levels(self, column: str) -> tuple[tuple[str, ...], np.ndarray]:
        """:func:`first_seen` of ``column``: its distinct values and each row's position."""
        return first_seen(self.frame[column])

    @property
    def group_names(self) -> tuple[str, ...]:
        """Distinct groups (data distributions), in order of first appearance."""
        return self._levels("group")[0]

    @property
    def group_index(self) -> np.ndarray:
        """Position of each row's group in :attr:`group_names` (int64)."""
        return self._levels("group")[1]

    @property
    def run_ids(self) -> tuple[str, ...]:
        """The run each row belongs to."""
        return tuple(str(r) for r in self.frame["run_id"])

    @property
    def n_groups(self) -> int:
        """Number of distinct groups."""
        return len(self.group_names)
