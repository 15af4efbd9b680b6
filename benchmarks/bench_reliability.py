"""Reliability figures: fuzzed bad input per CLI command, and writers killed at random moments.

1. **Bad input.** For every CLI command, hypothesis generates broken inputs with the strategies
   of ``tests/test_bad_inputs.py`` (broken runs tables for ``fit``, ``compare``, ``backtest``;
   damaged and edited fit files and broken arguments for ``predict``, ``tokens``, ``optimal``,
   ``summary``; broken proposals for ``report``; unknown names and corrupted copies for
   ``data``) and runs ``bayes_scaling.cli.app.main`` in-process on each. Counted: inputs, clean
   refusals (exit 2, one stderr line, the input named), tracebacks, changed or created files,
   fits started (a tripwire replaces every fit entry point), and refusals whose message lacks
   the expected words. Target: >= 200 bad inputs per command, zero tracebacks, zero changed
   outputs.
2. **Kills.** The harness of ``tests/test_safety.py`` forks a writer that rewrites a good file
   over and over (``ScalingFit.save``; ``report.atomic_write_text``; the whole risk report,
   ``report_html.write_report``) and SIGKILLs it after a random delay (up to three write
   times), then checks the file. Target: >= 100 kills per writer, zero corrupt or missing files.

Results go to ``benchmarks/results/reliability.md`` and ``reliability.json``.

Run: ``BAYES_SCALING_DATA=../shared/data OPENBLAS_NUM_THREADS=1 .venv/bin/python
benchmarks/bench_reliability.py`` (``--examples``, ``--kills``, ``--seed``; about 15 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BAYES_SCALING_DATA", str(ROOT.parent / "shared" / "data"))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hyp_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import test_bad_inputs as tb  # noqa: E402
from tests.test_safety import run_kill_trials  # noqa: E402

#: Generated cases the harness itself could not build or run (reported, should be none).
HARNESS_ERRORS: list[str] = []
COMMANDS = ("fit", "compare", "backtest", "predict", "tokens", "optimal", "summary", "report",
            "data")


class Tally:
    """Counts of one command's fuzzed inputs, by outcome."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, found: list[str], *, bad: bool = True, label: str = "") -> None:
        """Record one input: ``found`` lists its problems ([] = a clean refusal)."""
        if not bad:
            self.counts["valid_controls"] += 1
            self.counts["valid_refused"] += bool(found)
            return
        self.counts["bad_inputs"] += 1
        kinds = {_kind(f) for f in found}
        for k in kinds:
            self.counts[k] += 1
        self.counts["clean"] += not (kinds - {"message"})
        if found and len(self.examples) < 5:
            self.examples.append(f"{label}: {found[0][:300]}")


def _kind(problem: str) -> str:
    for prefix, kind in (("traceback", "tracebacks"), ("files changed", "changed_outputs"),
                         ("a fit started", "fits_started"), ("message", "message")):
        if problem.startswith(prefix):
            return kind
    return "unclean"  # wrong exit status or not exactly one stderr line


def drive(strategy: st.SearchStrategy[Any], n: int, seed: int,
          body: Callable[[Any], None]) -> None:
    """Run ``body`` on ``n`` generated examples (no shrinking, nothing raised)."""
    @hyp_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example: Any) -> None:
        try:
            body(example)
        except Exception as exc:  # a case the harness could not build: counted, not fatal
            HARNESS_ERRORS.append(f"{example!r}: {type(exc).__name__}: {exc}"[:300])

    run()


def fuzz_runs(command: str, n: int, seed: int, tally: Tally) -> None:
    def body(case: tb.RunsCase) -> None:
        tally.add(tb.check_runs_case(command, case), label=case.mutation)

    drive(tb.broken_runs(), n, seed, body)


def fuzz_fit_files(command: str, n: int, seed: int, tally: Tally) -> None:
    n_byte, n_semantic = n // 2, n - n // 2
    drive(tb.BYTE_STEPS, n_byte, seed,
          lambda step: tally.add(tb.check_fit_case(command, [step]), label=str(step)))
    drive(tb.SEMANTIC_STEPS, n_semantic, seed + 1,
          lambda step: tally.add(tb.check_fit_case(command, [step]), label=str(step)))


def fuzz_loose(command: str, n: int, seed: int, tally: Tally) -> None:
    """Junk attribute values: may load or be refused; only crashes and changes count."""
    def body(step: Any) -> None:
        found = tb.check_fit_case(command, [step], strict=False)
        tally.counts["junk_attribute_files"] += 1
        tally.counts["junk_crashes"] += any(f.startswith(("traceback", "files")) for f in found)

    drive(tb.LOOSE_STEPS, n, seed, body)


def fuzz_args(command: str, n: int, seed: int, tally: Tally) -> None:
    strategy = tb.query_args(commands=(command,))

    def body(call: tuple[str, list[str], bool]) -> None:
        _, tail, valid = call
        tally.add(tb.check_query_args(command, tail, valid), bad=not valid, label=str(tail))

    drive(strategy, n, seed, body)


def fuzz_proposals(n: int, seed: int, tally: Tally) -> None:
    drive(tb.broken_proposals(), n, seed,
          lambda case: tally.add(tb.check_proposal_case(case), label=case.mutation))


def fuzz_data(n: int, seed: int, tally: Tally) -> None:
    names = st.tuples(st.sampled_from(["path", "verify"]), st.text(min_size=1, max_size=20)
                      .filter(lambda s: s not in ("chinchilla", "misfitting_openlm",
                                                  "porian2024_isoflop", "steplaw_dense")
                              and not s.startswith("-")))
    drive(names, n - n // 8, seed,
          lambda c: tally.add(tb.check_data_name(*c), label=repr(c)))
    drive(st.tuples(st.floats(0, 1), st.integers(1, 255)), n // 8, seed + 1,
          lambda c: tally.add(_corrupted_copy(*c), label=repr(c)))


def _corrupted_copy(where: float, xor: int) -> list[str]:
    """``data verify`` on a local copy of misfitting_openlm with one byte changed."""
    from bayes_scaling.data.registry import load_registry

    entry = load_registry()["misfitting_openlm"]
    source = Path(os.environ["BAYES_SCALING_DATA"]) / "misfitting_openlm" / entry["file"]
    with tb.workspace() as (root, _):
        copy = root / "data" / "misfitting_openlm" / entry["file"]
        copy.parent.mkdir(parents=True)
        data = bytearray(source.read_bytes())
        data[min(int(where * len(data)), len(data) - 1)] ^= xor
        copy.write_bytes(bytes(data))
        saved = {k: os.environ.get(k) for k in ("BAYES_SCALING_DATA", "BAYES_SCALING_CACHE")}
        os.environ.update(BAYES_SCALING_DATA=str(root / "data"),
                          BAYES_SCALING_CACHE=str(root / "cache"))
        try:
            outcome = tb.run_cli(["data", "verify", "misfitting_openlm"], root)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return tb.problems(outcome, message="sha256 mismatch")


def fuzz_all(examples: int, seed: int) -> dict[str, Tally]:
    tallies = {c: Tally() for c in COMMANDS}
    for i, command in enumerate(COMMANDS):
        t0 = time.perf_counter()
        s, tally = seed + 100 * i, tallies[command]
        if command in ("fit", "compare", "backtest"):
            fuzz_runs(command, examples, s, tally)
        elif command == "summary":
            fuzz_fit_files(command, examples, s, tally)
            fuzz_loose(command, examples // 10, s + 2, tally)
        elif command in ("predict", "tokens", "optimal"):
            fuzz_fit_files(command, examples // 2, s, tally)
            fuzz_args(command, examples - examples // 4, s + 3, tally)
            fuzz_loose(command, examples // 10, s + 2, tally)
        elif command == "report":
            fuzz_proposals(examples, s, tally)
        else:
            fuzz_data(examples, s, tally)
        tally.counts["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{command}: {dict(tally.counts)}", flush=True)
    return tallies


def kills(n: int, seed: int) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="kills_") as tmp:
        for i, (kind, k) in enumerate((("fit", n), ("text", n), ("report", n))):
            t0 = time.perf_counter()
            res = run_kill_trials(kind, k, seed + i, Path(tmp) / kind, timeout=3600)
            res["seconds"] = round(time.perf_counter() - t0, 1)
            res["errors"] = res["errors"][:5]
            print(f"kills {kind}: {res}", flush=True)
            out.append(res)
    return out


WRITERS = {"fit": "`ScalingFit.save` (a fit, ~100 kB)",
           "text": "`report.atomic_write_text` (2 MB of JSON)",
           "report": "`report_html.write_report` (HTML, Markdown, JSON, figures)"}


def markdown(tallies: dict[str, Tally], killed: list[dict[str, Any]], args: Any) -> str:
    lines = ["## Reliability: bad input and killed writers", "",
             f"Seed {args.seed}; {platform.machine()}, {os.cpu_count()} cores. Strategies: "
             "`tests/test_bad_inputs.py`; kill harness: `tests/test_safety.py`.", "",
             "### Bad input, fuzzed (in-process `bayes_scaling.cli.app.main`)", "",
             "| command | bad inputs | clean refusals | tracebacks | changed outputs | "
             "fits started | other unclean | message lacks expected words | valid controls "
             "(accepted) | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for command, t in tallies.items():
        c = t.counts
        lines.append(f"| {command} | {c['bad_inputs']} | {c['clean']} | {c['tracebacks']} | "
                     f"{c['changed_outputs']} | {c['fits_started']} | {c['unclean']} | "
                     f"{c['message']} | {c['valid_controls'] - c['valid_refused']}"
                     f"/{c['valid_controls']} | {c['seconds']} |")
    junk = sum(t.counts["junk_attribute_files"] for t in tallies.values())
    crash = sum(t.counts["junk_crashes"] for t in tallies.values())
    total = sum(t.counts["bad_inputs"] for t in tallies.values())
    lines += ["", f"{total} bad inputs in all. Besides these, {junk} fit files with junk "
              f"attribute values (which may or may not be usable) gave {crash} crashes or "
              "changed files. *Clean refusal*: exit status 2, exactly one stderr line "
              "`bayes-scaling: error: ...` naming the input, no file created or changed, no "
              "fit started.", ""]
    lines += [f"Harness errors (cases that could not be built): {len(HARNESS_ERRORS)}.", ""]
    examples = [e for t in tallies.values() for e in t.examples]
    if examples:
        lines += ["Problems found (first of each command):", "",
                  *[f"- {e}" for e in examples], ""]
    lines += ["### Writers killed with SIGKILL at random moments", "",
              "| writer | kills | landed mid-write | complete, as before the kill | complete, "
              "rewritten | corrupt | missing | dead writers' temp files swept | seconds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for k in killed:
        lines.append(f"| {WRITERS[k['kind']]} | {k['trials']} | {k['mid_write']} | {k['old']} | "
                     f"{k['new']} | {k['corrupt']} | {k['missing']} | "
                     f"{k['temps_swept']}/{k['mid_write']} | {k['seconds']} |")
    lines += ["", "The writer alternates two versions, so *as before* may follow two complete "
              "writes. A kill lands *mid-write* when the writer's temporary file exists after "
              "it; the next write of the same target then removes it (*swept*). "
              "`write_report` spends nearly all its time rendering figures and writes each file "
              "in milliseconds through `report.atomic_write_text` / `fit.atomic_path`, so its "
              "kills rarely land inside a file write; the 2 MB text writer measures that case.",
              ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=250, help="fuzzed inputs per command")
    parser.add_argument("--kills", type=int, default=120, help="kills per writer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-kills", action="store_true")
    parser.add_argument("--skip-fuzz", action="store_true")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite reliability.md from reliability.json")
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads((RESULTS / "reliability.json").read_text())
        tallies = {c: Tally() for c in saved["fuzz"]}
        for c, t in tallies.items():
            t.counts.update(saved["fuzz"][c])
            t.examples = saved["problems"][c]
        HARNESS_ERRORS.extend(saved.get("harness_errors", []))
        args.seed = saved["seed"]
        (RESULTS / "reliability.md").write_text(markdown(tallies, saved["kills"], args))
        return
    tallies = {} if args.skip_fuzz else fuzz_all(args.examples, args.seed)
    killed = [] if args.skip_kills else kills(args.kills, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.md").write_text(markdown(tallies, killed, args))
    (RESULTS / "reliability.json").write_text(json.dumps(
        {"seed": args.seed, "fuzz": {c: dict(t.counts) for c, t in tallies.items()},
         "problems": {c: t.examples for c, t in tallies.items()},
         "harness_errors": HARNESS_ERRORS, "kills": killed},
        indent=1))


if __name__ == "__main__":
    main()
