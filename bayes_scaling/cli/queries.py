"""Query commands of ``bayes-scaling``: read a saved fit, print a table or JSON; never PyMC.

``predict``, ``tokens``, ``optimal``, ``summary`` (scaling-law fits) and ``curve``, ``batch``
(training-dynamics fits), with the option, number-parsing and table/JSON helpers that the other
commands in :mod:`bayes_scaling.cli.app` share. The commands are plain :func:`click.command`
objects;
``cli`` attaches them to its group, so this module never imports ``cli``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

from bayes_scaling.cli.common import schedule_fields, schedule_of, schedule_options
from bayes_scaling.constants import DEFAULT_INTERVAL
from bayes_scaling.errors import BayesScalingError


def print_table(records: list[dict[str, Any]], columns: Sequence[str]) -> None:
    import pandas as pd

    frame = pd.DataFrame(records)
    cols = [c for c in columns if c in frame.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        click.echo(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _emit(result, as_json: bool, columns: Sequence[str], extra: dict | None = None) -> None:
    shown = [str(w).removeprefix("WARNING: ") for w in result.warnings]  # one prefix is enough
    for w in shown:
        click.echo(f"bayes-scaling: warning: {w}", err=True)
    if as_json:
        payload = {"band": result.band, "warnings": list(result.warnings),
                   "records": result.to_records(), **(extra or {})}
        click.echo(json.dumps(payload, indent=2))
    else:
        for w in shown:
            click.echo(f"WARNING: {w}")
        print_table(result.to_records(), columns)


def load_fit(path: str):
    from bayes_scaling.fitting.result import ScalingFit

    return ScalingFit.load(path)


def parse_floats(text: str, what: str) -> list[float]:
    if re.fullmatch(r"\s*\d{1,3}(,\d{3})+\s*", str(text)):
        raise BayesScalingError(f"{what}: {text!r} looks like a number with thousands "
                                "separators; commas separate values here: write e.g. 7e9")
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise BayesScalingError(f"{what}: expected numbers like 7e10 or 1e9,7e10; got {text!r}") \
            from None
    if not vals:
        raise BayesScalingError(f"{what}: no value given")
    return vals


# --------------------------------------------------------------------------------- queries
INTERVAL_OPTION = click.option("--interval", default=DEFAULT_INTERVAL, show_default=True,
                               type=float,
                         help="Probability of the reported interval (lower, upper).")
GROUP_OPTION = click.option("--group", default=None, help="Data distribution, or 'new' for unseen.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
SEED_OPTION = click.option("--seed", default=0, show_default=True, type=int)


def _query_options(command):
    """The options every band query shares: ``--group``, ``--interval``, ``--json``, ``--seed``."""
    return GROUP_OPTION(INTERVAL_OPTION(JSON_OPTION(SEED_OPTION(command))))


@click.command("predict")
@click.argument("fit_path", metavar="FIT")
@click.option("--n-params", required=True, help="Model size(s), e.g. 7e10 or 1e9,7e10.")
@click.option("--n-tokens", required=True, help="Training tokens, e.g. 1.4e12.")
@click.option("--band", type=click.Choice(["predictive", "law"]), default="predictive",
              show_default=True)
@_query_options
def predict_cmd(fit_path, n_params, n_tokens, band, group, interval, as_json, seed):
    """Predicted loss at (N, D) with a credible band."""
    from bayes_scaling.query.predict import predict_loss

    fitted = load_fit(fit_path)
    res = predict_loss(fitted, parse_floats(n_params, "--n-params"),
                       parse_floats(n_tokens, "--n-tokens"),
                       group=group, band=band, interval=interval, random_seed=seed)
    _emit(res, as_json, ["n_params", "n_tokens", "flops", "group", "band", "median", "mean",
                         "lower", "upper", "interval", "decades_past_c"])


@click.command("tokens")
@click.argument("fit_path", metavar="FIT")
@click.option("--n-params", required=True, help="Model size(s).")
@click.option("--target-loss", required=True, type=float, help="Target loss (nats/token).")
@_query_options
def tokens_cmd(fit_path, n_params, target_loss, group, interval, as_json, seed):
    """Tokens needed to reach a target loss at a model size, and P(unreachable)."""
    from bayes_scaling.query.predict import tokens_needed

    fitted = load_fit(fit_path)
    res = tokens_needed(fitted, parse_floats(n_params, "--n-params"), target_loss, group=group,
                        interval=interval, random_seed=seed)
    _emit(res, as_json, ["n_params", "target_loss", "group", "p_unreachable", "median",
                         "lower", "upper", "interval", "median_tokens_per_param"])


@click.command("optimal")
@click.argument("fit_path", metavar="FIT")
@click.option("--flops", required=True, help="FLOP budget(s), e.g. 5.88e23.")
@_query_options
def optimal_cmd(fit_path, flops, group, interval, as_json, seed):
    """Compute-optimal N, D, tokens per parameter and loss for a FLOP budget."""
    from bayes_scaling.query.allocate import compute_optimal

    fitted = load_fit(fit_path)
    res = compute_optimal(fitted, parse_floats(flops, "--flops"), group=group, interval=interval,
                          random_seed=seed)
    _emit(res, as_json, ["flops", "quantity", "group", "median", "mean", "lower", "upper",
                         "interval"])


@click.command("summary")
@click.argument("fit_path", metavar="FIT")
def summary_cmd(fit_path):
    """Constants with intervals, convergence and provenance of a saved fit."""
    from bayes_scaling.report.demo import fit_summary_text

    click.echo(fit_summary_text(load_fit(fit_path)))


# --------------------------------------------------------------------------------- dynamics
@click.command("curve")
@click.argument("fit_path", metavar="FIT")
@click.option("--n-params", required=True, type=float, help="Model size, e.g. 1e9.")
@click.option("--batch-size", required=True, type=float, help="Batch size in tokens, e.g. 2e6.")
@click.option("--steps", default=None, help="Steps, e.g. 1000,5000,20000 (default: fitted range).")
@click.option("--band", type=click.Choice(["predictive", "law"]), default="predictive",
              show_default=True)
@schedule_options
@_query_options
def curve_cmd(fit_path, n_params, batch_size, steps, band, lr_schedule, total_steps,
              warmup_steps, final_lr_fraction, cooldown_start, cooldown_steps, group, interval,
              as_json, seed):
    """Predicted loss curve (loss vs steps) of a model at a batch size under a learning-rate
    schedule (default constant; other schedules need a dynamics_schedule fit), with bands."""
    from bayes_scaling.query.curves import predict_curve

    sched = schedule_of(schedule_fields(lr_schedule, total_steps, warmup_steps,
                                        final_lr_fraction, cooldown_start, cooldown_steps))
    if steps is None and sched is not None and sched.end() > 0:
        import numpy as np

        steps = ",".join(f"{v:.0f}" for v in np.unique(np.geomspace(
            max(sched.end() / 100.0, 1.0), sched.end(), 25).round()))
    res = predict_curve(load_fit(fit_path), n_params, batch_size,
                        None if steps is None else parse_floats(steps, "--steps"), group=group,
                        band=band, interval=interval, random_seed=seed, schedule=sched)
    _emit(res, as_json, ["steps", "tokens", "group", "band", "median", "lower", "upper",
                         "interval", "decades_past_n"])


@click.command("batch")
@click.argument("fit_path", metavar="FIT")
@click.option("--loss", "loss", required=True, help="Loss value(s) (nats/token), e.g. 3.0,2.5.")
@click.option("--n-params", default=None, type=float,
              help="Also the fewest steps/tokens and the batch sizes near them at this size.")
@click.option("--tolerance", default=0.1, show_default=True, type=float,
              help="Within this fraction of the fewest steps (or tokens).")
@_query_options
def batch_cmd(fit_path, loss, n_params, tolerance, group, interval, as_json, seed):
    """Critical batch size B_crit(L) with bands (and, with --n-params, the batch trade-off)."""
    from bayes_scaling.query.curves import critical_batch_size, optimal_batch_size

    fitted = load_fit(fit_path)
    losses = parse_floats(loss, "--loss")
    res = critical_batch_size(fitted, losses, group=group, interval=interval, random_seed=seed)
    opt = [optimal_batch_size(fitted, n_params, v, tolerance=tolerance, group=group,
                              interval=interval, random_seed=seed)
           for v in losses] if n_params is not None else []
    if as_json:
        for w in res.warnings:
            click.echo(f"bayes-scaling: warning: {w}", err=True)
        click.echo(json.dumps({"band": "law", "warnings": list(res.warnings),
                               "critical_batch_size": res.to_records(),
                               "optimal_batch_size": [r for o in opt for r in o.to_records()]},
                              indent=2))
        return
    _emit(res, False, ["loss", "group", "band", "median", "lower", "upper", "interval"])
    for o in opt:
        click.echo("")
        print_table(o.to_records(), ["target_loss", "quantity", "p_unreachable", "median",
                                      "lower", "upper", "interval"])
