"""Query commands of ``bayes-scaling``: read a saved fit, print a table or JSON; never PyMC.

``predict``, ``tokens``, ``optimal``, ``summary``, ``contrast``, ``rank`` (scaling-law fits) and
``curve``, ``batch`` (training-dynamics fits), with the option, number-parsing and table/JSON
helpers that the other commands in :mod:`bayes_scaling.cli.app` share. The commands are plain
:func:`click.command` objects; ``cli`` attaches them to its group, so this module never imports
``cli``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

from bayes_scaling.cli.common import (
    check_out_file,
    schedule_fields,
    schedule_of,
    schedule_options,
)
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


def load_fit(path: str, *, family: str | None = None, average: bool = False):
    """The fit in ``path``; for a multi-family file: the average (when the command takes it),
    the ``family`` asked for, or else the highest-weight family (said on stderr)."""
    from bayes_scaling.fitting.families import FamilyFit
    from bayes_scaling.fitting.families import load_fit as load_any

    fitted = load_any(path)
    if not isinstance(fitted, FamilyFit):
        if family is not None:
            raise BayesScalingError(f"--family {family}: {path} holds one fit "
                                    f"({fitted.spec.name}), not several families")
        return fitted
    if family is not None:
        return fitted.family(family)
    if average:
        click.echo(f"bayes-scaling: {path}: the weighted average of "
                   f"{len(fitted.fits)} law families ({fitted.weights_label()}); "
                   "--family NAME for one", err=True)
        return fitted
    click.echo(f"bayes-scaling: {path} holds {len(fitted.fits)} law families; this command "
               f"reads one: the highest-weight family, {fitted.best} "
               f"(weight {fitted.weights[fitted.best]:.3f})", err=True)
    return fitted.first


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
FAMILY_OPTION = click.option("--family", default=None,
                              help="A fit of several law families: use this family's own band "
                                   "(default: their weighted average).")
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
@FAMILY_OPTION
@_query_options
def predict_cmd(fit_path, n_params, n_tokens, band, family, group, interval, as_json, seed):
    """Predicted loss at (N, D) with a credible band."""
    from bayes_scaling.query.predict import predict_loss

    fitted = load_fit(fit_path, family=family, average=True)
    res = predict_loss(fitted, parse_floats(n_params, "--n-params"),
                       parse_floats(n_tokens, "--n-tokens"),
                       group=group, band=band, interval=interval, random_seed=seed)
    _emit(res, as_json, ["n_params", "n_tokens", "flops", "group", "band", "median", "mean",
                         "lower", "upper", "interval", "decades_past_c",
                         "extrapolation_distance", "drift_pct", "models"],
          extra={"drift": _drift_meta(fitted)} if band == "predictive" else None)


def _drift_meta(fitted) -> dict | None:
    """The fit's signed drift per part (log loss per decade: value, 90% band, own slope and
    population), as ``attach_discrepancy`` recorded it; ``None`` without one."""
    from bayes_scaling.fitting.families import FamilyFit
    from bayes_scaling.query.predict import Z90

    fits = fitted.fits if isinstance(fitted, FamilyFit) else {"": fitted}
    out = {}
    for name, f in fits.items():
        drift = (f.meta.get("calibration") or {}).get("drift")
        if drift:
            out[name or "fit"] = {p: {**d, "lo_90": d["value"] - Z90 * d["sd"],
                                      "hi_90": d["value"] + Z90 * d["sd"]}
                                  for p, d in drift.items()}
    if not out:
        return None
    return out["fit"] if set(out) == {"fit"} else out


@click.command("tokens")
@click.argument("fit_path", metavar="FIT")
@click.option("--n-params", required=True, help="Model size(s).")
@click.option("--target-loss", required=True, type=float, help="Target loss (nats/token).")
@FAMILY_OPTION
@_query_options
def tokens_cmd(fit_path, n_params, target_loss, family, group, interval, as_json, seed):
    """Tokens needed to reach a target loss at a model size, and P(unreachable)."""
    from bayes_scaling.query.predict import tokens_needed

    fitted = load_fit(fit_path, family=family, average=True)
    res = tokens_needed(fitted, parse_floats(n_params, "--n-params"), target_loss, group=group,
                        interval=interval, random_seed=seed)
    _emit(res, as_json, ["n_params", "target_loss", "group", "p_unreachable", "median",
                         "lower", "upper", "interval", "median_tokens_per_param"])


@click.command("optimal")
@click.argument("fit_path", metavar="FIT")
@click.option("--flops", required=True, help="FLOP budget(s), e.g. 5.88e23.")
@FAMILY_OPTION
@_query_options
def optimal_cmd(fit_path, flops, family, group, interval, as_json, seed):
    """Compute-optimal N, D, tokens per parameter and loss for a FLOP budget."""
    from bayes_scaling.query.allocate import compute_optimal

    fitted = load_fit(fit_path, family=family, average=True)
    res = compute_optimal(fitted, parse_floats(flops, "--flops"), group=group, interval=interval,
                          random_seed=seed)
    _emit(res, as_json, ["flops", "quantity", "group", "median", "mean", "lower", "upper",
                         "interval"])


@click.command("summary")
@click.argument("fit_path", metavar="FIT")
def summary_cmd(fit_path):
    """Constants with intervals, convergence and provenance of a saved fit."""
    from bayes_scaling.fitting.families import FamilyFit
    from bayes_scaling.fitting.families import load_fit as load_any
    from bayes_scaling.report.demo import fit_summary_text

    fitted = load_any(fit_path)
    if isinstance(fitted, FamilyFit):  # every family, and how the weights were made
        click.echo(fitted.describe())
        for name, f in fitted.fits.items():
            click.echo(f"\n[{name}] " + fit_summary_text(f))
        return
    click.echo(fit_summary_text(fitted))


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


# --------------------------------------------------------------------------------- contrasts
def _target_options(command):
    """Target budget options shared by ``contrast`` and ``rank``."""
    for opt in reversed([
        click.option("--flops", default=None, help="FLOP budget(s), e.g. 1e22 or 1e21,1e22."),
        click.option("--n-params", default=None, help="Model size(s) instead of --flops."),
        click.option("--n-tokens", default=None, help="Training tokens, with --n-params."),
        click.option("--tokens-per-param", default=None, type=float,
                     help="With --flops: spend each budget at this D/N (default: each group's "
                          "compute-optimal split)."),
        click.option("--discrepancy", type=click.Choice(["anchored", "shared", "independent"]),
                     default="anchored", show_default=True,
                     help="Predictive band: anchored on each group's observed loss nearest the "
                          "target, with the law's change trusted as far as the ladder's "
                          "rolling-origin refits say; or the law's discrepancy, shared by the "
                          "groups or independent."),
        click.option("--allow-mixed-eval", is_flag=True,
                     help="Warn instead of refusing when the groups' eval_set differs."),
    ]):
        command = opt(command)
    return command


def _targets(flops, n_params, n_tokens) -> dict[str, Any]:
    if flops is None and n_params is None:
        raise BayesScalingError("give a target: --flops, or --n-params with --n-tokens")
    if flops is not None:
        return {"flops": parse_floats(flops, "--flops")}
    if n_tokens is None:
        raise BayesScalingError("--n-params needs --n-tokens")
    return {"n_params": parse_floats(n_params, "--n-params"),
            "n_tokens": parse_floats(n_tokens, "--n-tokens")}


def _warn_lines(warnings_: Sequence[str], as_json: bool) -> None:
    for w in warnings_:
        w = str(w).removeprefix("WARNING: ")
        click.echo(f"bayes-scaling: warning: {w}", err=True)
        if not as_json:
            click.echo(f"WARNING: {w}")


@click.command("contrast")
@click.argument("fit_path", metavar="FIT")
@click.option("--groups", required=True, help="Reference and alternative group: A,B.")
@_target_options
@click.option("--crossing-range", default=None,
              help="Budgets searched for a crossing of the laws, e.g. 1e18,1e26.")
@click.option("--plot", "plot_path", default=None, help="Also write a PNG of the multiplier "
              "and P(B better) against compute.")
@click.option("--interval", default=DEFAULT_INTERVAL, show_default=True, type=float,
              help="Probability of the reported interval (lower, upper).")
@click.option("--weighting", type=click.Choice(["zero", "pooled", "latest", "eiv"]),
              default="zero", show_default=True,
              help="Anchored band: weight of the law's group-specific change; zero keeps the "
                   "observed gap at the top of the ladder, the others learn it from the "
                   "ladder's rolling-origin refits.")
@JSON_OPTION
@SEED_OPTION
def contrast_cmd(fit_path, groups, flops, n_params, n_tokens, tokens_per_param, discrepancy,
                 allow_mixed_eval, crossing_range, plot_path, interval, weighting, as_json, seed):
    """Group B against group A: loss difference, compute multiplier, P(B better), crossing."""
    from bayes_scaling.query.contrast import contrast_groups

    names = [g.strip() for g in groups.split(",") if g.strip()]
    if len(names) != 2:
        raise BayesScalingError(f"--groups: expected two groups A,B; got {groups!r}")
    rng = None
    if crossing_range is not None:
        rng = parse_floats(crossing_range, "--crossing-range")
        if len(rng) != 2:
            raise BayesScalingError(f"--crossing-range: expected two budgets lo,hi; got "
                                    f"{crossing_range!r}")
    if plot_path is not None:
        check_out_file(plot_path)
    fitted = load_fit(fit_path)
    res = contrast_groups(fitted, names[0], names[1],
                          **_targets(flops, n_params, n_tokens),
                          tokens_per_param=tokens_per_param, crossing_range=rng,
                          discrepancy=discrepancy, weighting=weighting,
                          on_mixed="warn" if allow_mixed_eval else "raise",
                          interval=interval, random_seed=seed)
    if plot_path is not None:
        from bayes_scaling.plots.contrast import save_contrast_plot

        save_contrast_plot(fitted, names[0], names[1], plot_path, discrepancy=discrepancy,
                           weighting=weighting,
                           on_mixed="warn" if allow_mixed_eval else "raise", random_seed=seed)
    _warn_lines(res.warnings, as_json)
    if as_json:
        click.echo(json.dumps(res.to_records(), indent=2))
        return
    click.echo(f"B = {res.groups[1]} against A = {res.groups[0]} (multiplier = C / C_B: > 1 "
               "means B reaches A's loss with less compute)")
    if res.calibration:
        cal = res.calibration
        what = ("the observed gap at the top of the ladder kept (weighting zero), spread "
                if cal.get("weighting") == "zero" else
                f"weight of the law's group-specific change {cal['weight']:.2f} +/- "
                f"{cal['weight_sd']:.2f} (weighting {cal.get('weighting')}; 1 = trust the law, "
                "0 = keep the observed gap), ")
        click.echo(f"anchored predictive band: {what}from {cal['n_obs']} held-out gaps of "
                   f"{cal['origins']} rolling-origin refits")
    print_table(res.summary.to_dict(orient="records"),
                ["flops", "quantity", "band", "median", "lower", "upper", "interval",
                 "p_b_better"])
    x = res.crossing.iloc[0]
    where = (f"largest crossing at median {x['median']:.3g} FLOPs ({x['lower']:.3g} - "
             f"{x['upper']:.3g})" if x["p_cross"] > 0 else "no crossing in any draw")
    click.echo(f"laws cross between {x['c_min']:.3g} and {x['c_max']:.3g} FLOPs with "
               f"probability {x['p_cross']:.2f}; {where}")


@click.command("rank")
@click.argument("fit_path", metavar="FIT")
@click.option("--groups", default=None, help="Groups to rank (default: all).")
@_target_options
@click.option("--band", type=click.Choice(["law", "predictive"]), default="law",
              show_default=True)
@JSON_OPTION
@SEED_OPTION
def rank_cmd(fit_path, groups, flops, n_params, n_tokens, tokens_per_param, discrepancy,
             allow_mixed_eval, band, as_json, seed):
    """Rank all groups at a target budget: each rank's probability and pairwise P(better)."""
    from bayes_scaling.query.rank import rank_groups

    names = None if groups is None else [g.strip() for g in groups.split(",") if g.strip()]
    res = rank_groups(load_fit(fit_path), **_targets(flops, n_params, n_tokens),
                      tokens_per_param=tokens_per_param, groups=names, band=band,
                      discrepancy=discrepancy,
                      on_mixed="warn" if allow_mixed_eval else "raise", random_seed=seed)
    _warn_lines(res.warnings, as_json)
    if as_json:
        click.echo(json.dumps(res.to_records(), indent=2))
        return
    cols = ["flops", "group", "expected_rank", "median_loss",
            *[c for c in res.ranks.columns if c.startswith("p_rank_")]]
    print_table(res.ranks.to_dict(orient="records"), cols)
    for c in dict.fromkeys(res.ranks["flops"]):
        click.echo(f"\nP(row better than column) at {c:.3g} FLOPs ({band} band):")
        with pd_options():
            click.echo(res.pairwise_matrix(c).to_string(float_format=lambda v: f"{v:.2f}",
                                                        na_rep="-"))


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 30)
