"""Read a runs source into canonical columns: the row-level half of :mod:`bayes_scaling.data.runs`.

A ``.csv``/``.tsv`` (UTF-8), ``.jsonl`` (JSON Lines: one object per line, nested keys flattened
with ``/``) or ``.parquet``/``.pq`` file, or a DataFrame, is read with a label per row (file line
or row index); its columns are mapped to the canonical names (:mod:`bayes_scaling.data.columns`:
the user's mapping, then known spellings), a FLOP column is converted to FLOP; cells are
parsed exactly, ``n_tokens`` or ``flops`` is derived when absent, and every bad cell is collected
per row. Also the safe query filter (comparisons and arithmetic only, nothing executes) and the
row checks (duplicates, repeated run ids) with their one-line message. ``data`` builds the
:class:`~bayes_scaling.data.runs.RunTable` from what this returns; this module never imports
``runs``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.constants import (
    CANONICAL_COLUMNS,
    DEFAULT_GROUP,
    EVAL_SET_COLUMN,
    FLOPS_PER_PARAM_TOKEN,
    OPTIONAL_COLUMNS,
)
from bayes_scaling.data.columns import (
    COLUMN_ALIASES,
    missing_message,
    normalize,
    rename_columns,
    resolve_columns,
)
from bayes_scaling.data.units import flops_scale
from bayes_scaling.errors import DataError

_STRINGS = ("run_id", "group", EVAL_SET_COLUMN)
_NUMERIC = tuple(c for c in CANONICAL_COLUMNS if c not in _STRINGS)
_FILE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None, ".jsonl": None,
                    ".ndjson": None}
_DUPLICATE_KEY = ["group", "n_params", "n_tokens", "loss"]
_MAX_REPORTED = 10  # bad rows spelled out in one message; the rest are counted


def _one_line(text: object) -> str:
    """Collapse all whitespace (newlines included) so a message stays on one line."""
    return " ".join(str(text).split())


def _read_source(source: Any, group_col: str | None,
                 aliases: Mapping[str, Sequence[str]] | None = None,
                 mapped: set[str] | frozenset[str] = frozenset(),
                 ) -> tuple[pd.DataFrame, list[str], str]:
    """Read a file or copy a DataFrame; return it, a label per index value and the source name.

    ``aliases`` (default :data:`COLUMN_ALIASES`) and ``mapped`` (the source columns of the
    user's mapping) name the columns read from delimited files as text (ids and groups stay as
    written; numbers are parsed later).
    """
    if isinstance(source, pd.DataFrame):
        labels = [f"row {i}" for i in source.index]
        raw = source.reset_index(drop=True)
        raw.columns = [str(c) for c in raw.columns]
        return raw, labels, "<DataFrame>"
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path or a DataFrame, not {type(source).__name__}")
    path, name = Path(source), str(source)
    suffix = path.suffix.lower()
    if suffix not in _FILE_SEPARATORS:
        raise DataError(f"{name}: unsupported file type {suffix or '(no suffix)'!r}; "
                        "use .csv, .tsv, .jsonl, .parquet or .pq")
    if not path.exists():
        raise DataError(f"{name}: file not found")
    if not path.is_file():
        raise DataError(f"{name}: not a file")
    if suffix in (".jsonl", ".ndjson"):
        raw = _read_jsonl(path, name)
        return raw, [f"line {i + 1}" for i in range(int(raw.index.max()) + 1)], name
    if _FILE_SEPARATORS[suffix] is None:
        raw = _read_parquet(path, name)
        return raw, [f"row {i}" for i in range(len(raw))], name
    raw = _read_text(path, name, _FILE_SEPARATORS[suffix], group_col, aliases, mapped)
    # blank lines are dropped but the index keeps each row's line: label every position
    return raw, [f"line {i + 2}" for i in range(int(raw.index.max()) + 1)], name


def _read_parquet(path: Path, name: str) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{name}: cannot read as Parquet: {_one_line(exc)}") from exc
    if raw.empty:
        raise DataError(f"{name}: no rows")
    raw = raw.reset_index(drop=True)
    raw.columns = [str(c) for c in raw.columns]
    return raw


def _read_jsonl(path: Path, name: str) -> pd.DataFrame:
    """Read JSON Lines: one object per line, nested objects flattened with ``/`` (index = line - 1).

    ``{"eval": {"c4_en": {"loss": 2.9}}}`` gives the column ``eval/c4_en/loss``; a list stays
    one cell (its JSON text). Blank lines are skipped; numbers keep JSON's exact values.
    """
    text = _decode(path, name)
    rows, where = [], []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name}: line {i + 1} is not valid JSON ({exc.msg} at column "
                            f"{exc.colno}); JSON Lines hold one object per line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{name}: line {i + 1} holds a JSON {type(obj).__name__}, not an "
                            "object; JSON Lines hold one object per line")
        rows.append(_flatten(obj, name, i + 1))
        where.append(i)
    if not rows:
        raise DataError(f"{name}: file is empty")
    raw = pd.DataFrame.from_records(rows, index=where)
    raw.columns = [str(c) for c in raw.columns]
    return raw


def _flatten(obj: Mapping[str, Any], name: str, line: int, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; a key met twice (``"a/b"`` and ``a.b``) is refused."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        full = f"{prefix}{key}"
        items = (_flatten(value, name, line, f"{full}/") if isinstance(value, dict)
                 else {full: json.dumps(value) if isinstance(value, list) else value})
        for k, v in items.items():
            if k in out:
                raise DataError(f"{name}: line {line}: key {k!r} appears twice once nested "
                                "keys are joined with '/'")
            out[k] = v
    return out


def _decode(path: Path, name: str) -> str:
    """The file's UTF-8 text; DataError naming the line of a bad byte, or an empty file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{name}: cannot read: {_one_line(exc.strerror or exc)}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}: not UTF-8 text (line {line}, byte {exc.start}); "
                        "save it as UTF-8") from exc
    if not text.strip():
        raise DataError(f"{name}: file is empty")
    return text


def _read_text(path: Path, name: str, sep: str, group_col: str | None,
               aliases: Mapping[str, Sequence[str]] | None = None,
               mapped: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Read a delimited UTF-8 file, keeping one row per physical line (blank lines dropped)."""
    text = _decode(path, name)
    try:
        header = pd.read_csv(io.StringIO(text), sep=sep, nrows=0).columns
        _check_delimiter(header, name, sep)
        as_text = {c: str for c in header
                   if c in mapped or _is_text_column(c, group_col, aliases)}
        with warnings.catch_warnings():
            # index_col=False: a first row longer than the header must not silently become
            # the index (shifting every column); pandas warns instead, and we refuse it
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(io.StringIO(text), sep=sep, skip_blank_lines=False, dtype=as_text,
                              index_col=False)
    except pd.errors.ParserWarning as exc:
        raise DataError(_long_line_message(text, sep, len(header), name)) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        hint = (" (a value with an unquoted separator, e.g. a thousands separator?)"
                if "Expected" in str(exc) else "")
        quote = re.search(r"EOF inside string starting at row (\d+)", str(exc))
        if quote:  # pandas counts that row from 0, the header included
            hint = (f" (a quote opened on line {int(quote.group(1)) + 1} is never closed)")
        raise DataError(f"{name}: cannot parse: {_one_line(exc)}{hint}") from exc
    raw.columns = [str(c) for c in raw.columns]
    raw = raw.loc[~raw.isna().all(axis=1)]  # blank lines; positions (= lines) are kept
    if raw.empty:
        raise DataError(f"{name}: no data rows (only a header)")
    return raw


def _long_line_message(text: str, sep: str, width: int, name: str) -> str:
    """Name the first line holding more fields than the header (``width``)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    for row in reader:
        if len(row) > width:
            return (f"{name}: line {reader.line_num} has {len(row)} fields but the header has "
                    f"{width}: a value holding an unquoted separator (a thousands separator as "
                    "in 10,000,000?) or a separator at the end of the line; write plain digits "
                    "or quote the value")
    return f"{name}: a line has more fields than the header ({width})"


def _is_text_column(column: object, group_col: str | None,
                    aliases: Mapping[str, Sequence[str]] | None = None) -> bool:
    """Whether to read a column as text: every column that may become a canonical one.

    Ids and groups stay as written (``007``); numbers are parsed later by Python's correctly
    rounded ``float``, so a value reads back exactly whatever pandas' own parser does.
    """
    norm, aliases = normalize(column), COLUMN_ALIASES if aliases is None else aliases
    return (norm in aliases or any(norm in a for a in aliases.values())
            or (group_col is not None and norm == normalize(group_col)))


def _check_delimiter(header: pd.Index, name: str, sep: str) -> None:
    """Refuse a header that is one column holding another delimiter (``a;b;c`` in a .csv)."""
    if len(header) != 1:
        return
    column = str(header[0])
    for other, word in ((";", "';'"), ("\t", "tabs"), (",", "','"), ("|", "'|'")):
        if other != sep and other in column:
            expected = "tabs" if sep == "\t" else repr(sep)
            raise DataError(f"{name}: found a single column {column!r}: the file seems "
                            f"separated by {word}, not {expected}; save it comma-separated "
                            "as .csv (or tab-separated as .tsv)")


def _canonicalize(raw: pd.DataFrame, name: str, group_col: str | None, *,
                  columns: Mapping[str, str] | None = None, flops_unit: str = "FLOP",
                  ) -> tuple[pd.DataFrame, dict[int, list[str]], bool, dict[str, str]]:
    """Rename, parse and derive canonical columns; collect per-position problems.

    ``columns`` is the user's ``{canonical: source}`` mapping (checked), applied before the
    known spellings; a FLOP column is read in ``flops_unit`` and converted to FLOP. Also says
    whether ``run_id`` came from another spelling (``run``), which is used as the id only where
    it is unique, and returns ``{canonical: source}`` of every column found (derived ones are
    absent).
    """
    mapping, group_source = resolve_columns(raw, name, aliases=COLUMN_ALIASES,
                                            user=columns or {}, group_col=group_col,
                                            numeric=_NUMERIC)
    work = rename_columns(raw, mapping, group_source)
    present = {*mapping.values(), *(["group"] if group_source is not None else [])}
    missing = [c for c in ("n_params", "loss") if c not in present]
    if "n_tokens" not in present and "flops" not in present:
        missing.insert(1, "n_tokens (or flops)")
    if missing:
        raise DataError(missing_message(raw, name, missing, mapping))
    problems: dict[int, list[str]] = {}
    for col in _NUMERIC:
        if col in present:
            work[col] = _parse_numbers(work[col], col, problems,
                                       required=col not in OPTIONAL_COLUMNS)
    if "flops" in present:
        work["flops"] = work["flops"] * flops_scale(flops_unit, name)
    _derive(work, present, problems)
    _fill_strings(work, present)
    sources = {canon: src for src, canon in mapping.items()}
    ids_from_run = ("run_id" in present and "run_id" not in (columns or {})
                    and "run_id" not in map(normalize, raw.columns))
    return work, problems, ids_from_run, sources


def _parse_numbers(column: pd.Series, col: str, problems: dict[int, list[str]],
                   *, required: bool) -> np.ndarray:
    """Floats of one column; records unparsable, NaN (if required), infinite and <= 0 cells."""
    values = np.full(len(column), np.nan)
    unparsable = np.zeros(len(column), dtype=bool)
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        for i, (pos, cell) in enumerate(column.items()):
            try:
                values[i] = _to_float(cell)
            except ValueError:
                problems.setdefault(pos, []).append(_not_a_number(col, cell))
                unparsable[i] = True
    for pos, x, skip in zip(column.index, values, unparsable, strict=True):
        if skip:
            continue
        if np.isnan(x):
            if required:
                problems.setdefault(pos, []).append(f"{col} is NaN")
        elif np.isinf(x):
            problems.setdefault(pos, []).append(f"{col} is infinite")
        elif x <= 0:
            problems.setdefault(pos, []).append(f"{col} <= 0 ({x:g})")
    return values


def _to_float(cell: object) -> float:
    """Parse one cell exactly (Python's correctly rounded ``float``); raise ValueError."""
    if cell is None or cell is pd.NA or (isinstance(cell, float) and np.isnan(cell)):
        return float("nan")
    if isinstance(cell, bool | np.bool_):
        raise ValueError(cell)
    if isinstance(cell, int | float | np.integer | np.floating):
        return float(cell)
    text = str(cell).strip()
    if not text:
        return float("nan")
    if "_" in text:
        raise ValueError(text)
    return float(text)


def _not_a_number(col: str, cell: object) -> str:
    text = str(cell).strip()
    if re.fullmatch(r"[+-]?\d[\d,]*,\d+(\.\d*)?", text):
        hint = " (thousands separator or decimal comma? write digits only, with '.')"
    else:
        hint = ""
    return f"{col} {_one_line(repr(cell))} is not a number{hint}"


def _derive(work: pd.DataFrame, present: set[str], problems: dict[int, list[str]]) -> None:
    """Fill ``n_tokens = C/(6N)`` or ``flops = 6ND``; flag values that over/underflow."""
    n = work["n_params"].to_numpy(dtype=np.float64)
    with np.errstate(all="ignore"):  # overflow to inf / 0 / NaN is flagged per row below
        if "n_tokens" not in present:
            c = work["flops"].to_numpy(dtype=np.float64)
            work["n_tokens"] = c / (FLOPS_PER_PARAM_TOKEN * n)
            target = "n_tokens = flops / (6 N)"
        elif "flops" not in present:
            d = work["n_tokens"].to_numpy(dtype=np.float64)
            work["flops"], target = FLOPS_PER_PARAM_TOKEN * n * d, "flops = 6 N D"
        else:
            return
    column = "n_tokens" if target.startswith("n_tokens") else "flops"
    for pos, x in work[column].items():
        if pos not in problems and not (np.isfinite(x) and x > 0):
            problems[pos] = [f"{target} is {x:g}, not a finite positive number"]


def _fill_strings(work: pd.DataFrame, present: set[str]) -> None:
    """Make ``run_id`` and ``group`` text columns (generated / default when absent)."""
    if "run_id" in present:
        work["run_id"] = [_id_text(v) for v in work["run_id"]]
    else:
        work["run_id"] = _generated_ids(work.index, int(work.index.max()) + 1)
    work["group"] = ([_id_text(v) for v in work["group"]] if "group" in present
                     else DEFAULT_GROUP)
    if EVAL_SET_COLUMN in present:
        work[EVAL_SET_COLUMN] = [_id_text(v) for v in work[EVAL_SET_COLUMN]]


def _generated_ids(positions: pd.Index, n_source: int) -> list[str]:
    """``r0001``, ``r0002``, ...: the 1-based position of each row in its source."""
    width = max(4, len(str(n_source)))
    return [f"r{pos + 1:0{width}d}" for pos in positions]


def _id_text(value: object) -> str | None:
    """Text of an id or group cell; ``None`` when empty or NaN."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _check_strings(work: pd.DataFrame, problems: dict[int, list[str]]) -> None:
    for col in (c for c in _STRINGS if c in work.columns):
        for pos, value in work[col].items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                problems.setdefault(pos, []).append(f"{col} is missing")


#: Syntax a runs query may use: comparisons, and/or/not, arithmetic, names, literals.
_QUERY_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Invert, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.BitAnd, ast.BitOr, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
    ast.In, ast.NotIn, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple,
)


def check_query(query: str, name: str) -> None:
    """Refuse a runs query that could do more than compare columns with values.

    pandas' ``query`` evaluates calls (``col.to_csv('x')``) and local variables (``@os``); a
    query may come from a proposal file written by someone else, so only comparisons,
    ``and``/``or``/``not``, arithmetic, column names (back-quoted too) and literals pass.

    Raises
    ------
    DataError
        Naming ``name``, the query and the construct that is not allowed.
    """
    text = re.sub(r"`[^`]*`", "quoted_column", str(query)).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise DataError(f"{name}: query {query!r} failed: SyntaxError: {_one_line(exc.msg)}") \
            from None
    for node in ast.walk(tree):
        if not isinstance(node, _QUERY_NODES):
            raise DataError(f"{name}: query {query!r} uses {type(node).__name__}, which is not "
                            "allowed: a query compares columns with numbers or strings, e.g. "
                            "\"loss < 4 and group == 'a'\"")


def _apply_query(work: pd.DataFrame, query: str, name: str) -> pd.DataFrame:
    check_query(query, name)
    try:
        kept = work.query(query, engine="python")
    except (SyntaxError, NameError, KeyError, TypeError, ValueError, AttributeError,
            IndexError) as exc:
        raise DataError(f"{name}: query {query!r} failed: {type(exc).__name__}: "
                        f"{_one_line(exc)}") from exc
    if not isinstance(kept, pd.DataFrame) or not kept.index.isin(work.index).all():
        raise DataError(f"{name}: query {query!r} is not a row filter")
    if kept.empty:
        raise DataError(f"{name}: query {query!r} selected none of the {len(work)} rows")
    return kept

def _mark_duplicates(good: pd.DataFrame, problems: dict[int, list[str]], labels: list[str],
                     *, drop: bool) -> set[int]:
    """Report (or return, to drop) rows repeating an earlier row's group, N, D and loss."""
    first: dict[tuple[Any, ...], int] = {}
    dropped: set[int] = set()
    for pos, *key in good[_DUPLICATE_KEY].itertuples(name=None):
        seen = first.setdefault(tuple(key), pos)
        if seen == pos:
            continue
        if drop:
            dropped.add(pos)
        else:
            problems.setdefault(pos, []).append(
                f"duplicate of {labels[seen]} (same group, n_params, n_tokens, loss)")
    return dropped


def _check_run_ids(good: pd.DataFrame, problems: dict[int, list[str]],
                   labels: list[str]) -> None:
    first: dict[str, int] = {}
    for pos, run_id in good["run_id"].items():
        seen = first.setdefault(run_id, pos)
        if seen != pos:
            problems.setdefault(pos, []).append(f"run_id {run_id!r} repeats {labels[seen]}")


def _bad_rows_message(name: str, problems: dict[int, list[str]], labels: list[str]) -> str:
    """``"<name>: k bad rows; line 17: ...; line 20: ... (and m more)"`` on one line."""
    positions = sorted(problems)
    shown = "; ".join(f"{labels[p]}: {', '.join(problems[p])}"
                      for p in positions[:_MAX_REPORTED])
    more = len(positions) - _MAX_REPORTED
    rows = "row" if len(positions) == 1 else "rows"
    tail = f" (and {more} more)" if more > 0 else ""
    return _one_line(f"{name}: {len(positions)} bad {rows}; {shown}{tail}")


def _with_eval_set(raw: pd.DataFrame, column: str, name: str) -> pd.DataFrame:
    """``raw`` with ``column`` copied into :data:`EVAL_SET_COLUMN` (DataError if absent)."""
    found = [c for c in raw.columns if str(c) == column] or \
        [c for c in raw.columns if str(c).strip().lower() == column.strip().lower()]
    if not found:
        raise DataError(f"{name}: eval-set column {column!r} not found; found columns: "
                        f"{', '.join(map(str, raw.columns))}")
    return raw.assign(**{EVAL_SET_COLUMN: raw[found[0]]})
