"""Shared fixtures: fake fits (no sampler) and the real-data location."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from bayes_scaling.constants import PUBLISHED

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAYES_SCALING_DATA", ROOT.parent / "shared" / "data")).resolve()
os.environ["BAYES_SCALING_DATA"] = str(SHARED_DATA)  # absolute: CLI tests run in other folders
os.environ.setdefault("BAYES_SCALING_CACHE", str(ROOT / ".pytest-cache-data"))

def require_shared(path: Path) -> Path:
    """``path`` inside the real data, or a test FAILURE (never a skip): CI always has it."""
    if not path.exists():
        pytest.fail(f"real data missing: {path} (make test points BAYES_SCALING_DATA at "
                    "../shared/data; run the tests through it)", pytrace=False)
    return path


#: Small, seeded sampler settings for slow tests.
SMALL = {"chains": 2, "draws": 1000, "tune": 700}
EPOCH_FIT = {"e": 1.8172, "a": 477.8, "b": 2144.0, "alpha": 0.3473, "beta": 0.3672}


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")


@pytest.fixture(scope="session")
def chinchilla_fake():
    """A tight fake posterior at Hoffmann et al.'s published constants, one group."""
    from bayes_scaling.testing import fake_fit

    return fake_fit("chinchilla", PUBLISHED["hoffmann2022"], seed=0)


@pytest.fixture(scope="session")
def chinchilla_runs():
    """The shipped Chinchilla runs with Epoch's 5 highest-loss runs dropped (240)."""
    from bayes_scaling.data.registry import load_dataset

    return load_dataset("chinchilla")


@pytest.fixture(scope="session")
def chinchilla_posterior(chinchilla_runs):
    """A real posterior on the Chinchilla runs (shared by the slow tests)."""
    from bayes_scaling.fitting.fit import fit

    return fit("chinchilla", chinchilla_runs, random_seed=11, chains=4, draws=500, tune=500)
