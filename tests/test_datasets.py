"""Tests of the data-set registry: lookup order, checksums, downloads (never the network)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bayes_scaling.data import registry as datasets
from bayes_scaling.data.registry import fetch, list_datasets, load_dataset, load_registry, verify
from bayes_scaling.data.runs import load_runs
from bayes_scaling.errors import RegistryError
from tests.conftest import SHARED_DATA, require_shared

SHARED = require_shared(SHARED_DATA)
EPOCH_CSV = SHARED / "chinchilla_epoch" / "svg_extracted_data.csv"
SHIPPED_CSV = Path(__file__).resolve().parents[1] / "data" / "chinchilla" / "chinchilla_runs.csv"
REAL_DOWNLOAD_URL = datasets.download_url
NAMES = ("chinchilla", "misfitting_openlm", "porian2024_isoflop", "steplaw_dense")


def no_network(url: str, dest: Path) -> None:
    """The default downloader in these tests: any call is a test failure."""
    raise AssertionError(f"a test tried to download {url}")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Fresh cache, no $BAYES_SCALING_DATA, and no network, unless a test sets them."""
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "download_url", no_network)


@pytest.fixture
def shared_data(monkeypatch):
    """Point $BAYES_SCALING_DATA at ../shared/data."""
    monkeypatch.setenv(datasets.DATA_ENV, str(SHARED))
    return SHARED


@pytest.fixture
def empty_project(monkeypatch, tmp_path):
    """A project data folder holding only the registry (nothing shipped)."""
    data = tmp_path / "project_data"
    data.mkdir()
    shutil.copy(datasets.DATA_DIR / "registry.json", data / "registry.json")
    monkeypatch.setattr(datasets, "DATA_DIR", data)
    return data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Every file below ``folder`` (temporary downloads included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# The registry's facts
# --------------------------------------------------------------------------------------------
def test_registry_entries_are_complete_and_pinned():
    registry = load_registry()
    assert tuple(registry) == NAMES
    for name, entry in registry.items():
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/.+",
                            entry["url"]), name
        assert entry["commit"] in entry["url"]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        assert re.fullmatch(r"[0-9a-f]{64}", entry["origin_sha256"])
        assert entry["license"] and entry["citation"] and entry["notes"]
        assert entry["shipped"] == (name == "chinchilla")
        assert entry["download"] == ("manual" if name == "porian2024_isoflop" else "derive")
    assert not (datasets.DATA_DIR / "misfitting_openlm").exists()  # unlicensed: never shipped


@pytest.mark.parametrize("name", NAMES[1:])
def test_registry_hashes_match_the_provenance(name):
    entry = load_registry()[name]
    provenance = (SHARED / name / "PROVENANCE.md").read_text(encoding="utf-8")
    assert entry["sha256"] in provenance and entry["origin_sha256"] in provenance
    assert entry["commit"] in provenance and entry["url"] in provenance
    assert sha256(SHARED / name / entry["file"]) == entry["sha256"]


def test_shipped_chinchilla_matches_its_provenance():
    entry = load_registry()["chinchilla"]
    folder = datasets.DATA_DIR / "chinchilla"
    assert sha256(folder / entry["file"]) == entry["sha256"]
    provenance = (folder / "PROVENANCE.md").read_text(encoding="utf-8")
    for fact in (entry["sha256"], entry["origin_sha256"], entry["commit"], "arXiv:2203.15556",
                 "arXiv:2404.10102", "embeddings included", "5 highest-loss"):
        assert fact in provenance


# --------------------------------------------------------------------------------------------
# Lookup and verification
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fetch_finds_every_set_locally(shared_data, name):
    path = fetch(name)
    entry = load_registry()[name]
    expected = datasets.DATA_DIR if name == "chinchilla" else shared_data
    assert path == expected / name / entry["file"]
    assert sha256(path) == entry["sha256"]
    assert verify(name) == f"{name}: {path} OK (sha256 {entry['sha256']})"


def test_lookup_order(monkeypatch, tmp_path, empty_project):
    shipped, source = empty_project / "chinchilla" / "chinchilla_runs.csv", SHIPPED_CSV
    homes = {k: tmp_path / k for k in ("home", "env", "cache")}
    for folder in homes.values():
        (folder / "chinchilla").mkdir(parents=True)
        shutil.copy(source, folder / "chinchilla" / "chinchilla_runs.csv")
    monkeypatch.setenv(datasets.DATA_ENV, str(homes["env"]))
    monkeypatch.setenv(datasets.CACHE_ENV, str(homes["cache"]))
    assert fetch("chinchilla", data_home=homes["home"]).parent.parent == homes["home"]
    assert fetch("chinchilla").parent.parent == homes["env"]
    monkeypatch.delenv(datasets.DATA_ENV)
    assert fetch("chinchilla").parent.parent == homes["cache"]
    shipped.parent.mkdir()
    shutil.copy(source, shipped)
    assert fetch("chinchilla", data_home=homes["home"]) == shipped


def test_corrupted_copy_is_refused(tmp_path, empty_project):
    copy = tmp_path / "home" / "chinchilla" / "chinchilla_runs.csv"
    copy.parent.mkdir(parents=True)
    copy.write_text(SHIPPED_CSV.read_text(encoding="utf-8").replace("5.005581996196243", "5.0"),
                    encoding="utf-8")
    expected = load_registry()["chinchilla"]["sha256"]
    for call in (lambda: fetch("chinchilla", data_home=copy.parents[1]),
                 lambda: verify("chinchilla", copy.parents[1])):
        with pytest.raises(RegistryError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{copy}: sha256 mismatch for data set 'chinchilla'")
        assert f"expected {expected}, found {sha256(copy)}" in message
        assert "PROVENANCE.md" in message and "\n" not in message


def test_corrupted_shipped_copy_says_how_to_restore(empty_project):
    (empty_project / "chinchilla").mkdir()
    (empty_project / "chinchilla" / "chinchilla_runs.csv").write_bytes(
        SHIPPED_CSV.read_bytes() + b"r0246,1,1,6,1\n")
    with pytest.raises(RegistryError, match=r"git checkout -- data/chinchilla/chinchilla_runs"):
        fetch("chinchilla")


@pytest.mark.parametrize(("name", "close"), [("chinchila", "chinchilla"),
                                             ("steplaw", "steplaw_dense"),
                                             ("misfitting", "misfitting_openlm")])
def test_unknown_name_suggests_close_matches(name, close):
    with pytest.raises(RegistryError, match=f"unknown data set '{name}'; did you mean {close}"):
        fetch(name)
    with pytest.raises(RegistryError, match="unknown data set"):
        load_dataset(name)


def test_verify_without_a_local_copy(empty_project):
    with pytest.raises(RegistryError, match=r"misfitting_openlm: no local copy \(looked in "):
        verify("misfitting_openlm")


def test_list_datasets(shared_data, monkeypatch):
    table = list_datasets()
    assert list(table.columns) == ["name", "description", "shipped", "license", "rows",
                                   "available", "path"]
    assert table["name"].tolist() == list(NAMES)
    assert table["available"].all()
    monkeypatch.delenv(datasets.DATA_ENV)
    assert list_datasets().set_index("name")["available"].to_dict() == {
        "chinchilla": True, "misfitting_openlm": False, "porian2024_isoflop": False,
        "steplaw_dense": False}


# --------------------------------------------------------------------------------------------
# Downloads (mocked)
# --------------------------------------------------------------------------------------------
def test_download_derives_chinchilla_atomically(monkeypatch, tmp_path, empty_project):
    calls, replaced = [], []
    real_replace = datasets.os.replace

    def fake_download(url, dest):
        calls.append(url)
        dest.write_bytes(EPOCH_CSV.read_bytes())

    def spy_replace(src, dst):
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(datasets.os, "replace", spy_replace)
    path = fetch("chinchilla", downloader=fake_download)
    entry = load_registry()["chinchilla"]
    cache = tmp_path / "cache"
    assert calls == [entry["url"]]
    assert path == cache / "chinchilla" / "chinchilla_runs.csv"
    assert sha256(path) == entry["sha256"]  # the derivation reproduces the shipped file
    assert replaced[-1][1] == path and replaced[-1][0].parent == path.parent
    assert replaced[-1][0].name.startswith(".chinchilla_runs.csv.")
    assert leftovers(cache) == ["chinchilla/chinchilla_runs.csv"]
    assert fetch("chinchilla", downloader=fake_download) == path and len(calls) == 1


def test_download_with_wrong_origin_caches_nothing(tmp_path, empty_project):
    def wrong(url, dest):
        dest.write_text("x,y\n1,2\n")

    with pytest.raises(RegistryError, match=r"steplaw_dense: downloaded https://\S+ has sha256 "
                                            r"[0-9a-f]{64}, expected 9e46181076c0"):
        fetch("steplaw_dense", downloader=wrong)
    assert leftovers(tmp_path / "cache") == []


def test_interrupted_download_caches_nothing(tmp_path, empty_project):
    def broken(url, dest):
        dest.write_bytes(b"partial")
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(RegistryError, match=r"download of https://.* failed: connection reset"):
        fetch("misfitting_openlm", downloader=broken)
    assert leftovers(tmp_path / "cache") == []


def test_default_downloader_is_looked_up_at_call_time(monkeypatch, empty_project):
    with pytest.raises(AssertionError, match="a test tried to download"):
        fetch("misfitting_openlm")


def test_download_url_refuses_plain_http(tmp_path):
    with pytest.raises(RegistryError, match="non-https"):
        REAL_DOWNLOAD_URL("http://example.org/x.csv", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_manual_set_says_what_to_do(empty_project):
    with pytest.raises(RegistryError) as info:
        fetch("porian2024_isoflop")
    message = str(info.value)
    assert "derive.py" in message and "BAYES_SCALING_DATA" in message and "\n" not in message


def fake_registry(tmp_path: Path, origin: bytes, **changes) -> dict:
    """A registry with one direct-download set whose origin is ``origin``."""
    digest = hashlib.sha256(origin).hexdigest()
    entry = {"description": "toy", "file": "toy.csv", "sha256": digest, "url": "https://x/y.csv",
             "origin_sha256": digest, "download": "direct", "license": "CC0",
             "citation": "none", "shipped": False, "loader": {"drop_highest_loss": 1},
             "notes": "", **changes}
    (tmp_path / "reg.json").write_text(json.dumps({"toy": entry}))
    return load_registry(tmp_path / "reg.json")


def test_direct_download_then_load_dataset(monkeypatch, tmp_path):
    origin = b"N,D,L\n1e6,1e9,4.0\n2e6,2e9,3.5\n4e6,4e9,3.1\n8e6,8e9,2.9\n"
    registry = fake_registry(tmp_path, origin)
    monkeypatch.setattr(datasets, "load_registry", lambda: registry)
    runs = load_dataset("toy", downloader=lambda url, dest: dest.write_bytes(origin))
    assert runs.n_runs == 3 and max(runs.loss) == 3.5  # registered loader: drop the highest
    assert load_dataset("toy", drop_highest_loss=0).n_runs == 4  # now cached: no download
    with pytest.raises(RegistryError, match="unknown loader option"):
        load_dataset("toy", drop_higest_loss=0)


def test_derived_table_with_wrong_hash_caches_nothing(monkeypatch, tmp_path):
    origin = b"Model Size,Training FLOP,loss\n1e6,6e15,4.0\n"
    registry = fake_registry(tmp_path, origin, download="derive", sha256="0" * 64)
    monkeypatch.setattr(datasets, "load_registry", lambda: registry)
    monkeypatch.setitem(datasets.DERIVERS, "toy", datasets.DERIVERS["chinchilla"])
    with pytest.raises(RegistryError, match=f"toy: the table derived from .* expected {'0' * 64}"):
        fetch("toy", downloader=lambda url, dest: dest.write_bytes(origin))
    assert leftovers(tmp_path / "cache") == []


# --------------------------------------------------------------------------------------------
# Derivations on small stand-ins for the originals
# --------------------------------------------------------------------------------------------
def test_misfitting_derivation(tmp_path):
    original = pd.DataFrame({
        "sweep": ["s"] * 4, "model": ["m1", "m1", "m1", "big"], "peak_lr": [0.002] * 4,
        "total_steps": [100] * 4, "total_epochs": [1] * 4,
        "N": [5e7, 5e7, 5e7, 5e8], "N_no_emb": [1e7, 1e7, 1e7, 4e8],
        "D": [104857600, 52428800, 104857600, 104857600],
        "current_steps": [100, 50, 100, 100], "portion_steps_elapsed": [1.0, 0.5, 1.0, 1.0],
        "loss": [4.5, 5.0, 4.4, 3.0], "C4 Eval Loss": [4.5, 5.0, 4.4, 3.0],
        "C": [3.2e16, 1.6e16, 3.2e16, 3.2e17], "C_6ND": [3.1e16, 1.5e16, 3.1e16, 3.1e17]})
    original.to_csv(tmp_path / "orig.csv", index=False)
    datasets.DERIVERS["misfitting_openlm"](tmp_path / "orig.csv", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["run"].tolist() == ["s/m1/lr0.002/S100/E1"] * 2  # re-logged row and big model out
    assert out["n_tokens"].tolist() == [52428800, 104857600] and out["loss"].tolist() == [5.0, 4.5]
    assert out["batch_size_tokens"].tolist() == [1048576] * 2
    assert load_runs(tmp_path / "out.csv", min_distinct=()).param_count == "total"
    original.assign(loss=original["loss"] + 1).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(RegistryError, match="not the registered original"):
        datasets.DERIVERS["misfitting_openlm"](tmp_path / "bad.csv", tmp_path / "out2.csv")


def test_steplaw_derivation(tmp_path):
    h, ffnh, numl = 960, 9368, 7
    n = numl * (4 * h**2 + 3 * h * ffnh)
    original = pd.DataFrame({
        "exp_name": ["b", "a"], "N": [n, n], "D": [4e9, 4e9], "smooth loss": [2.65, 2.64],
        "loss": [2.61, 2.60], "ti": [61035, 30518], "bs": [32, 64], "lr": [4.883e-4, 1e-3],
        "h": [h, h], "ffnh": [ffnh, ffnh], "numh": [15, 15], "numl": [numl, numl]})
    original.to_csv(tmp_path / "orig.csv", index=False)
    datasets.DERIVERS["steplaw_dense"](tmp_path / "orig.csv", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["run"].tolist() == ["b", "a"]  # sorted by batch size
    assert out["batch_size_tokens"].tolist() == [65536, 131072]
    assert out["loss"].tolist() == [2.65, 2.64] and out["n_params_nonembedding"].eq(n).all()
    assert out["flops"].tolist() == [6.0 * n * 4e9] * 2
    original.assign(ti=original["ti"] * 2).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(RegistryError, match="does not check out"):
        datasets.DERIVERS["steplaw_dense"](tmp_path / "bad.csv", tmp_path / "out2.csv")


# --------------------------------------------------------------------------------------------
# Loading registered sets with their defaults
# --------------------------------------------------------------------------------------------
def test_load_chinchilla_offline_matches_epoch(shared_data):
    runs = load_dataset("chinchilla")
    assert runs.n_runs == 240 and runs.param_count == "total"
    assert load_dataset("chinchilla", drop_highest_loss=0).n_runs == 245
    assert runs.fingerprint() == load_runs(EPOCH_CSV, drop_highest_loss=5).fingerprint()


@pytest.mark.parametrize(("name", "n_runs", "groups", "param_count"), [
    ("misfitting_openlm", 223, ("all",), "total"),
    ("porian2024_isoflop", 176, ("openwebtext2", "refinedweb"), "total"),
    ("steplaw_dense", 1911, ("all",), "nonembedding"),
])
def test_load_dataset_defaults(shared_data, name, n_runs, groups, param_count):
    runs = load_dataset(name)
    assert (runs.n_runs, runs.group_names, runs.param_count) == (n_runs, groups, param_count)
    assert runs.source == str(shared_data / name / load_registry()[name]["file"])


def test_corrupted_cache_copy_says_how_to_refetch(tmp_path, empty_project):
    cached = tmp_path / "cache" / "steplaw_dense" / "steplaw_dense.csv"
    cached.parent.mkdir(parents=True)
    cached.write_text("run,n_params\n")
    with pytest.raises(RegistryError, match=r"delete it and run `bayes-scaling data path "
                                            r"steplaw_dense`"):
        fetch("steplaw_dense")
