"""The catalogue of bad and tricky inputs, continued: sequences of traced values, functions
with several outputs under every wrapper, constants updated in place after tracing, large
Gamma and Beta shapes, and keyword arguments to ``checkpoint``.

No silent wrong answers: every case checks the value (hand-derived, or central finite
differences in float64 through ``check_grads``, tolerance stated) or expects an exception whose
message names the op or wrapper and what to do instead. Cases run on NumPy and array_api_strict
(``backend``), except the object-array case, which needs NumPy itself; arrays are updated in
place with ``a[...] = v``, which both libraries have.

The rules these cases pin down:

1. A (nested) list or tuple holding traced values is the array they make, in every op and
   every mode (``bind`` stacks it); a set, a generator or a dict is refused naming
   ``minidiff.stack``. It never becomes a constant.
2. Every wrapper of a user function takes pytree outputs (``checkpoint``, ``custom_jvp``,
   ``custom_vjp``, ``jit``, ``derivative_estimate``; ``checkpointed_loop`` a pytree state), or
   refuses them by name (``compare_estimators``, ``per_seed``: one array of samples).
3. A constant is read when the op that uses it runs, and the reverse pass uses those values:
   the tape keeps copies of writable arrays it will read later; ``md.jit`` bakes closed-over
   arrays at trace time; checkpointing, which re-reads, refuses a recomputation that differs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sps

import minidiff as md
from minidiff.checkpointing import ReplayError
from minidiff.distributions.implicit import beta_quantile, gamma_quantile
from minidiff.stochastic import compare_estimators, derivative_estimate
from minidiff.stochastic.harness import per_seed
from minidiff.testing import check_grads


def host(x):
    return np.asarray(md.to_host(x))


def assert_close(actual, expected, rtol=1e-12, atol=1e-12):
    """Default tolerance 1e-12: the cases compare hand-derived derivatives of a few flops."""
    np.testing.assert_allclose(host(actual), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


X = [0.5, 1.5]


# ---------------------------------------------------------------------------------------------
# 1. sequences of traced values are the array they make, never a constant
# ---------------------------------------------------------------------------------------------

def test_sin_of_a_list_plus_the_list_keeps_both_terms_in_both_modes(backend):
    def f(v):  # v is a list argument: a pytree of two scalars
        return md.sum(md.sin(v) + v)

    expected = [math.cos(0.5) + 1.0, math.cos(1.5) + 1.0]
    for transform in (md.grad, md.jacfwd):
        got = transform(f)([0.5, 1.5])
        assert_close(md.stack(got), expected)


def test_an_array_plus_a_list_of_its_traced_entries(backend, to_array):
    def f(x):
        return md.sum(x + [x[0] * 3.0, x[1] * 5.0])

    for transform in (md.grad, md.jacfwd):
        assert_close(transform(f)(to_array(X)), [4.0, 6.0])


# a list or tuple of traced values meeting a traced argument, in many ops: value and both
# modes against central finite differences (check_grads: rtol 1e-5 on eps = 1e-6 differences,
# whose error is O(eps²) for these smooth functions). The finite differences run the function
# on raw arrays, where array_api_strict's operators take no lists: the ops are called by name.
SEQUENCE_CASES = {
    "tuple": lambda x: md.sum(md.multiply(x, (x[0], x[1]))),
    "tuple of a number and a traced value": lambda x: md.sum(md.multiply(x, (2.0, x[1]))),
    "list first": lambda x: md.sum(md.add([x[0], x[1]], x)),
    "nested list": lambda x: md.sum(md.multiply(md.stack([x, x]), [[x[0], x[1]], [1.0, 2.0]])),
    "concatenate": lambda x: md.sum(md.concatenate([x, [x[0] * 2.0]]) ** 2),
    "stack of an array and a list": lambda x: md.sum(md.stack([x, [x[1], x[0]]]) ** 3),
    "asarray": lambda x: md.sum(md.exp(md.asarray([x[1], x[0] * x[1]]))),
    "where": lambda x: md.sum(md.where(x > 1.0, [x[1], x[0]], 0.0) * x),
    "matmul": lambda x: md.sum(md.matmul([[x[0], 0.0], [0.0, x[1]]], x)),
    "maximum": lambda x: md.sum(md.maximum(x, [x[1] * x[1], x[0]])),
    "divide": lambda x: md.sum(md.divide([1.0, x[0]], x)),
    "power": lambda x: md.sum(md.power(x, [x[1], 2.0])),
}


@pytest.mark.parametrize("name", list(SEQUENCE_CASES))
def test_sequences_of_traced_values_in_ops_are_differentiated(backend, to_array, name):
    check_grads(SEQUENCE_CASES[name], (to_array(X),), modes=("fwd", "rev"), order=1)


def test_hand_values_of_a_few_sequence_cases(backend, to_array):
    x = to_array(X)
    # d/dx Σ x·(x0, x1) = 2x
    assert_close(md.grad(SEQUENCE_CASES["tuple"])(x), [1.0, 3.0])
    # diag(x0, x1) @ x = (x0², x1²)
    assert_close(md.grad(SEQUENCE_CASES["matmul"])(x), [1.0, 3.0])
    # Σ(x + (x0 x0, x1 x1)...) nested: [[x0², x1²], [x0, 2 x1]]
    assert_close(md.grad(SEQUENCE_CASES["nested list"])(x), [2.0, 5.0])


def test_operators_with_lists_and_tuples_of_traced_values(backend, to_array):
    x = to_array(X)
    cases = [  # (function, its gradient at X by hand)
        (lambda x: md.sum(x * (x[0], x[1])), [1.0, 3.0]),            # Σ xᵢ²
        (lambda x: md.sum([x[0], x[1]] + x), [2.0, 2.0]),            # list on the left
        (lambda x: md.sum((1.0, x[0]) / x), [-4.0 + 1.0 / 1.5, -0.5 / 1.5 ** 2]),
        (lambda x: md.sum(x ** [2.0, x[0]]),                        # x0² + x1^x0
         [1.0 + math.log(1.5) * 1.5 ** 0.5, 0.5 * 1.5 ** -0.5]),
    ]
    for f, expected in cases:
        for transform in (md.grad, md.jacfwd):
            assert_close(transform(f)(x), expected)


def test_a_list_of_values_of_two_nested_levels_keeps_both(backend, to_array):
    # Hessian of Σ x·(x1, x0) = 2 x0 x1: [[0, 2], [2, 0]]
    h = md.hessian(lambda x: md.sum(x * [x[1], x[0]]))(to_array(X))
    assert_close(h, [[0.0, 2.0], [2.0, 0.0]])
    h = md.jacfwd(md.grad(lambda x: md.sum(x * [x[1], x[0]])))(to_array(X))
    assert_close(h, [[0.0, 2.0], [2.0, 0.0]])


def test_stochastic_triples_read_a_list_of_triples_as_their_array(backend):
    # t + (2t, 3t) = (3t, 4t): d/dt Σ = 7
    assert_close(derivative_estimate(lambda t: md.sum(t + [t * 2.0, t * 3.0]), 0.5), 7.0)


def test_jit_reads_a_list_of_traced_values_as_their_array(backend, to_array):
    f = md.jit(lambda x: md.sum(x + [x[0] * 3.0, x[1] * 5.0]))
    x = to_array(X)
    assert_close(f(x), 0.5 + 1.5 + 1.5 + 7.5)
    assert_close(md.grad(f)(x), [4.0, 6.0])
    assert_close(md.jacfwd(f)(x), [4.0, 6.0])
    assert_close(md.grad(md.jit(lambda v: md.sum(md.sin(v) + v)))([0.5, 1.5])[1],
                 math.cos(1.5) + 1.0)


@pytest.mark.parametrize(("kind", "make"), [
    ("set", lambda x: {x[0], x[1]}),
    ("generator", lambda x: (v * 2.0 for v in x)),
    ("dict", lambda x: {"a": [x[0], x[1]]}),
])
def test_unordered_or_lazy_collections_of_traced_values_are_refused(backend, to_array, kind,
                                                                    make):
    for transform in (md.grad, md.jacfwd):
        with pytest.raises(TypeError, match=r"add: cannot use an argument of type .*minidiff\."
                                            r"stack"):
            transform(lambda x: md.sum(x + make(x)))(to_array(X))


def test_an_object_array_meeting_a_traced_value_is_refused_naming_stack():
    x = np.array(X)
    boxes = np.empty(2, dtype=object)
    boxes[0], boxes[1] = 1.0, 2.0
    with pytest.raises(TypeError, match=r"multiply: an array of dtype object .*minidiff\.stack"):
        md.grad(lambda x: md.sum(x * boxes))(x)
    with pytest.raises(md.TracerConversionError, match="minidiff.stack"):
        md.grad(lambda x: md.sum(x + np.array([x[0], x[1]], dtype=object)))(x)


def test_indexing_with_a_list_of_traced_values_is_refused(backend, to_array):
    with pytest.raises(md.TracerConversionError, match="traced value"):
        md.grad(lambda x: md.sum(x[[x[0], x[1]]]))(to_array(X))


# ---------------------------------------------------------------------------------------------
# 2. several outputs under every wrapper of a user function
# ---------------------------------------------------------------------------------------------

def test_checkpoint_of_a_tuple_output_gives_the_plain_gradient(backend, to_array):
    def f(x):
        return md.sin(x) * 2.0, md.exp(x)

    def loss(g):
        return lambda x: md.sum(g(x)[0] * g(x)[1])

    x = to_array(X)
    expected = 2.0 * np.exp(X) * (np.cos(X) + np.sin(X))
    assert_close(md.grad(loss(md.checkpoint(f)))(x), expected)
    assert_close(md.grad(loss(f))(x), expected)


def test_checkpoint_of_dict_and_list_outputs_with_an_integer_leaf(backend, to_array):
    def f(x):
        return {"a": [x * x, md.sum(x)], "n": md.asarray(3)}

    def loss(x):
        out = md.checkpoint(f)(x)
        assert int(md.to_host(out["n"])) == 3  # an integer output passes through
        return md.sum(out["a"][0]) * out["a"][1]

    check_grads(loss, (to_array(X),), modes=("rev",), order=1)
    # Σx² · Σx: ∂/∂xᵢ = 2xᵢ Σx + Σx²
    assert_close(md.grad(loss)(to_array(X)), 2.0 * np.array(X) * 2.0 + 2.5)


def test_checkpoint_of_outputs_that_do_not_depend_on_the_input(backend, to_array):
    def loss(x):
        constant, zero = md.checkpoint(lambda y: (md.ones(2), y * 0.0))(x)
        return md.sum(x) + md.sum(constant) + md.sum(zero)

    assert_close(md.grad(loss)(to_array(X)), [1.0, 1.0])


def test_custom_jvp_and_custom_vjp_with_tuple_and_dict_outputs(backend, to_array):
    @md.custom_jvp
    def both(x):
        return md.sin(x), {"sq": x * x}

    @both.defjvp
    def both_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return both(x), (md.cos(x) * t, {"sq": 2.0 * x * t})

    @md.custom_vjp
    def pair(x):
        return md.sin(x), {"sq": x * x}

    pair.defvjp(lambda x: (pair(x), x),
                lambda x, g: (md.cos(x) * g[0] + 2.0 * x * g[1]["sq"],))

    x = to_array(X)
    expected = np.cos(X) + 2.0 * np.array(X)
    assert_close(md.jacfwd(lambda x: md.sum(both(x)[0] + both(x)[1]["sq"]))(x), expected)
    assert_close(md.grad(lambda x: md.sum(pair(x)[0] + pair(x)[1]["sq"]))(x), expected)


def test_jit_of_a_tuple_output_differentiates_each_leaf(backend, to_array):
    f = md.jit(lambda x: (md.sin(x), [md.sum(x * x)]))
    x = to_array(X)
    assert_close(md.grad(lambda x: md.sum(f(x)[0]) + f(x)[1][0])(x),
                 np.cos(X) + 2.0 * np.array(X))


@pytest.mark.parametrize("wrap", [list, tuple, lambda v: {"a": v[0], "b": v[1]}])
def test_derivative_estimate_of_a_pytree_output_estimates_each_leaf(backend, wrap):
    def f(t):
        return wrap([t * 2.0, md.sin(t)])

    out = derivative_estimate(f, 0.3)
    leaves = md.pytree.tree_leaves(out)
    assert md.pytree.tree_structure(out) == md.pytree.tree_structure(wrap([0.0, 0.0]))
    assert_close(leaves[0], 2.0)
    assert_close(leaves[1], math.cos(0.3))


def test_derivative_estimate_refuses_an_output_that_is_not_an_array(backend):
    with pytest.raises(TypeError, match="derivative_estimate: f returned .*str"):
        derivative_estimate(lambda t: (t, "label"), 0.3)


def test_compare_estimators_and_per_seed_refuse_several_outputs(backend):
    with pytest.raises(TypeError, match=r"compare_estimators: 'pair' returned tuple"):
        compare_estimators({"pair": lambda n: (md.zeros(n), md.zeros(n))}, 4)
    with pytest.raises(TypeError, match=r"compare_estimators: 'named' returned dict"):
        compare_estimators({"named": lambda n: {"a": md.zeros(n)}}, 4)
    with pytest.raises(TypeError, match=r"per_seed: the estimate returned list"):
        per_seed(lambda s: [md.zeros(()), md.zeros(())])(3)


# ---------------------------------------------------------------------------------------------
# 3. constants updated in place after the forward pass or the trace
# ---------------------------------------------------------------------------------------------

def test_a_vjp_pullback_reads_the_closed_over_array_as_the_forward_pass_did(backend, to_array):
    c = to_array([2.0, 3.0])
    x = to_array(X)
    _, pull = md.vjp(lambda x: md.sum(x * c), x)
    c[...] = 100.0
    assert_close(pull(1.0)[0], [2.0, 3.0])


def test_a_vjp_pullback_reads_its_inputs_and_index_arrays_as_they_were(backend, to_array):
    x = to_array(X)
    index = md.get_backend().from_host(np.array([0, 0, 1]))
    _, pull = md.vjp(lambda x: md.sum(md.sin(x)[index]), x)
    x[...] = 0.0
    index[...] = 1
    assert_close(pull(1.0)[0], np.cos(X) * [2.0, 1.0])


def test_a_buffer_reused_between_two_ops_gives_each_op_its_own_values(backend, to_array):
    buffer = to_array([0.0, 0.0])

    def f(x):
        buffer[...] = 2.0
        y = x * buffer
        buffer[...] = 5.0
        return md.sum(y * buffer)  # Σ 10 x

    x = to_array(X)
    assert_close(md.grad(f)(x), [10.0, 10.0])
    assert_close(md.grad(md.jit(f))(x), [10.0, 10.0])


def test_jit_bakes_every_read_of_a_closed_over_array_at_trace_time(backend, to_array):
    c = to_array([2.0, 3.0])
    index = md.get_backend().from_host(np.array([0, 0, 1]))
    f = md.jit(lambda x: md.sum(x * c) + md.sum(md.sin(x)[index]) + md.sum(c * 2.0))
    x = to_array(X)
    first = float(host(f(x)))
    c[...] = 100.0
    index[...] = 1
    assert float(host(f(x))) == first
    assert_close(md.grad(f)(x), [2.0 + 2.0 * math.cos(0.5), 3.0 + math.cos(1.5)])


def test_custom_vjp_keeps_its_residuals_as_fwd_returned_them(backend, to_array):
    scale = to_array([2.0, 3.0])

    @md.custom_vjp
    def scaled(x):
        return x * scale

    scaled.defvjp(lambda x: (scaled(x), scale), lambda s, g: (g * s,))
    _, pull = md.vjp(lambda x: md.sum(scaled(x)), to_array(X))
    scale[...] = 7.0
    assert_close(pull(1.0)[0], [2.0, 3.0])


def test_checkpoint_refuses_a_recomputation_that_reads_a_changed_array(backend, to_array):
    c = to_array([2.0, 3.0])
    _, pull = md.vjp(md.checkpoint(lambda x: md.sum(x * c * x)), to_array(X))
    c[...] = 10.0
    with pytest.raises(ReplayError, match=r"checkpoint\(<lambda>\): recomputing .*in place"):
        pull(1.0)


def test_checkpointed_loop_refuses_a_recomputation_that_reads_a_changed_array(backend,
                                                                            to_array):
    rate = to_array([0.9])

    def loss(x):
        return md.sum(md.checkpointed_loop(lambda s, t: s * rate + 0.1, x, 6, snapshots=2))

    _, pull = md.vjp(loss, to_array([1.0]))
    rate[...] = 0.5
    with pytest.raises(ReplayError, match="checkpointed_loop: recomputing"):
        pull(1.0)
    rate[...] = 0.9  # unchanged values: the recomputation agrees, and the gradient is 0.9⁶
    _, pull = md.vjp(loss, to_array([1.0]))
    assert_close(pull(1.0)[0], [0.9 ** 6])


# ---------------------------------------------------------------------------------------------
# 6. derivatives of Gamma and Beta draws at large shapes
# ---------------------------------------------------------------------------------------------

def _central(f, a, h):
    return (f(a + h) - f(a - h)) / (2.0 * h)


# Reference: central differences of SciPy's quantile, h = 1e-4·a (truncation O(h²) ≈ 1e-8
# relative), plus the quantile's own accuracy, which at a = 1e8 in the far tail is about 1e-6
# relative (checked against a 40-digit quadrature): rtol 1e-7 here, u kept off the far tails.
@pytest.mark.parametrize("a", [750.0, 1e4, 1e6, 1e8])
def test_gamma_draw_gradients_are_finite_and_right_at_large_shapes(backend, a):
    u = np.array([0.3, 0.5, 0.97])
    b = md.get_backend()
    g = md.jacfwd(lambda s: gamma_quantile(s, b.from_host(u)))(b.from_host(np.array(a)))
    r = md.grad(lambda s: md.sum(gamma_quantile(s, b.from_host(u))))(b.from_host(np.array(a)))
    fd = _central(lambda s: sps.gammaincinv(s, u), a, 1e-4 * a)
    assert_close(g, fd, rtol=1e-7, atol=0.0)
    assert_close(r, np.sum(fd), rtol=1e-7, atol=0.0)


@pytest.mark.parametrize(("a", "bb"), [(750.0, 750.0), (1e4, 1e4), (1e6, 3e6), (1e8, 1e8)])
def test_beta_draw_gradients_are_finite_and_right_at_large_shapes(backend, a, bb):
    u = np.array([1e-4, 0.3, 0.8])
    b = md.get_backend()
    jac = md.jacfwd(lambda ab: beta_quantile(ab[0], ab[1], b.from_host(u)))(
        b.from_host(np.array([a, bb])))
    fd_a = _central(lambda s: sps.betaincinv(s, bb, u), a, 1e-4 * a)
    fd_b = _central(lambda s: sps.betaincinv(a, s, u), bb, 1e-4 * bb)
    # the same reference as above: rtol 1e-7
    assert_close(jac, np.stack([fd_a, fd_b], axis=-1), rtol=1e-7, atol=0.0)


def test_gamma_and_beta_slopes_at_small_shapes_still_match(backend):
    # the algebraic-weight branch (a < 1) and the ends of the support
    b = md.get_backend()
    for a in (0.3, 1.0, 2.5):
        u = np.array([0.3, 0.97])
        g = md.jacfwd(lambda s: gamma_quantile(s, b.from_host(u)))(b.from_host(np.array(a)))
        assert_close(g, _central(lambda s: sps.gammaincinv(s, u), a, 1e-4 * a), rtol=1e-7,
                     atol=0.0)
    u = np.array([0.3, 0.8])
    jac = md.jacfwd(lambda ab: beta_quantile(ab[0], ab[1], b.from_host(u)))(
        b.from_host(np.array([0.5, 1e6])))
    fd_a = _central(lambda s: sps.betaincinv(s, 1e6, u), 0.5, 5e-5)
    assert_close(jac[..., 0], fd_a, rtol=1e-7, atol=0.0)


# ---------------------------------------------------------------------------------------------
# 9. keyword and pytree arguments to checkpoint
# ---------------------------------------------------------------------------------------------

def test_checkpoint_takes_keyword_arguments(backend, to_array):
    def f(x, k=1.0):
        return md.sin(x) * k

    x = to_array(X)
    assert_close(md.grad(lambda x: md.sum(md.checkpoint(f)(x, k=2.0)))(x), 2.0 * np.cos(X))
    # a traced keyword argument is differentiated: Σ sin(x)·(3x)
    assert_close(md.grad(lambda x: md.sum(md.checkpoint(f)(x, k=x * 3.0)))(x),
                 3.0 * (np.cos(X) * X + np.sin(X)))
    assert_close(md.checkpoint(f)(x, k=2.0), 2.0 * np.sin(X))  # no transform: the plain call
    assert_close(md.jacfwd(lambda x: md.checkpoint(f)(x, k=2.0))(x), np.diag(2.0 * np.cos(X)))


def test_checkpoint_takes_dict_and_string_arguments(backend, to_array):
    def f(p, mode="square"):
        assert mode == "square"
        return p["a"] * p["b"][0]

    x = to_array(X)
    got = md.grad(lambda x: md.sum(md.checkpoint(f)({"a": x, "b": [x * 3.0]}, mode="square")))(x)
    assert_close(got, 6.0 * np.array(X))


def test_checkpoint_keeps_a_constant_argument_as_the_forward_pass_read_it(backend, to_array):
    c = to_array([2.0, 3.0])
    _, pull = md.vjp(lambda x: md.sum(md.checkpoint(lambda x, c: x * c * x)(x, c)),
                     to_array(X))
    c[...] = 10.0  # the argument was kept as it was: Σ c x² → 2 c x
    assert_close(pull(1.0)[0], [2.0, 9.0])


def test_a_jitted_call_under_vjp_keeps_its_constant_arguments(backend, to_array):
    jitted = md.jit(lambda x, c: md.sum(x * c * x))
    c = to_array([2.0, 3.0])
    _, pull = md.vjp(lambda x: jitted(x, c), to_array(X))
    c[...] = 10.0  # read once at the forward pass, once by the program's residuals: 2 c x
    assert_close(pull(1.0)[0], [2.0, 9.0])
