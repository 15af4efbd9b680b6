"""The commands that judge a saved fit: ``diagnose`` and ``next-run``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bayes_scaling.cli.common import progress_printer
from bayes_scaling.cli.queries import (
    GROUP_OPTION,
    INTERVAL_OPTION,
    JSON_OPTION,
    SEED_OPTION,
    load_fit,
    parse_floats,
)
from bayes_scaling.errors import BayesScalingError


@click.command("diagnose")
@click.argument("fit_path", metavar="FIT")
@click.option("--target-n-params", type=float, default=None,
              help="Planned model size: adds how far it lies past the runs.")
@click.option("--target-n-tokens", type=float, default=None, help="Planned training tokens.")
@click.option("--full", is_flag=True,
              help="Also fit the broken-law and pooled-exponent models (NUTS) and compare "
                   "them with the plain one by PSIS-LOO (slow).")
@JSON_OPTION
@SEED_OPTION
@click.option("--quiet", "-q", is_flag=True)
def diagnose_cmd(fit_path, target_n_params, target_n_tokens, full, as_json, seed, quiet):
    """Scaling-pattern checks of a fit: outliers, few sizes, cold start, bend, slopes."""
    from bayes_scaling.evaluate.checks import diagnose

    if (target_n_params is None) != (target_n_tokens is None):
        raise BayesScalingError("give both --target-n-params and --target-n-tokens, or neither")
    target = None if target_n_params is None else (target_n_params, target_n_tokens)
    res = diagnose(load_fit(fit_path), target=target, full=full, random_seed=seed,
                   on_progress=progress_printer(quiet))
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
        return
    click.echo(res.to_text())


@click.command("next-run")
@click.argument("fit_path", metavar="FIT")
@click.option("--target-n-params", required=True, type=float, help="Planned model size.")
@click.option("--target-n-tokens", required=True, type=float, help="Planned training tokens.")
@click.option("--target-loss", type=float, default=None,
              help="Target loss: adds how much each run could move P(loss <= target).")
@click.option("--budget", required=True, type=float, help="FLOPs available for the next run.")
@click.option("--candidates-n", default=None,
              help="Candidate sizes, e.g. 2e10,3e10 (default: 12 log-spaced sizes from the "
                   "runs' median N to the target's).")
@click.option("--tokens-per-param", default="10,20,40", show_default=True,
              help="Candidate tokens per parameter.")
@click.option("--band", type=click.Choice(["predictive", "law"]), default="predictive",
              show_default=True)
@click.option("--metric", type=click.Choice(["band", "p_target"]), default="band",
              show_default=True, help="Rank by band narrowing or by P(target) uncertainty.")
@click.option("--n-sim", default=128, show_default=True, type=int,
              help="Simulated outcomes per candidate.")
@click.option("--top", default=10, show_default=True, type=int, help="Rows printed.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Write the band-vs-cost plot (PNG) here.")
@GROUP_OPTION
@INTERVAL_OPTION
@JSON_OPTION
@SEED_OPTION
def next_run_cmd(fit_path, target_n_params, target_n_tokens, target_loss, budget, candidates_n,
                 tokens_per_param, band, metric, n_sim, top, plot_path, group, interval,
                 as_json, seed):
    """Rank candidate next runs by expected narrowing of the band at the target per FLOP."""
    from bayes_scaling.evaluate.nextrun import candidate_grid, rank_next_runs, table_text

    fitted = load_fit(fit_path)
    target = (target_n_params, target_n_tokens, target_loss)
    sizes = parse_floats(candidates_n, "--candidates-n") if candidates_n else None
    cands = candidate_grid(fitted, target, sizes=sizes,
                           tokens_per_param=parse_floats(tokens_per_param, "--tokens-per-param"))
    table = rank_next_runs(fitted, cands, target=target, budget=budget, group=group,
                           band=band, metric=metric, interval=interval, n_sim=n_sim,
                           random_seed=seed)
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        from bayes_scaling.files import atomic_savefig
        from bayes_scaling.plots.nextrun import plot_next_runs

        ax = plot_next_runs(table)
        atomic_savefig(ax.figure, Path(plot_path), dpi=120, bbox_inches="tight")
    for w in table.attrs.get("warnings", []):
        click.echo(f"bayes-scaling: warning: {w}", err=True)
    if as_json:
        from bayes_scaling.evaluate.nextrun import ranking_json

        click.echo(json.dumps(ranking_json(table), indent=2))
    else:
        click.echo(table_text(table, top=top))
    if plot_path:
        click.echo(f"wrote {plot_path}", err=as_json)
