"""Yardsticks for the statistical tests: the prior's width at a ladder's centre, binomial bounds.

A recovery test that only asks "is the truth inside the 90% interval?" passes a sampler that
returns its prior, since the shipped priors are wide enough to hold every published constant.
:func:`assert_learned` also asks that the posterior be much narrower than the prior, where the
prior is sampled exactly as the model samples it: on the sampler's centred scale at the test
ladder's centre (``fit.meta["centre"]``), then mapped to the law's natural constants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import stats

from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.curve import centre_constants
from bayes_scaling.laws.curve import uncentre as uncentre_curve
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.spec import ModelSpec

#: A constant counts as learned when its posterior 90% interval is at most this share of the
#: prior's (issue 20).
LEARNED_RATIO = 0.25
PRIOR_DRAWS = 20_000


def _draw(prior, rng: np.random.Generator, size: int) -> np.ndarray:
    k = prior.kwargs
    if prior.dist == "Normal":
        return rng.normal(k["mu"], k["sigma"], size)
    if prior.dist == "LogNormal":
        return np.exp(rng.normal(k["mu"], k["sigma"], size))
    raise NotImplementedError(f"prior {prior.dist} of a law constant")


def to_sampler_scale(spec: ModelSpec, theta: Mapping[str, np.ndarray],
                     centre: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Natural log constants -> the centred (and scaled) constants the sampler works with."""
    if spec.law in CURVE_LAWS:
        return centre_constants(theta, centre)
    law = LAWS[spec.law]
    return law.scale(law.centre(theta, centre))


def prior_draws(spec: ModelSpec, centre: Mapping[str, float], *, size: int = PRIOR_DRAWS,
                seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(sampler_scale, natural)`` draws of the spec's priors at a ladder's ``centre``."""
    rng = np.random.default_rng(seed)
    sampled = {p: _draw(prior, rng, size) for p, prior in spec.priors.items()}
    if spec.law in CURVE_LAWS:
        return sampled, uncentre_curve(sampled, centre)
    law = LAWS[spec.law]
    return sampled, law.uncentre(law.unscale(sampled), centre)


def width90(x: np.ndarray) -> float:
    lo, hi = np.quantile(np.asarray(x).ravel(), [0.05, 0.95])
    return float(hi - lo)


def learning_report(fit: ScalingFit, truth: Mapping[str, float],
                    names: Iterable[str]) -> list[tuple[str, str, float, float, float, bool]]:
    """Per constant and scale: ``(name, scale, posterior width, prior width, ratio, covered)``."""
    spec, centre = fit.spec, fit.meta["centre"]
    params = list(truth)
    post_nat = {p: np.asarray(fit.posterior[p]).ravel() for p in params}
    post_smp = to_sampler_scale(spec, post_nat, centre)
    true_smp = to_sampler_scale(spec, {p: np.float64(v) for p, v in truth.items()}, centre)
    prior_smp, prior_nat = prior_draws(spec, centre)
    rows = []
    for p in names:
        for scale, post, prior, true in (("natural", post_nat, prior_nat, truth),
                                         ("sampler", post_smp, prior_smp, true_smp)):
            lo, hi = np.quantile(post[p], [0.05, 0.95])
            wp, w0 = float(hi - lo), width90(prior[p])
            rows.append((p, scale, wp, w0, wp / w0, bool(lo <= float(true[p]) <= hi)))
    return rows


def assert_learned(fit: ScalingFit, truth: Mapping[str, float], names: Iterable[str], *,
                   ratio: float = LEARNED_RATIO) -> None:
    """Each constant in ``names``: truth inside its posterior 90% interval, and that interval at
    most ``ratio`` of the prior's, on the natural and on the sampler's scale."""
    rows = learning_report(fit, truth, names)
    bad = [r for r in rows if not (r[5] and r[4] <= ratio)]
    assert not bad, "not learned (name, scale, post w90, prior w90, ratio, covered): " + \
        "; ".join(f"{n} {s} {wp:.3g} {w0:.3g} {q:.3f} {c}" for n, s, wp, w0, q, c in bad)


def binomial_bounds(nominal: float, n: int, *, level: float = 0.99) -> tuple[float, float]:
    """Two-sided ``level`` acceptance interval for a coverage rate over ``n`` independent runs."""
    tail = (1 - level) / 2
    return (float(stats.binom.ppf(tail, n, nominal)) / n,
            float(stats.binom.isf(tail, n, nominal)) / n)
