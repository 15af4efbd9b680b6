"""Bad input, fuzzed: every broken runs table, fit file, proposal or argument gets one clear line.

Two layers:

- the catalogue ``tests/bad_inputs/cases.toml``: one small file (or one recipe on the fixture fit)
  per case and the message it must produce;
- hypothesis properties generating broken runs tables, fit files, proposals and arguments for
  every CLI command.

Each case runs ``bayes_scaling.cli.app.main`` in-process and must: exit with status 2; print exactly
one stderr line ``bayes-scaling: error: ...`` (no traceback, no stray warning); name the input
file where there is one; leave every file in its working folder as it was; and never start a
sampler (the fit entry points are replaced by a tripwire). ``benchmarks/bench_reliability.py``
runs the same properties with >= 200 examples per command and reports the counts.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import tomllib
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_scaling.cli.app import main

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "bad_inputs"
FIXTURE_FIT = HERE / "fixtures" / "fit_v0.1.nc"
GOOD_RUNS = CATALOGUE / "runs" / "good_ladder.csv"
#: Content of the output file that exists before each command and must survive it.
PREVIOUS_OUTPUT = b"the previous good output\n"
#: Examples per property in the test suite (the benchmark runs >= 200 per command); cases
#: that rewrite a netCDF file cost ~0.3 s each and get fewer.
EXAMPLES = int(os.environ.get("BAYES_SCALING_FUZZ_EXAMPLES", "40"))
_SETTINGS = {"deadline": None, "derandomize": True, "database": None,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much]}
FUZZ = settings(max_examples=EXAMPLES, **_SETTINGS)
FUZZ_COSTLY = settings(max_examples=max(EXAMPLES // 2, 10), **_SETTINGS)
FIT_COMMANDS = ("predict", "tokens", "optimal", "summary")


# ------------------------------------------------------------------------------ the harness
class SamplingStarted(BaseException):
    """Raised by the tripwire: a bad input got as far as fitting."""


def _tripwire(*_args: Any, **_kwargs: Any) -> Any:
    raise SamplingStarted("a fit entry point was called")


@contextlib.contextmanager
def no_sampling() -> Iterator[None]:
    """Replace every entry point that fits or samples with :func:`_tripwire`."""
    import bayes_scaling.evaluate.compare
    import bayes_scaling.evaluate.parallel
    import bayes_scaling.fitting.fit
    import bayes_scaling.report.fits

    originals = [bayes_scaling.fitting.fit.fit, bayes_scaling.fitting.fit.fit_baseline,
                 bayes_scaling.report.fits.obtain_fit]
    if "bayes_scaling.model.sampling" in sys.modules:
        originals.append(sys.modules["bayes_scaling.model.sampling"].sample)
    targets = [(bayes_scaling.evaluate.compare, "fit_families"),
               (bayes_scaling.evaluate.parallel, "run_many")]
    for name, module in list(sys.modules.items()):
        if name.startswith("bayes_scaling") and module is not None:
            targets += [(module, attr) for attr, value in vars(module).items()
                        if any(value is o for o in originals)]
    saved = [(m, a, getattr(m, a)) for m, a in targets]
    try:
        for m, a, _ in saved:
            setattr(m, a, _tripwire)
        yield
    finally:
        for m, a, value in saved:
            setattr(m, a, value)


@dataclass
class Outcome:
    """What one CLI call did."""

    code: int | None
    out: str
    err: str
    crash: str | None = None          # the traceback of an exception that escaped main()
    sampled: bool = False             # the tripwire fired
    changed: list[str] = field(default_factory=list)  # files created, changed or removed
    warned: list[str] = field(default_factory=list)   # warnings a user would see on stderr

    @property
    def err_lines(self) -> list[str]:
        return [*self.err.splitlines(), *self.warned]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_cli(argv: Sequence[str], workspace: Path) -> Outcome:
    """Run ``bayes-scaling argv`` in-process inside ``workspace`` and record what it did."""
    before = snapshot(workspace)
    out, err = io.StringIO(), io.StringIO()
    code, crash, sampled = None, None, False
    cwd = Path.cwd()
    os.chdir(workspace)
    try:
        with (no_sampling(), warnings.catch_warnings(record=True) as seen,
              contextlib.redirect_stdout(out), contextlib.redirect_stderr(err)):
            warnings.simplefilter("always")
            try:
                code = main(list(argv))
            except SamplingStarted:
                sampled = True
            except BaseException:  # anything escaping main() is the finding
                crash = traceback.format_exc()
    finally:
        os.chdir(cwd)
    after = snapshot(workspace)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    shown = [f"{w.category.__name__}: {w.message}" for w in seen
             if issubclass(w.category, RuntimeWarning | UserWarning)
             and not issubclass(w.category, DeprecationWarning)]
    return Outcome(code, out.getvalue(), err.getvalue(), crash, sampled, changed, shown)


def problems(outcome: Outcome, *, message: str | None = None,
             names: str | None = None) -> list[str]:
    """Why ``outcome`` is not a clean refusal of bad input ([] when it is)."""
    if outcome.crash:
        return [f"traceback:\n{outcome.crash}"]
    found = []
    if outcome.sampled:
        found.append("a fit started")
    if outcome.code != 2:
        found.append(f"exit status {outcome.code}, not 2")
    lines = outcome.err_lines
    if len(lines) != 1 or not lines[0].startswith("bayes-scaling: error: "):
        found.append(f"stderr is not one error line: {lines!r}")
    if "Traceback" in outcome.err:
        found.append("a traceback on stderr")
    if outcome.changed:
        found.append(f"files changed: {outcome.changed}")
    if message is not None and message not in outcome.err:
        found.append(f"message lacks {message!r}: {outcome.err!r}")
    if names is not None and names not in outcome.err:
        found.append(f"message does not name {names!r}: {outcome.err!r}")
    return found


def assert_rejected(outcome: Outcome, **kw: Any) -> None:
    """Fail with every problem of ``outcome`` (see :func:`problems`)."""
    found = problems(outcome, **kw)
    assert not found, "; ".join(found)


def make_workspace(root: Path) -> dict[str, Path]:
    """A folder with a good fit, a good runs table, an existing output file and folder."""
    root.mkdir(parents=True, exist_ok=True)
    places = {"fit": root / "fit.nc", "runs": root / "runs.csv", "out": root / "out.nc",
              "outdir": root / "outdir", "missing": root / "missing" / "nothing.csv"}
    shutil.copyfile(FIXTURE_FIT, places["fit"])
    shutil.copyfile(GOOD_RUNS, places["runs"])
    places["out"].write_bytes(PREVIOUS_OUTPUT)
    places["outdir"].mkdir(exist_ok=True)
    return places


@contextlib.contextmanager
def workspace() -> Iterator[tuple[Path, dict[str, Path]]]:
    """A fresh temporary workspace (hypothesis examples cannot share pytest's tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="bad_input_") as tmp:
        root = Path(tmp)
        yield root, make_workspace(root)


# ------------------------------------------------------------------------------ fit recipes
def derive_fit(steps: Sequence[Sequence[Any]], src: Path, dest: Path) -> Path:
    """Apply the catalogue's ``derive`` steps to a copy of the fit file ``src``."""
    data = bytearray(src.read_bytes())
    semantic = [s for s in steps if s[0] not in ("truncate", "flip", "zero", "invert",
                                                  "prepend")]
    if semantic:
        _rewrite_fit(semantic, src, dest)
        data = bytearray(dest.read_bytes())
    for step in steps:
        op, args = step[0], step[1:]
        body = len(data) - _trailer_len(data)
        if op == "truncate":
            data = data[: int(args[0] * len(data))]
        elif op == "flip":
            k = min(int(args[0] * body), body - 1)
            data[k] ^= 1 << (int(args[1]) if len(args) > 1 else 0)
        elif op in ("zero", "invert"):  # a block of the HDF5 body set to 0 or inverted
            k = min(int(args[0] * body), body - 1)
            end = min(k + int(args[1]), body)
            data[k:end] = (bytes(end - k) if op == "zero"
                           else bytes(b ^ 0xFF for b in data[k:end]))
        elif op == "prepend":
            data = bytearray(str(args[0]).encode()) + data
    dest.write_bytes(bytes(data))
    return dest


def _trailer_len(data: bytes | bytearray) -> int:
    from bayes_scaling.fitting.result import _TRAILER_LEN, CHECKSUM_TAG

    tail = bytes(data[-_TRAILER_LEN:])
    return _TRAILER_LEN if tail.startswith(CHECKSUM_TAG) else 0


def _rewrite_fit(steps: Sequence[Sequence[Any]], src: Path, dest: Path) -> None:
    """Rewrite the netCDF groups of ``src`` to ``dest`` with attribute/variable edits."""
    import xarray as xr

    groups = {}
    for g in ("posterior", "sample_stats", "fit_data"):
        with (contextlib.suppress(OSError, KeyError, ValueError),
              xr.open_dataset(src, group=g, engine="h5netcdf") as ds):
            groups[g] = ds.load()
    for op, *args in steps:
        post = groups.get("posterior")
        if op == "set_attr":
            post.attrs[args[0]] = args[1]
        elif op == "del_attr":
            post.attrs.pop(args[0], None)
        elif op == "replace_in_attr":
            post.attrs[args[0]] = str(post.attrs[args[0]]).replace(args[1], args[2])
        elif op == "drop_var":
            post = post.drop_vars(args[0])
        elif op == "drop_group":
            groups.pop(args[0], None)
        elif op == "string_var":
            post[args[0]] = post[args[0]].astype(str)
        elif op == "add_dim":
            post[args[0]] = post[args[0]].expand_dims(extra=2, axis=-1)
        elif op == "nan_half":  # the first half of every chain's draws
            post[args[0]] = post[args[0]].where(post["draw"] >= post.sizes["draw"] // 2)
        elif op == "set_run":
            column, index, value = args
            values = groups["fit_data"][column].values.copy()
            values[int(index)] = value
            groups["fit_data"][column] = (groups["fit_data"][column].dims, values)
        if op != "drop_group":
            groups["posterior"] = post
    mode = "w"
    for name, ds in groups.items():
        ds.to_netcdf(dest, mode=mode, group=name, engine="h5netcdf")
        mode = "a"


# ------------------------------------------------------------------------------ the catalogue
def load_cases() -> list[dict[str, Any]]:
    """The cases of ``tests/bad_inputs/cases.toml``."""
    return tomllib.loads((CATALOGUE / "cases.toml").read_text(encoding="utf-8"))["case"]


CASES = load_cases()


def case_argv(case: dict[str, Any], places: dict[str, Path], root: Path) -> tuple[list[str],
                                                                               str | None]:
    """The argv of a catalogue case in a workspace, and the file name its error must name."""
    subs = {k: str(v) for k, v in places.items()}
    names = None
    if "file" in case:
        subs["case"] = str(CATALOGUE / case["file"])
        names = Path(case["file"]).name
    elif "derive" in case:
        subs["case"] = str(derive_fit(case["derive"], FIXTURE_FIT, root / f"{case['id']}.nc"))
        names = f"{case['id']}.nc"
    if not case.get("names_file", True):
        names = None
    return [a.format(**subs) for a in case["argv"]], names


def test_the_catalogue_is_complete():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100
    used = {c["file"] for c in CASES if "file" in c}
    files = {str(p.relative_to(CATALOGUE)) for p in CATALOGUE.rglob("*")
             if p.is_file() and p.name != "cases.toml"}
    assert files - used == {"runs/good_ladder.csv"}  # every file is a case (but the good one)
    assert used <= files
    kinds = {c["argv"][0] for c in CASES}
    assert {"fit", "compare", "backtest", "report", "data", *FIT_COMMANDS} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_catalogue_case(case, tmp_path):
    places = make_workspace(tmp_path / "ws")
    argv, names = case_argv(case, places, tmp_path)
    outcome = run_cli(argv, tmp_path / "ws")
    assert_rejected(outcome, message=case["message"], names=names)


def test_the_good_inputs_of_the_catalogue_pass(tmp_path):
    """The control: the good fit and runs the cases start from are accepted."""
    places = make_workspace(tmp_path / "ws")
    ok = run_cli(["predict", str(places["fit"]), "--n-params", "1e9", "--n-tokens", "2e10",
                  "--group", "web"], tmp_path / "ws")
    assert ok.code == 0 and not ok.crash and "median" in ok.out
    started = run_cli(["fit", str(places["runs"]), "--out", str(places["out"])],
                      tmp_path / "ws")
    assert started.sampled  # a good table gets as far as fitting (the tripwire)


# ------------------------------------------------------------------------------ runs tables
REQUIRED = ("n_params", "n_tokens", "loss")
SPELLINGS = {"n_params": ("n_params", "N", "params", "Model Size"),
             "n_tokens": ("n_tokens", "D", "tokens", "training-tokens"),
             "loss": ("loss", "L", "final_loss", "Loss"),
             "flops": ("flops", "C", "compute", "Training FLOP"),
             "run_id": ("run_id", "run_id", "Run-ID"), "group": ("group",)}
MISSPELLED = {"n_params": ("n_param", "nparams", "num_parameter", "size"),
              "loss": ("los", "lossx", "val_loss", "loss_final"),
              "n_tokens": ("n_token", "ntokens", "toks")}
NOT_NUMBERS = ("diverged", "?", "TRUE", "false", "1e", "--", "1.2.3", "0x1F", "1e9x",
               "e9", "seven", "1 000", "+-3", ".", "1_000")


@dataclass
class RunsCase:
    """A broken runs table: file name, bytes, and substrings its error must contain."""

    name: str
    data: bytes
    expect: tuple[str, ...]
    mutation: str


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text


@st.composite
def base_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """A valid runs table: header, rows (text cells) and canonical name -> header name."""
    k = draw(st.integers(3, 6))
    sizes = np.geomspace(1e7, 1e7 * 10 ** draw(st.floats(1.0, 3.0)), k)
    ratios = draw(st.lists(st.sampled_from([5.0, 10.0, 20.0, 40.0, 80.0]), min_size=1,
                           max_size=3, unique=True))
    if len(ratios) * k < 3 or len(ratios) < 2:
        ratios = [10.0, 20.0, 40.0][: max(2, len(ratios))]
    cols = ["n_params", "n_tokens", "loss"]
    if draw(st.booleans()):
        cols.append("flops")
    if draw(st.booleans()):
        cols.append("run_id")
    groups = draw(st.sampled_from([None, ("a",), ("a", "b")]))
    if groups:
        cols.append("group")
    cols = draw(st.permutations(cols))
    header = {c: draw(st.sampled_from(SPELLINGS[c])) for c in cols}
    fmt = draw(st.sampled_from(["{:.6g}", "{!r}", "{:.8e}"]))
    rows = []
    for g_i, g in enumerate(groups or (None,)):
        for n in map(float, sizes):
            for r in ratios:
                d = n * r
                loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28 + 0.01 * g_i
                cells = {"n_params": fmt.format(float(n)), "n_tokens": fmt.format(d),
                         "loss": f"{loss:.6f}", "flops": fmt.format(6 * n * d),
                         "run_id": f"run{len(rows) + 1:03d}", "group": g}
                rows.append([cells[c] for c in cols])
    return list(cols), rows, header


def _serialize(cols: Sequence[str], rows: Sequence[Sequence[str]], header: dict[str, str],
               sep: str = ",") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow([header[c] for c in cols])
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


MUTATIONS = ("drop_column", "misspell_column", "text_cell", "nan_cell", "inf_cell",
             "nonpositive_cell", "duplicate_row", "single_size", "one_row", "empty_file",
             "header_only", "wrong_delimiter", "huge_values", "non_utf8", "thousands_quoted",
             "thousands_unquoted", "decimal_comma", "unterminated_quote", "wrong_suffix",
             "duplicate_id", "missing_group", "binary")


@st.composite
def broken_runs(draw: st.DrawFn) -> RunsCase:
    """A runs table with one defect, and what its error must say."""
    cols, rows, header = draw(base_tables())
    name = "runs.csv"
    mutation = draw(st.sampled_from(MUTATIONS))
    numeric = [c for c in cols if c in (*REQUIRED, "flops")]
    i = draw(st.integers(0, len(rows) - 1))
    line = f"line {i + 2}"
    data, expect = None, ()
    if mutation == "drop_column":
        gone = draw(st.sampled_from(["n_params", "loss"] + (
            ["n_tokens"] if "flops" not in cols else [])))
        keep = [j for j, c in enumerate(cols) if c != gone]
        data = _serialize([cols[j] for j in keep], [[r[j] for j in keep] for r in rows], header)
        expect = ("missing required column(s)", gone)
    elif mutation == "misspell_column":
        gone = draw(st.sampled_from(["n_params", "loss"] + (
            ["n_tokens"] if "flops" not in cols else [])))
        header = {**header, gone: draw(st.sampled_from(MISSPELLED[gone]))}
        expect = ("missing required column(s)", gone)
    elif mutation in ("text_cell", "nan_cell", "inf_cell", "nonpositive_cell",
                      "thousands_quoted", "decimal_comma"):
        big = [c for c in numeric if c != "loss"]  # values >= 1000: room for separators
        c = draw(st.sampled_from(big if mutation == "thousands_quoted" else numeric))
        value, reason = {
            "text_cell": (draw(st.sampled_from(NOT_NUMBERS)), "is not a number"),
            "nan_cell": (draw(st.sampled_from(["nan", "NaN", ""])), "is NaN"),
            "inf_cell": (draw(st.sampled_from(["inf", "-inf", "Infinity", "1e400", "-1e999"])),
                         "is infinite"),
            "nonpositive_cell": (draw(st.sampled_from(["0", "-0", "-1", "-3.5e9", "0.0"])),
                                 "<= 0"),
            "thousands_quoted": (f"{int(float(rows[i][cols.index(c)])):,}",
                                 "thousands separator"),
            "decimal_comma": (rows[i][cols.index(c)].replace(".", ","), "is not a number"),
        }[mutation]
        if mutation == "decimal_comma" and "," not in value:
            value = value + ",5"
        rows[i][cols.index(c)] = value
        expect = (f"{line}: {c} ", reason)
    elif mutation == "duplicate_row":
        rows.insert(i + 1, list(rows[i]))
        expect = (f"line {i + 3}: ", f"{line}")
    elif mutation == "single_size":
        j = cols.index("n_params")
        for r in rows:
            r[j] = rows[0][j]
        expect = ("only 1 distinct n_params value", "cannot be identified")
    elif mutation == "one_row":
        rows = rows[i:i + 1]
        expect = ("only 1 distinct n_params value",)
    elif mutation == "empty_file":
        data, expect = draw(st.sampled_from([b"", b"\n", b"  \n\n", b"\r\n"])), ("is empty",)
    elif mutation == "header_only":
        data, expect = _serialize(cols, [], header), ("no data rows",)
    elif mutation == "wrong_delimiter":
        data = _serialize(cols, rows, header, draw(st.sampled_from([";", "|", "\t"])))
        expect = ("seems separated by",)
    elif mutation == "huge_values":
        if "flops" in cols:
            rows[i][cols.index("n_params")] = "1e309"
            expect = (f"{line}: n_params is infinite",)
        else:
            rows[i][cols.index("n_params")] = "1e200"
            rows[i][cols.index("n_tokens")] = "1e200"
            expect = (f"{line}: flops = 6 N D is inf",)
    elif mutation == "non_utf8":
        j = draw(st.integers(0, len(cols) - 1))
        text = _serialize(cols, rows, header).decode()
        lines = text.split("\n")
        cells = lines[i + 1].split(",")
        bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\xe9", b"\x80", b"\xc3"]))
        cells[j] = cells[j] + "\x00MARK"
        lines[i + 1] = ",".join(cells)
        data = "\n".join(lines).encode().replace(b"\x00MARK", bad)
        expect = (f"not UTF-8 text ({line},",)
    elif mutation == "thousands_unquoted":
        j = cols.index("n_params")
        text = _serialize(cols, rows, header).decode().split("\n")
        cells = next(csv.reader([text[i + 1]]))
        cells[j] = f"{int(float(cells[j])):,}"
        text[i + 1] = ",".join(f'"{v}"' if "," in v and k != j else v
                               for k, v in enumerate(cells))
        data = "\n".join(text).encode()
        expect = (f"line {i + 2}", "fields")
    elif mutation == "unterminated_quote":
        j = draw(st.integers(0, len(cols) - 1))
        text = _serialize(cols, rows, header).decode().split("\n")
        cells = next(csv.reader([text[i + 1]]))
        cells[j] = '"' + cells[j]
        text[i + 1] = ",".join(f'"{v}"' if "," in v and k != j else v
                               for k, v in enumerate(cells))
        data = "\n".join(text).encode()
        expect = (f"a quote opened on {line} is never closed",)
    elif mutation == "wrong_suffix":
        name = "runs" + draw(st.sampled_from([".txt", ".xlsx", ".json", ".dat", ""]))
        expect = ("unsupported file type",)
    elif mutation == "duplicate_id":
        if "run_id" not in cols:
            cols, rows = [*cols, "run_id"], [[*r, f"x{k}"] for k, r in enumerate(rows)]
            header = {**header, "run_id": "run_id"}
        j = cols.index("run_id")
        other = (i + 1) % len(rows)
        rows[max(i, other)][j] = rows[min(i, other)][j]
        expect = (f"line {max(i, other) + 2}: run_id", f"repeats line {min(i, other) + 2}")
    elif mutation == "missing_group":
        if "group" not in cols:
            cols, rows = [*cols, "group"], [[*r, "a"] for r in rows]
            header = {**header, "group": "group"}
        rows[i][cols.index("group")] = ""
        expect = (f"{line}: group is missing",)
    elif mutation == "binary":
        data = draw(st.binary(min_size=1, max_size=400))
        expect = ()
    if data is None:
        data = _serialize(cols, rows, header)
    return RunsCase(name, data, expect, mutation)


def check_runs_case(command: str, case: RunsCase) -> list[str]:
    """Problems of ``bayes-scaling <command>`` on a broken runs table ([] if none)."""
    with workspace() as (root, places):
        path = root / case.name
        path.write_bytes(case.data)
        argv = {"fit": ["fit", str(path), "--out", str(places["out"])],
                "compare": ["compare", str(path)],
                "backtest": ["backtest", str(path)]}[command]
        outcome = run_cli(argv, root)
    found = problems(outcome, names=case.name)
    found += [f"message lacks {e!r}: {outcome.err!r}" for e in case.expect
              if e not in outcome.err]
    return found


@pytest.mark.parametrize("command", ["fit", "compare", "backtest"])
def test_broken_runs_tables_are_refused_clearly(command):
    @FUZZ
    @given(case=broken_runs())
    def check(case):
        found = check_runs_case(command, case)
        assert not found, f"{case.mutation}: {found}"

    check()


# ------------------------------------------------------------------------------ fit files
BYTE_STEPS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
    st.tuples(st.just("flip"), st.floats(0.0, 1.0), st.integers(0, 7)),
    st.tuples(st.just("invert"), st.floats(0.0, 1.0), st.integers(1, 8192)),
    st.tuples(st.just("prepend"), st.sampled_from(["x", "\n", "CDF\x01", "PK"])),
)
ATTRS = ("bayes_scaling_format", "spec_json", "spec_hash", "data_sha256", "diagnostics_json",
         "meta_json")
REQUIRED_ATTRS = ATTRS[:-1]  # meta_json is optional: a fit without it loads
LAW_VARS = ("log_e", "log_a", "log_b", "alpha", "beta")
#: Text an HDF5 attribute can hold (variable-length strings cannot hold NUL).
ATTR_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
                    max_size=64)
JUNK = st.one_of(ATTR_TEXT, st.integers(-5, 10**6), st.floats(allow_nan=True),
                 st.sampled_from(["{}", "[]", "null", '{"max_rhat": "x"}', "1e999", "0"]))
#: Semantic edits that must always be refused.
SEMANTIC_STEPS = st.one_of(
    st.tuples(st.just("del_attr"), st.sampled_from(REQUIRED_ATTRS)),
    st.tuples(st.just("set_attr"), st.sampled_from(["spec_hash", "data_sha256"]), ATTR_TEXT),
    st.tuples(st.just("set_attr"), st.just("bayes_scaling_format"),
              st.one_of(st.integers(2, 10**6), st.integers(-10**6, 0),
                        ATTR_TEXT.filter(lambda s: _as_int(s) != 1))),
    st.tuples(st.just("replace_in_attr"), st.just("spec_json"), st.sampled_from(
        ['"', "{", "chinchilla", "studentt", "alpha", "0.", ","]),
        st.text(alphabet="xyz0123456789", min_size=1, max_size=3)),
    st.tuples(st.just("drop_var"), st.sampled_from(LAW_VARS)),
    st.tuples(st.just("string_var"), st.sampled_from((*LAW_VARS, "sigma"))),
    st.tuples(st.just("add_dim"), st.sampled_from((*LAW_VARS, "sigma", "kappa"))),
    st.tuples(st.just("nan_half"), st.sampled_from((*LAW_VARS, "sigma", "kappa"))),
    st.tuples(st.just("drop_group"), st.sampled_from(["fit_data", "posterior"])),
    st.tuples(st.just("set_run"), st.sampled_from(["loss", "n_params", "n_tokens"]),
              st.integers(0, 29), st.floats(0.5, 1e12)),
)
#: Edits that may or may not leave a usable fit: only "never a traceback" is asserted.
LOOSE_STEPS = st.tuples(st.just("set_attr"), st.sampled_from(ATTRS), JUNK)


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _query_argv(command: str, path: Path) -> list[str]:
    tail = {"predict": ["--n-params", "7e10", "--n-tokens", "1.4e12", "--group", "web"],
            "tokens": ["--n-params", "7e10", "--target-loss", "2.1", "--group", "web"],
            "optimal": ["--flops", "5.88e23", "--group", "web"], "summary": []}[command]
    return [command, str(path), *tail]


def check_fit_case(command: str, steps: Sequence[Sequence[Any]], *,
                   strict: bool = True) -> list[str]:
    """Problems of a query command on a fit file broken by ``steps`` ([] if none).

    With ``strict`` the file must be refused; otherwise it may load (exit 0) but must never
    produce a traceback or more than one error line.
    """
    with workspace() as (root, _places):
        path = derive_fit(steps, FIXTURE_FIT, root / "broken.nc")
        outcome = run_cli(_query_argv(command, path), root)
    if not strict and outcome.code == 0 and not outcome.crash:
        return [] if not outcome.changed else [f"files changed: {outcome.changed}"]
    return problems(outcome, names="broken.nc")


@pytest.mark.parametrize("command", FIT_COMMANDS)
def test_damaged_fit_files_are_refused_clearly(command):
    @FUZZ
    @given(step=BYTE_STEPS)
    def check(step):
        found = check_fit_case(command, [step])
        assert not found, f"{step}: {found}"

    check()


@FUZZ_COSTLY
@given(step=SEMANTIC_STEPS, command=st.sampled_from(FIT_COMMANDS))
def test_edited_fit_files_are_refused_clearly(step, command):
    found = check_fit_case(command, [step])
    assert not found, f"{command} {step}: {found}"


@FUZZ_COSTLY
@given(step=LOOSE_STEPS, command=st.sampled_from(FIT_COMMANDS))
def test_junk_attributes_never_crash(step, command):
    found = check_fit_case(command, [step], strict=False)
    assert not found, f"{step}: {found}"


# ------------------------------------------------------------------------------ query arguments
def _valid_numbers(text: str) -> bool:
    """Whether the CLI should accept ``text`` as a list of positive, finite numbers."""
    import re

    if re.fullmatch(r"\s*\d{1,3}(,\d{3})+\s*", text):
        return False
    parts = [p for p in text.split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return False
    return bool(values) and all(math.isfinite(v) and v > 0 for v in values)


NUMBER_TEXT = st.one_of(
    st.text(alphabet="0123456789.,-+eE_ nainfx", max_size=12),
    st.sampled_from(["", "-1", "0", "nan", "inf", "-inf", "1e400", "7e10,", ",", "1e9,-1",
                     "1,000", "70,000,000,000", "seven", "1e9;1e10", "0x10", "1e-400"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def query_args(draw: st.DrawFn, commands: Sequence[str] = ("predict", "tokens", "optimal"),
               ) -> tuple[str, list[str], bool]:
    """``(command, argv tail, valid)`` with one argument drawn from broken values."""
    command = draw(st.sampled_from(list(commands)))
    good = {"predict": {"--n-params": "7e10", "--n-tokens": "1.4e12"},
            "tokens": {"--n-params": "7e10", "--target-loss": "2.1"},
            "optimal": {"--flops": "5.88e23"}}[command]
    args = {**good, "--group": "web"}
    option = draw(st.sampled_from([*good, "--group", "--interval"]))
    if option == "--group":
        value = draw(st.text(max_size=10))
        valid = value in ("web", "code", "new")
    elif option == "--interval":
        value = draw(NUMBER_TEXT)
        try:
            valid = 0 < float(value) < 1
        except ValueError:
            valid = False
    elif option == "--target-loss":
        value = draw(NUMBER_TEXT)
        try:
            valid = math.isfinite(float(value)) and float(value) > 0
        except ValueError:
            valid = False
    else:
        value = draw(NUMBER_TEXT)
        valid = _valid_numbers(value)
    args[option] = value
    return command, [a for kv in args.items() for a in kv], valid


def check_query_args(command: str, tail: Sequence[str], valid: bool) -> list[str]:
    """Problems of one query call with possibly broken arguments ([] if none)."""
    with workspace() as (root, places):
        outcome = run_cli([command, str(places["fit"]), *tail], root)
    if outcome.crash:
        return [f"traceback:\n{outcome.crash}"]
    if valid:
        return [] if outcome.code == 0 else [f"valid arguments refused: {outcome.err!r}"]
    return problems(outcome)


@FUZZ
@given(call=query_args())
def test_broken_query_arguments_are_refused_clearly(call):
    command, tail, valid = call
    found = check_query_args(command, tail, valid)
    assert not found, f"{command} {tail}: {found}"


# ------------------------------------------------------------------------------ proposals
BASE_PROPOSAL: dict[str, Any] = {
    "name": "fuzzed-plan", "title": "A plan", "seed": 1,
    "runs": {"files": [str(GOOD_RUNS)]},
    "plan": {"n_params": 7e10, "n_tokens": 1.4e12, "target_loss": 2.0},
    "models": {"families": ["chinchilla"]},
    "fit": {"chains": 2, "draws": 100, "tune": 100},
    "backtest": {"enabled": False},
}
#: field -> kind of value it takes.
FIELDS = {("plan", "n_params"): "pos", ("plan", "n_tokens"): "pos",
          ("plan", "target_loss"): "pos", ("plan", "batch_size"): "pos", ("", "seed"): "int0",
          ("fit", "chains"): "int1", ("fit", "draws"): "int10", ("fit", "tune"): "int0",
          ("fit", "target_accept"): "unit", ("fit", "strict"): "bool",
          ("backtest", "enabled"): "bool", ("backtest", "holdout_by"): "choice",
          ("backtest", "holdout_top"): "int1", ("fit", "backend"): "choice",
          ("", "title"): "str", ("", "name"): "name", ("models", "families"): "families",
          ("runs", "files"): "files"}
ANY_VALUE = st.one_of(st.text(max_size=8), st.booleans(), st.integers(-10, 10),
                      st.floats(allow_nan=True, allow_infinity=True),
                      st.lists(st.integers(0, 3), max_size=2),
                      st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3),
                                      max_size=1))


def _bad_value(kind: str) -> st.SearchStrategy[Any]:
    """Values a field of ``kind`` must refuse."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    return {
        "pos": ANY_VALUE.filter(lambda v: not (isinstance(v, int | float) and not isinstance(
            v, bool) and math.isfinite(v) and v > 0)),
        "int0": ANY_VALUE.filter(lambda v: not (is_int(v) and v >= 0)),
        "int1": ANY_VALUE.filter(lambda v: not (is_int(v) and v >= 1)),
        "int10": ANY_VALUE.filter(lambda v: not (is_int(v) and v >= 10)),
        "unit": ANY_VALUE.filter(lambda v: not (isinstance(v, int | float) and not isinstance(
            v, bool) and 0 < v < 1)),
        "bool": ANY_VALUE.filter(lambda v: not isinstance(v, bool)),
        "choice": ANY_VALUE.filter(lambda v: v not in ("n_params", "flops", "numpyro",
                                                       "nutpie", "pymc")),
        "str": ANY_VALUE.filter(lambda v: not isinstance(v, str)),
        "name": st.one_of(st.text(max_size=70).filter(
            lambda v: not (0 < len(v) <= 64 and v[0].isascii() and v[0].isalnum() and all(
                c.isascii() and (c.isalnum() or c in "_.-") for c in v))), ANY_VALUE.filter(
            lambda v: not isinstance(v, str))),
        "families": st.one_of(st.just([]), st.just(["chinchilla", "chinchilla"]),
                              st.lists(st.sampled_from(["chinchila", "gpt", "x.toml", " "]),
                                       min_size=1, max_size=2, unique=True),
                              st.integers(), st.just([1])),
        "files": st.one_of(st.just([]), st.just(["no_such_runs.csv"]),
                           st.lists(st.text(alphabet="abc_.", min_size=1, max_size=6)
                                    .filter(lambda s: s not in ("chinchilla",)),
                                    min_size=1, max_size=2, unique=True), st.integers()),
    }[kind]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else
                                            "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(x)}"
                               for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def to_toml(doc: dict[str, Any]) -> str:
    """A minimal TOML writer (top-level keys, then one level of tables)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for table, body in doc.items():
        if isinstance(body, dict):
            lines += ["", f"[{table}]", *(f"{_toml_string(k)} = {_toml_value(v)}"
                                          for k, v in body.items())]
    return "\n".join(lines) + "\n"


@dataclass
class ProposalCase:
    """A broken proposal: its bytes and what its error must contain."""

    data: bytes
    expect: tuple[str, ...]
    mutation: str


@st.composite
def broken_proposals(draw: st.DrawFn) -> ProposalCase:
    """A proposal with one defect, and what its error must say."""
    doc = json.loads(json.dumps(BASE_PROPOSAL))
    mutation = draw(st.sampled_from(["bad_value", "drop_required", "unknown_key", "syntax",
                                     "not_utf8", "three_sizes", "one_size", "table_as_value"]))
    expect: tuple[str, ...] = ()
    if mutation == "bad_value":
        table, key = draw(st.sampled_from(sorted(FIELDS)))
        value = draw(_bad_value(FIELDS[(table, key)]))
        (doc.setdefault(table, {}) if table else doc)[key] = value
        expect = (f"{table}.{key}" if table else key,)
    elif mutation == "drop_required":
        table, key = draw(st.sampled_from([("", "runs"), ("", "plan"), ("", "models"),
                                           ("", "name"), ("runs", "files"),
                                           ("plan", "target_loss"),
                                           ("models", "families")]))
        (doc[table] if table else doc).pop(key)
        expect = (key,)
    elif mutation == "unknown_key":
        table = draw(st.sampled_from(["", "runs", "plan", "models", "fit", "backtest"]))
        key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
                   .filter(lambda k: k not in {"name", "title", "description", "seed", "runs",
                                               "plan", "models", "fit", "backtest", "dynamics",
                                               "files", "group", "group_col", "query",
                                               "drop_highest_loss", "param_count", "n_params",
                                               "n_tokens", "flops", "batch_size",
                                               "target_loss", "families", "chains", "draws",
                                               "tune", "backend", "target_accept", "strict",
                                               "enabled", "holdout_by", "holdout_top",
                                               "baseline", "columns", "flops_unit"}))
        (doc[table] if table else doc)[key] = 1
        expect = ("unknown key", key)
    elif mutation == "three_sizes":
        doc["plan"]["flops"] = 5.88e23
        expect = ("plan.flops is implied",)
    elif mutation == "one_size":
        gone = draw(st.sampled_from(["n_params", "n_tokens"]))
        doc["plan"].pop(gone)
        expect = (f"plan.{gone} is required",)
    elif mutation == "table_as_value":
        table = draw(st.sampled_from(["runs", "plan", "models", "fit", "backtest"]))
        doc[table] = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans()))
        expect = (f"[{table}] must be a table",)
    text = to_toml(doc)
    if mutation == "syntax":
        lines = text.split("\n")
        at = draw(st.integers(0, len(lines) - 1))
        lines.insert(at, draw(st.sampled_from(["[[[", "= 1", "name =", 'x = "open', "[plan",
                                               "plan.n_params = 1", "a = 1 = 2", "]"])))
        text = "\n".join(lines)
        expect = ()
    data = text.encode("utf-8")
    if mutation == "not_utf8":
        data = data.replace(b"A plan", b"A plan \xe9\xff")
        expect = ("cannot read the proposal",)
    return ProposalCase(data, expect, mutation)


def check_proposal_case(case: ProposalCase) -> list[str]:
    """Problems of ``bayes-scaling report`` on a broken proposal ([] if none)."""
    with workspace() as (root, places):
        path = root / "plan.toml"
        path.write_bytes(case.data)
        outcome = run_cli(["report", str(path), "--out", str(places["outdir"])], root)
    found = problems(outcome, names="plan.toml")
    found += [f"message lacks {e!r}: {outcome.err!r}" for e in case.expect
              if e not in outcome.err]
    return found


@FUZZ
@given(case=broken_proposals())
def test_broken_proposals_are_refused_clearly(case):
    found = check_proposal_case(case)
    assert not found, f"{case.mutation} {case.data[:300]!r}: {found}"


# ------------------------------------------------------------------------------ data command
def check_data_name(sub: str, name: str) -> list[str]:
    """Problems of ``bayes-scaling data <sub> <name>`` for an unknown name ([] if none)."""
    with workspace() as (root, _):
        outcome = run_cli(["data", sub, name], root)
    return problems(outcome, message="unknown data set")


@FUZZ
@given(sub=st.sampled_from(["path", "verify"]),
       name=st.text(min_size=1, max_size=20).filter(
           lambda s: s not in ("chinchilla", "misfitting_openlm", "porian2024_isoflop",
                               "steplaw_dense") and not s.startswith("-")))
def test_unknown_data_sets_are_refused_clearly(sub, name):
    found = check_data_name(sub, name)
    assert not found, f"{name!r}: {found}"
