"""The ``bayes-scaling`` command line: parse, call the library, render; one-line errors.

A :class:`~bayes_scaling.errors.BayesScalingError` is bad input (or an untrustworthy result the
user asked to refuse): it prints as one line on stderr and exits with status 2. Anything else is
a bug and keeps its traceback. Results go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from bayes_scaling.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    INTERRUPTED,
    on_sigint,
    quiet_swallowed_interrupts,
)
from bayes_scaling.cli.documents import data_grp, demo_cmd, report_cmd
from bayes_scaling.cli.dynamics import cooldown_cmd, schedule_steps_cmd
from bayes_scaling.cli.evaluate import diagnose_cmd, next_run_cmd
from bayes_scaling.cli.fitting import backtest_cmd, compare_cmd, fit_cmd
from bayes_scaling.cli.queries import (
    batch_cmd,
    contrast_cmd,
    curve_cmd,
    optimal_cmd,
    predict_cmd,
    rank_cmd,
    summary_cmd,
    tokens_cmd,
)
from bayes_scaling.errors import BayesScalingError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bayes_scaling")
def cli() -> None:
    """Hierarchical Bayesian scaling laws: predicted loss, tokens needed and compute-optimal
    allocation for a large training run, with honest uncertainty."""






for _command in (fit_cmd, compare_cmd, backtest_cmd, diagnose_cmd, next_run_cmd, data_grp,
                 demo_cmd, report_cmd, predict_cmd, tokens_cmd, optimal_cmd, summary_cmd,
                 curve_cmd, batch_cmd, contrast_cmd, rank_cmd,
                 cooldown_cmd, schedule_steps_cmd):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (tests call ``main([...])``)."""
    import warnings

    from bayes_scaling.errors import ConvergenceWarning, DataWarning, ExtrapolationWarning

    warnings.simplefilter("ignore", ExtrapolationWarning)  # printed by the commands themselves
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", DataWarning)  # printed by the commands themselves
    warnings.simplefilter("ignore", FutureWarning)
    # PyTensor's C backend only builds start points here (sampling runs in JAX): its advice to
    # install a BLAS through conda is noise to a user of this command
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    import signal
    import threading

    INTERRUPTED.clear()
    previous = (signal.signal(signal.SIGINT, on_sigint)
                if threading.current_thread() is threading.main_thread() else None)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = quiet_swallowed_interrupts(previous_hook)
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="bayes-scaling",
                      standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except BayesScalingError as exc:
        click.echo(f"bayes-scaling: error: {' '.join(str(exc).split())}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("bayes-scaling: interrupted; nothing was written", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("bayes-scaling: interrupted; nothing was written", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.ClickException as exc:
        click.echo(f"bayes-scaling: error: {' '.join(exc.format_message().split())}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    finally:
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
