"""A proposal that names a saved fit file (``models.fit``): the report uses it and fits nothing.

Fake fits (no sampler): a family file of Chinchilla and Kaplan with planted weights, and a file
of one family, on the synthetic runs of the proposal; each mismatch is one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bayes_scaling.cli.app import main
from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.errors import ProposalError
from bayes_scaling.fitting.families import FamilyFit
from bayes_scaling.testing import fake_fit, synthetic_runs

PROPOSAL = """
name = "from-a-file"
seed = 3
[runs]
files = ["runs.csv"]
[plan]
n_params = 7e10
n_tokens = 1.4e12
target_loss = 1.95
[models]
fit = "fam.nc"
[backtest]
enabled = false
"""
#: Planted weights: stacking anew on these runs would not give them.
WEIGHTS = {"chinchilla": 0.7, "kaplan": 0.3}
EXTRA = {"kappa": 0.04, "tau0": 0.02}


def _files(folder: Path, *, other_runs: bool = False, text: str = PROPOSAL) -> Path:
    """runs.csv, fam.nc (two families), one.nc (Chinchilla alone) and plan.toml in ``folder``."""
    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"], seed=1)
    runs.frame.to_csv(folder / "runs.csv", index=False)
    (folder / "plan.toml").write_text(text)
    table = (synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"], seed=9) if other_runs
             else load_runs(folder / "runs.csv"))  # as the proposal reads runs.csv
    fits = {"chinchilla": fake_fit("chinchilla", PUBLISHED["hoffmann2022"], runs=table,
                                   extra=EXTRA),
            "kaplan": fake_fit("kaplan", PUBLISHED["kaplan2020"], runs=table, extra=EXTRA)}
    FamilyFit(fits, WEIGHTS, {"weights_method": "heldout-by-compute", "stack_tops": [1, 2],
                              "refit_method": "huber-bootstrap", "n_heldout": 40}
              ).save(folder / "fam.nc")
    fits["chinchilla"].save(folder / "one.nc")
    return folder / "plan.toml"


def _no_fitting(monkeypatch) -> None:
    """Fail the test if the report fits a family or stacks the families anew."""
    from bayes_scaling.evaluate import compare
    from bayes_scaling.report import assemble

    def refuse(*_a, **_k):
        raise AssertionError("the report fitted or stacked although models.fit names a file")

    monkeypatch.setattr(assemble, "obtain_fit", refuse)
    monkeypatch.setattr(compare, "stack_weights", refuse)


def test_a_family_file_gives_the_report_its_fits_and_weights(tmp_path, monkeypatch):
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.report.proposal import load_proposal

    proposal = load_proposal(_files(tmp_path))
    assert proposal.families == () and proposal.fit_file == str(tmp_path / "fam.nc")
    _no_fitting(monkeypatch)
    risk = build_risk(proposal)
    assert risk["families"] == ["chinchilla", "kaplan"]
    assert risk["weights"] == pytest.approx(WEIGHTS)
    assert risk["verdict"]["average"]["weights"] == pytest.approx(WEIGHTS)
    assert risk["comparison"]["stack"]["weights_method"] == "heldout-by-compute"
    prov = {m["family"]: m for m in risk["provenance"]["models"]}["kaplan"]
    assert prov["given"] == "models.fit" and prov["file"].endswith("fam.nc")


def test_a_file_of_one_family_is_used_alone(tmp_path, monkeypatch):
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.report.proposal import load_proposal

    text = PROPOSAL.replace('fit = "fam.nc"', 'fit = "one.nc"\nfamilies = ["chinchilla"]')
    proposal = load_proposal(_files(tmp_path, text=text))
    _no_fitting(monkeypatch)
    risk = build_risk(proposal)
    assert risk["families"] == ["chinchilla"] and risk["headline"] == "chinchilla"
    assert risk["provenance"]["models"][0]["file"].endswith("one.nc")


def _corrupt(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(("case", "words"), [
    ("missing", ["models.fit", "nope.nc", "no such fit file"]),
    ("checksum", ["models.fit", "fam.nc", "checksum"]),
    ("other runs", ["models.fit", "fam.nc", "other runs", "data hash"]),
    ("other families", ["models.families", "chinchilla, farseer", "holds chinchilla, kaplan"]),
])
def test_a_missing_or_mismatched_fit_file_is_one_line_and_exit_2(tmp_path, capsys, case,
                                                                    words):
    text = {"missing": PROPOSAL.replace("fam.nc", "nope.nc"),
            "other families": PROPOSAL.replace(
                'fit = "fam.nc"', 'fit = "fam.nc"\nfamilies = ["chinchilla", "farseer"]')
            }.get(case, PROPOSAL)
    plan = _files(tmp_path, other_runs=case == "other runs", text=text)
    if case == "checksum":
        _corrupt(tmp_path / "fam.nc")
    assert main(["report", str(plan), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert all(w in err for w in words), err
    assert not (tmp_path / "out" / "report.html").exists()


def test_a_file_whose_spec_differs_from_the_named_family_is_refused(tmp_path):
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.report.proposal import load_proposal

    spec = tmp_path / "chinchilla.toml"
    shipped = Path(__file__).resolve().parents[1] / "models" / "chinchilla.toml"
    spec.write_text(shipped.read_text().replace("sigma = 0.05 }", "sigma = 0.06 }", 1))
    text = PROPOSAL.replace('fit = "fam.nc"',
                            'fit = "fam.nc"\nfamilies = ["chinchilla.toml", "kaplan"]')
    proposal = load_proposal(_files(tmp_path, text=text))
    with pytest.raises(ProposalError, match=r"models\.fit .*another spec"):
        build_risk(proposal)
