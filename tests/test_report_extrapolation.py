"""The risk report's extrapolation section: the plan's distance from the runs' support, the
discrepancy and the provenance and validation of the prior behind the predictive band."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.support import DISTANCE, Box, decades_outside
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.fitting.discrepancy_prior import load_prior, prior_provenance
from bayes_scaling.fitting.result import with_posterior
from bayes_scaling.report.render import render_markdown
from bayes_scaling.report.sections import extrapolation
from bayes_scaling.testing import fake_fit

CAL = {"kappa_mean": 0.01, "tau0_mean": 0.015, "n_heldout": 40, "n_refits": 6,
       "max_distance": 0.4, "distance": DISTANCE, "prior": load_prior().source}


def _fit(calibration=CAL):
    f = fake_fit("chinchilla", PUBLISHED["hoffmann2022"], extra={"kappa": 0.01, "tau0": 0.015})
    return with_posterior(f, {}, {"calibration": calibration} if calibration else {})


def _optimal_at(fit, times: float) -> tuple[float, float]:
    """A compute-optimal-ish plan (20 tokens per parameter) at ``times`` the largest budget."""
    c = times * float(fit.runs.flops.max())
    n = np.sqrt(c / (6 * 20))
    return n, 20 * n


def test_the_plan_distance_is_the_bands_distance_not_the_box():
    """The distance shown is the one the band uses (hull and compute), not the bounding box.

    Planted fault: the box distance (the measure before issue 15) reads 0 for the largest model
    trained on the fewest tokens, a corner of the box far from every run.
    """
    fit = _fit()
    n, d = _optimal_at(fit, 20.0)
    sup = extrapolation._support(fit, n, d)
    far = decades_outside(Box.of(fit.runs.n, fit.runs.d), [n], [d])
    assert sup["measure"] == DISTANCE == "hull_compute"
    assert sup["distance"] == pytest.approx(float(far["hull_compute"][0]))
    assert sup["compute_past"] == pytest.approx(np.log10(20.0), abs=1e-9)
    assert sup["distance"] >= np.log10(20.0)
    corner = float(fit.runs.n.max()), float(fit.runs.d.min())
    box = decades_outside(Box.of(fit.runs.n, fit.runs.d), *[[x] for x in corner])["box"][0]
    assert box == 0.0 and extrapolation._support(fit, *corner)["distance"] > 0.5
    # a plan on the runs themselves is at distance 0 (two-sided)
    inside = extrapolation._support(fit, float(fit.runs.n[0]), float(fit.runs.d[0]))
    assert inside["distance"] == pytest.approx(0.0, abs=1e-9)


def test_the_prior_provenance_and_its_validation_are_shown():
    fit = _fit()
    n, d = _optimal_at(fit, 20.0)
    sup = extrapolation._support(fit, n, d)
    prov = sup["prior"]
    assert prov is not None and prov["n_ladders"] >= 10 and prov["n_errors"] > 500
    assert prov["distance"] == DISTANCE
    val = prov["validation"]
    assert 0.5 < val["cov90"] <= 1 and 0 < val["cov50"] < val["cov90"]
    risk = {"families": ["chinchilla"],
            "extrapolation": {**extrapolation._extrapolation(fit.runs, n, d), "support": sup}}
    md = render_markdown(risk, extrapolation.blocks(risk), {})
    assert "prior: cross-ladder" in md and "leave-one-ladder-out" in md
    assert f"{100 * val['cov90']:.0f}%" in md
    # the plan lies beyond the farthest checked held-out run only when it does (two-sided)
    far_note = "farther from the runs than any checked held-out run"
    assert (far_note in md) == (sup["distance"] > val["max_distance"])
    near = extrapolation._support(fit, *_optimal_at(fit, 1.05))
    risk["extrapolation"]["support"] = near
    assert far_note not in render_markdown(risk, extrapolation.blocks(risk), {})


def test_a_fit_without_a_discrepancy_says_so():
    plain = fake_fit("chinchilla", PUBLISHED["hoffmann2022"])
    sup = extrapolation._support(plain, 1e10, 2e11)
    assert sup["calibration"] is None and sup["prior"] is None
    risk = {"families": ["chinchilla"], "extrapolation": {
        **extrapolation._extrapolation(plain.runs, 1e10, 2e11), "support": sup}}
    assert "no extrapolation discrepancy" in render_markdown(
        risk, extrapolation.blocks(risk), {})
    # with the half-normal prior (own evidence only) no cross-ladder provenance is claimed
    own = extrapolation._support(_fit({**CAL, "prior": "half-normal"}), 1e10, 2e11)
    assert own["calibration"]["prior"] == "half-normal" and own["prior"] is None


def test_a_malformed_prior_file_is_one_line(tmp_path):
    bad = tmp_path / "prior.json"
    bad.write_text("{not json")
    with pytest.raises(BayesScalingError, match=r"prior.json: cannot read") as exc:
        prior_provenance(bad)
    assert "\n" not in str(exc.value)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({**load_prior().to_dict(), "ladders": {"a": {"errors": 3}}}))
    assert prior_provenance(good)["n_errors"] == 3 and prior_provenance(good)["validation"] is None
