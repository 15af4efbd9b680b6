"""The curve laws' PyMC graph as NUTS sees it: through JAX, jitted, in float64 and float32.

numpyro differentiates the JAX translation of the graph, not PyTensor's gradient, and XLA fuses
and reorders the jitted arithmetic. Checked here: the solve's stop-gradient survives the
translation (otherwise JAX's autodiff runs back through every Newton iteration), the jitted
solve equals the numpy one (a bracket shrunk to the root from one side made it jump away after
convergence), float32 per-checkpoint arithmetic is the float64 density to float32 rounding,
and a curve model with its own start points is whitened around the mode next to them.
"""

from __future__ import annotations

from contextlib import nullcontext

import jax
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.initial_point import make_initial_point_fn
from pymc.sampling.jax import get_jaxified_graph, get_jaxified_logp
from pytensor.graph.traversal import ancestors

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.curves import load_curves
from bayes_scaling.data.schedules import Schedule, schedule_areas
from bayes_scaling.fitting.dynamics import start_points
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model import build_curves, sampling
from bayes_scaling.model.spec import load_spec
from bayes_scaling.testing import synthetic_curves

TRUTH = {"log_n_c": np.log(2.0e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3), "alpha_s": 0.76,
         "log_b_star": np.log(2.0e8), "alpha_b": 0.21, "log_c_anneal": np.log(0.1)}


def _cosine_table(seed: int = 5, curves: int = 12, points: int = 400):
    """Dense cosine curves drawn from the schedule law (one batch size), 10% noisy early."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    law, rows = CURVE_LAWS["dynamics_schedule"], []
    for j, n in enumerate(np.repeat(np.geomspace(2e7, 4e8, curves // 3), 3)):
        t = (2000, 6000, 16000)[j % 3]
        sched = Schedule("cosine", total_steps=t, warmup_steps=50, final_fraction=0.1)
        steps = np.linspace(t / points, t, points).round()
        s1, a = schedule_areas(sched, steps)
        mu = law.log_mean(np.log(n), np.log(s1), np.log(5e5), a, **TRUTH)
        mu = mu + 0.01 * rng.standard_normal() + 0.004 * rng.standard_normal(steps.size)
        rows += [{"run_id": f"r{j}", "n_params": n, "steps": s, "batch_size_tokens": 5e5,
                  "loss": y, "total_steps": t} for s, y in zip(steps, np.exp(mu), strict=True)]
    return load_curves(pd.DataFrame(rows), schedule={"shape": "cosine", "warmup_steps": 50.0,
                                                     "final_fraction": 0.1},
                       max_points_per_curve=None, max_points=None)


def test_the_solve_is_a_constant_to_every_autodiff():
    build_curves._register_ops()
    x = pt.dscalar("x")
    y = build_curves.stop_gradient(x**2) * x          # d/dx = x**2 = 9 if stopped, 27 if not
    jaxed = get_jaxified_graph(inputs=[x], outputs=[y])
    assert float(jax.grad(lambda a: jaxed(a)[0])(3.0)) == pytest.approx(9.0)
    assert float(jaxed(3.0)[0]) == pytest.approx(27.0)
    assert float(pytensor.function([x], pytensor.grad(y, x))(3.0)) == pytest.approx(9.0)


@pytest.mark.parametrize("name", ["dynamics_schedule", "dynamics"])
def test_the_jitted_graph_solve_is_the_numpy_solve(name):
    """Near the posterior, where NUTS evaluates it, the jitted solve of every checkpoint agrees
    with numpy's 60-iteration solve to rounding."""
    curves = (_cosine_table() if name == "dynamics_schedule" else
              synthetic_curves(PUBLISHED["kaplan2020_dynamics"], steps=np.geomspace(300, 1e5, 400),
                               noise=0.02, seed=3))
    law, spec = CURVE_LAWS[name], load_spec(name)
    model = build_curves.build_dynamics_model(spec, curves, precision="float64")
    start = start_points(spec, curves, model, 1, np.random.default_rng(1))[0]
    point = make_initial_point_fn(model=model, overrides=start, jitter_rvs=set())(0)
    x = [point[v.name] for v in model.value_vars]
    outs = model.replace_rvs_by_values([model[p] for p in law.params])
    nat = dict(zip(law.params, (np.asarray(v) for v in
                                get_jaxified_graph(inputs=model.value_vars, outputs=outs)(*x)),
                   strict=True))
    ops = build_curves.pytensor_solver_ops()
    ins = [pt.dvector(f"x{i}") for i in range(len(law.inputs))]
    cs = {p: pt.dscalar(p) for p in law.params}
    out = law.log_mean(*ins, **cs, xp=ops, iterations=build_curves.GRAPH_ITERATIONS,
                       log_start=pt.as_tensor(curves.log_loss))
    fn = jax.jit(get_jaxified_graph(inputs=ins + list(cs.values()), outputs=[out]))
    got = np.asarray(fn(*curves.law_inputs(law.inputs), *(nat[p] for p in law.params))[0])
    want = law.log_mean(*curves.law_inputs(law.inputs), **nat, log_start=curves.log_loss)
    assert np.abs(curves.log_loss - want).max() > 0.01   # noisy checkpoints: not a trivial start
    assert np.abs(got - want).max() < 1e-10


@pytest.mark.parametrize(("name", "family"), [("dynamics_schedule_fixed_b", "normal"),
                                               ("dynamics_schedule", "studentt")])
def test_float32_checkpoints_are_the_float64_density(name, family):
    curves = _cosine_table(curves=6, points=200)
    spec = load_spec(name).with_likelihood(family)
    m64, m32 = (build_curves.build_dynamics_model(spec, curves, precision=p)
                for p in ("float64", "float32"))
    assert (m64.bayes_scaling_precision, m32.bayes_scaling_precision) == ("float64", "float32")
    assert [v.name for v in m64.value_vars] == [v.name for v in m32.value_vars]
    start = start_points(spec, curves, m64, 1, np.random.default_rng(2))[0]
    base = make_initial_point_fn(model=m64, overrides=start, jitter_rvs=set())(0)
    f64, f32 = (jax.jit(jax.value_and_grad(get_jaxified_logp(m))) for m in (m64, m32))
    rng = np.random.default_rng(0)
    values = []
    for _ in range(4):
        z = [base[v.name] + rng.normal(0, 0.02, np.shape(base[v.name])) for v in m64.value_vars]
        (v64, g64), (v32, g32) = f64(z), f32(z)
        values.append((float(v64), float(v32)))
        g64, g32 = np.concatenate([np.ravel(g) for g in g64]), np.concatenate(
            [np.ravel(g) for g in g32])
        assert np.abs(g32 - g64).max() < 1e-4 * np.abs(g64).max()
    lp = np.array(values)
    assert np.all(np.isfinite(lp))
    # float32 rounding of a log loss (~1e-7) is 2.5e-5 of a 0.004 noise sd: per checkpoint
    # the densities may differ by ~1e-5, a dropped or wrong term moves them by ~1 or more
    assert np.abs(lp[:, 0] - lp[:, 1]).max() < 1e-4 * curves.n_points
    assert np.ptp(lp[:, 0]) > 1e2 * np.abs(lp[:, 0] - lp[:, 1]).max()


@pytest.mark.parametrize("name", ["dynamics_schedule", "dynamics_schedule_fixed_b"])
def test_a_float32_curve_graph_is_float32_per_checkpoint(name):
    """Every per-checkpoint array of a float32 curve graph is float32 but the likelihood's few
    float64 sums: a Python float that float32 cannot hold (the schedule law's 0.05) once made
    the whole solve float64 (523 of 570 per-checkpoint arrays, 4x the time per gradient)."""
    import re

    curves = _cosine_table(curves=6, points=200)
    for family in ("normal", "studentt"):
        model = build_curves.build_dynamics_model(load_spec(name).with_likelihood(family),
                                                  curves, precision="float32")
        logp = get_jaxified_logp(model)
        point = model.initial_point()
        x = [np.asarray(point[v.name]) for v in model.value_vars]
        text = jax.jit(lambda *a, f=logp: f(list(a))).lower(*x).as_text()
        n64, n32 = (len(re.findall(rf"tensor<{curves.n_points}x{t}>", text))
                    for t in ("f64", "f32"))
        assert n32 > 20 and n64 <= 10, (family, n64, n32)


def test_the_jitted_graph_solve_converges_from_far_starts():
    """Warm-up: constants anywhere in the prior, each checkpoint started from the loss of other
    constants. The graph's loop starts there (no choice of start) and still stops at the root."""
    rng = np.random.default_rng(2)
    m = 20_000
    bounds = {"log_n_c": (np.log(1e9), np.log(1e18)), "alpha_n": (0.013, 0.5),
              "log_s_c": (0.0, np.log(1e7)), "alpha_s": (0.15, 3.2),
              "log_b_star": (np.log(1e4), np.log(1e14)), "alpha_b": (0.06, 0.7)}
    theta = {k: rng.uniform(lo, hi, m) for k, (lo, hi) in bounds.items()}
    logs = [np.log(10 ** rng.uniform(lo, hi, m)) for lo, hi in ((5, 13), (0, 8), (2, 9))]
    law = CURVE_LAWS["dynamics"]
    start = law.log_mean(*logs, **{k: rng.permutation(v) for k, v in theta.items()})
    ins = [pt.dvector(f"x{i}") for i in range(3)]
    cs = {p: pt.dvector(p) for p in law.params}
    out = law.log_mean(*ins, **cs, xp=build_curves.pytensor_solver_ops(),
                       iterations=build_curves.GRAPH_ITERATIONS, log_start=pt.as_tensor(start))
    fn = jax.jit(get_jaxified_graph(inputs=ins + list(cs.values()), outputs=[out]))
    got = np.asarray(fn(*logs, *(theta[p] for p in law.params))[0])
    want = law.log_mean(*logs, **theta)
    assert np.median(np.abs(start - want)) > 0.1     # far starts
    assert np.abs(got - want).max() < 1e-8


def test_the_graph_solve_outside_jax_is_the_numpy_solve():
    """The Newton Op's own ``perform`` (PyTensor's C and Python backends, numba's object mode)
    runs the numpy iterations: the same root, in float64 and in float32."""
    law = CURVE_LAWS["dynamics"]
    curves = synthetic_curves(PUBLISHED["kaplan2020_dynamics"], steps=np.geomspace(300, 1e5, 50),
                              noise=0.02, seed=4)
    theta = {"log_n_c": np.log(8.8e13), "alpha_n": 0.076, "log_s_c": np.log(2.1e3),
             "alpha_s": 0.76, "log_b_star": np.log(2e8), "alpha_b": 0.21}
    want = law.log_mean(*curves.law_inputs(law.inputs), **theta, log_start=curves.log_loss)
    ops = build_curves.pytensor_solver_ops()
    for dtype, tol in (("float64", 1e-10), ("float32", 2e-5)):
        ins = [pt.vector(f"x{i}", dtype=dtype) for i in range(len(law.inputs))]
        with build_curves.float32_constants() if dtype == "float32" else nullcontext():
            out = law.log_mean(*ins, **{k: np.asarray(v, dtype) for k, v in theta.items()},
                               xp=ops, iterations=build_curves.GRAPH_ITERATIONS,
                               log_start=pt.as_tensor(curves.log_loss.astype(dtype)))
        assert any(isinstance(v.owner.op, build_curves.NewtonSolve)
                   for v in ancestors([out]) if v.owner is not None)
        fn = pytensor.function(ins, out, mode="FAST_COMPILE")
        got = fn(*(np.asarray(x, dtype) for x in curves.law_inputs(law.inputs)))
        assert got.dtype == dtype
        assert np.abs(curves.log_loss - want).max() > 0.01  # noisy: not a trivial start
        assert np.abs(got - want).max() < tol, dtype


def test_curve_precision_follows_the_checkpoint_count(monkeypatch):
    monkeypatch.delenv("BAYES_SCALING_PRECISION", raising=False)
    spec = load_spec("dynamics_schedule_fixed_b")
    small, large = _cosine_table(curves=3, points=100), _cosine_table(curves=30, points=400)
    assert small.n_points < 10_000 <= large.n_points
    assert build_curves.build_dynamics_model(spec, small).bayes_scaling_precision == "float64"
    big = build_curves.build_dynamics_model(spec, large)
    assert big.bayes_scaling_precision == "float32"
    assert sampling.init_mass(big) == "laplace"     # and NUTS runs whitened there
    assert sampling.init_mass(build_curves.build_dynamics_model(spec, small)) == "identity"
    monkeypatch.setenv("BAYES_SCALING_PRECISION", "float64")
    assert build_curves.build_dynamics_model(spec, large).bayes_scaling_precision == "float64"


def test_the_cli_passes_precision_to_a_curve_fit(monkeypatch, tmp_path, capsys):
    """``bayes-scaling fit CURVES --precision float32`` reaches ``fit_dynamics`` (captured; no
    sampling), and a bad value is a one-line error with exit 2."""
    import bayes_scaling.fitting.dynamics as dynamics
    from bayes_scaling.cli.app import main

    csv = tmp_path / "curves.csv"
    _cosine_table(curves=3, points=20).frame.to_csv(csv, index=False)
    seen = {}

    def fake(spec, curves, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(dynamics, "fit_dynamics", fake)
    argv = ["fit", str(csv), "--model", "dynamics_schedule_fixed_b", "--out",
            str(tmp_path / "f.nc"), "--quiet", "--lr-schedule", "cosine"]
    with pytest.raises(SystemExit):
        main([*argv, "--precision", "float32"])
    assert seen.get("precision") == "float32", capsys.readouterr().err
    assert main([*argv, "--precision", "float16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "float16" in err[0]
