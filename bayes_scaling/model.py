"""Turn a :class:`~bayes_scaling.spec.ModelSpec` and a run table into a PyMC model.

The only module that builds PyMC graphs. One builder serves every law and spec:

- inputs are centred (``x = log N - mean(log N)``, likewise ``log D``) and the law's log-scale
  constants are sampled on that centred scale, an exact shear that removes the ridge between
  ``log A`` and ``alpha`` (DESIGN.md: 3-5x faster sampling). The law's natural constants are
  recorded as deterministics named after the law's parameters;
- each varying constant is ``population + offset[group]`` with zero-sum offsets of scale
  ``tau`` (partial pooling). With one group there are no offsets: the degenerate case of the
  same model. Centred offsets are used when every group has many runs, non-centred otherwise;
- the likelihood is Normal or Student-t on log loss.

Posterior variable names: ``<param>`` (natural scale; dims ``group`` when varying),
``<param>_pop`` and ``<param>_tau`` for varying ones, ``sigma`` and ``nu``.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

with warnings.catch_warnings():  # PyTensor's note about pip-installed BLAS is not for users
    warnings.simplefilter("ignore", UserWarning)
    import pymc as pm
import pytensor.tensor as pt

from bayes_scaling.constants import GROUP, RUN
from bayes_scaling.laws import LAWS
from bayes_scaling.spec import CENTRED_MIN_RUNS, ModelSpec, Prior

if TYPE_CHECKING:
    from bayes_scaling.data import RunTable

PYTENSOR_OPS = SimpleNamespace(exp=pt.exp, log=pt.log, logaddexp=pt.logaddexp)


def input_centre(spec: ModelSpec, runs: RunTable) -> dict[str, float]:
    """Mean log input of the runs, the point the sampler's constants refer to."""
    values = {"n": runs.log_n, "d": runs.log_d}
    return {i: float(np.mean(values[i])) for i in LAWS[spec.law].inputs}


def use_centred(spec: ModelSpec, runs: RunTable) -> bool:
    """Centred offsets for data-rich groups, non-centred for sparse ones (Betancourt 2015)."""
    choice = spec.hierarchy.parameterization
    if choice != "auto":
        return choice == "centred"
    counts = np.bincount(runs.group_index, minlength=runs.n_groups)
    return bool(counts.min() >= CENTRED_MIN_RUNS)


def _prior(name: str, prior: Prior, **kw: Any) -> Any:
    return getattr(pm, prior.dist)(name, **prior.kwargs, **kw)


def _constant(p: str, spec: ModelSpec, runs: RunTable, centred: bool,
              tau_name: str | None = None) -> Any:
    """The centred-scale constant ``p`` as a per-run tensor (or a scalar when shared)."""
    prior = spec.priors[p]
    if p not in spec.hierarchy.varying or runs.n_groups == 1:
        return _prior(f"{p}_c", prior)
    pop = _prior(f"{p}_c_pop", prior)
    exponent = p in LAWS[spec.law].exponents
    tau = _prior(tau_name or (f"{p}_log_tau" if exponent else f"{p}_tau"), spec.hierarchy.tau)
    if centred:
        offset = pm.ZeroSumNormal(f"{p}_offset", sigma=tau, dims=GROUP)
    else:
        offset = tau * pm.ZeroSumNormal(f"{p}_z", sigma=1.0, dims=GROUP)
    if exponent:  # a varying exponent (models/chinchilla_slopes.toml) varies on the log scale,
        # so it stays positive; <p>_tau is its spread on the natural scale, as queries expect
        pm.Deterministic(f"{p}_tau", pop * tau)
        return pop, pop * pt.exp(offset)
    return pop, pop + offset


def build_model(spec: ModelSpec, runs: RunTable) -> pm.Model:
    """The PyMC model of ``spec`` for ``runs`` (coords ``group`` and ``run``)."""
    law = LAWS[spec.law]
    centre = input_centre(spec, runs)
    centred = use_centred(spec, runs)
    gi = runs.group_index
    logs = {"n": runs.log_n, "d": runs.log_d}
    with pm.Model(coords={GROUP: list(runs.group_names), RUN: list(runs.run_ids)}) as model:
        theta_c: dict[str, Any] = {}
        group_c: dict[str, Any] = {}
        pop_c: dict[str, Any] = {}
        for p in law.params:
            made = _constant(p, spec, runs, centred,
                             tau_name=f"{p}_scaled_tau" if p in law.scaled else None)
            if isinstance(made, tuple):
                pop_c[p], group_c[p] = made
                theta_c[p] = group_c[p][gi]
            else:
                theta_c[p] = made
        if law.scaled:
            _unscale(law, theta_c, group_c, pop_c)
        x = {i: pt.as_tensor(logs[i] - centre[i]) for i in law.inputs}
        mu = law.evaluate_log(x, theta_c, xp=PYTENSOR_OPS)
        _record_natural(law, centre, theta_c, group_c, pop_c)
        sigma = _prior("sigma", spec.likelihood.sigma)
        obs = runs.log_loss
        if spec.likelihood.family == "studentt":
            nu = _prior("nu", spec.likelihood.nu)
            pm.StudentT("log_loss", nu=nu, mu=mu, sigma=sigma, observed=obs, dims=RUN)
        else:
            pm.Normal("log_loss", mu=mu, sigma=sigma, observed=obs, dims=RUN)
    model.bayes_scaling_centre = centre  # type: ignore[attr-defined]
    return model


def _unscale(law, theta_c, group_c, pop_c) -> None:
    """Sampled ``s = k * p_c`` -> centred ``p_c`` in place (``Law.scaled``; Kaplan's laws).

    Priors, offsets and ``tau`` of a scaled constant live on the scale of ``s`` (log loss of
    the term at the ladder's centre); the natural-scale ``<p>_tau`` that queries read for an
    unseen group is recorded as ``tau_s / k``.
    """
    for p, k in law.scaled.items():
        theta_c[p] = theta_c[p] / theta_c[k]
        if p in group_c:
            group_c[p] = group_c[p] / group_c.get(k, theta_c[k])
            k_pop = pop_c.get(k, theta_c[k])
            pop_c[p] = pop_c[p] / k_pop
            pm.Deterministic(f"{p}_tau", pm.modelcontext(None)[f"{p}_scaled_tau"] / k_pop)


def _record_natural(law, centre, theta_c, group_c, pop_c) -> None:
    """Deterministics for the law's constants on the natural scale (what queries read)."""
    shared = {p: v for p, v in theta_c.items() if p not in group_c}
    per_group = {**shared, **group_c}
    per_pop = {**shared, **pop_c}
    nat_group = law.uncentre(per_group, centre)
    nat_pop = law.uncentre(per_pop, centre)
    for p in law.params:
        if p in group_c:
            pm.Deterministic(p, nat_group[p], dims=GROUP)
            pm.Deterministic(f"{p}_pop", nat_pop[p])
        else:
            pm.Deterministic(p, nat_group[p])


# -------------------------------------------------------------------------------- loss curves
def build_dynamics_model(spec: ModelSpec, curves: Any, *, curve_effects: bool = True) -> pm.Model:
    r"""The PyMC model of a curve law (:mod:`bayes_scaling.dynamics`) for a ``CurveTable``.

    Each constant is sampled on the centred scale of :func:`bayes_scaling.dynamics.uncentre`
    (the log of its term at the ladder's centre), with zero-sum group offsets when it varies.
    The log loss of every checkpoint is :math:`\log L(N, S, B)`, solved inside the graph by
    :func:`bayes_scaling.dynamics.solve_step_term`: its Newton/bisection iterations run with
    gradients stopped and one last Newton step carries them, which at the root is the exact
    implicit-function gradient. With ``curve_effects`` each curve gets an offset on log loss of
    sd ``sigma_curve``: integrated out exactly under a Normal likelihood, explicit (centred)
    under a Student-t one (:func:`_dynamics_likelihood`).

    Posterior variables: the law's natural constants (dims ``group`` when varying), their
    ``<p>_pop`` and natural-scale ``<p>_tau``, ``sigma``, ``nu``, ``sigma_curve``.
    """
    from pytensor.gradient import disconnected_grad

    from bayes_scaling import dynamics as dyn

    law = dyn.DYNAMICS_LAWS[spec.law]
    centre = dyn.input_centre(curves)
    gi = curves.group_index
    ops = SimpleNamespace(exp=pt.exp, log=pt.log, logaddexp=pt.logaddexp, where=pt.switch,
                          stop_gradient=disconnected_grad, done=lambda _h: False)
    coords = {GROUP: list(curves.group_names), dyn.CURVE: list(curves.curve_ids),
              dyn.OBS: np.arange(curves.n_points)}
    with pm.Model(coords=coords) as model:
        shared, group_c, pop_c, tau_c = {}, {}, {}, {}
        for p in law.params:
            if p in spec.hierarchy.varying and curves.n_groups > 1:
                pop_c[p], group_c[p], tau_c[p] = _dynamics_offsets(p, spec, curves)
            else:
                shared[p] = _prior(f"{p}_c", spec.priors[p])
        per_point = {**shared, **{p: v[gi] for p, v in group_c.items()}}
        logs = [pt.as_tensor(x) for x in (curves.log_n, curves.log_s, curves.log_b)]
        mu = law.log_mean(*logs, **dyn.uncentre(per_point, centre), xp=ops,
                          iterations=dyn.GRAPH_ITERATIONS, log_start=curves.log_loss)
        _record_dynamics(law, centre, shared, group_c, pop_c, tau_c)
        explicit = _dynamics_likelihood(spec, curves, mu, curve_effects)
    model.bayes_scaling_centre = centre  # type: ignore[attr-defined]
    # (log S_c, alpha_S) and (log B*, alpha_B) stay correlated (~0.97) on any fixed centring:
    # the step term is pinned at S_min, which depends on B_crit. A dense mass matrix (numpyro)
    # doubles the ESS per second on synthetic curves; past ~100 explicit curve offsets its
    # estimate is too noisy and a diagonal one is used
    dense = not explicit or curves.n_curves <= dyn.DENSE_MAX_CURVES
    model.bayes_scaling_dense_mass = dense  # type: ignore[attr-defined]
    return model


def _dynamics_likelihood(spec: ModelSpec, curves: Any, mu: Any, curve_effects: bool) -> bool:
    """Likelihood of the observed log losses; True when curve offsets are explicit variables.

    Normal: the curve offsets are integrated out exactly (:func:`_curve_marginal_logp`), so
    NUTS meets no funnel when ``sigma_curve`` is small. Student-t: explicit centred offsets.
    """
    from bayes_scaling.curves import CURVE, OBS
    from bayes_scaling.dynamics import CURVE_SD_PRIOR

    sigma = _prior("sigma", spec.likelihood.sigma)
    sd = _prior("sigma_curve", CURVE_SD_PRIOR) if curve_effects else None
    if sd is not None and spec.likelihood.family == "normal":
        pm.Potential("log_loss", _curve_marginal_logp(curves.log_loss - mu, curves, sigma, sd))
        return False
    if sd is not None:
        mu = mu + pm.Normal("curve_offset", 0.0, sd, dims=CURVE)[curves.curve_index]
    if spec.likelihood.family == "studentt":
        nu = _prior("nu", spec.likelihood.nu)
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


def _dynamics_offsets(p: str, spec: ModelSpec, curves: Any) -> tuple[Any, Any, Any]:
    """Population value, per-group values and spread of a varying centred constant."""
    pop = _prior(f"{p}_c_pop", spec.priors[p])
    tau = _prior(f"{p}_c_tau", spec.hierarchy.tau)
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
    from bayes_scaling.dynamics import OFFSET_SCALE, uncentre

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
