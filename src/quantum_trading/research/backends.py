"""Where research jobs run: all local cores (a process pool) or a Ray cluster.

A *job* is a picklable context (market data, strategy, configuration) and a list of items
(chunks of parameter sets); a worker function ``fn(context, item)`` evaluates one item. A
backend sends the context to each worker once and the items one by one, and returns the
results in the order of the items, whatever order they finish in — so the same job gives
the same results on every backend.

* :class:`LocalBackend` (default): :class:`concurrent.futures.ProcessPoolExecutor` over all
  cores (``spawn`` start method: numba's OpenMP threads do not survive a fork), started once
  and kept for later jobs; the context travels with each item (jobs have few, large items:
  chunks of parameter sets); one worker (or one item) runs in this process.
* :class:`RayBackend`: ``ray.init(address=...)`` to join a cluster (``"host:port"`` or
  ``"auto"``), or a local Ray instance when ``address`` is None and none is running; the
  context is put in Ray's object store once and each item is one task.

>>> with LocalBackend(n_workers=1) as backend:
...     backend.map(pow, 2, [1, 2, 3])
[2, 4, 8]
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar, runtime_checkable

from quantum_trading.errors import ConfigError

__all__ = ["Backend", "LocalBackend", "RayBackend", "cpu_count", "get_backend"]

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

OnResult = Callable[[int, Any], None]
"""``on_result(position, result)``: called in this process as each item finishes."""


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@runtime_checkable
class Backend(Protocol):
    """Runs ``fn(context, item)`` for every item, in parallel, results in item order."""

    name: str

    @property
    def n_workers(self) -> int:
        """How many items run at once."""
        ...

    def map(self, fn: Callable[[C, T], R], context: C, items: Sequence[T], *,
            on_result: OnResult | None = None) -> list[R]:
        """``[fn(context, item) for item in items]``, computed by the workers.

        ``fn`` must be a module-level function (picklable by reference); ``context`` and
        the items must be picklable. ``on_result`` is called as each item finishes.
        """
        ...

    def close(self) -> None:
        """Release the workers (a backend can be used again afterwards)."""
        ...


# --------------------------------------------------------------------------------------------
# Local process pool
# --------------------------------------------------------------------------------------------

def _init_worker(threads: int) -> None:
    """Pool initializer / task prologue: numba threads of the worker process (clamped to
    what numba's pool has, so it cannot raise)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _run_item(fn: Callable[[Any, Any], Any], context: Any, item: Any) -> Any:
    return fn(context, item)


class LocalBackend:
    """All local cores through a process pool.

    Parameters
    ----------
    n_workers:
        Worker processes (default: every core this process may use). 1 = run in this
        process, no pool.
    mp_context:
        Start method of the workers (``"spawn"``, ``"forkserver"`` or ``"fork"``). ``spawn``
        (default) is safe with numba's threading layers; ``fork`` starts faster.
    threads_per_worker:
        numba threads in each worker (default 1: the processes already fill the cores).

    The pool starts on the first :meth:`map` that needs it and lives until :meth:`close` (or
    the end of a ``with`` block), serving every later job.
    """

    name = "local"

    def __init__(self, n_workers: int | None = None, *, mp_context: str = "spawn",
                 threads_per_worker: int = 1) -> None:
        if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
            raise ConfigError(f"LocalBackend: n_workers must be an int >= 1, got {n_workers!r}")
        if mp_context not in ("spawn", "forkserver", "fork"):
            raise ConfigError(f"LocalBackend: mp_context must be 'spawn', 'forkserver' or "
                              f"'fork', got {mp_context!r}")
        self._n = n_workers or cpu_count()
        self._mp_context = mp_context
        self._threads = int(threads_per_worker)
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"LocalBackend(n_workers={self._n}, mp_context={self._mp_context!r})"

    @property
    def n_workers(self) -> int:
        """Worker processes (1 = this process)."""
        return self._n

    def _pool_for(self, context: Any) -> ProcessPoolExecutor:
        try:
            pickle.dumps(context)
        except Exception as exc:
            raise ConfigError(f"LocalBackend: the job cannot be sent to worker processes "
                              f"({exc}); use n_workers=1 or a picklable strategy "
                              "(module-level functions, no lambdas)") from exc
        if self._pool is None:
            ctx = multiprocessing.get_context(self._mp_context)
            self._pool = ProcessPoolExecutor(max_workers=self._n, mp_context=ctx,
                                             initializer=_init_worker,
                                             initargs=(self._threads,))
        return self._pool

    def map(self, fn: Callable[[C, T], R], context: C, items: Sequence[T], *,
            on_result: OnResult | None = None) -> list[R]:
        """Run the items on the pool (in this process for one worker or one item)."""
        items = list(items)
        if self._n == 1 or len(items) <= 1:
            out = []
            for pos, item in enumerate(items):
                res = fn(context, item)
                out.append(res)
                if on_result is not None:
                    on_result(pos, res)
            return out
        pool = self._pool_for(context)
        futures: dict[Future, int] = {pool.submit(_run_item, fn, context, item): pos
                                      for pos, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    pos = futures[fut]
                    results[pos] = fut.result()
                    if on_result is not None:
                        on_result(pos, results[pos])
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
        return results

    def close(self) -> None:
        """Shut the pool down (a later :meth:`map` starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------

def _ray_task(fn: Callable[[Any, Any], Any], context: Any, item: Any, threads: int) -> Any:
    _init_worker(threads)
    return fn(context, item)


class RayBackend:
    """The same jobs on a Ray cluster (or a local Ray instance).

    Parameters
    ----------
    address:
        ``"host:port"`` of a running cluster's head (or ``"auto"``, or ``"ray://host:port"``
        for Ray Client). None: use the Ray instance this process is connected to, else start
        a local one.
    num_cpus:
        CPUs of a local instance started here (default: all).
    cpus_per_task:
        CPUs each task reserves (and numba threads it uses), default 1.
    init_kwargs:
        More keyword arguments for ``ray.init``.

    Ray is imported on first use (it is an optional dependency: ``pip install
    quantum-trading[ray]`` or ``ray``). A Ray instance started here is shut down by
    :meth:`close`; one that was running before is left alone.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 cpus_per_task: int = 1, init_kwargs: dict[str, Any] | None = None) -> None:
        if address is not None and not (isinstance(address, str) and address.strip()):
            raise ConfigError(f"RayBackend: address must be 'host:port', 'auto' or None, got "
                              f"{address!r}")
        if not (isinstance(cpus_per_task, int) and cpus_per_task >= 1):
            raise ConfigError(f"RayBackend: cpus_per_task must be an int >= 1, got "
                              f"{cpus_per_task!r}")
        self.address = address
        self._num_cpus = num_cpus
        self._cpus_per_task = cpus_per_task
        self._init_kwargs = dict(init_kwargs or {})
        self._started = False
        self._context_ref: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"RayBackend(address={self.address!r})"

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("backend 'ray' needs Ray: pip install ray") from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            kwargs.update(self._init_kwargs)
            if self.address is not None:
                kwargs["address"] = self.address
            elif self._num_cpus is not None:
                kwargs["num_cpus"] = self._num_cpus
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {self.address}: {exc}"
                                  ) from exc
            self._started = True
        return ray

    @property
    def n_workers(self) -> int:
        """Tasks that fit at once on the cluster's CPUs."""
        ray = self._ray()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, cpus // self._cpus_per_task)

    def map(self, fn: Callable[[C, T], R], context: C, items: Sequence[T], *,
            on_result: OnResult | None = None) -> list[R]:
        """One Ray task per item; the context goes to the object store once."""
        ray = self._ray()
        items = list(items)
        if self._context_ref is None or self._context_ref[0] is not context:
            self._context_ref = (context, ray.put(context))
        ref = self._context_ref[1]
        task = ray.remote(num_cpus=self._cpus_per_task, max_retries=0)(_ray_task)
        futures = [task.remote(fn, ref, item, self._cpus_per_task) for item in items]
        position = {f: pos for pos, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        pending = list(futures)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for f in done:
                pos = position[f]
                results[pos] = ray.get(f)
                if on_result is not None:
                    on_result(pos, results[pos])
        return results

    def close(self) -> None:
        """Shut down the Ray instance if this backend started it."""
        self._context_ref = None
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get_backend(backend: str | Backend = "local", *, address: str | None = None,
                n_workers: int | None = None) -> Backend:
    """A backend from its name (``"local"`` or ``"ray"``) or the backend itself.

    >>> get_backend("local", n_workers=2).n_workers
    2
    """
    if isinstance(backend, LocalBackend | RayBackend):
        return backend
    if backend == "local":
        if address is not None:
            raise ConfigError("--address is for the ray backend (use --backend ray)")
        return LocalBackend(n_workers=n_workers)
    if backend == "ray":
        return RayBackend(address=address)
    if isinstance(backend, Backend):
        return backend
    raise ConfigError(f"unknown backend {backend!r} (use 'local' or 'ray')")
