r"""The PyMC graph of a curve law :math:`L(N, S, B)` (:mod:`bayes_scaling.laws.curve`).

The only graph builder for loss curves, beside :mod:`bayes_scaling.model.build` for final-loss
laws: centred constants, zero-sum group offsets, whole-curve offsets integrated out.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from bayes_scaling.constants import GROUP
from bayes_scaling.data.curves import CURVE, OBS
from bayes_scaling.laws.curve import (
    GRAPH_ITERATIONS,
    NUMPY_SOLVER_OPS,
    OFFSET_SCALE,
    converged_tolerance,
    newton_iterations,
    newton_update,
    step_residual,
    uncentre,
)
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.build import (
    float32_constants,
    likelihood_float32,
    prior_variable,
    row_precision,
)
from bayes_scaling.model.centre import (
    KAPPA_PRIOR,
    curve_centre,
    run_length_covariate,
    transform_inputs,
)
from bayes_scaling.model.spec import CENTRED_MIN_RUNS, ModelSpec, Prior


def build_dynamics_model(spec: ModelSpec, curves: Any, *, curve_effects: bool = True,
                         precision: str | None = None) -> pm.Model:
    r"""The PyMC model of a curve law (:mod:`bayes_scaling.laws.curve`) for a ``CurveTable``.

    Each constant is sampled on the centred scale of :func:`bayes_scaling.laws.curve.uncentre`
    (the log of its term at the ladder's centre), with zero-sum group offsets when it varies.
    The log loss of every checkpoint is :math:`\log L(N, S, B)`, solved inside the graph by
    :func:`bayes_scaling.laws.curve.solve_step_term`: its Newton/bisection iterations run with
    gradients stopped and one last Newton step carries them, which at the root is the exact
    implicit-function gradient. With ``curve_effects`` each curve gets an offset on log loss of
    sd ``sigma_curve``: integrated out exactly under a Normal likelihood, explicit (centred)
    under a Student-t one (:func:`_dynamics_likelihood`).

    ``precision`` (default :func:`bayes_scaling.model.build.row_precision`: float32 from
    10,000 checkpoints on) is that of the per-checkpoint arithmetic: in float32 the law (and
    its solve) runs on float32 inputs and constants, the residuals and every sum stay float64.

    With ``curve_offsets = "run_length"`` in the spec, each curve's offset has mean
    ``run_length_slope`` times its centred log schedule length
    (:func:`bayes_scaling.model.centre.run_length_covariate`; the centre is kept as
    ``model.bayes_scaling_run_length_centre``), so that a run-length effect the law lacks is
    carried by one slope, not by offsets that a new curve draws around 0.

    Posterior variables: the law's natural constants (dims ``group`` when varying), their
    ``<p>_pop`` and natural-scale ``<p>_tau``, ``sigma``, ``nu``, ``sigma_curve``,
    ``run_length_slope``.
    """
    law = CURVE_LAWS[spec.law]
    precision = row_precision(curves.n_points, precision)
    centre = curve_centre(curves)
    gi = curves.group_index
    ops = pytensor_solver_ops()
    coords = {GROUP: list(curves.group_names), CURVE: list(curves.curve_ids),
              OBS: np.arange(curves.n_points)}
    with pm.Model(coords=coords) as model:
        shared, group_c, pop_c, tau_c = {}, {}, {}, {}
        for p in law.params:
            if p in spec.hierarchy.varying and curves.n_groups > 1:
                pop_c[p], group_c[p], tau_c[p] = _dynamics_offsets(p, spec, curves)
            else:
                shared[p] = prior_variable(f"{p}_c", spec.priors[p])
        term = spec.likelihood.run_length_term
        x, rl_centre = run_length_covariate(curves)
        kappa = prior_variable("run_length_kappa", KAPPA_PRIOR) if term != "none" else 0.0
        if term != "none" or (curve_effects and spec.likelihood.curve_offsets == "run_length"):
            model.bayes_scaling_run_length_centre = rl_centre
        if precision == "float32":
            mu = _log_mean_float32(law, curves, uncentre({**shared, **group_c}, centre), ops,
                                   (term, kappa, x[curves.curve_index]))
        else:
            per_point = {**shared, **{p: v[gi] for p, v in group_c.items()}}
            logs = transform_inputs(law.inputs, [pt.as_tensor(v) for v in
                                                 curves.law_inputs(law.inputs)],
                                    term, kappa, x[curves.curve_index], xp=pt)
            mu = law.log_mean(*logs, **uncentre(per_point, centre), xp=ops,
                              iterations=GRAPH_ITERATIONS, log_start=curves.log_loss)
        _record_dynamics(law, centre, shared, group_c, pop_c, tau_c)
        if curve_effects and spec.likelihood.curve_offsets == "run_length":
            slope = prior_variable("run_length_slope", RUN_LENGTH_SLOPE_PRIOR)
            mu = mu + slope * x[curves.curve_index]
        explicit = _dynamics_likelihood(spec, curves, mu, curve_effects, precision)
    model.bayes_scaling_centre = centre  # type: ignore[attr-defined]
    model.bayes_scaling_precision = precision  # type: ignore[attr-defined]
    model.bayes_scaling_n_obs = curves.n_points  # type: ignore[attr-defined]
    model.bayes_scaling_curves = True  # type: ignore[attr-defined]  # sampling's size rules
    # (log S_c, alpha_S) and (log B*, alpha_B) stay correlated (~0.97) on any fixed centring:
    # the step term is pinned at S_min, which depends on B_crit. A dense mass matrix (numpyro)
    # doubles the ESS per second on synthetic curves; past ~100 explicit curve offsets its
    # estimate is too noisy and a diagonal one is used
    dense = not explicit or curves.n_curves <= DENSE_MAX_CURVES
    model.bayes_scaling_dense_mass = dense  # type: ignore[attr-defined]
    return model


def pytensor_solver_ops() -> SimpleNamespace:
    """The array operations of :func:`bayes_scaling.laws.curve.solve_step_term` on PyTensor:
    its iterations are one :class:`NewtonSolve` Op (no gradient; in JAX a loop that stops
    once every point has converged) and :data:`stop_gradient`."""
    _register_ops()
    return SimpleNamespace(exp=pt.exp, log=pt.log, log1p=pt.log1p, logaddexp=pt.logaddexp,
                           where=pt.switch, stop_gradient=stop_gradient,
                           done=lambda _h: False, iterate=_graph_iterate)


def _log_mean_float32(law: Any, curves: Any, natural: dict[str, Any], ops: Any,
                      run_length: tuple = ("none", 0.0, 0.0)) -> Any:
    """The law's log loss at every checkpoint in float32 (returned as float64): the natural
    constants (scalars, or per-group vectors picked per checkpoint) cast once, the inputs and
    the solve's start points float32; ``run_length`` = (term, kappa, x per checkpoint) of
    :func:`~bayes_scaling.model.centre.transform_inputs`."""
    gi = curves.group_index
    rows = {p: pt.cast(v[gi] if v.ndim else v, "float32") for p, v in natural.items()
            if p in law.params}
    term, kappa, x = run_length
    logs = [pt.as_tensor(np.asarray(v, dtype="float32"))
            for v in curves.law_inputs(law.inputs)]
    if term != "none":
        logs = list(transform_inputs(law.inputs, logs, term, pt.cast(kappa, "float32"),
                                     np.asarray(x, dtype="float32"), xp=pt))
    with float32_constants():
        mu = law.log_mean(*logs, **rows, xp=ops, iterations=GRAPH_ITERATIONS,
                          log_start=pt.as_tensor(curves.log_loss.astype("float32")))
    return pt.cast(mu, "float64")


def _dynamics_likelihood(spec: ModelSpec, curves: Any, mu: Any, curve_effects: bool,
                         precision: str = "float64") -> bool:
    """Likelihood of the observed log losses; True when curve offsets are explicit variables.

    Normal: the curve offsets are integrated out exactly (:func:`_curve_marginal_logp`), so
    NUTS meets no funnel when ``sigma_curve`` is small. Student-t: explicit centred offsets
    (in float32, per-checkpoint terms in float32 summed in float64:
    :func:`bayes_scaling.model.build.likelihood_float32`).
    """
    sigma = prior_variable("sigma", spec.likelihood.sigma)
    sd = prior_variable("sigma_curve", CURVE_SD_PRIOR) if curve_effects else None
    if (precision == "float32" and spec.likelihood.residual != "ou"
            and (spec.likelihood.family == "studentt" or sd is None)):
        if sd is not None:
            mu = mu + pm.Normal("curve_offset", 0.0, sd, dims=CURVE)[curves.curve_index]
        likelihood_float32(spec, pt.cast(mu, "float32"), curves.log_loss, sigma)
        return sd is not None
    if spec.likelihood.residual == "ou":
        length = prior_variable("residual_length", spec.likelihood.residual_length)
        pm.Potential("log_loss", ou_marginal_logp(curves.log_loss - mu, ou_layout(curves),
                                                  sigma, length, sd, xp=pt))
        return False
    if sd is not None and spec.likelihood.family == "normal":
        pm.Potential("log_loss", _curve_marginal_logp(curves.log_loss - mu, curves, sigma, sd))
        return False
    if sd is not None:
        mu = mu + pm.Normal("curve_offset", 0.0, sd, dims=CURVE)[curves.curve_index]
    if spec.likelihood.family == "studentt":
        nu = prior_variable("nu", spec.likelihood.nu)
        pm.StudentT("log_loss", nu=nu, mu=mu, sigma=sigma, observed=curves.log_loss, dims=OBS)
    else:
        pm.Normal("log_loss", mu=mu, sigma=sigma, observed=curves.log_loss, dims=OBS)
    return sd is not None


def _curve_marginal_logp(resid: Any, curves: Any, sigma: Any, sd: Any) -> Any:
    r"""Normal log likelihood of the residuals with each curve's offset integrated out.

    A curve's ``n`` residuals are :math:`\mathcal{N}(0, \sigma^2 I + \sigma_c^2 11^T)`; with
    :math:`v = \sigma^2 + n \sigma_c^2`, its log density is
    :math:`-\tfrac12[n\log 2\pi + (n-1)\log\sigma^2 + \log v
    + (\sum r^2 - \sigma_c^2 (\sum r)^2 / v)/\sigma^2]`.
    """
    idx = curves.curve_index
    n = np.bincount(idx, minlength=curves.n_curves).astype(float)
    zeros = pt.zeros(len(n))
    s1 = pt.inc_subtensor(zeros[idx], resid)
    s2 = pt.inc_subtensor(zeros[idx], resid**2)
    var, v = sigma**2, sigma**2 + n * sd**2
    per_curve = -0.5 * (n * np.log(2 * np.pi) + (n - 1) * pt.log(var) + pt.log(v)
                        + (s2 - sd**2 * s1**2 / v) / var)
    return per_curve.sum()


#: Smallest gap in log steps between two checkpoints of a curve in the OU likelihood (two rows
#: at one step would make the correlation 1 and the density singular).
MIN_LOG_GAP = 1e-3


#: The "gap" before a curve's first checkpoint: finite (an inf would make the gradient NaN) and
#: so large that its correlation ``exp(-gap/length)`` is exactly 0 for any sane length.
FIRST_GAP = 1e6


def ou_layout(curves: Any) -> SimpleNamespace:
    """The data side of :func:`ou_marginal_logp`: checkpoints ordered by (curve, step).

    ``order`` sorts the table's points by curve then step; ``curve`` is each sorted point's
    curve, ``gap`` its distance in log steps from the previous checkpoint of its curve
    (:data:`FIRST_GAP` at a curve's first checkpoint: no correlation), ``n_curves`` the number
    of curves.
    """
    idx, log_s = np.asarray(curves.curve_index), np.log(np.asarray(curves.s, dtype=float))
    order = np.lexsort((log_s, idx))
    ci, ls = idx[order], log_s[order]
    first = np.r_[True, ci[1:] != ci[:-1]]
    gap = np.where(first, FIRST_GAP, np.maximum(np.r_[FIRST_GAP, np.diff(ls)], MIN_LOG_GAP))
    return SimpleNamespace(order=order, curve=ci, gap=gap, n_curves=int(curves.n_curves))


def ou_marginal_logp(resid: Any, layout: SimpleNamespace, sigma: Any, length: Any, sd: Any,
                     *, xp: Any = np) -> Any:
    r"""Exact Normal log density of residuals that follow an OU process along each curve, with
    each curve's offset (sd ``sd``; ``None``: no offsets) integrated out.

    Along a curve ordered by step, ``e_i = phi_i e_{i-1} + sigma sqrt(1 - phi_i^2) z_i`` with
    :math:`\phi_i = \exp(-\Delta_i/\ell)`, :math:`\Delta_i` the gap in log steps: an
    Ornstein-Uhlenbeck process in log steps of stationary sd ``sigma`` (AR(1) for unevenly
    spaced checkpoints; ``phi = 0`` is iid noise). Its precision is tridiagonal, so the
    whitened residuals :math:`u_i = (r_i - \phi_i r_{i-1})/(\sigma\sqrt{1-\phi_i^2})` and
    whitened ones :math:`w_i = \sqrt{(1-\phi_i)/(1+\phi_i)}/\sigma` give, per curve, with
    :math:`a = \sum w^2`, :math:`b = \sum w u` and :math:`\Sigma = K + \sigma_c^2 11^T`
    (matrix determinant lemma and Sherman-Morrison):
    :math:`\log|\Sigma| = 2n\log\sigma + \sum\log(1-\phi_i^2) + \log(1 + \sigma_c^2 a)`,
    :math:`r^T\Sigma^{-1}r = \sum u^2 - \sigma_c^2 b^2/(1 + \sigma_c^2 a)`. With
    ``phi = 0`` it is :func:`_curve_marginal_logp`. Vectorised over points (segment sums by
    curve); ``xp`` is numpy or ``pytensor.tensor``.
    """
    r = resid[layout.order]
    prev = xp.concatenate([r[:1] * 0.0, r[:-1]])
    x = layout.gap / length                      # huge at a curve's first point: phi = 0
    phi = xp.exp(-x)
    one_m_phi2 = -xp.expm1(-2.0 * x)             # 1 - phi^2, accurate for small gaps
    u = (r - phi * prev) / (sigma * xp.sqrt(one_m_phi2))
    w = xp.sqrt(-xp.expm1(-x) / (1.0 + phi)) / sigma
    n = np.bincount(layout.curve, minlength=layout.n_curves).astype(float)
    logdet = 2.0 * n.sum() * xp.log(sigma) + xp.log(one_m_phi2).sum()
    quad = (u**2).sum()
    if sd is not None:
        a, b = _segment_sum(w**2, layout, xp), _segment_sum(w * u, layout, xp)
        q = 1.0 + sd**2 * a
        logdet = logdet + xp.log(q).sum()
        quad = quad - (sd**2 * b**2 / q).sum()
    return -0.5 * (n.sum() * np.log(2 * np.pi) + logdet + quad)


def _segment_sum(values: Any, layout: SimpleNamespace, xp: Any) -> Any:
    """Per-curve sums of per-point values (points in ``layout`` order)."""
    if xp is np:
        return np.bincount(layout.curve, weights=values, minlength=layout.n_curves)
    return pt.inc_subtensor(pt.zeros(layout.n_curves)[layout.curve], values)


def _dynamics_offsets(p: str, spec: ModelSpec, curves: Any) -> tuple[Any, Any, Any]:
    """Population value, per-group values and spread of a varying centred constant."""
    pop = prior_variable(f"{p}_c_pop", spec.priors[p])
    tau = prior_variable(f"{p}_c_tau", spec.hierarchy.tau)
    counts = np.bincount(curves.group_index, minlength=curves.n_groups)
    choice = spec.hierarchy.parameterization
    centred = choice == "centred" or (choice == "auto" and counts.min() >= CENTRED_MIN_RUNS)
    if centred:
        offset = pm.ZeroSumNormal(f"{p}_offset", sigma=tau, dims=GROUP)
    else:
        offset = tau * pm.ZeroSumNormal(f"{p}_z", sigma=1.0, dims=GROUP)
    return pop, pop + offset, tau


def _record_dynamics(law, centre, shared, group_c, pop_c, tau_c) -> None:
    """Natural-scale constants per group and population, and ``<p>_tau`` on that scale."""
    nat_group = uncentre({**shared, **group_c}, centre)
    nat_pop = uncentre({**shared, **pop_c}, centre)
    for p in law.params:
        if p in group_c:
            pm.Deterministic(p, nat_group[p], dims=GROUP)
            pm.Deterministic(f"{p}_pop", nat_pop[p])
            k = OFFSET_SCALE.get(p)
            pm.Deterministic(f"{p}_tau", tau_c[p] / ({**shared, **pop_c}[k] if k else 1.0))
        else:
            pm.Deterministic(p, nat_group[p])


#: Prior of ``sigma_curve``, the curve-to-curve sd of log loss (a run's whole curve sits above
#: or below the law: seed, learning rate, schedule), used when a fit has curve effects.
CURVE_SD_PRIOR = Prior("HalfNormal", {"sigma": 0.03})


#: Prior of ``run_length_slope`` (``curve_offsets = "run_length"``): the change of a curve's
#: offset on log loss per unit of log schedule length. Weak: (Mis)Fitting's offsets moved by
#: 0.023 per unit (benchmarks/results/schedule_offsets.md, session 10).
RUN_LENGTH_SLOPE_PRIOR = Prior("Normal", {"mu": 0.0, "sigma": 0.1})


#: Up to this many curve offsets the sampler adapts a dense mass matrix (``model.py``).
DENSE_MAX_CURVES = 100


class StopGradient(Op):
    """The identity, with no gradient: the solve's iterations are constants to every autodiff.

    PyTensor's own ``disconnected_grad`` is a view that its rewrites remove before a graph is
    translated to JAX, so JAX's autodiff (numpyro's gradient) went back through every Newton
    iteration of the solve (measured: 29 ms per gradient at 18,040 checkpoints). This Op
    survives the rewrites; its JAX form is ``jax.lax.stop_gradient`` and its numba form the
    identity (:func:`_register_ops`), and PyTensor's gradient sees it disconnected.
    """

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.array(inputs[0], copy=True)

    def infer_shape(self, fgraph, node, shapes):
        return shapes

    def grad(self, inputs, output_grads):
        return [disconnected_type()]

    def connection_pattern(self, node):
        return [[False]]

    def R_op(self, inputs, eval_points):
        return [None]


stop_gradient = StopGradient()


class NewtonSolve(Op):
    """The iterations of :func:`bayes_scaling.laws.curve.solve_step_term` as one Op, with no
    gradient (the solve's last Newton step, outside it, carries the implicit gradient).

    Inputs ``(v, lo, hi, floor, a, c, alpha_s, alpha_b)`` as in
    :func:`bayes_scaling.laws.curve.newton_iterations`; output ``v`` after at most
    ``iterations`` steps, stopping once every point's ``|h|`` is below
    :func:`~bayes_scaling.laws.curve.converged_tolerance`. In JAX this is a
    ``jax.lax.while_loop``: near the posterior, started from the observed losses, it stops
    after 2-3 steps instead of running a fixed count; elsewhere (numba: object mode; the C
    backend) :meth:`perform` runs the numpy loop. Same iterations, same stopping rule.
    """

    __props__ = ("iterations",)

    def __init__(self, iterations: int):
        self.iterations = int(iterations)

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        return Apply(self, inputs, [inputs[0].type()])

    def perform(self, node, inputs, outputs):
        v, lo, hi, floor, a, c, alpha_s, alpha_b = inputs
        out = newton_iterations(v, lo, hi, floor, a, c, alpha_s, alpha_b, xp=NUMPY_SOLVER_OPS,
                                iterations=self.iterations)
        outputs[0][0] = np.array(np.broadcast_to(out, v.shape), dtype=v.dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, output_grads):
        return [disconnected_type() for _ in inputs]

    def connection_pattern(self, node):
        return [[False] for _ in node.inputs]

    def R_op(self, inputs, eval_points):
        return [None]


def _graph_iterate(v, lo, hi, floor, a, c, alpha_s, alpha_b, *, iterations: int):
    return NewtonSolve(iterations)(v, lo, hi, floor, a, c, alpha_s, alpha_b)


def _jax_newton_solve(op: NewtonSolve, **kw):
    """JAX form of :class:`NewtonSolve`: a while loop that stops once every point converged."""
    import jax  # lazy: only the JAX translation of a curve graph needs it
    import jax.numpy as jnp  # lazy: with jax

    ops = SimpleNamespace(exp=jnp.exp, log=jnp.log, log1p=jnp.log1p, where=jnp.where)

    def solve(v, lo, hi, floor, a, c, alpha_s, alpha_b):
        tol = converged_tolerance(v.dtype)

        def residual(x):
            h, slope = step_residual(x, floor, a, c, alpha_s, alpha_b, ops)
            return jnp.broadcast_to(h, v.shape), jnp.broadcast_to(slope, v.shape)

        def more(state):
            return (state[0] < op.iterations) & jnp.any(jnp.abs(state[4]) >= tol)

        def step(state):
            k, x, low, high, h, slope, h_before = state
            x, low, high = newton_update(x, low, high, h, slope, h_before, ops)
            return (k + 1, x, low, high, *residual(x), h)

        state = (0, v, jnp.broadcast_to(lo, v.shape), jnp.broadcast_to(hi, v.shape),
                 *residual(v), jnp.full_like(v, 1e30))
        return jax.lax.while_loop(more, step, state)[1]

    return solve


_REGISTERED: list[bool] = []


def _register_ops() -> None:
    """Give :class:`StopGradient` its JAX and numba forms and :class:`NewtonSolve` its JAX
    one (numba runs its ``perform``), once per process (both backends are optional)."""
    if _REGISTERED:
        return
    _REGISTERED.append(True)
    try:
        import jax  # lazy: JAX starts XLA; only the JAX translation of a curve graph needs it
        from pytensor.link.jax.dispatch import jax_funcify  # lazy: loads JAX

        jax_funcify.register(StopGradient)(lambda op, **kw: jax.lax.stop_gradient)
        jax_funcify.register(NewtonSolve)(_jax_newton_solve)
    except ImportError:
        pass
    try:
        from pytensor.link.numba.dispatch import numba_funcify  # lazy: loads numba (nutpie)
        from pytensor.link.numba.dispatch.basic import numba_njit  # lazy: with numba

        @numba_funcify.register(StopGradient)
        def _numba_identity(op, node=None, **kw):
            @numba_njit
            def identity(x):
                return x

            return identity
    except ImportError:
        pass
