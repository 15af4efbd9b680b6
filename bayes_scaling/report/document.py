"""The risk report as one list of blocks: every section's blocks, in the registry's order.

:func:`document` is what the page and the Markdown both render
(:mod:`bayes_scaling.report.render`); the blocks themselves are written by the sections
(:mod:`bayes_scaling.report.sections`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bayes_scaling.report.blocks import Block
from bayes_scaling.report.context import Section
from bayes_scaling.report.registry import SECTIONS


def document(risk: Mapping[str, Any], sections: Sequence[Section] = SECTIONS) -> list[Block]:
    """The report, top to bottom, as blocks shared by the HTML and the Markdown.

    Parameters
    ----------
    risk : Mapping
        The report dict (``report.json``).
    sections : sequence of Section, default :data:`~bayes_scaling.report.registry.SECTIONS`
        The sections, in the order of the page.

    Returns
    -------
    list of Block
        Every section's blocks, concatenated.
    """
    blocks: list[Block] = []
    for section in sections:
        blocks += section.blocks(risk)
    return blocks
