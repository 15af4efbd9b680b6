"""Run many independent fits at once: local processes by default, Dask when given a cluster.

Backtests, comparisons and calibration sweeps are many independent fits. :func:`run_many`
maps a picklable function over tasks:

- ``address=None``: a local process pool (``spawn`` context, so each worker starts its own JAX
  runtime) with ``workers`` processes (default: the number of cores); ``workers=1`` runs in
  this process, in order;
- ``address="tcp://host:8786"`` (or a ``distributed.Client``): an existing Dask distributed
  cluster. The same code runs unchanged on a GPU worker (JAX picks the device).

Results come back in task order; each task gets its own explicit seed from the caller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

from bayes_scaling.errors import BayesScalingError
from bayes_scaling.types import ProgressFn


def default_workers() -> int:
    """Worker processes used when the caller does not say: one per core."""
    return max(1, os.cpu_count() or 1)


def run_many(
    fn: Callable[..., Any],
    tasks: Sequence[dict[str, Any]],
    *,
    workers: int | None = None,
    address: Any = None,
    on_progress: ProgressFn | None = None,
) -> list[Any]:
    """``[fn(**task) for task in tasks]``, in parallel; results in task order."""
    tell = on_progress or (lambda _m: None)
    tasks = list(tasks)
    if not tasks:
        return []
    if address is not None:
        return _run_dask(fn, tasks, address, tell)
    n = workers or default_workers()
    if n < 1:
        raise BayesScalingError(f"workers must be >= 1, got {workers}")
    if n == 1 or len(tasks) == 1:
        out = []
        for i, t in enumerate(tasks):
            out.append(fn(**t))
            tell(f"task {i + 1}/{len(tasks)} done")
        return out
    results: list[Any] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=min(n, len(tasks)),
                             mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(fn, **t): i for i, t in enumerate(tasks)}
        for done, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            tell(f"task {done}/{len(tasks)} done")
    return results


class _InProcess:
    """``submit`` runs the call at once, in this process (``local_pool(1)``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


@contextmanager
def local_pool(workers: int) -> Iterator[Any]:
    """A pool of ``workers`` local processes (``spawn``) for calls of different functions.

    ``pool.submit(fn, **kwargs)`` returns a future; calls start in the order submitted, so a
    caller can queue its longest calls first and let the workers fill up with the rest (one
    pool, each worker's imports paid once). ``workers == 1``: each call runs at ``submit``, in
    this process.
    """
    if workers < 1:
        raise BayesScalingError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        yield _InProcess()
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        yield pool


def timed(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[Any, float, float]:
    """``(fn(**kwargs), wall seconds, CPU seconds of this process)`` (for where time goes)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(**kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def _run_dask(fn: Callable[..., Any], tasks: list[dict[str, Any]], address: Any,
              tell: ProgressFn) -> list[Any]:
    try:
        from distributed import Client  # lazy: optional extra [distributed]; local runs need none
    except ImportError:
        raise BayesScalingError("a cluster address needs Dask: pip install 'dask[distributed]'") \
            from None
    client = address if isinstance(address, Client) else None
    own = client is None
    if own:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise BayesScalingError(f"cannot reach the Dask cluster at {address!r} ({exc})") \
                from None
    try:
        futures = [client.submit(_call, fn, t, pure=False) for t in tasks]
        out = client.gather(futures)
        tell(f"{len(tasks)} tasks done on {client.scheduler_info().get('address', address)}")
        return list(out)
    finally:
        if own:
            client.close()


def _call(fn: Callable[..., Any], task: dict[str, Any]) -> Any:
    return fn(**task)
