"""The risk report's sections, in the order of the document.

Adding a section: write ``bayes_scaling/report/sections/<name>.py`` with its ``numbers`` and
``blocks`` and a ``SECTION``, and add it here. Nothing else changes: :func:`build_risk
<bayes_scaling.report.assemble.build_risk>` fills ``report.json`` from every section's numbers,
:func:`bayes_scaling.report.document.document` lays out every section's blocks, and
``tests/test_report.py`` checks that every entry of ``report.json`` belongs to a section whose
blocks render in HTML and in Markdown.
"""

from __future__ import annotations

from bayes_scaling.report.context import Section
from bayes_scaling.report.sections import (
    alternative,
    comparison,
    convergence,
    dynamics,
    extrapolation,
    header,
    next_run,
    patterns,
    priors,
    provenance,
    recipe,
    tokens,
    trust,
    verdict,
)

#: Every section, top of the page first.
SECTIONS: tuple[Section, ...] = (
    header.SECTION,
    verdict.SECTION,
    tokens.SECTION,
    alternative.SECTION,
    recipe.SECTION,
    extrapolation.SECTION,
    trust.SECTION,
    convergence.SECTION,
    priors.SECTION,
    comparison.SECTION,
    dynamics.SECTION,
    patterns.SECTION,
    next_run.SECTION,
    provenance.SECTION,
)
