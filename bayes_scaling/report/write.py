"""The risk report's files: ``report.html``, ``report.md``, ``report.json`` and the figures.

:func:`make_report` reads a proposal, builds its numbers (:mod:`bayes_scaling.report.assemble`)
and writes them; :func:`write_report` writes a report dict: the page
(:func:`~bayes_scaling.report.render.render_html`, figures inline), the Markdown (figures
beside it in ``figures/``) and the dict itself, each atomically
(:mod:`bayes_scaling.files`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bayes_scaling.files import atomic_write_bytes, atomic_write_text
from bayes_scaling.report.assemble import build_risk
from bayes_scaling.report.common import source_digest
from bayes_scaling.report.document import document
from bayes_scaling.report.proposal import load_proposal
from bayes_scaling.report.render import render_html, render_markdown
from bayes_scaling.types import ProgressFn

#: Files written by :func:`write_report` (plus ``figures/*.png``).
REPORT_FILES = ("report.html", "report.md", "report.json")


def write_report(risk: Mapping[str, Any], out_dir: str | os.PathLike[str], *,
                 kept: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``report.html``, ``report.md``, ``report.json`` and ``figures/*.png`` atomically.

    Parameters
    ----------
    risk : Mapping
        The report dict of :func:`~bayes_scaling.report.assemble.build_risk`.
    out_dir : path
        Folder to write into (created if missing).
    kept : path, optional
        Folder where the figures' PNGs are kept between builds (:func:`figures_of`).

    Returns
    -------
    list of Path
        The written paths, the three reports first.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    blocks = document(risk)
    pngs, files, written = figures_of(risk, None if kept is None else Path(kept)), {}, []
    for key, png in pngs.items():
        written.append(atomic_write_bytes(out / "figures" / f"{key}.png", png))
        files[key] = f"figures/{key}.png"
    reports = [
        atomic_write_text(out / "report.html", render_html(risk, blocks, pngs)),
        atomic_write_text(out / "report.md", render_markdown(risk, blocks, files)),
        atomic_write_text(out / "report.json", json.dumps(risk, indent=1, sort_keys=False,
                                                           allow_nan=False) + "\n"),
    ]
    return reports + written


def figures_of(risk: Mapping[str, Any], kept: Path | None = None) -> dict[str, bytes]:
    """The report's figures as PNG bytes, reused from ``kept`` when drawn from the same numbers.

    The figures are drawn from the report dict alone
    (:func:`~bayes_scaling.report.figures.figure_pngs`), so the PNGs of an earlier build are
    reused when every entry but the build date is the same and the code is too; drawing them
    takes a second or two of a rebuild's few seconds.
    """
    if kept is None:
        from bayes_scaling.report.figures import figure_pngs  # lazy: loads matplotlib

        return figure_pngs(risk)
    same = {k: v for k, v in risk.items() if k != "provenance"}
    same["provenance"] = {k: v for k, v in risk.get("provenance", {}).items() if k != "date"}
    key = json.dumps({"risk": same, "code": source_digest()}, sort_keys=True)
    path = kept / f"figures-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    try:
        saved = json.loads(path.read_text())
        return {k: base64.b64decode(v, validate=True) for k, v in saved.items()}
    except (OSError, ValueError, AttributeError, binascii.Error):
        pass  # none yet, or unreadable: draw them and keep them
    from bayes_scaling.report.figures import figure_pngs  # lazy: loads matplotlib

    pngs = figure_pngs(risk)
    kept.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({k: base64.b64encode(v).decode() for k, v in
                                        pngs.items()}))
    return pngs


def make_report(proposal_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                random_seed: int | None = None,
                on_progress: ProgressFn | None = None) -> list[Path]:
    """Read a proposal, build its risk numbers and write the report to ``out_dir``.

    Parameters
    ----------
    proposal_path : path
        The proposal TOML.
    out_dir : path
        Folder of the report; saved fits go to ``<out_dir>/fits`` and are reused when their
        spec and data hashes match.
    random_seed : int, optional
        Overrides the proposal's seed.
    on_progress : callable, optional
        Called with one line per step.

    Returns
    -------
    list of Path
        The written paths, the three reports first.
    """
    proposal = load_proposal(proposal_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    risk = build_risk(proposal, random_seed=random_seed, on_progress=on_progress,
                      cache_dir=out / "fits")
    written = write_report(risk, out, kept=out / "fits")
    if on_progress:
        on_progress(f"report written to {out / 'report.html'}")
    return written
