"""Published runs tables, found through a checksummed registry (downloads and hashes by pooch).

``data/registry.json`` (at the project root) names each data set: the file of its runs table,
that file's sha256, its public origin pinned at a commit (URL and sha256), its license and
citation, whether the project ships it, and the :func:`~bayes_scaling.data.runs.load_runs` options
that make it ready for an ``L(N, D)`` fit.

:func:`fetch` looks for ``<name>/<file>`` in this order, and verifies whatever it finds:

1. the project's own ``data/`` folder (shipped sets);
2. ``data_home``, if given;
3. each folder in ``$BAYES_SCALING_DATA`` (``os.pathsep``-separated; tests and CI point it at
   ``../shared/data``);
4. the cache, ``$BAYES_SCALING_CACHE`` or pooch's ``os_cache("bayes_scaling")``
   (``$XDG_CACHE_HOME/bayes_scaling`` or ``~/.cache/bayes_scaling`` on Linux);
5. otherwise it downloads the pinned origin into the cache (a temporary file, then an atomic
   :func:`os.replace`), verifies it, and derives the extract where the origin is not the
   table itself. Tests replace the download with the ``downloader`` argument.

A checksum mismatch is never silently repaired: it raises :class:`RegistryError` naming the
file, both hashes and what to do.
"""

from __future__ import annotations

import difflib
import inspect
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pooch
import requests

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.errors import RegistryError
from bayes_scaling.files import shipped

#: The project's data folder: ``registry.json`` and the shipped sets.
DATA_DIR: Path = shipped("data")
#: Environment variable naming local folder(s) that hold ``<name>/<file>`` (checked first).
DATA_ENV = "BAYES_SCALING_DATA"
#: Environment variable naming the download cache.
CACHE_ENV = "BAYES_SCALING_CACHE"
#: A function writing the bytes at a URL to a path (replaceable in tests).
Downloader = Callable[[str, Path], None]

_ENTRY_KEYS = ("description", "file", "sha256", "url", "origin_sha256", "download", "license",
               "citation", "shipped", "loader", "notes")
_DOWNLOAD_KINDS = ("direct", "derive", "manual")


def download_url(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Write the bytes at ``url`` to ``dest`` (the default downloader).

    Parameters
    ----------
    url : str
        An ``https`` URL.
    dest : pathlib.Path
        File to write (overwritten).
    timeout : float, default 60
        Seconds to wait for the server.
    """
    if not url.startswith("https://"):
        raise RegistryError(f"refusing to download from a non-https URL: {url}")
    try:
        pooch.HTTPDownloader(timeout=timeout)(url, str(dest), None)
    except requests.RequestException as exc:  # pooch downloads with requests
        raise OSError(str(exc)) from exc


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the sha256 (hex) of a file's bytes."""
    return str(pooch.file_hash(str(path), alg="sha256"))


def load_registry(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read and check ``registry.json``.

    Parameters
    ----------
    path : path, optional
        Default ``DATA_DIR / "registry.json"``.

    Returns
    -------
    dict
        Data-set name -> entry (description, file, sha256, url, origin_sha256, download,
        license, citation, shipped, loader, notes, ...).
    """
    path = Path(path) if path is not None else DATA_DIR / "registry.json"
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read the data registry: {exc}") from exc
    for name, entry in registry.items():
        missing = [k for k in _ENTRY_KEYS if k not in entry]
        if missing or entry["download"] not in _DOWNLOAD_KINDS:
            raise RegistryError(f"{path}: entry {name!r} is malformed (missing {missing}, "
                                f"download {entry.get('download')!r})")
    return registry


def cache_dir() -> Path:
    """Return the download cache: ``$BAYES_SCALING_CACHE``, else pooch's user cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(pooch.os_cache("bayes_scaling"))


def _entry(name: str) -> dict[str, Any]:
    registry = load_registry()
    if name not in registry:
        close = difflib.get_close_matches(str(name), list(registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RegistryError(f"unknown data set {name!r}{hint} (known: {', '.join(registry)})")
    return registry[name]


def _locations(name: str, entry: dict[str, Any],
               data_home: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    """Where ``<name>/<file>`` may already be, in lookup order, each with its kind."""
    rel = Path(name) / entry["file"]
    places = [("shipped", DATA_DIR / rel)]
    if data_home is not None:
        places.append(("data_home", Path(data_home).expanduser() / rel))
    for folder in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if folder.strip():
            places.append((DATA_ENV, Path(folder.strip()).expanduser() / rel))
    places.append(("cache", cache_dir() / rel))
    return places


def _verified(path: Path, name: str, entry: dict[str, Any], where: str) -> Path:
    """Return ``path`` if its sha256 is the registered one; RegistryError otherwise."""
    found = sha256_file(path)
    if found == entry["sha256"]:
        return path
    advice = {
        "shipped": f"the project's copy was modified: restore it with "
                   f"`git checkout -- data/{name}/{entry['file']}`",
        "cache": f"delete it and run `bayes-scaling data path {name}` (or fetch({name!r})) "
                 "to download a fresh copy",
    }.get(where, "it is not the registered version: replace it with the file its "
                 "PROVENANCE.md describes, or remove it (lookup then falls through to the "
                 "cache or a download)")
    raise RegistryError(f"{path}: sha256 mismatch for data set {name!r}: expected "
                        f"{entry['sha256']}, found {found}; {advice}")


def fetch(name: str, *, data_home: str | os.PathLike[str] | None = None,
          downloader: Downloader | None = None) -> Path:
    """Return the verified local path of a registered data set, downloading it if needed.

    Parameters
    ----------
    name : str
        A registry name, e.g. ``"chinchilla"`` (see :func:`list_datasets`).
    data_home : path, optional
        A folder holding ``<name>/<file>``, searched after the project's own ``data/``.
    downloader : callable, optional
        ``downloader(url, dest_path)`` writes the bytes at ``url``; default
        :func:`download_url` (tests pass a fake; nothing else touches the network).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RegistryError
        Unknown name (with close matches); a copy whose sha256 differs; a failed or corrupt
        download; or a set that cannot be downloaded and derived here.
    """
    entry = _entry(name)
    places = _locations(name, entry, data_home)
    for where, path in places:
        if path.is_file():
            return _verified(path, name, entry, where)
    looked = ", ".join(str(p) for _, p in places)
    if entry["download"] == "manual":
        raise RegistryError(f"{name}: {entry['file']} not found (looked in {looked}) and it "
                            f"cannot be downloaded ready-made: {entry['manual_steps']}")
    return _download(name, entry, places[-1][1],
                     downloader if downloader is not None else download_url)


def _download(name: str, entry: dict[str, Any], dest: Path, downloader: Downloader) -> Path:
    """Download the origin to a temp file, verify, derive, verify, then move into place."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(f"{name}: cannot create the cache folder {dest.parent}: "
                            f"{exc.strerror or exc}; set {CACHE_ENV} elsewhere") from exc
    temps = []
    for _ in range(2):  # temporary names beside dest, so os.replace is an atomic rename
        fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        temps.append(Path(temp))
    origin, extract = temps
    try:
        try:
            downloader(entry["url"], origin)
        except OSError as exc:
            raise RegistryError(f"{name}: download of {entry['url']} failed: {exc}; set "
                                f"{DATA_ENV} to a folder holding {name}/{entry['file']}, or "
                                "retry with a network connection") from exc
        found = sha256_file(origin)
        if found != entry["origin_sha256"]:
            raise RegistryError(f"{name}: downloaded {entry['url']} has sha256 {found}, expected "
                                f"{entry['origin_sha256']}; nothing was cached (a corrupt "
                                "download or a moved origin: retry, or report it)")
        if entry["download"] == "derive":
            DERIVERS[name](origin, extract)
        else:
            os.replace(origin, extract)
        found = sha256_file(extract)
        if found != entry["sha256"]:
            raise RegistryError(f"{name}: the table derived from {entry['url']} has sha256 "
                                f"{found}, expected {entry['sha256']}; nothing was cached (a "
                                f"different pandas may format numbers differently: get the "
                                f"file as its PROVENANCE.md says and set {DATA_ENV})")
        os.replace(extract, dest)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return dest


def verify(name: str, data_home: str | os.PathLike[str] | None = None) -> str:
    """Check the local copy that :func:`fetch` would use, without downloading.

    Parameters
    ----------
    name : str
        A registry name.
    data_home : path, optional
        As for :func:`fetch`.

    Returns
    -------
    str
        One line: the data set, the file and its (matching) sha256.

    Raises
    ------
    RegistryError
        Unknown name, no local copy, or a sha256 mismatch.
    """
    entry = _entry(name)
    places = _locations(name, entry, data_home)
    for where, path in places:
        if path.is_file():
            _verified(path, name, entry, where)
            return f"{name}: {path} OK (sha256 {entry['sha256']})"
    looked = ", ".join(str(p) for _, p in places)
    raise RegistryError(f"{name}: no local copy (looked in {looked}); fetch({name!r}) "
                        "downloads it")


def list_datasets(*, data_home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """List the registered data sets and whether each is already on this machine.

    Parameters
    ----------
    data_home : path, optional
        As for :func:`fetch`.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, description, shipped, license, rows, available, path``; ``available``
        says a local copy exists (its checksum is checked by :func:`verify`, not here).
    """
    rows = []
    for name, entry in load_registry().items():
        local = next((p for _, p in _locations(name, entry, data_home) if p.is_file()), None)
        rows.append({"name": name, "description": entry["description"],
                     "shipped": bool(entry["shipped"]), "license": entry["license"],
                     "rows": entry.get("rows"), "available": local is not None,
                     "path": str(local) if local is not None else ""})
    return pd.DataFrame(rows)


def load_dataset(name: str, *, data_home: str | os.PathLike[str] | None = None,
                 downloader: Downloader | None = None, **overrides: Any) -> RunTable:
    """Fetch a registered data set and load it with its registered loader options.

    Parameters
    ----------
    name : str
        A registry name.
    data_home : path, optional
        As for :func:`fetch`.
    downloader : callable, optional
        As for :func:`fetch`.
    **overrides
        :func:`~bayes_scaling.data.runs.load_runs` options replacing the registered ones (e.g.
        ``drop_highest_loss=0``, ``query=None``).

    Returns
    -------
    RunTable
    """
    allowed = [p for p in inspect.signature(load_runs).parameters if p != "source"]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise RegistryError(f"load_dataset: unknown loader option(s) {', '.join(unknown)}; "
                            f"use {', '.join(allowed)}")
    options = {**_entry(name)["loader"], **overrides}
    return load_runs(fetch(name, data_home=data_home, downloader=downloader), **options)


# --------------------------------------------------------------------------------------------
# Derivations: public original -> the registered extract (ports of each set's derive.py)
# --------------------------------------------------------------------------------------------
def _derive_chinchilla(original: Path, dest: Path) -> None:
    """Epoch AI's ``svg_extracted_data.csv`` -> ``run_id, n_params, n_tokens, flops, loss``.

    Carries only the numbers (no SVG coordinates or colours), every row in the original order,
    each float written with ``repr`` (exact round trip); ``n_tokens = flops / (6 n_params)``.
    """
    table = pd.read_csv(original, dtype=str)  # parsed below by Python's exact float()
    lines = ["run_id,n_params,n_tokens,flops,loss"]
    columns = (table["Model Size"], table["Training FLOP"], table["loss"])
    for i, (n, c, loss) in enumerate(zip(*columns, strict=True), start=1):
        n, c, loss = float(n), float(c), float(loss)
        d = c / (FLOPS_PER_PARAM_TOKEN * n)
        lines.append(f"r{i:04d},{n!r},{d!r},{c!r},{loss!r}")
    dest.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def _derive_misfitting(original: Path, dest: Path) -> None:
    """Port of ``misfitting_openlm/derive.py``: checkpoints of sizes <= 4.2e8 total params."""
    d = pd.read_csv(io.BytesIO(original.read_bytes()))
    if not (d["loss"] == d["C4 Eval Loss"]).all():
        raise RegistryError(f"{original}: 'loss' differs from 'C4 Eval Loss'; not the "
                            "registered original")
    bs = d["D"] / d["current_steps"]
    out = pd.DataFrame({
        "run": d["sweep"] + "/" + d["model"] + "/lr" + d["peak_lr"].astype(str) + "/S"
               + d["total_steps"].astype(str) + "/E" + d["total_epochs"].astype(str),
        "model": d["model"],
        "n_params": d["N"],
        "n_params_nonembedding": d["N_no_emb"],
        "n_tokens": d["D"],
        "loss": d["C4 Eval Loss"],
        "steps": d["current_steps"],
        "total_steps": d["total_steps"],
        "total_tokens_planned": (d["total_steps"] * bs).round().astype("int64"),
        "fraction_of_run": d["portion_steps_elapsed"],
        "batch_size_tokens": bs.round().astype("int64"),
        "learning_rate": d["peak_lr"],
        "context_length": 2048,  # open_lm/model_configs/misfitting_*.json: seq_len 2048
        "flops": d["C"],
        "flops_6ND": d["C_6ND"],
    })
    # 2 exact duplicates and 13 re-logged evaluations of a (run, checkpoint): keep the first
    out = out.drop_duplicates(["run", "n_tokens"], keep="first")
    out = out.sort_values(["n_params", "run", "n_tokens"]).reset_index(drop=True)
    out = out[out["n_params"] <= 4.2e8]
    out.to_csv(dest, index=False, float_format="%.10g", lineterminator="\n")


def _derive_steplaw(original: Path, dest: Path) -> None:
    """Port of ``steplaw_dense/derive.py``: the dense-model lr x batch-size grid."""
    seq_len = 2048  # implied by the data: D / (bs * ti) = 2048 within 0.2% for every row
    d = pd.read_csv(io.BytesIO(original.read_bytes()))
    implied = d["D"] / (d["bs"] * d["ti"])
    n_check = d["numl"] * (4 * d["h"] ** 2 + 3 * d["h"] * d["ffnh"])
    if not ((implied - seq_len).abs() <= 1e-8 + 3e-3 * seq_len).all() or not (
            n_check == d["N"]).all():
        raise RegistryError(f"{original}: context length or N does not check out; not the "
                            "registered original")
    out = pd.DataFrame({
        "run": d["exp_name"],
        "n_params": d["N"],  # NON-embedding count (see PROVENANCE.md)
        "n_params_nonembedding": d["N"],
        "n_tokens": d["D"],
        "loss": d["smooth loss"],  # Gaussian-smoothed training loss at the last iteration
        "loss_raw_last": d["loss"],
        "steps": d["ti"],
        "batch_size_sequences": d["bs"],
        "batch_size_tokens": d["bs"] * seq_len,
        "learning_rate": d["lr"],
        "context_length": seq_len,
        "flops": FLOPS_PER_PARAM_TOKEN * d["N"] * d["D"],
        "d_model": d["h"], "d_ff": d["ffnh"], "n_heads": d["numh"], "n_layers": d["numl"],
    })
    out = out.sort_values(["n_params", "n_tokens", "batch_size_tokens", "learning_rate"])
    out.reset_index(drop=True).to_csv(dest, index=False, float_format="%.10g",
                                      lineterminator="\n")


#: Data-set name -> function turning the downloaded origin into the registered table.
DERIVERS: dict[str, Callable[[Path, Path], None]] = {
    "chinchilla": _derive_chinchilla,
    "misfitting_openlm": _derive_misfitting,
    "steplaw_dense": _derive_steplaw,
}
