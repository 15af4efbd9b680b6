"""Turn a :class:`~bayes_scaling.model.spec.ModelSpec` and a run table into a PyMC model.

The only module that builds PyMC graphs. One builder serves every law and spec:

- inputs are centred (``x = log N - mean(log N)``, likewise ``log D``) and the law's log-scale
  constants are sampled on that centred scale, an exact shear that removes the ridge between
  ``log A`` and ``alpha`` (DESIGN.md: 3-5x faster sampling). The law's natural constants are
  recorded as deterministics named after the law's parameters;
- each varying constant is ``population + offset[group]`` with zero-sum offsets of scale
  ``tau`` (partial pooling). With one group there are no offsets: the degenerate case of the
  same model. Centred offsets are used when every group has many runs, non-centred otherwise;
- the likelihood is Normal or Student-t on log loss;
- from :data:`FLOAT32_MIN_OBS` runs on, the per-run arithmetic (the law, in its sum-of-terms
  form where it has one, and the likelihood's per-run terms) runs in float32 and is summed in
  float64 (``precision``): the constants, the sampler and every reader stay float64.

Posterior variable names: ``<param>`` (natural scale; dims ``group`` when varying),
``<param>_pop`` and ``<param>_tau`` for varying ones, ``sigma`` and ``nu``.
"""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace
from typing import Any

from bayes_scaling.model.centre import input_centre, use_centred

with warnings.catch_warnings():  # PyTensor's note about pip-installed BLAS is not for users
    warnings.simplefilter("ignore", UserWarning)
    import pymc as pm
import numpy as np
import pytensor
import pytensor.tensor as pt

from bayes_scaling.constants import GROUP, RUN
from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError
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


#: From this many runs on the per-run arithmetic runs in float32 (summed in float64). Measured
#: in ``benchmarks/results/likelihood.md``: at 24,500 runs a log-density gradient costs a
#: quarter to a third of the float64 one; the log densities agree to float32 rounding
#: (``tests/test_precision.py``, which also checks a float32 fit against a float64 one). The
#: same rows decide when chains run one after another (``sampling.PARALLEL_MAX_OBS``).
FLOAT32_MIN_OBS = 10_000
PRECISIONS = ("float64", "float32")


def row_precision(n_rows: int, precision: str | None = None) -> str:
    """``"float32"`` or ``"float64"``: ``precision`` if given, else ``BAYES_SCALING_PRECISION``,
    else float32 from :data:`FLOAT32_MIN_OBS` runs on."""
    chosen = precision or os.environ.get("BAYES_SCALING_PRECISION") or (
        "float32" if n_rows >= FLOAT32_MIN_OBS else "float64")
    if chosen not in PRECISIONS:
        raise BayesScalingError(f"precision must be one of {', '.join(PRECISIONS)}, "
                                f"got {chosen!r}")
    return chosen


def _logs(runs: RunTable) -> dict[str, Any]:
    return {"n": runs.log_n, "d": runs.log_d}


def _constants(law, spec: ModelSpec, runs: RunTable, centred: bool):
    """The law's centred constants: ``(shared, per_group, population)``, the shared ones as
    scalars, the varying ones as per-group vectors with their population values."""
    shared: dict[str, Any] = {}
    group_c: dict[str, Any] = {}
    pop_c: dict[str, Any] = {}
    for p in law.params:
        made = _constant(p, spec, runs, centred,
                         tau_name=f"{p}_scaled_tau" if p in law.scaled else None)
        if isinstance(made, tuple):
            pop_c[p], group_c[p] = made
        else:
            shared[p] = made
    return shared, group_c, pop_c


def build_model(spec: ModelSpec, runs: RunTable, precision: str | None = None) -> pm.Model:
    """The PyMC model of ``spec`` for ``runs`` (coords ``group`` and ``run``).

    ``precision`` (``"float64"`` or ``"float32"``) is that of the per-run arithmetic; by
    default :func:`row_precision`.
    """
    precision = row_precision(runs.n_runs, precision)
    if precision == "float32":
        return _build_float32(spec, runs)
    law, centre, gi, logs = LAWS[spec.law], input_centre(spec, runs), runs.group_index, _logs(runs)
    with pm.Model(coords={GROUP: list(runs.group_names), RUN: list(runs.run_ids)}) as model:
        theta_c, group_c, pop_c = _constants(law, spec, runs, use_centred(spec, runs))
        theta_c.update({p: v[gi] for p, v in group_c.items()})
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
    return _finish(model, centre, runs, "float64")


def _finish(model: pm.Model, centre: dict, runs: RunTable, precision: str) -> pm.Model:
    model.bayes_scaling_centre = centre  # type: ignore[attr-defined]
    model.bayes_scaling_precision = precision  # type: ignore[attr-defined]
    model.bayes_scaling_n_obs = runs.n_runs  # type: ignore[attr-defined]
    # A dense mass matrix (numpyro) for models of up to DENSE_MAX_DIM free dimensions: on the
    # Chinchilla runs it takes 27 leapfrog steps per draw against 116 with a diagonal one, with
    # 2.4x the bulk ESS (benchmarks/results/fit.md); beyond that its warm-up estimate is noisy.
    model.bayes_scaling_dense_mass = _free_dims(model) <= DENSE_MAX_DIM  # type: ignore[attr-defined]
    return model


DENSE_MAX_DIM = 40


def _build_float32(spec: ModelSpec, runs: RunTable) -> pm.Model:
    """:func:`build_model` with float32 per-run arithmetic: the same priors, constants and
    deterministics; the law evaluated once per run in float32 (its sum-of-terms form, with
    the coefficients exponentiated once per group, where the law has one), the likelihood a
    ``Potential`` of float32 per-run terms summed in float64 (queries never read the model's
    likelihood: ``evaluate.loo`` recomputes it from the draws)."""
    law, centre, gi, logs = LAWS[spec.law], input_centre(spec, runs), runs.group_index, _logs(runs)
    with pm.Model(coords={GROUP: list(runs.group_names), RUN: list(runs.run_ids)}) as model:
        theta_c, group_c, pop_c = _constants(law, spec, runs, use_centred(spec, runs))
        theta_c.update(group_c)
        if law.scaled:
            _unscale(law, theta_c, group_c, pop_c)
        rows: dict[str, Any] = {}
        for p in law.params:
            value = group_c.get(p, theta_c[p])
            name = p
            if law.terms is not None and p.startswith("log_"):
                value, name = pt.exp(value), p[4:]
            value = pt.cast(value, "float32")
            rows[name] = value[gi] if p in group_c else value
        x = [pt.as_tensor((logs[i] - centre[i]).astype("float32")) for i in law.inputs]
        with float32_constants():
            if law.terms is not None:
                mu = pt.log(law.terms(*x, **rows, xp=PYTENSOR_OPS))
            else:
                mu = law.log_mean(*x, **rows, xp=PYTENSOR_OPS)
        _record_natural(law, centre, theta_c, group_c, pop_c)
        likelihood_float32(spec, mu, runs.log_loss)
    return _finish(model, centre, runs, "float32")


def float32_constants() -> Any:
    """Context in which the Python floats of a law's body become float32 graph constants.

    PyTensor turns a Python float that float32 cannot hold exactly (``0.05``, ``1e-12``) into
    a float64 constant, which silently upcasts every float32 array it touches: the schedule
    law's floor fraction made its whole solve float64 (523 of the 570 per-checkpoint arrays of
    its JAX graph). Laws are written once for numpy and PyTensor, so the float32 graphs build
    them inside this context instead of casting each literal (tests/test_curve_graph.py counts
    the float64 per-checkpoint arrays: only the likelihood's sums are left).
    """
    return pytensor.config.change_flags(floatX="float32")


def likelihood_float32(spec: ModelSpec, mu: Any, log_loss: Any, sigma: Any = None) -> None:
    """The Normal or Student-t log density of ``log_loss`` around ``mu``: per-run terms in
    float32, their sum and the constants in float64 (``sigma``: the scale's variable, made
    here from the spec's prior unless given)."""
    n = len(log_loss)
    if sigma is None:
        sigma = prior_variable("sigma", spec.likelihood.sigma)
    z = (pt.as_tensor(log_loss.astype("float32")) - mu) / pt.cast(sigma, "float32")
    if spec.likelihood.family == "studentt":
        nu = prior_variable("nu", spec.likelihood.nu)
        per_run = pt.log1p(z * z / pt.cast(nu, "float32"))
        const = (pt.gammaln((nu + 1.0) / 2.0) - pt.gammaln(nu / 2.0)
                 - 0.5 * pt.log(nu * np.pi) - pt.log(sigma))
        logp = n * const - (nu + 1.0) / 2.0 * pt.sum(pt.cast(per_run, "float64"))
    else:
        logp = (-n * (pt.log(sigma) + 0.5 * np.log(2.0 * np.pi))
                - 0.5 * pt.sum(pt.cast(z * z, "float64")))
    pm.Potential("log_loss", logp)


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


