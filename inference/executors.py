"""Executors: where the per-sample work of a GVI step runs.

A pathwise step draws θ_1..θ_n from q_φ on the driver and then needs, for each i,

    (ℓ_i, J_i) = (ℓ(θ_i), ∂ℓ/∂θ (θ_i)),     θ_i (d,), J_i (d,),

with ℓ run on the stream keyed (step, i) of the run's seed (the score estimator needs ℓ_i
alone). These n simulations are independent and each is a pure function of
(θ_i, step, i, seed) (:func:`.objective.evaluate_sample`), so they can run anywhere, in any
order; the reverse pass through the family, Σ_i J_i·θ_i(φ)/n, stays on the driver. An executor
hides where they run behind one call,

    results = executor.map_samples(loss, theta, step, seed, how)   # [(ℓ_i, J_i)] in order i

so serial, processes and a cluster are one argument apart (:func:`make_executor`):

==============  ================================================================================
``"serial"``    in this process, one sample after another (the default)
``"processes"`` a :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes
``"dask"``      a :class:`dask.distributed.Client`: a ``LocalCluster`` of ``workers``
                single-threaded processes by default, or the scheduler at ``address``
                (dask-jobqueue, SSH, Kubernetes: the same run moves with no code change)
==============  ================================================================================

Results are bit-identical across executors for a given seed: every sample sees the same θ_i
(float64, copied exactly to the host and back), the same keyed stream and the same backend, and
the driver assembles the results in sample order, so every sum is taken in the same order.

Shipping the loss: the loss usually closes over the observed data, so it travels once per
worker, not once per task (the process pool's initializer; Dask's ``scatter`` with
``broadcast=True``). Processes need a picklable loss: a module-level function or a callable
object does; a lambda or closure does with ``cloudpickle`` (installed with the ``dist`` extra).
Dask pickles with cloudpickle itself.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import pickle
from collections.abc import Callable
from typing import Any

import minidiff as md

from .objective import evaluate_sample

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor",
           "EXECUTORS", "CONNECT_TIMEOUT", "run_sample"]

EXECUTORS = ("serial", "processes", "dask")
CONNECT_TIMEOUT = 10.0  # seconds to wait for a Dask scheduler at a given address

Result = tuple[Any, Any]


def run_sample(loss: Callable[[Any, Any], Any], theta: Any, step: int, i: int, seed: int,
               how: str, backend: str) -> tuple[Any, Any]:
    """One sample on a worker: ``(ℓ_i, J_i)`` as host (NumPy) arrays, J_i None for ``how =
    "value"``. θ_i arrives as a host array of shape (d,) and is moved to ``backend`` first."""
    if md.get_backend().name != backend:
        md.set_backend(backend)
    b = md.get_backend()
    value, jac = evaluate_sample(loss, b.from_host(theta), step, i, seed, how)
    return b.to_host(md.stop_gradient(value)), None if jac is None else b.to_host(jac)


class Executor:
    """Runs the per-sample work of a step (see the module notes); a context manager that
    releases its workers on exit (:meth:`close`)."""

    name = "executor"

    def map_samples(self, loss: Callable[[Any, Any], Any], theta: Any, step: int, seed: int,
                    how: str) -> list[Result]:
        """``[(ℓ_i, J_i) for i in range(n)]`` for θ of shape (n, d): backend arrays (J_i of
        shape (d,), or None when ``how == "value"``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (a no-op for the serial executor)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SerialExecutor(Executor):
    """Every sample in this process, in order i = 0..n−1."""

    name = "serial"

    def map_samples(self, loss: Callable[[Any, Any], Any], theta: Any, step: int, seed: int,
                    how: str) -> list[Result]:
        return [evaluate_sample(loss, md.getitem(theta, i), step, i, seed, how)
                for i in range(int(theta.shape[0]))]


def _rows_on_host(theta: Any) -> list[Any]:
    host = md.get_backend().to_host(md.stop_gradient(theta))
    return [host[i] for i in range(host.shape[0])]


def _from_host(results: list[tuple[Any, Any]]) -> list[Result]:
    b = md.get_backend()
    return [(b.from_host(v), None if j is None else b.from_host(j)) for v, j in results]


def _pickled(loss: Callable[[Any, Any], Any], executor: str) -> bytes:
    """The loss as bytes, by cloudpickle when it is installed (closures, lambdas) or pickle."""
    try:
        import cloudpickle  # optional: comes with the dist extra
        dumps = cloudpickle.dumps
    except ImportError:
        dumps = pickle.dumps
    try:
        return dumps(loss)
    except Exception as exc:  # PicklingError, AttributeError, TypeError: all say "cannot"
        raise TypeError(f"executor={executor!r} sends the loss to worker processes by pickling "
                        f"it, and {loss!r} cannot be pickled ({exc}); define it at module "
                        f"level or as a callable object, or install the 'dist' extra "
                        f"(pip install 'minidiff[dist]'), whose cloudpickle pickles closures "
                        f"and lambdas") from exc


_WORKER_LOSS: dict[str, Any] = {}


def _install_loss(payload: bytes, backend: str) -> None:
    """Process-pool initializer: unpickle the run's loss once per worker.

    ``payload`` is only ever the bytes :func:`_pickled` made in the driver process a moment
    before, handed to the worker through the pool's initializer arguments (the same channel
    ``concurrent.futures`` uses for every task): never bytes read from a file or a socket, so
    nothing a user hands us is unpickled (checkpoints are ``.npz`` with ``allow_pickle=False``
    plus JSON)."""
    _WORKER_LOSS["loss"] = pickle.loads(payload)
    md.set_backend(backend)


def _pool_task(theta: Any, step: int, i: int, seed: int, how: str,
               backend: str) -> tuple[Any, Any]:
    return run_sample(_WORKER_LOSS["loss"], theta, step, i, seed, how, backend)


class ProcessExecutor(Executor):
    """A pool of ``workers`` processes (default: the number of CPUs), started on first use with
    the ``"spawn"`` method (no inherited threads or locks) and restarted if the loss changes."""

    name = "processes"

    def __init__(self, workers: int | None = None, context: str = "spawn") -> None:
        self.workers = _check_workers(workers)
        self.context = context
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._loss: Any = None

    def _pool_for(self, loss: Callable[[Any, Any], Any]) -> Any:
        if self._pool is None or self._loss is not loss:
            self.close()
            payload = _pickled(loss, self.name)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers or os.cpu_count() or 1,
                mp_context=multiprocessing.get_context(self.context),
                initializer=_install_loss, initargs=(payload, md.get_backend().name))
            self._loss = loss
        return self._pool

    def map_samples(self, loss: Callable[[Any, Any], Any], theta: Any, step: int, seed: int,
                    how: str) -> list[Result]:
        pool = self._pool_for(loss)
        backend = md.get_backend().name
        futures = [pool.submit(_pool_task, row, step, i, seed, how, backend)
                   for i, row in enumerate(_rows_on_host(theta))]
        return _from_host([f.result() for f in futures])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._loss = None, None

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
    """Samples as Dask tasks.

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
        self._loss: Any = None
        self._loss_future: Any = None

    @property
    def client(self) -> Any:
        """The ``Client``, started on first use."""
        if self._client is None:
            d = self.distributed
            if self.address is not None:
                self._client = self._connect()
            else:
                self._cluster = d.LocalCluster(n_workers=self.workers or os.cpu_count() or 1,
                                               threads_per_worker=1, processes=True,
                                               dashboard_address=None)
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

    def map_samples(self, loss: Callable[[Any, Any], Any], theta: Any, step: int, seed: int,
                    how: str) -> list[Result]:
        client = self.client
        if self._loss is not loss:  # ship the loss (and the data it holds) once per worker
            self._loss_future = client.scatter(loss, broadcast=True, hash=False)
            self._loss = loss
        rows = _rows_on_host(theta)
        futures = client.map(run_sample, [self._loss_future] * len(rows), rows,
                             [step] * len(rows), list(range(len(rows))), [seed] * len(rows),
                             [how] * len(rows), [md.get_backend().name] * len(rows),
                             pure=False)
        return _from_host(client.gather(futures))

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        self._loss, self._loss_future = None, None

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


def make_executor(executor: str | Executor = "serial", *, workers: int | None = None,
                  scheduler: str | None = None,
                  connect_timeout: float = CONNECT_TIMEOUT) -> Executor:
    """An :class:`Executor` from its name (``"serial"``, ``"processes"``, ``"dask"``); an
    Executor passes through. ``workers`` sizes the pool or the ``LocalCluster``; ``scheduler``
    is a Dask scheduler's address, waited for at most ``connect_timeout`` seconds."""
    _check_timeout(connect_timeout)
    if isinstance(executor, Executor):
        return executor
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS} or an Executor, got "
                         f"{executor!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"a scheduler address is for executor='dask', not {executor!r}")
    if executor == "serial":
        if workers not in (None, 1):
            raise ValueError(f"executor='serial' runs one sample at a time; workers="
                             f"{workers!r} needs executor='processes' or 'dask'")
        return SerialExecutor()
    if executor == "processes":
        return ProcessExecutor(workers)
    return DaskExecutor(workers, address=scheduler, connect_timeout=connect_timeout)
