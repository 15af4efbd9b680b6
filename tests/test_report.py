"""The risk report of a compute proposal: proposal validation, the numbers, the files.

Quick tests build reports from fake fits (no sampler); the slow ones build the Chinchilla-70B
example from the shipped runs once per session (small NUTS settings) and rebuild it from the
saved fits.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import ProposalError
from bayes_scaling.report.blocks import Block, Num, lookup
from bayes_scaling.report.context import Section
from bayes_scaling.report.formats import fmt
from bayes_scaling.report.registry import SECTIONS
from bayes_scaling.report.render import render_html, render_markdown

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reports" / "examples" / "chinchilla70b.toml"
EVIL = "<script>alert(1)</script>"
_BUILT: dict[tuple[str, str], Path] = {}

FAKE_PROPOSAL = f"""
name = "fake-plan"
title = "{EVIL} & co"
seed = 3
[runs]
files = ["runs.csv"]
group = "{EVIL}"
alternative_group = "b&c"
[plan]
n_params = 7e10
n_tokens = 1.4e12
target_loss = 1.95
batch_size = 4e6
[models]
families = ["chinchilla", "kaplan"]
[backtest]
enabled = false
"""


# ------------------------------------------------------------------------------ builders
def _fake_inputs(folder: Path, proposal_text: str = FAKE_PROPOSAL):
    """A proposal over a synthetic two-group ladder, and fake fits of both families on it."""
    from bayes_scaling.report.fits import load_proposal_runs
    from bayes_scaling.report.proposal import load_proposal
    from bayes_scaling.testing import fake_fit, synthetic_runs

    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"], seed=1,
                          group_offsets={EVIL: {}, "b&c": {"log_e": 0.02}})
    runs.frame.to_csv(folder / "runs.csv", index=False)
    (folder / "plan.toml").write_text(proposal_text)
    proposal = load_proposal(folder / "plan.toml")
    table, _ = load_proposal_runs(proposal)
    extra = {"kappa": 0.04, "tau0": 0.02}
    fits = {"chinchilla": fake_fit("chinchilla", PUBLISHED["hoffmann2022"], runs=table,
                                   extra=extra),
            "kaplan": fake_fit("kaplan", PUBLISHED["kaplan2020"], runs=table, extra=extra)}
    return proposal, fits


def fake_report(tmp_path_factory) -> Path:
    """Folder of a report built from fake fits (once per session)."""
    key = (str(tmp_path_factory.getbasetemp()), "fake")
    if key not in _BUILT:
        from bayes_scaling.report.assemble import build_risk
        from bayes_scaling.report.write import write_report

        folder = tmp_path_factory.mktemp("fake_report")
        proposal, fits = _fake_inputs(folder)
        write_report(build_risk(proposal, fits=fits), folder / "out")
        _BUILT[key] = folder / "out"
    return _BUILT[key]


def example_report(tmp_path_factory) -> Path:
    """Folder of the Chinchilla-70B example built from scratch (once per session).

    The example proposal with small sampler settings (2 chains x 500 draws) so that the test
    suite stays fast; everything else as shipped.
    """
    key = (str(tmp_path_factory.getbasetemp()), "example")
    if key not in _BUILT:
        from bayes_scaling.report.write import make_report

        folder = tmp_path_factory.mktemp("example_report")
        text = EXAMPLE.read_text()
        text = re.sub(r"\[fit\][^\[]*", "[fit]\nchains = 2\ndraws = 500\ntune = 500\n\n", text)
        (folder / "chinchilla70b.toml").write_text(text)
        messages: list[str] = []
        make_report(folder / "chinchilla70b.toml", folder / "out", on_progress=messages.append)
        (folder / "progress.txt").write_text("\n".join(messages))
        _BUILT[key] = folder / "out"
    return _BUILT[key]


def _risk(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def _parts_of(block: Block) -> list[Any]:
    cells = [*block.items, *(cell for row in block.rows for cell in row)]
    return [*block.parts, *(part for cell in cells for part in cell)]


def unrendered(risk: Mapping[str, Any], sections: Sequence[Section] = SECTIONS) -> list[str]:
    """Why an entry of ``risk`` is not shown in both renderings ([] when every one is).

    Every top-level entry must be owned by exactly one section, and every section's blocks,
    rendered alone, must show its heading and each of its numbers in the HTML (as a
    ``span.num`` with the number's path) and in the Markdown (as ``fmt`` of the value).
    """
    problems = []
    owners = Counter(key for s in sections for key in s.keys)
    problems += [f"{key}: owned by {owners[key]} sections" for key in risk if owners[key] != 1]
    problems += [f"{key}: a section's key with no entry" for key in owners if key not in risk]
    for s in sections:
        blocks = s.blocks(risk)
        if not blocks:
            problems.append(f"{s.keys}: no blocks")
            continue
        page = html.unescape(render_html(risk, blocks, {}).split("<body>", 1)[1])
        md = render_markdown(risk, blocks, {})
        if blocks[0].text not in page or blocks[0].text not in md:
            problems.append(f"{s.keys}: heading {blocks[0].text!r} not rendered")
        for num in (p for b in blocks for p in _parts_of(b) if isinstance(p, Num)):
            shown = fmt(lookup(risk, num.path), num.kind)
            if f'data-k="{json.dumps(list(num.path))}" data-fmt="{num.kind}">{shown}<' not in page:
                problems.append(f"{s.keys}: {num.path} not in the HTML")
            if shown not in md:
                problems.append(f"{s.keys}: {num.path} not in the Markdown")
    return problems


# ------------------------------------------------------------------------------ proposals
def test_the_example_proposal_is_valid():
    from bayes_scaling.report.proposal import load_proposal

    p = load_proposal(EXAMPLE)
    assert (p.n_params, p.n_tokens, p.target_loss) == (7e10, 1.4e12, 1.95)
    assert p.flops == pytest.approx(5.88e23) and p.split == "given"
    assert p.families == ("chinchilla", "kaplan") and p.runs.files == ("chinchilla",)
    assert p.batch_size == 1.5e6 and p.backtest.holdout_top == 2


def _mutate(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BAD = [  # (old, new, words the one-line message must contain)
    ("n_params = 7e10", "n_params = -7e10", ["plan.n_params", "positive"]),
    ("n_params = 7e10", "n_params = \"big\"", ["plan.n_params"]),
    ("target_loss = 1.95\n", "", ["plan.target_loss", "required"]),
    ("n_tokens = 1.4e12", "n_tokns = 1.4e12", ["plan.n_tokns", "n_tokens"]),
    ("n_tokens = 1.4e12", "n_tokens = 1.4e12\nflops = 5.88e23", ["plan.flops"]),
    ("n_tokens = 1.4e12", "", ["plan.n_tokens", "flops"]),
    ("batch_size = 4e6", "batch_size = 0", ["plan.batch_size"]),
    ("families = [\"chinchilla\", \"kaplan\"]", "families = [\"chinchila\"]",
     ["models.families", "chinchilla"]),
    ("families = [\"chinchilla\", \"kaplan\"]", "families = []", ["models.families"]),
    ("name = \"fake-plan\"", "name = \"a b/c\"", ["name"]),
    ("files = [\"runs.csv\"]", "files = 3", ["runs.files"]),
    ("[backtest]", "[backtest]\nholdout_by = \"size\"", ["backtest.holdout_by"]),
    ("[backtest]", "[fit]\nchains = 0\n[backtest]", ["fit.chains"]),
    ("[models]", "[model]", ["model"]),
    ("n_params = 7e10", "n_params = 7e10\n[[", ["not valid TOML"]),
]


@pytest.mark.parametrize(("old", "new", "words"), BAD)
def test_a_bad_proposal_is_one_line_naming_file_and_field(tmp_path, old, new, words):
    from bayes_scaling.report.proposal import load_proposal

    path = tmp_path / "bad.toml"
    path.write_text(_mutate(FAKE_PROPOSAL, old, new))
    with pytest.raises(ProposalError) as exc:
        load_proposal(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path))
    for w in words:
        assert w in msg, msg


def test_a_missing_proposal_file_is_one_line(tmp_path):
    from bayes_scaling.report.proposal import load_proposal

    with pytest.raises(ProposalError, match="no such proposal file"):
        load_proposal(tmp_path / "nope.toml")


def test_a_flop_budget_with_a_size_sets_the_tokens(tmp_path):
    from bayes_scaling.report.proposal import load_proposal

    path = tmp_path / "p.toml"
    path.write_text(_mutate(FAKE_PROPOSAL, "n_tokens = 1.4e12", "flops = 6e23"))
    p = load_proposal(path)
    assert p.split == "tokens_from_flops"
    assert 6 * p.n_params * p.n_tokens == pytest.approx(6e23)


def test_a_flop_budget_alone_is_split_compute_optimally(tmp_path):
    from bayes_scaling.query.allocate import compute_optimal
    from bayes_scaling.report.assemble import build_risk

    text = _mutate(_mutate(FAKE_PROPOSAL, "n_params = 7e10", "flops = 5.88e23"),
                   "n_tokens = 1.4e12", "")
    proposal, fits = _fake_inputs(tmp_path, text)
    assert proposal.split == "optimal" and proposal.n_params is None
    risk = build_risk(proposal, fits=fits)
    plan = risk["plan"]
    assert 6 * plan["n_params"] * plan["n_tokens"] == pytest.approx(5.88e23)
    opt = compute_optimal(fits["chinchilla"], 5.88e23, group=EVIL, random_seed=3).summary
    n_opt = float(opt.set_index("quantity").loc["n_opt", "median"])
    assert plan["n_params"] == pytest.approx(n_opt) and plan["split"] == "optimal"


# ------------------------------------------------------------------------------ numbers
def test_p_target_is_the_fraction_of_draws_below_the_target(tmp_path_factory):
    from bayes_scaling.evaluate.families import averaged_predict_loss
    from bayes_scaling.query.predict import predict_loss
    from bayes_scaling.report.common import BAND_PROBS

    risk = _risk(fake_report(tmp_path_factory))
    _, fits = _fake_inputs(tmp_path_factory.mktemp("again"))
    plan, seed = risk["plan"], risk["seeds"]["query"]
    for fam, f in fits.items():
        for band in ("predictive", "law"):
            draws = np.asarray(predict_loss(f, plan["n_params"], plan["n_tokens"], group=EVIL,
                                            band=band, random_seed=seed).draws)
            direct = float(np.mean(draws <= plan["target_loss"]))
            shown = risk["verdict"]["families"][fam][band]["p_target"]
            assert abs(shown - direct) < 5e-4, (fam, band)
    w = risk["weights"]
    assert sum(w.values()) == pytest.approx(1.0)
    for band in ("predictive", "law"):
        avg = averaged_predict_loss(fits, w, [plan["n_params"]], [plan["n_tokens"]], band=band,
                                    probs=BAND_PROBS, random_seed=seed, group=EVIL)
        direct = float(np.mean(np.asarray(avg.draws) <= plan["target_loss"]))
        shown = risk["verdict"]["average"][band]["p_target"]
        assert abs(shown - direct) < 5e-4, band
        # the quantile average's P lies between the families'
        ps = [risk["verdict"]["families"][f][band]["p_target"] for f in w if w[f] > 0]
        assert min(ps) - 5e-4 <= shown <= max(ps) + 5e-4


def test_the_averaged_p_target_is_read_from_the_families_average_draws(tmp_path):
    """Not sum_k w_k P_k (the linear pool's): the fraction of the quantile average's draws."""
    from types import SimpleNamespace

    from bayes_scaling.evaluate.families import averaged_predict_loss
    from bayes_scaling.report.common import BAND_PROBS
    from bayes_scaling.report.sections import verdict

    _, fits = _fake_inputs(tmp_path)
    w = {"chinchilla": 0.3, "kaplan": 0.7}
    ctx = SimpleNamespace(fits=fits, n=7e10, d=1.4e12, target=1.95, seed=4, group=EVIL)
    got = verdict._average(ctx, w)
    for band in ("predictive", "law"):
        avg = averaged_predict_loss(fits, w, [ctx.n], [ctx.d], band=band, probs=BAND_PROBS,
                                    random_seed=ctx.seed, group=EVIL)
        direct = float(np.mean(np.asarray(avg.draws) <= ctx.target))
        assert got[band]["p_target"] == pytest.approx(direct, abs=1e-12), band


def test_bands_and_tokens_are_ordered(tmp_path_factory):
    from bayes_scaling.query.predict import tokens_needed

    risk = _risk(fake_report(tmp_path_factory))
    _, fits = _fake_inputs(tmp_path_factory.mktemp("tokens"))
    plan = risk["plan"]
    for fam in risk["families"]:
        for band in ("predictive", "law"):
            b = risk["verdict"]["families"][fam][band]
            assert b["lo_90"] <= b["lo_50"] <= b["median"] <= b["hi_50"] <= b["hi_90"]
        t = risk["tokens_needed"]["families"][fam]
        direct = tokens_needed(fits[fam], [plan["n_params"]], plan["target_loss"], group=EVIL,
                               random_seed=risk["seeds"]["query"]).summary.iloc[0]
        # the fakes' floors at 7e10 parameters lie below the 1.95 target: every draw reaches it
        assert t["p_unreachable"] == direct["p_unreachable"] == 0.0, fam
        assert t["median"] == pytest.approx(float(direct["median"]), rel=1e-9)
        assert t["lo_90"] <= t["median"]
    pred = risk["verdict"]["families"]["chinchilla"]
    assert (pred["predictive"]["hi_90"] - pred["predictive"]["lo_90"]
            > pred["law"]["hi_90"] - pred["law"]["lo_90"])
    ex = risk["extrapolation"]
    assert ex["flops"]["decades_past_largest"] == pytest.approx(
        ex["n_params"]["decades_past_largest"] + ex["n_tokens"]["decades_past_largest"])


def test_the_alternative_is_the_best_split_of_the_same_flops(tmp_path_factory):
    risk = _risk(fake_report(tmp_path_factory))
    grid = risk["figures"]["grid"]
    row = grid["budget_decades"].index(0.0)
    for fam in risk["families"]:
        alt = risk["alternative"]["families"][fam]
        p_row = np.asarray(grid["p_target"][fam][row])
        best = alt["best"]["p_target"]
        assert best >= alt["p_at_plan_split"] and best >= alt["optimal_split"]["p_target"]
        assert abs(best - p_row.max()) < 0.04  # two scans, independent draws
        assert 6 * alt["best"]["n_params"] * alt["best"]["n_tokens"] == pytest.approx(5.88e23)
        assert alt["reaches_goal"] == (best >= 0.9)
        # a budget for the goal exactly when some row of the (budget x split) grid reaches it,
        # at most the first such row's budget (refined by bisection below it)
        hit = np.flatnonzero(np.asarray(grid["p_target"][fam]).max(axis=1) >= 0.9)
        goal = alt["budget_for_goal"]
        assert (goal is not None) == bool(hit.size), fam
        if hit.size:
            assert goal["p_target"] >= 0.9
            assert goal["times_plan"] <= 10.0 ** grid["budget_decades"][hit[0]] * (1 + 1e-9)
        # the scan (common random numbers) and the verdict (predict_loss) agree at the plan
        at_plan = np.interp(np.log(20.0), np.log(grid["tokens_per_param"]), p_row)
        verdict = risk["verdict"]["families"][fam]["predictive"]["p_target"]
        assert abs(at_plan - verdict) < 0.04, (fam, at_plan, verdict)
    # at least one family reaches the goal within the grid
    assert any(risk["alternative"]["families"][f]["budget_for_goal"] for f in risk["families"])


def test_one_family_has_no_comparison_and_no_average(tmp_path):
    from bayes_scaling.report.assemble import build_risk

    text = _mutate(FAKE_PROPOSAL, "families = [\"chinchilla\", \"kaplan\"]",
                   "families = [\"chinchilla\"]")
    proposal, fits = _fake_inputs(tmp_path, text)
    risk = build_risk(proposal, fits={"chinchilla": fits["chinchilla"]})
    assert risk["comparison"]["available"] is False
    assert "one law family" in risk["comparison"]["reason"]
    assert risk["verdict"]["average"] is None and risk["headline"] == "chinchilla"


def test_dynamics_without_a_batch_size_says_what_is_missing(tmp_path):
    from bayes_scaling.report.assemble import build_risk

    text = _mutate(FAKE_PROPOSAL, "batch_size = 4e6", "") + '[dynamics]\ncurves = "c.csv"\n'
    proposal, fits = _fake_inputs(tmp_path, text)
    dyn = build_risk(proposal, fits=fits)["dynamics"]
    assert dyn["included"] is False and "plan.batch_size" in dyn["reason"]


def test_the_group_must_be_named_when_the_runs_have_several(tmp_path):
    from bayes_scaling.report.assemble import build_risk

    proposal, fits = _fake_inputs(tmp_path, _mutate(FAKE_PROPOSAL, f'group = "{EVIL}"', ""))
    with pytest.raises(ProposalError, match=r"runs\.group"):
        build_risk(proposal, fits=fits)


def test_a_fit_on_other_runs_is_refused(tmp_path):
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.testing import fake_fit

    proposal, fits = _fake_inputs(tmp_path)
    other = fake_fit("chinchilla", PUBLISHED["hoffmann2022"], seed=5)
    with pytest.raises(ProposalError, match="other runs"):
        build_risk(proposal, fits={**fits, "chinchilla": other})


# ------------------------------------------------------------------------------ the files
def test_the_page_is_self_contained_and_escapes_data(tmp_path_factory):
    out = fake_report(tmp_path_factory)
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count('src="data:image/png;base64,') == 2  # no backtest in the fake report
    assert (out / "report.html").stat().st_size < 3_000_000
    md = (out / "report.md").read_text()
    assert EVIL in md and "## Verdict" in md


def check_spans(out: Path) -> int:
    """Every ``span.num`` of the page shows ``fmt`` of the value at its path in report.json."""
    import html

    from bayes_scaling.report.blocks import lookup
    from bayes_scaling.report.formats import fmt

    risk = json.loads((out / "report.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    spans = re.findall(r'<span class="num" data-k="([^"]*)" data-fmt="(\w+)">([^<]*)</span>',
                       (out / "report.html").read_text())
    for key, kind, text in spans:
        value = lookup(risk, json.loads(html.unescape(key)))
        assert html.unescape(text) == fmt(value, kind)
    return len(spans)


def test_every_number_on_the_page_comes_from_report_json(tmp_path_factory):
    assert check_spans(fake_report(tmp_path_factory)) > 50


def test_the_sections_come_in_the_order_of_the_issue(tmp_path_factory):
    page = (fake_report(tmp_path_factory) / "report.html").read_text()
    heads = re.findall(r"<h2[^>]*>([^<]*)</h2>", page)
    assert heads == ["Verdict", "Predicted loss of the planned run",
                     "Tokens needed at the planned size", "The compute-optimal alternative",
                     "The alternative recipe", "Extrapolation", "Trust: backtest on these runs",
                     "Convergence diagnostics",
                     "Priors and posterior constants", "Kaplan vs Chinchilla",
                     "Training dynamics", "Scaling-pattern checks",
                     "The most informative next run", "Provenance"]


def test_every_entry_of_report_json_is_rendered_in_html_and_markdown(tmp_path_factory):
    risk = _risk(fake_report(tmp_path_factory))
    assert set(risk) == {key for s in SECTIONS for key in s.keys}
    assert unrendered(risk) == []


def test_an_entry_without_a_rendered_section_is_caught(tmp_path_factory):
    """Planted faults: numbers with no section, a section with no blocks, a number not shown."""
    risk = _risk(fake_report(tmp_path_factory))
    assert unrendered({**risk, "new_numbers": {"x": 1.0}}) == [
        "new_numbers: owned by 0 sections"]
    silent = Section(keys=("new_numbers",), numbers=lambda ctx: {"new_numbers": {}},
                     blocks=lambda r: [])
    assert unrendered({**risk, "new_numbers": {}}, (*SECTIONS, silent)) == [
        "('new_numbers',): no blocks"]
    hidden = Section(keys=("new_numbers",), numbers=lambda ctx: {"new_numbers": {}},
                     blocks=lambda r: [Block("h2", text="New"), Block("figure", text="none")])
    assert unrendered(risk, (*SECTIONS, hidden)) == [
        "new_numbers: a section's key with no entry"]
    with_x = {**risk, "new_numbers": {"x": 1.0}}
    shown = Section(keys=("new_numbers",), numbers=lambda ctx: {"new_numbers": {}},
                    blocks=lambda r: [Block("h2", text="New"), Block(
                        "p", parts=["x = ", Num(("new_numbers", "x"), "loss")])])
    assert unrendered(with_x, (*SECTIONS, shown)) == []
    lost = Section(keys=("new_numbers",), numbers=shown.numbers,
                   blocks=lambda r: [Block("h2", text="New"),  # a figure's parts are not drawn
                                     Block("figure", parts=[Num(("new_numbers", "x"), "loss")])])
    assert unrendered(with_x, (*SECTIONS, lost)) == [
        "('new_numbers',): ('new_numbers', 'x') not in the HTML",
        "('new_numbers',): ('new_numbers', 'x') not in the Markdown"]
    assert unrendered(risk, [s for s in SECTIONS if "verdict" not in s.keys]) == [
        "verdict: owned by 0 sections"]


def test_formatting_for_people():
    from bayes_scaling.report.formats import fmt

    assert fmt(1.4e12, "tokens") == "1.4 T" and fmt(7e10, "params") == "70 B"
    assert fmt(5.88e23, "flops") == "5.9e23" and fmt(2.3134, "loss") == "2.313"
    assert fmt(0.4244, "prob") == "0.424" and fmt(0.75, "pct") == "75%"
    assert fmt("inf", "tokens") == "∞" and fmt(None, "loss") == "n/a"
    assert fmt(0.6360, "decades") == "+0.64" and fmt(933333.3, "count") == "933 k"
    with pytest.raises(ValueError):
        fmt(1.0, "furlongs")


@given(st.floats(0.0, 1.0))
def test_a_shown_probability_is_within_half_a_thousandth(p):
    from bayes_scaling.report.formats import fmt

    assert abs(float(fmt(p, "prob")) - p) <= 5e-4 + 1e-12


@given(st.floats(1.0, 9.99e14))
def test_a_shown_size_reads_back_within_half_a_percent(x):
    from bayes_scaling.report.formats import fmt

    text = fmt(x, "tokens")
    scale = {"T": 1e12, "B": 1e9, "M": 1e6, "k": 1e3}
    shown = float(text[:-2]) * scale[text[-1]] if text[-1] in scale else float(text)
    assert shown == pytest.approx(x, rel=5.01e-3)


def test_report_modules_do_not_import_pymc():
    mods = ("assemble", "write", "document", "formats", "blocks", "render", "figures", "proposal")
    code = (f"import sys; import {', '.join('bayes_scaling.report.' + m for m in mods)}; "
            "assert not {'pymc', 'pytensor'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_cli_gives_one_line_for_a_bad_proposal(tmp_path, capsys):
    from bayes_scaling.cli.app import main

    path = tmp_path / "bad.toml"
    path.write_text(_mutate(FAKE_PROPOSAL, "target_loss = 1.95", "target_loss = -1"))
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "plan.target_loss" in err
    assert not (tmp_path / "out" / "report.html").exists()


def test_the_example_documents_every_field():
    from bayes_scaling.report.proposal import SCHEMA

    readme = (EXAMPLE.parent / "README.md").read_text()
    for table, keys in SCHEMA.items():
        for key in keys:
            if key not in SCHEMA:
                assert f"`{key}`" in readme, f"{table}.{key} undocumented"
    raw = tomllib.loads(EXAMPLE.read_text())
    assert raw["plan"]["n_params"] == 7e10


# ------------------------------------------------------------------------------ the example
@pytest.mark.slow
def test_example_p_target_agrees_with_the_posterior_draws(tmp_path_factory):
    """P(target) in the report = the fraction of posterior draws, to 3 decimals."""
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.laws import final_loss as laws
    from bayes_scaling.query.predict import predict_loss
    from bayes_scaling.report.formats import fmt

    out = example_report(tmp_path_factory)
    risk = _risk(out)
    page = (out / "report.html").read_text()
    plan, seed = risk["plan"], risk["seeds"]["query"]
    n, d, target = plan["n_params"], plan["n_tokens"], plan["target_loss"]
    for model in risk["provenance"]["models"]:
        fam = model["family"]
        f = ScalingFit.load(model["file"])
        shown = risk["verdict"]["families"][fam]
        pred = np.asarray(predict_loss(f, n, d, band="predictive", random_seed=seed).draws)
        direct = float(np.mean(pred <= target))
        assert fmt(direct, "prob") == fmt(shown["predictive"]["p_target"], "prob")
        key = json.dumps(["verdict", "families", fam, "predictive", "p_target"])
        assert f'data-fmt="prob">{fmt(direct, "prob")}</span>' in html.unescape(page).split(
            f'data-k="{key}"', 1)[1][:40]
        if fam == "chinchilla":  # the law band straight from the constants, not via predict
            c = {k: np.asarray(v).ravel() for k, v in f.constants().data_vars.items()}
            law = laws.chinchilla(n, d, **c)
            assert abs(float(np.mean(law <= target)) - shown["law"]["p_target"]) < 5e-4


@pytest.mark.slow
def test_example_rebuilds_from_saved_fits_with_the_same_numbers(tmp_path_factory):
    from bayes_scaling.report.write import make_report

    out = example_report(tmp_path_factory)
    before = _risk(out)
    messages: list[str] = []
    make_report(out.parent / "chinchilla70b.toml", out, on_progress=messages.append)
    after = _risk(out)
    assert sum("reusing saved fit" in m for m in messages) == 4  # 2 families, 2 backtest refits
    assert not any(m.startswith("fitting") for m in messages)
    assert all(m["reused"] for m in after["provenance"]["models"])
    assert after["verdict"] == before["verdict"]
    assert after["trust"]["bayes"]["coverage"] == before["trust"]["bayes"]["coverage"]
    # the slow entries (stacking refits, pattern checks, next-run simulation) and the figures
    # are kept beside the fits and reused: every entry is the same but for where the fits came
    # from (provenance; the trust section's backtest refits, checked above)
    for name in ("comparison", "patterns", "next_run"):
        assert sum(m.startswith(f"reusing {name}-") for m in messages) == 1, (name, messages)
    assert _undated(after) == _undated(before)
    # a damaged kept entry is computed again, to the same numbers, and replaced
    (kept,) = (out / "fits").glob("comparison-*.json")
    kept.write_text('{"comparison": ')
    messages.clear()
    make_report(out.parent / "chinchilla70b.toml", out, on_progress=messages.append)
    assert not any(m.startswith("reusing comparison-") for m in messages)
    assert _undated(_risk(out)) == _undated(before)
    assert json.loads(kept.read_text())["weights"] == before["weights"]


def _undated(risk: dict[str, Any]) -> dict[str, Any]:
    """A report dict without the entries that say when it was built and whether its fits were
    fitted or read from the fit folder."""
    return {k: v for k, v in risk.items() if k not in ("provenance", "trust")}


@pytest.mark.slow
def test_example_report_has_every_part_and_is_small(tmp_path_factory):
    out = example_report(tmp_path_factory)
    risk = _risk(out)
    assert (out / "report.html").stat().st_size < 3_000_000
    assert risk["comparison"]["available"] and len(risk["comparison"]["table"]) == 2
    assert set(risk["weights"]) == {"chinchilla", "kaplan"}
    assert set(risk["trust"]["bayes"]["coverage"]) == {"50", "80", "90", "95"}
    assert risk["trust"]["baseline"]["status"] == "ok"
    for method in ("bayes", "baseline"):
        _check_backtest_against_its_runs(risk["trust"][method], risk["trust"]["holdout_top"])
    assert risk["extrapolation"]["n_params"]["decades_past_largest"] == pytest.approx(
        np.log10(7e10 / 1.6183e10), abs=1e-3)
    prov = risk["provenance"]
    assert prov["data_files"][0]["sha256"] and prov["versions"]["numpy"]
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 3
    assert unrendered(risk) == []


def _check_backtest_against_its_runs(rec: dict[str, Any], holdout_top: int) -> None:
    """A backtest section's summary figures recomputed from the held-out runs it lists."""
    runs = rec["runs"]
    obs = np.array([r["observed"] for r in runs])
    med = np.array([r["median"] for r in runs])
    assert rec["n_holdout"] == len(runs) > 0
    assert len({round(np.log10(r["n_params"]), 2) for r in runs}) == holdout_top
    for p in ("50", "90"):
        inside = [r[f"lo_{p}"] <= r["observed"] <= r[f"hi_{p}"] for r in runs]
        assert rec["coverage"][p] == pytest.approx(np.mean(inside), abs=1e-12), p
    assert rec["median_abs_pct_error"] == pytest.approx(
        np.median(100 * np.abs(med - obs) / obs), rel=1e-9)
    width = np.mean([(r["hi_90"] - r["lo_90"]) / r["median"] for r in runs])
    assert rec["mean_rel_width_90"] == pytest.approx(width, rel=1e-9)


# ------------------------------------------------------------------------------ dynamics
def _fake_dynamics_fit(seed: int = 0):
    """A tight fake posterior of the curve law at Kaplan et al.'s section-5 constants."""
    import arviz as az
    import xarray as xr

    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.model.gate import Diagnostics
    from bayes_scaling.model.spec import load_spec
    from bayes_scaling.testing import synthetic_curves

    k = PUBLISHED["kaplan2020_dynamics"]
    rng = np.random.default_rng(seed)
    post = {}
    for p in ("log_n_c", "alpha_n", "log_s_c", "alpha_s", "log_b_star", "alpha_b"):
        v = np.log(k[p[4:]]) if p.startswith("log_") else k[p]
        post[p] = (("chain", "draw"), v + 1e-3 * rng.standard_normal((2, 500)))
    post["sigma"] = (("chain", "draw"), np.full((2, 500), 0.01))
    diag = Diagnostics(max_rhat=1.0, min_ess_bulk=1000.0, min_ess_tail=1000.0, divergences=0,
                       chains=2, draws=500, backend="fake", seed=seed, sampling_seconds=0.0)
    return ScalingFit(az.InferenceData(posterior=xr.Dataset(post)), load_spec("dynamics"),
                      synthetic_curves(k, seed=seed), diag, {"method": "fake", "seed": seed})


def test_dynamics_section_from_a_saved_curve_fit(tmp_path):
    from bayes_scaling.query.curves import predict_curve, steps_needed
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.report.common import CURVE_POINTS
    from bayes_scaling.report.write import write_report

    dyn_fit = _fake_dynamics_fit()
    dyn_fit.save(tmp_path / "dyn.nc")
    proposal, fits = _fake_inputs(tmp_path, FAKE_PROPOSAL + '[dynamics]\nfit = "dyn.nc"\n')
    risk = build_risk(proposal, fits=fits)
    dyn = risk["dynamics"]
    assert dyn["included"] and dyn["steps_plan"] == pytest.approx(1.4e12 / 4e6)
    assert dyn["group"] == "all"  # the curves' only group (the plan's is not among them)
    final = dyn["final_loss"]
    s_plan = 1.4e12 / 4e6  # the plan's steps, among the curve's steps as the section puts them
    steps = np.unique(np.append(np.geomspace(min(dyn_fit.runs.s.min(), s_plan / 100),
                                             s_plan * 2, CURVE_POINTS), s_plan))
    at = int(np.argmin(np.abs(steps - s_plan)))
    for band in ("predictive", "law"):
        curve = predict_curve(dyn_fit, 7e10, 4e6, steps, group="all", band=band,
                              random_seed=risk["seeds"]["query"])
        p_direct = float(np.mean(np.asarray(curve.draws)[..., at] <= 1.95))
        assert final[band]["p_target"] == pytest.approx(p_direct, abs=1e-12), band
    assert final["predictive"]["lo_90"] <= final["predictive"]["median"] <= \
        final["predictive"]["hi_90"]
    assert dyn["s_min"]["median"] <= dyn["steps_needed"]["median"]
    assert dyn["e_min"]["median"] <= dyn["tokens_needed"]["median"]
    direct = steps_needed(dyn_fit, 7e10, 1.95, [4e6], group="all", probs=(0.5, 0.9),
                          random_seed=risk["seeds"]["query"]).summary
    assert dyn["steps_needed"]["median"] == pytest.approx(float(direct["median"].iloc[0]))
    out = tmp_path / "out"
    write_report(risk, out)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "B_crit" in page
    assert "(training dynamics)" in page
    assert unrendered(risk) == []
    assert check_spans(out) > 60


def test_dynamics_asked_for_without_curves_is_a_proposal_error(tmp_path):
    from bayes_scaling.report.proposal import load_proposal

    path = tmp_path / "p.toml"
    path.write_text(FAKE_PROPOSAL + "[dynamics]\nenabled = true\n")
    with pytest.raises(ProposalError, match=r"dynamics\.curves"):
        load_proposal(path)


@pytest.mark.slow
def test_example_report_shows_the_pattern_checks_and_the_next_run_ranking(tmp_path_factory):
    out = example_report(tmp_path_factory)
    risk = json.loads((out / "report.json").read_text())
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert risk["patterns"]["included"] and risk["next_run"]["included"]
    for f in risk["patterns"]["findings"]:
        assert f["message"] in html.unescape(page) and f["code"] in md
    top = risk["next_run"]["records"][0]
    from bayes_scaling.report.formats import fmt

    assert fmt(top["n_params"], "params") in page and fmt(top["flops"], "flops") in md
    assert '"next_run", "records", 0, "band_after"' in html.unescape(page)


def test_a_saved_fit_from_another_package_version_or_code_is_refitted_not_reused():
    import dataclasses

    from bayes_scaling.fitting.result import PACKAGE, versions
    from bayes_scaling.report.common import source_digest
    from bayes_scaling.report.fits import reusable
    from bayes_scaling.testing import fake_fit

    f = fake_fit("chinchilla", PUBLISHED["hoffmann2022"], extra={"kappa": 0.03, "tau0": 0.01})
    f = dataclasses.replace(f, meta={**f.meta, "versions": versions(),
                                     "source_sha256": source_digest()})
    settings = {"chains": f.diagnostics.chains, "draws": f.diagnostics.draws}
    assert reusable(f, f.spec, f.runs, "nuts", settings)
    old = dataclasses.replace(f, meta={**f.meta, "versions": {**versions(), PACKAGE: "0.0.1"}})
    assert not reusable(old, f.spec, f.runs, "nuts", settings)
    # same version number, other code (a saved fit from before a change of calibration)
    other = dataclasses.replace(f, meta={**f.meta, "source_sha256": "0" * 64})
    assert not reusable(other, f.spec, f.runs, "nuts", settings)
    unmarked = dataclasses.replace(f, meta={k: v for k, v in f.meta.items()
                                            if k != "source_sha256"})
    assert not reusable(unmarked, f.spec, f.runs, "nuts", settings)


def test_the_alternative_recipe_section(tmp_path_factory):
    """Named: the contrast is in report.json and on the page; unnamed or refused: said so."""
    from bayes_scaling.report.sections.recipe import recipe_entry
    from bayes_scaling.testing import fake_fit, synthetic_runs

    rec = _risk(fake_report(tmp_path_factory))["recipe"]
    assert rec["included"] and rec["alternative"] == "b&c"
    m = rec["multiplier"]
    assert m["lo_90"] < m["median"] < m["hi_90"]
    assert 0.0 <= rec["difference_predictive"]["p_b_better"] <= 1.0
    page = (fake_report(tmp_path_factory) / "report.md").read_text()
    assert "P(alternative better)" in page
    runs = synthetic_runs("chinchilla", PUBLISHED["hoffmann2022"], group_offsets={"a": {},
                                                                                  "b": {}})
    fit = fake_fit("chinchilla", PUBLISHED["hoffmann2022"], runs=runs)
    none = recipe_entry(fit, "a", None, 1e9, 2e10)
    assert not none["included"] and "names no alternative group" in none["reason"]
    from bayes_scaling.data.runs import load_runs

    mixed = load_runs(runs.frame.assign(eval_set=runs.frame["group"]))
    out = recipe_entry(fake_fit("chinchilla", PUBLISHED["hoffmann2022"], runs=mixed), "a", "b",
                       1e9, 2e10)
    assert not out["included"] and "evaluation sets" in out["reason"]
