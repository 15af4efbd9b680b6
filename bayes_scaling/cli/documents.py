"""The commands that write documents or read the data registry: ``data``, ``demo``, ``report``."""

from __future__ import annotations

from pathlib import Path

import click

from bayes_scaling.cli.common import progress_printer


# --------------------------------------------------------------------------------- data
@click.group("data")
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
@click.command("demo")
@click.option("--out", default="reports/demo", show_default=True, type=click.Path())
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", "-q", is_flag=True)
def demo_cmd(out, seed, quiet):
    """Fit the shipped Chinchilla runs and write a summary and plots to OUT."""
    from bayes_scaling.report.demo import run_demo

    written = run_demo(Path(out), random_seed=seed, on_progress=progress_printer(quiet))
    for p in written:
        click.echo(f"wrote {p}")


# --------------------------------------------------------------------------------- compare
@click.command("report")
@click.argument("proposal", metavar="PROPOSAL.toml")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for report.html, report.md, report.json (saved fits in OUT/fits).")
@click.option("--seed", default=None, type=int, help="Override the proposal's seed.")
@click.option("--quiet", "-q", is_flag=True)
def report_cmd(proposal, out, seed, quiet):
    """Risk report of a compute proposal: P(target), bands, extrapolation, backtest, priors."""
    from bayes_scaling.report.write import make_report

    written = make_report(proposal, Path(out), random_seed=seed,
                          on_progress=progress_printer(quiet))
    for p in written[:3]:
        click.echo(f"wrote {p}")


