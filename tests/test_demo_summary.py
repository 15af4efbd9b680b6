"""The demo's summary (``report.demo.demo_markdown``) explains the predictive median's shift.

Since the signed drift ships, the predictive median of the demo's Chinchilla-70B plan sits a few
per cent below the law's; the summary must say why, with the drift's values and its shift at the
plan, and must not say it when a fit has no drift.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.report.demo import demo_markdown
from bayes_scaling.testing import fake_fit

SUMMARY = Path(__file__).resolve().parents[1] / "reports" / "demo" / "summary.json"


def test_the_summary_states_the_drift_and_its_shift_at_the_plan():
    nums = json.loads(SUMMARY.read_text())
    fit = fake_fit("chinchilla", PUBLISHED["epoch2024"])
    text = demo_markdown(fit, nums)
    pred = nums["predicted_loss"]["predictive"]
    drift = nums["calibration"]["drift"]
    assert f"moves the predictive median by {pred['drift_pct']:+.2f}%" in text
    assert f"{drift['scale']['value']:+.4f} ± {drift['scale']['sd']:.4f}" in text
    assert f"{drift['shape']['value']:+.4f}" in text
    without = copy.deepcopy(nums)
    del without["calibration"]["drift"]
    assert "Signed drift" not in demo_markdown(fit, without)
