"""minidiff's ops, with NumPy's names. Each works on raw arrays, Python numbers and traced
values alike; on traced values it is recorded (reverse mode) or pushed forward (forward mode).

The modules form a one-way stack; each imports only from those above it in this list:

================  ==========================================================================
module            what it holds
================  ==========================================================================
constants         zeros, ones, asarray, to_host, stop_gradient: arrays with no derivative
linear            reshape, transpose, broadcast_to, sum; unbroadcast and align_tangent
indexing          getitem (and its transpose, scatter-add), concatenate, stack
comparisons       comparisons, logical ops, sign, floor: non-differentiable primitives
elementwise       arithmetic, where, exp, log, trigonometry, ...: one partial per argument
surrogates        soft_step, straight_through: hard values with a smooth derivative
reductions        max, prod, cumsum, mean, min
linalg            matmul, dot
special           erf, gammaln, digamma, polygamma
composite         ops composed from the above: minimum, clip, tan, softmax, trace, ...
================  ==========================================================================

Traced values (``Dual``, ``TapeValue``) get NumPy's operators from the ops registered here with
``minidiff.core`` (``+ - * / ** @``, unary ``-``, comparisons, ``& | ~``, indexing, ``.T``).
"""

from __future__ import annotations

from .comparisons import (
    equal,
    floor,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    not_equal,
    sign,
)
from .composite import clip, logsumexp, minimum, softmax, square, tan, trace
from .constants import asarray, ones, ones_like, stop_gradient, to_host, zeros, zeros_like
from .elementwise import (
    abs,
    add,
    cos,
    divide,
    exp,
    expm1,
    log,
    log1p,
    maximum,
    multiply,
    negative,
    power,
    sigmoid,
    sin,
    softplus,
    sqrt,
    subtract,
    tanh,
    where,
)
from .indexing import concatenate, getitem, stack
from .linalg import dot, matmul
from .linear import (
    broadcast_to,
    expand_dims,
    matrix_transpose,
    reshape,
    squeeze,
    sum,
    transpose,
)
from .reductions import cumsum, max, mean, min, prod
from .special import digamma, erf, gammaln, polygamma, polygamma_p

__all__ = [
    "abs", "add", "asarray", "broadcast_to", "clip", "concatenate", "cos", "cumsum", "digamma",
    "divide", "dot", "equal", "erf", "exp", "expand_dims", "expm1", "floor", "gammaln",
    "getitem", "greater", "greater_equal", "less", "less_equal", "log", "log1p",
    "logical_and", "logical_not", "logical_or", "logsumexp",
    "matmul", "matrix_transpose", "max", "maximum", "mean", "min", "minimum", "multiply",
    "negative", "not_equal", "ones", "ones_like", "polygamma", "power", "prod", "reshape",
    "sigmoid", "sign", "sin", "softmax", "softplus", "sqrt", "square", "squeeze", "stack",
    "stop_gradient", "subtract", "sum", "tan", "tanh", "to_host", "trace", "transpose", "where",
    "zeros", "zeros_like",
]
