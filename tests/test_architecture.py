"""The module map of ARCHITECTURE.md holds: imports flow one way; queries never import PyMC."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "bayes_scaling"
ARCH = (PACKAGE_DIR.parent / "ARCHITECTURE.md").read_text()

SCI = {"numpy", "scipy", "pandas", "xarray"}
#: module -> what its module-level imports may name (third-party tops and package modules).
ALLOWED: dict[str, set[str]] = {
    "errors": set(), "constants": set(),
    "laws": {"numpy"},
    "extrapolation": {"numpy"},
    "readers": {"numpy", "pandas", "errors", "constants"},
    "data": SCI | {"errors", "constants", "readers"},
    "datasets": SCI | {"errors", "data"},
    "spec": {"errors", "laws"},
    "model": {"numpy", "pymc", "pytensor", "constants", "laws", "spec", "data"},
    "inference": {"numpy", "pymc", "arviz", "constants", "errors"},
    "diagnostics": {"numpy", "arviz", "constants", "errors"},
    "baseline": {"numpy", "scipy", "errors", "laws", "constants"},
    "fit": SCI | {"arviz", "data", "diagnostics", "errors", "laws", "spec"},
    "calibrate": SCI | {"baseline", "constants", "data", "errors", "extrapolation", "fit",
                        "laws"},
    "summarize": SCI | {"constants", "errors"},
    "predict": SCI | {"constants", "errors", "extrapolation", "fit", "laws", "summarize"},
    "allocate": SCI | {"constants", "errors", "fit", "laws", "predict", "summarize"},
    "parallel": {"errors"},
    "backtest": SCI | {"constants", "data", "errors", "extrapolation", "fit", "predict",
                       "summarize", "parallel"},
    "testing": SCI | {"arviz", "constants", "data", "diagnostics", "fit", "laws", "spec"},
    "report": SCI | {"allocate", "constants", "fit", "predict"},
    "plots": SCI | {"matplotlib", "allocate", "fit", "predict", "summarize"},
    "cli_queries": {"click", "constants", "errors"},
    "cli": {"click", "cli_queries", "errors"},
    "compare": SCI | {"arviz", "allocate", "backtest", "constants", "data", "errors", "fit",
                      "predict", "spec", "summarize"},
    "plots_compare": SCI | {"matplotlib", "allocate", "compare", "fit", "predict", "summarize"},
    "proposal": {"constants", "errors"},
    "risk_sections": {"numpy", "backtest", "constants", "data", "errors", "extrapolation", "fit",
                      "predict", "proposal", "spec"},
    "risk": SCI | {"backtest", "constants", "data", "errors", "fit", "proposal", "risk_sections",
                   "spec", "summarize"},
    "report_sections": set(),
    "report_html": SCI | {"report", "report_sections"},
    "report_figures": SCI | {"report_html"},
    "curves": SCI | {"data", "errors", "readers"},
    "dynamics_law": {"numpy", "pandas", "curves", "laws", "spec"},
    "dynamics": SCI | {"constants", "curves", "dynamics_law", "errors", "predict", "spec",
                       "summarize"},
    "plots_dynamics": SCI | {"matplotlib", "curves", "dynamics", "fit", "summarize"},
    "patterns": SCI | {"baseline", "data", "errors", "extrapolation", "laws", "summarize"},
    "diagnose": SCI | {"constants", "data", "errors", "extrapolation", "fit", "laws", "patterns",
                       "predict", "spec"},
    "nextrun": SCI | {"constants", "errors", "extrapolation", "fit", "laws", "predict",
                      "summarize"},
}
NO_PYMC = ["predict", "allocate", "summarize", "fit", "report", "plots", "backtest", "calibrate",
           "compare", "plots_compare", "risk", "risk_sections", "report_html", "report_figures",
           "report_sections", "curves", "dynamics_law", "dynamics", "plots_dynamics", "patterns",
           "diagnose", "nextrun", "cli_queries"]


def imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text())
    found = set()
    for node in tree.body:  # module level only: lazy imports inside functions are allowed
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks
            continue
        else:
            continue
        for n in names:
            top = n.split(".")[0]
            found.add(n.split(".")[1] if top == "bayes_scaling" and "." in n else top)
    return found - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_follow_the_table(module):
    assert imported(module) - ALLOWED[module] == set()


def test_every_module_is_in_the_architecture_page():
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    missing = sorted(m for m in modules if f"`{m}`" not in ARCH)
    assert not missing, f"add to ARCHITECTURE.md: {missing}"


def test_only_model_and_inference_import_pymc_at_module_level():
    for path in PACKAGE_DIR.glob("*.py"):
        if path.stem in ("model", "inference"):
            continue
        assert "pymc" not in imported(path.stem) and "pytensor" not in imported(path.stem), path


def test_query_modules_do_not_import_pymc():
    code = ("import sys; " + "; ".join(f"import bayes_scaling.{m}" for m in NO_PYMC)
            + "; bad = [m for m in ('pymc', 'pytensor') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_module_has_an_import_rule():
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules - set(ALLOWED) == set()
