"""Tests of the runs table: loading, column mapping, validation messages, round trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_scaling.constants import CANONICAL_COLUMNS, DEFAULT_GROUP, RUN
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.errors import DataError
from tests.conftest import SHARED_DATA, require_shared

SHARED = require_shared(SHARED_DATA)
EPOCH_CSV = SHARED / "chinchilla_epoch" / "svg_extracted_data.csv"
MISFITTING_CSV = SHARED / "misfitting_openlm" / "misfitting_openlm_le420m.csv"
PORIAN_CSV = SHARED / "porian2024_isoflop" / "porian2024_isoflop.csv"
SHIPPED_CSV = Path(__file__).resolve().parents[1] / "data" / "chinchilla" / "chinchilla_runs.csv"


HEADER = "n_params,n_tokens,loss"
GOOD_ROWS = ["1e6,1e9,4.0", "2e6,2e9,3.5", "4e6,4e9,3.1", "8e6,8e9,2.9"]


def write(tmp_path: Path, text: str | bytes, name: str = "runs.csv") -> Path:
    """Write a file under tmp_path and return its path."""
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def csv_text(*rows: str, header: str = HEADER) -> str:
    """A CSV: header on line 1, then the rows (line 2, 3, ...)."""
    return "\n".join([header, *rows]) + "\n"


def load_error(source, **kwargs) -> str:
    """The message of the DataError that loading raises (checked to be one line)."""
    with pytest.raises(DataError) as info:
        load_runs(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


# --------------------------------------------------------------------------------------------
# Loading good tables
# --------------------------------------------------------------------------------------------
def test_minimal_csv_gets_defaults(tmp_path):
    runs = load_runs(write(tmp_path, csv_text(*GOOD_ROWS)))
    assert runs.n_runs == 4
    assert runs.run_ids == ("r0001", "r0002", "r0003", "r0004")
    assert runs.group_names == (DEFAULT_GROUP,)
    assert runs.group_index.tolist() == [0, 0, 0, 0]
    assert runs.group_index.dtype == np.int64
    np.testing.assert_array_equal(runs.flops, 6.0 * runs.n * runs.d)
    np.testing.assert_array_equal(runs.log_loss, np.log([4.0, 3.5, 3.1, 2.9]))
    assert list(runs.frame.columns) == ["run_id", "group", "n_params", "n_tokens", "flops", "loss"]
    assert runs.param_count == "total"
    assert runs.source.endswith("runs.csv")


def test_groups_in_order_of_first_appearance(tmp_path):
    rows = ["b,1e6,1e9,4.0", "a,2e6,2e9,3.5", "b,4e6,4e9,3.1", "c,8e6,8e9,2.9"]
    runs = load_runs(write(tmp_path, csv_text(*rows, header="group," + HEADER)))
    assert runs.group_names == ("b", "a", "c")
    assert runs.group_index.tolist() == [0, 1, 0, 2]
    assert runs.n_groups == 3


def test_aliases_and_optional_columns(tmp_path):
    header = "Run,N,D,Loss,LR,steps,n_params_nonembedding,extra"
    rows = ["x1,1e6,1e9,4,0.001,10,5e5,a", "x2,2e6,2e9,3.5,0.001,20,,b",
            "x3,4e6,4e9,3.1,0.002,40,3e6,c"]
    runs = load_runs(write(tmp_path, csv_text(*rows, header=header)))
    assert runs.run_ids == ("x1", "x2", "x3")
    assert list(runs.frame.columns) == ["run_id", "group", "n_params", "n_tokens", "flops",
                                        "loss", "n_params_nonembedding", "steps",
                                        "learning_rate"]
    assert np.isnan(runs.frame["n_params_nonembedding"][1])  # optional columns may hold NaN


def test_run_ids_keep_leading_zeros_and_text(tmp_path):
    rows = ["007,1e6,1e9,4.0", "008,2e6,2e9,3.5", "009,4e6,4e9,3.1"]
    runs = load_runs(write(tmp_path, csv_text(*rows, header="run_id," + HEADER)))
    assert runs.run_ids == ("007", "008", "009")


def test_tsv_and_parquet_give_the_same_fingerprint(tmp_path):
    csv = load_runs(write(tmp_path, csv_text(*GOOD_ROWS)))
    tsv = load_runs(write(tmp_path, csv_text(*(r.replace(",", "\t") for r in GOOD_ROWS),
                                             header=HEADER.replace(",", "\t")), "runs.tsv"))
    frame = pd.DataFrame({"n_params": [1e6, 2e6, 4e6, 8e6], "n_tokens": [1e9, 2e9, 4e9, 8e9],
                          "loss": [4.0, 3.5, 3.1, 2.9]})
    frame.to_parquet(tmp_path / "runs.parquet")
    pq = load_runs(tmp_path / "runs.parquet")
    df = load_runs(frame)
    assert csv.fingerprint() == tsv.fingerprint() == pq.fingerprint() == df.fingerprint()
    assert df.source == "<DataFrame>"
    assert load_runs(frame.assign(loss=frame["loss"] + 1e-12)).fingerprint() != df.fingerprint()
    assert load_runs(frame.assign(group="g")).fingerprint() != df.fingerprint()
    assert load_runs(frame.assign(run_id=list("abcd"))).fingerprint() != df.fingerprint()


def test_dataframe_source_is_not_modified():
    frame = pd.DataFrame({"N": [1e6, 2e6, 4e6], "D": [1e9, 2e9, 4e9], "L": [4.0, 3.5, 3.1]})
    before = frame.copy()
    load_runs(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_repeated_n_d_with_other_loss_is_allowed(tmp_path):
    rows = [*GOOD_ROWS, "1e6,1e9,4.01", "1e6,1e9,3.99"]  # seeds
    assert load_runs(write(tmp_path, csv_text(*rows))).n_runs == 6


def test_blank_lines_are_skipped_but_lines_stay_right(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROWS[0], "", GOOD_ROWS[1], "", "-3e6,3e9,3.2",
                                    *GOOD_ROWS[2:]))
    assert load_error(path).endswith("1 bad row; line 6: n_params <= 0 (-3e+06)")


def test_duplicates_drop_keeps_the_first(tmp_path):
    rows = [*GOOD_ROWS, "1e6,1e9,4.0"]
    runs = load_runs(write(tmp_path, csv_text(*rows)), duplicates="drop")
    assert runs.run_ids == ("r0001", "r0002", "r0003", "r0004")


# --------------------------------------------------------------------------------------------
# Bad input: one DataError, one line, naming the file, the line and the reason
# --------------------------------------------------------------------------------------------
def test_exact_message_format(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROWS[0], "-5,1e9,4", *GOOD_ROWS[1:3], "1e6,2e9,",
                                    GOOD_ROWS[3]))
    assert load_error(path) == (f"{path}: 2 bad rows; line 3: n_params <= 0 (-5); "
                                "line 6: loss is NaN")


COMMA_HINT = " (thousands separator or decimal comma? write digits only, with '.')"
BAD_ROW_CASES = {
    "nonpositive_n": ("0,1e9,4", "n_params <= 0 (0)"),
    "negative_d": ("3e6,-1e9,4", "n_tokens <= 0 (-1e+09)"),
    "nonpositive_loss": ("3e6,3e9,0", "loss <= 0 (0)"),
    "empty_loss": ("3e6,3e9,", "loss is NaN"),
    "nan_loss": ("3e6,3e9,NaN", "loss is NaN"),
    "inf_tokens": ("3e6,inf,3", "n_tokens is infinite"),
    "text": ("abc,3e9,3", "n_params 'abc' is not a number"),
    "thousands": ('"3,000,000",3e9,3', "n_params '3,000,000' is not a number" + COMMA_HINT),
    "decimal_comma": ('3e6,3e9,"3,2"', "loss '3,2' is not a number" + COMMA_HINT),
    "duplicate": ("2e6,2e9,3.5", "duplicate of line 3 (same group, n_params, n_tokens, loss)"),
    "two_fields": ("0,3e9,-1", "n_params <= 0 (0), loss <= 0 (-1)"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROW_CASES))
def test_each_bad_row_is_named(tmp_path, case):
    row, reason = BAD_ROW_CASES[case]
    path = write(tmp_path, csv_text(*GOOD_ROWS[:3], row, GOOD_ROWS[3]))  # the bad row: line 5
    assert load_error(path) == f"{path}: 1 bad row; line 5: {reason}"


def test_many_bad_rows_are_counted(tmp_path):
    rows = [*GOOD_ROWS] + [f"{k}e6,1e9,-1" for k in range(10, 33)]  # 23 bad rows: lines 6-28
    message = load_error(write(tmp_path, csv_text(*rows)))
    assert "23 bad rows; line 6: loss <= 0 (-1); line 7:" in message
    assert "line 15: loss <= 0 (-1)" in message and "line 16" not in message
    assert message.endswith(" (and 13 more)")


def test_run_id_must_be_unique(tmp_path):
    rows = ["a,1e6,1e9,4.0", "b,2e6,2e9,3.5", "a,4e6,4e9,3.1"]
    message = load_error(write(tmp_path, csv_text(*rows, header="run_id," + HEADER)))
    assert message.endswith("1 bad row; line 4: run_id 'a' repeats line 2")


def test_missing_group_is_named(tmp_path):
    rows = ["a,1e6,1e9,4.0", ",2e6,2e9,3.5", "a,4e6,4e9,3.1"]
    message = load_error(write(tmp_path, csv_text(*rows, header="group," + HEADER)))
    assert message.endswith("line 3: group is missing")


FILE_CASES = {
    "empty": ("", "file is empty"),
    "header_only": (HEADER + "\n", "no data rows"),
    "semicolons": (csv_text(*(r.replace(",", ";") for r in GOOD_ROWS),
                            header=HEADER.replace(",", ";")),
                   "found a single column 'n_params;n_tokens;loss': the file seems separated "
                   "by ';', not ','"),
    "missing_column": (csv_text("1e6,1e9,4", header="n_param,n_tokens,loss"),
                       "missing required column(s) n_params; found columns: n_param, n_tokens, "
                       "loss; n_params: n_param? (integers 1e6); map them with --columns "
                       "n_params=n_param"),
    "ragged": (csv_text(*GOOD_ROWS, "1,000,1e9,4"), "Expected 3 fields in line 6, saw 4"),
    "ambiguous": (csv_text("1,2,3,4", header="N,params,D,loss"),
                  "columns ['N', 'params'] all mean n_params"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_bad_files(tmp_path, case):
    text, reason = FILE_CASES[case]
    path = write(tmp_path, text)
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert reason in message


def test_not_utf8_names_the_line(tmp_path):
    data = csv_text(*GOOD_ROWS, header="n_params,n_tokens,loss,note").replace(
        "2.9\n", "2.9,caf\xe9\n").encode("latin-1")
    path = write(tmp_path, data)
    assert load_error(path).startswith(f"{path}: not UTF-8 text (line 5, byte")


def test_missing_and_unsupported_files(tmp_path):
    assert load_error(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: file not found"
    xlsx = write(tmp_path, "x", "runs.xlsx")
    assert "unsupported file type '.xlsx'" in load_error(xlsx)
    assert load_error(tmp_path).endswith("unsupported file type '(no suffix)'; use .csv, .tsv, "
                                         ".jsonl, .parquet or .pq")


def test_corrupt_parquet(tmp_path):
    path = write(tmp_path, "not parquet at all", "runs.parquet")
    assert load_error(path).startswith(f"{path}: cannot read as Parquet:")


def test_too_few_distinct_sizes(tmp_path):
    rows = ["1e6,1e9,4.0", "1e6,2e9,3.5", "2e6,4e9,3.1", "2e6,8e9,2.9"]
    path = write(tmp_path, csv_text(*rows))
    assert load_error(path) == (f"{path}: only 2 distinct n_params values (need at least 3 "
                                "each): the exponents cannot be identified")
    assert load_runs(path, min_distinct=("n_tokens",)).n_runs == 4


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"param_count": "embedding"}, "unknown param_count 'embedding'"),
    ({"param_count": "nonembedding"}, "needs an n_params_nonembedding column"),
    ({"drop_highest_loss": -1}, "drop_highest_loss must be an integer >= 0"),
    ({"drop_highest_loss": 4}, "drop_highest_loss=4 would drop all 4 runs"),
    ({"min_distinct": ("n_parameters",)}, "min_distinct names unknown column(s)"),
    ({"duplicates": "keep"}, "duplicates must be 'error' or 'drop'"),
    ({"query": "n_params >"}, "query 'n_params >' failed: SyntaxError"),
    ({"query": "nope == 1"}, "query 'nope == 1' failed"),
    ({"query": "n_params > 1e12"}, "query 'n_params > 1e12' selected none of the 4 rows"),
    ({"group_col": "setings"}, "group column 'setings' not found; found columns: n_params, "
                               "n_tokens, loss, setting; did you mean 'setting'"),
])
def test_bad_options(tmp_path, kwargs, reason):
    rows = [r + f",s{i % 2}" for i, r in enumerate(GOOD_ROWS)]
    path = write(tmp_path, csv_text(*rows, header=HEADER + ",setting"))
    assert reason in load_error(path, **kwargs)


def test_nonembedding_nan_names_the_line(tmp_path):
    rows = [r + ",5e5" for r in GOOD_ROWS]
    rows[2] = GOOD_ROWS[2] + ","
    path = write(tmp_path, csv_text(*rows, header=HEADER + ",n_params_nonembedding"))
    assert load_error(path, param_count="nonembedding").endswith(
        "1 bad row; line 4: n_params_nonembedding is NaN (needed for "
        "param_count='nonembedding')")


def test_query_uses_canonical_names_and_other_columns(tmp_path):
    rows = [r + f",{i % 2}" for i, r in enumerate([*GOOD_ROWS, "16e6,16e9,2.7", "3e6,3e9,3.3"])]
    path = write(tmp_path, csv_text(*rows, header="N,D,Loss,final"))
    runs = load_runs(path, query="final == 1 and n_params > 1e6")
    assert runs.run_ids == ("r0002", "r0004", "r0006")  # ids keep the source rows


def test_bad_rows_outside_the_query_are_ignored(tmp_path):
    rows = [r + ",1" for r in GOOD_ROWS] + ["-1,1e9,4,0"]
    path = write(tmp_path, csv_text(*rows, header=HEADER + ",keep"))
    assert load_runs(path, query="keep == 1").n_runs == 4


# --------------------------------------------------------------------------------------------
# Real data: Epoch's digitized Chinchilla runs, the shipped extract, other sets
# --------------------------------------------------------------------------------------------
def test_epoch_columns_are_mapped():
    runs = load_runs(EPOCH_CSV)
    raw = pd.read_csv(EPOCH_CSV, dtype=str)[["Model Size", "Training FLOP", "loss"]].map(float)
    assert runs.n_runs == 245
    np.testing.assert_array_equal(runs.n, raw["Model Size"].to_numpy())
    np.testing.assert_array_equal(runs.flops, raw["Training FLOP"].to_numpy())
    np.testing.assert_array_equal(runs.d, raw["Training FLOP"] / (6 * raw["Model Size"]))
    np.testing.assert_array_equal(runs.loss, raw["loss"].to_numpy())


def test_epoch_drops_the_five_highest_losses():
    all_runs = load_runs(EPOCH_CSV)
    kept = load_runs(EPOCH_CSV, drop_highest_loss=5)
    assert kept.n_runs == 240
    dropped = sorted(set(all_runs.run_ids) - set(kept.run_ids))
    losses = all_runs.frame.set_index("run_id").loc[dropped, "loss"]
    assert sorted(round(x, 3) for x in losses) == [3.447, 3.766, 3.794, 4.665, 5.006]
    assert kept.loss.max() < losses.min()


def test_shipped_extract_has_the_same_numbers_as_epochs_file():
    shipped, epoch = load_runs(SHIPPED_CSV), load_runs(EPOCH_CSV)
    assert shipped.source != epoch.source
    assert shipped.fingerprint() == epoch.fingerprint()
    assert list(pd.read_csv(SHIPPED_CSV).columns) == ["run_id", "n_params", "n_tokens", "flops",
                                                      "loss"]


def test_misfitting_checkpoints_and_final_rows():
    final = load_runs(MISFITTING_CSV, query="fraction_of_run == 1", duplicates="drop")
    assert final.n_runs == 223 and final.run_ids[0].startswith("2024_")
    assert "13 bad rows" in load_error(MISFITTING_CSV, query="fraction_of_run == 1")
    curves = load_runs(MISFITTING_CSV, duplicates="drop")  # run names a curve: ids generated
    assert curves.n_runs == 4223 - 13 and curves.run_ids[0] == "r0001"
    assert len(set(curves.run_ids)) == curves.n_runs


def test_group_col_and_xarray_netcdf_round_trip(tmp_path):
    runs = load_runs(PORIAN_CSV, group_col="setting")
    assert runs.n_groups == 5 and runs.n_runs == 1160
    names = np.array(runs.group_names)
    assert (names[runs.group_index] == runs.frame["group"].to_numpy()).all()
    path = tmp_path / "runs.nc"
    runs.to_xarray().to_netcdf(path, engine="h5netcdf")
    back = RunTable.from_xarray(xr.load_dataset(path, engine="h5netcdf"))
    assert back.fingerprint() == runs.fingerprint()
    assert (back.source, back.param_count) == (runs.source, runs.param_count)
    assert back.run_ids == runs.run_ids and back.group_names == runs.group_names
    pd.testing.assert_frame_equal(back.frame, runs.frame, check_dtype=False)


def test_round_trip_keeps_optional_columns_with_nan(tmp_path):
    runs = load_runs(MISFITTING_CSV, query="fraction_of_run == 1", duplicates="drop",
                     param_count="nonembedding")
    frame = runs.frame.copy()
    frame.loc[3, "learning_rate"] = np.nan
    runs = RunTable(frame, runs.source, runs.param_count)
    ds = runs.to_xarray()
    assert ds[RUN].values.tolist() == list(runs.run_ids)
    assert set(ds.data_vars) == set(runs.frame.columns) - {"run_id"}
    ds.to_netcdf(tmp_path / "r.nc", engine="h5netcdf")
    back = RunTable.from_xarray(xr.load_dataset(tmp_path / "r.nc", engine="h5netcdf"))
    assert back.fingerprint() == runs.fingerprint() and back.param_count == "nonembedding"
    assert np.isnan(back.frame.loc[3, "learning_rate"])


def test_from_xarray_refuses_tampered_data(tmp_path):
    runs = load_runs(write(tmp_path, csv_text(*GOOD_ROWS)))
    ds = runs.to_xarray()
    ds["loss"] = ds["loss"] * 1.01
    with pytest.raises(DataError, match="does not match its stored fingerprint"):
        RunTable.from_xarray(ds)
    with pytest.raises(DataError, match="no 'run' coordinate"):
        RunTable.from_xarray(xr.Dataset({"loss": ("x", [1.0])}))


# --------------------------------------------------------------------------------------------
# The RunTable's methods
# --------------------------------------------------------------------------------------------
def test_subset_reindexes_and_recomputes_groups(tmp_path):
    rows = ["b,1e6,1e9,4.0", "a,2e6,2e9,3.5", "b,4e6,4e9,3.1", "c,8e6,8e9,2.9"]
    runs = load_runs(write(tmp_path, csv_text(*rows, header="group," + HEADER)))
    sub = runs.subset(np.array([False, True, True, False]))
    assert sub.run_ids == ("r0002", "r0003") and sub.group_names == ("a", "b")
    assert sub.frame.index.tolist() == [0, 1] and sub.source == runs.source
    assert runs.subset([3, 0]).run_ids == ("r0004", "r0001")
    for bad in ([True, False], [7], [], [0.5]):
        with pytest.raises(DataError):
            runs.subset(bad)


def test_with_param_count_recomputes_derived_flops_only():
    base = {"n_params": [1e6, 2e6, 4e6], "n_tokens": [1e9, 2e9, 4e9], "loss": [4.0, 3.5, 3.1],
            "n_params_nonembedding": [5e5, 1.5e6, 3.5e6]}
    derived = load_runs(pd.DataFrame(base)).with_param_count("nonembedding")
    np.testing.assert_array_equal(derived.n, [5e5, 1.5e6, 3.5e6])
    np.testing.assert_array_equal(derived.flops, 6.0 * derived.n * derived.d)
    given = load_runs(pd.DataFrame({**base, "flops": [7e15, 2.5e16, 1e17]}))
    kept = given.with_param_count("nonembedding")
    np.testing.assert_array_equal(kept.flops, [7e15, 2.5e16, 1e17])
    assert kept.fingerprint() != given.fingerprint()
    assert kept.with_param_count("nonembedding") is kept
    with pytest.raises(DataError, match="reload with param_count='total'"):
        kept.with_param_count("total")
    with pytest.raises(DataError, match="unknown param_count"):
        given.with_param_count("both")


def test_range_summary(tmp_path):
    summary = load_runs(write(tmp_path, csv_text(*GOOD_ROWS, "8e6,1e9,3.0"))).range_summary()
    assert summary["n_min"] == 1e6 and summary["n_max"] == 8e6
    assert summary["d_min"] == 1e9 and summary["d_max"] == 8e9
    assert summary["flops_max"] == 6 * 8e6 * 8e9 and summary["loss_min"] == 2.9
    assert (summary["n_distinct"], summary["d_distinct"], summary["n_runs"]) == (4, 4, 5)


def test_constructor_refuses_non_canonical_frames():
    with pytest.raises(DataError, match="not a canonical runs frame"):
        RunTable(pd.DataFrame({"n": [1.0]}), "<x>")
    assert set(CANONICAL_COLUMNS) >= {"run_id", "group", "n_params", "n_tokens", "flops", "loss"}


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------
POSITIVE = st.floats(min_value=1e-3, max_value=1e15, allow_nan=False, allow_infinity=False)
ROWS = st.lists(st.tuples(POSITIVE, POSITIVE, POSITIVE), min_size=3, max_size=25,
                unique=True)
BAD_VALUES = {0.0: "<= 0", -1.0: "<= 0", math.nan: "is NaN", math.inf: "is infinite",
              "abc": "is not a number"}


def frame_of(rows, offset: int) -> pd.DataFrame:
    """A DataFrame of (n_params, n_tokens, loss) rows, index starting at ``offset``."""
    cols = {c: [r[i] for r in rows] for i, c in enumerate(("n_params", "n_tokens", "loss"))}
    return pd.DataFrame(cols, index=range(offset, offset + len(rows)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(rows=ROWS, offset=st.integers(0, 1000), data=st.data())
def test_positive_tables_load_and_one_bad_value_is_found(rows, offset, data, tmp_path_factory):
    ns, ds = {r[0] for r in rows}, {r[1] for r in rows}
    if len(ns) < 3 or len(ds) < 3:
        return
    frame = frame_of(rows, offset)
    runs = load_runs(frame)
    assert runs.n_runs == len(rows)
    np.testing.assert_array_equal(runs.n, frame["n_params"].to_numpy())
    np.testing.assert_array_equal(runs.loss, frame["loss"].to_numpy())
    path = tmp_path_factory.mktemp("prop") / "runs.csv"
    frame.to_csv(path, index=False)
    assert load_runs(path).fingerprint() == runs.fingerprint()  # exact floats through a CSV

    i = data.draw(st.integers(0, len(rows) - 1), label="row")
    col = data.draw(st.sampled_from(["n_params", "n_tokens", "loss"]), label="column")
    bad = data.draw(st.sampled_from(list(BAD_VALUES)), label="value")
    cells = {c: list(frame[c]) for c in frame.columns}
    cells[col][i] = bad
    broken = pd.DataFrame(cells, index=frame.index)
    message = load_error(broken)
    assert message.startswith(f"<DataFrame>: 1 bad row; row {offset + i}: {col} ")
    assert BAD_VALUES[bad] in message


def test_best_of_sweeps_keeps_the_lowest_loss_run_per_group_size_and_budget():
    import pandas as pd

    frame = pd.DataFrame({
        "group": ["a", "a", "a", "b", "b", "a", "a"],
        "n_params": [1e7, 1e7, 2e7, 1e7, 1e7, 1e7, 3e7],
        "n_tokens": [1e9, 1e9, 1e9, 1e9, 1e9, 2e9, 3e9],
        "loss": [3.2, 3.1, 3.0, 3.5, 3.6, 2.9, 2.8]})
    runs = load_runs(frame).best_of_sweeps()
    assert runs.n_runs == 5
    assert sorted(zip(runs.frame["group"], runs.loss, strict=True)) == [
        ("a", 2.8), ("a", 2.9), ("a", 3.0), ("a", 3.1), ("b", 3.5)]
