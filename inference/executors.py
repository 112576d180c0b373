"""Executors: where the per-sample work of a GVI step runs.

An executor is one call, Dask's and ``concurrent.futures``' own:

    results = executor.map(fn, *iterables)    # [fn(*args) for args in zip(*iterables)], in order

and knows nothing about GVI. The objective (:mod:`.objective`) cuts a step's n samples into
``executor.chunks`` contiguous chunks and maps :func:`.sample_chunks.run_chunk` over them: each
worker gets one chunk and evaluates it as one batched simulation, with every sample on the
stream keyed (step, i) of the run's seed. The serial executor is one chunk of all n, mapped
with Python's ``map``: the same code path as the others.

==============  ================================================================================
``"serial"``    in this process, one chunk (the default)
``"processes"`` a :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes
``"dask"``      a :class:`dask.distributed.Client`: a ``LocalCluster`` of ``workers``
                single-threaded processes by default, or the scheduler at ``address``
                (dask-jobqueue, SSH, Kubernetes: the same run moves with no code change)
==============  ================================================================================

Results are bit-identical across executors for a given seed: every sample sees the same θ_i
(float64, copied exactly to the host and back), the same keyed stream and the same backend;
the batched work of a sample does not depend on which other samples share its chunk, and the
driver assembles the results in sample order, so every sum is taken in the same order.

Shipping: arguments travel per task, and a task is a chunk (``workers`` tasks per step), so
the loss and the data it closes over travel ``workers`` times a step. Processes pickle the
function and its arguments with ``cloudpickle`` when it is installed (the ``dist`` extra:
lambdas and closures), else with ``pickle`` (module-level functions and callable objects).
Dask pickles with cloudpickle itself.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor",
           "check_executor_settings", "EXECUTORS", "CONNECT_TIMEOUT"]

EXECUTORS = ("serial", "processes", "dask")
CONNECT_TIMEOUT = 10.0  # seconds to wait for a Dask scheduler at a given address


class Executor:
    """Maps a function over argument lists somewhere (see the module notes); a context manager
    that releases its workers on exit (:meth:`close`)."""

    name = "executor"

    @property
    def chunks(self) -> int:
        """How many tasks to cut one batch of work into: one per worker."""
        return 1

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        """``[fn(*args) for args in zip(*iterables)]``, in order (each executor defines it)."""
        raise NotImplementedError(f"{type(self).__name__} must define map(fn, *iterables)")

    def close(self) -> None:
        """Release the workers (a no-op for the serial executor)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SerialExecutor(Executor):
    """Everything in this process, in order, as one chunk."""

    name = "serial"

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        return list(map(fn, *iterables))


def _pickled(obj: Any, executor: str) -> bytes:
    """``obj`` as bytes, by cloudpickle when it is installed (closures, lambdas) or pickle."""
    try:
        import cloudpickle  # optional: comes with the dist extra
        dumps = cloudpickle.dumps
    except ImportError:
        dumps = pickle.dumps
    try:
        return dumps(obj)
    except Exception as exc:  # PicklingError, AttributeError, TypeError: all say "cannot"
        raise TypeError(f"executor={executor!r} sends the loss to worker processes by pickling "
                        f"it, and {obj!r} cannot be pickled ({exc}); define it at module "
                        f"level or as a callable object, or install the 'dist' extra "
                        f"(pip install 'minidiff[dist]'), whose cloudpickle pickles closures "
                        f"and lambdas") from exc


def _call_pickled(payload: bytes) -> Any:
    """A process-pool task: ``fn(*args)`` from the bytes :func:`_pickled` made of
    ``(fn, args)`` in the driver process a moment before, handed over by the pool itself
    (never bytes read from a file or a socket: checkpoints are ``.npz`` with
    ``allow_pickle=False`` plus JSON)."""
    fn, args = pickle.loads(payload)
    return fn(*args)


class ProcessExecutor(Executor):
    """A pool of ``workers`` processes (default: the number of CPUs), started on first use with
    the ``"spawn"`` method (no inherited threads or locks)."""

    name = "processes"

    def __init__(self, workers: int | None = None, context: str = "spawn",
                 initializer: Callable[[], Any] | None = None) -> None:
        self.workers = _check_workers(workers)
        self.context = context
        self.initializer = initializer  # run once in each worker process as it starts
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    @property
    def chunks(self) -> int:
        return self.workers or os.cpu_count() or 1

    def _started(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.chunks, mp_context=multiprocessing.get_context(self.context),
                initializer=self.initializer)
        return self._pool

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        pool = self._started()
        futures = [pool.submit(_call_pickled, _pickled((fn, args), self.name))
                   for args in zip(*iterables)]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers})"


def _import_distributed() -> Any:
    try:
        import dask.distributed as distributed
    except ImportError as exc:
        raise ImportError("executor='dask' needs dask.distributed, which is the 'dist' extra: "
                          "pip install 'minidiff[dist]'") from exc
    return distributed


class DaskExecutor(Executor):
    """Chunks of samples as Dask tasks.

    Args:
        workers: for the default ``LocalCluster``, its number of worker processes (one thread
            each; default: the number of CPUs).
        address: the address of a running scheduler (``"tcp://host:8786"``) instead of a
            ``LocalCluster``.
        client: an existing ``dask.distributed.Client`` to use (not closed by :meth:`close`).
        connect_timeout: seconds to wait for the scheduler at ``address`` before giving up
            with an error that names it (default 10; Dask's own default is 30).
    """

    name = "dask"

    def __init__(self, workers: int | None = None, address: str | None = None,
                 client: Any = None, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.distributed = _import_distributed()
        self.workers = _check_workers(workers)
        self.connect_timeout = _check_timeout(connect_timeout)
        if address is not None and client is not None:
            raise ValueError("DaskExecutor: give a scheduler address or a client, not both")
        self.address = address
        self._client, self._own_client = client, client is None
        self._cluster: Any = None

    @property
    def client(self) -> Any:
        """The ``Client``, started on first use."""
        if self._client is None:
            d = self.distributed
            if self.address is not None:
                self._client = self._connect()
            else:
                import dask.config  # comes with dask.distributed

                # no dashboard, so no one reads the workers' statistical profiler: it samples
                # the running task's stack every 10 ms, which costs a short task several per cent
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    self._cluster = d.LocalCluster(
                        n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1,
                        processes=True, dashboard_address=None)
                self._client = d.Client(self._cluster)
        return self._client

    def _connect(self) -> Any:
        try:
            return self.distributed.Client(self.address, timeout=self.connect_timeout)
        except OSError as exc:  # Dask's "Timed out trying to connect", a refused connection
            raise ConnectionError(
                f"executor='dask': no Dask scheduler answered at {self.address!r} within "
                f"{self.connect_timeout:g} s ({exc}); start one there (dask scheduler), fix "
                f"the address, or allow longer with connect_timeout (--connect-timeout)"
            ) from exc

    @property
    def chunks(self) -> int:
        if self.address is not None or self._own_client is False:
            return max(1, len(self.client.scheduler_info()["workers"]))
        return self.workers or os.cpu_count() or 1

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        return self.client.gather(self.client.map(fn, *iterables, pure=False))

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else f"workers={self.workers}"
        return f"DaskExecutor({where})"


def _check_timeout(seconds: Any) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"connect_timeout must be a finite number of seconds > 0, got "
                         f"{seconds!r}")
    return float(seconds)


def _check_workers(workers: Any) -> int | None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be None or an integer ≥ 1, got {workers!r}")
    return workers


def check_executor_settings(executor: str | Executor, *, workers: int | None = None,
                            scheduler: str | None = None,
                            connect_timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse settings :func:`make_executor` cannot honour, before anything starts: an unknown
    name, a scheduler address for another executor than Dask, workers for the serial one."""
    _check_timeout(connect_timeout)
    if isinstance(executor, Executor):
        return
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS} or an Executor, got "
                         f"{executor!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"a scheduler address is for executor='dask', not {executor!r}")
    if executor == "serial" and workers not in (None, 1):
        raise ValueError(f"executor='serial' runs in this process, with no workers; workers="
                         f"{workers!r} needs executor='processes' or 'dask'")


def make_executor(executor: str | Executor = "serial", *, workers: int | None = None,
                  scheduler: str | None = None,
                  connect_timeout: float = CONNECT_TIMEOUT) -> Executor:
    """An :class:`Executor` from its name (``"serial"``, ``"processes"``, ``"dask"``); an
    Executor passes through. ``workers`` sizes the pool or the ``LocalCluster``; ``scheduler``
    is a Dask scheduler's address, waited for at most ``connect_timeout`` seconds."""
    check_executor_settings(executor, workers=workers, scheduler=scheduler,
                            connect_timeout=connect_timeout)
    if isinstance(executor, Executor):
        return executor
    if executor == "serial":
        return SerialExecutor()
    if executor == "processes":
        return ProcessExecutor(workers)
    return DaskExecutor(workers, address=scheduler, connect_timeout=connect_timeout)
