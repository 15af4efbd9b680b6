"""Column names of runs and curve tables: canonical names, other spellings and the user's mapping.

A table read from a file names its columns as its writer chose (an experiment tracker's export:
``parameter_count``, ``tokens_seen``, ``eval/c4_en/loss``). :func:`resolve_columns` turns them
into canonical names: first the user's mapping (``columns={"n_params": "parameter_count"}``,
``--columns n_params=parameter_count``, ``[runs] columns`` in a proposal), then the known
spellings (:data:`COLUMN_ALIASES`). Nothing is guessed silently: a missing required column
raises one line proposing the likely columns by name and by content
(``n_params: parameter_count? (integers 1.6e8–1.2e10)``), and when several columns look like
losses the line lists them and asks for one. A mapping naming an unknown canonical column, a
column the table lacks, or a text column for a number is refused in one line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayes_scaling.errors import DataError

#: Other spellings of each canonical column (compared after :func:`normalize`).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "run_id": ("run", "run_name"),
    "group": (),
    "n_params": ("n", "params", "parameters", "model_size", "num_params", "n_parameters"),
    "n_tokens": ("d", "tokens", "training_tokens", "num_tokens", "data_size"),
    "flops": ("c", "flop", "training_flop", "training_flops", "compute", "training_compute"),
    "loss": ("l", "final_loss"),
    "n_params_nonembedding": ("n_no_emb", "n_nonembedding", "nonembedding_params",
                              "non_embedding_params"),
    "steps": ("step", "n_steps"),
    "batch_size_tokens": ("batch_tokens",),
    "learning_rate": ("lr", "peak_lr"),
    "context_length": ("seq_len", "sequence_length"),
    "eval_set": ("eval_dataset", "validation_set", "val_set", "eval_data"),
}
#: Words in a column's name that make it a candidate for a canonical column (after
#: :func:`normalize`; ``exclude`` words rule a name out, e.g. ``tokens_per_second``).
NAME_HINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "n_params": (("param", "model_size", "n_params"), ("embed", "lr", "learning")),
    "n_tokens": (("token",), ("per", "batch", "sec", "rate", "vocab")),
    "flops": (("flop", "compute"), ("per", "sec", "util", "mfu")),
    "loss": (("loss", "nll", "cross_entropy", "crossentropy"), ("scale", "weight", "coef")),
    "steps": (("step", "iter"), ("per", "sec", "warmup", "lr")),
    "batch_size_tokens": (("batch",), ("per_device", "sec")),
    "learning_rate": (("learning_rate", "lr"), ("sched", "warmup")),
    "run_id": (("run", "name", "id"), ()),
}
#: What a column's values must look like to be proposed by content: integer-valued or not,
#: and the range of its values (open intervals of plausible magnitudes).
CONTENT_HINTS: dict[str, tuple[bool | None, float, float]] = {
    "n_params": (True, 1e4, 1e13),
    "n_tokens": (True, 1e6, 1e16),
    "loss": (False, 0.3, 12.0),
}


def normalize(name: object) -> str:
    """Lower-case a column name and turn runs of spaces and hyphens into ``_``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def check_mapping(columns: Mapping[str, str] | None, known: Sequence[str],
                  where: str) -> dict[str, str]:
    """Validate the shape of a column mapping ``{canonical: source column}``.

    Parameters
    ----------
    columns : mapping or None
        Canonical column name -> the source table's column name.
    known : sequence of str
        The canonical columns of the table kind (runs or curves).
    where : str
        What to name in the error (the source, or ``load_runs``).

    Returns
    -------
    dict
        A copy (``{}`` for ``None``).

    Raises
    ------
    DataError
        One line: not a mapping, an unknown canonical name (with the close ones), a source
        that is not a non-empty string, or one source mapped to two canonical columns.
    """
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise DataError(f"{where}: the column mapping must map canonical names to column "
                        f"names (e.g. {{'n_params': 'parameter_count'}}), not "
                        f"{type(columns).__name__}")
    out: dict[str, str] = {}
    for canon, src in columns.items():
        if canon not in known:
            close = difflib.get_close_matches(str(canon), list(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise DataError(f"{where}: column mapping names unknown canonical column "
                            f"{canon!r}{hint}; canonical columns: {', '.join(known)}")
        if not isinstance(src, str) or not src.strip():
            raise DataError(f"{where}: column mapping {canon}= must name a column of the "
                            f"table, not {src!r}")
        twice = [k for k, v in out.items() if v == src]
        if twice:
            raise DataError(f"{where}: column mapping maps column {src!r} to both {twice[0]} "
                            f"and {canon}; one column per canonical name")
        out[str(canon)] = src
    return out


def resolve_columns(raw: pd.DataFrame, name: str, *, aliases: Mapping[str, Sequence[str]],
                    user: Mapping[str, str], group_col: str | None,
                    numeric: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """Map the source's columns to canonical names: the user's mapping first, then spellings.

    Parameters
    ----------
    raw : pandas.DataFrame
        The table as read (its own column names).
    name : str
        The source, named in every error.
    aliases : mapping
        Canonical name -> other spellings (:data:`COLUMN_ALIASES` or the curve table's).
    user : mapping
        The user's ``{canonical: source}`` (checked by :func:`check_mapping`); ``group`` in it
        acts as ``group_col``.
    group_col : str, optional
        Column naming each row's group.
    numeric : sequence of str
        Canonical columns that hold numbers: a text column mapped to one is refused.

    Returns
    -------
    tuple
        ``{source: canonical}`` and the source column of the group (or ``None``).

    Raises
    ------
    DataError
        A mapped column the table lacks (close names suggested), a text column mapped to a
        number, two spellings of one canonical column, a missing group column, or a loss
        column taken from a spelling while other columns also look like losses.
    """
    columns = [str(c) for c in raw.columns]
    user = dict(user)
    if "group" in user:
        if group_col is not None and group_col != user["group"]:
            raise DataError(f"{name}: the group column is given twice ({group_col!r} and "
                            f"column mapping group={user['group']!r}); give one")
        group_col = user.pop("group")
    mapping: dict[str, str] = {}
    for canon, src in user.items():
        found = _find(src, columns)
        if found is None:
            raise DataError(f"{name}: column mapping {canon}={src}: the table has no column "
                            f"{src!r}{_close(src, columns)}; found columns: "
                            f"{', '.join(columns)}")
        if canon in numeric:
            _check_numeric(raw[found], f"{name}: column mapping {canon}={src}")
        mapping[found] = canon
    norm = {c: normalize(c) for c in columns}
    for canon, spellings in aliases.items():
        if canon in user or (canon == "group" and group_col is not None):
            continue
        free = [c for c in columns if c not in mapping and c != group_col]
        hits = ([c for c in free if norm[c] == canon]
                or [c for c in free if norm[c] in spellings])
        if len(hits) > 1:
            raise DataError(f"{name}: columns {hits} all mean {canon}; choose one with "
                            f"--columns {canon}=COLUMN (columns= in Python) or rename or "
                            "drop all but one")
        if hits:
            mapping[hits[0]] = canon
    _check_loss_choice(raw, name, mapping, user)
    if group_col is None:
        return mapping, None
    found = _find(group_col, columns)
    if found is None:
        raise DataError(f"{name}: group column {group_col!r} not found; found columns: "
                        f"{', '.join(columns)}{_close(group_col, columns)}")
    return mapping, found


def rename_columns(raw: pd.DataFrame, mapping: Mapping[str, str],
                   group_source: str | None) -> pd.DataFrame:
    """The table under canonical names; other columns keep theirs (for a query).

    A column already named like a canonical column that the mapping gives to another column
    (a ``loss`` column when ``loss=eval/c4_en/loss`` was asked for) is left out. The group is a
    copy: its column stays usable by its own name.
    """
    taken = set(mapping.values()) | ({"group"} if group_source is not None else set())
    shadowed = [c for c in raw.columns if c not in mapping and str(c) in taken]
    work = raw.drop(columns=shadowed).rename(columns=dict(mapping))
    if group_source is not None:
        work["group"] = raw[group_source]
    return work


def missing_message(raw: pd.DataFrame, name: str, missing: Sequence[str],
                    mapping: Mapping[str, str], *, what: str = "") -> str:
    """One line naming the missing columns and proposing likely ones by name and content.

    ``missing`` holds canonical names; ``"n_tokens (or flops)"`` proposes token columns, or
    FLOP columns when none looks like tokens. Several loss-like columns are listed and the
    user is asked to choose one.
    """
    columns = [str(c) for c in raw.columns]
    free = [c for c in columns if c not in mapping]
    parts, example = [], []
    for item in missing:
        canon = item.split()[0]
        found = candidates(raw, canon, free)
        if not found and canon == "n_tokens":
            canon, found = "flops", candidates(raw, "flops", free)
        if not found:
            continue
        shown = [f"{c} ({describe(raw[c])})" for c in found]
        if canon == "loss" and len(found) > 1:
            parts.append(f"loss: several loss-like columns, {', '.join(shown)}: choose one")
            example.append("loss=CHOSEN")
        else:
            parts.append(f"{canon}: {' or '.join(f'{c}? ({describe(raw[c])})' for c in found)}")
            example.append(f"{canon}={found[0]}")
    head = (f"{name}: missing required column(s) {', '.join(missing)}{what}; found columns: "
            f"{', '.join(columns)}")
    if not parts:
        return head
    return (f"{head}; {'; '.join(parts)}; map them with --columns {','.join(example)} "
            "(columns= in Python, [runs] columns in a proposal)")


def candidates(raw: pd.DataFrame, canon: str, free: Sequence[str], *,
               by_content: bool = True) -> list[str]:
    """Columns of ``free`` that may be ``canon``: by name first, else (``by_content``) by
    content: integer-valued or not, in a plausible range (:data:`CONTENT_HINTS`)."""
    words, exclude = NAME_HINTS.get(canon, ((), ()))
    spellings = [canon, *COLUMN_ALIASES.get(canon, ())]
    by_name = []
    for c in free:
        norm = normalize(c)
        if any(w in norm for w in exclude) and norm not in spellings:
            continue
        if (any(w in norm for w in words)
                or difflib.get_close_matches(norm, spellings, n=1, cutoff=0.75)):
            by_name.append(c)
    if by_name or not by_content or canon not in CONTENT_HINTS:
        return by_name[:4]
    integer, lo, hi = CONTENT_HINTS[canon]
    by_content = []
    for c in free:
        x = _numbers(raw[c])
        if x is None or x.size == 0 or not (x.min() > lo and x.max() < hi):
            continue
        if np.unique(x).size < 2 or bool(np.all(x == np.round(x))) != integer:
            continue
        by_content.append(c)
    return by_content[:4]


def describe(column: pd.Series) -> str:
    """What a column holds, briefly: ``integers 1.6e8–1.2e10``, ``numbers 2.31–3.87``, text."""
    x = _numbers(column)
    if x is None:
        sample = next((str(v) for v in column if not pd.isna(v)), "")
        return f"text, e.g. {sample[:24]!r}" if sample else "empty"
    if x.size == 0:
        return "empty"
    kind = "integers" if np.all(x == np.round(x)) else "numbers"
    lo, hi = short_number(float(x.min())), short_number(float(x.max()))
    return f"{kind} {lo}" if lo == hi else f"{kind} {lo}–{hi}"


def short_number(x: float) -> str:
    """``1.6e8``, ``2.31``, ``0.0003``: a number in three significant digits, compactly."""
    text = f"{x:.3g}" if 1e-4 <= abs(x) < 1e5 or x == 0 else f"{x:.2g}"
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", text)


def _numbers(column: pd.Series) -> np.ndarray | None:
    """The finite numbers of a mostly numeric column; ``None`` for a text column."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return None
    cells = column.dropna()
    if cells.dtype == object:
        cells = cells[[not isinstance(v, bool) and str(v).strip() != "" for v in cells]]
    if cells.empty:
        return np.array([])
    x = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(x).mean() > 0.5:
        return None
    return x[np.isfinite(x)]


def _check_numeric(column: pd.Series, where: str) -> None:
    """Refuse a text (or true/false) column where numbers are expected."""
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"{where}: column {column.name!r} holds true/false values, not numbers")
    if _numbers(column) is None:
        sample = next((str(v) for v in column if not pd.isna(v)), "")
        raise DataError(f"{where}: column {column.name!r} holds text (e.g. {sample[:40]!r}), "
                        "not numbers; map a numeric column")


def _check_loss_choice(raw: pd.DataFrame, name: str, mapping: Mapping[str, str],
                       user: Mapping[str, str]) -> None:
    """Refuse a loss taken from a spelling (``final_loss``) while other columns look like
    losses too: which one is meant is the user's call, never a silent guess."""
    if "loss" in user:
        return
    source = next((s for s, c in mapping.items() if c == "loss"), None)
    if source is None or normalize(source) == "loss":
        return
    free = [str(c) for c in raw.columns if c not in mapping]
    others = [c for c in candidates(raw, "loss", free, by_content=False)
              if _numbers(raw[c]) is not None]
    if others:
        shown = ", ".join(f"{c} ({describe(raw[c])})" for c in [source, *others])
        raise DataError(f"{name}: several loss-like columns, {shown}: choose one with "
                        f"--columns loss=COLUMN (columns= in Python, [runs] columns in a "
                        "proposal)")


def _find(wanted: str, columns: Sequence[str]) -> str | None:
    """The column spelled ``wanted`` exactly, else the one equal after :func:`normalize`."""
    if wanted in columns:
        return wanted
    same = [c for c in columns if normalize(c) == normalize(wanted)]
    return same[0] if len(same) == 1 else None


def _close(wanted: str, columns: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for close spellings of ``wanted`` among ``columns``."""
    by_norm = {normalize(c): c for c in columns}
    close = difflib.get_close_matches(normalize(wanted), list(by_norm), n=3, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {', '.join(repr(by_norm[c]) for c in close)}?"


def mapped_sources(user: Mapping[str, str] | None, group_col: str | None) -> set[str]:
    """Source column names a mapping (and ``group_col``) name: read as text, parsed later."""
    out: set[str] = set((user or {}).values())
    return out | ({group_col} if group_col else set())

