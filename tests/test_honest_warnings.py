"""Honest numbers: every caveat is shown in the summary, the CLI output and the report.

Four situations must each produce a visible warning wherever the numbers appear:

- a fit that failed the convergence gate;
- a query far outside the data (more than 2 decades of compute past the largest run);
- too few distinct model sizes to identify the exponents (fewer than 5);
- a target loss below the posterior floor (unreachable at that size).

Each test also checks the control: without the problem, the warning is absent. No sampler runs:
fits are ``testing.fake_fit`` posteriors (with diagnostics replaced where the gate must fail).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.model.gate import Diagnostics
from tests.test_safety import build_fake_risk

P = PUBLISHED["hoffmann2022"]
GATE = "posterior failed the convergence gate"
FAR = "decades of compute past the largest run"
FEW = "distinct model sizes (N)"
FLOOR = "below the posterior floor"
BAD_DIAGNOSTICS = Diagnostics(max_rhat=1.2, min_ess_bulk=40.0, min_ess_tail=60.0, divergences=7,
                              chains=2, draws=500, backend="numpyro", seed=0,
                              sampling_seconds=1.0, problems=("max r_hat 1.200 > 1.01 (alpha)",
                                                              "7 divergent transitions"))
SIZES_5 = (1e7, 3e7, 1e8, 3e8, 1e9)
SIZES_4 = (1e7, 1e8, 1e9, 3e9)


def _fit(*, sizes=SIZES_5, bad_gate=False):
    from bayes_scaling.testing import fake_fit, synthetic_runs

    runs = synthetic_runs("chinchilla", P, n_sizes=sizes, tokens_per_param=(10, 20, 40))
    fit = fake_fit("chinchilla", P, runs=runs, draws=200, extra={"kappa": 0.03, "tau0": 0.01})
    return dataclasses.replace(fit, diagnostics=BAD_DIAGNOSTICS) if bad_gate else fit


def _cli(capsys, argv: list[str]) -> tuple[str, str]:
    assert main(argv) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _report(folder: Path, **kw) -> tuple[dict, str, str]:
    """Risk numbers, HTML and Markdown of a one-family report over a fake fit."""
    from bayes_scaling.report.write import write_report

    risk = build_fake_risk(folder, **kw)
    write_report(risk, folder / "out")
    return (risk, (folder / "out" / "report.html").read_text(encoding="utf-8"),
            (folder / "out" / "report.md").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ the gate
def test_a_failed_convergence_gate_is_shown_everywhere(tmp_path, capsys):
    from bayes_scaling.query.predict import predict_loss
    from bayes_scaling.report.demo import fit_summary_text

    bad, good = _fit(bad_gate=True), _fit()
    assert GATE in fit_summary_text(bad) and GATE not in fit_summary_text(good)
    assert any(GATE in w for w in predict_loss(bad, 1e9, 2e10, random_seed=0).warnings)
    assert not predict_loss(good, 1e9, 2e10, random_seed=0).warnings
    path = bad.save(tmp_path / "bad.nc")
    for argv in (["predict", str(path), "--n-params", "1e9", "--n-tokens", "2e10"],
                 ["tokens", str(path), "--n-params", "1e9", "--target-loss", "2.6"],
                 ["optimal", str(path), "--flops", "1e20"]):
        out, err = _cli(capsys, argv)
        assert f"WARNING: {GATE}" in out and f"bayes-scaling: warning: {GATE}" in err
        assert "WARNING: WARNING" not in out
    out, _ = _cli(capsys, ["summary", str(path)])
    assert GATE in out and "FAILED" in out
    out, _ = _cli(capsys, ["summary", str(good.save(tmp_path / "good.nc"))])
    assert GATE not in out and "PASSED" in out


def test_a_failed_convergence_gate_heads_the_report(tmp_path):
    risk, page, md = _report(tmp_path / "bad", diagnostics=BAD_DIAGNOSTICS, n_params=1e9,
                             n_tokens=2e10)
    assert any(GATE in w for w in risk["warnings"])
    assert GATE in page and GATE in md
    risk, page, _ = _report(tmp_path / "good", n_params=1e9, n_tokens=2e10)
    assert not any(GATE in w for w in risk["warnings"]) and GATE not in page


# ------------------------------------------------------------------------------ far queries
def test_a_query_far_past_the_data_is_flagged(capsys, tmp_path):
    from bayes_scaling.query.predict import predict_loss, tokens_needed

    fit = _fit()  # largest run: N = 1e9, D = 4e10, C = 2.4e20
    far = predict_loss(fit, 7e10, 1.4e12, random_seed=0)          # 3.4 decades past C
    near = predict_loss(fit, 3e9, 6e10, random_seed=0)            # 0.7 decades past C
    assert any(FAR in w for w in far.warnings) and not near.warnings
    assert float(far.summary["decades_past_c"].iloc[0]) > 2
    assert any(FAR in w for w in tokens_needed(fit, 7e10, 2.0, random_seed=0).warnings)
    path = fit.save(tmp_path / "fit.nc")
    out, err = _cli(capsys, ["predict", str(path), "--n-params", "7e10", "--n-tokens", "1.4e12"])
    assert f"WARNING: extrapolating 3.4 {FAR}" in out and FAR in err
    out, _ = _cli(capsys, ["predict", str(path), "--n-params", "3e9", "--n-tokens", "6e10"])
    assert "WARNING" not in out
    out, _ = _cli(capsys, ["tokens", str(path), "--n-params", "7e10", "--target-loss", "2.0"])
    assert FAR in out


def test_a_compute_optimal_query_far_past_the_data_is_flagged():
    from bayes_scaling.query.allocate import compute_optimal

    assert any(FAR in w for w in compute_optimal(_fit(), 1e26, random_seed=0).warnings)


def test_a_plan_far_past_the_data_heads_the_report(tmp_path):
    risk, page, md = _report(tmp_path / "far", n_params=7e10, n_tokens=1.4e12)
    assert any(FAR in w for w in risk["warnings"])
    assert FAR in page and FAR in md
    risk, page, _ = _report(tmp_path / "near", n_params=1e9, n_tokens=2e10)
    assert not any(FAR in w for w in risk["warnings"])


# ------------------------------------------------------------------------------ few sizes
def test_too_few_model_sizes_are_flagged_everywhere(tmp_path, capsys):
    from bayes_scaling.query.predict import predict_loss
    from bayes_scaling.report.demo import fit_summary_text
    from bayes_scaling.testing import synthetic_runs

    few, enough = _fit(sizes=SIZES_4), _fit(sizes=SIZES_5)
    assert "only 4 distinct model sizes (N)" in fit_summary_text(few)
    assert FEW not in fit_summary_text(enough)
    assert any(FEW in w for w in predict_loss(few, 1e9, 2e10, random_seed=0).warnings)
    path = few.save(tmp_path / "few.nc")
    out, err = _cli(capsys, ["predict", str(path), "--n-params", "1e9", "--n-tokens", "2e10"])
    assert f"WARNING: only 4 {FEW}" in out and FEW in err
    out, _ = _cli(capsys, ["summary", str(path)])
    assert FEW in out
    runs = synthetic_runs("chinchilla", P, n_sizes=SIZES_4, tokens_per_param=(10, 20, 40))
    risk, page, _ = _report(tmp_path / "report", runs=runs, n_params=3e9, n_tokens=6e10)
    assert any(FEW in w for w in risk["warnings"]) and FEW in page


def test_sizes_are_counted_as_levels_not_floats():
    """A digitised ladder gives one size as several floats (within 2%): one level."""
    import numpy as np

    from bayes_scaling.data.runs import load_runs
    from bayes_scaling.testing import fake_fit

    n = np.repeat([1e7, 1e8, 1e9, 1e10], 4) * (1 + 0.001 * np.tile(np.arange(4), 4))
    d = 20 * n * np.tile([1.0, 2.0, 3.0, 4.0], 4)
    runs = load_runs(__import__("pandas").DataFrame({"n_params": n, "n_tokens": d,
                                                     "loss": 2 + 1e3 / n**0.3}))
    assert "only 4 distinct model sizes" in fake_fit("chinchilla", P, runs=runs).warning_banner


# ------------------------------------------------------------------------------ the floor
def test_a_target_below_the_floor_is_flagged(capsys, tmp_path):
    from bayes_scaling.query.predict import tokens_needed

    fit = _fit()
    below = tokens_needed(fit, 7e10, 1.5, random_seed=0)  # E = 1.69: no size reaches 1.5
    above = tokens_needed(fit, 1e9, 2.6, random_seed=0)
    assert any(FLOOR in w for w in below.warnings)
    assert float(below.summary["p_unreachable"].iloc[0]) == 1.0
    assert not any(FLOOR in w for w in above.warnings)
    path = fit.save(tmp_path / "fit.nc")
    out, err = _cli(capsys, ["tokens", str(path), "--n-params", "7e10", "--target-loss", "1.5"])
    assert f"WARNING: target 1.5 is {FLOOR}" in out and FLOOR in err


def test_a_target_below_the_floor_shows_in_the_report_numbers(tmp_path):
    risk, page, _ = _report(tmp_path, target=1.5, n_params=1e9, n_tokens=2e10)
    tok = risk["tokens_needed"]["families"]["chinchilla"]
    assert tok["p_unreachable"] == 1.0
    assert risk["verdict"]["families"]["chinchilla"]["predictive"]["p_target"] < 0.01
    assert "Unreachable" in page


def test_a_target_below_the_floor_heads_the_report(tmp_path):
    risk, _, _ = _report(tmp_path, target=1.5, n_params=1e9, n_tokens=2e10)
    assert any("floor" in w or "unreachable" in w for w in risk["warnings"])
