"""The run-length-independent early cut of curve fits (``--min-steps``, issue 16 session 13):
the CLI passes it to the training and the held-out curves of fits and backtests, records it,
and refuses bad values in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli.common import curve_thinning
from bayes_scaling.errors import BayesScalingError
from tests.test_residual import FIXED_B
from tests.test_run_length_term import Stop


def test_curve_thinning_passes_a_finite_cut_and_refuses_a_bad_one():
    assert curve_thinning(None, 0.0, 300) == {"warmup_fraction": 0.0, "min_steps": 300.0}
    assert curve_thinning(None) == {}                     # library defaults untouched
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(BayesScalingError, match="--min-steps"):
            curve_thinning(None, None, bad)


def _table(tmp_path):
    """Cosine runs of 1,000 and 8,000 steps at three sizes, checkpoints from step 100."""
    rows = [{"run_id": f"n{n:.0e}_t{t}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
             "loss": 2.0 + 30 * (n / 1e6) ** -0.3 * s ** -0.2, "lr_schedule": "cosine",
             "total_steps": t, "final_lr_fraction": 0.1}
            for n in (2e7, 6e7, 2e8) for t in (1000, 8000)
            for s in np.unique(np.geomspace(100, t, 12).round())]
    path = tmp_path / "curves.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_fit_cli_cuts_every_run_at_the_same_step(monkeypatch, tmp_path, capsys):
    import bayes_scaling.fitting.dynamics as dyn
    from bayes_scaling.cli.app import main

    got = {}

    def stub(spec, curves, **kw):
        got["curves"] = curves
        raise Stop("stopped after recording the table")

    monkeypatch.setattr(dyn, "fit_dynamics", stub)
    path = _table(tmp_path)
    with pytest.raises(Stop):
        main(["fit", str(path), "--model", FIXED_B, "--warmup-fraction", "0", "--min-steps",
              "500", "--max-points-per-curve", "0", "--out", str(tmp_path / "f.nc"), "-q"])
    f = got["curves"].frame
    assert got["curves"].rule["min_steps"] == 500.0 and got["curves"].rule[
        "warmup_fraction"] == 0.0
    assert f["steps"].min() >= 500
    first = f.groupby("run_id")["steps"].min()
    # the 8,000-step runs keep checkpoints below 10% of their length: the fraction rule is off
    assert first[[r for r in first.index if r.endswith("t8000")]].max() < 800
    for bad, word in ((["--min-steps", "-3"], "--min-steps"),
                      (["--min-steps", "nan"], "--min-steps")):
        capsys.readouterr()
        rc = main(["fit", str(path), "--model", FIXED_B, *bad, "--out",
                   str(tmp_path / "g.nc"), "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and word in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "g.nc").exists()
    rc = main(["fit", str(path), "--model", "chinchilla", "--min-steps", "100", "--out",
               str(tmp_path / "g.nc"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--min-steps" in err and len(err.strip().splitlines()) == 1, err


def test_backtest_cli_cuts_training_and_held_out_curves_alike(monkeypatch, tmp_path):
    import bayes_scaling.evaluate.curve_backtest as cb
    from bayes_scaling.cli.app import main

    got = {}

    def stub(model, train, test, **kw):
        got["train"], got["test"] = train, test
        raise Stop("stopped after recording the tables")

    monkeypatch.setattr(cb, "curve_backtest", stub)
    with pytest.raises(Stop):
        main(["backtest", str(_table(tmp_path)), "--model", FIXED_B, "--holdout-top", "1",
              "--warmup-fraction", "0", "--min-steps", "700", "-q"])
    for key in ("train", "test"):
        steps = got[key].frame["steps"].to_numpy()
        assert steps.min() >= 700 and np.any(steps < 800), key   # 800 = 10% of 8,000
        assert got[key].rule["min_steps"] == 700.0


def test_backtest_header_names_the_warm_up_rule():
    from bayes_scaling.evaluate.curve_backtest import CurveBacktest

    summary = {"model": FIXED_B, "holdout_top": 1, "train_curves": 4, "train_points": 40,
               "gate_passed": True, "test_points": 9, "median_abs_pct_error": 1.0,
               "coverage_90": 0.9, "warmup_rule": {"warmup_fraction": 0.0, "min_steps": 50.0}}
    head = CurveBacktest(pd.DataFrame(), pd.DataFrame(columns=["run_id", "n_params", "points",
                                                                "median_abs_pct_error"]),
                         summary).to_text().splitlines()[0]
    assert "warmup_fraction 0, min_steps 50)" in head, head
