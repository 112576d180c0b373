"""What the engine sees of an array library: the :class:`Backend` record.

Engine code calls only names from the Python array API standard on ``Backend.xp``; everything
else that differs between libraries (special functions, scatter-add, transfers to and from the
host, random generators, fast kernels) is a field of the record, filled in for each library by
``backend/libraries.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernels import Kernels, generic_kernels
from .special import HostSpecialFunctions

__all__ = ["Backend", "BackendError"]


class BackendError(ValueError):
    """Raised for an unknown backend, a backend that cannot load, or arrays of two backends."""


@dataclass(frozen=True)
class Backend(HostSpecialFunctions):
    """One array library, seen through the operations the engine needs.

    Attributes:
        name: the name used by ``set_backend``.
        xp: the array namespace (array API standard).
        array_type: the class (or tuple of classes) of this library's arrays.
        float_dtype: the default floating dtype (float64).
        erf, gammaln, polygamma: special functions on raw arrays; ``polygamma(n, x)`` is the
            n-th derivative of the digamma function.
        scatter_add: ``scatter_add(shape, index, values)`` returns zeros of ``shape`` with
            ``values`` added at ``index``, repeated indices accumulating.
        to_host: copy an array to a NumPy array.
        from_host: copy a NumPy array to this library.
        make_rng: ``make_rng(seed)`` returns a NumPy-style generator whose outputs are
            this library's arrays.
        peak_tracker: ``peak_tracker()`` returns a context manager whose ``peak`` attribute,
            after the block, is the peak number of bytes allocated inside it (tracemalloc on
            the host, which NumPy reports its buffers to; the memory pool on a GPU).
        buffer: ``buffer(x)`` gives ``(key, nbytes)`` for libraries without NumPy's ``base`` and
            ``nbytes`` (see ``memory_of``).
        index: ``index(x, key)`` is ``x[key]``, with NumPy's full indexing rules (the standard
            allows integer arrays only without slices, which forward mode needs).
        poisson_quantile, binomial_quantile: ``poisson_quantile(u, lam)`` and
            ``binomial_quantile(u, n, p)``, the inverse CDFs F⁻¹(u) = min{k : F(k) ≥ u} on this
            library's arrays (broadcast together), exact for every finite parameter with
            bounded work per draw (the search is described in ``backend/quantiles.py``).
            They run on the host with SciPy on every backend: CuPy's arrays are copied there
            and back, because a device version of the search would need incomplete gamma and
            beta functions whose accuracy at large parameters has not been checked on a GPU.
    """

    name: str
    xp: Any
    array_type: Any
    erf: Callable[[Any], Any]
    gammaln: Callable[[Any], Any]
    polygamma: Callable[[int, Any], Any]
    scatter_add: Callable[[tuple, Any, Any], Any]
    to_host: Callable[[Any], np.ndarray]
    from_host: Callable[[np.ndarray], Any]
    make_rng: Callable[[Any], Any]
    float_dtype: Any = field(default=None)
    index: Callable[[Any, Any], Any] = field(default=lambda x, key: x[key])
    buffer: Callable[[Any], tuple[int, int]] = field(default=None)
    peak_tracker: Callable[[], Any] = field(default=None)
    poisson_quantile: Callable[[Any, Any], Any] = field(default=None)
    binomial_quantile: Callable[[Any, Any, Any], Any] = field(default=None)
    kernels: Kernels = field(default=None)  # fast paths (see "Fast kernels" below)

    def __post_init__(self) -> None:
        if self.kernels is None:
            object.__setattr__(self, "kernels", generic_kernels(self.xp))

    def sigmoid(self, x: Any) -> Any:
        """σ(x) = 1/(1 + e^{-x}) on a raw floating array, accurate in both tails."""
        return self.kernels.sigmoid(x)

    def select(self, condition: Any, x: Any, y: Any) -> Any:
        """``where(condition, x, y)`` on raw arrays (or Python numbers), exactly: the same
        bits as the array library's ``where``, by the backend's fastest way."""
        return self.kernels.select(condition, x, y)

    def memory_of(self, x: Any) -> tuple[int, int]:
        """``(key, nbytes)`` of the memory that keeping ``x`` alive holds: a view is charged
        for the array that owns its buffer, so the same buffer kept twice is counted once."""
        if self.buffer is not None:
            return self.buffer(x)
        root = x
        while isinstance(getattr(root, "base", None), self.array_type):
            root = root.base
        return id(root), int(root.nbytes)

    def is_array(self, x: Any) -> bool:
        """True when ``x`` is an array of this backend."""
        return isinstance(x, self.array_type)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Convert Python numbers, lists and this backend's arrays to this backend's arrays.

        Python floats and lists of floats become ``float_dtype``; integers and booleans keep
        their kind (``grad`` rejects them later with a clear message).
        """
        if isinstance(x, list | tuple) and any(
                isinstance(v, list | tuple) or isinstance(v, self.array_type) for v in x):
            try:
                return self._asarray(x, dtype)
            except TypeError:  # arrays inside a list (array_api_strict takes none): stack
                return self.xp.stack([self.asarray(v, dtype) for v in x])
        return self._asarray(x, dtype)

    def _asarray(self, x: Any, dtype: Any) -> Any:
        if dtype is None and isinstance(x, float | list | tuple):
            arr = self.xp.asarray(x)
            if self.xp.isdtype(arr.dtype, "real floating"):
                return self.xp.astype(arr, self.float_dtype)
            return arr
        return self.xp.asarray(x, dtype=dtype)
