"""Minimal reproduction: resident memory of numpyro NUTS chains by ``chain_method`` (no PyMC).

A Chinchilla-style Student-t regression on ``N`` synthetic rows, 4 chains, sampled with plain
numpyro; a background thread records resident memory (``/proc/self/statm``) every 0.2 s.
Run one configuration per fresh process:

    python benchmarks/repro_parallel_memory.py --rows 24500 --method parallel --steps 300

Prints one JSON line: wall time, peak RSS, RSS at the start of sampling and its growth.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=24500)
ap.add_argument("--method", default="parallel", choices=["parallel", "vectorized", "sequential"])
ap.add_argument("--steps", type=int, default=300, help="warm-up steps = draws per chain")
ap.add_argument("--chains", type=int, default=4)
ap.add_argument("--devices", type=int, default=4, help="XLA host devices")
ap.add_argument("--x64", action="store_true")
ap.add_argument("--xla", default="", help="extra XLA_FLAGS")
ap.add_argument("--constant", action="store_true",
                help="close over the data (a jit constant) instead of passing it as an argument")
ap.add_argument("--mallopt", choices=["", "early", "late"], default="",
                help="glibc mallopt(mmap threshold 16 KiB, trim 0, 1 arena) before JAX is "
                     "imported (early) or after XLA started (late)")
args = ap.parse_args()
os.environ["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={args.devices} "
                           + args.xla).strip()


def tune_malloc() -> None:
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    for param, value in ((-3, 16384), (-1, 0), (-8, 1)):  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD,
        libc.mallopt(param, value)                       # M_ARENA_MAX


if args.mallopt == "early":
    tune_malloc()
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

if args.x64:
    jax.config.update("jax_enable_x64", True)
jax.devices()  # start XLA (its threads) before any allocator change, as a library would
if args.mallopt == "late":
    tune_malloc()

PAGE = os.sysconf("SC_PAGE_SIZE")
samples: list[tuple[float, float]] = []
stop = threading.Event()


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def watch() -> None:
    while not stop.is_set():
        samples.append((time.perf_counter(), rss_mb()))
        time.sleep(0.2)


rng = np.random.default_rng(0)
n = rng.uniform(np.log(1e7), np.log(3e9), args.rows)
d = n + rng.uniform(np.log(5), np.log(100), args.rows)
x_n, x_d = n - n.mean(), d - d.mean()
y = np.logaddexp(np.logaddexp(-1.0 - 0.34 * x_n, -1.0 - 0.28 * x_d), 0.5) + 0.01 * rng.standard_t(
    5, args.rows)


def model(x_n, x_d, y):
    log_e = numpyro.sample("log_e", dist.Normal(0.5, 0.5))
    log_a = numpyro.sample("log_a", dist.Normal(-1.0, 1.0))
    log_b = numpyro.sample("log_b", dist.Normal(-1.0, 1.0))
    alpha = numpyro.sample("alpha", dist.LogNormal(-1.2, 0.5))
    beta = numpyro.sample("beta", dist.LogNormal(-1.2, 0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.05))
    nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    mu = jnp.logaddexp(jnp.logaddexp(log_a - alpha * x_n, log_b - beta * x_d), log_e)
    numpyro.sample("obs", dist.StudentT(nu, mu, sigma), obs=y)


data = tuple(jnp.asarray(v) for v in (x_n, x_d, y))
if args.constant:
    fn, call = (lambda: model(*data)), ()
else:
    fn, call = model, data
threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
base = rss_mb()
mcmc = MCMC(NUTS(fn, target_accept_prob=0.9), num_warmup=args.steps, num_samples=args.steps,
            num_chains=args.chains, chain_method=args.method, progress_bar=False)
mcmc.run(jax.random.PRNGKey(1), *call, extra_fields=("num_steps",))
jax.block_until_ready(mcmc.get_samples())
wall = time.perf_counter() - t0
stop.set()
steps = int(np.asarray(mcmc.get_extra_fields()["num_steps"]).sum())
print(json.dumps({"rows": args.rows, "method": args.method, "steps": args.steps,
                  "devices": args.devices, "x64": args.x64, "constant": args.constant,
                  "xla": args.xla, "mallopt": args.mallopt, "wall_s": round(wall, 1),
                  "rss_before_mb": round(base), "peak_mb": round(max(m for _, m in samples)),
                  "leapfrog_steps_sampling": steps,
                  "rss_trace_mb": [round(m) for _, m in samples[:: max(1, len(samples) // 12)]],
                  "jax": jax.__version__, "numpyro": numpyro.__version__}), flush=True)
sys.exit(0)
