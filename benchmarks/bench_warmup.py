"""Where NUTS spends its leapfrog steps: warm-up vs sampling, and a Laplace start.

Issue 18's default Chinchilla fit (4 chains x 1000 warm-up + 1000 draws) is measured in
``bench_fit.py`` end to end. This script looks inside one chain of it with numpyro directly (PyMC's
jaxified log density of the shipped ``chinchilla`` model; dense mass matrix, target accept 0.9,
the same as ``bayes-scaling fit``): leapfrog steps per iteration in each block of 100 warm-up
iterations and in sampling, for three starts:

- ``default``: PyMC's initial point, identity mass matrix (what the product does today);
- ``mode``: the posterior mode found by L-BFGS (SciPy, on the same log density), identity mass;
- ``mode + Laplace``: the mode, and the inverse of the (eigenvalue-clipped) Hessian there as the
  initial inverse mass matrix;
- ``PyMC's start, Laplace mass matrix``: the default start (so chains still start dispersed,
  which r-hat needs to see separate modes) with the Laplace inverse mass matrix.

Data: the shipped Chinchilla runs, and a synthetic 2,450-run x 4-group ladder (``bench_scale.py``'s
generator). Writes ``benchmarks/results/warmup.md``. No timing is compared across machines: read
the step counts (they are what the wall time is proportional to at large data).

Run: ``BAYES_SCALING_DATA=../shared/data .venv/bin/python benchmarks/bench_warmup.py``
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_likelihood import RESULTS, synthetic  # noqa: E402

WARMUP = DRAWS = 1000


def one_chain(logp, init, inverse_mass, seed: int = 0) -> dict:
    import jax
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(potential_fn=logp, target_accept_prob=0.9, dense_mass=True,
                  inverse_mass_matrix=inverse_mass)
    mcmc = MCMC(kernel, num_warmup=WARMUP, num_samples=DRAWS, num_chains=1, progress_bar=False)
    start = time.process_time()
    mcmc.warmup(jax.random.PRNGKey(seed), init_params=init, extra_fields=("num_steps",),
                collect_warmup=True)
    warm = np.asarray(mcmc.get_extra_fields()["num_steps"])
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("num_steps",))
    draw = np.asarray(mcmc.get_extra_fields()["num_steps"])
    return {"warm": warm, "draw": draw, "cpu_s": time.process_time() - start}


def laplace(logp, x):
    """The mode by L-BFGS from ``x`` and the inverse of the clipped Hessian there."""
    import jax
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import minimize

    flat, unravel = ravel_pytree(x)
    pot = jax.jit(lambda z: logp(unravel(z)))
    grad = jax.jit(jax.value_and_grad(lambda z: logp(unravel(z))))
    res = minimize(lambda z: tuple(np.asarray(v, float) for v in grad(z)), np.asarray(flat),
                   jac=True, method="L-BFGS-B", options={"maxiter": 500})
    hess = np.asarray(jax.jit(jax.hessian(lambda z: logp(unravel(z))))(res.x))
    w, v = np.linalg.eigh(0.5 * (hess + hess.T))
    w = np.clip(w, 1e-3, None)
    return unravel(res.x), (v / w) @ v.T, float(pot(res.x)), int(res.nit)


def main() -> None:
    from bayes_scaling.data.registry import load_dataset
    from bayes_scaling.model import device
    from bayes_scaling.model.build import build_model
    from bayes_scaling.model.spec import load_spec

    device.setup_jax(4)
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_logp

    rows = []
    for label, runs in (("chinchilla (240 runs)", load_dataset("chinchilla")),
                        ("synthetic 2450 x 4", synthetic(2450, 4))):
        model = build_model(load_spec("chinchilla"), runs)
        logp = get_jaxified_logp(model, negative_logp=False)  # the potential (minus log p)
        ip = model.initial_point()
        x = [jnp.asarray(ip[v.name], dtype=jnp.float64) for v in model.value_vars]
        mode, inv_mass, _, nit = laplace(logp, x)
        for start, init, imm in (("default", x, None), ("mode", mode, None),
                                 ("mode + Laplace", mode, inv_mass),
                                 ("default + Laplace", x, inv_mass)):
            r = one_chain(logp, init, imm)
            rows.append((label, start, r, nit))
            print(label, start, r["warm"].mean(), r["draw"].mean(), flush=True)
    load = os.getloadavg()
    lines = ["## Where NUTS spends its steps: warm-up vs sampling (one chain, 1000 + 1000)", "",
             f"Load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; CPU "
             "seconds are for the one chain (read the step counts). Regenerate: "
             "`python benchmarks/bench_warmup.py`.", "",
             "| data | start | warm-up steps / iteration | by block of 100 warm-up iterations "
             "| sampling steps / draw | warm-up share of all steps | CPU s |",
             "|---|---|---|---|---|---|---|"]
    for label, start, r, nit in rows:
        blocks = ", ".join(str(int(r["warm"][i:i + 100].mean())) for i in range(0, WARMUP, 100))
        share = r["warm"].sum() / (r["warm"].sum() + r["draw"].sum())
        name = f"{start} (L-BFGS {nit} iterations)" if start != "default" else start
        name = name.replace("default + Laplace", "PyMC's start, Laplace mass matrix")
        lines.append(f"| {label} | {name} | {r['warm'].mean():.1f} | {blocks} | "
                     f"{r['draw'].mean():.1f} | {share:.0%} | {r['cpu_s']:.1f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "warmup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
