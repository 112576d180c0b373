"""Property tests for every public op, in float64, on every engine backend.

For each op, at random shapes (0-d to 3-d, broadcasting for binary ops) and at random points in
the op's domain, :func:`minidiff.testing.check_grads` checks that

* forward mode (J v) agrees with central finite differences,
* reverse mode (Jᵀu) agrees with them through ⟨u, J v⟩ = ⟨Jᵀu, v⟩,
* the two modes are transposes of each other to 1e-12 relative,
* and all of this again for the derivative functions (order 2: forward-over-forward,
  forward-over-reverse, reverse-over-forward, reverse-over-reverse).

Points are kept away from kinks (``abs`` at 0, ties of ``maximum``, ``clip``'s bounds, the
argmax of ``max``) by at least 1e-2, so central differences with step 1e-6 never straddle one.
A few tests at the end compare with derivatives known in closed form.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidiff as md
from minidiff import core
from minidiff.ops.elementwise import elementwise_primitive
from minidiff.testing import check_grads

# The ``backend`` fixture is function-scoped but only selects the backend, which stays the same
# for every example of one test, so sharing it across examples is safe.
with_backend = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
SEEDS = st.integers(0, 2**32 - 1)

EPS, RTOL, ATOL = 1e-6, 1e-5, 1e-6


def assert_derivatives_match(f, args, seed, rtol=RTOL, atol=ATOL):
    """Forward, reverse and order 2 against central differences, and the inner-product identity
    between the two modes to 1e-12 relative."""
    check_grads(f, args, modes=("fwd", "rev"), order=2, eps=EPS, rtol=rtol, atol=atol,
                ip_rtol=1e-12, seed=seed)


def assert_forms_agree(form, reference, args, seed):
    """``form`` (an operator or a method, which only traced values are sure to have) gives the
    same value, J v and Jᵀu as ``reference``, the named op that is checked against finite
    differences elsewhere."""
    rng = np.random.default_rng(seed)
    b = md.get_backend()
    directions = [b.from_host(rng.standard_normal(tuple(a.shape))) for a in args]
    value, tangent = md.jvp(form, args, directions)
    expected_value, expected_tangent = md.jvp(reference, args, directions)
    assert_values_equal(value, host(expected_value), rtol=1e-14)
    assert_values_equal(tangent, host(expected_tangent), rtol=1e-14)
    u = b.from_host(rng.standard_normal(host(expected_value).shape))
    cotangents = md.vjp(form, *args)[1](u)
    for c, e in zip(cotangents, md.vjp(reference, *args)[1](u)):
        assert_values_equal(c, host(e), rtol=1e-14)


def host(x):
    """A NumPy copy of a backend array (or of a traced value's primal)."""
    return np.asarray(md.to_host(x))


def assert_values_equal(actual, expected, rtol=1e-12, atol=0.0):
    actual = host(actual)
    assert actual.shape == np.shape(expected), (actual.shape, np.shape(expected))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# Values in each op's domain, built from a seed (so hypothesis shrinks the shape and the seed)
# ---------------------------------------------------------------------------------------------


def normal(rng, shape, scale=1.0):
    return scale * rng.standard_normal(shape)


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


def away_from_zero(lo, hi):
    """|x| in [lo, hi] with a random sign."""
    return lambda rng, shape: rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], shape)


def grid(rng, shape, offset=0.0, low=-10, high=10):
    """Multiples of 0.2 plus ``offset``: two grids with offsets 0 and 0.1 never come within 0.1
    of each other, which keeps ``maximum`` and ``clip`` away from their kinks."""
    return 0.2 * rng.integers(low, high + 1, size=shape) + offset


def distinct(rng, shape):
    """Values at least 0.1 apart (no ties anywhere), for ``max``, ``min`` and their kinks."""
    n = math.prod(shape)
    return (0.1 * rng.permutation(n) - 0.05 * n).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Unary elementwise ops
# ---------------------------------------------------------------------------------------------

# name: (op, domain, reference implementation on NumPy arrays)
UNARY = {
    "negative": (md.negative, normal, np.negative),
    "unary minus operator": (lambda x: -x, normal, np.negative),
    "exp": (md.exp, uniform(-3, 3), np.exp),
    "log": (md.log, uniform(0.2, 5), np.log),
    "log1p": (md.log1p, uniform(-0.8, 5), np.log1p),
    "expm1": (md.expm1, uniform(-3, 3), np.expm1),
    "sqrt": (md.sqrt, uniform(0.2, 5), np.sqrt),
    "sin": (md.sin, uniform(-5, 5), np.sin),
    "cos": (md.cos, uniform(-5, 5), np.cos),
    "tan": (md.tan, uniform(-1.3, 1.3), np.tan),  # away from the poles at ±π/2
    "tanh": (md.tanh, uniform(-4, 4), np.tanh),
    "sigmoid": (md.sigmoid, uniform(-8, 8), sps.expit),
    "softplus": (md.softplus, uniform(-8, 8), lambda x: np.logaddexp(0.0, x)),
    "abs": (md.abs, away_from_zero(1e-2, 3), np.abs),
    "abs builtin": (abs, away_from_zero(1e-2, 3), np.abs),
    "erf": (md.erf, uniform(-3, 3), sps.erf),
    "gammaln": (md.gammaln, uniform(0.3, 6), sps.gammaln),
    "digamma": (md.digamma, uniform(0.3, 6), sps.digamma),
    "polygamma 0": (lambda x: md.polygamma(0, x), uniform(0.5, 6), sps.digamma),
    "polygamma 1": (lambda x: md.polygamma(1, x), uniform(0.5, 6),
                    lambda x: sps.polygamma(1, x)),
    "polygamma 2": (lambda x: md.polygamma(2, x), uniform(0.5, 6),
                    lambda x: sps.polygamma(2, x)),
    "square": (md.square, normal, np.square),
    "x ** 2": (lambda x: x ** 2, normal, lambda x: x ** 2),
    "x ** 3": (lambda x: x ** 3, normal, lambda x: x ** 3),
    "power(x, 1)": (lambda x: md.power(x, 1), normal, lambda x: x),
    "x ** 0.5": (lambda x: x ** 0.5, uniform(0.2, 5), np.sqrt),
    "x ** -1.5": (lambda x: x ** -1.5, uniform(0.3, 5), lambda x: x ** -1.5),
    "2 ** x": (lambda x: 2.0 ** x, uniform(-3, 3), lambda x: 2.0 ** x),
}


@pytest.mark.parametrize("name", list(UNARY))
@with_backend
@given(shape=SHAPES, seed=SEEDS)
def test_unary_op_derivatives_match_finite_differences(backend, to_array, name, shape, seed):
    op, domain, reference = UNARY[name]
    rng = np.random.default_rng(seed)
    x = np.asarray(domain(rng, shape), dtype=np.float64)
    assert_values_equal(op(to_array(x)), reference(x), rtol=1e-12, atol=1e-15)
    assert_derivatives_match(op, [to_array(x)], seed)


# ---------------------------------------------------------------------------------------------
# Binary elementwise ops, with broadcasting
# ---------------------------------------------------------------------------------------------

BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    max_side=4)

# name: (op, domain of x, domain of y, reference)
BINARY = {
    "add": (md.add, normal, normal, np.add),
    "+": (operator.add, normal, normal, np.add),
    "subtract": (md.subtract, normal, normal, np.subtract),
    "-": (operator.sub, normal, normal, np.subtract),
    "multiply": (md.multiply, normal, normal, np.multiply),
    "*": (operator.mul, normal, normal, np.multiply),
    "divide": (md.divide, normal, away_from_zero(0.3, 3), np.divide),
    "/": (operator.truediv, normal, away_from_zero(0.3, 3), np.divide),
    "power": (md.power, uniform(0.3, 3), uniform(-2, 2), np.power),
    "**": (operator.pow, uniform(0.3, 3), uniform(-2, 2), np.power),
    # grids 0.1 apart: never a tie, never within 0.1 of the kink x = y
    "maximum": (md.maximum, grid, lambda r, s: grid(r, s, 0.1), np.maximum),
    "minimum": (md.minimum, grid, lambda r, s: grid(r, s, 0.1), np.minimum),
}


@pytest.mark.parametrize("name", list(BINARY))
@with_backend
@given(shapes=BROADCAST_PAIRS, seed=SEEDS)
def test_binary_op_derivatives_match_finite_differences(backend, to_array, name, shapes, seed):
    op, x_domain, y_domain, reference = BINARY[name]
    rng = np.random.default_rng(seed)
    x_shape, y_shape = shapes.input_shapes
    x = np.asarray(x_domain(rng, x_shape), dtype=np.float64)
    y = np.asarray(y_domain(rng, y_shape), dtype=np.float64)
    assert_values_equal(op(to_array(x), to_array(y)), reference(x, y), rtol=1e-12)
    assert_derivatives_match(op, [to_array(x), to_array(y)], seed)


# x op c and c op x, with c a Python number or a constant (untraced) backend array
SCALAR_OPERATORS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "**": operator.pow,
}
NAMED_BINARY = {"+": md.add, "-": md.subtract, "*": md.multiply, "/": md.divide, "**": md.power}


@pytest.mark.parametrize("symbol", list(SCALAR_OPERATORS))
@with_backend
@given(shapes=BROADCAST_PAIRS, seed=SEEDS, constant_is_array=st.booleans())
def test_operators_with_a_constant_operand_differentiate_the_traced_one(
        backend, to_array, symbol, shapes, seed, constant_is_array):
    op = SCALAR_OPERATORS[symbol]
    rng = np.random.default_rng(seed)
    x_shape, c_shape = shapes.input_shapes
    x = rng.uniform(0.5, 2.0, size=x_shape)  # positive and away from 0: fine for / and **
    c = rng.uniform(0.5, 2.0, size=c_shape if constant_is_array else ())
    constant = to_array(c) if constant_is_array else float(c)
    assert_derivatives_match(lambda x: op(x, constant), [to_array(x)], seed)
    named = NAMED_BINARY[symbol]
    assert_derivatives_match(lambda x: named(constant, x), [to_array(x)], seed)
    if constant_is_array and backend.name == "array_api_strict":
        # array_api_strict's operators raise TypeError on a foreign right operand instead of
        # returning NotImplemented, so `array + traced` cannot reach Box.__radd__ there
        return
    assert_derivatives_match(lambda x: op(constant, x), [to_array(x)], seed)


BROADCAST_TRIPLES = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                      max_side=4)


@with_backend
@given(shapes=BROADCAST_TRIPLES, seed=SEEDS)
def test_where_derivatives_match_finite_differences(backend, to_array, shapes, seed):
    rng = np.random.default_rng(seed)
    c_shape, x_shape, y_shape = shapes.input_shapes
    cond = rng.random(c_shape) < 0.5
    x, y = normal(rng, x_shape), normal(rng, y_shape)
    condition = backend.from_host(cond)
    assert_values_equal(md.where(condition, to_array(x), to_array(y)), np.where(cond, x, y))
    assert_derivatives_match(lambda x, y: md.where(condition, x, y),
                             [to_array(x), to_array(y)], seed)
    # one branch a constant
    assert_derivatives_match(lambda x: md.where(condition, x, 0.5), [to_array(x)], seed)


@with_backend
@given(shapes=BROADCAST_PAIRS, seed=SEEDS, sides=st.sampled_from(["both", "min", "max"]))
def test_clip_derivatives_match_finite_differences(backend, to_array, shapes, seed, sides):
    rng = np.random.default_rng(seed)
    x_shape, bound_shape = shapes.input_shapes
    x = grid(rng, x_shape)
    # bounds on the grid offset by 0.1, so x is never within 0.1 of one; lo < hi
    lo = grid(rng, bound_shape, 0.1, low=-8, high=0)
    hi = lo + 0.2 * rng.integers(1, 6, size=bound_shape)
    a_min = None if sides == "max" else lo
    a_max = None if sides == "min" else hi
    expected = np.clip(x, a_min, a_max)
    actual = md.clip(to_array(x), None if a_min is None else to_array(a_min),
                     None if a_max is None else to_array(a_max))
    assert_values_equal(actual, expected)

    # the bounds are differentiated too: the derivative flows to the active one
    bounds = [b for b in (a_min, a_max) if b is not None]

    def clipped(x, *bs):
        given_bounds = iter(bs)
        return md.clip(x, None if a_min is None else next(given_bounds),
                       None if a_max is None else next(given_bounds))

    assert_derivatives_match(clipped, [to_array(x), *map(to_array, bounds)], seed)
    # Python-number bounds, also off the grid
    assert_derivatives_match(lambda x: md.clip(x, -0.7, 0.9), [to_array(x)], seed)


# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------


@st.composite
def shape_and_axis(draw):
    """A shape and an axis argument: None, an int (maybe negative) or a tuple (maybe empty,
    maybe with negative entries)."""
    shape = draw(SHAPES)
    ndim = len(shape)
    if ndim == 0:
        return shape, draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    negate = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
    return shape, tuple(a - ndim if neg else a for a, neg in zip(axes, negate))


def signed_near_one(rng, shape):
    """|x| in [0.5, 1.5] with random signs: products of up to 64 of them stay moderate."""
    return away_from_zero(0.5, 1.5)(rng, shape)


# name: (op(x, axis, keepdims), domain, reference)
REDUCTIONS = {
    "sum": (md.sum, normal, np.sum),
    "mean": (md.mean, normal, np.mean),
    "prod": (md.prod, signed_near_one, np.prod),
    "max": (md.max, distinct, np.max),
    "min": (md.min, distinct, np.min),
    # (scipy's logsumexp gives shape (1,) for a 0-d array and axis=(), NumPy's sum gives ())
    "logsumexp": (md.logsumexp, normal,
                  lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis, keepdims=keepdims))),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@with_backend
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=SEEDS)
def test_reduction_derivatives_match_finite_differences(backend, to_array, name, shape_axis,
                                                        keepdims, seed):
    op, domain, reference = REDUCTIONS[name]
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = np.asarray(domain(rng, shape), dtype=np.float64)
    expected = reference(x, axis=axis, keepdims=keepdims)
    assert_values_equal(op(to_array(x), axis=axis, keepdims=keepdims), expected, rtol=1e-12)
    assert_derivatives_match(lambda x: op(x, axis=axis, keepdims=keepdims), [to_array(x)], seed)


@with_backend
@given(shape_axis=shape_and_axis(), seed=SEEDS)
def test_softmax_derivatives_match_finite_differences(backend, to_array, shape_axis, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_values_equal(md.softmax(to_array(x), axis=axis), sps.softmax(x, axis=axis),
                        rtol=1e-12, atol=1e-15)
    assert_derivatives_match(lambda x: md.softmax(x, axis=axis), [to_array(x)], seed)


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_cumsum_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    ndim = len(shape)
    axis = data.draw(st.none() | st.integers(-ndim, ndim - 1)) if ndim else None
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.cumsum(to_array(x), axis=axis), np.cumsum(x, axis=axis))
    assert_derivatives_match(lambda x: md.cumsum(x, axis=axis), [to_array(x)], seed)


# ---------------------------------------------------------------------------------------------
# Matrix products
# ---------------------------------------------------------------------------------------------


@st.composite
def matmul_shapes(draw):
    """Operand shapes for matmul: vectors, matrices and stacks with broadcast batch dims."""
    n, m, p = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                   max_side=3))
    a_batch, b_batch = batch.input_shapes
    a_shape = (m,) if draw(st.booleans()) else (*a_batch, n, m)
    b_shape = (m,) if draw(st.booleans()) else (*b_batch, m, p)
    return a_shape, b_shape


@with_backend
@given(shapes=matmul_shapes(), seed=SEEDS, use_operator=st.booleans())
def test_matmul_derivatives_match_finite_differences(backend, to_array, shapes, seed,
                                                     use_operator):
    op = operator.matmul if use_operator else md.matmul
    rng = np.random.default_rng(seed)
    a, b = (normal(rng, s) for s in shapes)
    assert_values_equal(op(to_array(a), to_array(b)), np.matmul(a, b), rtol=1e-12, atol=1e-14)
    assert_derivatives_match(op, [to_array(a), to_array(b)], seed)
    # one operand constant (named op for a constant on the left: see the operators test)
    assert_derivatives_match(lambda a: op(a, to_array(b)), [to_array(a)], seed)
    assert_derivatives_match(lambda b: md.matmul(to_array(a), b), [to_array(b)], seed)


@st.composite
def dot_shapes(draw):
    n, m, p = (draw(st.integers(1, 4)) for _ in range(3))
    return draw(st.sampled_from([((), (n, m)), ((n,), ()), ((m,), (m,)), ((n, m), (m,)),
                                 ((m,), (m, p)), ((n, m), (m, p))]))


@with_backend
@given(shapes=dot_shapes(), seed=SEEDS)
def test_dot_derivatives_match_finite_differences(backend, to_array, shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = (normal(rng, s) for s in shapes)
    assert_values_equal(md.dot(to_array(a), to_array(b)), np.dot(a, b), rtol=1e-12, atol=1e-14)
    assert_derivatives_match(md.dot, [to_array(a), to_array(b)], seed)


@with_backend
@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4), data=st.data(),
       seed=SEEDS)
def test_trace_matches_numpy_and_its_derivatives_match_finite_differences(backend, to_array,
                                                                          shape, data, seed):
    rank = len(shape)
    axis1, axis2 = data.draw(st.permutations(range(-rank, 0)).map(lambda p: p[:2]))
    offset = data.draw(st.integers(-max(shape) - 1, max(shape) + 1))  # empty diagonals too
    x = normal(np.random.default_rng(seed), shape)
    op = lambda x: md.trace(x, offset=offset, axis1=axis1, axis2=axis2)  # noqa: E731
    assert_values_equal(op(to_array(x)), np.trace(x, offset, axis1, axis2), atol=1e-14)
    assert_derivatives_match(op, [to_array(x)], seed)


def test_trace_is_numpys_matrix_trace_and_refuses_what_numpy_refuses(backend, to_array):
    with md.use_backend("numpy"):
        assert float(md.trace(np.eye(3))) == 3.0  # the example: NumPy in, NumPy out
    assert float(host(md.trace(to_array(np.eye(3))))) == 3.0
    x = to_array(np.arange(12.0).reshape(3, 4))
    assert_values_equal(md.grad(md.trace)(x), np.eye(3, 4))
    assert_values_equal(md.grad(lambda x: md.trace(x, offset=-1))(x), np.eye(3, 4, k=-1))
    with pytest.raises(md.ShapeError, match="trace: needs an array of at least 2 dims"):
        md.trace(to_array([1.0, 2.0]))
    with pytest.raises(ValueError, match="trace: axis1 and axis2 must differ"):
        md.trace(x, axis1=1, axis2=-1)


# ---------------------------------------------------------------------------------------------
# Shapes: transpose, reshape, broadcast_to, expand_dims, squeeze, concatenate, stack
# ---------------------------------------------------------------------------------------------


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_transpose_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    ndim = len(shape)
    perm = tuple(data.draw(st.permutations(range(ndim))))
    negative_perm = tuple(a - ndim for a in perm)
    x = normal(np.random.default_rng(seed), shape)
    for axes in (None, perm, negative_perm):
        assert_values_equal(md.transpose(to_array(x), axes), np.transpose(x, axes))
        assert_derivatives_match(lambda x: md.transpose(x, axes), [to_array(x)], seed)
    if ndim >= 2:
        assert_values_equal(md.matrix_transpose(to_array(x)), np.swapaxes(x, -1, -2))
        assert_derivatives_match(md.matrix_transpose, [to_array(x)], seed)


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_reshape_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    size = math.prod(shape)
    target = data.draw(st.sampled_from([
        (size,), (-1,), shape[::-1], (1, *shape), (*shape, 1), (size, 1), (1, -1), (),
    ]).filter(lambda s: s != () or size == 1))
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.reshape(to_array(x), target), np.reshape(x, target))
    assert_derivatives_match(lambda x: md.reshape(x, target), [to_array(x)], seed)


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_broadcast_to_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    other = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=4, max_side=4))
    target = np.broadcast_shapes(shape, other)
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.broadcast_to(to_array(x), target), np.broadcast_to(x, target))
    assert_derivatives_match(lambda x: md.broadcast_to(x, target), [to_array(x)], seed)


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_expand_dims_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    k = data.draw(st.integers(1, 2))
    rank = len(shape) + k
    positions = data.draw(st.lists(st.integers(0, rank - 1), min_size=k, max_size=k,
                                   unique=True))
    negate = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    axes = tuple(p - rank if neg else p for p, neg in zip(positions, negate))
    axis = axes[0] if k == 1 and data.draw(st.booleans()) else axes
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.expand_dims(to_array(x), axis), np.expand_dims(x, axis))
    assert_derivatives_match(lambda x: md.expand_dims(x, axis), [to_array(x)], seed)


@with_backend
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=2), data=st.data(),
       seed=SEEDS)
def test_squeeze_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    ones = [i for i, d in enumerate(shape) if d == 1]
    chosen = data.draw(st.lists(st.sampled_from(ones), unique=True) if ones else st.just([]))
    axis = None if data.draw(st.booleans()) else tuple(
        a - len(shape) if data.draw(st.booleans()) else a for a in chosen)
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.squeeze(to_array(x), axis), np.squeeze(x, axis))
    assert_derivatives_match(lambda x: md.squeeze(x, axis), [to_array(x)], seed)


@with_backend
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), data=st.data(),
       seed=SEEDS)
def test_concatenate_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    pieces = []
    for size in sizes:
        piece_shape = list(shape)
        piece_shape[axis] = size
        pieces.append(normal(rng, tuple(piece_shape)))
    assert_values_equal(md.concatenate([to_array(p) for p in pieces], axis=axis),
                        np.concatenate(pieces, axis=axis))
    assert_derivatives_match(lambda *ps: md.concatenate(ps, axis=axis),
                             [to_array(p) for p in pieces], seed)
    # a constant piece among traced ones
    constant = to_array(pieces[0])
    assert_derivatives_match(lambda *ps: md.concatenate([constant, *ps], axis=axis),
                             [to_array(p) for p in pieces], seed)


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_stack_derivatives_match_finite_differences(backend, to_array, shape, data, seed):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim - 1, ndim))
    count = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    pieces = [normal(rng, shape) for _ in range(count)]
    assert_values_equal(md.stack([to_array(p) for p in pieces], axis=axis),
                        np.stack(pieces, axis=axis))
    assert_derivatives_match(lambda *ps: md.stack(ps, axis=axis),
                             [to_array(p) for p in pieces], seed)


# ---------------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------------


@st.composite
def basic_index(draw, shape):
    """A basic index for ``shape``: ints (maybe negative), slices (any step sign), None and at
    most one Ellipsis."""

    def item(d):
        if draw(st.booleans()):
            return draw(st.integers(-d, d - 1))
        bound = st.none() | st.integers(-d - 1, d + 1)
        step = draw(st.sampled_from([None, 1, 2, -1, -2]))
        return slice(draw(bound), draw(bound), step)

    ndim = len(shape)
    n_front = draw(st.integers(0, ndim))
    front = [item(d) for d in shape[:n_front]]
    if draw(st.booleans()):  # Ellipsis, then maybe some trailing axes
        n_back = draw(st.integers(0, ndim - n_front))
        back = [item(d) for d in shape[ndim - n_back:]]
        items = [*front, Ellipsis, *back]
    else:
        items = front
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return items[0] if len(items) == 1 and draw(st.booleans()) else tuple(items)


@with_backend
@given(shape=SHAPES, data=st.data(), seed=SEEDS)
def test_basic_indexing_derivatives_match_finite_differences(backend, to_array, shape, data,
                                                             seed):
    key = data.draw(basic_index(shape))
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.getitem(to_array(x), key), x[key])
    assert_derivatives_match(lambda x: md.getitem(x, key), [to_array(x)], seed)
    assert_forms_agree(lambda x: x[key], lambda x: md.getitem(x, key), [to_array(x)], seed)


@with_backend
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data(),
       seed=SEEDS)
def test_boolean_mask_indexing_derivatives_match_finite_differences(backend, to_array, shape,
                                                                    data, seed):
    rng = np.random.default_rng(seed)
    mask_dims = data.draw(st.integers(1, len(shape)))
    mask = rng.random(shape[:mask_dims]) < 0.5
    key = backend.from_host(mask)
    x = normal(rng, shape)
    assert_values_equal(md.getitem(to_array(x), key), x[mask])
    assert_derivatives_match(lambda x: md.getitem(x, key), [to_array(x)], seed)
    assert_forms_agree(lambda x: x[key], lambda x: md.getitem(x, key), [to_array(x)], seed)


@st.composite
def integer_array_index(draw, shape):
    """Integer-array indices with repeats: one array on the first axis, an array after a
    slice, an array then an int, or two broadcasting arrays; sometimes as a list."""
    ndim = len(shape)

    def indices(d, index_shape):
        return np.array(draw(st.lists(st.integers(-d, d - 1), min_size=math.prod(index_shape),
                                      max_size=math.prod(index_shape)))).reshape(index_shape)

    index_shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    forms = ["first"] + (["after slice", "then int", "two arrays"] if ndim >= 2 else [])
    form = draw(st.sampled_from(forms))
    if form == "first":
        return (indices(shape[0], index_shape),)
    if form == "after slice":
        return (slice(None), indices(shape[1], index_shape))
    if form == "then int":
        return (indices(shape[0], index_shape), draw(st.integers(-shape[1], shape[1] - 1)))
    return (indices(shape[0], index_shape), indices(shape[1], index_shape[-1:]))


@with_backend
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data(),
       seed=SEEDS)
def test_integer_array_indexing_derivatives_match_finite_differences(backend, to_array, shape,
                                                                     data, seed):
    np_key = data.draw(integer_array_index(shape))
    key = tuple(backend.from_host(k) if isinstance(k, np.ndarray) else k for k in np_key)
    x = normal(np.random.default_rng(seed), shape)
    assert_values_equal(md.getitem(to_array(x), key), x[np_key])
    assert_derivatives_match(lambda x: md.getitem(x, key), [to_array(x)], seed)
    assert_forms_agree(lambda x: x[key], lambda x: md.getitem(x, key), [to_array(x)], seed)
    if len(np_key) == 1 and np_key[0].ndim == 1:  # a Python list of ints is an index too
        as_list = [int(i) for i in np_key[0]]
        assert_derivatives_match(lambda x: md.getitem(x, as_list), [to_array(x)], seed)


# ---------------------------------------------------------------------------------------------
# Methods and attributes of traced values: the same as the named ops
# ---------------------------------------------------------------------------------------------


@with_backend
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), data=st.data(), seed=SEEDS)
def test_methods_of_traced_values_agree_with_named_ops(backend, to_array, shape_axis, keepdims,
                                                       data, seed):
    shape, axis = shape_axis
    ndim = len(shape)
    perm = tuple(data.draw(st.permutations(range(ndim))))
    target = shape[::-1] + (1,)
    x = [to_array(distinct(np.random.default_rng(seed), shape))]
    forms = [
        (lambda x: x.sum(axis=axis, keepdims=keepdims),
         lambda x: md.sum(x, axis=axis, keepdims=keepdims)),
        (lambda x: x.mean(axis=axis, keepdims=keepdims),
         lambda x: md.mean(x, axis=axis, keepdims=keepdims)),
        (lambda x: x.prod(axis=axis, keepdims=keepdims),
         lambda x: md.prod(x, axis=axis, keepdims=keepdims)),
        (lambda x: x.max(axis=axis, keepdims=keepdims),
         lambda x: md.max(x, axis=axis, keepdims=keepdims)),
        (lambda x: x.min(axis=axis, keepdims=keepdims),
         lambda x: md.min(x, axis=axis, keepdims=keepdims)),
        (lambda x: x.T, md.transpose),
        (lambda x: x.transpose(), md.transpose),
        (lambda x: x.transpose(*perm), lambda x: md.transpose(x, perm)),
        (lambda x: x.reshape(target), lambda x: md.reshape(x, target)),
        (lambda x: x.reshape(*target), lambda x: md.reshape(x, target)),
        (lambda x: +x, lambda x: x),
    ]
    if ndim >= 2:
        forms.append((lambda x: x.mT, md.matrix_transpose))
    for form, reference in forms:
        assert_forms_agree(form, reference, x, seed)


@given(shapes=BROADCAST_PAIRS, seed=SEEDS)
def test_reflected_operators_with_numpy_constants_differentiate_the_traced_operand(shapes, seed):
    # NumPy only: NumPy arrays defer to a traced right operand (Box.__array_ufunc__ = None);
    # array_api_strict arrays raise TypeError instead (see the constant-operand test)
    rng = np.random.default_rng(seed)
    x_shape, c_shape = shapes.input_shapes
    c = rng.uniform(0.5, 2.0, size=c_shape)
    with md.use_backend("numpy"):
        x = [np.asarray(rng.uniform(0.5, 2.0, size=x_shape))]
        for symbol, op in SCALAR_OPERATORS.items():
            named = NAMED_BINARY[symbol]
            assert_forms_agree(lambda x: op(c, x), lambda x: named(c, x), x, seed)
        a, b = rng.standard_normal((2, 3)), [rng.standard_normal((3, 4))]
        assert_forms_agree(lambda b: a @ b, lambda b: md.matmul(a, b), b, seed)


# ---------------------------------------------------------------------------------------------
# Piecewise-constant ops and comparisons: constants, with zero derivative
# ---------------------------------------------------------------------------------------------


@with_backend
@given(shape=SHAPES, seed=SEEDS)
def test_sign_floor_and_stop_gradient_have_zero_derivative(backend, to_array, shape, seed):
    rng = np.random.default_rng(seed)
    x = grid(rng, shape, 0.1)  # never an integer, never 0
    v, u = normal(rng, shape), normal(rng, shape)
    for op, reference in ((md.sign, np.sign), (md.floor, np.floor),
                          (md.stop_gradient, lambda x: x)):
        value, tangent = md.jvp(op, (to_array(x),), (to_array(v),))
        assert_values_equal(value, reference(x))
        assert_values_equal(tangent, np.zeros(shape))
        _, pullback = md.vjp(op, to_array(x))
        assert_values_equal(pullback(to_array(u))[0], np.zeros(shape))
        # inside a larger function it is a constant factor: d/dx Σ op(x)·x = op(x)
        g = md.grad(lambda x: md.sum(x * op(x)))(to_array(x))
        assert_values_equal(g, reference(x))


COMPARISONS = {
    "==": (operator.eq, md.equal, np.equal),
    "!=": (operator.ne, md.not_equal, np.not_equal),
    "<": (operator.lt, md.less, np.less),
    "<=": (operator.le, md.less_equal, np.less_equal),
    ">": (operator.gt, md.greater, np.greater),
    ">=": (operator.ge, md.greater_equal, np.greater_equal),
}


@with_backend
@given(shapes=BROADCAST_PAIRS, seed=SEEDS)
def test_comparisons_return_plain_boolean_arrays_under_every_transform(backend, to_array,
                                                                      shapes, seed):
    rng = np.random.default_rng(seed)
    x_shape, y_shape = shapes.input_shapes
    x = 0.5 * rng.integers(-2, 3, size=x_shape)  # a coarse grid, so that ties occur
    y = 0.5 * rng.integers(-2, 3, size=y_shape)
    results = []

    def compare(a, b):
        for symbol, (op, named, reference) in COMPARISONS.items():
            for out in (op(a, b), named(a, b)):
                assert backend.is_array(out), (symbol, type(out))
                assert backend.xp.isdtype(out.dtype, "bool"), (symbol, out.dtype)
                results.append((host(out), reference(x, y)))
        return md.sum(a) + md.sum(b)

    compare(to_array(x), to_array(y))  # raw arrays
    md.grad(compare, argnums=(0, 1))(to_array(x), to_array(y))  # reverse mode
    md.jvp(compare, (to_array(x), to_array(y)), (to_array(x), to_array(y)))  # forward mode
    md.hessian(lambda x: compare(x, to_array(y)))(to_array(x))  # forward over reverse
    for actual, expected in results:
        np.testing.assert_array_equal(actual, expected)

    # a function whose only dependence on x is through a comparison has zero derivative
    g = md.grad(lambda x: md.sum(md.where(x > 0.0, 1.0, -1.0)))(to_array(x))
    assert_values_equal(g, np.zeros(x_shape))


@with_backend
@given(shapes=BROADCAST_PAIRS, seed=SEEDS)
def test_logical_ops_of_conditions_are_plain_boolean_arrays_under_every_transform(
        backend, to_array, shapes, seed):
    rng = np.random.default_rng(seed)
    x, y = (rng.standard_normal(s) for s in shapes.input_shapes)
    expected = [np.logical_and(x > 0, y > 0), np.logical_or(x > 0, y > 0), np.logical_not(x > 0)]

    def combine(a, b):
        outs = [md.logical_and(a > 0, b > 0), md.logical_or(a > 0, b > 0), md.logical_not(a > 0)]
        for out, reference in zip(outs, expected):
            assert backend.is_array(out) and backend.xp.isdtype(out.dtype, "bool")
            np.testing.assert_array_equal(host(out), reference)
        return md.sum(a * b)

    combine(to_array(x), to_array(y))
    md.grad(combine, argnums=(0, 1))(to_array(x), to_array(y))
    md.jvp(combine, (to_array(x), to_array(y)), (to_array(x), to_array(y)))


def test_a_traced_condition_of_where_is_never_differentiated():
    # NumPy only: array_api_strict's where wants a boolean condition, which cannot be traced
    with md.use_backend("numpy"):
        c = np.array([1.0, 0.0, 2.0])
        _, tangent = md.jvp(lambda c: md.where(c, 1.0, 2.0), (c,), (np.ones(3),))
        assert_values_equal(tangent, np.zeros(3))
        g = md.grad(lambda c: md.sum(md.where(c, c, 3.0 * c)))(c)
        assert_values_equal(g, [1.0, 3.0, 1.0])


def test_piecewise_constant_ops_are_primitives_without_rules():
    for op in (md.equal, md.not_equal, md.less, md.less_equal, md.greater, md.greater_equal,
               md.logical_and, md.logical_or, md.logical_not, md.sign, md.floor):
        assert isinstance(op, md.Primitive) and not op.differentiable, op
        assert op.jvp is None and op.vjp is None, op
    with pytest.raises(ValueError, match="non-differentiable primitive takes no jvp"):
        md.Primitive("bad", lambda x: x, jvp=lambda ts, args, out: ts[0], differentiable=False)


# ---------------------------------------------------------------------------------------------
# Elementwise partials name what they read, so what the tape keeps cannot drift
# ---------------------------------------------------------------------------------------------

def test_a_partial_naming_a_value_the_op_does_not_have_cannot_be_defined():
    with pytest.raises(TypeError, match=r"∂f/∂y has a parameter 'z', which is neither an "
                                        r"argument of f \(x, y\), 'out'"):
        elementwise_primitive("f", lambda x, y: x * y, [lambda y: y, lambda z: z])
    with pytest.raises(TypeError, match=r"f: 1 partial\(s\) for 2 argument\(s\)"):
        elementwise_primitive("f", lambda x, y: x * y, [lambda y: y])


def test_a_partial_that_reads_an_argument_it_does_not_name_cannot_be_defined():
    # the example: ∂(x·y)/∂y = x, written without naming x, read a stale x (under jvp)
    # or nothing (the tape had not kept it)
    with pytest.raises(TypeError, match=r"∂f/∂y refers to x without naming it"):
        elementwise_primitive("f", lambda x, y: x * y, [lambda y: y, lambda: x])  # noqa: F821

    def closure(x):
        return lambda out: out * x  # x from the enclosing scope, not the op's argument

    with pytest.raises(TypeError, match=r"∂f/∂x refers to x without naming it"):
        elementwise_primitive("f", lambda x: x * x, [closure(3.0)])


def test_the_tape_keeps_exactly_what_the_differentiated_partials_name(backend, to_array):
    a, b = to_array([1.0, 2.0]), to_array([3.0, 4.0])
    out = md.multiply(a, b)

    def kept(primitive, args, needs):
        values, value, _ = primitive.save(args, primitive(*args), needs)
        return [v is not None for v in values], value is not None

    assert kept(md.multiply, (a, b), (True, False)) == ([False, True], False)   # ∂/∂x reads y
    assert kept(md.multiply, (a, b), (False, True)) == ([True, False], False)   # ∂/∂y reads x
    assert kept(md.divide, (a, b), (False, True)) == ([False, True], True)      # -out/y
    assert kept(md.add, (a, b), (True, True)) == ([False, False], False)
    assert kept(md.exp, (a,), (True,)) == ([False], True)
    assert kept(md.log, (a,), (True,)) == ([True], False)
    assert host(out).tolist() == [3.0, 8.0]


def test_a_partial_reading_any_argument_gives_the_same_derivative_in_both_modes(backend,
                                                                                to_array):
    # f(x, y) = x² y: ∂f/∂x = 2xy reads both arguments, ∂f/∂y = x² reads only x; the tape keeps
    # x for the second partial even when only y is differentiated
    f = elementwise_primitive("x2y", lambda x, y: x * x * y,
                              [lambda x, y: 2.0 * x * y, lambda x: x * x])
    a, b = to_array([0.5, -1.5]), to_array([2.0, 3.0])
    assert_derivatives_match(f, [a, b], seed=0)
    assert_values_equal(md.grad(lambda y: md.sum(f(a, y)))(b), [0.25, 2.25])
    assert_values_equal(md.jvp(lambda y: f(a, y), (b,), (to_array([1.0, 1.0]),))[1],
                        [0.25, 2.25])


def test_operators_of_traced_values_come_from_the_ops_table():
    assert core.op("add") is md.add and core.op("matmul") is md.matmul
    with pytest.raises(LookupError, match="no op named 'nope' is registered"):
        core.op("nope")
    with pytest.raises(ValueError, match="'add' is already the op"):
        core.register_ops(add=md.subtract)


# ---------------------------------------------------------------------------------------------
# Zero-size arrays: empty derivatives, no errors
# ---------------------------------------------------------------------------------------------

# name: (op, input shapes)
ZERO_SIZE = {
    "exp": (md.exp, [(0, 3)]),
    "add, broadcasting": (md.add, [(0, 3), (3,)]),
    "sum over the empty axis": (lambda x: md.sum(x, axis=0), [(0, 3)]),
    "sum of everything": (md.sum, [(0, 3)]),
    "prod over the empty axis": (lambda x: md.prod(x, axis=0), [(0, 3)]),
    "cumsum": (lambda x: md.cumsum(x, axis=0), [(0, 3)]),
    "matmul, empty contraction": (md.matmul, [(2, 0), (0, 3)]),
    "concatenate with an empty piece": (lambda a, b: md.concatenate([a, b]), [(0, 3), (2, 3)]),
    "transpose": (md.transpose, [(0, 3)]),
    "empty slice": (lambda x: md.getitem(x, slice(1, 1)), [(3,)]),
}


@pytest.mark.parametrize("name", list(ZERO_SIZE))
def test_zero_size_arrays_differentiate_without_error(backend, to_array, name):
    op, shapes = ZERO_SIZE[name]
    rng = np.random.default_rng(0)
    assert_derivatives_match(op, [to_array(normal(rng, s)) for s in shapes], seed=0)


@pytest.mark.parametrize("kind", ["int", "bool"])
def test_empty_index_arrays_select_nothing_and_pass_back_zeros(backend, to_array, kind):
    key = backend.from_host(np.zeros((0,), dtype=np.int64) if kind == "int"
                            else np.zeros((3,), dtype=bool))
    x = to_array([1.0, 2.0, 3.0])
    assert host(md.getitem(x, key)).shape == (0,)
    assert_values_equal(md.grad(lambda x: md.sum(md.getitem(x, key)))(x), np.zeros(3))
    assert_derivatives_match(lambda x: md.getitem(x, key), [x], seed=0)


# ---------------------------------------------------------------------------------------------
# Derivatives known in closed form
# ---------------------------------------------------------------------------------------------

EULER_GAMMA = 0.5772156649015329

# op, point, exact derivative at that point
KNOWN_DERIVATIVES = {
    "sigmoid at 0 is 1/4": (md.sigmoid, 0.0, 0.25),
    "softplus at 0 is 1/2": (md.softplus, 0.0, 0.5),
    "tanh at 0 is 1": (md.tanh, 0.0, 1.0),
    "erf at 0 is 2/sqrt(pi)": (md.erf, 0.0, 2.0 / math.sqrt(math.pi)),
    "gammaln at 1 is -euler gamma": (md.gammaln, 1.0, -EULER_GAMMA),
    "digamma at 1 is pi^2/6": (md.digamma, 1.0, math.pi ** 2 / 6),
    "polygamma 1 at 1 is -2 zeta(3)": (lambda x: md.polygamma(1, x), 1.0,
                                       -2.0 * 1.2020569031595942),
    "sqrt at 4 is 1/4": (md.sqrt, 4.0, 0.25),
    "log at 2 is 1/2": (md.log, 2.0, 0.5),
    "log1p at 0 is 1": (md.log1p, 0.0, 1.0),
    "expm1 at 0 is 1": (md.expm1, 0.0, 1.0),
    "abs at -2 is -1": (md.abs, -2.0, -1.0),
    "tan at 0 is 1": (md.tan, 0.0, 1.0),
    "x ** 3 at 2 is 12": (lambda x: x ** 3, 2.0, 12.0),
    "2 ** x at 1 is 2 log 2": (lambda x: 2.0 ** x, 1.0, 2.0 * math.log(2.0)),
}


@pytest.mark.parametrize("name", list(KNOWN_DERIVATIVES))
def test_derivative_equals_closed_form(backend, to_array, name):
    op, point, expected = KNOWN_DERIVATIVES[name]
    x = to_array(point)
    assert float(md.grad(op)(x)) == pytest.approx(expected, rel=1e-12)
    assert float(md.jvp(op, (x,), (to_array(1.0),))[1]) == pytest.approx(expected, rel=1e-12)


def test_grad_of_logsumexp_is_softmax(backend, to_array):
    x = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0], [800.0, 799.0, 0.0, -800.0]])
    g = md.grad(lambda x: md.logsumexp(x))(to_array(x))
    assert_values_equal(g, sps.softmax(x), rtol=1e-12, atol=1e-300)
    # along an axis: the pullback of ones is the softmax along that axis
    _, pullback = md.vjp(lambda x: md.logsumexp(x, axis=1), to_array(x))
    assert_values_equal(pullback(to_array(np.ones(3)))[0], sps.softmax(x, axis=1), rtol=1e-12,
                        atol=1e-300)


def test_grad_of_prod_with_one_zero_is_product_of_the_others(backend, to_array):
    g = md.grad(md.prod)(to_array([2.0, 0.0, 3.0, 4.0]))
    assert_values_equal(g, [0.0, 24.0, 0.0, 0.0])
    g = md.grad(md.prod)(to_array([2.0, 0.0, 3.0, 0.0]))  # two zeros: every partial is 0
    assert_values_equal(g, [0.0, 0.0, 0.0, 0.0])
    g = md.grad(md.prod)(to_array([2.0, -1.0, 3.0, 4.0]))
    assert_values_equal(g, [-12.0, 24.0, -8.0, -6.0])
    # per slice, along an axis
    x = np.array([[1.0, 0.0, 5.0], [2.0, 3.0, 4.0]])
    _, pullback = md.vjp(lambda x: md.prod(x, axis=1), to_array(x))
    assert_values_equal(pullback(to_array([1.0, 1.0]))[0], [[0.0, 5.0, 0.0], [12.0, 8.0, 6.0]])


def test_max_and_min_with_ties_share_the_gradient_equally(backend, to_array):
    x = to_array([1.0, 3.0, 3.0, 2.0])
    assert_values_equal(md.grad(md.max)(x), [0.0, 0.5, 0.5, 0.0])
    assert_values_equal(md.grad(md.min)(to_array([1.0, 3.0, 1.0, 1.0])),
                        [1 / 3, 0.0, 1 / 3, 1 / 3])
    _, tangent = md.jvp(md.max, (x,), (to_array([10.0, 1.0, 3.0, 100.0]),))
    assert float(tangent) == pytest.approx(2.0, rel=1e-12)  # mean of the tied directions
    # along an axis, each row shares its own ties
    m = np.array([[2.0, 2.0, 1.0], [0.0, 5.0, 4.0]])
    g = md.grad(lambda m: md.sum(md.max(m, axis=1)))(to_array(m))
    assert_values_equal(g, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    # maximum(x, y) at x == y: half to each
    gx, gy = md.grad(lambda x, y: md.sum(md.maximum(x, y)), argnums=(0, 1))(
        to_array([1.0, 2.0]), to_array([1.0, 0.0]))
    assert_values_equal(gx, [0.5, 1.0])
    assert_values_equal(gy, [0.5, 0.0])


def test_integer_indexing_with_repeated_indices_accumulates(backend, to_array):
    idx = backend.from_host(np.array([0, 0, 2, 0, -1]))
    g = md.grad(lambda x: md.sum(x[idx]))(to_array(np.arange(4.0)))
    assert_values_equal(g, [3.0, 0.0, 1.0, 1.0])
    # weighted, so each repeat's cotangent is seen to be added: x̄_0 = 1 + 2 + 4
    w = to_array([1.0, 2.0, 3.0, 4.0, 5.0])
    g = md.grad(lambda x: md.sum(x[idx] * w))(to_array(np.arange(4.0)))
    assert_values_equal(g, [7.0, 0.0, 3.0, 5.0])
    # the forward-mode transpose agrees: J v gathers v with the same repeats
    _, tangent = md.jvp(lambda x: x[idx], (to_array(np.zeros(4)),),
                        (to_array([1.0, 10.0, 100.0, 1000.0]),))
    assert_values_equal(tangent, [1.0, 1.0, 100.0, 1.0, 1000.0])


def test_grad_of_cumsum_counts_the_later_positions(backend, to_array):
    g = md.grad(lambda x: md.sum(md.cumsum(x)))(to_array(np.zeros(5)))
    assert_values_equal(g, [5.0, 4.0, 3.0, 2.0, 1.0])


def test_grad_of_mean_is_one_over_n(backend, to_array):
    g = md.grad(lambda x: md.mean(x[:, 1:], axis=(0, 1)))(to_array(np.ones((2, 3))))
    assert_values_equal(g, [[0.0, 0.25, 0.25], [0.0, 0.25, 0.25]])


def test_hessian_of_sum_of_cubes_is_diagonal_six_x(backend, to_array):
    x = np.array([1.0, -2.0, 0.5])
    h = md.hessian(lambda x: md.sum(x ** 3))(to_array(x))
    assert_values_equal(h, np.diag(6.0 * x))
