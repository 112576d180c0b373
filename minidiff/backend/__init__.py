"""Which array library runs the numbers.

Everything that differs between array libraries lives in this package, so the engines never
ask "is this NumPy?", and it is the one part of minidiff that imports an array library. A
:class:`Backend` (``interface.py``) holds

* ``xp``: the array namespace. Engine code calls only names from the Python array API standard
  (``xp.exp``, ``xp.permute_dims``, ``xp.concat``, ``xp.cumulative_sum``, ...), which NumPy >= 2.1,
  CuPy and ``array_api_strict`` all provide;
* special functions (``erf``, ``gammaln``, ``polygamma``), which the standard does not have, and
  the incomplete beta and gamma functions with their slopes (``special.py``);
* ``scatter_add``: the transpose of integer indexing, ``out[idx] += values`` with repeated indices
  accumulated (``numpy.add.at``, ``cupyx.scatter_add``);
* random number generation and ``to_host`` (copy to a NumPy array);
* the quantile functions of the discrete samplers (``quantiles.py``);
* fast exact kernels for a few ops (``kernels.py``);
* the default floating dtype, float64.

``libraries.py`` builds the record for NumPy, CuPy and ``array_api_strict``; ``selection.py``
keeps the current one, per thread (``get_backend``, ``set_backend``, ``use_backend``, and the
environment variable ``MINIDIFF_BACKEND`` at import time); ``host_files.py`` writes and reads
arrays as .npz files on the host.

The ``array_api_strict`` backend exists for the tests: it refuses anything outside the standard,
so a test suite that passes on it proves that the engine speaks only the standard's namespace.
"""

from __future__ import annotations

from .host_files import host_load_npz, host_save_npz
from .interface import Backend, BackendError
from .kernels import NUMPY_KERNELS, Kernels, generic_kernels
from .quantiles import binomial_quantile, poisson_quantile
from .selection import available_backends, backend_of, get_backend, set_backend, use_backend

__all__ = [
    "Backend",
    "BackendError",
    "Kernels",
    "NUMPY_KERNELS",
    "available_backends",
    "backend_of",
    "binomial_quantile",
    "generic_kernels",
    "get_backend",
    "host_load_npz",
    "host_save_npz",
    "poisson_quantile",
    "set_backend",
    "use_backend",
]
