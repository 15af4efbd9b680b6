"""The wheel, installed outside the checkout, works on Python 3.11, 3.12 and 3.13.

The wheel is built once (``python -m build``: an sdist, then the wheel from that sdist, as a
release is built). For each Python found through pyenv (``~/.pyenv/versions/3.1x.*``; a missing
one fails the test) it is installed into a fresh virtualenv, and from a temporary folder outside
the checkout, with no ``PYTHONPATH`` and no ``BAYES_SCALING_DATA``, the test runs
``bayes-scaling --help``, ``python -m bayes_scaling --help``, ``data list``, ``data path``, a
short ``fit chinchilla``, ``predict`` on that fit and ``report`` on a copy of the example
proposal with short sampler settings. Whatever the package reads must then come from the wheel:
no output may name the checkout.

Installing PyMC, JAX and numpyro three times takes minutes, so the dependencies live in a cached
virtualenv per Python (``$BAYES_SCALING_TEST_VENVS``, default
``~/.cache/bayes_scaling-test-venvs/py<version>-<hash of the wheel's Requires-Dist>``), built on
first use with pip's cache. Each run makes a fresh virtualenv that sees that layer through a
``.pth`` file and installs only the wheel (``--no-deps``), then ``pip check`` verifies that the
layer satisfies the wheel's requirements.
"""

from __future__ import annotations

import contextlib
import email.parser
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.11", "3.12", "3.13")
#: The planned run of the example proposal (Chinchilla-70B), asked of the saved fit.
PREDICT_ARGS = ("--n-params", "7e10", "--n-tokens", "1.4e12", "--seed", "0")
#: Sampler settings that keep the fit and the report short (the gate may warn; that is fine).
SHORT = {"chains": 2, "draws": 200, "tune": 200}
#: Cached dependency layers unused for this long are removed when a new layer is built.
STALE_DAYS = 14


# ------------------------------------------------------------------------------- interpreters
def find_python(minor: str) -> Path:
    """The newest pyenv interpreter ``minor.*`` (e.g. ``3.12.1`` for ``"3.12"``).

    Parameters
    ----------
    minor : str
        ``"3.11"``, ``"3.12"`` or ``"3.13"``.

    Returns
    -------
    pathlib.Path
        Its ``bin/python``; the test fails (never skips) when there is none.
    """
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = []
    for exe in root.glob(f"versions/{minor}.*/bin/python"):
        m = re.fullmatch(rf"{re.escape(minor)}\.(\d+)", exe.parents[1].name)
        if m and os.access(exe, os.X_OK):
            found.append((int(m.group(1)), exe))
    if not found:
        pytest.fail(f"no Python {minor} under {root}/versions (install it: pyenv install {minor})")
    return max(found)[1]


def outside_env() -> dict[str, str]:
    """This process's environment without what points at the checkout or its virtualenv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "PYTHONUSERBASE",
            "VIRTUAL_ENV", "BAYES_SCALING_DATA")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(cmd: list[str | os.PathLike[str]], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (by default in :func:`outside_env`); fail the test if it exits non-zero."""
    env = outside_env() if env is None else env
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def _purelib(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return Path(_run([python, "-c", code], cwd=Path("/")).stdout.strip())


# ------------------------------------------------------------------------------------- wheel
def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's ``Requires-Dist`` entries outside any extra, sorted.

    Parameters
    ----------
    wheel : pathlib.Path
        A built ``.whl``.

    Returns
    -------
    list of str
        Requirement strings as the wheel's METADATA states them.
    """
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))
    reqs = meta.get_all("Requires-Dist") or []
    return sorted(r for r in reqs if "extra ==" not in r.replace('"', "").replace("'", ""))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel for the module, built from an sdist of the checkout."""
    out = tmp_path_factory.mktemp("dist")
    wall, cpu = time.perf_counter(), _children_cpu()
    _run([sys.executable, "-m", "build", "--outdir", out, ROOT], cwd=out)
    print(f"wheel built in {time.perf_counter() - wall:.1f} s ({_children_cpu() - cpu:.1f} s CPU)")
    wheels = list(out.glob("bayes_scaling-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


# --------------------------------------------------------------------- cached dependency layer
def _cache_root() -> Path:
    base = os.environ.get("BAYES_SCALING_TEST_VENVS")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "bayes_scaling-test-venvs"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (parallel test runs build a layer once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def dependency_layer(python: Path, requirements: list[str]) -> tuple[Path, float]:
    """A cached virtualenv holding ``requirements`` for this interpreter, built if missing.

    Parameters
    ----------
    python : pathlib.Path
        The base interpreter.
    requirements : list of str
        The wheel's requirements; the cache key hashes them with the interpreter's version.

    Returns
    -------
    (pathlib.Path, float)
        The layer's folder and the seconds spent building it (0 when it was cached).
    """
    version = _run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                   cwd=Path.cwd()).stdout.strip()
    key = hashlib.sha256("\n".join([version, str(python), *requirements]).encode()).hexdigest()
    folder = _cache_root() / f"py{version}-{key[:12]}"
    stamp = folder / ".complete"
    with _locked(folder.with_name(folder.name + ".lock")):
        if stamp.exists():
            stamp.touch()  # marks it used (see STALE_DAYS)
            return folder, 0.0
        start = time.perf_counter()
        shutil.rmtree(folder, ignore_errors=True)  # a half-built layer of a killed run
        _run([python, "-m", "venv", folder], cwd=folder.parent)
        pip = [folder / "bin" / "python", "-m", "pip"]
        _run([*pip, "install", "-q", "--upgrade", "pip"], cwd=folder.parent)
        _run([*pip, "install", "-q", *requirements], cwd=folder.parent)
        stamp.write_text("\n".join(requirements) + "\n")
        _prune_stale(folder)
        return folder, time.perf_counter() - start


def _prune_stale(keep: Path) -> None:
    """Remove other cached layers not used for ``STALE_DAYS`` days."""
    for other in keep.parent.glob("py*-*"):
        stamp = other / ".complete"
        if other == keep or not other.is_dir():
            continue
        age = time.time() - (stamp.stat().st_mtime if stamp.exists() else other.stat().st_mtime)
        if age > STALE_DAYS * 86400:
            with _locked(other.with_name(other.name + ".lock")):
                shutil.rmtree(other, ignore_errors=True)


def fresh_venv(python: Path, layer: Path, wheel: Path, where: Path) -> Path:
    """A new virtualenv at ``where`` that sees ``layer``'s packages and has the wheel installed."""
    _run([python, "-m", "venv", "--without-pip", where], cwd=where.parent)
    exe = where / "bin" / "python"
    (_purelib(exe) / "_dependency_layer.pth").write_text(
        f"import site; site.addsitedir({str(_purelib(layer / 'bin' / 'python'))!r})\n")
    _run([exe, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=where.parent)
    _run([exe, "-m", "pip", "check"], cwd=where.parent)  # the layer meets the wheel's Requires-Dist
    return where


# ------------------------------------------------------------------------------- the commands
def short_proposal(example: str) -> str:
    """The example proposal, kept short: one law family, short chains, no backtest.

    Each replaced line must exist in the example (a changed example fails here, loudly).
    """
    text = example
    for table, key, value in [("models", "families", '["chinchilla"]'),
                              ("fit", "chains", SHORT["chains"]), ("fit", "draws", SHORT["draws"]),
                              ("fit", "tune", SHORT["tune"]), ("backtest", "holdout_by", None)]:
        pattern = rf"(\[{table}\][^\[]*?^{key}\s*=\s*)[^\n]+"
        if value is None:  # the table's first key: prepend "enabled = false" to it
            text, n = re.subn(rf"(\[{table}\]\n)(?={key}\s*=)", "\\g<1>enabled = false\n", text,
                              count=1)
        else:
            text, n = re.subn(pattern, rf"\g<1>{value}", text, count=1, flags=re.M | re.S)
        assert n == 1, f"reports/examples/chinchilla70b.toml: no {table}.{key} to replace"
    return text


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of an installed user: the venv first on PATH, nothing of the checkout."""
    env = outside_env()
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               BAYES_SCALING_CACHE=str(home / "cache"), MPLBACKEND="Agg",
               MPLCONFIGDIR=str(home / "mpl"), OPENBLAS_NUM_THREADS="1")
    return env


_OUTCOMES: dict[str, dict[str, object] | BaseException] = {}


def outcome(minor: str, wheel: Path, tmp_root: Path) -> dict[str, object]:
    """Install the wheel on Python ``minor`` and run every command once (memoized per Python)."""
    if minor not in _OUTCOMES:
        try:
            _OUTCOMES[minor] = _install_and_run(minor, wheel, tmp_root / f"py{minor}")
        except BaseException as exc:  # memoize the failure too: the comparison re-raises it
            _OUTCOMES[minor] = exc
    got = _OUTCOMES[minor]
    if isinstance(got, BaseException):
        raise got
    return got


def _children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _install_and_run(minor: str, wheel: Path, home: Path) -> dict[str, object]:
    python = find_python(minor)
    home.mkdir(parents=True)
    start, cpu = time.perf_counter(), _children_cpu()
    layer, layer_s = dependency_layer(python, wheel_requirements(wheel))
    venv = fresh_venv(python, layer, wheel, home / "venv")
    install = (round(time.perf_counter() - start, 1), round(_children_cpu() - cpu, 1))
    work = home / "work"
    work.mkdir()
    assert not work.resolve().is_relative_to(ROOT)
    env = _clean_env(venv, home)

    seconds: dict[str, tuple[float, float]] = {}  # command: (wall, CPU) seconds, summed

    def cli(*args: str) -> str:
        wall, cpu = time.perf_counter(), _children_cpu()
        stdout = _run(["bayes-scaling", *args], cwd=work, env=env).stdout
        name = " ".join(a for a in args[:2] if not a.endswith((".nc", ".toml")))
        before = seconds.get(name, (0.0, 0.0))
        seconds[name] = (round(before[0] + time.perf_counter() - wall, 1),
                         round(before[1] + _children_cpu() - cpu, 1))
        return stdout

    where = _run([venv / "bin" / "python", "-c",
                  "import bayes_scaling, bayes_scaling.files as f; print(bayes_scaling.__file__);"
                  "print(f.shipped('models')); print(f.shipped('data'))"],
                 cwd=work, env=env).stdout.split()
    out: dict[str, object] = {"python": str(python), "venv": venv, "where": where}
    out["help"] = cli("--help")
    out["module_help"] = _run([venv / "bin" / "python", "-m", "bayes_scaling", "--help"],
                              cwd=work, env=env).stdout
    out["data_list"] = cli("data", "list")
    out["data_path"] = cli("data", "path", "chinchilla").strip()
    out["fit"] = cli("fit", "chinchilla", "--model", "chinchilla", "--out", "chinchilla.nc",
                     "--seed", "1", "--chains", str(SHORT["chains"]), "--draws",
                     str(SHORT["draws"]), "--tune", str(SHORT["tune"]), "--quiet")
    out["predict"] = cli("predict", "chinchilla.nc", *PREDICT_ARGS)
    out["predict_json"] = json.loads(cli("predict", "chinchilla.nc", *PREDICT_ARGS, "--json"))
    proposal = work / "chinchilla70b.toml"
    proposal.write_text(short_proposal((ROOT / "reports/examples/chinchilla70b.toml").read_text()))
    out["report"] = cli("report", str(proposal), "--out", "report")
    out["report_dir"] = work / "report"
    out["seconds"] = {"layer built": round(layer_s, 1), "layer + fresh venv": install,
                      **seconds}
    print(f"python {minor}, (wall, CPU) seconds: {out['seconds']}")
    return out


# ---------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheel-test")


def test_wheel_ships_models_and_data(wheel: Path) -> None:
    """Every file of models/ and data/ (specs, registry, shipped sets with their PROVENANCE,
    the learned discrepancy prior) and of the package's template folders."""
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = sorted(p.name for p in (ROOT / "models").glob("*.toml"))
    assert specs and all(f"bayes_scaling/_models/{s}" in names for s in specs)
    for folder, inside in (("data", "_data"), ("models", "_models")):
        files = [p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts]
        missing = [f for f in files if f"bayes_scaling/{inside}/{f}" not in names]
        assert not missing, f"{folder}/ files not in the wheel: {missing}"
    templates = [p.relative_to(ROOT).as_posix() for p in (ROOT / "bayes_scaling").rglob("*")
                 if p.is_file() and "templates" in p.parts]
    assert [t for t in templates if t not in names] == []
    assert "bayes_scaling/_data/registry.json" in names
    registry = json.loads((ROOT / "data/registry.json").read_text())
    shipped = [(n, e["file"]) for n, e in registry.items() if e["shipped"]]
    assert ("chinchilla", "chinchilla_runs.csv") in shipped
    for name, file in shipped:
        assert f"bayes_scaling/_data/{name}/{file}" in names
        assert f"bayes_scaling/_data/{name}/PROVENANCE.md" in names
    assert not any(n.startswith(("models/", "data/", "tests/")) for n in names)


@pytest.mark.parametrize("minor", PYTHONS)
def test_installed_wheel_runs_outside_checkout(minor: str, wheel: Path, tmp_root: Path) -> None:
    got = outcome(minor, wheel, tmp_root)
    venv = Path(got["venv"])
    # the package, its model specs and data come from the virtualenv, not from the checkout
    for path in got["where"]:
        assert Path(path).resolve().is_relative_to(venv.resolve()), path
    assert Path(got["data_path"]).resolve().is_relative_to(venv.resolve()), got["data_path"]
    assert "Usage: bayes-scaling" in got["help"] and "predict" in got["help"]
    assert got["module_help"].split("\n", 1)[1] == got["help"].split("\n", 1)[1]
    rows = {line.split()[0]: line for line in got["data_list"].splitlines()[1:] if line.strip()}
    assert str(venv) in rows["chinchilla"], got["data_list"]  # available, from the wheel
    assert "saved chinchilla.nc" in got["fit"]
    (rec,) = got["predict_json"]["records"]
    assert rec["n_params"] == 7e10 and rec["n_tokens"] == 1.4e12
    assert rec["lower"] < rec["median"] < rec["upper"]
    assert 1.7 < rec["median"] < 2.2, rec  # Chinchilla-70B: about 1.94 nats/token
    report = Path(got["report_dir"])
    for name in ("report.html", "report.md", "report.json"):
        text = (report / name).read_text(encoding="utf-8")
        assert str(ROOT) not in text, f"{name} names the checkout {ROOT}"
    assert json.loads((report / "report.json").read_text())["proposal"]["name"] == "chinchilla70b"


def test_predict_same_on_every_python(wheel: Path, tmp_root: Path) -> None:
    """Same seed, same printed numbers on 3.11, 3.12 and 3.13."""
    got = {minor: outcome(minor, wheel, tmp_root) for minor in PYTHONS}
    printed = {minor: g["predict"] for minor, g in got.items()}
    records = {minor: g["predict_json"]["records"][0] for minor, g in got.items()}
    for minor in PYTHONS[1:]:  # how far apart the full floats are (printed in the test log)
        rel = max(abs(records[minor][k] / records[PYTHONS[0]][k] - 1)
                  for k in ("median", "mean", "lower", "upper"))
        print(f"predict, python {minor} vs {PYTHONS[0]}: largest relative difference {rel:.2e}")
    assert len(set(printed.values())) == 1, printed
