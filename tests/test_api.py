"""Invariants of the public API (``bayes_scaling.__all__``): documented, typed, one convention.

Every public function has a numpydoc docstring whose Parameters section names every parameter
and which has a Returns section; a string that picks a mode is a ``Literal`` type; seeds are
``SeedLike``; probabilities default to ``DEFAULT_PROBS``; progress callbacks are ``ProgressFn``.
"""

from __future__ import annotations

import inspect
import re

import pytest

import bayes_scaling
from bayes_scaling.constants import DEFAULT_PROBS

FUNCTIONS = [n for n in bayes_scaling.__all__ if inspect.isfunction(getattr(bayes_scaling, n))]
#: Parameters that pick a mode by a string, and the annotation each must have.
MODES = {"band": "Band", "on_bad": "OnBad", "method": "Literal[", "holdout_by": "Literal["}


def documented_parameters(doc: str) -> set[str]:
    """Names in the numpydoc ``Parameters`` section (``a, b : type`` documents both)."""
    match = re.search(r"Parameters\n-+\n(.*?)(?:\n\n\S|\n(?:Returns|Raises|Notes)\n-+|\Z)",
                      doc, re.S)
    if not match:
        return set()
    names = set()
    for line in match.group(1).splitlines():
        if line and not line.startswith(" "):
            names |= {n.strip().lstrip("*") for n in line.split(":")[0].split(",")}
    return names


def test_the_public_api_is_what_the_issue_names():
    assert {"compare", "backtest", "diagnose", "build_risk", "fit_dynamics", "fit",
            "predict_loss", "tokens_needed", "compute_optimal", "load_runs",
            "ScalingFit"} <= set(bayes_scaling.__all__)
    for name in bayes_scaling.__all__:
        obj = getattr(bayes_scaling, name)
        assert obj.__name__ == name


def test_the_docstring_parser_sees_a_missing_parameter():
    doc = ("Summary.\n\nParameters\n----------\nfit, runs : thing\n    Text.\n\n"
           "Returns\n-------\nX\n")
    assert documented_parameters(doc) == {"fit", "runs"}
    assert documented_parameters("Summary only.") == set()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_have_numpydoc_parameters_and_returns(name):
    func = getattr(bayes_scaling, name)
    doc = inspect.getdoc(func) or ""
    assert re.search(r"^Returns\n-+$", doc, re.M), f"{name}: no Returns section"
    params = [p for p in inspect.signature(func).parameters if p not in ("self", "kwargs")]
    missing = set(params) - documented_parameters(doc)
    assert not missing, f"{name}: parameters not documented: {sorted(missing)}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_signatures_follow_one_convention(name):
    sig = inspect.signature(getattr(bayes_scaling, name))
    problems = []
    for p in sig.parameters.values():
        ann = str(p.annotation)
        if p.name == "random_seed" and ann != "SeedLike":
            problems.append(f"random_seed: SeedLike, not {ann}")
        if p.name == "probs" and p.default != DEFAULT_PROBS:
            problems.append("probs must default to DEFAULT_PROBS")
        if p.name in MODES and not ann.startswith(MODES[p.name]):
            problems.append(f"{p.name}: {MODES[p.name]}..., not {ann}")
        if p.name == "on_progress" and ann != "ProgressFn | None":
            problems.append(f"on_progress: ProgressFn | None, not {ann}")
        if p.name in ("random_seed", "probs", "band", "on_progress") and \
                p.kind is not p.KEYWORD_ONLY:
            problems.append(f"{p.name} must be keyword-only")
    assert not problems, f"{name}: " + "; ".join(problems)


def test_the_fit_value_is_documented():
    doc = inspect.getdoc(bayes_scaling.ScalingFit) or ""
    for attribute in ("idata", "spec", "runs", "diagnostics", "meta"):
        assert attribute in doc
