"""The warm-up's tree-depth cap (``model.sampling.warmup_depth``).

numpyro's NUTS takes ``max_tree_depth=(warm-up, sampling)``; the product caps the warm-up's trees
(``benchmarks/results/warmup_depth.md``) and keeps the sampling depth at 10, so the kept draws
come from an unchanged kernel. The cap, its override, a bad override, the uncapped retry and the
fit's record are checked here (the record and a seeded recovery through ``fit`` at the default
cap: ``test_laplace_start.py``; every other sampler test runs at the default cap too).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.model import sampling
from bayes_scaling.testing import synthetic_runs


def _model():
    from bayes_scaling.model.build import build_model
    from bayes_scaling.model.spec import load_spec

    return build_model(load_spec("chinchilla"),
                       synthetic_runs("chinchilla", PUBLISHED["epoch2024"], seed=1))


def test_the_warmup_is_capped_and_sampling_keeps_the_full_depth(monkeypatch):
    monkeypatch.delenv("BAYES_SCALING_WARMUP_DEPTH", raising=False)
    model = _model()
    kwargs = sampling._nuts_kwargs(model)
    assert kwargs["max_tree_depth"] == (sampling.WARMUP_MAX_TREE_DEPTH, 10)
    assert sampling.WARMUP_MAX_TREE_DEPTH < 10  # a cap, not NUTS's default
    assert model.bayes_scaling_warmup_depth_used == sampling.WARMUP_MAX_TREE_DEPTH
    assert sampling._nuts_kwargs(model, capped=False)["max_tree_depth"] == (10, 10)
    assert model.bayes_scaling_warmup_depth_used == 10


def test_the_override_and_a_bad_override(monkeypatch):
    monkeypatch.setenv("BAYES_SCALING_WARMUP_DEPTH", "7")
    assert sampling.warmup_depth() == 7
    assert sampling.warmup_depth(capped=False) == 10
    for bad in ("0", "11", "deep"):
        monkeypatch.setenv("BAYES_SCALING_WARMUP_DEPTH", bad)
        with pytest.raises(BayesScalingError, match=r"BAYES_SCALING_WARMUP_DEPTH.*1 to 10"):
            sampling.warmup_depth()


def test_short_warmups_are_not_capped(monkeypatch):
    """``sample`` caps only warm-ups of at least ``WARMUP_CAP_MIN_TUNE`` iterations (where the
    cap was measured); the numpyro sampler receives the decision."""
    monkeypatch.delenv("BAYES_SCALING_WARMUP_DEPTH", raising=False)
    seen = []

    def fake(model, *, var_names, chains, draws, tune, target_accept, seed, progress, capped):
        seen.append((tune, capped))
        return None

    monkeypatch.setitem(sampling._SAMPLERS, "numpyro", fake)
    model = SimpleNamespace()  # sample records the device on it
    for tune in (sampling.WARMUP_CAP_MIN_TUNE - 1, sampling.WARMUP_CAP_MIN_TUNE):
        sampling.sample(model, chains=2, draws=10, tune=tune)
    sampling.sample(model, chains=2, draws=10, tune=2000, capped_warmup=False)
    assert model.bayes_scaling_device == "cpu"
    assert seen == [(sampling.WARMUP_CAP_MIN_TUNE - 1, False),
                    (sampling.WARMUP_CAP_MIN_TUNE, True), (2000, False)]
