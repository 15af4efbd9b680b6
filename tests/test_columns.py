"""Tables named otherwise: column mapping, proposals of likely columns, FLOP units, JSON Lines.

The tracker-style fixture ``tests/fixtures/tracker_export.csv`` holds 88 real IsoFLOP points of
Porian et al. (2024) under an experiment tracker's headers (``make_tracker_export.py`` beside it
says how); the Gemstones JSON Lines (McLeish et al. 2025) are read as they come from the
shared data folder.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.columns import describe, short_number
from bayes_scaling.data.curves import load_curves
from bayes_scaling.data.runs import load_runs
from bayes_scaling.data.units import check_flops, flops_scale, flops_unit_name
from bayes_scaling.errors import DataError, DataWarning, ProposalError
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.testing import synthetic_curves
from tests.conftest import SHARED_DATA, require_shared
from tests.test_bad_inputs import run_cli

TRACKER = Path(__file__).parent / "fixtures" / "tracker_export.csv"
GEMSTONES = SHARED_DATA / "gemstones" / "wandb_df_for_fitting_cool_end.jsonl"
MAPPING = {"n_params": "parameter_count", "n_tokens": "tokens_seen",
           "loss": "eval/refinedweb/loss", "flops": "total_gflops"}


def error_of(source, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_runs(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------ the mapping
def test_a_tracker_export_loads_with_a_mapping_and_a_flops_unit():
    raw = pd.read_csv(TRACKER)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # 6 N D agrees: no warning
        runs = load_runs(TRACKER, columns=MAPPING, flops_unit="GFLOP")
    assert runs.n_runs == len(raw) == 88
    np.testing.assert_array_equal(runs.n, raw["parameter_count"].to_numpy(float))
    np.testing.assert_array_equal(runs.d, raw["tokens_seen"].to_numpy(float))
    np.testing.assert_array_equal(runs.loss, raw["eval/refinedweb/loss"].to_numpy(float))
    np.testing.assert_allclose(runs.flops, raw["total_gflops"].to_numpy(float) * 1e9, rtol=1e-15)


def test_the_mapping_chooses_the_loss_column():
    raw = pd.read_csv(TRACKER)
    other = load_runs(TRACKER, columns={**MAPPING, "loss": "eval/openwebtext2/loss"},
                      flops_unit="GFLOP")
    np.testing.assert_array_equal(other.loss, raw["eval/openwebtext2/loss"].to_numpy(float))


def test_a_mapped_column_wins_over_one_named_like_the_canonical_column():
    frame = pd.DataFrame({"n_params": [1e7, 1e8, 1e9] * 2, "n_tokens": [2e8, 2e9, 2e10] * 2,
                          "loss": [9.0] * 6, "eval/c4/loss": [4.1, 3.5, 3.0, 4.0, 3.4, 2.9],
                          "setting": list("aaabbb")})
    runs = load_runs(frame, columns={"loss": "eval/c4/loss", "group": "setting"},
                     min_distinct=())
    np.testing.assert_array_equal(runs.loss, frame["eval/c4/loss"].to_numpy())
    assert runs.group_names == ("a", "b")


def test_missing_columns_are_proposed_by_name_and_content():
    message = error_of(TRACKER)
    assert "missing required column(s) n_params, n_tokens (or flops), loss" in message
    assert "n_params: parameter_count? (integers 5.2e6–9e8)" in message
    assert "n_tokens: tokens_seen? (integers 3.6e7–1.9e10)" in message
    assert ("loss: several loss-like columns, eval/refinedweb/loss (numbers 2.98–6.6), "
            "eval/openwebtext2/loss (numbers 2.65–6.42): choose one") in message
    assert "--columns n_params=parameter_count,n_tokens=tokens_seen,loss=CHOSEN" in message


def test_the_issue_header_gets_one_proposal_per_column_and_a_choice_of_loss():
    """The header of issue 22, values from the fixture (train/loss: eval minus 0.05)."""
    d = pd.read_csv(TRACKER)
    frame = pd.DataFrame({
        "run_name": d.run_name, "parameter_count": d.parameter_count,
        "tokens_seen": d.tokens_seen, "total_gflops": d.total_gflops,
        "eval/c4_en/loss": d["eval/refinedweb/loss"], "eval/wiki/loss": d["eval/openwebtext2/loss"],
        "train/loss": d["eval/refinedweb/loss"] - 0.05, "trainer.batch_size": 256,
        "optimizer.lr": 3e-4, "model.d_model": 512, "model.n_layers": 8})
    message = error_of(frame)
    assert ("n_params: parameter_count? (integers 5.2e6–9e8); n_tokens: tokens_seen? (integers "
            "3.6e7–1.9e10); loss: several loss-like columns, eval/c4_en/loss (numbers 2.98–6.6), "
            "eval/wiki/loss (numbers 2.65–6.42), train/loss (numbers 2.93–6.55): choose one") \
        in message
    runs = load_runs(frame, flops_unit="GFLOP", columns={
        "n_params": "parameter_count", "n_tokens": "tokens_seen", "loss": "train/loss",
        "flops": "total_gflops", "learning_rate": "optimizer.lr"})
    np.testing.assert_array_equal(runs.loss, frame["train/loss"].to_numpy())
    assert set(runs.frame["learning_rate"]) == {3e-4}


def test_without_a_name_hint_columns_are_proposed_by_content():
    frame = pd.DataFrame({"a": [10_000_000, 100_000_000, 1_000_000_000],
                          "b": [3.9, 3.1, 2.6], "c": ["x", "y", "z"], "n_tokens": [1e9] * 3})
    message = error_of(frame)
    assert "n_params: a? (integers 1e7–1e9)" in message
    assert "loss: b? (numbers 2.6–3.9)" in message
    assert "c?" not in message  # a text column is never proposed for a number


def test_a_loss_spelling_beside_another_loss_like_column_is_not_guessed():
    frame = pd.DataFrame({"n_params": [1e7, 1e8, 1e9], "n_tokens": [1e8, 1e9, 1e10],
                          "final_loss": [3.9, 3.1, 2.6], "val_loss": [4.0, 3.2, 2.7]})
    assert "several loss-like columns, final_loss (numbers 2.6–3.9), val_loss" in error_of(frame)
    chosen = load_runs(frame, columns={"loss": "val_loss"}, min_distinct=())
    np.testing.assert_array_equal(chosen.loss, [4.0, 3.2, 2.7])


@pytest.mark.parametrize("columns, reason", [
    ({"n_param": "parameter_count"}, "unknown canonical column 'n_param' (did you mean n_params?)"),
    ({"n_params": "param_count"}, "the table has no column 'param_count'; did you mean "
                                  "'parameter_count'?"),
    ({"n_params": "run_name"}, "column 'run_name' holds text (e.g. 'isoflop-1.25e+16-n5173248'), "
                               "not numbers"),
    ({"n_params": "parameter_count", "n_params_nonembedding": "parameter_count"},
     "maps column 'parameter_count' to both n_params and n_params_nonembedding"),
    ({"n_params": ""}, "column mapping n_params= must name a column"),
    (["n_params"], "must map canonical names to column names"),
])
def test_bad_mappings_are_refused_in_one_line(columns, reason):
    assert reason in error_of(TRACKER, columns=columns)


def test_a_true_false_column_mapped_to_a_number_is_refused():
    frame = pd.DataFrame({"n_params": [1e7, 1e8, 1e9], "n_tokens": [1e8, 1e9, 1e10],
                          "loss": [3.9, 3.1, 2.6], "flag": [True, False, True]})
    assert "column 'flag' holds true/false values" in error_of(frame, columns={"steps": "flag"})


def test_describe_and_short_numbers():
    assert short_number(1.6e8) == "1.6e8" and short_number(1.23e10) == "1.2e10"
    assert short_number(2.3149) == "2.31" and short_number(3e-4) == "0.0003"
    assert describe(pd.Series([160_000_000, 12_000_000_000])) == "integers 1.6e8–1.2e10"
    assert describe(pd.Series(["a", "b"])) == "text, e.g. 'a'"


# ------------------------------------------------------------------------------ FLOP units
def test_flops_units_convert_to_flop():
    assert flops_scale("GFLOP", "x") == 1e9
    assert flops_scale("gflops", "x") == 1e9
    assert flops_scale("PF-days", "x") == flops_scale("petaflop-days", "x") == 8.64e19
    assert flops_unit_name("pf_days", "x") == "PF-days"
    with pytest.raises(DataError, match="x: unknown FLOP unit 'furlongs'"):
        flops_scale("furlongs", "x")


def test_the_6nd_check_names_the_ratio_and_the_convention():
    n, d = np.array([1e8, 1e9, 1e10]), np.array([2e9, 2e10, 2e11])
    assert check_flops(n, d, 6 * n * d * 1.05, name="r.csv", column="c") is None  # within 10%
    note = check_flops(n, d, 2 * n * d, name="r.csv", column="c")
    assert note is not None
    assert "on 3 of 3 runs" in note and "median 0.333" in note and "2·N·D" in note
    odd = check_flops(n, d, 6 * n * d * np.array([1.0, 1.0, 1.5]), name="r.csv", column="c")
    assert odd is not None and "on 1 of 3 runs" in odd and "median 1," in odd
    with pytest.raises(DataError, match="pass --flops-unit GFLOP"):
        check_flops(n, d, 6 * n * d / 1e9, name="r.csv", column="c")


def test_a_2nd_flops_column_warns_when_loaded():
    frame = pd.read_csv(TRACKER)
    frame["total_gflops"] = frame["total_gflops"] / 3  # a 2·N·D convention
    with pytest.warns(DataWarning, match=r"median 0\.333.*2·N·D"):
        load_runs(frame, columns=MAPPING, flops_unit="GFLOP")
    message = error_of(TRACKER, columns=MAPPING)  # GFLOP read as FLOP
    assert "'total_gflops' read in FLOP is 1e-09 × 6·N·D" in message
    assert "pass --flops-unit GFLOP" in message


def test_a_flops_unit_without_a_flops_column_is_refused():
    assert "flops_unit='GFLOP' given, but the table has no FLOP column" in error_of(
        TRACKER, columns={k: v for k, v in MAPPING.items() if k != "flops"}, flops_unit="gflops")


def test_flops_alone_in_pf_days_gives_the_tokens():
    frame = pd.read_csv(TRACKER)
    frame["pf_days"] = frame["total_gflops"] * 1e9 / 8.64e19
    runs = load_runs(frame.drop(columns=["tokens_seen", "total_gflops"]),
                     columns={"n_params": "parameter_count", "flops": "pf_days",
                              "loss": "eval/refinedweb/loss"}, flops_unit="PF-days")
    np.testing.assert_allclose(runs.d, frame["tokens_seen"], rtol=1e-8)


# ------------------------------------------------------------------------------ JSON Lines
def test_nested_json_lines_are_flattened_with_slashes(tmp_path):
    raw = pd.read_csv(TRACKER).head(12)
    path = tmp_path / "export.jsonl"
    lines = [json.dumps({"run": {"name": r.run_name}, "model": {"params": int(r.parameter_count)},
                         "tokens": int(r.tokens_seen),
                         "eval": {"c4": {"loss": r["eval/refinedweb/loss"]}}, "tags": ["a"]})
             for _, r in raw.iterrows()]
    path.write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    message = error_of(path)
    assert "found columns: run/name, model/params, tokens, eval/c4/loss, tags" in message
    runs = load_runs(path, columns={"n_params": "model/params", "loss": "eval/c4/loss",
                                    "run_id": "run/name"})
    np.testing.assert_array_equal(runs.loss, raw["eval/refinedweb/loss"].to_numpy())
    assert runs.run_ids == tuple(raw["run_name"])
    lines[7] = lines[7].replace('"tokens": ', '"tokens": "many", "x": ')
    path.write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    assert "1 bad row; line 9: n_tokens 'many' is not a number" in error_of(
        path, columns={"n_params": "model/params", "loss": "eval/c4/loss"})


@pytest.mark.parametrize("text, reason", [
    ('{"a": 1}\n{"a": 2\n', "line 2 is not valid JSON"),
    ('{"a": 1}\n[1, 2]\n', "line 2 holds a JSON list, not an object"),
    ('{"a/b": 1, "a": {"b": 2}}\n', "line 1: key 'a/b' appears twice"),
    ("\n\n", "file is empty"),
])
def test_broken_json_lines_are_refused_in_one_line(tmp_path, text, reason):
    path = tmp_path / "runs.jsonl"
    path.write_text(text)
    assert error_of(path).startswith(f"{path}: {reason}")


def test_the_gemstones_json_lines_load_as_they_come():
    require_shared(GEMSTONES)
    # Python's json parses exactly (correctly rounded); pandas' read_json may not
    raw = pd.DataFrame([json.loads(line) for line in GEMSTONES.read_text().splitlines()])
    runs = load_runs(GEMSTONES, columns={"n_params": "params_active_precise",
                                         "n_tokens": "tokens", "loss": "final_loss"})
    assert runs.n_runs == len(raw) == 199
    np.testing.assert_array_equal(runs.n, raw["params_active_precise"].to_numpy(float))
    np.testing.assert_array_equal(runs.loss, raw["final_loss"].to_numpy(float))
    assert len(set(runs.run_ids)) == 199  # run_name names a model, not a row: ids generated


# ------------------------------------------------------------------------------ curves
def test_curve_tables_take_the_same_mapping():
    curves = synthetic_curves(PUBLISHED["kaplan2020_dynamics"], n_sizes=(1e6, 1e7, 1e8),
                              batch_sizes=(2**18,), steps=np.geomspace(1e3, 1e5, 5))
    renamed = curves.frame.rename(columns={"run_id": "name", "n_params": "params_active",
                                           "steps": "trainer/global_step",
                                           "batch_size_tokens": "tokens_per_batch",
                                           "loss": "eval/loss"})
    with pytest.raises(DataError, match="trainer/global_step") as info:
        load_curves(renamed, warmup_fraction=0.0)
    assert "for loss curves" in str(info.value)
    mapped = load_curves(renamed, warmup_fraction=0.0, columns={
        "run_id": "name", "n_params": "params_active", "steps": "trainer/global_step",
        "batch_size_tokens": "tokens_per_batch", "loss": "eval/loss"})
    assert mapped.fingerprint() == load_curves(curves.frame, warmup_fraction=0.0).fingerprint()
    with pytest.raises(DataError, match="unknown canonical column 'flops'"):
        load_curves(renamed, columns={"flops": "x"})


# ------------------------------------------------------------------------------ proposal, CLI
PROPOSAL = {"name": "p", "runs": {"files": [str(TRACKER)], "columns": dict(MAPPING),
                                  "flops_unit": "GFLOP"},
            "plan": {"n_params": 1e9, "n_tokens": 2e10, "target_loss": 3.0},
            "models": {"families": ["chinchilla"]}}


def test_a_proposal_carries_the_mapping_to_load_runs():
    prop = Proposal.from_dict(PROPOSAL)
    assert prop.runs.loader == {"columns": MAPPING, "flops_unit": "GFLOP"}
    assert load_runs(prop.runs.files[0], **prop.runs.loader).n_runs == 88
    bad = {**PROPOSAL, "runs": {"files": [str(TRACKER)], "columns": {"n_param": "x"}}}
    with pytest.raises(ProposalError, match=r"runs\.columns names unknown canonical column "
                                            r"'n_param'; did you mean 'n_params'"):
        Proposal.from_dict(bad)
    for value in ("n_params=x", {"loss": 3}):
        with pytest.raises(ProposalError, match=r"runs\.columns"):
            Proposal.from_dict({**PROPOSAL, "runs": {"files": [str(TRACKER)], "columns": value}})


@pytest.mark.parametrize("command", ["fit", "compare", "backtest"])
def test_the_cli_reads_a_tracker_export_with_columns(tmp_path, command):
    argv = [command, str(TRACKER), "--columns", ",".join(f"{k}={v}" for k, v in MAPPING.items()),
            "--flops-unit", "GFLOP", *(["--out", str(tmp_path / "f.nc")] if command == "fit"
                                       else [])]
    outcome = run_cli(argv, tmp_path)
    assert outcome.crash is None and outcome.sampled, outcome.err  # got as far as fitting
    assert "warning" not in outcome.err


def test_the_cli_prints_the_6nd_warning(tmp_path):
    frame = pd.read_csv(TRACKER)
    frame["total_gflops"] = frame["total_gflops"] / 3
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    argv = ["fit", str(path), "--out", str(tmp_path / "f.nc"), "--flops-unit", "GFLOP",
            "--columns", ",".join(f"{k}={v}" for k, v in MAPPING.items())]
    outcome = run_cli(argv, tmp_path)
    assert outcome.sampled
    assert outcome.err.startswith("bayes-scaling: warning: ")
    assert "disagrees with 6·N·D by more than ±10% on 88 of 88 runs" in outcome.err


def test_the_cli_reads_the_gemstones_json_lines(tmp_path):
    require_shared(GEMSTONES)
    argv = ["fit", str(GEMSTONES), "--out", str(tmp_path / "g.nc"), "--columns",
            "n_params=params_active_precise,n_tokens=tokens,loss=final_loss,steps=step"]
    outcome = run_cli(argv, tmp_path)
    assert outcome.crash is None and outcome.sampled, outcome.err
