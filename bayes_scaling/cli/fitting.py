"""The commands that sample: ``fit``, ``compare``, ``backtest``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from bayes_scaling.cli.common import (
    BEST_OF_SWEEP,
    check_interrupt,
    check_out_file,
    columns_options,
    curve_fit_options,
    curve_thinning,
    progress_printer,
    resolve_runs,
    schedule_fields,
    schedule_options,
    stacking_options,
)
from bayes_scaling.cli.queries import JSON_OPTION, SEED_OPTION, parse_floats, print_table
from bayes_scaling.errors import BayesScalingError


# --------------------------------------------------------------------------------- fit
@click.command("fit")
@click.argument("runs")
@click.option("--model", "model", default="chinchilla", show_default=True,
              help="Shipped model name (see models/) or path to a spec TOML; several, "
                   "comma-separated (e.g. chinchilla,farseer,kaplan_e,broken): fit each and "
                   "save them with stacking weights in one file, whose weighted average "
                   "predict, tokens and optimal use.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Fit file (.nc).")
@click.option("--group-col", default=None, help="Column naming the data distribution.")
@click.option("--drop-highest-loss", default=0, show_default=True, type=int,
              help="Drop the K highest-loss runs (Epoch AI dropped 5 of Chinchilla's).")
@click.option("--param-count", type=click.Choice(["total", "nonembedding"]), default=None,
              help="Which parameter count is N (default: the data set's own, else total).")
@click.option("--query", default=None, help="pandas query to select runs, e.g. 'loss < 4'.")
@BEST_OF_SWEEP
@columns_options
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
              help="NUTS target acceptance (curve models: 0.99 for a law with B_crit on curves "
                   "at one batch size, else 0.95, unless given).")
@click.option("--ess-target", default=None, type=click.FloatRange(min=1),
              help="Stop drawing once every constant has this bulk and tail ESS (numpyro; "
                   "--draws is then the cap). 400 is the gate's floor.")
@click.option("--precision", type=click.Choice(["float64", "float32"]), default=None,
              help="Per-run (per-checkpoint for curves) arithmetic of the law (sums stay "
                   "float64); default float32 from 10,000 runs or checkpoints on.")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default=None,
              help="Where JAX samples (numpyro): cpu (default) or gpu (a CUDA build of JAX: "
                   "pip install 'bayes_scaling[gpu]'); BAYES_SCALING_DEVICE sets the default.")
@click.option("--no-calibrate", is_flag=True, help="Skip the extrapolation discrepancy.")
@click.option("--strict", is_flag=True, help="Exit 2 (and write nothing) if the gate fails.")
@stacking_options
@schedule_options
@curve_fit_options
@click.option("--quiet", "-q", is_flag=True)
def fit_cmd(runs, model, out, group_col, drop_highest_loss, param_count, query, best_of_sweep,
            columns, flops_unit, likelihood, seed, chains, draws, tune, backend, target_accept,
            ess_target, no_calibrate, strict, stack_tops, stack_refits, workers, lr_schedule,
            total_steps, warmup_steps, final_lr_fraction, cooldown_start, cooldown_steps,
            residual, curve_offsets, run_length_term, max_points_per_curve, warmup_fraction,
            min_steps, quiet, precision, device):
    """Fit MODEL to the RUNS table (CSV, TSV, JSON Lines, Parquet or a registry name) and
    save the posterior."""
    if device:  # every sampling step of this command (refits, curves, stacking) reads it
        os.environ["BAYES_SCALING_DEVICE"] = device
    from bayes_scaling.fitting.fit import fit
    from bayes_scaling.laws.final_loss import LAWS
    from bayes_scaling.model.spec import load_spec

    tell = progress_printer(quiet)
    check_out_file(out)  # before sampling: a fit must not be lost to an unwritable --out
    final_loss = "," in model or load_spec(model).law in LAWS
    if final_loss and (residual, curve_offsets, run_length_term, max_points_per_curve,
                       warmup_fraction, min_steps) != (None,) * 6:
        raise BayesScalingError("--residual, --curve-offsets, --run-length-term, "
                                "--max-points-per-curve, --warmup-fraction and --min-steps "
                                "apply to curve models "
                                f"(--model dynamics...), not to {model!r}")
    if "," in model:
        names = [m.strip() for m in model.split(",") if m.strip()]
        bad = [m for m in names if load_spec(m).law not in LAWS]
        if bad:
            raise BayesScalingError(f"--model {model}: several families are L(N, D) laws; "
                                    f"{', '.join(bad)} is a curve model")
        return _fit_families(resolve_runs(runs, group_col=group_col,
                                          drop_highest_loss=drop_highest_loss,
                                          param_count=param_count, query=query,
                                          best_of_sweep=best_of_sweep, columns=columns,
                                          flops_unit=flops_unit),
                             names, out, stack_tops=stack_tops, refits=stack_refits,
                             workers=workers, strict=strict, tell=tell, seed=seed,
                             fit_kwargs={"chains": chains, "draws": draws, "tune": tune,
                                         "backend": backend, "target_accept": target_accept,
                                         "ess_target": ess_target,
                                         "calibrate": not no_calibrate})
    if load_spec(model).law not in LAWS:  # a curve law: RUNS holds loss curves (dynamics)
        if best_of_sweep:
            raise BayesScalingError("--best-of-sweep applies to runs tables (one loss per run), "
                                    f"not to the loss curves of model {model!r}")
        if flops_unit:
            raise BayesScalingError("--flops-unit applies to runs tables, not to the loss "
                                    f"curves of model {model!r} (they have no FLOP column)")
        spec = load_spec(model)  # "auto" keeps the spec's own likelihood for curves
        spec = spec.with_likelihood(likelihood) if likelihood not in (None, "auto") else spec
        spec = spec.with_residual(residual) if residual is not None else spec
        spec = spec.with_curve_offsets(curve_offsets) if curve_offsets is not None else spec
        if run_length_term is not None:
            spec = spec.with_run_length_term(run_length_term)
        return _fit_curves(runs, spec, out, group_col=group_col, param_count=param_count,
                           query=query, columns=columns, seed=seed, chains=chains,
                           thinning=curve_thinning(max_points_per_curve, warmup_fraction,
                                                   min_steps),
                           draws=draws, tune=tune, backend=backend,
                           target_accept=target_accept, strict=strict, quiet=quiet,
                           precision=precision,
                           schedule=schedule_fields(lr_schedule, total_steps, warmup_steps,
                                                    final_lr_fraction, cooldown_start,
                                                    cooldown_steps))
    table = resolve_runs(runs, group_col=group_col, drop_highest_loss=drop_highest_loss,
                         param_count=param_count, query=query, best_of_sweep=best_of_sweep,
                         columns=columns, flops_unit=flops_unit)
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
                 progress=not quiet and sys.stderr.isatty(), on_progress=tell,
                 precision=precision)
    check_interrupt()  # a Ctrl-C swallowed during sampling: save nothing
    result.save(out)
    from bayes_scaling.report.demo import fit_summary_text

    click.echo(fit_summary_text(result))
    click.echo(f"saved {out}")


@click.command("compare")
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
@BEST_OF_SWEEP
@columns_options
@click.option("--holdout-top", default=1, show_default=True, type=int,
              help="Held-out check: refit without the top K model sizes (0 skips it).")
@click.option("--tokens-per-param", default=None, type=float,
              help="Scan budgets at D = r N instead of the first model's optimum.")
@click.option("--average", is_flag=True, help="Also print the stacking-averaged prediction.")
@stacking_options
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Save the families and their weights as one fit file (predict, tokens and "
                   "optimal then use the weighted average).")
@click.option("--n-params", default=None, help="Size for --average (default 10x the largest).")
@click.option("--n-tokens", default=None, help="Tokens for --average (default 20 per param).")
@click.option("--plots", "plots_dir", default=None, type=click.Path(file_okay=False),
              help="Write compare_loss.png and compare_optimal.png to this folder.")
@click.option("--chains", default=4, show_default=True, type=click.IntRange(min=2),
              help="At least 2: the convergence gate's r-hat compares chains.")
@click.option("--draws", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--tune", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--backend", type=click.Choice(["numpyro", "nutpie", "pymc"]), default=None)
@JSON_OPTION
@SEED_OPTION
@click.option("--quiet", "-q", is_flag=True)
def compare_cmd(runs, models, group_col, drop_highest_loss, param_count, query, best_of_sweep,
                columns, flops_unit, holdout_top,
                tokens_per_param, average, stack_tops, stack_refits, workers, out, n_params,
                n_tokens, plots_dir, chains,
                draws, tune,
                backend, as_json, seed, quiet):
    """Fit several law families to RUNS and compare them (PSIS-LOO, held-out runs, exponents)."""
    from bayes_scaling.evaluate.compare import compare, fit_families
    from bayes_scaling.evaluate.families import averaged_predict_loss

    names = [m.strip() for m in models.split(",") if m.strip()]
    if plots_dir and Path(plots_dir).exists() and not Path(plots_dir).is_dir():
        raise BayesScalingError(f"--plots {plots_dir}: exists and is not a folder")
    tell = progress_printer(quiet)
    if out:
        check_out_file(out)  # before sampling
    table = resolve_runs(runs, group_col=group_col, drop_highest_loss=drop_highest_loss,
                         param_count=param_count, query=query, best_of_sweep=best_of_sweep,
                         columns=columns, flops_unit=flops_unit)
    kw = {"chains": chains, "draws": draws, "tune": tune, "backend": backend}
    fits = fit_families(table, names, random_seed=seed, fit_kwargs=kw, workers=workers,
                        on_progress=tell)
    tops = (None if stack_tops.strip().lower() in ("loo", "0", "") or len(fits) < 2 else
            tuple(int(v) for v in parse_floats(stack_tops, "--stack-tops")))
    result = compare(fits, holdout_top=holdout_top or None, random_seed=seed, on_progress=tell,
                     tokens_per_param=tokens_per_param, fit_kwargs=kw, stack_tops=tops,
                     stack_refits=stack_refits, workers=workers)
    if out:
        result.family_fit().save(out)
    payload = result.to_json()
    avg = None
    if average:
        n = parse_floats(n_params, "--n-params") if n_params else [10 * float(table.n.max())]
        d = parse_floats(n_tokens, "--n-tokens") if n_tokens else [20 * v for v in n]
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
        how = {"shrunk": "shrunk held-out-by-compute", "cross-ladder": "cross-ladder",
               "heldout-by-compute": "held-out-by-compute"}.get(
            str((result.meta.get("stack") or {}).get("weights_method")), "PSIS-LOO")
        click.echo(f"stacking-averaged prediction (predictive band; {how} weights):")
        print_table(avg.to_records(), ["n_params", "n_tokens", "median", "lower", "upper",
                                        "interval", "models"])
    for p in payload.get("plots", []):
        click.echo(f"wrote {p}")
    if out:
        click.echo(f"saved {out} (the families and their weights; predict, tokens and optimal "
                   "use the weighted average)")


# --------------------------------------------------------------------------------- report
@click.command("backtest")
@click.argument("runs")
@click.option("--model", default="chinchilla", show_default=True)
@click.option("--holdout-by", type=click.Choice(["n_params", "flops"]), default="n_params",
              show_default=True, help="Hold out the largest model sizes or compute budgets.")
@click.option("--holdout-top", default="1", show_default=True,
              help="How many of the top levels to hold out; '1,2,3' = rolling origin. "
                   "Budgets are binned in quarter decades of compute.")
@click.option("--test-query", default=None,
              help="Hold out exactly the runs matching this pandas query instead, e.g. "
                   "'flops > 1e20' (columns n_params, n_tokens, flops, loss, group).")
@click.option("--method", type=click.Choice(["bayes", "huber-bootstrap", "both"]),
              default="both", show_default=True)
@click.option("--group-col", default=None)
@click.option("--drop-highest-loss", default=0, type=int)
@click.option("--param-count", type=click.Choice(["total", "nonembedding"]), default=None)
@BEST_OF_SWEEP
@columns_options
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--draws", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--tune", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--workers", default=1, show_default=True, type=int,
              help="Refits in parallel local processes.")
@click.option("--address", default=None, help="Dask scheduler address for the refits.")
@click.option("--chains", default=4, show_default=True, type=click.IntRange(min=2),
              help="Chains of each refit of a curve model (--model dynamics...).")
@click.option("--likelihood", type=click.Choice(["normal", "studentt"]), default=None,
              help="Curve models: override the spec's likelihood of the checkpoint residuals "
                   "(studentt: heavy tails, nu fitted).")
@schedule_options
@curve_fit_options
@JSON_OPTION
@click.option("--quiet", "-q", is_flag=True)
def backtest_cmd(runs, model, holdout_by, holdout_top, test_query, method, group_col,
                 drop_highest_loss, param_count, best_of_sweep, columns, flops_unit, seed, draws,
                 tune, workers, address, chains, likelihood, lr_schedule, total_steps,
                 warmup_steps,
                 final_lr_fraction, cooldown_start, cooldown_steps, residual, curve_offsets,
                 run_length_term, max_points_per_curve, warmup_fraction, min_steps, as_json,
                 quiet):
    """Refit without the largest runs, predict them, and score the predictive bands.

    With a curve model (``--model dynamics`` or ``dynamics_schedule``) RUNS holds loss curves:
    every checkpoint of the held-out sizes' curves is scored, each curve alone and pooled.
    """
    from bayes_scaling.cli.dynamics import backtest_curves, check_curve_backtest_options
    from bayes_scaling.evaluate.backtest import backtest, calibration_table
    from bayes_scaling.evaluate.parallel import run_many
    from bayes_scaling.laws.registry import CURVE_LAWS
    from bayes_scaling.model.spec import load_spec

    if load_spec(model).law in CURVE_LAWS:
        if test_query is not None:
            raise BayesScalingError("--test-query applies to runs tables; curve backtests hold "
                                    "out the largest sizes (--holdout-top)")
        if method != "both":
            check_curve_backtest_options(method, holdout_by)
        check_curve_backtest_options("bayes", holdout_by)
        return backtest_curves(
            runs, model, [int(v) for v in parse_floats(holdout_top, "--holdout-top")],
            group_col=group_col, param_count=param_count, seed=seed, chains=chains,
            draws=draws, tune=tune, as_json=as_json, quiet=quiet, residual=residual,
            curve_offsets=curve_offsets, likelihood=likelihood, run_length_term=run_length_term,
            thinning=curve_thinning(max_points_per_curve, warmup_fraction, min_steps),
            schedule=schedule_fields(lr_schedule, total_steps, warmup_steps, final_lr_fraction,
                                     cooldown_start, cooldown_steps))

    if (residual, curve_offsets, run_length_term, max_points_per_curve, warmup_fraction,
            min_steps, likelihood) != (None,) * 7:
        raise BayesScalingError("--residual, --curve-offsets, --run-length-term, "
                                "--max-points-per-curve, --warmup-fraction, --min-steps "
                                "and --likelihood "
                                "apply to curve-model backtests "
                                f"(--model dynamics...), not to {model!r}")
    table = resolve_runs(runs, group_col=group_col, drop_highest_loss=drop_highest_loss,
                         param_count=param_count, best_of_sweep=best_of_sweep, columns=columns,
                         flops_unit=flops_unit)
    tops = [int(v) for v in parse_floats(holdout_top, "--holdout-top")]
    if test_query is not None:
        from bayes_scaling.evaluate.backtest import split_query

        split_query(table, test_query)  # a bad query fails here, before any refit
        tops = [1]
    methods = ["bayes", "huber-bootstrap"] if method == "both" else [method]
    tasks = [{"runs": table, "model": model, "holdout_by": holdout_by, "holdout_top": k,
              "test_query": test_query, "method": m, "random_seed": seed + k,
              **({"fit_kwargs": {"draws": draws, "tune": tune}} if m == "bayes" else {})}
             for k in tops for m in methods]
    results = run_many(backtest, tasks, workers=workers, address=address,
                       on_progress=progress_printer(quiet))
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
        what = (f"query {s['test_query']!r}" if s.get("test_query")
                else f"top {s['holdout_top']} by {s['holdout_by']}")
        click.echo(f"{s['method']:<16} {what}: "
                   f"train {s['n_train']}, held out {s['n_holdout']}; coverage {cov}; "
                   f"median abs % error {s['median_abs_pct_error']:.2f}; "
                   f"interval score (90%) {s['mean_interval_score_90']:.4f}; "
                   f"mean log pred density {s['mean_log_pred_density']:.2f}; "
                   f"CRPS {s['mean_crps']:.4f}")
        click.echo(f"{'':<16} PIT histogram (10 bins, flat = calibrated): "
                   + " ".join(str(c) for c in s["pit_histogram"]))


def _fit_families(table, names, out, *, stack_tops, refits, workers, strict, tell, seed,
                  fit_kwargs) -> int:
    """``fit --model a,b,...``: every family, stacking weights, one file; gates shown loudly."""
    from bayes_scaling.errors import ConvergenceError
    from bayes_scaling.evaluate.stacking import fit_stacked
    from bayes_scaling.report.demo import fit_summary_text

    tops = [int(v) for v in parse_floats(stack_tops, "--stack-tops")]
    fam = fit_stacked(table, names, tops=tops, refit_method=refits, fit_kwargs=fit_kwargs,
                      workers=workers, random_seed=seed,
                      on_progress=tell)
    check_interrupt()
    failed = [k for k, f in fam.fits.items() if not f.diagnostics.passed]
    if failed and strict:
        raise ConvergenceError(f"--strict: the convergence gate failed for {', '.join(failed)}; "
                               "nothing written")
    fam.save(out)
    for name, f in fam.fits.items():
        click.echo(f"[{name}] " + fit_summary_text(f) + "\n")
    click.echo(fam.describe())
    for name in failed:
        click.echo(f"WARNING: {name} failed the convergence gate: its draws (weight "
                   f"{fam.weights[name]:.3f}) are in the average; see its summary above",
                   err=True)
    click.echo(f"saved {out}")
    return 0


# --------------------------------------------------------------------------------- dynamics
def _fit_curves(source: str, spec, out: str, *, group_col, param_count, query, columns, seed,
                chains, draws, tune, backend, target_accept, strict, quiet, schedule,
                thinning, precision=None) -> int:
    """``fit CURVES --model dynamics``: load loss curves (a file or a registry name), fit, save."""
    from click.core import ParameterSource

    from bayes_scaling.data.curves import load_curves, schedule_note
    from bayes_scaling.data.registry import fetch, load_registry
    from bayes_scaling.fitting.dynamics import fit_dynamics, one_batch_note
    from bayes_scaling.report.demo import fit_summary_text

    source_of = click.get_current_context().get_parameter_source("target_accept")
    if source_of == ParameterSource.DEFAULT:  # curve fits choose their own (dynamics.py)
        target_accept = None

    path = source if Path(source).exists() or source not in load_registry() else fetch(source)
    curves = load_curves(path, group_col=group_col, param_count=param_count or "total",
                         query=query, columns=columns, schedule=schedule or None, **thinning)
    tell = progress_printer(quiet)
    tell(f"{curves.n_points} checkpoints of {curves.n_curves} curves after the warm-up rule and "
         f"thinning ({curves.rule})")
    for note in (schedule_note(curves), one_batch_note(spec.law, curves)):
        if note:  # the library's DataWarnings are silenced in the CLI: say them here, once
            click.echo(f"warning: {note}", err=True)
    result = fit_dynamics(spec, curves, chains=chains, draws=draws, tune=tune, backend=backend,
                          target_accept=target_accept, random_seed=seed,
                          on_bad="raise" if strict else "warn",
                          progress=not quiet and sys.stderr.isatty(), on_progress=tell,
                          precision=precision)
    check_interrupt()  # a Ctrl-C swallowed during sampling: save nothing
    result.save(out)
    click.echo(fit_summary_text(result))
    click.echo(f"saved {out}")
    return 0


# --------------------------------------------------------------------------------- diagnose
