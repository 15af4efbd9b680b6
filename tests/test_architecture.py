"""ARCHITECTURE.md holds: every import (inside functions too) flows down the layer table, there
is no import cycle, lazy imports say why, and the query path never loads PyMC."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "bayes_scaling"
ARCH = (ROOT / "ARCHITECTURE.md").read_text()
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
PYMC_TOPS = {"pymc", "pytensor", "jax", "numpyro", "nutpie"}
#: The only modules that may import PyMC and its backends (see ARCHITECTURE.md).
PYMC_MODULES = {"model.build", "model.build_curves", "model.device", "model.sampling"}


@dataclass(frozen=True)
class Row:
    layer: int
    modules: frozenset[str]
    third_party: frozenset[str]


def _rows() -> dict[str, Row]:
    """The layer table of ARCHITECTURE.md: module name (``query.predict``) -> its row."""
    rows: dict[str, Row] = {}
    for line in ARCH.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].isdigit():
            continue
        layer, package, modules, _job, allowed = cells
        package = package.strip("`")
        prefix = "" if package in ("base", "testing") else package + "."
        names = frozenset(prefix + m for m in re.findall(r"`([a-z_][a-z_.]*)`", modules))
        third = frozenset(a.strip() for a in allowed.split(",") if a.strip() not in ("", "–"))
        for name in names:
            rows[name] = Row(int(layer), names, third)
    return rows


ROWS = _rows()


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE_DIR).with_suffix("").parts)


MODULES = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")
           if p.stem not in ("__init__", "__main__")}


@dataclass(frozen=True)
class Import:
    target: str  # "query.predict" for the package, else the top-level distribution name
    internal: bool
    lazy: bool  # inside a function (or a class body)
    line: int
    source: str


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    top_level = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` and try/except blocks at top level count as top
        if isinstance(node, ast.If | ast.Try | ast.With):
            top_level |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module + "." + a.name for a in node.names]
        else:
            continue
        for full in names:
            top = full.split(".")[0]
            if top in STDLIB:
                continue
            internal = top == "bayes_scaling"
            target = top
            if internal:
                parts = full.split(".")[1:]
                # the longest prefix that is a module (``from bayes_scaling.query import curves``)
                target = next((".".join(parts[:k]) for k in range(len(parts), 0, -1)
                               if ".".join(parts[:k]) in MODULES), ".".join(parts))
            found.append(Import(target, internal, id(node) not in top_level, node.lineno,
                                lines[node.lineno - 1]))
    return found


def test_every_module_has_a_row():
    missing = sorted(set(MODULES) - set(ROWS))
    assert not missing, f"add to the table of ARCHITECTURE.md: {missing}"
    stale = sorted(set(ROWS) - set(MODULES))
    assert not stale, f"ARCHITECTURE.md names modules that do not exist: {stale}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_down_the_table(module):
    row = ROWS[module]
    bad = []
    for imp in imports_of(module):
        if imp.internal:
            if imp.target not in MODULES:
                bad.append(f"line {imp.line}: {imp.target} is not a module")
                continue
            other = ROWS[imp.target]
            same_package = other.modules == row.modules
            if not (other.layer < row.layer or same_package or other.layer == 0):
                bad.append(f"line {imp.line}: imports {imp.target} (layer {other.layer} "
                           f">= {row.layer})")
        elif imp.target not in row.third_party:
            bad.append(f"line {imp.line}: imports {imp.target}, not in its row")
        if imp.target in PYMC_TOPS and module not in PYMC_MODULES:
            bad.append(f"line {imp.line}: only {sorted(PYMC_MODULES)} import {imp.target}")
    assert not bad, f"{module}: " + "; ".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("cli.")))
def test_lazy_imports_say_why(module):
    unexplained = [f"line {i.line}: {i.source.strip()}" for i in imports_of(module)
                   if i.lazy and "# lazy:" not in i.source]
    assert not unexplained, f"{module}: function-level imports need '# lazy: <reason>': " + \
        "; ".join(unexplained)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_planted_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]


def test_there_is_no_import_cycle():
    graph = {m: {i.target for i in imports_of(m) if i.internal and i.target in MODULES}
             for m in MODULES}
    assert find_cycles(graph) == [], "import cycles (inside functions too)"


def test_no_module_is_over_500_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 520}
    assert not long, f"split by job (STYLE: small modules): {long}"


def test_only_the_package_init_declares_a_public_face():
    facades = [m for m, p in MODULES.items() if re.search(r"^__all__\s*=", p.read_text(), re.M)]
    assert not facades, f"no re-export facades: {facades}"
    noqa = [m for m, p in MODULES.items() if "noqa: F401" in p.read_text()]
    assert not noqa, f"re-exports hidden from ruff: {noqa}"


QUERY_PATH = ["query.predict", "query.allocate", "query.summarize", "query.curves",
              "fitting.result", "fitting.fit", "fitting.dynamics", "fitting.calibrate",
              "evaluate.backtest", "evaluate.compare", "evaluate.checks", "evaluate.nextrun",
              "plots.fits", "plots.compare", "plots.dynamics", "report.render", "report.assemble",
              "cli.app", "cli.queries"]


def test_the_query_path_does_not_load_pymc():
    code = ("import sys; " + "; ".join(f"import bayes_scaling.{m}" for m in QUERY_PATH)
            + "; bad = sorted(m for m in ('pymc', 'pytensor', 'jax', 'numpyro', 'nutpie') "
              "if m in sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


#: Libraries that cost seconds to import and that a query on a saved fit never needs.
HEAVY = ("pymc", "pytensor", "jax", "numpyro", "nutpie", "arviz", "matplotlib", "scipy", "numba")


def test_a_query_on_a_saved_fit_imports_nothing_heavy():
    """``bayes-scaling predict FIT`` end to end loads numpy, pandas, xarray and h5netcdf only.

    Issue 18: a cold query must start in well under a second; ArviZ alone (scipy.stats,
    matplotlib, numba) cost most of a 3-second cold ``predict``.
    """
    fixture = ROOT / "tests" / "fixtures" / "fit_v0.1.nc"
    # Dask is an optional extra; when installed, xarray's CF decoding imports it, and dask.array
    # imports scipy.sparse. Block it here, as on a plain install.
    code = ("import sys, io, contextlib\n"
            "sys.modules['dask'] = None\n"
            "from bayes_scaling.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    code = main(['predict', {str(fixture)!r}, '--n-params', '7e10', "
            "'--n-tokens', '1.4e12', '--group', 'web', '--json'])\n"
            "assert code == 0, code\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
