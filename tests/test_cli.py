"""The command line: outputs, JSON fields, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.testing import fake_fit


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fits") / "fake.nc"
    fake_fit("chinchilla", PUBLISHED["hoffmann2022"], extra={"kappa": 0.03, "tau0": 0.01}).save(
        path)
    return path


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_json(capsys, fit_file):
    out = run_json(capsys, ["predict", str(fit_file), "--n-params", "7e10", "--n-tokens",
                            "1.4e12", "--json", "--interval", "0.8"])
    rec = out["records"][0]
    assert out["band"] == "predictive"
    assert {"median", "lower", "upper", "interval", "mean"} <= set(rec)
    assert rec["interval"] == 0.8 and rec["lower"] < rec["median"] < rec["upper"]


@pytest.mark.parametrize(("target", "p_unreachable"), [("1.95", 0.0), ("1.75", 1.0)])
def test_tokens_json(capsys, fit_file, target, p_unreachable):
    """The fit is a tight cloud at Hoffmann et al.'s constants, whose floor at 7e10 parameters
    is E + A/N^alpha = 1.774: every draw reaches 1.95, none reaches 1.75."""
    law = PUBLISHED["hoffmann2022"]
    floor = law["e"] + law["a"] / 7e10 ** law["alpha"]
    assert floor == pytest.approx(1.774, abs=1e-3)
    out = run_json(capsys, ["tokens", str(fit_file), "--n-params", "7e10", "--target-loss",
                            target, "--json"])
    rec = out["records"][0]
    assert rec["p_unreachable"] == p_unreachable
    if p_unreachable == 0.0:  # the median inverts the law at the constants
        d = (law["b"] / (1.95 - floor)) ** (1 / law["beta"])
        assert rec["median"] == pytest.approx(d, rel=0.02)


def test_optimal_json(capsys, fit_file):
    out = run_json(capsys, ["optimal", str(fit_file), "--flops", "5.88e23", "--json"])
    assert {r["quantity"] for r in out["records"]} == {"n_opt", "d_opt", "tokens_per_param",
                                                       "loss"}


def test_text_output(capsys, fit_file):
    assert main(["predict", str(fit_file), "--n-params", "1e9,7e10", "--n-tokens", "2e10"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and len(out.strip().splitlines()) == 3


@pytest.mark.parametrize("argv, message", [
    (["predict", "missing.nc", "--n-params", "1e9", "--n-tokens", "1e10"], "no such fit file"),
    (["predict", "{fit}", "--n-params", "-5", "--n-tokens", "1e10"], "positive"),
    (["predict", "{fit}", "--n-params", "abc", "--n-tokens", "1e10"], "expected numbers"),
    (["predict", "{fit}", "--n-params", "1e9", "--n-tokens", "1e10", "--group", "zz"],
     "unknown group"),
    (["tokens", "{fit}", "--n-params", "1e9", "--target-loss", "-1"], "positive"),
    (["fit", "no_such_runs.csv", "--out", "x.nc"], "no_such_runs"),
    (["fit", "chinchilla", "--model", "chinchila", "--out", "x.nc"], "did you mean"),
    (["predict"], "Missing argument"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, fit_file, argv, message):
    argv = [a.replace("{fit}", str(fit_file)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_not_a_fit_file(capsys, tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netcdf file")
    assert main(["summary", str(bad)]) == 2
    assert "not a readable fit file" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "bayes_scaling", "--help"],
                         capture_output=True, text=True, check=True)
    assert "predict" in out.stdout and "fit" in out.stdout


@pytest.mark.slow
def test_fit_with_an_ess_target_stops_early_and_saves_a_fit_that_passes(capsys, tmp_path):
    from bayes_scaling.fitting.result import ScalingFit

    out = tmp_path / "fit.nc"
    assert main(["fit", "chinchilla", "--out", str(out), "--ess-target", "400", "--seed", "1",
                 "--no-calibrate", "--quiet"]) == 0
    assert "saved" in capsys.readouterr().out
    f = ScalingFit.load(out)
    assert f.diagnostics.passed and f.diagnostics.draws < 1000
    assert f.meta["ess_target"] == 400
    assert main(["fit", "chinchilla", "--out", str(out), "--ess-target", "0"]) == 2
    assert "ess-target" in capsys.readouterr().err


def test_best_of_sweep_reduces_a_learning_rate_sweep_before_the_backtest(capsys):
    from tests.conftest import SHARED_DATA, require_shared

    require_shared(SHARED_DATA / "misfitting_openlm")
    argv = ["backtest", "misfitting_openlm", "--method", "huber-bootstrap", "--json", "--quiet"]
    every = run_json(capsys, argv)["backtests"][0]
    best = run_json(capsys, [*argv, "--best-of-sweep"])["backtests"][0]
    assert best["n_train"] + best["n_holdout"] == 75  # 75 (N, D) pairs in 223 runs
    assert every["n_train"] + every["n_holdout"] == 223
    assert main(["fit", "misfitting_openlm", "--model", "dynamics", "--out", "x.nc",
                 "--best-of-sweep"]) == 2
    assert "--best-of-sweep applies to runs tables" in capsys.readouterr().err


def test_fit_and_compare_share_one_definition_of_the_stacking_options():
    """--stack-tops, --stack-refits and --workers: same default, type and help on both."""
    from bayes_scaling.cli.fitting import compare_cmd, fit_cmd

    def options(cmd):
        return {p.name: (tuple(p.opts), p.default, repr(p.type), p.help) for p in cmd.params
                if p.name in ("stack_tops", "stack_refits", "workers")}

    assert len(options(fit_cmd)) == 3
    assert options(fit_cmd) == options(compare_cmd)
