"""What every command shares: runs resolution, progress lines, Ctrl-C handling, output checks."""

from __future__ import annotations

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


def resolve_runs(source: str, *, group_col: str | None = None, drop_highest_loss: int = 0,
                 param_count: str | None = None, query: str | None = None,
                 best_of_sweep: bool = False):
    """A runs table from a file path, or from a registry data set name (e.g. ``chinchilla``).

    For a registry name, the registry's loader defaults apply unless overridden here. With
    ``best_of_sweep`` only the lowest-loss run per (group, N, D) is kept.
    """
    table = _resolve_runs(source, group_col=group_col, drop_highest_loss=drop_highest_loss,
                          param_count=param_count, query=query)
    return table.best_of_sweeps() if best_of_sweep else table


def _resolve_runs(source: str, *, group_col: str | None, drop_highest_loss: int,
                  param_count: str | None, query: str | None):
    from bayes_scaling.data.registry import load_dataset, load_registry
    from bayes_scaling.data.runs import load_runs

    kwargs: dict[str, Any] = {"param_count": param_count} if param_count else {}
    if group_col:
        kwargs["group_col"] = group_col
    if query:
        kwargs["query"] = query
    registry = load_registry()
    if not Path(source).exists() and source in registry:
        if drop_highest_loss:
            kwargs["drop_highest_loss"] = drop_highest_loss
        return load_dataset(source, **kwargs)
    if not Path(source).exists() and not Path(source).suffix:  # a misspelt data-set name?
        import difflib

        close = difflib.get_close_matches(source, list(registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BayesScalingError(f"{source}: neither a runs file (.csv, .tsv, .parquet) nor a "
                                f"registry data set{hint} (known: {', '.join(registry)})")
    return load_runs(source, drop_highest_loss=drop_highest_loss, **kwargs)


