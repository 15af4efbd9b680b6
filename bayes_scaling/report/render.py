"""The risk report of a compute proposal: one self-contained HTML page, Markdown and JSON.

:func:`write_report` turns the dict of :func:`bayes_scaling.report.assemble.build_risk` into
``report.html`` (figures inline as base64 PNG; no scripts, no external fonts, styles or requests,
and a Content-Security-Policy that forbids them), ``report.md`` (figures beside it in
``figures/``) and ``report.json`` (the dict itself). Every number on the page is rendered from
``report.json`` by one function, :func:`fmt`, inside a ``<span class="num" data-k=PATH
data-fmt=KIND>``, so a test can check each shown number against the JSON. Every string that
comes from data or a proposal is escaped with :func:`html.escape`.

The page and the Markdown are two renderings of one list of blocks (:func:`document`,
built in :mod:`bayes_scaling.report.document` and re-exported here).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bayes_scaling.report.demo import atomic_write_text
from bayes_scaling.report.document import (
    Block,
    Num,
    Parts,
    document,
    lookup,
)

#: Files written by :func:`write_report` (plus ``figures/*.png``).
REPORT_FILES = ("report.html", "report.md", "report.json")
FIGURE_DPI = 100


# ------------------------------------------------------------------------------ formatting
_SUFFIXES = ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " k"))


def human(x: float) -> str:
    """``1.4e12 -> "1.4 T"``, ``7e10 -> "70 B"``, ``9.3e5 -> "933 k"``, 3 significant digits."""
    ax = abs(x)
    if ax >= 1e15:
        return f"{x:.2e}".replace("e+", "e")
    for scale, suffix in _SUFFIXES:
        if ax >= scale:
            text = f"{x / scale:.3g}"
            if float(text) < 1000:
                return text + suffix
    return f"{x:.3g}"


_FORMATS: dict[str, Callable[[float], str]] = {
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
    """The one place a report number becomes text: ``value`` as stored in ``report.json``.

    ``kind`` is one of :data:`_FORMATS` (``prob``, ``loss``, ``tokens``, ``flops``, ...);
    ``None`` shows as ``n/a`` and the string ``"inf"`` as ``∞``.
    """
    if kind not in _FORMATS:
        raise ValueError(f"unknown number kind {kind!r}")
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return {"inf": "∞", "-inf": "-∞"}.get(value, "n/a")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _FORMATS[kind](float(value))


# ------------------------------------------------------------------------------ rendering
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;
margin:1.5em auto;padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f3f3f3}td .num{white-space:nowrap}.num{font-variant-numeric:tabular-nums}
.box{font-size:1.15em;padding:.7em 1em;border-radius:6px;border:2px solid}
.box.good{background:#e8f6ea;border-color:#3a8a46}.box.mid{background:#fdf4e0;border-color:#c89000}
.box.bad{background:#fbe9e7;border-color:#b3261e}p.good{color:#2b6b35}p.bad{color:#8c1d18}
ul.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5em 2em}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.88em;color:#555}
p.plan{background:#f6f8fa;padding:.5em .8em}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _html_parts(risk: Mapping[str, Any], parts: Parts) -> str:
    out = []
    for part in parts:
        if isinstance(part, Num):
            text = fmt(lookup(risk, part.path), part.kind)
            out.append(f'<span class="num" data-k="{html.escape(json.dumps(list(part.path)))}" '
                       f'data-fmt="{part.kind}">{html.escape(text)}</span>')
        else:
            out.append(html.escape(str(part)))
    return "".join(out)


def render_html(risk: Mapping[str, Any], blocks: Sequence[Block],
                pngs: Mapping[str, bytes]) -> str:
    """The self-contained page (figures as base64 PNG ``data:`` URIs)."""
    body = []
    for b in blocks:
        cls = f' class="{b.css}"' if b.css else ""
        if b.kind in ("h1", "h2", "h3"):
            anchor = f' id="{html.escape(b.text.lower().replace(" ", "-")[:40])}"' \
                if b.kind == "h2" else ""
            body.append(f"<{b.kind}{anchor}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p{cls}>{_html_parts(risk, b.parts)}</p>")
        elif b.kind == "box":
            body.append(f'<div class="box {b.css}">{_html_parts(risk, b.parts)}</div>')
        elif b.kind == "list":
            items = "".join(f"<li>{_html_parts(risk, it)}</li>" for it in b.items)
            body.append(f"<ul{cls}>{items}</ul>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{_html_parts(risk, c)}</td>" for c in row)
                           + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "figure" and b.text in pngs:
            data = base64.b64encode(pngs[b.text]).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.caption)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{html.escape(b.caption)}</figcaption></figure>")
    title = html.escape(f"Risk report: {risk['title']}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_parts(risk: Mapping[str, Any], parts: Parts) -> str:
    return "".join(fmt(lookup(risk, p.path), p.kind) if isinstance(p, Num) else str(p)
                   for p in parts)


def render_markdown(risk: Mapping[str, Any], blocks: Sequence[Block],
                    figure_files: Mapping[str, str]) -> str:
    """The same document as Markdown (figures linked from ``figures/``)."""
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


# ------------------------------------------------------------------------------ writing
def _atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    from bayes_scaling.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_report(risk: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``report.html``, ``report.md``, ``report.json`` and ``figures/*.png`` atomically.

    Returns the written paths (the three reports first).
    """
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    from bayes_scaling.report.figures import make_figures, png_bytes

    blocks = document(risk)
    figs = make_figures(risk)
    pngs, files, written = {}, {}, []
    for key, fig in figs.items():
        pngs[key] = png_bytes(fig)
        plt.close(fig)
        written.append(_atomic_write_bytes(out / "figures" / f"{key}.png", pngs[key]))
        files[key] = f"figures/{key}.png"
    reports = [
        atomic_write_text(out / "report.html", render_html(risk, blocks, pngs)),
        atomic_write_text(out / "report.md", render_markdown(risk, blocks, files)),
        atomic_write_text(out / "report.json", json.dumps(risk, indent=1, sort_keys=False,
                                                           allow_nan=False) + "\n"),
    ]
    return reports + written


def make_report(proposal_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                random_seed: int | None = None,
                on_progress: Callable[[str], None] | None = None) -> list[Path]:
    """Read a proposal, build its risk numbers (saved fits in ``<out_dir>/fits`` reused when
    their spec and data hashes match) and write the report to ``out_dir``."""
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.report.proposal import load_proposal

    proposal = load_proposal(proposal_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    risk = build_risk(proposal, random_seed=random_seed, on_progress=on_progress,
                      cache_dir=out / "fits")
    written = write_report(risk, out)
    if on_progress:
        on_progress(f"report written to {out / 'report.html'}")
    return written


__all__ = ["Block", "Num", "document", "fmt", "lookup", "make_report", "render_html",
           "render_markdown", "write_report"]
