"""Every primitive's batching rule against the loop it stands for, on every engine backend.

For each op, at random element shapes, batch sizes and batch axes (hypothesis), and with a
random choice of which arguments are batched (the others are shared, ``in_axes=None``),
``vmap(f, in_axes)(*args)`` must equal ``stack([f(*args_b) for b])``. The rules run the same
floating-point operations on the same numbers as the loop, so the tolerance is 1e-12 relative
(only the order of a summation may differ between one batched call and B separate ones).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidiff as md
from minidiff.ops.surrogates import soft_step, straight_through

with_backend = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                        max_examples=8)

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
RTOL = 1e-12


def host(x):
    return np.asarray(md.to_host(x))


def loop_and_vmap(f, args, in_axes, backend):
    """(vmap's result, the loop's stacked result) on host arrays. ``args`` are NumPy arrays;
    ``in_axes[i]`` is the batch axis of ``args[i]`` or None."""
    dev = [backend.from_host(a) for a in args]
    batched = md.vmap(f, in_axes=tuple(in_axes))(*dev)
    size = next(a.shape[ax] for a, ax in zip(args, in_axes) if ax is not None)
    per = []
    for b in range(size):
        element = [backend.from_host(np.take(a, b, axis=ax)) if ax is not None else d
                   for a, d, ax in zip(args, dev, in_axes)]
        per.append(host(f(*element)))
    return host(batched), np.stack(per)


def assert_matches_loop(f, args, in_axes, backend, rtol=RTOL):
    got, want = loop_and_vmap(f, args, in_axes, backend)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype == bool:
        assert np.array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300)


@st.composite
def batched_args(draw, n_args, positive=False, same_shape=False, low=-2.0, high=2.0):
    """Arrays of broadcastable element shapes, each batched (at a random axis) or shared."""
    size = draw(st.integers(1, 3))
    shape = draw(SHAPES)
    args, axes = [], []
    for i in range(n_args):
        if same_shape or i == 0:
            s = shape
        else:  # a suffix of the first shape, with some axes set to 1: broadcasts against it
            s = shape[draw(st.integers(0, len(shape))):]
            s = tuple(1 if draw(st.booleans()) else d for d in s)
        batched = i == 0 or draw(st.booleans())
        axis = draw(st.integers(0, len(s))) if batched else None
        full = s if axis is None else s[:axis] + (size,) + s[axis:]
        lo = 0.2 if positive else low
        value = np.asarray(draw(hnp.arrays(np.float64, full, elements=st.floats(
            lo, high, allow_nan=False, allow_subnormal=False))))
        args.append(value)
        axes.append(axis)
    order = draw(st.permutations(range(n_args)))  # the batched argument need not come first
    return [args[i] for i in order], [axes[i] for i in order]


UNARY = {
    "negative": md.negative, "exp": md.exp, "sin": md.sin, "cos": md.cos, "tanh": md.tanh,
    "sigmoid": md.sigmoid, "softplus": md.softplus, "abs": md.abs, "expm1": md.expm1,
    "erf": md.erf, "sign": md.sign, "floor": md.floor, "logical_not": lambda x: ~(x > 0),
    "stop_gradient": md.stop_gradient, "soft_step": lambda x: soft_step(x, 3.0),
}
POSITIVE_UNARY = {
    "log": md.log, "log1p": md.log1p, "sqrt": md.sqrt, "gammaln": md.gammaln,
    "digamma": md.digamma, "polygamma": lambda x: md.polygamma(1, x),
}
BINARY = {
    "add": md.add, "subtract": md.subtract, "multiply": md.multiply, "divide": md.divide,
    "maximum": md.maximum, "equal": md.equal, "not_equal": md.not_equal, "less": md.less,
    "less_equal": md.less_equal, "greater": md.greater, "greater_equal": md.greater_equal,
    "logical_and": lambda x, y: md.logical_and(x > 0, y > 0),
    "logical_or": lambda x, y: md.logical_or(x > 0, y > 0),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@with_backend
@given(data=st.data())
def test_unary_rule_matches_loop(backend, name, data):
    args, axes = data.draw(batched_args(1))
    assert_matches_loop(UNARY[name], args, axes, backend)


@pytest.mark.parametrize("name", sorted(POSITIVE_UNARY))
@with_backend
@given(data=st.data())
def test_unary_rule_on_positive_numbers_matches_loop(backend, name, data):
    args, axes = data.draw(batched_args(1, positive=True))
    assert_matches_loop(POSITIVE_UNARY[name], args, axes, backend)


@pytest.mark.parametrize("name", sorted(BINARY))
@with_backend
@given(data=st.data())
def test_binary_rule_aligns_batch_axes_with_broadcasting(backend, name, data):
    args, axes = data.draw(batched_args(2))
    assert_matches_loop(BINARY[name], args, axes, backend)


@with_backend
@given(data=st.data())
def test_power_rule_matches_loop(backend, data):
    args, axes = data.draw(batched_args(2, positive=True))
    assert_matches_loop(md.power, args, axes, backend)


@with_backend
@given(data=st.data())
def test_where_rule_matches_loop(backend, data):
    args, axes = data.draw(batched_args(3))
    assert_matches_loop(lambda c, x, y: md.where(c > 0, x, y), args, axes, backend)


@with_backend
@given(data=st.data())
def test_straight_through_rule_matches_loop(backend, data):
    args, axes = data.draw(batched_args(2, same_shape=True))
    assert_matches_loop(lambda h, s: straight_through(h, s), args, axes, backend)


REDUCTIONS = {"sum": md.sum, "max": md.max, "prod": md.prod, "mean": md.mean, "min": md.min}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@with_backend
@given(data=st.data())
def test_reduction_rule_shifts_axes(backend, name, data):
    args, axes = data.draw(batched_args(1))
    rank = args[0].ndim - 1
    axis = data.draw(st.one_of(st.none(), st.integers(-rank, rank - 1))) if rank else None
    keepdims = data.draw(st.booleans())
    assert_matches_loop(lambda x: REDUCTIONS[name](x, axis=axis, keepdims=keepdims), args,
                        axes, backend)


@with_backend
@given(data=st.data())
def test_cumsum_rule_shifts_the_axis(backend, data):
    args, axes = data.draw(batched_args(1))
    rank = args[0].ndim - 1
    axis = data.draw(st.one_of(st.none(), st.integers(-rank, rank - 1))) if rank else None
    assert_matches_loop(lambda x: md.cumsum(x, axis=axis), args, axes, backend)


@with_backend
@given(data=st.data())
def test_shape_rules_match_loop(backend, data):
    args, axes = data.draw(batched_args(1))
    shape = tuple(int(d) for d in np.delete(args[0].shape, axes[0]))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    target = (2, *shape)
    fns = [lambda x: md.reshape(x, (-1,)), lambda x: md.transpose(x, perm),
           lambda x: md.broadcast_to(x, target), lambda x: md.expand_dims(x, 0),
           lambda x: md.squeeze(md.expand_dims(x, -1), -1)]
    for fn in fns:
        assert_matches_loop(fn, args, axes, backend)


@with_backend
@given(data=st.data())
def test_indexing_rules_match_loop(backend, data):
    args, axes = data.draw(batched_args(1, same_shape=True))
    shape = tuple(int(d) for d in np.delete(args[0].shape, axes[0]))
    if not shape:
        shape_fns = [lambda x: md.getitem(x, None), lambda x: md.getitem(x, ...)]
    else:
        n = shape[0]
        idx = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4)))
        mask = np.asarray(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        b = md.get_backend()
        dev_idx, dev_mask = b.from_host(idx), b.from_host(mask)
        shape_fns = [lambda x: md.getitem(x, 0), lambda x: md.getitem(x, slice(1, None)),
                     lambda x: md.getitem(x, (..., None)), lambda x: md.getitem(x, dev_idx),
                     lambda x: md.getitem(x, dev_mask),
                     lambda x: md.concatenate([x, x * 2.0], axis=-1),
                     lambda x: md.stack([x, md.ones(shape)], axis=0)]
    for fn in shape_fns:
        assert_matches_loop(fn, args, axes, backend)


@with_backend
@given(data=st.data())
def test_scatter_add_rule_matches_loop(backend, data):
    """getitem's transpose: per-example gradients of an indexed sum with repeats."""
    args, axes = data.draw(batched_args(1, same_shape=True))
    shape = tuple(int(d) for d in np.delete(args[0].shape, axes[0]))
    if not shape:
        return
    idx = md.get_backend().from_host(np.asarray([0, shape[0] - 1, 0]))

    def f(x):
        return md.grad(lambda v: md.sum(md.sin(md.getitem(v, idx))))(x)

    assert_matches_loop(f, args, axes, backend)


@with_backend
@given(data=st.data(), m=st.integers(1, 3), k=st.integers(1, 3), n=st.integers(1, 3),
       a_batched=st.booleans(), b_batched=st.booleans(), vector=st.sampled_from([0, 1, 2]))
def test_matmul_rule_matches_loop(backend, data, m, k, n, a_batched, b_batched, vector):
    size = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a_shape = (k,) if vector == 1 else (data.draw(st.integers(1, 2)), m, k)[
        data.draw(st.integers(0, 1)):]
    b_shape = (k,) if vector == 2 else (k, n)
    a_batched = a_batched or not b_batched
    a = rng.standard_normal(((size,) if a_batched else ()) + a_shape)
    b = rng.standard_normal(((size,) if b_batched else ()) + b_shape)
    assert_matches_loop(md.matmul, [a, b], [0 if a_batched else None, 0 if b_batched else None],
                        backend)


def test_custom_rules_are_batched_by_their_function_and_keep_their_derivatives(backend):
    @md.custom_jvp
    def f(x):
        return md.sin(x)

    f.defjvp(lambda primals, tangents: (f(primals[0]), 3.0 * tangents[0]))  # a made-up rule

    @md.custom_vjp
    def g(x):
        return md.exp(x)

    g.defvjp(lambda x: (g(x), None), lambda res, ct: (5.0 * ct,))  # a made-up rule
    x = np.linspace(0.1, 1.0, 6).reshape(2, 3)
    assert_matches_loop(f, [x], [0], backend)
    assert_matches_loop(g, [x], [1], backend)
    dev = backend.from_host(x)
    # the user's rules (not the body's derivative) still give the derivative under vmap
    np.testing.assert_allclose(host(md.vmap(md.jacfwd(lambda v: md.sum(f(v))))(dev)), 3.0)
    np.testing.assert_allclose(host(md.grad(lambda v: md.sum(md.vmap(g)(v)))(dev)), 5.0)
