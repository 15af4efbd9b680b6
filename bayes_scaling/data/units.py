"""FLOP units of a runs table, and the check that its FLOP column agrees with 6·N·D.

Trackers log compute in FLOP, GFLOP (``total_gflops``) or petaFLOP/s-days (Kaplan et al. 2020
report PF-days: 1 PF-day = 1e15 × 86,400 FLOP). :func:`flops_scale` converts a unit's name to
FLOP; :func:`check_flops` compares a given FLOP column with C = 6·N·D (Kaplan et al. 2020,
section 2.1; Hoffmann et al. 2022) and says out loud when they disagree by more than
:data:`FLOPS_RTOL`: a warning naming the ratio (a 2·N·D convention gives 1/3) or, when the
ratio is off by more than :data:`UNIT_MISMATCH` (a unit, not a convention), an error naming the
unit that would fit.
"""

from __future__ import annotations

import re
from typing import Literal, NoReturn

import numpy as np

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN, FLOPS_UNITS
from bayes_scaling.errors import DataError

#: A FLOP column's unit (case and plural ``s`` are ignored; ``pf_days`` means PF-days).
FlopsUnit = Literal["FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP", "EFLOP", "ZFLOP",
                    "PF-days"]
#: Relative tolerance of the 6·N·D check: a run whose flops / (6·N·D) lies outside
#: [1 - FLOPS_RTOL, 1 + FLOPS_RTOL] disagrees.
FLOPS_RTOL = 0.1
#: A median ratio beyond this factor either way is a unit mix-up, refused as an error.
UNIT_MISMATCH = 30.0
#: Other counting conventions, as flops / (6·N·D).
_CONVENTIONS = {2 / 6: "a 2·N·D (forward-pass) convention", 8 / 6: "an 8·N·D convention "
                "(activations recomputed)", 3 / 6: "a 3·N·D convention"}


def _key(unit: str) -> str:
    text = re.sub(r"[\s_\-/]+", "", unit.strip().lower())
    for word, prefix in (("kilo", "k"), ("mega", "m"), ("giga", "g"), ("tera", "t"),
                         ("peta", "p"), ("exa", "e"), ("zetta", "z")):
        text = text.replace(word, prefix)
    text = text.replace("pfs", "pf")
    return text[:-1] if text.endswith("s") and not text.endswith("days") else text


_BY_KEY = {_key(u): u for u in FLOPS_UNITS} | {"pfday": "PF-days", "pfdays": "PF-days",
                                                "pflopday": "PF-days", "pflopdays": "PF-days"}


def flops_unit_name(unit: str, where: str) -> str:
    """The canonical spelling of a FLOP unit (``gflops`` -> ``GFLOP``); DataError if unknown."""
    found = _BY_KEY.get(_key(unit)) if isinstance(unit, str) else None
    if found is None:
        raise DataError(f"{where}: unknown FLOP unit {unit!r}; use one of "
                        f"{', '.join(FLOPS_UNITS)}")
    return found


def flops_scale(unit: str, where: str) -> float:
    """FLOP per ``unit`` (e.g. 1e9 for ``GFLOP``); DataError naming ``where`` if unknown."""
    return FLOPS_UNITS[flops_unit_name(unit, where)]


def check_flops(n: np.ndarray, d: np.ndarray, c: np.ndarray, *, name: str, column: str,
                unit: str = "FLOP") -> str | None:
    """Compare a given FLOP column (already in FLOP) with 6·N·D, run by run.

    Parameters
    ----------
    n, d, c : numpy.ndarray
        Parameters, tokens and FLOPs of each run (positive, finite).
    name, column, unit : str
        The source, its FLOP column and the unit it was read in (for the messages).

    Returns
    -------
    str or None
        ``None`` when every run agrees within :data:`FLOPS_RTOL`; else a one-line warning
        naming the number of disagreeing runs, the median and range of flops / (6·N·D), and
        the convention the ratio matches, if any.

    Raises
    ------
    DataError
        When the median ratio is off by more than :data:`UNIT_MISMATCH`: a unit, not a
        convention; the message names the unit that would fit.
    """
    ratio = np.asarray(c, float) / (FLOPS_PER_PARAM_TOKEN * np.asarray(n, float)
                                    * np.asarray(d, float))
    off = np.abs(ratio - 1.0) > FLOPS_RTOL
    if ratio.size == 0 or not off.any():
        return None
    med = float(np.median(ratio))
    if not 1 / UNIT_MISMATCH < med < UNIT_MISMATCH:
        _unit_error(med, name=name, column=column, unit=unit, k=ratio.size)
    known = [label for r, label in _CONVENTIONS.items() if abs(med / r - 1) <= FLOPS_RTOL]
    why = f": {known[0]}?" if known else ""
    return (f"{name}: flops column {column!r} disagrees with 6·N·D by more than "
            f"±{FLOPS_RTOL:.0%} on {int(off.sum())} of {ratio.size} runs (flops / (6·N·D): "
            f"median {med:.3g}, range {ratio.min():.3g}–{ratio.max():.3g}){why}; the column "
            "is used as given for compute (budgets, holdout by flops); leave it out of the "
            "mapping to use 6·N·D")


def _unit_error(med: float, *, name: str, column: str, unit: str, k: int) -> NoReturn:
    scale = FLOPS_UNITS.get(unit, 1.0) / med  # FLOP per stored unit that would make C = 6 N D
    fits = [u for u, s in FLOPS_UNITS.items() if abs(np.log10(s / scale)) < np.log10(3.0)]
    hint = (f"pass --flops-unit {fits[0]} (flops_unit= in Python)" if fits and fits[0] != unit
            else "check its unit")
    raise DataError(f"{name}: flops column {column!r} read in {unit} is {med:.3g} × 6·N·D "
                    f"(median over {k} runs): a unit mix-up, not a convention; {hint}, or "
                    "leave the column out to use 6·N·D")
