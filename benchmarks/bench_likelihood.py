"""Cost of one log-density + gradient evaluation at scale: PyMC's graph vs hand-written JAX.

The synthetic 24,500-run Chinchilla ladder of ``bench_scale.py`` (4 or 64 groups); PyMC's
jaxified log density of the shipped ``chinchilla`` model (what numpyro's NUTS calls at every
leapfrog step) against the same Student-t likelihood written directly in JAX, with the group
constants taken by gather (the gradient is a scatter-add) or by a one-hot matrix product, and the
gather form again in float32; and the product's own graph with float32 per-run arithmetic (what
``model.build`` builds from ``FLOAT32_MIN_OBS`` runs on: the law's sum of terms and the
likelihood's per-run terms in float32, summed in float64). The last columns turns the cost into a
floor: the CPU seconds that 4 chains x 2000 iterations x ``STEPS`` leapfrog steps need for the
gradients alone, against the 240 CPU-s that issue 18's 120 s on 2 cores allow.
CPU seconds per call (``time.process_time``, best of 5 x 100 calls), all in one process so the
ratios share the machine's load. Writes ``benchmarks/results/likelihood.md``.

Run: ``python benchmarks/bench_likelihood.py``
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: Leapfrog steps per draw of the default (dense) Chinchilla fit (benchmarks/results/fit.md).
STEPS = 27


def synthetic(n_runs: int, n_groups: int):
    from bayes_scaling.constants import PUBLISHED
    from bayes_scaling.data.runs import load_runs
    from bayes_scaling.laws.final_loss import LAWS
    from bayes_scaling.testing import to_sampling

    rng = np.random.default_rng(n_runs * 1000 + n_groups)
    law = LAWS["chinchilla"]
    theta = to_sampling("chinchilla", PUBLISHED["epoch2024"])
    g = np.arange(n_runs) % n_groups
    offs = {p: rng.normal(0, 0.05, n_groups) for p in ("log_e", "log_a", "log_b")}
    n = np.exp(rng.uniform(np.log(1e7), np.log(3e9), n_runs))
    d = n * np.exp(rng.uniform(np.log(5), np.log(100), n_runs))
    th = {p: theta[p] + (offs[p][g] if p in offs else 0.0) for p in law.params}
    mu = law.evaluate_log({"n": np.log(n), "d": np.log(d)}, th)
    loss = np.exp(mu + 0.01 * rng.standard_t(5, n_runs))
    return load_runs(pd.DataFrame({"group": [f"g{i:02d}" for i in g], "n_params": n,
                                   "n_tokens": d, "loss": loss}))


def cpu_ms(fn, x, calls: int = 100) -> float:
    import jax

    jax.block_until_ready(fn(x))
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for _ in range(calls):
            r = fn(x)
        jax.block_until_ready(r)
        best = min(best, (time.process_time() - t) / calls * 1e3)
    return best


def hand_written(gi, xn, xd, y, onehot):
    """The Student-t log density of the chinchilla law in JAX: group constants by gather and
    by a one-hot matrix product."""
    import jax.numpy as jnp

    def student_t(mu, s, nu):
        z = (y - mu) / s
        return jnp.sum(-0.5 * (nu + 1) * jnp.log1p(z * z / nu)) - y.size * jnp.log(s)

    def by_gather(p):
        e, a, b, al, be, s, nu = p
        mu = jnp.logaddexp(jnp.logaddexp(a[gi] - al * xn, b[gi] - be * xd), e[gi])
        return student_t(mu, s, nu)

    def by_onehot(p):
        e, a, b, al, be, s, nu = p
        c = onehot @ jnp.stack([e, a, b], 1)
        mu = jnp.logaddexp(jnp.logaddexp(c[:, 1] - al * xn, c[:, 2] - be * xd), c[:, 0])
        return student_t(mu, s, nu)

    return by_gather, by_onehot


def main() -> None:
    from bayes_scaling.model import device
    from bayes_scaling.model.build import build_model
    from bayes_scaling.model.spec import load_spec

    device.setup_jax(4)
    import jax
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_logp

    rows = []
    for n_runs, n_groups in ((24500, 4), (24500, 64)):
        runs = synthetic(n_runs, n_groups)
        graph_ms = {}
        for precision in ("float64", "float32"):
            model = build_model(load_spec("chinchilla"), runs, precision)
            logp = get_jaxified_logp(model, negative_logp=False)
            ip = model.initial_point()
            x = [jnp.asarray(ip[v.name]) for v in model.value_vars]
            graph_ms[precision] = cpu_ms(jax.jit(jax.value_and_grad(logp)), x)
        pymc_ms, pymc32_ms = graph_ms["float64"], graph_ms["float32"]
        gi = jnp.asarray(runs.group_index.astype(np.int32))
        xn = jnp.asarray(runs.log_n - runs.log_n.mean())
        xd = jnp.asarray(runs.log_d - runs.log_d.mean())
        y = jnp.asarray(runs.log_loss)
        onehot = jax.nn.one_hot(gi, n_groups, dtype=jnp.float64)

        by_gather, by_onehot = hand_written(gi, xn, xd, y, onehot)
        p = [jnp.full(n_groups, -1.0), jnp.full(n_groups, -1.0), jnp.full(n_groups, -1.0),
             0.3, 0.3, 0.01, 5.0]
        gather_ms = cpu_ms(jax.jit(jax.value_and_grad(by_gather)), p)
        onehot_ms = cpu_ms(jax.jit(jax.value_and_grad(by_onehot)), p)
        f32 = [jnp.asarray(a, jnp.float32) for a in (xn, xd, y, onehot)]
        by_gather32, _ = hand_written(gi, *f32)
        p32 = [jnp.asarray(a, jnp.float32) for a in p]
        gather32_ms = cpu_ms(jax.jit(jax.value_and_grad(by_gather32)), p32)
        rows.append((n_runs, n_groups, pymc_ms, gather_ms, onehot_ms, gather32_ms, pymc32_ms))
        print(rows[-1], flush=True)
    load = os.getloadavg()
    lines = ["## Log density + gradient at scale (one NUTS leapfrog step's work)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__}; "
             f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (CPU "
             "time per call, best of 5 x 100, one process: read the ratios). Regenerate: "
             "`python benchmarks/bench_likelihood.py`.", "",
             "| runs | groups | PyMC graph (ms CPU) | hand JAX, gather (ms) | hand JAX, one-hot "
             "(ms) | hand JAX, gather, float32 (ms) | PyMC graph, float32 rows (ms) | PyMC / "
             "hand gather | float64 / float32 rows | gradient CPU-s for "
             f"4 x 2000 x {STEPS} steps (float64 graph) | same, float32 rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, g, pm_ms, ga, oh, ga32, pm32 in rows:
        floor = 4 * 2000 * STEPS * pm_ms / 1e3
        floor32 = 4 * 2000 * STEPS * pm32 / 1e3
        lines.append(f"| {r} | {g} | {pm_ms:.2f} | {ga:.2f} | {oh:.2f} | {ga32:.2f} | "
                     f"{pm32:.2f} | {pm_ms / ga:.1f}x | {pm_ms / pm32:.1f}x | {floor:.0f} | "
                     f"{floor32:.0f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "likelihood.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
