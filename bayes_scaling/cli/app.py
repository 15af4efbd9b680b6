"""The ``bayes-scaling`` command line: parse, call the library, render; one-line errors.

A :class:`~bayes_scaling.errors.BayesScalingError` is bad input (or an untrustworthy result the
user asked to refuse): it prints as one line on stderr and exits with status 2. Anything else is
a bug and keeps its traceback. Results go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from bayes_scaling.cli.queries import (
    _GROUP,
    _INTERVAL,
    _JSON,
    _SEED,
    _floats,
    _load_fit,
    _print_table,
    batch_cmd,
    curve_cmd,
    optimal_cmd,
    predict_cmd,
    summary_cmd,
    tokens_cmd,
)
from bayes_scaling.errors import BayesScalingError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
#: Set by main()'s SIGINT handler. A Ctrl-C that a library swallows (JAX runs Python callbacks
#: from the garbage collector, where a KeyboardInterrupt is ignored) is raised again at the
#: next progress line and before anything is saved.
_INTERRUPTED: list[bool] = []


def _check_interrupt() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if it was swallowed since."""
    if _INTERRUPTED:
        raise KeyboardInterrupt


def _on_sigint(_signum: int, _frame: Any) -> None:
    _INTERRUPTED.append(True)
    raise KeyboardInterrupt


def _progress(quiet: bool):
    """A progress printer to stderr (silent when ``quiet``)."""
    def tell(msg: str) -> None:
        _check_interrupt()
        if not quiet:
            click.echo(f"bayes-scaling: {msg}", err=True)
    return tell


def _check_out_file(out: str) -> None:
    """Refuse an output path whose folder is missing or not writable (before any work)."""
    import os

    folder = Path(out).parent
    if not folder.is_dir():
        raise BayesScalingError(f"--out {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BayesScalingError(f"--out {out}: folder {folder} is not writable")


_BEST = click.option("--best-of-sweep", is_flag=True,
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bayes_scaling")
def cli() -> None:
    """Hierarchical Bayesian scaling laws: predicted loss, tokens needed and compute-optimal
    allocation for a large training run, with honest uncertainty."""


# --------------------------------------------------------------------------------- fit
@cli.command("fit")
@click.argument("runs")
@click.option("--model", "model", default="chinchilla", show_default=True,
              help="Shipped model name (see models/) or path to a spec TOML.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Fit file (.nc).")
@click.option("--group-col", default=None, help="Column naming the data distribution.")
@click.option("--drop-highest-loss", default=0, show_default=True, type=int,
              help="Drop the K highest-loss runs (Epoch AI dropped 5 of Chinchilla's).")
@click.option("--param-count", type=click.Choice(["total", "nonembedding"]), default=None,
              help="Which parameter count is N (default: the data set's own, else total).")
@click.option("--query", default=None, help="pandas query to select runs, e.g. 'loss < 4'.")
@_BEST
@click.option("--likelihood", type=click.Choice(["studentt", "normal", "auto"]), default=None,
              help="Override the spec's likelihood; auto: Normal unless outlier runs are "
                   "flagged, then Student-t.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--chains", default=4, show_default=True, type=click.IntRange(min=2),
              help="At least 2: the convergence gate's r-hat compares chains.")
@click.option("--draws", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--tune", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--backend", type=click.Choice(["numpyro", "nutpie", "pymc"]), default=None)
@click.option("--target-accept", default=0.9, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="NUTS target acceptance (--model dynamics: 0.99 for curves at one batch "
                   "size, else 0.95, unless given).")
@click.option("--ess-target", default=None, type=click.FloatRange(min=1),
              help="Stop drawing once every constant has this bulk and tail ESS (numpyro; "
                   "--draws is then the cap). 400 is the gate's floor.")
@click.option("--no-calibrate", is_flag=True, help="Skip the extrapolation discrepancy.")
@click.option("--strict", is_flag=True, help="Exit 2 (and write nothing) if the gate fails.")
@click.option("--quiet", "-q", is_flag=True)
def fit_cmd(runs, model, out, group_col, drop_highest_loss, param_count, query, best_of_sweep,
            likelihood, seed, chains, draws, tune, backend, target_accept, ess_target,
            no_calibrate, strict, quiet):
    """Fit MODEL to the RUNS table (CSV/Parquet or a registry name) and save the posterior."""
    from bayes_scaling.fitting.fit import fit
    from bayes_scaling.laws.final_loss import LAWS
    from bayes_scaling.model.spec import load_spec

    tell = _progress(quiet)
    _check_out_file(out)  # before sampling: a fit must not be lost to an unwritable --out
    if load_spec(model).law not in LAWS:  # a curve law: RUNS holds loss curves (dynamics)
        if best_of_sweep:
            raise BayesScalingError("--best-of-sweep applies to runs tables (one loss per run), "
                                    f"not to the loss curves of model {model!r}")
        spec = load_spec(model)  # "auto" keeps the spec's own likelihood for curves
        spec = spec.with_likelihood(likelihood) if likelihood not in (None, "auto") else spec
        return _fit_curves(runs, spec, out, group_col=group_col, param_count=param_count,
                           query=query, seed=seed, chains=chains, draws=draws, tune=tune,
                           backend=backend, target_accept=target_accept, strict=strict,
                           quiet=quiet)
    table = resolve_runs(runs, group_col=group_col, drop_highest_loss=drop_highest_loss,
                         param_count=param_count, query=query, best_of_sweep=best_of_sweep)
    spec = load_spec(model)
    if likelihood == "auto":  # Normal unless outlier runs are flagged (diagnose.py)
        from bayes_scaling.evaluate.checks import choose_likelihood

        spec, why = choose_likelihood(spec, table)
        tell(f"likelihood auto -> {spec.likelihood.family}: {why['message']}")
    elif likelihood:
        spec = spec.with_likelihood(likelihood)
    result = fit(spec, table, chains=chains, draws=draws, tune=tune, backend=backend,
                 target_accept=target_accept, random_seed=seed, ess_target=ess_target,
                 on_bad="raise" if strict else "warn", calibrate=not no_calibrate,
                 progress=not quiet and sys.stderr.isatty(), on_progress=tell)
    _check_interrupt()  # a Ctrl-C swallowed during sampling: save nothing
    result.save(out)
    from bayes_scaling.report.demo import fit_summary_text

    click.echo(fit_summary_text(result))
    click.echo(f"saved {out}")


# --------------------------------------------------------------------------------- queries
for _query in (predict_cmd, tokens_cmd, optimal_cmd, summary_cmd, curve_cmd, batch_cmd):
    cli.add_command(_query)  # defined in cli_queries.py


# --------------------------------------------------------------------------------- data
@cli.group("data")
def data_grp() -> None:
    """The data-set registry: list, locate and verify real data sets."""


@data_grp.command("list")
def data_list():
    """Known data sets and whether they are available here."""
    from bayes_scaling.data.registry import list_datasets

    click.echo(list_datasets().to_string(index=False))


@data_grp.command("path")
@click.argument("name")
def data_path(name):
    """Path of data set NAME (fetching and verifying it if needed)."""
    from bayes_scaling.data.registry import fetch

    click.echo(str(fetch(name)))


@data_grp.command("verify")
@click.argument("name", required=False)
def data_verify(name):
    """Check the sha256 of data set NAME (or of every locally available set)."""
    from bayes_scaling.data.registry import list_datasets, verify

    names = [name] if name else [r["name"] for r in list_datasets().to_dict("records")
                                 if r.get("available")]
    for n in names:
        click.echo(verify(n))


# --------------------------------------------------------------------------------- demo
@cli.command("demo")
@click.option("--out", default="reports/demo", show_default=True, type=click.Path())
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", "-q", is_flag=True)
def demo_cmd(out, seed, quiet):
    """Fit the shipped Chinchilla runs and write a summary and plots to OUT."""
    from bayes_scaling.report.demo import run_demo

    written = run_demo(Path(out), random_seed=seed, on_progress=_progress(quiet))
    for p in written:
        click.echo(f"wrote {p}")


# --------------------------------------------------------------------------------- compare
@cli.command("compare")
@click.argument("runs")
@click.option("--models", default="chinchilla,kaplan,kaplan_e", show_default=True,
              help="Comma-separated shipped model names or spec paths; the first is the "
                   "reference for where the families part.")
@click.option("--group-col", default=None, help="Column naming the data distribution.")
@click.option("--drop-highest-loss", default=0, show_default=True, type=int,
              help="Drop the K highest-loss runs (a registry set keeps its default otherwise).")
@click.option("--param-count", type=click.Choice(["total", "nonembedding"]), default="total",
              show_default=True, help="Which parameter count is N (Kaplan used non-embedding).")
@click.option("--query", default=None, help="pandas query to select runs.")
@_BEST
@click.option("--holdout-top", default=1, show_default=True, type=int,
              help="Held-out check: refit without the top K model sizes (0 skips it).")
@click.option("--tokens-per-param", default=None, type=float,
              help="Scan budgets at D = r N instead of the first model's optimum.")
@click.option("--average", is_flag=True, help="Also print the stacking-averaged prediction.")
@click.option("--n-params", default=None, help="Size for --average (default 10x the largest).")
@click.option("--n-tokens", default=None, help="Tokens for --average (default 20 per param).")
@click.option("--plots", "plots_dir", default=None, type=click.Path(file_okay=False),
              help="Write compare_loss.png and compare_optimal.png to this folder.")
@click.option("--chains", default=4, show_default=True, type=click.IntRange(min=2),
              help="At least 2: the convergence gate's r-hat compares chains.")
@click.option("--draws", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--tune", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--backend", type=click.Choice(["numpyro", "nutpie", "pymc"]), default=None)
@_JSON
@_SEED
@click.option("--quiet", "-q", is_flag=True)
def compare_cmd(runs, models, group_col, drop_highest_loss, param_count, query, best_of_sweep,
                holdout_top,
                tokens_per_param, average, n_params, n_tokens, plots_dir, chains, draws, tune,
                backend, as_json, seed, quiet):
    """Fit several law families to RUNS and compare them (PSIS-LOO, held-out runs, exponents)."""
    from bayes_scaling.evaluate.compare import averaged_predict_loss, compare, fit_families

    names = [m.strip() for m in models.split(",") if m.strip()]
    if plots_dir and Path(plots_dir).exists() and not Path(plots_dir).is_dir():
        raise BayesScalingError(f"--plots {plots_dir}: exists and is not a folder")
    tell = _progress(quiet)
    table = resolve_runs(runs, group_col=group_col, drop_highest_loss=drop_highest_loss,
                         param_count=param_count, query=query, best_of_sweep=best_of_sweep)
    kw = {"chains": chains, "draws": draws, "tune": tune, "backend": backend}
    fits = fit_families(table, names, random_seed=seed, fit_kwargs=kw, on_progress=tell)
    result = compare(fits, holdout_top=holdout_top or None, random_seed=seed, on_progress=tell,
                     tokens_per_param=tokens_per_param, fit_kwargs=kw)
    payload = result.to_json()
    avg = None
    if average:
        n = _floats(n_params, "--n-params") if n_params else [10 * float(table.n.max())]
        d = _floats(n_tokens, "--n-tokens") if n_tokens else [20 * v for v in n]
        avg = averaged_predict_loss(fits, result.weights, n, d, group=result.meta["group"],
                                    random_seed=seed)
        for w in avg.warnings:
            click.echo(f"bayes-scaling: warning: {w}", err=True)
        payload["averaged"] = avg.to_records()
    if plots_dir:
        from bayes_scaling.plots.compare import save_compare_plots

        payload["plots"] = [str(p) for p in save_compare_plots(result, plots_dir,
                                                                random_seed=seed)]
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(result.to_text())
    if avg is not None:
        click.echo("stacking-averaged prediction (predictive band):")
        _print_table(avg.to_records(), ["n_params", "n_tokens", "median", "lower", "upper",
                                        "interval", "models"])
    for p in payload.get("plots", []):
        click.echo(f"wrote {p}")


# --------------------------------------------------------------------------------- report
@cli.command("report")
@click.argument("proposal", metavar="PROPOSAL.toml")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for report.html, report.md, report.json (saved fits in OUT/fits).")
@click.option("--seed", default=None, type=int, help="Override the proposal's seed.")
@click.option("--quiet", "-q", is_flag=True)
def report_cmd(proposal, out, seed, quiet):
    """Risk report of a compute proposal: P(target), bands, extrapolation, backtest, priors."""
    from bayes_scaling.report.write import make_report

    written = make_report(proposal, Path(out), random_seed=seed, on_progress=_progress(quiet))
    for p in written[:3]:
        click.echo(f"wrote {p}")


@cli.command("backtest")
@click.argument("runs")
@click.option("--model", default="chinchilla", show_default=True)
@click.option("--holdout-by", type=click.Choice(["n_params", "flops"]), default="n_params",
              show_default=True, help="Hold out the largest model sizes or compute budgets.")
@click.option("--holdout-top", default="1", show_default=True,
              help="How many of the top levels to hold out; '1,2,3' = rolling origin.")
@click.option("--method", type=click.Choice(["bayes", "huber-bootstrap", "both"]),
              default="both", show_default=True)
@click.option("--group-col", default=None)
@click.option("--drop-highest-loss", default=0, type=int)
@click.option("--param-count", type=click.Choice(["total", "nonembedding"]), default=None)
@_BEST
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--draws", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--tune", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--workers", default=1, show_default=True, type=int,
              help="Refits in parallel local processes.")
@click.option("--address", default=None, help="Dask scheduler address for the refits.")
@_JSON
@click.option("--quiet", "-q", is_flag=True)
def backtest_cmd(runs, model, holdout_by, holdout_top, method, group_col, drop_highest_loss,
                 param_count, best_of_sweep, seed, draws, tune, workers, address, as_json, quiet):
    """Refit without the largest runs, predict them, and score the predictive bands."""
    from bayes_scaling.evaluate.backtest import backtest, calibration_table
    from bayes_scaling.evaluate.parallel import run_many

    table = resolve_runs(runs, group_col=group_col, drop_highest_loss=drop_highest_loss,
                         param_count=param_count, best_of_sweep=best_of_sweep)
    tops = [int(v) for v in _floats(holdout_top, "--holdout-top")]
    methods = ["bayes", "huber-bootstrap"] if method == "both" else [method]
    tasks = [{"runs": table, "model": model, "holdout_by": holdout_by, "holdout_top": k,
              "method": m, "random_seed": seed + k,
              **({"fit_kwargs": {"draws": draws, "tune": tune}} if m == "bayes" else {})}
             for k in tops for m in methods]
    results = run_many(backtest, tasks, workers=workers, address=address,
                       on_progress=_progress(quiet))
    if as_json:
        click.echo(json.dumps({"backtests": [r.to_json() for r in results],
                               "calibration": calibration_table(results).to_dict("records")},
                              indent=2, default=str))
        return
    for r in results:
        s = r.summary
        if not s.get("converged", True):
            click.echo("WARNING: the refit failed the convergence gate")
        cov = ", ".join(f"{k}%: {v:.0%}" for k, v in s["coverage"].items())
        click.echo(f"{s['method']:<16} top {s['holdout_top']} by {s['holdout_by']}: "
                   f"train {s['n_train']}, held out {s['n_holdout']}; coverage {cov}; "
                   f"median abs % error {s['median_abs_pct_error']:.2f}; "
                   f"mean log pred density {s['mean_log_pred_density']:.2f}; "
                   f"CRPS {s['mean_crps']:.4f}")


# --------------------------------------------------------------------------------- dynamics
def _fit_curves(source: str, spec, out: str, *, group_col, param_count, query, seed, chains,
                draws, tune, backend, target_accept, strict, quiet) -> int:
    """``fit CURVES --model dynamics``: load loss curves (a file or a registry name), fit, save."""
    from click.core import ParameterSource

    from bayes_scaling.data.curves import load_curves, schedule_note
    from bayes_scaling.data.registry import fetch, load_registry
    from bayes_scaling.fitting.dynamics import fit_dynamics
    from bayes_scaling.report.demo import fit_summary_text

    source_of = click.get_current_context().get_parameter_source("target_accept")
    if source_of == ParameterSource.DEFAULT:  # curve fits choose their own (dynamics.py)
        target_accept = None

    path = source if Path(source).exists() or source not in load_registry() else fetch(source)
    curves = load_curves(path, group_col=group_col, param_count=param_count or "total",
                         query=query)
    tell = _progress(quiet)
    tell(f"{curves.n_points} checkpoints of {curves.n_curves} curves after the warm-up rule and "
         f"thinning ({curves.rule})")
    if note := schedule_note(curves):
        click.echo(f"warning: {note}", err=True)
    result = fit_dynamics(spec, curves, chains=chains, draws=draws, tune=tune, backend=backend,
                          target_accept=target_accept, random_seed=seed,
                          on_bad="raise" if strict else "warn",
                          progress=not quiet and sys.stderr.isatty(), on_progress=tell)
    _check_interrupt()  # a Ctrl-C swallowed during sampling: save nothing
    result.save(out)
    click.echo(fit_summary_text(result))
    click.echo(f"saved {out}")
    return 0


# --------------------------------------------------------------------------------- diagnose
@cli.command("diagnose")
@click.argument("fit_path", metavar="FIT")
@click.option("--target-n-params", type=float, default=None,
              help="Planned model size: adds how far it lies past the runs.")
@click.option("--target-n-tokens", type=float, default=None, help="Planned training tokens.")
@click.option("--full", is_flag=True,
              help="Also fit the broken-law and pooled-exponent models (NUTS) and compare "
                   "them with the plain one by PSIS-LOO (slow).")
@_JSON
@_SEED
@click.option("--quiet", "-q", is_flag=True)
def diagnose_cmd(fit_path, target_n_params, target_n_tokens, full, as_json, seed, quiet):
    """Scaling-pattern checks of a fit: outliers, few sizes, cold start, bend, slopes."""
    from bayes_scaling.evaluate.checks import diagnose

    if (target_n_params is None) != (target_n_tokens is None):
        raise BayesScalingError("give both --target-n-params and --target-n-tokens, or neither")
    target = None if target_n_params is None else (target_n_params, target_n_tokens)
    res = diagnose(_load_fit(fit_path), target=target, full=full, random_seed=seed,
                   on_progress=_progress(quiet))
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
        return
    click.echo(res.to_text())


@cli.command("next-run")
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
@_GROUP
@_INTERVAL
@_JSON
@_SEED
def next_run_cmd(fit_path, target_n_params, target_n_tokens, target_loss, budget, candidates_n,
                 tokens_per_param, band, metric, n_sim, top, plot_path, group, interval,
                 as_json, seed):
    """Rank candidate next runs by expected narrowing of the band at the target per FLOP."""
    from bayes_scaling.evaluate.nextrun import candidate_grid, rank_next_runs, table_text

    fitted = _load_fit(fit_path)
    target = (target_n_params, target_n_tokens, target_loss)
    sizes = _floats(candidates_n, "--candidates-n") if candidates_n else None
    cands = candidate_grid(fitted, target, sizes=sizes,
                           tokens_per_param=_floats(tokens_per_param, "--tokens-per-param"))
    table = rank_next_runs(fitted, cands, target=target, budget=budget, group=group,
                           band=band, metric=metric, interval=interval, n_sim=n_sim,
                           random_seed=seed)
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        from bayes_scaling.evaluate.nextrun import plot_next_runs
        from bayes_scaling.files import atomic_savefig

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

    _INTERRUPTED.clear()
    previous = (signal.signal(signal.SIGINT, _on_sigint)
                if threading.current_thread() is threading.main_thread() else None)
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
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
