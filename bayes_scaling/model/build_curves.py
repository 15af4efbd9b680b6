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
from pytensor.gradient import disconnected_grad

from bayes_scaling.constants import GROUP
from bayes_scaling.data.curves import CURVE, OBS
from bayes_scaling.laws.curve import GRAPH_ITERATIONS, OFFSET_SCALE, uncentre
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.build import prior_variable
from bayes_scaling.model.centre import curve_centre
from bayes_scaling.model.spec import CENTRED_MIN_RUNS, ModelSpec, Prior


def build_dynamics_model(spec: ModelSpec, curves: Any, *, curve_effects: bool = True) -> pm.Model:
    r"""The PyMC model of a curve law (:mod:`bayes_scaling.laws.curve`) for a ``CurveTable``.

    Each constant is sampled on the centred scale of :func:`bayes_scaling.laws.curve.uncentre`
    (the log of its term at the ladder's centre), with zero-sum group offsets when it varies.
    The log loss of every checkpoint is :math:`\log L(N, S, B)`, solved inside the graph by
    :func:`bayes_scaling.laws.curve.solve_step_term`: its Newton/bisection iterations run with
    gradients stopped and one last Newton step carries them, which at the root is the exact
    implicit-function gradient. With ``curve_effects`` each curve gets an offset on log loss of
    sd ``sigma_curve``: integrated out exactly under a Normal likelihood, explicit (centred)
    under a Student-t one (:func:`_dynamics_likelihood`).

    Posterior variables: the law's natural constants (dims ``group`` when varying), their
    ``<p>_pop`` and natural-scale ``<p>_tau``, ``sigma``, ``nu``, ``sigma_curve``.
    """
    law = CURVE_LAWS[spec.law]
    centre = curve_centre(curves)
    gi = curves.group_index
    ops = SimpleNamespace(exp=pt.exp, log=pt.log, logaddexp=pt.logaddexp, where=pt.switch,
                          stop_gradient=disconnected_grad, done=lambda _h: False)
    coords = {GROUP: list(curves.group_names), CURVE: list(curves.curve_ids),
              OBS: np.arange(curves.n_points)}
    with pm.Model(coords=coords) as model:
        shared, group_c, pop_c, tau_c = {}, {}, {}, {}
        for p in law.params:
            if p in spec.hierarchy.varying and curves.n_groups > 1:
                pop_c[p], group_c[p], tau_c[p] = _dynamics_offsets(p, spec, curves)
            else:
                shared[p] = prior_variable(f"{p}_c", spec.priors[p])
        per_point = {**shared, **{p: v[gi] for p, v in group_c.items()}}
        logs = [pt.as_tensor(x) for x in curves.law_inputs(law.inputs)]
        mu = law.log_mean(*logs, **uncentre(per_point, centre), xp=ops,
                          iterations=GRAPH_ITERATIONS, log_start=curves.log_loss)
        _record_dynamics(law, centre, shared, group_c, pop_c, tau_c)
        explicit = _dynamics_likelihood(spec, curves, mu, curve_effects)
    model.bayes_scaling_centre = centre  # type: ignore[attr-defined]
    # (log S_c, alpha_S) and (log B*, alpha_B) stay correlated (~0.97) on any fixed centring:
    # the step term is pinned at S_min, which depends on B_crit. A dense mass matrix (numpyro)
    # doubles the ESS per second on synthetic curves; past ~100 explicit curve offsets its
    # estimate is too noisy and a diagonal one is used
    dense = not explicit or curves.n_curves <= DENSE_MAX_CURVES
    model.bayes_scaling_dense_mass = dense  # type: ignore[attr-defined]
    return model


def _dynamics_likelihood(spec: ModelSpec, curves: Any, mu: Any, curve_effects: bool) -> bool:
    """Likelihood of the observed log losses; True when curve offsets are explicit variables.

    Normal: the curve offsets are integrated out exactly (:func:`_curve_marginal_logp`), so
    NUTS meets no funnel when ``sigma_curve`` is small. Student-t: explicit centred offsets.
    """
    sigma = prior_variable("sigma", spec.likelihood.sigma)
    sd = prior_variable("sigma_curve", CURVE_SD_PRIOR) if curve_effects else None
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


#: Up to this many curve offsets the sampler adapts a dense mass matrix (``model.py``).
DENSE_MAX_CURVES = 100


