"""Turn a :class:`~bayes_scaling.model.spec.ModelSpec` and a run table into a PyMC model.

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
from typing import Any

from bayes_scaling.model.centre import input_centre, use_centred

with warnings.catch_warnings():  # PyTensor's note about pip-installed BLAS is not for users
    warnings.simplefilter("ignore", UserWarning)
    import pymc as pm
import pytensor.tensor as pt

from bayes_scaling.constants import GROUP, RUN
from bayes_scaling.data.runs import RunTable
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.spec import ModelSpec, Prior

PYTENSOR_OPS = SimpleNamespace(exp=pt.exp, log=pt.log, logaddexp=pt.logaddexp)


def prior_variable(name: str, prior: Prior, **kw: Any) -> Any:
    return getattr(pm, prior.dist)(name, **prior.kwargs, **kw)


def _constant(p: str, spec: ModelSpec, runs: RunTable, centred: bool,
              tau_name: str | None = None) -> Any:
    """The centred-scale constant ``p`` as a per-run tensor (or a scalar when shared)."""
    prior = spec.priors[p]
    if p not in spec.hierarchy.varying or runs.n_groups == 1:
        return prior_variable(f"{p}_c", prior)
    pop = prior_variable(f"{p}_c_pop", prior)
    exponent = p in LAWS[spec.law].exponents
    tau = prior_variable(tau_name or (f"{p}_log_tau" if exponent else f"{p}_tau"),
                         spec.hierarchy.tau)
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
        sigma = prior_variable("sigma", spec.likelihood.sigma)
        obs = runs.log_loss
        if spec.likelihood.family == "studentt":
            nu = prior_variable("nu", spec.likelihood.nu)
            pm.StudentT("log_loss", nu=nu, mu=mu, sigma=sigma, observed=obs, dims=RUN)
        else:
            pm.Normal("log_loss", mu=mu, sigma=sigma, observed=obs, dims=RUN)
    model.bayes_scaling_centre = centre  # type: ignore[attr-defined]
    # A dense mass matrix (numpyro) for models of up to DENSE_MAX_DIM free dimensions: on the
    # Chinchilla runs it takes 27 leapfrog steps per draw against 116 with a diagonal one, with
    # 2.4x the bulk ESS (benchmarks/results/fit.md); beyond that its warm-up estimate is noisy.
    model.bayes_scaling_dense_mass = _free_dims(model) <= DENSE_MAX_DIM  # type: ignore[attr-defined]
    return model


DENSE_MAX_DIM = 40


def _free_dims(model: pm.Model) -> int:
    """Number of scalar dimensions NUTS samples (the model's free random variables)."""
    return int(sum(v.size for v in model.initial_point().values()))


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


