"""The report package's one number formatter: a value as people read it.

:func:`human` writes a size (``7e10 -> "70 B"``); :func:`fmt` writes a number of the risk report
by its kind (``prob``, ``loss``, ``tokens``, ``flops``, ...) and is the only place a number of
``report.json`` becomes text (the demo's summary uses the same two). Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

_SUFFIXES = ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " k"))


def human(x: float | None, digits: int = 3) -> str:
    """A size for people: ``1.4e12 -> "1.4 T"``, ``7e10 -> "70 B"``, ``9.3e5 -> "930 k"``.

    Parameters
    ----------
    x : float or None
        The value; ``None`` and NaN show as ``n/a``, infinities as ``∞`` / ``-∞``.
    digits : int, default 3
        Significant digits.

    Returns
    -------
    str
        ``digits`` significant digits with a T/B/M/k suffix between 1e3 and 1e15, scientific
        notation (``1.23e15``, ``4.56e-04``) beyond, plain otherwise.
    """
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    ax = abs(x)
    if ax >= 1e15 or 0 < ax < 1e-3:
        return f"{x:.{max(digits - 1, 1)}e}".replace("e+", "e")
    for scale, suffix in _SUFFIXES:
        if ax >= scale:
            text = f"{x / scale:.{digits}g}"
            if float(text) < 1000:
                return text + suffix
    return f"{x:.{digits}g}"


#: How each kind of report number is written.
FORMATS: dict[str, Callable[[float], str]] = {
    "prob": lambda x: f"{x:.3f}",            # P(target): 3 decimals, the checked precision
    "loss": lambda x: f"{x:.3f}",            # nats/token
    "params": human, "tokens": human, "count": human,
    "flops": lambda x: f"{x:.2g}".replace("e+", "e"),
    "decades": lambda x: f"{x:+.2f}",
    "pct": lambda x: f"{100 * x:.0f}%",      # a fraction shown as a percentage
    "pcterr": lambda x: f"{x:.2f}%",         # already in percent
    "int": lambda x: f"{round(x):d}",
    "ratio": lambda x: f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}",
    "rhat": lambda x: f"{x:.3f}",
    "elpd": lambda x: f"{x:.1f}",
    "weight": lambda x: f"{x:.3f}",
    "const": lambda x: f"{x:.4g}".replace("e+", "e"),
    "seconds": lambda x: f"{x:.1f}",
    "small": lambda x: f"{x:.4f}",
}


def fmt(value: Any, kind: str) -> str:
    """A report number as text: ``value`` as stored in ``report.json``, written as ``kind``.

    Parameters
    ----------
    value : float, int, bool, str or None
        The stored value; ``None`` shows as ``n/a``, the strings ``"inf"``/``"-inf"`` as
        ``∞``/``-∞``, a bool as ``yes``/``no``.
    kind : str
        One of :data:`FORMATS` (``prob``, ``loss``, ``tokens``, ``flops``, ...).

    Returns
    -------
    str
        The text shown on the page and in the Markdown.
    """
    if kind not in FORMATS:
        raise ValueError(f"unknown number kind {kind!r}")
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return {"inf": "∞", "-inf": "-∞"}.get(value, "n/a")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return FORMATS[kind](float(value))
