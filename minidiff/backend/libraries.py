"""The array libraries minidiff runs on: NumPy, CuPy and array_api_strict.

Each ``make_*`` function builds the :class:`~minidiff.backend.interface.Backend` of one
library. CuPy keeps its arrays on the GPU (its special functions live in
``cupyx.scipy.special``); array_api_strict exists for the tests, and what the standard lacks
(special functions, scatter-add, integer arrays mixed with slices) it does on the host with
NumPy and SciPy, a cost only tests pay. The discrete quantiles run on the host with SciPy on
every backend.
"""

from __future__ import annotations

import importlib
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special as sps

from .interface import Backend, BackendError
from .kernels import NUMPY_KERNELS
from .quantiles import binomial_quantile, poisson_quantile

__all__ = ["make_numpy", "make_cupy", "make_array_api_strict"]

# ---------------------------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------------------------


class _TracemallocPeak:
    """Peak bytes allocated by Python and NumPy inside a ``with`` block, from tracemalloc."""

    def __enter__(self) -> _TracemallocPeak:
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        self.peak = 0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.peak = max(0, tracemalloc.get_traced_memory()[1] - self._base)
        if self._started:
            tracemalloc.stop()


def _numpy_scatter_add(shape: tuple, index: Any, values: Any) -> np.ndarray:
    out = np.zeros(shape, dtype=values.dtype)
    np.add.at(out, index, values)
    return out


def make_numpy() -> Backend:
    return Backend(
        name="numpy",
        xp=np,
        array_type=(np.ndarray, np.generic),
        erf=sps.erf,
        gammaln=sps.gammaln,
        polygamma=lambda n, x: sps.polygamma(n, x) if n else sps.digamma(x),
        scatter_add=_numpy_scatter_add,
        to_host=np.asarray,
        from_host=np.asarray,
        make_rng=np.random.default_rng,
        float_dtype=np.float64,
        peak_tracker=_TracemallocPeak,
        poisson_quantile=poisson_quantile,
        binomial_quantile=binomial_quantile,
        kernels=NUMPY_KERNELS,
    )


# ---------------------------------------------------------------------------------------------
# CuPy (real GPU arrays; its special functions live in cupyx.scipy.special)
# ---------------------------------------------------------------------------------------------


def make_cupy() -> Backend:
    try:
        cp = importlib.import_module("cupy")
        cps = importlib.import_module("cupyx.scipy.special")
        cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or a CUDA runtime error when no GPU exists
        raise BackendError(
            f"the 'cupy' backend needs CuPy and a CUDA GPU, and could not start: {exc}. "
            "Install the 'gpu' extra (pip install minidiff[gpu]) on a machine with a GPU."
        ) from exc

    def scatter_add(shape: tuple, index: Any, values: Any) -> Any:
        out = cp.zeros(shape, dtype=values.dtype)
        cp.add.at(out, index, values)
        return out

    class PoolPeak:
        """Peak bytes of the CuPy memory pool inside a ``with`` block: cached blocks are freed
        first, so the pool's total afterwards is its high-water mark for the block."""

        def __enter__(self) -> PoolPeak:
            cp.cuda.Device().synchronize()
            self._pool = cp.get_default_memory_pool()
            self._pool.free_all_blocks()
            self._base = self._pool.used_bytes()
            self.peak = 0
            return self

        def __exit__(self, *exc: Any) -> None:
            cp.cuda.Device().synchronize()
            self.peak = max(0, self._pool.total_bytes() - self._base)

    return Backend(
        name="cupy",
        xp=cp,
        array_type=cp.ndarray,
        erf=cps.erf,
        gammaln=cps.gammaln,
        polygamma=lambda n, x: cps.polygamma(cp.asarray(n), x) if n else cps.digamma(x),
        scatter_add=scatter_add,
        to_host=cp.asnumpy,
        from_host=cp.asarray,
        make_rng=cp.random.default_rng,
        float_dtype=cp.float64,
        peak_tracker=PoolPeak,
        poisson_quantile=_through_host(poisson_quantile, cp.ndarray, cp.asnumpy, cp.asarray),
        binomial_quantile=_through_host(binomial_quantile, cp.ndarray, cp.asnumpy, cp.asarray),
    )


# ---------------------------------------------------------------------------------------------
# array_api_strict (tests only): what the standard lacks is done on the host with NumPy/SciPy
# ---------------------------------------------------------------------------------------------


class _HostRoundTripRNG:
    """A NumPy generator whose outputs are converted to another library's arrays."""

    def __init__(self, seed: Any, from_host: Callable[[np.ndarray], Any]) -> None:
        self._rng = np.random.default_rng(seed)
        self._from_host = from_host

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._rng, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._from_host(np.asarray(method(*args, **kwargs)))

        return call


def make_array_api_strict() -> Backend:
    try:
        xps = importlib.import_module("array_api_strict")
    except ImportError as exc:
        raise BackendError(
            "the 'array_api_strict' backend needs the array-api-strict package "
            "(pip install minidiff[test])"
        ) from exc
    array_type = type(xps.asarray(0.0))

    def to_host(x: Any) -> np.ndarray:
        return np.asarray(x)

    def from_host(x: np.ndarray) -> Any:
        return xps.asarray(np.asarray(x))

    def on_host(fn: Callable[..., np.ndarray]) -> Callable[..., Any]:
        return lambda *args: from_host(fn(*[to_host(a) if isinstance(a, array_type) else a
                                            for a in args]))

    def scatter_add(shape: tuple, index: Any, values: Any) -> Any:
        host_index = _index_to_host(index, array_type, to_host)
        return from_host(_numpy_scatter_add(shape, host_index, to_host(values)))

    def index(x: Any, key: Any) -> Any:
        try:
            return x[key]
        except IndexError:  # beyond the standard (integer arrays mixed with slices)
            return from_host(to_host(x)[_index_to_host(key, array_type, to_host)])

    def buffer(x: Any) -> tuple[int, int]:
        dtype = x.dtype
        if xps.isdtype(dtype, "bool"):
            itemsize = 1
        elif xps.isdtype(dtype, "integral"):
            itemsize = xps.iinfo(dtype).bits // 8
        else:
            itemsize = xps.finfo(dtype).bits // 8
        return id(x), itemsize * math.prod(x.shape)

    return Backend(
        name="array_api_strict",
        index=index,
        buffer=buffer,
        xp=xps,
        array_type=array_type,
        erf=on_host(sps.erf),
        gammaln=on_host(sps.gammaln),
        polygamma=on_host(lambda n, x: sps.polygamma(n, x) if n else sps.digamma(x)),
        scatter_add=scatter_add,
        to_host=to_host,
        from_host=from_host,
        make_rng=lambda seed: _HostRoundTripRNG(seed, from_host),
        float_dtype=xps.float64,
        peak_tracker=_TracemallocPeak,
        poisson_quantile=on_host(poisson_quantile),
        binomial_quantile=on_host(binomial_quantile),
    )


def _through_host(fn: Callable[..., np.ndarray], array_type: Any, to_host: Callable,
                  from_host: Callable) -> Callable[..., Any]:
    """``fn`` (on NumPy arrays) applied to another library's arrays, by a copy each way."""
    return lambda *args: from_host(fn(*[to_host(a) if isinstance(a, array_type) else a
                                        for a in args]))


def _index_to_host(index: Any, array_type: Any, to_host: Callable) -> Any:
    if isinstance(index, tuple):
        return tuple(_index_to_host(i, array_type, to_host) for i in index)
    if isinstance(index, array_type):
        return to_host(index)
    return index

