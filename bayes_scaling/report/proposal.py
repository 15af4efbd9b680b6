"""A compute proposal: the large run a committee is asked to fund, read from a TOML file.

A proposal names the runs of the ladder (one or more files or registry data sets, and the group
to predict for), the planned run (``n_params`` and ``n_tokens``, or a FLOP budget ``flops`` to be
split compute-optimally), the batch size, the target loss and the law families to fit. Every
problem is a :class:`~bayes_scaling.errors.ProposalError` with a one-line message naming the file
and the field, e.g. ``"big.toml: plan.target_loss must be a positive number, got -1"``.

The documented example is ``reports/examples/chinchilla70b.toml`` (fields in
``reports/examples/README.md``). Numbers only (no NumPy, no PyMC): reading a proposal is instant.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bayes_scaling.constants import CANONICAL_COLUMNS, FLOPS_PER_PARAM_TOKEN, FLOPS_UNITS
from bayes_scaling.errors import ProposalError
from bayes_scaling.model.spec import available_models

#: Keys allowed in each table of a proposal (``""`` is the top level).
SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("name", "title", "description", "seed", "runs", "plan", "models", "fit", "backtest",
         "dynamics"),
    "runs": ("files", "group", "group_col", "drop_highest_loss", "param_count", "query",
             "columns", "flops_unit", "alternative_group"),
    "plan": ("n_params", "n_tokens", "flops", "batch_size", "target_loss"),
    "models": ("families", "fit"),
    "fit": ("chains", "draws", "tune", "backend", "target_accept", "strict"),
    "backtest": ("enabled", "holdout_by", "holdout_top", "baseline", "chains", "draws", "tune"),
    "dynamics": ("enabled", "fit", "curves", "group_col", "model"),
}
REQUIRED_TABLES = ("runs", "plan", "models")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BACKENDS = ("numpyro", "nutpie", "pymc")
HOLDOUT_BY = ("n_params", "flops")
PARAM_COUNTS = ("total", "nonembedding")
#: How the planned (N, D) was obtained from the file's ``plan`` table.
SPLITS = ("given", "optimal", "tokens_from_flops", "params_from_flops")


@dataclass(frozen=True)
class RunsSource:
    """Where the ladder's runs come from and how to read them.

    Attributes
    ----------
    files
        Registry data-set names or paths (relative paths are resolved against the proposal's
        folder). Several files are concatenated; a file without a group column becomes the group
        named after its stem.
    group
        The data distribution the proposal is predicted for (``"new"``: an unseen one); ``None``
        means "the only group", an error when the runs have several.
    loader
        Options passed to :func:`~bayes_scaling.data.runs.load_runs` (``group_col``,
        ``drop_highest_loss``, ``param_count``, ``query``, ``columns``: which column is which,
        as a table ``{ n_params = "parameter_count", ... }``, ``flops_unit``); unset ones keep
        the registry's defaults.
    alternative_group
        Another group (recipe) of the same runs to contrast the plan with (the report's
        optional "alternative recipe" section); ``None``: no such section.
    """

    files: tuple[str, ...]
    group: str | None = None
    loader: Mapping[str, Any] = field(default_factory=dict)
    alternative_group: str | None = None


@dataclass(frozen=True)
class FitSettings:
    """NUTS settings for the fits of the report (as in :func:`bayes_scaling.fitting.fit.fit`)."""

    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    backend: str | None = None
    target_accept: float = 0.9
    strict: bool = False


@dataclass(frozen=True)
class BacktestSettings:
    """How the trust section backtests the method on the proposal's own runs."""

    enabled: bool = True
    holdout_by: str = "n_params"
    holdout_top: int = 2
    baseline: bool = True
    chains: int | None = None
    draws: int | None = None
    tune: int | None = None


@dataclass(frozen=True)
class Proposal:
    """A validated compute proposal.

    Attributes
    ----------
    name, title, description
        Identifier (letters, digits, ``_.-``), heading and free text.
    runs
        The ladder (:class:`RunsSource`).
    n_params, n_tokens, flops
        The planned run: parameters, training tokens, FLOPs (``6 N D``). With ``split ==
        "optimal"`` only ``flops`` is set here; the report splits it by the first family's
        posterior median compute-optimal allocation.
    split
        How (N, D) was obtained: ``"given"``, ``"optimal"``, ``"tokens_from_flops"`` or
        ``"params_from_flops"``.
    batch_size
        Tokens per optimizer step (``None`` if not given).
    target_loss
        The loss the run must reach, nats/token, on the ladder's evaluation set.
    families
        Model specs to fit (shipped names such as ``"chinchilla"`` or spec paths). Empty when
        ``fit_file`` is given without them: the report takes the file's families.
    fit_file
        A saved fit (``bayes-scaling fit --out``: one family or several with their stacking
        weights) the report uses instead of fitting; ``None``: fit (or reuse the report's
        saved fits).
    seed
        Seed of every random step of the report.
    path
        The file it was read from (``None`` when built from a dict).
    """

    name: str
    title: str
    runs: RunsSource
    target_loss: float
    families: tuple[str, ...]
    n_params: float | None = None
    n_tokens: float | None = None
    flops: float | None = None
    split: str = "given"
    batch_size: float | None = None
    description: str = ""
    seed: int = 0
    fit: FitSettings = field(default_factory=FitSettings)
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    dynamics: Mapping[str, Any] | None = None
    fit_file: str | None = None
    path: Path | None = None

    @property
    def where(self) -> str:
        """How errors name this proposal: its file, or ``<proposal>``."""
        return str(self.path) if self.path is not None else "<proposal>"

    def error(self, fieldname: str, message: str) -> ProposalError:
        """A one-line :class:`ProposalError` naming the file and ``fieldname``."""
        return ProposalError(f"{self.where}: {fieldname} {message}")

    def with_plan(self, n_params: float, n_tokens: float) -> Proposal:
        """The same proposal with the planned run set to ``(n_params, n_tokens)``."""
        return replace(self, n_params=float(n_params), n_tokens=float(n_tokens),
                       flops=FLOPS_PER_PARAM_TOKEN * float(n_params) * float(n_tokens))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings), as stored in ``report.json``."""
        out = asdict(self)
        out["runs"] = {"files": list(self.runs.files), "group": self.runs.group,
                       "loader": dict(self.runs.loader)}
        if self.runs.alternative_group is not None:
            out["runs"]["alternative_group"] = self.runs.alternative_group
        out["families"] = list(self.families)
        out["dynamics"] = dict(self.dynamics) if self.dynamics is not None else None
        out["path"] = str(self.path) if self.path is not None else None
        return out

    # ------------------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "<proposal>",
                  base_dir: Path | None = None) -> Proposal:
        """Validate a proposal's TOML dictionary; ``where`` names it in every error."""
        check = _Checker(where)
        check.keys(raw, "")
        for table in REQUIRED_TABLES:
            if table not in raw:
                raise ProposalError(f"{where}: missing table [{table}]")
        for table in SCHEMA[""]:
            if table in SCHEMA and table in raw:
                check.table(raw[table], table)
        name = check.name(raw.get("name"), "name")
        plan = raw["plan"]
        n, d, c, split = _plan(check, plan)
        return cls(
            name=name,
            title=check.text(raw.get("title", name), "title"),
            description=check.text(raw.get("description", ""), "description"),
            seed=check.integer(raw.get("seed", 0), "seed", low=0),
            runs=_runs(check, raw["runs"], base_dir),
            n_params=n, n_tokens=d, flops=c, split=split,
            batch_size=(check.positive(plan["batch_size"], "plan.batch_size")
                        if "batch_size" in plan else None),
            target_loss=check.positive(plan.get("target_loss"), "plan.target_loss"),
            families=_families(check, raw["models"], base_dir),
            fit_file=_fit_file(check, raw["models"], base_dir),
            fit=_fit_settings(check, raw.get("fit", {})),
            backtest=_backtest_settings(check, raw.get("backtest", {})),
            dynamics=_dynamics(check, raw.get("dynamics"), base_dir),
            path=None,
        )


def load_proposal(path: str | os.PathLike[str]) -> Proposal:
    """Read and validate a proposal TOML file (relative paths inside resolve against its folder).

    Raises
    ------
    ProposalError
        One line naming the file and the field: missing file, bad TOML, unknown or missing
        keys, wrong types, non-positive sizes, unknown law families.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProposalError(f"{path}: no such proposal file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ProposalError(f"{path}: cannot read the proposal ({type(exc).__name__})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProposalError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
    prop = Proposal.from_dict(raw, where=str(path), base_dir=path.resolve().parent)
    return replace(prop, path=path)


# ------------------------------------------------------------------------------ validation
class _Checker:
    """Type checks that raise one-line errors naming ``where`` and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, fieldname: str, message: str) -> ProposalError:
        return ProposalError(f"{self.where}: {fieldname} {message}")

    def keys(self, raw: Mapping[str, Any], table: str) -> None:
        allowed = SCHEMA[table]
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f" (known: {', '.join(allowed)})"
                full = f"{table}.{key}" if table else str(key)
                raise ProposalError(f"{self.where}: unknown key {full!r}{hint}")

    def table(self, raw: Any, table: str) -> None:
        if not isinstance(raw, Mapping):
            raise self.fail(f"[{table}]", f"must be a table, got {type(raw).__name__}")
        self.keys(raw, table)

    def positive(self, v: Any, fieldname: str) -> float:
        if v is None:
            raise self.fail(fieldname, "is required")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or v <= 0:
            raise self.fail(fieldname, f"must be a positive number, got {v!r}")
        return float(v)

    def integer(self, v: Any, fieldname: str, low: int = 1) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise self.fail(fieldname, f"must be an integer >= {low}, got {v!r}")
        return int(v)

    def text(self, v: Any, fieldname: str) -> str:
        if not isinstance(v, str):
            raise self.fail(fieldname, f"must be a string, got {v!r}")
        return " ".join(v.split())

    def boolean(self, v: Any, fieldname: str) -> bool:
        if not isinstance(v, bool):
            raise self.fail(fieldname, f"must be true or false, got {v!r}")
        return v

    def choice(self, v: Any, fieldname: str, options: Sequence[str]) -> str:
        if v not in options:
            raise self.fail(fieldname, f"must be one of {', '.join(options)}, got {v!r}")
        return str(v)

    def name(self, v: Any, fieldname: str) -> str:
        if v is None:
            raise self.fail(fieldname, "is required")
        if not isinstance(v, str) or not NAME_RE.fullmatch(v):
            raise self.fail(fieldname, "must be 1-64 letters, digits, '_', '.' or '-' "
                            f"(it names files), got {v!r}")
        return v

    def strings(self, v: Any, fieldname: str) -> tuple[str, ...]:
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items or \
                not all(isinstance(s, str) and s.strip() for s in items):
            raise self.fail(fieldname, f"must be a string or a non-empty list of strings, "
                            f"got {v!r}")
        if len(set(items)) != len(items):
            raise self.fail(fieldname, f"lists the same entry twice: {v!r}")
        return tuple(s.strip() for s in items)


def _plan(check: _Checker, plan: Mapping[str, Any]) -> tuple[float | None, float | None,
                                                            float | None, str]:
    """``(n_params, n_tokens, flops, split)`` from the ``[plan]`` table."""
    has = {k: k in plan for k in ("n_params", "n_tokens", "flops")}
    n = check.positive(plan["n_params"], "plan.n_params") if has["n_params"] else None
    d = check.positive(plan["n_tokens"], "plan.n_tokens") if has["n_tokens"] else None
    c = check.positive(plan["flops"], "plan.flops") if has["flops"] else None
    k = FLOPS_PER_PARAM_TOKEN
    if n is not None and d is not None:
        if c is not None:
            raise check.fail("plan.flops", "is implied by n_params and n_tokens (6 N D): give "
                             "either flops or both sizes, not all three")
        return n, d, k * n * d, "given"
    if c is None:
        missing = "n_tokens" if n is not None else "n_params"
        raise check.fail(f"plan.{missing}", "is required (or give plan.flops to split a FLOP "
                         "budget compute-optimally)")
    if n is not None:
        return n, c / (k * n), c, "tokens_from_flops"
    if d is not None:
        return c / (k * d), d, c, "params_from_flops"
    return None, None, c, "optimal"


def _resolve(entry: str, base_dir: Path | None) -> str:
    """A path relative to the proposal's folder when it exists there; else the entry as is."""
    if base_dir is not None and not Path(entry).is_absolute():
        candidate = base_dir / entry
        if candidate.exists():
            return str(candidate)
    return entry


def _runs(check: _Checker, raw: Mapping[str, Any], base_dir: Path | None) -> RunsSource:
    if "files" not in raw:
        raise check.fail("runs.files", "is required (a registry data set such as 'chinchilla', "
                         "or paths to CSV/Parquet files)")
    files = tuple(_resolve(f, base_dir) for f in check.strings(raw["files"], "runs.files"))
    group = raw.get("group")
    if group is not None:
        group = check.text(group, "runs.group")
        if not group:
            raise check.fail("runs.group", "must not be empty")
    loader: dict[str, Any] = {}
    if "group_col" in raw:
        loader["group_col"] = check.text(raw["group_col"], "runs.group_col")
    if "drop_highest_loss" in raw:
        loader["drop_highest_loss"] = check.integer(raw["drop_highest_loss"],
                                                    "runs.drop_highest_loss", low=0)
    if "param_count" in raw:
        loader["param_count"] = check.choice(raw["param_count"], "runs.param_count",
                                             PARAM_COUNTS)
    if "query" in raw:
        loader["query"] = check.text(raw["query"], "runs.query")
    if "columns" in raw:
        loader["columns"] = _columns(check, raw["columns"])
    if "flops_unit" in raw:
        loader["flops_unit"] = check.choice(raw["flops_unit"], "runs.flops_unit",
                                            tuple(FLOPS_UNITS))
    alternative = None
    if "alternative_group" in raw:
        alternative = check.text(raw["alternative_group"], "runs.alternative_group")
        if not alternative or alternative == group:
            raise check.fail("runs.alternative_group", "must name another group than runs.group")
    return RunsSource(files=files, group=group, loader=loader, alternative_group=alternative)


def _columns(check: _Checker, raw: Any) -> dict[str, str]:
    """``[runs] columns = { n_params = "parameter_count", loss = "eval/c4_en/loss" }``."""
    if not isinstance(raw, Mapping) or not raw:
        raise check.fail("runs.columns", "must be a table of canonical = \"column\" pairs, "
                         f"e.g. {{ n_params = \"parameter_count\" }}, got {raw!r}")
    out = {}
    for canon, source in raw.items():
        if canon not in CANONICAL_COLUMNS:
            close = difflib.get_close_matches(str(canon), CANONICAL_COLUMNS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise check.fail("runs.columns", f"names unknown canonical column {canon!r}{hint} "
                             f"(canonical: {', '.join(CANONICAL_COLUMNS)})")
        if not isinstance(source, str) or not source.strip():
            raise check.fail(f"runs.columns.{canon}", f"must name a column, got {source!r}")
        out[str(canon)] = source
    return out


def _families(check: _Checker, raw: Mapping[str, Any], base_dir: Path | None) -> tuple[str, ...]:
    if "families" not in raw:
        if "fit" in raw:  # the saved fit's own families
            return ()
        raise check.fail("models.families", "is required, e.g. [\"chinchilla\", \"kaplan\"] "
                         "(or models.fit: a saved fit file)")
    fams = check.strings(raw["families"], "models.families")
    shipped = available_models()
    out = []
    for fam in fams:
        resolved = _resolve(fam, base_dir)
        if fam in shipped or (Path(resolved).suffix == ".toml" and Path(resolved).is_file()):
            out.append(fam if fam in shipped else resolved)
            continue
        close = difflib.get_close_matches(fam, shipped, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise check.fail("models.families", f"names unknown model {fam!r}{hint} "
                         f"(shipped: {', '.join(shipped)}; or a path to a spec .toml)")
    return tuple(out)


def _fit_file(check: _Checker, raw: Mapping[str, Any], base_dir: Path | None) -> str | None:
    """``models.fit``: a saved fit file (relative to the proposal's folder), which must exist."""
    if "fit" not in raw:
        return None
    entry = check.text(raw["fit"], "models.fit")
    resolved = _resolve(entry, base_dir)
    if not Path(resolved).is_file():
        raise check.fail("models.fit", f"names {entry!r}: no such fit file (write one with "
                         "bayes-scaling fit RUNS --model a,b,... --out FILE)")
    return resolved


def _fit_settings(check: _Checker, raw: Mapping[str, Any]) -> FitSettings:
    base = FitSettings()
    return FitSettings(
        chains=check.integer(raw.get("chains", base.chains), "fit.chains", low=2),
        draws=check.integer(raw.get("draws", base.draws), "fit.draws", low=10),
        tune=check.integer(raw.get("tune", base.tune), "fit.tune", low=0),
        backend=(check.choice(raw["backend"], "fit.backend", BACKENDS)
                 if "backend" in raw else None),
        target_accept=_unit(check, raw.get("target_accept", base.target_accept),
                            "fit.target_accept"),
        strict=check.boolean(raw.get("strict", False), "fit.strict"),
    )


def _unit(check: _Checker, v: Any, fieldname: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
        raise check.fail(fieldname, f"must be a number between 0 and 1, got {v!r}")
    return float(v)


def _backtest_settings(check: _Checker, raw: Mapping[str, Any]) -> BacktestSettings:
    base = BacktestSettings()

    def opt_int(key: str, low: int) -> int | None:
        return check.integer(raw[key], f"backtest.{key}", low=low) if key in raw else None

    return BacktestSettings(
        enabled=check.boolean(raw.get("enabled", base.enabled), "backtest.enabled"),
        holdout_by=check.choice(raw.get("holdout_by", base.holdout_by), "backtest.holdout_by",
                                HOLDOUT_BY),
        holdout_top=check.integer(raw.get("holdout_top", base.holdout_top),
                                  "backtest.holdout_top"),
        baseline=check.boolean(raw.get("baseline", base.baseline), "backtest.baseline"),
        chains=opt_int("chains", 2), draws=opt_int("draws", 10), tune=opt_int("tune", 0),
    )


def _dynamics(check: _Checker, raw: Any, base_dir: Path | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    out: dict[str, Any] = {"enabled": check.boolean(raw.get("enabled", True),
                                                    "dynamics.enabled"),
                           "model": check.text(raw.get("model", "dynamics"), "dynamics.model")}
    for key in ("fit", "curves", "group_col"):
        if key in raw:
            text = check.text(raw[key], f"dynamics.{key}")
            out[key] = text if key == "group_col" else _resolve(text, base_dir)
    if out["enabled"] and "fit" not in out and "curves" not in out:
        raise check.fail("dynamics.curves", "or dynamics.fit is required: loss curves of the "
                         "small runs (a file or registry data set) or a saved curve-law fit")
    return out
