"""Own stacking weights shrunk toward the cross-ladder ones: the formula, the shipped k, the
provenance a stacked fit records (no fitting here)."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.evaluate import heldout as hld
from bayes_scaling.evaluate import stacking as stk
from bayes_scaling.testing import synthetic_runs

OWN = {"chinchilla": 0.8, "farseer": 0.2}
CROSS = {"chinchilla": 0.1, "farseer": 0.9}
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ the formula
@pytest.mark.parametrize(("n", "k", "want"), [
    (0, 10.0, CROSS),                      # no own held-out runs: the cross-ladder weights
    (12, 0.0, OWN),                        # k = 0: the own weights
    (12, math.inf, CROSS),                 # k = inf: the cross-ladder weights
    (10, 10.0, {"chinchilla": 0.45, "farseer": 0.55}),   # n = k: halfway
    (30, 10.0, {"chinchilla": 0.625, "farseer": 0.375}),  # (30 * 0.8 + 10 * 0.1) / 40
])
def test_shrunk_weights_are_n_own_plus_k_cross_over_n_plus_k(n, k, want):
    w = stk.shrink_weights(OWN, CROSS, n, k)
    assert w == pytest.approx(want, abs=1e-12)
    assert sum(w.values()) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ the shipped k
def test_the_shipped_k_is_read_from_the_package_with_its_provenance():
    raw = json.loads(resources.files("bayes_scaling").joinpath(
        "_data/family_weights.json").read_text())
    on_disk = json.loads((ROOT / "data" / "family_weights.json").read_text())
    assert raw == on_disk  # bayes_scaling/_data is data/
    k = stk.shrink_k()
    assert k == float(on_disk["shrink_k"]) and k >= 0
    how = on_disk["shrink_k_source"]
    assert "bench_families_shrink.py" in how and "leave-one-source-out would" in how
    assert f"k = {k:g}" in how
    # a plan made without an explicit k uses the shipped one
    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"], seed=0)
    assert stk.stack_plan(runs, (1, 2))["k"] == k


def test_an_infinite_k_sends_every_ladder_to_the_cross_ladder_weights_before_any_refit():
    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"],
                          n_sizes=tuple(np.geomspace(1e7, 1e9, 7)),
                          tokens_per_param=tuple(np.geomspace(10, 40, 12)), seed=4)
    finite = stk.stack_plan(runs, (1, 2), k=10.0)
    assert finite["why"] == "" and finite["n_heldout"] >= stk.MIN_OWN_ROWS
    inf = stk.stack_plan(runs, (1, 2), k=math.inf)
    assert "infinite" in inf["why"] and inf["n_heldout"] == finite["n_heldout"]


# ------------------------------------------------------------------------------ provenance
def _heldout(name: str, lpd: float, y: np.ndarray, rng: np.random.Generator) -> hld.HeldOut:
    samples = y[None, :] * np.exp(0.01 * rng.standard_normal((200, y.size)))
    table = pd.DataFrame({"top": 1, "run_id": np.arange(y.size), "observed": y,
                          "log_pred_density": np.full(y.size, lpd)})
    return hld.HeldOut(name, table, samples, True)


def test_stacked_records_n_k_own_and_cross_and_uses_the_shrunk_weights():
    rng = np.random.default_rng(0)
    y = np.linspace(2.0, 2.5, 12)
    preds = {"chinchilla": _heldout("chinchilla", 3.0, y, rng),
             "farseer": _heldout("farseer", -20.0, y, rng)}
    names = list(preds)
    plan = {"stack_tops": [1, 2], "n_heldout": 12, "why": "", "k": 30.0}
    w, meta = stk.stacked(names, plan, preds, "huber-bootstrap", 0)
    own, cross = stk.weights_from_heldout(preds), stk.cross_ladder_weights(names)
    assert own["chinchilla"] > 0.99  # the own evidence alone would pick chinchilla
    assert meta["weights_method"] == "shrunk"
    assert meta["n"] == 12 and meta["k"] == 30.0 and meta["n_heldout"] == 12
    assert meta["own"] == pytest.approx(own) and meta["cross"] == pytest.approx(cross)
    assert w == pytest.approx(stk.shrink_weights(own, cross, 12, 30.0))
    assert w["chinchilla"] == pytest.approx((12 * own["chinchilla"]
                                             + 30 * cross["chinchilla"]) / 42)
    scores = pd.DataFrame(meta["scores"]).set_index("model")
    assert scores.loc["chinchilla", "weight"] == pytest.approx(w["chinchilla"])
    json.dumps(meta)  # the provenance goes into the fit file as JSON

    short = {**plan, "why": "the origins predict 3 runs (< 10)", "n_heldout": 3,
             "k": math.inf}
    w2, meta2 = stk.stacked(names, short, {}, "huber-bootstrap", 0)
    assert meta2["weights_method"] == "cross-ladder" and w2 == pytest.approx(cross)
    assert meta2["n"] == 0 and meta2["own"] is None and meta2["k"] == "inf"
    assert meta2["cross"] == pytest.approx(cross) and "scores" not in meta2
    assert json.loads(json.dumps(meta2))["k"] == "inf"  # strict JSON: no Infinity


# ------------------------------------------------------------------------------ forward gain
def _forward_rows(late_good: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin 2 predicts budgets 1 (family 0 good) and 0; origin 1 predicts budget 0, where
    family ``late_good`` is good. Columns: log densities of families 0 and 1."""
    good, bad = 2.0, -3.0
    early = np.array([[good, bad]] * 4)                     # origin 2, budget 1 (one step)
    late = np.array([[good, bad] if late_good == 0 else [bad, good]] * 3)
    lpd = np.vstack([early, late, late])                    # origin 2's budget 0, then origin 1
    top = np.array([2] * 4 + [2] * 3 + [1] * 3)
    flops = np.array([1e20] * 4 + [1e21] * 3 + [1e21] * 3)
    return lpd, top, flops


@pytest.mark.parametrize(("late_good", "sign"), [(0, 1.0), (1, -1.0)])
def test_forward_gain_rewards_own_weights_only_when_they_hold_one_budget_forward(late_good,
                                                                                 sign):
    lpd, top, flops = _forward_rows(late_good)
    cross = np.array([0.3, 0.7])
    g, n = stk.forward_gain(lpd, top, flops, cross)
    assert n == 3                                           # origin 1's rows are scored
    # own weights (all on family 0, from origin 2's one-step rows) vs the 0.3/0.7 cross weights:
    # log(e^2) - log(0.3 e^2 + 0.7 e^-3) when family 0 stays good; when family 1 takes over,
    # log(e^-3) - log(0.3 e^-3 + 0.7 e^2)
    good, bad = (2.0, -3.0) if late_good == 0 else (-3.0, 2.0)
    want = good - np.log(0.3 * np.exp(good) + 0.7 * np.exp(bad))
    assert g == pytest.approx(want, abs=1e-3)
    assert np.sign(g) == sign


def test_forward_gain_needs_two_origins():
    lpd, top, flops = _forward_rows(0)
    g, n = stk.forward_gain(lpd[top == 1], top[top == 1], flops[top == 1], np.array([.5, .5]))
    assert math.isnan(g) and n == 0
