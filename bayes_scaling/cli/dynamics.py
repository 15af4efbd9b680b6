"""Commands of schedule-aware curve fits: ``cooldown``, ``schedule-steps``, and the curve
backtest behind ``backtest CURVES --model dynamics``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bayes_scaling.cli.common import (
    progress_printer,
    schedule_fields,
    schedule_of,
    schedule_options,
)
from bayes_scaling.cli.queries import _emit, _query_options, load_fit, parse_floats
from bayes_scaling.errors import BayesScalingError


# --------------------------------------------------------------------------------- queries
@click.command("cooldown")
@click.argument("fit_path", metavar="FIT")
@click.option("--n-params", required=True, type=float, help="Model size, e.g. 1e9.")
@click.option("--batch-size", required=True, type=float, help="Batch size in tokens.")
@click.option("--start", "starts", required=True,
              help="Step(s) where the cooldown starts, e.g. 5000,10000,20000.")
@click.option("--fraction", default=0.1, show_default=True, type=float,
              help="Cooldown length as a fraction of its start step.")
@click.option("--warmup-steps", default=0.0, show_default=True, type=float)
@click.option("--final-lr-fraction", default=0.0, show_default=True, type=float)
@click.option("--band", type=click.Choice(["predictive", "law"]), default="predictive",
              show_default=True)
@_query_options
def cooldown_cmd(fit_path, n_params, batch_size, starts, fraction, warmup_steps,
                 final_lr_fraction, band, group, interval, as_json, seed):
    """Loss after a cooldown started at each step (WSD planning), and at constant rate."""
    from bayes_scaling.query.schedules import cooldown_loss

    res = cooldown_loss(load_fit(fit_path), n_params, batch_size,
                        parse_floats(starts, "--start"), cooldown_fraction=fraction,
                        warmup_steps=warmup_steps, final_fraction=final_lr_fraction,
                        group=group, band=band, interval=interval, random_seed=seed)
    _emit(res, as_json, ["cooldown_start", "end_step", "tokens", "quantity", "band", "median",
                         "lower", "upper", "interval"])


@click.command("schedule-steps")
@click.argument("fit_path", metavar="FIT")
@click.option("--n-params", required=True, type=float, help="Model size, e.g. 1e9.")
@click.option("--batch-size", required=True, type=float, help="Batch size in tokens.")
@click.option("--target-loss", required=True, type=float, help="Target loss (nats/token).")
@schedule_options
@_query_options
def schedule_steps_cmd(fit_path, n_params, batch_size, target_loss, lr_schedule, total_steps,
                       warmup_steps, final_lr_fraction, cooldown_start, cooldown_steps, group,
                       interval, as_json, seed):
    """Shortest schedule (steps, tokens) that ends at a target loss; the schedule's shape is
    stretched (WSD keeps its cooldown fraction)."""
    from bayes_scaling.query.schedules import steps_for_loss

    fields = schedule_fields(lr_schedule, total_steps, warmup_steps, final_lr_fraction,
                             cooldown_start, cooldown_steps)
    if fields.get("shape") in ("cosine", "linear") and "total_steps" not in fields:
        fields["total_steps"] = 1.0  # a template: steps_for_loss stretches it
    sched = schedule_of(fields) or schedule_of({"shape": "constant"})
    res = steps_for_loss(load_fit(fit_path), n_params, target_loss, batch_size, sched,
                         group=group, interval=interval, random_seed=seed)
    _emit(res, as_json, ["target_loss", "schedule", "quantity", "p_unreachable", "median",
                         "lower", "upper", "interval"])


# --------------------------------------------------------------------------------- backtest
def backtest_curves(source: str, model: str, tops: list[int], *, group_col, param_count,
                    schedule: dict[str, Any], seed: int, chains: int, draws: int, tune: int,
                    as_json: bool, quiet: bool, residual: str | None = None,
                    curve_offsets: str | None = None, likelihood: str | None = None,
                    run_length_term: str | None = None,
                    thinning: dict[str, Any] | None = None) -> None:
    """``backtest CURVES --model dynamics[_schedule]``: per held-out curve and pooled scores."""
    from bayes_scaling.data.curves import load_curves
    from bayes_scaling.data.registry import fetch, load_registry
    from bayes_scaling.evaluate.curve_backtest import curve_backtest

    path = source if Path(source).exists() or source not in load_registry() else fetch(source)
    load = {"group_col": group_col, "param_count": param_count or "total",
            "schedule": schedule or None}
    train = load_curves(path, **load, **(thinning or {}))
    warmup = {k: v for k, v in (thinning or {}).items() if k in ("warmup_fraction", "min_steps")}
    test = load_curves(path, **load, **warmup, max_points_per_curve=None, max_points=None)
    tell = progress_printer(quiet)
    results = []
    for k in tops:
        tell(f"backtest: top {k} size(s) held out")
        results.append(curve_backtest(model, train, test, holdout_top=k, chains=chains,
                                      draws=draws, tune=tune, random_seed=seed + k,
                                      residual=residual, curve_offsets=curve_offsets,
                                      likelihood=likelihood, run_length_term=run_length_term,
                                      on_progress=tell))
    if as_json:
        click.echo(json.dumps({"curve_backtests": [r.to_json() for r in results]}, indent=2,
                              default=str))
        return
    for r in results:
        if not r.summary["gate_passed"]:
            click.echo("WARNING: the refit failed the convergence gate")
        click.echo(r.to_text())


def check_curve_backtest_options(method: str, holdout_by: str) -> None:
    """Curve backtests hold out model sizes and fit the Bayesian model only."""
    if holdout_by != "n_params":
        raise BayesScalingError("backtests of curve models hold out model sizes: "
                                "use --holdout-by n_params")
    if method == "huber-bootstrap":
        raise BayesScalingError("backtests of curve models fit the Bayesian model only: "
                                "drop --method huber-bootstrap")
