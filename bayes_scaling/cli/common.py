"""What every command shares: runs resolution, progress lines, Ctrl-C handling, output checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bayes_scaling.errors import BayesScalingError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
#: Set by main()'s SIGINT handler. A Ctrl-C that a library swallows (JAX runs Python callbacks
#: from the garbage collector, where a KeyboardInterrupt is ignored) is raised again at the
#: next progress line and before anything is saved.
INTERRUPTED: list[bool] = []


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if it was swallowed since."""
    if INTERRUPTED:
        raise KeyboardInterrupt


def on_sigint(_signum: int, _frame: Any) -> None:
    INTERRUPTED.append(True)
    raise KeyboardInterrupt


def quiet_swallowed_interrupts(default: Callable[[Any], None]) -> Callable[[Any], None]:
    """An ``sys.unraisablehook`` that says nothing of a Ctrl-C a library swallowed.

    A KeyboardInterrupt raised inside a garbage-collector callback (JAX runs one) cannot
    propagate, and Python prints it as "Exception ignored in ..." with a traceback. The
    interrupt is not lost (:data:`INTERRUPTED` re-raises it at the next progress line), so the
    user should see only the one line ``main`` prints. Other unraisable errors still go to
    ``default``.
    """
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and INTERRUPTED:
            return
        default(unraisable)
    return hook


def progress_printer(quiet: bool):
    """A progress printer to stderr (silent when ``quiet``)."""
    def tell(msg: str) -> None:
        check_interrupt()
        if not quiet:
            click.echo(f"bayes-scaling: {msg}", err=True)
    return tell


def check_out_file(out: str) -> None:
    """Refuse an output path whose folder is missing or not writable (before any work)."""
    import os

    folder = Path(out).parent
    if not folder.is_dir():
        raise BayesScalingError(f"--out {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BayesScalingError(f"--out {out}: folder {folder} is not writable")


BEST_OF_SWEEP = click.option("--best-of-sweep", is_flag=True,
                     help="Keep only the lowest-loss run per (group, N, D): a learning-rate or "
                          "batch-size sweep reduced to its tuned run.")


def parse_columns(_ctx: Any, _param: Any, values: tuple[str, ...]) -> dict[str, str] | None:
    """``--columns n_params=parameter_count,loss=eval/c4_en/loss`` (repeatable) as a dict."""
    out: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            canon, sep, source = item.partition("=")
            if not sep or not canon.strip() or not source.strip():
                raise click.BadParameter(f"{item.strip()!r} is not canonical=column (e.g. "
                                         "n_params=parameter_count)", param_hint="'--columns'")
            if canon.strip() in out:
                raise click.BadParameter(f"{canon.strip()} is mapped twice",
                                         param_hint="'--columns'")
            out[canon.strip()] = source.strip()
    return out or None


def columns_options(command: Any) -> Any:
    """``--columns`` and ``--flops-unit``: read a runs or curves table named otherwise."""
    command = click.option(
        "--flops-unit", default=None, metavar="UNIT",
        help="Unit of the FLOP column: FLOP (default), GFLOP, TFLOP, PFLOP, PF-days, ... "
             "A FLOP column disagreeing with 6*N*D by more than 10% is reported.")(command)
    return click.option(
        "--columns", "columns", multiple=True, callback=parse_columns,
        metavar="CANONICAL=COLUMN,...",
        help="Which column is which, for a table named otherwise (an experiment tracker's "
             "export), e.g. n_params=parameter_count,n_tokens=tokens_seen,"
             "loss=eval/c4_en/loss. Any canonical column: n_params, n_tokens, flops, loss, "
             "group, run_id, steps, batch_size_tokens, learning_rate, ...")(command)


def stacking_options(command: Any) -> Any:
    """``--stack-tops``, ``--stack-refits``, ``--workers``: how several families are weighed.

    Shared by ``fit --model a,b,...`` and ``compare`` (one definition, one help text).
    """
    opts = [
        click.option("--stack-tops", default="1,2", show_default=True,
                     help="Several models: stacking weights from refits without the top K "
                          "compute budgets, for each K listed (held out by compute); compare "
                          "also takes 'loo' or '0': PSIS-LOO stacking weights."),
        click.option("--stack-refits", type=click.Choice(["huber-bootstrap", "nuts"]),
                     default="huber-bootstrap", show_default=True,
                     help="Several models: how the stacking refits are made (Huber point fit "
                          "+ bootstrap, seconds; or NUTS with the fits' own settings)."),
        click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
                     help="Several models: fit the families, and make the stacking refits, "
                          "in this many processes."),
    ]
    for opt in reversed(opts):
        command = opt(command)
    return command


def resolve_runs(source: str, *, group_col: str | None = None, drop_highest_loss: int = 0,
                 param_count: str | None = None, query: str | None = None,
                 best_of_sweep: bool = False, columns: dict[str, str] | None = None,
                 flops_unit: str | None = None):
    """A runs table from a file path, or from a registry data set name (e.g. ``chinchilla``).

    For a registry name, the registry's loader defaults apply unless overridden here. With
    ``best_of_sweep`` only the lowest-loss run per (group, N, D) is kept. ``columns`` and
    ``flops_unit`` are :func:`~bayes_scaling.data.runs.load_runs`'s; its data warnings (a FLOP
    column disagreeing with 6·N·D) are printed to stderr.
    """
    import warnings

    from bayes_scaling.errors import DataWarning

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", DataWarning)
        table = _resolve_runs(source, group_col=group_col, drop_highest_loss=drop_highest_loss,
                              param_count=param_count, query=query, columns=columns,
                              flops_unit=flops_unit)
    for w in seen:
        if issubclass(w.category, DataWarning):
            click.echo(f"bayes-scaling: warning: {' '.join(str(w.message).split())}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return table.best_of_sweeps() if best_of_sweep else table


def _resolve_runs(source: str, *, group_col: str | None, drop_highest_loss: int,
                  param_count: str | None, query: str | None,
                  columns: dict[str, str] | None, flops_unit: str | None):
    from bayes_scaling.data.registry import load_dataset, load_registry
    from bayes_scaling.data.runs import load_runs

    kwargs: dict[str, Any] = {"param_count": param_count} if param_count else {}
    if group_col:
        kwargs["group_col"] = group_col
    if query:
        kwargs["query"] = query
    if columns:
        kwargs["columns"] = columns
    if flops_unit:
        kwargs["flops_unit"] = flops_unit
    registry = load_registry()
    if not Path(source).exists() and source in registry:
        if drop_highest_loss:
            kwargs["drop_highest_loss"] = drop_highest_loss
        return load_dataset(source, **kwargs)
    if not Path(source).exists() and not Path(source).suffix:  # a misspelt data-set name?
        import difflib

        close = difflib.get_close_matches(source, list(registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BayesScalingError(f"{source}: neither a runs file (.csv, .tsv, .jsonl, "
                                f".parquet) nor a registry data set{hint} (known: "
                                f"{', '.join(registry)})")
    return load_runs(source, drop_highest_loss=drop_highest_loss, **kwargs)


# --------------------------------------------------------------------------------- schedules
# The schedule options describe one learning-rate schedule: the schedule queried (``curve``,
# ``schedule-steps``) or, for ``fit`` and ``backtest``, the schedule of every row of a curves
# table that does not carry its own (:func:`bayes_scaling.data.curves.load_curves`).
_SHAPES = ("constant", "cosine", "linear", "wsd")


def schedule_options(command):
    """``--schedule``, ``--total-steps``, ``--warmup-steps``, ``--final-lr-fraction``,
    ``--cooldown-start``, ``--cooldown-steps``."""
    opts = [
        click.option("--schedule", "--lr-schedule", "lr_schedule", default=None,
                     type=click.Choice(_SHAPES),
                     help="Learning-rate schedule after the warm-up (default: constant)."),
        click.option("--total-steps", default=None, type=float,
                     help="Length of a cosine or linear schedule (steps)."),
        click.option("--warmup-steps", default=None, type=float, help="Linear warm-up steps."),
        click.option("--final-lr-fraction", default=None, type=float,
                     help="Rate at the end of the decay, as a fraction of the peak (default 0)."),
        click.option("--cooldown-start", default=None, type=float,
                     help="WSD: step where the linear cooldown starts."),
        click.option("--cooldown-steps", default=None, type=float,
                     help="WSD: length of the cooldown (steps)."),
    ]
    for opt in reversed(opts):
        command = opt(command)
    return command


def curve_fit_options(command):
    """``--residual`` and ``--max-points-per-curve``: options of curve-model fits."""
    opts = [
        click.option("--residual", type=click.Choice(["iid", "ou"]), default=None,
                     help="Curve models: residuals along each curve, independent (iid) or an "
                          "OU process in log steps (ou: AR(1) at uneven spacing); default: "
                          "the spec's."),
        click.option("--curve-offsets", "curve_offsets",
                     type=click.Choice(["curve", "none", "run_length"]), default=None,
                     help="Curve models: a whole-curve offset per curve (curve), none (the "
                          "curve-to-curve spread goes into sigma), or offsets whose mean "
                          "follows the log schedule length, total_steps (run_length); "
                          "default: the spec's."),
        click.option("--run-length-term", "run_length_term",
                     type=click.Choice(["none", "anneal", "area"]), default=None,
                     help="Schedule-aware curve models: scale the annealing fraction (anneal) "
                          "or the forward area (area) the law reads by a fitted power of the "
                          "run's schedule length, total_steps; default: the spec's (none)."),
        click.option("--max-points-per-curve", "max_points_per_curve", default=None,
                     type=click.IntRange(min=0),
                     help="Curve models: thin each training curve to at most this many "
                          "checkpoints, log-spaced in steps (default 30; 0 keeps all, up to "
                          "the table's cap of 3,000)."),
        click.option("--warmup-fraction", "warmup_fraction", default=None,
                     type=click.FloatRange(0, 1),
                     help="Curve models: drop each curve's checkpoints before this fraction "
                          "of its last step (default 0.1; 0 keeps them all)."),
        click.option("--min-steps", "min_steps", default=None, type=float,
                     help="Curve models: drop every curve's checkpoints before this step, the "
                          "same for every run length (e.g. a multiple of the warm-up; with "
                          "--warmup-fraction 0 it replaces the fraction-of-run cut; default 0)."),
    ]
    for opt in reversed(opts):
        command = opt(command)
    return command


def curve_thinning(max_points_per_curve: int | None, warmup_fraction: float | None = None,
                   min_steps: float | None = None) -> dict[str, Any]:
    """``load_curves`` arguments for ``--max-points-per-curve``, ``--warmup-fraction`` and
    ``--min-steps`` (``None``: the library's defaults)."""
    out: dict[str, Any] = {} if warmup_fraction is None else {"warmup_fraction": warmup_fraction}
    if min_steps is not None:
        if not (math.isfinite(min_steps) and min_steps >= 0):
            raise BayesScalingError(f"--min-steps {min_steps:g}: need a finite step >= 0")
        out["min_steps"] = float(min_steps)
    if max_points_per_curve is None:
        return out
    if max_points_per_curve == 0:
        return {**out, "max_points_per_curve": None}
    if max_points_per_curve < 3:
        raise BayesScalingError(f"--max-points-per-curve {max_points_per_curve}: need at "
                                "least 3 checkpoints per curve (or 0 for all)")
    return {**out, "max_points_per_curve": max_points_per_curve}


def schedule_fields(lr_schedule, total_steps, warmup_steps, final_lr_fraction, cooldown_start,
                    cooldown_steps) -> dict[str, Any]:
    """The :class:`~bayes_scaling.data.schedules.Schedule` fields the options gave."""
    given = {"shape": lr_schedule, "total_steps": total_steps, "warmup_steps": warmup_steps,
             "final_fraction": final_lr_fraction, "cooldown_start": cooldown_start,
             "cooldown_steps": cooldown_steps}
    return {k: v for k, v in given.items() if v is not None}


def schedule_of(fields: dict[str, Any]):
    """A :class:`~bayes_scaling.data.schedules.Schedule` from the options (None: constant)."""
    from bayes_scaling.data.schedules import Schedule

    return Schedule(**fields) if fields else None
