"""Where JAX samples: the CPU by default, a GPU only when asked, a clear refusal otherwise.

CI has no GPU, so the GPU side is tested by its refusals: a process whose JAX runs on the CPU
(every test process here) must refuse ``device="gpu"`` in one line, from the Python API and the
CLI, and write nothing. The GPU's own speed is a benchmark line (``benchmarks/bench_device.py``)
run where a GPU is lent.
"""

from __future__ import annotations

import pytest

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.errors import BayesScalingError
from bayes_scaling.model import device

P = PUBLISHED["hoffmann2022"]


def test_the_device_asked_for_defaults_to_the_cpu_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    assert device.requested() == "cpu"
    monkeypatch.setenv(device.DEVICE_ENV, "GPU ")
    assert device.requested() == "gpu"
    assert device.requested("cpu") == "cpu"  # the call wins over the environment
    monkeypatch.setenv(device.DEVICE_ENV, "tpu")
    with pytest.raises(BayesScalingError, match=r"BAYES_SCALING_DEVICE: unknown device 'tpu'"):
        device.requested()
    with pytest.raises(BayesScalingError, match=r"^device: unknown device 'npu'"):
        device.requested("npu")


def test_jax_runs_on_the_cpu_and_then_refuses_to_switch_to_a_gpu(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    device.setup_jax(4)
    assert device.select() == "cpu"
    assert device.describe() == "cpu"
    with pytest.raises(BayesScalingError, match=r"^device gpu: JAX already runs on cpu") as exc:
        device.select("gpu")
    assert "\n" not in str(exc.value)
    assert device.select("cpu") == "cpu"  # the refusal changed nothing


def test_a_fit_records_its_device_and_a_gpu_fit_is_refused_before_sampling(monkeypatch):
    from bayes_scaling.fitting.fit import fit
    from bayes_scaling.testing import synthetic_runs

    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    runs = synthetic_runs("chinchilla", P, noise=0.01, seed=1)
    small = {"chains": 2, "draws": 30, "tune": 30, "random_seed": 1, "calibrate": False,
             "retries": 0, "on_bad": "warn"}
    with pytest.warns(UserWarning):  # 30 draws fail the gate: a warning, not the point here
        f = fit("chinchilla", runs, **small)
    assert f.meta["device"] == "cpu"
    with pytest.raises(BayesScalingError, match=r"^device gpu: "):
        fit("chinchilla", runs, device="gpu", **small)
    with pytest.raises(BayesScalingError, match=r"^device gpu needs the numpyro backend"):
        fit("chinchilla", runs, device="gpu", backend="pymc", **small)


def test_cli_fit_device_gpu_exits_2_in_one_line_and_writes_nothing(tmp_path, capsys,
                                                                    monkeypatch):
    from bayes_scaling.cli.app import main
    from bayes_scaling.testing import synthetic_runs

    monkeypatch.setenv(device.DEVICE_ENV, "cpu")  # restored after the test: the CLI sets it
    device.setup_jax(4)
    device.select("cpu")  # this process's JAX runs on the CPU, as on every CI machine
    csv = tmp_path / "runs.csv"
    synthetic_runs("chinchilla", P, noise=0.01, seed=1).frame.to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    code = main(["fit", str(csv), "--out", str(out), "--device", "gpu", "--chains", "2",
                 "--draws", "20", "--tune", "20", "--no-calibrate", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("bayes-scaling: error: device gpu: ") and "\n" not in err
    assert "Traceback" not in err and not out.exists()


def test_a_fresh_cli_process_asked_for_a_gpu_says_what_is_missing_or_uses_it(tmp_path):
    """What a user sees: a new process, ``--device gpu``. Without a GPU (CI): exit 2 and one
    line saying what is missing, no fit written; with one, the fit records the GPU."""
    import os
    import subprocess
    import sys

    from bayes_scaling.fitting.families import load_fit
    from bayes_scaling.testing import synthetic_runs

    csv = tmp_path / "runs.csv"
    synthetic_runs("chinchilla", P, noise=0.01, seed=1).frame.to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    env = {k: v for k, v in os.environ.items() if k not in (device.DEVICE_ENV, "JAX_PLATFORMS")}
    proc = subprocess.run(
        [sys.executable, "-m", "bayes_scaling", "fit", str(csv), "--out", str(out), "--device",
         "gpu", "--chains", "2", "--draws", "50", "--tune", "50", "--no-calibrate", "--quiet"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
    if proc.returncode == 0:  # a machine with a GPU and a CUDA build of JAX
        assert load_fit(out).meta["device"].startswith("gpu")
        return
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert err[0].startswith("bayes-scaling: error: device gpu: JAX sees no GPU here")
    assert not out.exists()
