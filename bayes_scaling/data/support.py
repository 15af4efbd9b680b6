"""How far a query lies outside the runs a law was fitted on, in decades (numpy only).

The distance used everywhere (warnings, the calibration discrepancy, reports) is the Euclidean
norm of the decades outside the training range in log10 N and log10 D; the decades past the
largest training compute are reported beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: A query this many decades past the largest training compute gets a loud warning.
FAR_DECADES_C = 2.0
#: Distance (decades) over which the calibration's out-of-ladder jump ``tau0`` ramps in.
DISCREPANCY_RAMP_DECADES = 0.05


@dataclass(frozen=True)
class Box:
    """The training range in log10 of N, D and C."""

    n: tuple[float, float]
    d: tuple[float, float]
    c: tuple[float, float]

    @classmethod
    def of(cls, n: np.ndarray, d: np.ndarray) -> Box:
        """The box spanned by runs with sizes ``n`` and tokens ``d``."""
        ln, ld = np.log10(n), np.log10(d)
        lc = np.log10(6.0) + ln + ld
        return cls((float(ln.min()), float(ln.max())), (float(ld.min()), float(ld.max())),
                   (float(lc.min()), float(lc.max())))

    @classmethod
    def from_dict(cls, raw: Mapping[str, list[float]]) -> Box:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(raw["n"]), tuple(raw["d"]), tuple(raw["c"]))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, list[float]]:
        """JSON form."""
        return {"n": list(self.n), "d": list(self.d), "c": list(self.c)}


def _outside(x: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    lo, hi = lo_hi
    return np.maximum(x - hi, 0.0) + np.maximum(lo - x, 0.0)


def decades_outside(box: Box, n, d) -> dict[str, np.ndarray]:
    """Decades outside the box per point: ``n``, ``d``, ``c`` (past the largest C) and ``distance``.

    ``distance`` combines N and D: ``sqrt(dn**2 + dd**2)``. ``c_past_max`` is signed: how many
    decades the point's compute lies above (>0) or below (<0) the largest training compute.
    """
    ln = np.log10(np.asarray(n, dtype=float))
    ld = np.log10(np.asarray(d, dtype=float))
    dn, dd = _outside(ln, box.n), _outside(ld, box.d)
    lc = np.log10(6.0) + ln + ld
    return {"n": dn, "d": dd, "c": _outside(lc, box.c), "c_past_max": lc - box.c[1],
            "distance": np.hypot(dn, dd)}


def levels(values: np.ndarray, rel_tol: float = 0.02) -> np.ndarray:
    """Distinct levels of ``values`` (sorted), merging values within ``rel_tol`` of each other.

    Digitised ladders (e.g. Epoch's Chinchilla extraction) give one model size as several floats
    differing in the 7th digit; backtests hold out *sizes*, not floats. Returns, per value, the
    index of its level (0 = smallest).
    """
    v = np.asarray(values, dtype=float)
    order = np.argsort(v)
    lv = np.log(v[order])
    new = np.concatenate([[True], np.diff(lv) > np.log1p(rel_tol)])
    idx_sorted = np.cumsum(new) - 1
    out = np.empty(v.size, dtype=int)
    out[order] = idx_sorted
    return out
