"""The risk report's blocks as one self-contained HTML page and as Markdown.

:func:`render_html` fills the jinja2 template ``templates/report.html.j2`` (shipped inside the
package, autoescaped: every string from data or a proposal is escaped): figures inline as base64
PNG, no scripts, no external fonts, styles or requests, and a Content-Security-Policy that
forbids them. Every number is rendered from ``report.json`` by
:func:`bayes_scaling.report.formats.fmt` inside a ``<span class="num" data-k=PATH
data-fmt=KIND>``, so a test can check each shown number against the JSON.
:func:`render_markdown` writes the same blocks as Markdown (figures linked from ``figures/``).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from bayes_scaling.report.blocks import Block, Num, Parts, lookup
from bayes_scaling.report.formats import fmt


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("bayes_scaling.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_html(risk: Mapping[str, Any], blocks: Sequence[Block],
                pngs: Mapping[str, bytes]) -> str:
    """The self-contained page.

    Parameters
    ----------
    risk : Mapping
        The report dict (``report.json``); every :class:`~bayes_scaling.report.blocks.Num`
        is looked up in it.
    blocks : sequence of Block
        The document (:func:`bayes_scaling.report.document.document`).
    pngs : Mapping of str to bytes
        PNG bytes per figure key; a figure block without one is left out.

    Returns
    -------
    str
        The HTML page.
    """
    page = _environment().get_template("report.html.j2").render(
        title=risk["title"], blocks=blocks,
        images={k: base64.b64encode(v).decode("ascii") for k, v in pngs.items()},
        is_num=lambda part: isinstance(part, Num),
        num_path=lambda num: json.dumps(list(num.path)),
        num_text=lambda num: fmt(lookup(risk, num.path), num.kind))
    return page.rstrip("\n") + "\n"


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_parts(risk: Mapping[str, Any], parts: Parts) -> str:
    return "".join(fmt(lookup(risk, p.path), p.kind) if isinstance(p, Num) else str(p)
                   for p in parts)


def render_markdown(risk: Mapping[str, Any], blocks: Sequence[Block],
                    figure_files: Mapping[str, str]) -> str:
    """The same document as Markdown.

    Parameters
    ----------
    risk : Mapping
        The report dict (``report.json``).
    blocks : sequence of Block
        The document.
    figure_files : Mapping of str to str
        Relative file of each figure (``figures/<key>.png``); a figure without one is left out.

    Returns
    -------
    str
        The Markdown text.
    """
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(_md_parts(risk, b.parts))
        elif b.kind == "box":
            out.append("> **" + _md_parts(risk, b.parts) + "**")
        elif b.kind == "list":
            out.append("\n".join(f"- {_md_parts(risk, it)}" for it in b.items))
        elif b.kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) or " " for h in b.header) + " |",
                     "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(_md_cell(_md_parts(risk, c)) for c in row) + " |"
                      for row in b.rows]
            out.append("\n".join(lines))
        elif b.kind == "figure" and b.text in figure_files:
            out.append(f"![{b.caption}]({figure_files[b.text]})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"
