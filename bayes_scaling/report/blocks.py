"""The vocabulary of the risk report's document: blocks whose numbers point into ``report.json``.

A section's block function (``bayes_scaling.report.sections.*.blocks``) returns a list of
:class:`Block` (headings, paragraphs, boxes, lists, tables, figure slots) whose numbers are
:class:`Num` references (a path into the report dict and a format kind), not text;
:mod:`bayes_scaling.report.render` renders one list as HTML and as Markdown. Standard library
only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: The P(target) a plan needs to be called likely (and the alternative's goal).
LIKELY, UNLIKELY = 0.9, 0.5

BlockKind = Literal["h1", "h2", "h3", "p", "box", "list", "table", "figure"]


@dataclass(frozen=True)
class Num:
    """A number of the report: its path in ``report.json`` and its format kind."""

    path: tuple[str | int, ...]
    kind: str


Part = str | Num
Parts = Sequence[Part]


@dataclass(frozen=True)
class Block:
    """One block of the document: ``h1``/``h2``/``h3`` (``text``), ``p``/``box`` (``parts``),
    ``list`` (``items``), ``table`` (``header``, ``rows``) or ``figure`` (``text`` = key)."""

    kind: BlockKind
    text: str = ""
    parts: Parts = ()
    items: Sequence[Parts] = ()
    header: Sequence[str] = ()
    rows: Sequence[Sequence[Parts]] = ()
    css: str = ""
    caption: str = ""


def lookup(risk: Mapping[str, Any], path: Sequence[str | int]) -> Any:
    """The value at ``path`` in the report dict.

    Parameters
    ----------
    risk : Mapping
        The report dict (``report.json``).
    path : sequence of str or int
        Keys and list indices, outermost first.

    Returns
    -------
    Any
        The value stored there.
    """
    node: Any = risk
    for key in path:
        node = node[key]
    return node


def interval_parts(base: Sequence[str | int], p: int, kind: str) -> list[Part]:
    """``lo – hi`` of the ``p``% interval stored at ``base`` (keys ``lo_p``/``hi_p``)."""
    return [Num((*base, f"lo_{p}"), kind), " – ", Num((*base, f"hi_{p}"), kind)]


def h2(text: str) -> Block:
    """A section heading."""
    return Block("h2", text=text)


def para(*parts: Part, css: str = "") -> Block:
    """A paragraph of text and numbers."""
    return Block("p", parts=parts, css=css)


def table(header: Sequence[str], rows: Sequence[Sequence[Parts]]) -> Block:
    """A table: a header row and rows of cells, each cell a list of parts."""
    return Block("table", header=header, rows=rows)


def not_included(risk: Mapping[str, Any], key: str, title: str,
                 ) -> tuple[dict[str, Any], list[Block], bool]:
    """An optional section's entry, its heading and whether it was included (if not, the
    heading is followed by the reason)."""
    sec = risk.get(key) or {}
    out = [h2(title)]
    if not sec.get("included"):
        out.append(para(f"Not included: {sec.get('reason', 'not run')}."))
    return sec, out, bool(sec.get("included"))


def headline_path(risk: Mapping[str, Any]) -> tuple[str, ...]:
    """Path of the headline verdict: the model average when there is one, else family one."""
    if risk["headline"] == "average":
        return ("verdict", "average")
    return ("verdict", "families", risk["headline"])


def primary_family(risk: Mapping[str, Any]) -> str:
    """The family the figures draw bands for: the largest stacking weight, else the first."""
    w = risk.get("weights") or {}
    return max(w, key=w.get) if w else risk["families"][0]
