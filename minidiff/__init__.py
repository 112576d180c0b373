"""minidiff: automatic differentiation from scratch, in forward and reverse mode.

Every primitive is defined once (value, JVP rule, VJP rule) and shared by a dual-number forward
engine and a tape-based reverse engine. Transforms (``grad``, ``jvp``, ``vjp``, ``jacfwd``,
``jacrev``, ``hessian``, ...) nest, and the array backend (NumPy, CuPy, array_api_strict) is
chosen at run time.
"""

from __future__ import annotations

from . import distributions, jit, pytree, random  # jit is a callable module: md.jit(f)
from .backend import (
    Backend,
    BackendError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from .checkpointing import checkpoint, checkpointed_loop
from .core import ModeError, Primitive, ShapeError, TracerConversionError
from .custom import custom_jvp, custom_vjp
from .forward import Dual
from .jit import make_program
from .ops import *  # noqa: F403
from .ops import __all__ as _ops_all
from .reverse import TapeValue
from .scanning import scan
from .transforms import (
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
)
from .vmapping import vmap
from .wengert import wengert

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendError", "Dual", "ModeError", "Primitive", "ShapeError", "TapeValue",
    "TracerConversionError", "pytree",
    "available_backends", "checkpoint", "checkpointed_loop", "custom_jvp", "custom_vjp",
    "get_backend", "grad", "hessian", "hvp", "jit", "make_program",
    "jacfwd", "jacrev", "jvp", "scan", "set_backend", "use_backend", "value_and_grad", "vjp",
    "vmap",
    "wengert",
    *_ops_all,
]
