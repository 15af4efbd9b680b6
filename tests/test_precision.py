"""Float32 per-run arithmetic for large tables (``model.build.row_precision``).

From ``FLOAT32_MIN_OBS`` runs on, the law and the likelihood's per-run terms run in float32 and
are summed in float64 (``benchmarks/results/precision.md``). Checked here: the float32 model is
the same density as the float64 one for every shipped final-loss law and both likelihoods (to
float32 rounding, and not to a constant: a dropped term or a wrong factor fails), the size rule
and its override, the chain rule's count of observations, and a seeded NUTS fit in float32
that recovers the truth as the float64 one does.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.model import build, sampling
from bayes_scaling.model.spec import load_spec
from bayes_scaling.testing import synthetic_runs

LAWS_SHIPPED = ("chinchilla", "farseer", "broken", "kaplan", "kaplan_e", "chinchilla_slopes")


def _runs():
    offsets = {"a": {}, "b": {"log_e": 0.04, "log_b": -0.1}, "c": {"log_a": 0.1}}
    return synthetic_runs("chinchilla", PUBLISHED["epoch2024"], group_offsets=offsets, seed=2)


def _logps(spec, runs, points=4, seed=0):
    m64 = build.build_model(spec, runs, "float64")
    m32 = build.build_model(spec, runs, "float32")
    assert m32.bayes_scaling_precision == "float32"
    assert set(m64.initial_point()) == set(m32.initial_point())
    f64, f32 = (m.compile_fn(m.logp(), mode="FAST_COMPILE") for m in (m64, m32))
    rng = np.random.default_rng(seed)
    start = m64.initial_point()
    out = []
    for _ in range(points):
        point = {k: v + rng.normal(0, 0.1, np.shape(v)) for k, v in start.items()}
        out.append((float(f64(point)), float(f32(point))))
    return np.array(out)


@pytest.mark.parametrize(("name", "family"), [*((n, "studentt") for n in LAWS_SHIPPED),
                                               ("chinchilla", "normal"), ("kaplan", "normal")])
def test_the_float32_model_is_the_same_density(name, family):
    spec = load_spec(name)
    if spec.likelihood.family != family:
        spec = spec.with_likelihood(family)
    lp = _logps(spec, _runs())
    assert np.all(np.isfinite(lp))
    rel = np.abs(lp[:, 0] - lp[:, 1]) / np.abs(lp[:, 0])
    assert rel.max() < 1e-5, (name, family, lp)
    # and the points differ among themselves far more than the two precisions do
    assert np.ptp(lp[:, 0]) > 1e3 * np.abs(lp[:, 0] - lp[:, 1]).max()


def test_the_size_rule_and_its_override(monkeypatch):
    monkeypatch.delenv("BAYES_SCALING_PRECISION", raising=False)
    assert build.row_precision(build.FLOAT32_MIN_OBS - 1) == "float64"
    assert build.row_precision(build.FLOAT32_MIN_OBS) == "float32"
    assert build.row_precision(10, "float32") == "float32"
    monkeypatch.setenv("BAYES_SCALING_PRECISION", "float32")
    assert build.row_precision(10) == "float32"
    assert build.row_precision(10**6, "float64") == "float64"
    monkeypatch.setenv("BAYES_SCALING_PRECISION", "half")
    with pytest.raises(BayesScalingError, match="precision must be one of"):
        build.row_precision(10)


def test_the_chain_rule_counts_the_runs_of_a_float32_model():
    """A float32 model's likelihood is a Potential, not an observed variable: the rule that
    runs large tables' chains one after another must still see its runs."""
    runs = _runs()
    m32 = build.build_model(load_spec("chinchilla"), runs, "float32")
    assert not m32.observed_RVs
    assert sampling._n_observed(m32) == runs.n_runs
    m64 = build.build_model(load_spec("chinchilla"), runs, "float64")
    assert sampling._n_observed(m64) == runs.n_runs


@pytest.mark.slow
def test_a_float32_fit_recovers_the_truth():
    """Seeded synthetic ladder, NUTS in float32: the gate passes, the true exponents lie in the
    90% intervals, the intervals are far narrower than the prior's, and the posterior means sit
    within a few Monte Carlo errors of a float64 fit of the same runs."""
    from bayes_scaling.fitting.fit import fit

    truth = PUBLISHED["epoch2024"]
    runs = synthetic_runs("chinchilla", truth, noise=0.01, seed=3)
    fits = {p: fit("chinchilla", runs, chains=2, draws=400, tune=400, random_seed=5,
                   calibrate=False, on_bad="warn", precision=p)
            for p in ("float32", "float64")}
    f32 = fits["float32"]
    assert f32.meta["precision"] == "float32" and fits["float64"].meta["precision"] == "float64"
    assert f32.diagnostics.passed, f32.diagnostics.banner()
    for name in ("alpha", "beta"):
        a = np.asarray(f32.idata["posterior"][name]).ravel()
        b = np.asarray(fits["float64"].idata["posterior"][name]).ravel()
        lo, hi = np.quantile(a, [0.05, 0.95])
        assert lo <= truth[name] <= hi, (name, lo, hi, truth[name])
        assert hi - lo < 0.1, (name, lo, hi)
        mcse = np.hypot(a.std(), b.std()) / np.sqrt(200)  # ESS >= 200 a chain pair, gated
        assert abs(a.mean() - b.mean()) < 4 * mcse, (name, a.mean(), b.mean(), mcse)
