"""Several law families in one fit: the file, the weighted-average queries, the CLI, the weights."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import BayesScalingError, FitFileError
from bayes_scaling.evaluate import heldout as hld
from bayes_scaling.evaluate import stacking as stk
from bayes_scaling.fitting.families import FamilyFit, load_fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.model.gate import Diagnostics
from bayes_scaling.testing import fake_fit, synthetic_runs

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
P = PUBLISHED["hoffmann2022"]
RUNS = synthetic_runs("chinchilla", P, seed=3)
N, D = 7e10, 1.4e12


def _pair(w_chin: float, *, e_shift: float = 0.2, failed: bool = False) -> FamilyFit:
    """Chinchilla and a Farseer law whose E is ``e_shift`` higher: two clearly apart bands."""
    a = fake_fit("chinchilla", P, runs=RUNS, seed=1)
    b = fake_fit("farseer", {**P, "e": P["e"] + e_shift, "gamma": 0.0}, runs=RUNS, seed=2)
    if failed:
        d = b.diagnostics
        b = ScalingFit(b.idata, b.spec, b.runs, Diagnostics(
            max_rhat=1.2, min_ess_bulk=50.0, min_ess_tail=50.0, divergences=3, chains=d.chains,
            draws=d.draws, backend="fake", seed=0, sampling_seconds=0.0,
            problems=("max r_hat 1.2 > 1.01",)), b.meta)
    return FamilyFit({"chinchilla": a, "farseer": b},
                     {"chinchilla": w_chin, "farseer": 1 - w_chin},
                     {"weights_method": "given"})


def _log_quantiles(fit, probs=(0.05, 0.5, 0.95)) -> np.ndarray:
    draws = np.asarray(bs.predict_loss(fit, N, D, band="law", random_seed=0).draws).ravel()
    return np.log(np.quantile(draws, probs))


# ------------------------------------------------------------------------------ the average
@pytest.mark.parametrize("w", [0.8, 0.3])
def test_the_average_is_the_families_weighted_quantile_average(w):
    fam = _pair(w)
    res = bs.predict_loss(fam, N, D, band="law", random_seed=0)
    own = [_log_quantiles(f) for f in fam.fits.values()]
    got = np.log(np.quantile(np.asarray(res.draws).ravel(), (0.05, 0.5, 0.95)))
    # not the linear pool: its 5-95% band would span both families' (E 0.2 apart)
    np.testing.assert_allclose(got, w * own[0] + (1 - w) * own[1], atol=2e-3)
    assert res.summary["median"].iloc[0] == pytest.approx(np.exp(got[1]), rel=1e-3)
    assert res.summary["models"].iloc[0] == fam.weights_label()
    assert res.draws.sizes["chain"] == 1


def test_a_family_with_zero_weight_contributes_no_draws():
    fam = _pair(1.0)
    res = bs.predict_loss(fam, N, D, band="law", random_seed=0)
    got = np.log(np.quantile(np.asarray(res.draws).ravel(), (0.05, 0.5, 0.95)))
    np.testing.assert_allclose(got, _log_quantiles(fam.family("chinchilla")), atol=1e-3)


def test_tokens_and_optimal_use_the_weighted_average_with_paired_draws():
    fam = _pair(0.7, e_shift=0.05)
    tok = bs.tokens_needed(fam, N, 2.1, random_seed=0)
    own = [bs.tokens_needed(f, N, 2.1, random_seed=0).summary["median"].iloc[0]
           for f in fam.fits.values()]
    assert tok.summary["median"].iloc[0] == pytest.approx(
        np.exp(0.7 * np.log(own[0]) + 0.3 * np.log(own[1])), rel=0.02)
    c = 5.88e23
    opt = bs.compute_optimal(fam, c, random_seed=0)
    n_opt, d_opt = (np.asarray(opt.draws[q]).ravel() for q in ("n_opt", "d_opt"))
    # each draw's N_opt and D_opt stay paired: they spend the budget
    np.testing.assert_allclose(6 * n_opt * d_opt, c, rtol=1e-6)
    own_n = [np.median(np.asarray(bs.compute_optimal(f, c, random_seed=0).draws["n_opt"]))
             for f in fam.fits.values()]
    assert np.median(n_opt) == pytest.approx(
        np.exp(0.7 * np.log(own_n[0]) + 0.3 * np.log(own_n[1])), rel=0.02)


def test_every_familys_failed_gate_is_shown_with_the_average():
    fam = _pair(0.5, failed=True)
    res = bs.predict_loss(fam, N, D, random_seed=0)
    assert any(w.startswith("[farseer]") and "convergence gate" in w for w in res.warnings)
    assert "GATE FAILED" in fam.describe()
    assert not any("[chinchilla]" in w for w in res.warnings)


def test_weights_must_name_the_fits_and_be_non_negative():
    a = fake_fit("chinchilla", P, runs=RUNS, seed=1)
    with pytest.raises(BayesScalingError, match="weights"):
        FamilyFit({"chinchilla": a}, {"kaplan": 1.0})
    with pytest.raises(BayesScalingError, match="non-negative"):
        FamilyFit({"chinchilla": a}, {"chinchilla": -1.0})


# ------------------------------------------------------------------------------ the file
def test_a_family_file_round_trips_and_refuses_single_fit_loading(tmp_path):
    fam = _pair(0.6)
    path = fam.save(tmp_path / "fam.nc")
    back = load_fit(path)
    assert isinstance(back, FamilyFit)
    assert back.weights == pytest.approx(fam.weights)
    assert back.meta["weights_method"] == "given"
    for k in fam.names:
        np.testing.assert_array_equal(back.family(k).posterior["log_e"].values,
                                      fam.family(k).posterior["log_e"].values)
        assert back.family(k).spec.sha256() == fam.family(k).spec.sha256()
    with pytest.raises(FitFileError, match="load_fit"):
        ScalingFit.load(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.nc").write_bytes(bytes(raw))
    with pytest.raises(FitFileError, match="checksum"):
        load_fit(tmp_path / "bad.nc")


def test_load_fit_reads_a_single_fit_too(tmp_path):
    a = fake_fit("chinchilla", P, runs=RUNS, seed=1)
    a.save(tmp_path / "one.nc")
    assert isinstance(load_fit(tmp_path / "one.nc"), ScalingFit)


# ------------------------------------------------------------------------------ the CLI
def test_cli_queries_use_the_average_and_give_each_family_on_request(tmp_path, capsys):
    fam = _pair(0.75)
    path = str(fam.save(tmp_path / "fam.nc"))

    def run(*args):
        rc = main(list(args))
        out = capsys.readouterr()
        return rc, out.out, out.err

    rc, out, err = run("predict", path, "--n-params", "7e10", "--n-tokens", "1.4e12", "--json")
    assert rc == 0 and "weighted average of 2 law families" in err
    rec = json.loads(out)["records"][0]
    assert rec["models"] == fam.weights_label()
    rc, out, _ = run("predict", path, "--n-params", "7e10", "--n-tokens", "1.4e12", "--json",
                     "--family", "farseer")
    rec1 = json.loads(out)["records"][0]
    assert rc == 0 and "models" not in rec1
    assert rec1["median"] > rec["median"] * 1.03  # farseer's E is 0.2 higher
    rc, out, err = run("tokens", path, "--n-params", "7e10", "--target-loss", "2",
                       "--family", "kaplan")
    assert rc == 2 and "no family 'kaplan'" in err and err.count("\n") <= 2
    rc, out, _ = run("summary", path)
    assert rc == 0 and "weight 0.750" in out and "[farseer]" in out
    rc, out, _ = run("optimal", path, "--flops", "5.88e23")
    assert rc == 0 and "n_opt" in out


# ------------------------------------------------------------------------------ the weights
def test_a_short_ladder_takes_the_cross_ladder_weights():
    short = synthetic_runs("chinchilla", P, n_sizes=(1e8, 3e8, 1e9), tokens_per_param=(20,),
                           seed=0)
    w, meta = stk.stack_weights(short, ["chinchilla", "farseer"], random_seed=0)
    assert meta["weights_method"] == "cross-ladder"
    assert w == pytest.approx(stk.cross_ladder_weights(["chinchilla", "farseer"]))
    assert sum(w.values()) == pytest.approx(1.0)


def test_huber_refits_predict_every_group_of_a_multi_group_ladder():
    runs = synthetic_runs("chinchilla", P, n_sizes=tuple(np.geomspace(1e7, 1e9, 6)),
                          tokens_per_param=(10, 20, 40), noise=0.01, seed=4,
                          group_offsets={"a": {}, "b": {"log_e": 0.3}})
    pred = hld.heldout_predictions(runs, ["chinchilla"], tops=(1,), method="huber-bootstrap",
                                   fit_kwargs={"n_boot": 20, "calibrate": False}, draws=200,
                                   random_seed=0)["chinchilla"]
    assert np.isfinite(pred.table["log_pred_density"]).all()
    med = np.median(pred.samples, axis=0)
    err = np.abs(med - pred.table["observed"]) / pred.table["observed"]
    assert err.max() < 0.06  # each group's runs predicted by that group's own fit


def test_the_shared_discrepancy_is_learned_once_per_origin_for_every_family(monkeypatch):
    """Huber refits: the Chinchilla law's inner backtest of each origin serves every family
    (it was learned once per family and origin), and each refit's band carries it."""
    from bayes_scaling.fitting import calibrate

    runs = synthetic_runs("chinchilla", P, n_sizes=tuple(np.geomspace(1e7, 1e9, 7)),
                          tokens_per_param=(10, 20, 40), noise=0.01, seed=4)
    calls = []

    def counted(table, law, *a, **k):
        calls.append((table.fingerprint(), law))
        return calibrate.inner_backtest(table, law, *a, **k)

    monkeypatch.setattr(hld, "inner_backtest", counted)
    seen = []
    real_attach = hld.attach_discrepancy

    def attach(f, **k):
        seen.append((f.spec.name, k["backtest"].n_refits))
        return real_attach(f, **k)

    monkeypatch.setattr(hld, "attach_discrepancy", attach)
    hld.heldout_predictions(runs, ["chinchilla", "kaplan_e"], tops=(1, 2),
                            method="huber-bootstrap", fit_kwargs={"n_boot": 5}, draws=50,
                            random_seed=0)
    assert len(calls) == 2 and len(set(calls)) == 2 and {c[1] for c in calls} == {"chinchilla"}
    assert sorted(name for name, _ in seen) == ["chinchilla"] * 2 + ["kaplan_e"] * 2
    assert all(n > 0 for _, n in seen)


@pytest.mark.parametrize(("short", "k"), [(True, 10.0), (False, 10.0), (False, float("inf"))])
def test_fit_stacked_refits_only_when_the_ladder_gets_its_own_weights(monkeypatch, short, k):
    """The fits (faked here) and the stacking refits share one pool; a ladder whose origins
    predict too few runs, or any ladder when the shrinkage constant k is infinite, takes the
    cross-ladder weights without making any refit."""
    monkeypatch.setattr(stk, "shrink_k", lambda: k)
    # 12 token ratios a factor 1.13 apart: the top 1 and 2 budgets hold 10+ runs; 3 ratios: 3
    runs = synthetic_runs("chinchilla", P, n_sizes=tuple(np.geomspace(1e7, 1e9, 7)),
                          tokens_per_param=(10, 20, 40) if short else tuple(
                              np.geomspace(10, 40, 12)), noise=0.01, seed=4)
    fitted, refits = [], []
    monkeypatch.setattr(stk, "_fit_one", lambda model, runs, seed, kwargs: fitted.append(
        model.name) or fake_fit(model.name, {**P, "gamma": 0.0}, runs=runs, seed=seed,
                                extra={"kappa": 0.02, "tau0": 0.01}))
    real = stk.refit_task
    monkeypatch.setattr(stk, "refit_task", lambda **k: refits.append(k["k"]) or real(**k))
    plan = stk.stack_plan(runs, (1, 2))
    fam = stk.fit_stacked(runs, ["chinchilla", "farseer"], refit_kwargs={"n_boot": 5},
                          random_seed=0)
    assert fitted == ["farseer", "chinchilla"]  # the family with more constants first
    assert (plan["n_heldout"] < stk.MIN_OWN_ROWS) is short
    if short or np.isinf(k):
        assert refits == [] and fam.meta["weights_method"] == "cross-ladder"
        assert fam.meta["own"] is None and fam.meta["k"] == (10.0 if short else "inf")
    else:
        assert sorted(refits) == [1, 1, 2, 2]
        assert fam.meta["weights_method"] == "shrunk"
        assert fam.meta["n_heldout"] == fam.meta["n"] == plan["n_heldout"]
        assert fam.meta["k"] == 10.0 and set(fam.meta["own"]) == {"chinchilla", "farseer"}
    assert set(fam.meta["timings"]["fits"]) == {"chinchilla", "farseer"}


def test_cli_fit_of_several_models_saves_one_file_and_names_a_failed_gate(tmp_path, capsys,
                                                                          monkeypatch):
    """``fit --model a,b``: the fitting step replaced by two fake families, one failing."""
    fam = _pair(0.6, failed=True)
    seen = {}

    def planted(runs, models, **kw):
        seen.update(models=list(models), tops=list(kw["tops"]), method=kw["refit_method"])
        return fam

    monkeypatch.setattr(stk, "fit_stacked", planted)
    csv = tmp_path / "runs.csv"
    RUNS.frame.to_csv(csv, index=False)
    out = tmp_path / "fam.nc"
    rc = main(["fit", str(csv), "--model", "chinchilla,farseer", "--out", str(out), "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0 and seen == {"models": ["chinchilla", "farseer"], "tops": [1, 2],
                                "method": "huber-bootstrap"}
    assert isinstance(load_fit(out), FamilyFit)
    assert "GATE FAILED" in cap.out and "WARNING: farseer failed the convergence gate" in cap.err
    rc = main(["fit", str(csv), "--model", "chinchilla,farseer", "--out",
               str(tmp_path / "strict.nc"), "--strict", "--quiet"])
    assert rc == 2 and not (tmp_path / "strict.nc").exists()
