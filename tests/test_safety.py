"""Nothing lost, nothing executed, reproducible, and old fits keep loading.

- Kill tests: a real writer process (``ScalingFit.save``, ``files.atomic_write_text``,
  ``report_html.write_report``) is killed with SIGKILL at random moments over a good file; the
  file must then hold the old or the new content, complete, and the next write must sweep the
  dead writer's temporary file. The same harness runs >= 100 kills per writer in
  ``benchmarks/bench_reliability.py``.
- Ctrl-C during sampling: one line, exit 130, no output file (a slow test: real NUTS).
- Crafted fit files: pickles and code strings in attributes or opaque HDF5 data are never run.
- HTML reports escape strings from data and proposals.
- Data sets are checked against their sha256 before use; a mismatch is an error.
- Reproducibility: the same seed gives the same draws, bit for bit.
- ``tests/fixtures/fit_v0.1.nc`` (a fit saved by version 0.1.0) keeps loading; a fit saved by
  another version loads or fails naming both versions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import FitFileError
from tests.conftest import require_shared

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_FIT = ROOT / "tests" / "fixtures" / "fit_v0.1.nc"
P = PUBLISHED["hoffmann2022"]
EVIL = '<script>alert("x")</script>'
ATTR_BREAKER = '" onmouseover="alert(1)'


# ------------------------------------------------------------------------------ kill harness
def _versions(kind: str, folder: Path) -> tuple[Any, Any]:
    """Two different, valid contents for a writer of ``kind``."""
    if kind == "fit":
        from bayes_scaling.testing import fake_fit

        return (fake_fit("chinchilla", P, draws=200, seed=1),
                fake_fit("chinchilla", P, draws=200, seed=2))
    if kind == "text":
        return tuple(json.dumps({"version": v, "pad": v * 2_000_000}) for v in "AB")
    risk_a = build_fake_risk(folder / "build_a", title="Version A")
    risk_b = build_fake_risk(folder / "build_b", title="Version B")
    return risk_a, risk_b


def _write(kind: str, content: Any, target: Path) -> None:
    if kind == "fit":
        content.save(target)
    elif kind == "text":
        from bayes_scaling.files import atomic_write_text

        atomic_write_text(target, content)
    else:
        from bayes_scaling.report.write import write_report

        write_report(content, target)


def _fingerprint(kind: str, target: Path) -> Any:
    """What the target holds, raising if it is missing or not complete."""
    if kind == "fit":
        from bayes_scaling.fitting.result import ScalingFit

        fit = ScalingFit.load(target)
        return (fit.meta["seed"], np.asarray(fit.posterior["alpha"]).tobytes())
    if kind == "text":
        return json.loads(target.read_text(encoding="utf-8"))["version"]
    out = {}
    for name in ("report.html", "report.md", "report.json"):
        data = (target / name).read_bytes()
        if name == "report.json":
            json.loads(data)
        if name == "report.html":
            assert data.rstrip().endswith(b"</html>")
        out[name] = data
    for png in sorted((target / "figures").glob("*.png")):
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG") and data.rstrip().endswith(b"\x00\x00IEND\xaeB`\x82")
        out[f"figures/{png.name}"] = data
    return out


def _temps(target: Path) -> list[str]:
    """Temporary files of writers of ``target`` (a file, or a report folder)."""
    folders = [target] + [p for p in target.rglob("*") if p.is_dir()] if target.is_dir() \
        else [target.parent]
    return sorted(str(p) for f in folders for p in f.iterdir()
                  if p.name.startswith(".") and (p.suffix in (".tmp", ".png")))


def _wait_for_temp(target: Path, deadline: float) -> None:
    """Return as soon as a writer's temporary file of ``target`` exists (or at ``deadline``)."""
    while time.perf_counter() < deadline:
        try:
            if _temps(target):
                return
        except FileNotFoundError:  # a folder vanished between listing and reading it
            pass


def kill_trials(kind: str, n: int, seed: int, folder: Path) -> dict[str, Any]:
    """Kill a writer of ``kind`` ``n`` times at random moments; count what survives.

    Runs in a fresh process (see :func:`run_kill_trials`): forks a child that rewrites the
    target over and over, alternating two versions, and SIGKILLs it: on even trials after a
    random delay of up to three write times, on odd trials as soon as a temporary file shows a
    write in progress (so some kills land mid-write however short that window is).
    After each kill the target must hold one version completely.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    a, b = _versions(kind, folder)
    target = folder / ("target.nc" if kind == "fit" else "target.json" if kind == "text"
                       else "report")
    _write(kind, b, target)
    expected = [_fingerprint(kind, target)]
    start = time.perf_counter()
    _write(kind, a, target)
    write_s = time.perf_counter() - start
    expected.append(_fingerprint(kind, target))
    counts = {"kind": kind, "trials": 0, "intact": 0, "old": 0, "new": 0, "corrupt": 0,
              "missing": 0, "mid_write": 0, "temps_swept": 0, "write_seconds": write_s,
              "errors": []}
    for trial in range(n):
        before = _fingerprint(kind, target)
        ready, started = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the writer: rewrite the target until killed (or orphaned)
            try:
                os.close(ready)
                os.write(started, b"1")
                while os.getppid() == parent:
                    for version in (b, a):
                        _write(kind, version, target)
            finally:
                os._exit(1)
        os.close(started)
        os.read(ready, 1)  # the delay counts from the writer's start, not from the fork
        os.close(ready)
        if trial % 2:  # half the kills aim at a write in progress: its temporary file seen
            _wait_for_temp(target, deadline=time.perf_counter() + 3.0 * write_s + 2.0)
        else:  # the other half land anywhere in the cycle
            time.sleep(rng.uniform(0.0, 3.0 * write_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts["trials"] += 1
        left = _temps(target)
        counts["mid_write"] += bool(left)
        try:
            found = _fingerprint(kind, target)
        except FileNotFoundError as exc:
            counts["missing"] += 1
            counts["errors"].append(f"missing: {exc}")
            continue
        except Exception as exc:  # any failure to read it back is corruption
            counts["corrupt"] += 1
            counts["errors"].append(f"{type(exc).__name__}: {exc}")
            continue
        complete = found in expected if kind != "report" else all(
            v in (expected[0].get(k), expected[1].get(k)) for k, v in found.items())
        counts["intact"] += complete
        counts["corrupt"] += not complete
        counts["old" if found == before else "new"] += complete
        if left:  # the next write sweeps the dead writer's temporary files
            _write(kind, a, target)
            counts["temps_swept"] += not (set(left) & set(_temps(target)))
    counts["temps_left_at_end"] = len(_temps(target))
    return counts


def run_kill_trials(kind: str, n: int, seed: int, folder: Path,
                    timeout: float = 900) -> dict[str, Any]:
    """:func:`kill_trials` in a fresh Python process (fork needs a process of its own)."""
    code = ("import json, sys; from pathlib import Path; "
            "from tests.test_safety import kill_trials; "
            "print(json.dumps(kill_trials(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
            "Path(sys.argv[4]))))")
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, kind, str(n), str(seed), str(folder)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind, n", [("fit", 15), ("text", 15)])
def test_a_killed_writer_leaves_the_old_or_the_new_file(kind, n, tmp_path):
    counts = run_kill_trials(kind, n, seed=7, folder=tmp_path)
    assert counts["trials"] == n
    assert counts["corrupt"] == 0 and counts["missing"] == 0, counts["errors"]
    assert counts["intact"] == n
    assert counts["mid_write"] > 0  # some kills landed inside a write
    assert counts["temps_swept"] == counts["mid_write"]
    assert counts["temps_left_at_end"] == 0


def test_a_killed_report_writer_leaves_complete_files(tmp_path):
    counts = run_kill_trials("report", 4, seed=3, folder=tmp_path)
    assert counts["corrupt"] == 0 and counts["missing"] == 0, counts["errors"]
    assert counts["intact"] == 4 and counts["temps_left_at_end"] == 0


def test_a_dead_writers_temp_file_is_swept_and_a_live_ones_kept(tmp_path):
    from bayes_scaling.files import atomic_write_text

    target = tmp_path / "report.md"
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid
    stale = tmp_path / f".report.md.{dead}.abc123.tmp"
    live = tmp_path / f".report.md.{os.getppid()}.def456.tmp"  # our parent is running
    other = tmp_path / f".other.md.{dead}.abc123.tmp"          # another target's
    for p in (stale, live, other):
        p.write_text("partial")
    atomic_write_text(target, "complete\n")
    assert target.read_text() == "complete\n"
    assert not stale.exists() and live.exists() and other.exists()


def test_an_interrupted_save_keeps_the_previous_fit(tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) in the middle of writing: old file intact, no temp left."""
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.testing import fake_fit

    target = tmp_path / "fit.nc"
    fake_fit("chinchilla", P, seed=1).save(target)
    before = target.read_bytes()

    real_to_netcdf = xr.Dataset.to_netcdf
    calls: list[int] = []

    def interrupted(self: Any, *a: Any, **k: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # after the first group is on disk: a half-written file
            raise KeyboardInterrupt
        return real_to_netcdf(self, *a, **k)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fake_fit("chinchilla", P, seed=2).save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]
    assert ScalingFit.load(target).meta["seed"] == 1


@pytest.mark.slow
def test_ctrl_c_during_sampling_stops_cleanly(tmp_path):
    out = tmp_path / "fit.nc"
    exe = Path(sys.executable).with_name("bayes-scaling")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "bayes_scaling"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*argv, "fit", "chinchilla", "--out", str(out), "--chains", "2",
                             "--draws", "20000", "--tune", "20000", "--no-calibrate"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=env)
    seen = []
    for line in proc.stderr:  # progress lines; wait until sampling has started
        seen.append(line)
        if "sampling:" in line:
            break
    time.sleep(2.0)  # 2 chains x 40,000 steps: still sampling (or compiling) by now
    assert proc.poll() is None, "the fit ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, rest_err = proc.communicate(timeout=300)
    err = "".join(seen) + rest_err
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "bayes-scaling: interrupted; nothing was written"
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ nothing executed
class _Payload:
    """Unpickling this object would create ``marker`` (a stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _crafted_fits(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Fit files carrying pickles, code strings and opaque HDF5 data."""
    import h5py

    from bayes_scaling.testing import fake_fit

    payload = pickle.dumps(_Payload(marker))
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    good = tmp_path / "good.nc"
    fake_fit("chinchilla", P, seed=4).save(good)
    files = {}

    def variant(name: str) -> Path:
        path = tmp_path / f"{name}.nc"
        data = good.read_bytes()
        path.write_bytes(data[: data.rindex(b"\nbayes_scaling-sha256:")])  # no trailer: edits
        return path

    with h5py.File(files.setdefault("pickle_attrs", variant("pickle_attrs")), "a") as f:
        f["posterior"].attrs["meta_json"] = np.void(payload)
        f["posterior"].attrs["payload"] = np.void(payload)
        f["fit_data"].attrs["source"] = np.void(payload)
    with h5py.File(files.setdefault("code_strings", variant("code_strings")), "a") as f:
        f["posterior"].attrs["meta_json"] = json.dumps({"method": code, "seed": code,
                                                        "box": code})
        f["posterior"].attrs["bayes_scaling_version"] = code
        f["fit_data"].attrs["source"] = code
    with h5py.File(files.setdefault("opaque_dataset", variant("opaque_dataset")), "a") as f:
        f["posterior"].create_dataset("evil", data=np.void(payload))
        f["posterior"].create_dataset("pickled_rows", data=np.array(
            [np.void(payload)] * 3))
    with h5py.File(files.setdefault("object_dtype_in_law", variant("object_dtype_in_law")),
                   "a") as f:
        del f["posterior"]["alpha"]
        f["posterior"].create_dataset("alpha", data=np.void(payload))
    return files


def test_crafted_fit_files_run_no_code(tmp_path, monkeypatch, capsys):
    from bayes_scaling.cli.app import main
    from bayes_scaling.fitting.result import ScalingFit

    marker = tmp_path / "CODE_RAN"
    calls, real_loads = [], pickle.loads

    def spy(data: Any, *args: Any, **kwargs: Any) -> Any:  # libraries unpickle their own
        if str(marker).encode() in bytes(data):                # objects; ours must never be
            calls.append(data)
            raise AssertionError("the payload was unpickled")
        return real_loads(data, *args, **kwargs)

    monkeypatch.setattr(pickle, "loads", spy)
    files = _crafted_fits(tmp_path, marker)
    outcomes = {}
    for name, path in files.items():
        try:
            fit = ScalingFit.load(path)
            outcomes[name] = "loaded"
            assert isinstance(fit.meta, dict)
        except FitFileError as exc:
            outcomes[name] = f"refused: {exc}"
        expected = 0 if outcomes[name] == "loaded" else 2  # the CLI agrees with the API
        for argv in (["summary", str(path)],
                     ["predict", str(path), "--n-params", "1e9", "--n-tokens", "2e10"]):
            assert main(argv) == expected, (name, argv)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.count("\n") == (0 if expected == 0 else 2), err  # one line per refusal
    assert not marker.exists() and calls == []
    # attributes the loader reads are refused; unknown extras are ignored (inert)
    assert outcomes["pickle_attrs"].startswith("refused")
    assert outcomes["object_dtype_in_law"].startswith("refused")
    assert outcomes["code_strings"].startswith("refused")  # a seed that is not a number
    assert outcomes["opaque_dataset"] == "loaded"


#: dtype kinds a saved fit may hold: numbers, booleans, text.
NUMBERS_AND_TEXT = {"f", "i", "u", "b", "S", "str"}
#: netCDF-4 bookkeeping attributes: HDF5 object references linking dimension scales.
_DIMENSION_SCALE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST"}


def _hdf5_kinds(path: Path) -> set[str]:
    """Every dtype kind stored in an HDF5 file (datasets and attributes but the references
    netCDF-4 keeps between variables and their dimensions)."""
    import h5py

    kinds: set[str] = set()

    def kind(dtype: np.dtype) -> str:
        return "str" if h5py.check_string_dtype(dtype) is not None else dtype.kind

    def visit(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            kinds.add(kind(obj.dtype))
        for key in set(obj.attrs) - _DIMENSION_SCALE_ATTRS:
            value = obj.attrs.get_id(key)
            kinds.add(kind(value.dtype))

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return kinds


def test_saved_fits_hold_only_numbers_and_text(tmp_path):
    """No pickles, no opaque or object data: nothing a loader could execute."""
    from bayes_scaling.testing import fake_fit, synthetic_runs

    runs = synthetic_runs("chinchilla", P, group_offsets={"a": {}, "b": {"log_e": 0.02}})
    path = fake_fit("chinchilla", P, runs=runs, extra={"kappa": 0.03}).save(tmp_path / "f.nc")
    assert _hdf5_kinds(path) <= NUMBERS_AND_TEXT  # the baseline's: see the test below
    assert _hdf5_kinds(FIXTURE_FIT) <= NUMBERS_AND_TEXT


def test_strings_from_data_and_proposals_are_escaped_in_the_html_report(tmp_path):
    risk = build_fake_risk(tmp_path, title=f"{EVIL} {ATTR_BREAKER}", group=EVIL,
                           description=f"<img src=x onerror=alert(1)> {ATTR_BREAKER}")
    from bayes_scaling.report.write import write_report

    write_report(risk, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    lower = page.lower()
    assert "<script" not in lower and "<img src=x" not in lower
    assert 'onmouseover="alert(1)' not in page
    # shown, as text (the quote as &quot; or &#34;: both mean '"')
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.replace("&quot;", "&#34;")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def build_fake_risk(folder: Path, *, title: str = "A plan", group: str | None = None,
                    description: str = "", target: float = 2.0, n_params: float = 7e10,
                    n_tokens: float = 1.4e12, runs: Any = None,
                    diagnostics: Any = None) -> dict[str, Any]:
    """The risk numbers of a one-family proposal over a fake fit (no sampler, no backtest)."""
    from bayes_scaling.report.assemble import build_risk
    from bayes_scaling.report.fits import load_proposal_runs
    from bayes_scaling.report.proposal import load_proposal
    from bayes_scaling.testing import fake_fit, synthetic_runs
    from tests.test_bad_inputs import _toml_string

    folder.mkdir(parents=True, exist_ok=True)
    if runs is None:
        groups = {group: {}, "other": {"log_e": 0.02}} if group else None
        runs = synthetic_runs("chinchilla", P, n_sizes=(1e7, 3e7, 1e8, 3e8, 1e9),
                              tokens_per_param=(10, 20, 40), seed=1, group_offsets=groups)
    runs.frame.to_csv(folder / "runs.csv", index=False)
    group_line = f"group = {_toml_string(group)}\n" if group else ""
    (folder / "plan.toml").write_text(
        f"name = \"fake-plan\"\ntitle = {_toml_string(title)}\n"
        f"description = {_toml_string(description)}\nseed = 3\n"
        f"[runs]\nfiles = [\"runs.csv\"]\n{group_line}"
        f"[plan]\nn_params = {n_params!r}\nn_tokens = {n_tokens!r}\ntarget_loss = {target!r}\n"
        "[models]\nfamilies = [\"chinchilla\"]\n[backtest]\nenabled = false\n",
        encoding="utf-8")
    proposal = load_proposal(folder / "plan.toml")
    table, _ = load_proposal_runs(proposal)
    fit = fake_fit("chinchilla", P, runs=table, draws=100, extra={"kappa": 0.03, "tau0": 0.01})
    if diagnostics is not None:
        fit = dataclasses.replace(fit, diagnostics=diagnostics)
    return build_risk(proposal, fits={"chinchilla": fit})


# ------------------------------------------------------------------------------ checksums
def test_a_corrupted_data_set_is_an_error_not_a_warning(tmp_path, monkeypatch, capsys):
    from bayes_scaling.cli.app import main
    from bayes_scaling.data.registry import load_registry

    entry = load_registry()["misfitting_openlm"]
    source = Path(os.environ["BAYES_SCALING_DATA"]) / "misfitting_openlm" / entry["file"]
    require_shared(source)
    copy = tmp_path / "data" / "misfitting_openlm" / entry["file"]
    copy.parent.mkdir(parents=True)
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("BAYES_SCALING_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BAYES_SCALING_CACHE", str(tmp_path / "cache"))
    for argv in (["fit", "misfitting_openlm", "--out", str(tmp_path / "fit.nc")],
                 ["data", "verify", "misfitting_openlm"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "sha256 mismatch for data set 'misfitting_openlm'" in err
    assert not (tmp_path / "fit.nc").exists()


def test_a_download_with_the_wrong_sha256_is_refused_and_not_cached(tmp_path, monkeypatch,
                                                                       capsys):
    from bayes_scaling.cli.app import main
    from bayes_scaling.data import registry as datasets

    def fake_download(url: str, dest: Path) -> None:
        Path(dest).write_bytes(b"n_params,n_tokens,loss\n1,2,3\n")  # not the registered bytes

    monkeypatch.setattr(datasets, "download_url", fake_download)
    monkeypatch.setenv("BAYES_SCALING_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BAYES_SCALING_CACHE", str(tmp_path / "cache"))
    assert main(["data", "path", "misfitting_openlm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has sha256" in err and "nothing was cached" in err
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cached == []


# ------------------------------------------------------------------------------ reproducible
def test_queries_with_the_same_seed_give_the_same_draws():
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.query.allocate import compute_optimal
    from bayes_scaling.query.predict import predict_loss, tokens_needed

    fit = ScalingFit.load(FIXTURE_FIT)
    for query in (lambda s: predict_loss(fit, [1e9, 7e10], [2e10, 1.4e12], group="new",
                                         random_seed=s),
                  lambda s: tokens_needed(fit, [1e9, 7e10], 2.1, group="new", random_seed=s),
                  lambda s: compute_optimal(fit, [1e21, 1e24], group="new", random_seed=s)):
        first, again, other = query(5), query(5), query(6)
        assert _raw(first.draws) == _raw(again.draws)
        assert first.summary.equals(again.summary)
        assert _raw(first.draws) != _raw(other.draws)


def _raw(draws: Any) -> bytes:
    """The bytes of every array of a query's draws (a DataArray or a Dataset)."""
    arrays = draws.data_vars.values() if hasattr(draws, "data_vars") else [draws]
    return b"".join(np.asarray(a).tobytes() for a in arrays)


def test_the_baseline_fit_is_reproducible_and_survives_a_save(tmp_path):
    from bayes_scaling.fitting.fit import fit_baseline
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.testing import synthetic_runs

    runs = synthetic_runs("chinchilla", P, n_sizes=(1e7, 3e7, 1e8, 3e8, 1e9),
                          tokens_per_param=(10, 20, 40), seed=2)
    a = fit_baseline("chinchilla", runs, n_boot=10, random_seed=9)
    b = fit_baseline("chinchilla", runs, n_boot=10, random_seed=9)
    back = ScalingFit.load(a.save(tmp_path / "a.nc"))
    assert _hdf5_kinds(tmp_path / "a.nc") <= NUMBERS_AND_TEXT
    for name in a.posterior.data_vars:
        x = np.asarray(a.posterior[name])
        assert x.tobytes() == np.asarray(b.posterior[name]).tobytes()
        assert x.tobytes() == np.asarray(back.posterior[name]).tobytes()


@pytest.mark.slow
def test_nuts_with_the_same_seed_gives_the_same_draws_bit_for_bit():
    from bayes_scaling.fitting.fit import fit
    from bayes_scaling.testing import synthetic_runs

    runs = synthetic_runs("chinchilla", P, n_sizes=(1e7, 3e7, 1e8, 3e8, 1e9),
                          tokens_per_param=(10, 20, 40), seed=5)
    kw = {"chains": 2, "draws": 200, "tune": 200, "calibrate": False, "random_seed": 21}
    first, again = fit("chinchilla", runs, **kw), fit("chinchilla", runs, **kw)
    for name in first.posterior.data_vars:
        assert (np.asarray(first.posterior[name]).tobytes()
                == np.asarray(again.posterior[name]).tobytes()), name
    other = fit("chinchilla", runs, **{**kw, "random_seed": 22})
    assert not np.array_equal(np.asarray(first.posterior["alpha"]),
                              np.asarray(other.posterior["alpha"]))


# ------------------------------------------------------------------------------ non-finite draws
@pytest.mark.parametrize(("name", "bad"), [("alpha", np.nan), ("sigma", np.inf),
                                           ("kappa", np.nan)])
def test_a_fit_with_non_finite_draws_is_refused_in_one_line(tmp_path, capsys, name, bad):
    """Half of one variable's draws non-finite: the API raises, the CLI exits 2 in one line.

    Accepted, ``predict`` printed ``median inf`` (issue 20).
    """
    import arviz as az

    from bayes_scaling.cli.app import main
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.testing import fake_fit

    good = fake_fit("chinchilla", P, seed=3, extra={"kappa": 0.03, "tau0": 0.01})
    post = good.posterior.copy(deep=True)
    post[name].values[:, : post.sizes["draw"] // 2] = bad
    path = dataclasses.replace(good, idata=az.InferenceData(posterior=post)).save(
        tmp_path / "nan.nc")
    with pytest.raises(FitFileError, match=rf"{name} has 500 non-finite draws of 1000"):
        ScalingFit.load(path)
    assert main(["predict", str(path), "--n-params", "7e10", "--n-tokens", "1.4e12"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and f"{name} has 500 non-finite draws" in err, err


# ------------------------------------------------------------------------------ old versions
def test_the_fit_saved_by_version_0_1_keeps_loading():
    """tests/fixtures/fit_v0.1.nc: testing.fake_fit (groups web, code; 2 x 100 draws) saved by
    bayes_scaling 0.1.0 (format 1). Never regenerate it: it stands for users' old files."""
    from bayes_scaling.fitting.result import ScalingFit
    from bayes_scaling.query.predict import predict_loss

    fit = ScalingFit.load(FIXTURE_FIT)
    assert fit.spec.name == "chinchilla" and fit.group_names == ("web", "code")
    assert fit.runs.n_runs == 30 and fit.posterior.sizes["draw"] == 100
    assert fit.meta == {"method": "fake", "seed": 7}
    assert fit.posterior.attrs["bayes_scaling_version"] == "0.1.0"
    consts = fit.constants()
    assert float(consts["e"].median()) == pytest.approx(P["e"], rel=1e-2)
    assert float(consts["alpha"].median()) == pytest.approx(P["alpha"], rel=1e-2)
    res = predict_loss(fit, 7e10, 1.4e12, group="web", random_seed=0)
    assert 1.5 < float(res.summary["median"].iloc[0]) < 2.5


def _with_attrs(tmp_path: Path, name: str, **attrs: Any) -> Path:
    """A copy of the fixture with posterior attributes replaced (checksum trailer dropped)."""
    import h5py

    path = tmp_path / name
    data = FIXTURE_FIT.read_bytes()
    path.write_bytes(data[: data.rindex(b"\nbayes_scaling-sha256:")])
    with h5py.File(path, "a") as f:
        for key, value in attrs.items():
            f["posterior"].attrs[key] = value
    return path


def test_a_fit_from_another_version_loads_or_names_both_versions(tmp_path):
    from bayes_scaling.fitting.result import FORMAT_VERSION, ScalingFit, package_version

    older = ScalingFit.load(_with_attrs(tmp_path, "older.nc", bayes_scaling_version="0.0.9"))
    assert older.runs.n_runs == 30  # same format, older release: loads
    ours = f"this is {package_version()} (format {FORMAT_VERSION})"
    for name, version, fmt in (("future.nc", "7.0.0", FORMAT_VERSION + 1),
                               ("ancient.nc", "0.0.1", 0)):
        with pytest.raises(FitFileError) as info:
            ScalingFit.load(_with_attrs(tmp_path, name, bayes_scaling_version=version,
                                        bayes_scaling_format=fmt))
        assert f"saved by bayes_scaling {version} (format {fmt})" in str(info.value)
        assert ours in str(info.value)
    # a field this version does not know (a newer release's diagnostics): both versions named
    diag = json.loads(str(ScalingFit.load(FIXTURE_FIT).posterior.attrs["diagnostics_json"]))
    newer = _with_attrs(tmp_path, "newer.nc", bayes_scaling_version="0.9.0",
                        diagnostics_json=json.dumps({**diag, "new_field": 1}))
    with pytest.raises(FitFileError, match=r"saved by bayes_scaling 0\.9\.0 .*this is"):
        ScalingFit.load(newer)


def test_the_fixture_is_small_and_checksummed():
    data = FIXTURE_FIT.read_bytes()
    assert len(data) < 150_000
    tail = data[-87:]
    assert tail.startswith(b"\nbayes_scaling-sha256:")
    import hashlib

    assert hashlib.sha256(data[:-87]).hexdigest().encode() == tail[22:-1]


def test_copying_the_fixture_elsewhere_keeps_it_loadable(tmp_path):
    from bayes_scaling.fitting.result import ScalingFit

    copy = tmp_path / "renamed fit (copy).nc"
    shutil.copyfile(FIXTURE_FIT, copy)
    assert ScalingFit.load(copy).runs.fingerprint() == ScalingFit.load(FIXTURE_FIT).runs \
        .fingerprint()


def test_a_swallowed_ctrl_c_prints_no_traceback():
    """A KeyboardInterrupt raised in a GC callback (JAX) reaches sys.unraisablehook: after a
    Ctrl-C it is silenced (the interrupt is re-raised at the next progress line); any other
    unraisable error, or one before a Ctrl-C, still reaches the default hook."""
    from types import SimpleNamespace

    from bayes_scaling.cli.common import INTERRUPTED, quiet_swallowed_interrupts

    seen: list[Any] = []
    hook = quiet_swallowed_interrupts(seen.append)
    ctrl_c = SimpleNamespace(exc_value=KeyboardInterrupt())
    other = SimpleNamespace(exc_value=ValueError("x"))
    INTERRUPTED.clear()
    try:
        hook(ctrl_c)
        assert seen == [ctrl_c]  # no Ctrl-C was pressed: not ours to hide
        INTERRUPTED.append(True)
        hook(ctrl_c)
        hook(other)
        assert seen == [ctrl_c, other]
    finally:
        INTERRUPTED.clear()
