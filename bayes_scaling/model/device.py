"""JAX in this process: which device it samples on (the CPU by default, a GPU when asked for),
its XLA host devices and its compile cache.

JAX picks a GPU on its own whenever a CUDA build of jaxlib is installed; this package does not:
the CPU path is the default (measured, tested and what CI runs), and a GPU is used only when a
fit asks for it (``fit(..., device="gpu")``, ``bayes-scaling fit --device gpu`` or
``BAYES_SCALING_DEVICE=gpu``). The choice is made once per process, before JAX starts its
backends: a process whose JAX already runs on one device cannot switch to the other, and says
so in one line. Only the numpyro backend runs through JAX; nutpie and PyMC's own sampler run on
the CPU.

On a GPU the chains run vectorised on the one device (:func:`bayes_scaling.model.sampling`'s
chain rule: fewer devices than chains); install a CUDA build of JAX first
(``pip install "bayes_scaling[gpu]"``, i.e. ``jax[cuda12]``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bayes_scaling.errors import BayesScalingError

DEVICES = ("cpu", "gpu")
#: The environment variable that picks the device when a call does not.
DEVICE_ENV = "BAYES_SCALING_DEVICE"
#: What ``jax_platforms`` is set to for each device: the GPU first, the CPU beside it (JAX's
#: host-side work needs it); a machine with no visible NVIDIA GPU then starts on the CPU, which
#: :func:`select` refuses.
_PLATFORMS = {"cpu": "cpu", "gpu": "cuda,cpu"}


def setup_jax(chains: int) -> None:
    """Expose one XLA host device per chain (before JAX starts) and cache compiled code."""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={max(chains, 4)}".strip())
        _tune_malloc()
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it

    cache = Path(os.environ.get("BAYES_SCALING_JAX_CACHE",
                                Path.home() / ".cache" / "bayes_scaling" / "jax"))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):  # read-only home or an old JAX: run uncached
        pass


#: glibc ``mallopt`` settings applied before XLA starts its threads (``_tune_malloc``):
#: M_MMAP_THRESHOLD = 16 KiB, M_TRIM_THRESHOLD = 0, M_ARENA_MAX = 1.
MALLOC_SETTINGS = ((-3, 16 * 1024), (-1, 0), (-8, 1))


def _tune_malloc() -> bool:
    """Opt-in (``BAYES_SCALING_MALLOC_TUNE=1``): keep glibc from hoarding what XLA frees.

    With one XLA host device per chain, buffers of >= ~128 kB that the device threads free
    stay in glibc's arenas and resident memory grows with every NUTS step. In a numpyro-only
    reproduction (``benchmarks/repro_parallel_memory.py``) these settings, applied before JAX
    starts, keep memory flat; in a full PyMC fit they only slow the growth (see
    ``benchmarks/results/parallel_memory.md``), so they are off by default and large data
    still runs its chains one after another (``sampling.PARALLEL_MAX_OBS``). Returns whether
    applied.
    """
    if os.environ.get("BAYES_SCALING_MALLOC_TUNE", "0") != "1":
        return False
    import ctypes  # lazy: only this opt-in workaround needs it
    import platform  # lazy: only this opt-in workaround needs it

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS)
    except (OSError, AttributeError):
        return False



def requested(device: str | None = None) -> str:
    """The device asked for: ``device``, else ``$BAYES_SCALING_DEVICE``, else ``"cpu"``."""
    name = device if device is not None else (os.environ.get(DEVICE_ENV) or "cpu")
    name = str(name).strip().lower()
    if name not in DEVICES:
        src = "device" if device is not None else DEVICE_ENV
        raise BayesScalingError(f"{src}: unknown device {name!r}; choose from "
                                f"{', '.join(DEVICES)}")
    return name


def _started() -> bool:
    """Whether JAX has started its backends in this process (then the device is fixed)."""
    try:
        from jax._src import xla_bridge  # lazy: JAX's own flag; only the numpyro backend asks
    except ImportError:  # pragma: no cover - a JAX without the module: assume not started
        return False
    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: False)())


def select(device: str | None = None) -> str:
    """Point JAX at ``device`` (before it starts) and return the platform it runs on.

    Raises :class:`~bayes_scaling.errors.BayesScalingError` when a GPU is asked for and JAX sees
    none, or when JAX already runs on another device in this process.
    """
    name = requested(device)
    import jax  # lazy: JAX starts XLA (seconds); only the numpyro backend needs it

    started = _started()
    if not started:
        jax.config.update("jax_platforms", _PLATFORMS[name])
    try:
        platform = jax.default_backend()
    except (RuntimeError, AssertionError) as exc:  # no backend of those asked could start
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BayesScalingError(f"device {name}: JAX could not start ({first}); install a CUDA "
                                "build of JAX (pip install 'bayes_scaling[gpu]') or use "
                                "--device cpu") from None
    if platform != name:
        why = (f"JAX already runs on {platform} in this process (the device is chosen once per "
               "process: start a new one)" if started else
               "JAX sees no GPU here (a CUDA build of JAX, pip install 'bayes_scaling[gpu]', "
               "and a visible NVIDIA GPU are needed); use --device cpu")
        raise BayesScalingError(f"device {name}: {why}")
    return platform


def describe() -> str:
    """The device JAX samples on, for a fit's provenance (e.g. ``"cpu"``,
    ``"gpu: NVIDIA H100 80GB HBM3"``)."""
    import jax  # lazy: only asked after a numpyro fit, when JAX runs already

    platform = jax.default_backend()
    if platform == "cpu":
        return "cpu"
    return f"{platform}: {jax.devices()[0].device_kind}"
