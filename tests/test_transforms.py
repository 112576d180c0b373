"""The function transforms, checked against closed forms and against each other.

Every test runs on NumPy and on array_api_strict through the ``backend`` fixture. Constants are
combined with traced values as ``traced (op) constant`` or through ``md.*`` functions: an
array_api_strict array on the left of an operator refuses a traced right operand.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def host(x):
    return np.asarray(md.to_host(x))


def assert_close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(host(actual), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


def assert_plain(backend, out):
    """``out`` (and everything inside tuples, lists and dicts) is a backend array, not a Box."""
    if isinstance(out, tuple | list):
        for o in out:
            assert_plain(backend, o)
        return
    if isinstance(out, dict):
        for o in out.values():
            assert_plain(backend, o)
        return
    assert not isinstance(out, md.Dual | md.TapeValue), f"a traced value leaked: {out!r}"
    assert backend.is_array(out), f"{type(out).__name__} is not a {backend.name} array"


RNG = np.random.default_rng(20261124)
X4 = np.array([0.3, -1.1, 0.8, 1.7])
A34 = RNG.standard_normal((3, 4))
A44 = RNG.standard_normal((4, 4))
V4 = np.array([0.5, -1.0, 2.0, 0.25])


def rosenbrock(x):
    return md.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    n = len(x)
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        h[i + 1, i + 1] += 200.0
        h[i, i + 1] = h[i + 1, i] = -400.0 * x[i]
    return h


# ---------------------------------------------------------------------------------------------
# grad and value_and_grad
# ---------------------------------------------------------------------------------------------


def test_grad_matches_the_analytic_gradient(backend, to_array):
    g = md.grad(lambda x: md.sum(md.sin(x) * x))(to_array(X4))
    assert_close(g, np.cos(X4) * X4 + np.sin(X4))


@pytest.mark.parametrize("kind", ["python float", "backend array"])
def test_grad_accepts_python_floats_and_backend_arrays(backend, to_array, kind):
    values = 1.5 if kind == "python float" else [1.5, -0.5]
    point = to_array(values) if kind == "backend array" else values
    g = md.grad(lambda x: md.sum(x ** 3))(point)
    assert_plain(backend, g)
    assert host(g).dtype == np.float64
    assert_close(g, 3.0 * np.asarray(values) ** 2)


def test_grad_of_a_list_argument_is_a_list_as_in_jax(backend):
    """A list is a pytree of separate values (JAX's rule), not an array: the gradient is a list
    with one entry per element, and minidiff ops given the list read it as the array it makes."""
    g = md.grad(lambda x: md.sum(md.asarray(x) ** 3))([1.5, -0.5])
    assert isinstance(g, list) and len(g) == 2
    assert_plain(backend, g)
    assert_close(g[0], 3.0 * 1.5 ** 2)
    assert_close(g[1], 3.0 * 0.25)
    assert_close(md.grad(md.prod)([2.0, 3.0, 5.0]), [15.0, 10.0, 6.0])


def test_grad_with_int_argnums_differentiates_only_that_argument(backend, to_array):
    x, y = to_array([1.0, 2.0]), to_array([3.0, -1.0])
    f = lambda x, y: md.sum(md.multiply(x, y ** 2))  # noqa: E731
    assert_close(md.grad(f, argnums=1)(x, y), 2.0 * host(x) * host(y))
    assert_close(md.grad(f, argnums=0)(x, y), host(y) ** 2)
    assert_close(md.grad(f, argnums=-1)(x, y), 2.0 * host(x) * host(y))


def test_grad_with_tuple_argnums_returns_a_tuple_in_argnums_order(backend, to_array):
    x, y, z = to_array([1.0, 2.0]), to_array([3.0, -1.0]), to_array([0.5, 0.5])
    f = lambda x, y, z: md.sum(md.add(md.multiply(x, y ** 2), z))  # noqa: E731
    gy, gx = md.grad(f, argnums=(1, 0))(x, y, z)
    assert_close(gy, 2.0 * host(x) * host(y))
    assert_close(gx, host(y) ** 2)
    single = md.grad(f, argnums=(2,))(x, y, z)
    assert isinstance(single, tuple) and len(single) == 1
    assert_close(single[0], [1.0, 1.0])


def test_grad_has_aux_returns_the_aux_unboxed(backend, to_array):
    x = to_array(X4)

    def f(x):
        y = md.exp(x)
        return md.sum(y), {"y": y, "pair": (x * 2.0, md.sum(x))}

    g, aux = md.grad(f, has_aux=True)(x)
    assert_close(g, np.exp(X4))
    assert_plain(backend, g)
    assert_plain(backend, aux)
    assert_close(aux["y"], np.exp(X4))
    assert_close(aux["pair"][0], 2.0 * X4)
    assert_close(aux["pair"][1], X4.sum())


def test_value_and_grad_returns_the_value_and_the_gradient(backend, to_array):
    x = to_array(X4)
    value, g = md.value_and_grad(lambda x: md.sum(x ** 2))(x)
    assert_close(value, (X4 ** 2).sum())
    assert_close(g, 2.0 * X4)
    assert_plain(backend, (value, g))

    (value, aux), g = md.value_and_grad(lambda x: (md.sum(x ** 2), x ** 3), has_aux=True)(x)
    assert_close(value, (X4 ** 2).sum())
    assert_close(aux, X4 ** 3)
    assert_close(g, 2.0 * X4)
    assert_plain(backend, (value, aux, g))

    (vx, gy) = md.value_and_grad(lambda x, y: md.sum(md.multiply(x, y)), argnums=(1,))(x, x)
    assert_close(vx, (X4 * X4).sum())
    assert_close(gy[0], X4)


def test_grad_of_a_function_that_ignores_its_input_is_zero(backend, to_array):
    value, g = md.value_and_grad(lambda x: 3.0)(to_array(X4))
    assert_plain(backend, (value, g))
    assert_close(value, 3.0)
    assert_close(g, np.zeros(4))


def test_transform_outputs_are_backend_arrays_never_traced_values(backend, to_array):
    x = to_array(X4)
    f = lambda x: md.sum(md.exp(x) * x)  # noqa: E731
    vec = lambda x: md.sin(x) * x[0]  # noqa: E731
    assert_plain(backend, md.grad(f)(x))
    assert_plain(backend, md.grad(f)(0.5))
    assert_plain(backend, md.value_and_grad(f)(x))
    assert_plain(backend, md.jvp(vec, (x,), (to_array(V4),)))
    out, pullback = md.vjp(vec, x)
    assert_plain(backend, out)
    assert_plain(backend, pullback(to_array(V4)))
    assert_plain(backend, md.jacfwd(vec)(x))
    assert_plain(backend, md.jacrev(vec)(x))
    assert_plain(backend, md.hessian(f)(x))
    assert_plain(backend, md.hvp(f, x, to_array(V4)))


# ---------------------------------------------------------------------------------------------
# jvp and vjp
# ---------------------------------------------------------------------------------------------


def test_jvp_matches_the_analytic_directional_derivative(backend, to_array):
    out, tangent = md.jvp(lambda x: md.exp(x) * x, (to_array(X4),), (to_array(V4),))
    assert_close(out, np.exp(X4) * X4)
    assert_close(tangent, np.exp(X4) * (1.0 + X4) * V4)


def test_jvp_with_tuple_outputs_returns_tuples_of_values_and_tangents(backend, to_array):
    x, y = to_array([0.5, -2.0]), to_array([1.5, 3.0])
    tx, ty = to_array([1.0, 2.0]), to_array([-1.0, 0.5])
    outs, tangents = md.jvp(lambda x, y: (x * y, md.sin(x), md.sum(y)), (x, y), (tx, ty))
    assert isinstance(outs, tuple) and isinstance(tangents, tuple)
    assert len(outs) == len(tangents) == 3
    hx, hy, htx, hty = host(x), host(y), host(tx), host(ty)
    assert_close(outs[0], hx * hy)
    assert_close(tangents[0], htx * hy + hx * hty)
    assert_close(outs[1], np.sin(hx))
    assert_close(tangents[1], np.cos(hx) * htx)
    assert_close(outs[2], hy.sum())
    assert_close(tangents[2], hty.sum())
    assert_plain(backend, (outs, tangents))

    outs, tangents = md.jvp(lambda x: [x, x * 2.0], [x], [tx])
    assert isinstance(outs, list) and isinstance(tangents, list)
    assert_close(tangents[1], 2.0 * htx)


def test_jvp_of_an_output_that_ignores_the_input_has_zero_tangent(backend, to_array):
    outs, tangents = md.jvp(lambda x: (x * 2.0, md.ones((3,))), (to_array(X4),),
                            (to_array(V4),))
    assert_close(tangents[1], np.zeros(3))
    assert_plain(backend, tangents)


def test_vjp_called_twice_gives_the_same_result(backend, to_array):
    out, pullback = md.vjp(lambda x, y: md.exp(x) * y, to_array(X4), to_array(V4))
    u = to_array([1.0, -2.0, 0.5, 3.0])
    first = pullback(u)
    second = pullback(u)
    expected = (np.exp(X4) * V4 * host(u), np.exp(X4) * host(u))
    for a, b, e in zip(first, second, expected, strict=True):
        assert_close(a, e)
        np.testing.assert_array_equal(host(a), host(b))
    # another cotangent in between does not disturb the tape
    pullback(to_array(np.ones(4)))
    for a, e in zip(pullback(u), expected, strict=True):
        assert_close(a, e)


def test_vjp_matches_jvp_by_inner_product(backend, to_array):
    f = lambda x: md.tanh(md.matmul(to_array(A34), x)) * md.sum(x ** 2)  # noqa: E731
    x, v, u = to_array(X4), to_array(V4), to_array([0.3, -0.2, 1.1])
    _, jv = md.jvp(f, (x,), (v,))
    _, pullback = md.vjp(f, x)
    (jtu,) = pullback(u)
    np.testing.assert_allclose(float(np.sum(host(u) * host(jv))),
                               float(np.sum(host(jtu) * host(v))), rtol=1e-12)


def test_vjp_of_unit_cotangents_gives_the_rows_of_the_jacobian(backend, to_array):
    f = lambda x: md.cumsum(x) * md.exp(x)  # noqa: E731
    x = to_array(X4)
    jac = host(md.jacfwd(f)(x))
    _, pullback = md.vjp(f, x)
    for i in range(4):
        (row,) = pullback(to_array(np.eye(4)[i]))
        assert_close(row, jac[i])


# ---------------------------------------------------------------------------------------------
# jacfwd and jacrev
# ---------------------------------------------------------------------------------------------

VECTOR_FUNCTIONS = {
    "elementwise": (lambda x: md.sin(x) * x, X4),
    "matmul-tanh": (lambda x: md.tanh(md.matmul(md.asarray(A34), x)), X4),
    "softmax": (lambda x: md.softmax(x), X4),
    "cumsum-times-scalar": (lambda x: md.cumsum(x) * md.exp(x[0]), X4),
    "reversed-over-norm": (lambda x: x[::-1] / (1.0 + x * x), X4),
    "reductions": (lambda x: md.stack([md.sum(x ** 2), md.prod(x), md.logsumexp(x),
                                       md.max(x)]), X4),
    "outer-product": (lambda x: md.expand_dims(x, 1) * md.expand_dims(md.exp(x), 0), X4),
    "matrix-input": (lambda x: md.matmul(x, md.transpose(x)) + md.sum(x),
                     RNG.standard_normal((2, 3))),
}


@pytest.mark.parametrize("name", list(VECTOR_FUNCTIONS))
def test_jacfwd_equals_jacrev(backend, to_array, name):
    f, point = VECTOR_FUNCTIONS[name]
    x = to_array(point)
    jf, jr = md.jacfwd(f)(x), md.jacrev(f)(x)
    out_shape = md.to_host(f(x)).shape
    assert host(jf).shape == out_shape + point.shape
    assert host(jr).shape == out_shape + point.shape
    assert_close(jf, host(jr))


def test_jacfwd_and_jacrev_of_a_linear_map_are_its_matrix(backend, to_array):
    a = to_array(A34)
    f = lambda x: md.matmul(a, x)  # noqa: E731
    assert_close(md.jacfwd(f)(to_array(X4)), A34)
    assert_close(md.jacrev(f)(to_array(X4)), A34)


def test_jacfwd_evaluates_the_function_once(backend, to_array):
    calls = []

    def f(x):
        calls.append(1)
        return md.exp(x) * md.sum(x)

    md.jacfwd(f)(to_array(X4))
    assert len(calls) == 1


def test_jacfwd_equals_jacrev_with_tuple_argnums(backend, to_array):
    def f(x, c, y):
        # c is not differentiated: a raw array, so it goes through md.multiply
        return md.sin(x) * md.sum(y ** 2) + md.multiply(c, x * y[0])

    x, c, y = to_array([0.3, -1.2, 2.0]), to_array(0.7), to_array([0.5, 1.5])
    jf = md.jacfwd(f, argnums=(0, 2))(x, c, y)
    jr = md.jacrev(f, argnums=(0, 2))(x, c, y)
    assert isinstance(jf, tuple) and isinstance(jr, tuple) and len(jf) == len(jr) == 2
    hx, hy = host(x), host(y)
    expected_x = np.diag(np.cos(hx) * (hy ** 2).sum() + hy[0] * 0.7)
    expected_y = np.outer(np.sin(hx), 2.0 * hy)
    expected_y[:, 0] += hx * 0.7
    for jac in (jf, jr):
        assert_close(jac[0], expected_x)
        assert_close(jac[1], expected_y)


def test_jacfwd_of_a_tuple_output_gives_one_jacobian_per_output(backend, to_array):
    x = to_array(X4)
    jac_sin, jac_sum = md.jacfwd(lambda x: (md.sin(x), md.sum(x * x)))(x)
    assert_close(jac_sin, np.diag(np.cos(X4)))
    assert_close(jac_sum, 2.0 * X4)


# ---------------------------------------------------------------------------------------------
# hessian and hvp
# ---------------------------------------------------------------------------------------------


def test_hessian_of_a_quadratic_form_is_a_plus_a_transpose(backend, to_array):
    a = to_array(A44)
    h = md.hessian(lambda x: md.sum(x * md.matmul(a, x)))(to_array(X4))
    assert_close(h, A44 + A44.T)


def test_hessian_of_sum_exp_is_diag_exp(backend, to_array):
    h = md.hessian(lambda x: md.sum(md.exp(x)))(to_array(X4))
    assert_close(h, np.diag(np.exp(X4)))


@pytest.mark.parametrize("point", [[1.0, 2.0, 0.5], [-1.2, 1.0, 0.3, 0.9, -0.4]])
def test_hessian_of_rosenbrock_matches_the_closed_form(backend, to_array, point):
    h = md.hessian(rosenbrock)(to_array(point))
    assert_close(h, rosenbrock_hessian(np.asarray(point)))


def test_hessian_of_a_matrix_input_has_shape_in_shape_twice(backend, to_array):
    x = RNG.standard_normal((2, 3))
    h = md.hessian(lambda x: md.sum(x ** 3))(to_array(x))
    expected = np.diag((6.0 * x).ravel()).reshape(2, 3, 2, 3)
    assert_close(h, expected)


def test_hessian_with_tuple_argnums_gives_nested_blocks(backend, to_array):
    x, y = to_array([1.0, 2.0]), to_array([3.0, 4.0])
    (hxx, hxy), (hyx, hyy) = md.hessian(lambda x, y: md.sum(x * x * y), argnums=(0, 1))(x, y)
    assert_close(hxx, np.diag([6.0, 8.0]))
    assert_close(hxy, np.diag([2.0, 4.0]))
    assert_close(hyx, np.diag([2.0, 4.0]))
    assert_close(hyy, np.zeros((2, 2)))


HVP_FUNCTIONS = {
    "quadratic-form": lambda x: md.sum(x * md.matmul(md.asarray(A44), x)),
    "sum-exp": lambda x: md.sum(md.exp(x)),
    "rosenbrock": rosenbrock,
    "tanh-layer": lambda x: md.sum(md.tanh(md.matmul(md.asarray(A34), x)) ** 2)
    + md.logsumexp(x),
}


@pytest.mark.parametrize("name", list(HVP_FUNCTIONS))
def test_hvp_equals_hessian_times_v(backend, to_array, name):
    f = HVP_FUNCTIONS[name]
    x, v = to_array(X4), to_array(V4)
    h = host(md.hessian(f)(x))
    assert_close(md.hvp(f, x, v), h @ V4, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# custom rules
# ---------------------------------------------------------------------------------------------


def make_log1pexp():
    @md.custom_jvp
    def log1pexp(x):
        return md.log(1.0 + md.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), md.sigmoid(x) * t

    return log1pexp


def make_triple_tangent():
    """The identity, with a deliberately wrong tangent rule (3 t), to prove the rule is used."""

    @md.custom_jvp
    def triple_tangent(x):
        return x

    triple_tangent.defjvp(lambda primals, tangents: (primals[0], 3.0 * tangents[0]))
    return triple_tangent


def make_clip_gradient():
    @md.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None),
                         lambda residuals, g: (md.clip(g, -1.0, 1.0),))
    return clip_gradient


def make_cube():
    """x³ with a hand-written VJP that keeps x as its residual."""

    @md.custom_vjp
    def cube(x):
        return x ** 3

    cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3.0 * x * x * g,))
    return cube


def sigmoid_np(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_custom_jvp_rule_gives_jvp_and_jacfwd(backend, to_array):
    log1pexp = make_log1pexp()
    x, v = to_array(X4), to_array(V4)
    out, tangent = md.jvp(log1pexp, (x,), (v,))
    assert_close(out, np.log1p(np.exp(X4)))
    assert_close(tangent, sigmoid_np(X4) * V4)
    assert_close(md.jacfwd(log1pexp)(x), np.diag(sigmoid_np(X4)))


def test_custom_jvp_rule_replaces_differentiation_of_the_body(backend, to_array):
    triple = make_triple_tangent()
    _, tangent = md.jvp(lambda x: md.sin(triple(x)) * 2.0, (to_array(X4),), (to_array(V4),))
    assert_close(tangent, 2.0 * np.cos(X4) * 3.0 * V4)


def test_custom_jvp_composes_inside_jvp_of_jvp(backend, to_array):
    log1pexp = make_log1pexp()
    x, v = to_array(X4), to_array(V4)
    _, second = md.jvp(lambda x: md.jvp(log1pexp, (x,), (v,))[1], (x,), (v,))
    s = sigmoid_np(X4)
    assert_close(second, s * (1.0 - s) * V4 * V4)


def test_custom_jvp_gives_zero_tangent_to_constant_arguments(backend, to_array):
    @md.custom_jvp
    def product(x, y):
        return x * y

    product.defjvp(lambda p, t: (product(*p), p[1] * t[0] + p[0] * t[1]))
    x, y = to_array([0.5, -2.0, 1.0]), to_array([1.0, 2.0, 3.0])
    assert_close(md.jacfwd(product, argnums=0)(x, y), np.diag(host(y)))
    assert_close(md.jacfwd(product, argnums=1)(x, y), np.diag(host(x)))


def test_custom_jvp_computes_the_primal_once_under_forward_mode(backend, to_array):
    """The rule gives value and tangent together: under jvp and jacfwd the function's body
    does not run besides it (the rule here never calls it), and the rule runs once."""
    calls = {"body": 0, "rule": 0}

    @md.custom_jvp
    def f(x):
        calls["body"] += 1
        return md.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        calls["rule"] += 1
        (x,), (t,) = primals, tangents
        return md.sin(x), md.cos(x) * t

    x, v = to_array(X4), to_array(V4)
    out, tangent = md.jvp(f, (x,), (v,))
    assert calls == {"body": 0, "rule": 1}
    assert_close(out, np.sin(X4))
    assert_close(tangent, np.cos(X4) * V4)
    assert_close(md.jacfwd(f)(x), np.diag(np.cos(X4)))
    assert calls == {"body": 0, "rule": 2}
    assert_close(f(x), np.sin(X4))
    assert calls == {"body": 1, "rule": 2}


def test_custom_vjp_rule_gives_grad_and_vjp(backend, to_array):
    clip_gradient = make_clip_gradient()
    x = to_array(X4)
    # d/dx sum(5 clip_gradient(x)) would be 5; the rule clips the cotangent to 1
    assert_close(md.grad(lambda x: md.sum(clip_gradient(x) * 5.0))(x), np.ones(4))
    out, pullback = md.vjp(clip_gradient, x)
    assert_close(out, X4)
    assert_close(pullback(to_array([3.0, -0.2, -7.0, 0.5]))[0], [1.0, -0.2, -1.0, 0.5])
    assert_close(md.jacrev(lambda x: clip_gradient(x) * 0.5)(x), 0.5 * np.eye(4))


def test_custom_vjp_composes_inside_grad_with_other_ops(backend, to_array):
    cube = make_cube()
    x = to_array(X4)
    g = md.grad(lambda x: md.sum(md.sin(cube(x))))(x)
    assert_close(g, np.cos(X4 ** 3) * 3.0 * X4 ** 2)


def test_custom_vjp_can_be_differentiated_twice_in_reverse(backend, to_array):
    cube = make_cube()
    x = to_array(X4)
    h = md.jacrev(md.grad(lambda x: md.sum(cube(x))))(x)
    assert_close(h, np.diag(6.0 * X4))


# ---------------------------------------------------------------------------------------------
# pytrees: every transform against the same function on the raveled vector
# ---------------------------------------------------------------------------------------------

W23 = RNG.standard_normal((2, 3))
B3 = RNG.standard_normal(3)


def make_params(to_array):
    return {"w": to_array(W23), "b": [to_array(B3), 0.7]}


def tree_model(p):
    """{"w": (2, 3), "b": [(3,), ()]} -> {"out": (2,), "extra": ((),)}."""
    h = md.tanh(p["w"] @ p["b"][0]) * p["b"][1]
    return {"out": h, "extra": (md.sum(p["b"][0] ** 2) * md.sum(p["w"]),)}


def tree_loss(p):
    out = tree_model(p)
    return md.sum(out["out"] ** 2) + out["extra"][0]


def flat_version(f, params):
    """f on the raveled parameters, with its output raveled too."""
    _, unravel = md.pytree.ravel_pytree(params)
    return lambda theta: md.pytree.ravel_pytree(f(unravel(theta)))[0]


def block_matrix(jacobian, out_sizes, in_sizes):
    """A pytree Jacobian (output structure of input structures of blocks) as one matrix."""
    blocks = iter(md.pytree.tree_leaves(jacobian))
    return np.block([[host(next(blocks)).reshape(m, n) for n in in_sizes] for m in out_sizes])


IN_SIZES = [3, 1, 6]  # b[0], b[1], w in flattening order (dict keys sorted)
OUT_SIZES = [1, 2]    # extra[0], out


def test_grad_of_a_pytree_has_the_structure_of_the_argument(backend, to_array):
    params = make_params(to_array)
    g = md.grad(tree_loss)(params)
    assert set(g) == {"w", "b"} and isinstance(g["b"], list) and len(g["b"]) == 2
    assert_plain(backend, g)
    flat, _ = md.pytree.ravel_pytree(params)
    expected = md.grad(lambda t: flat_version(tree_loss, params)(t)[0])(flat)
    assert_close(md.pytree.ravel_pytree(g)[0], host(expected), rtol=1e-13)
    assert host(g["b"][1]).shape == ()


def test_value_and_grad_of_pytrees_with_tuple_argnums(backend, to_array):
    params = make_params(to_array)
    x = to_array([0.5, -1.0])
    value, (gp, gx) = md.value_and_grad(
        lambda p, x: tree_loss(p) * md.sum(x), argnums=(0, 1))(params, x)
    assert_close(value, host(tree_loss(params)) * -0.5)
    assert_close(gx, np.full(2, host(tree_loss(params))))
    assert_close(gp["w"], -0.5 * host(md.grad(tree_loss)(params)["w"]), rtol=1e-13)


def test_jvp_and_vjp_of_pytrees_match_the_raveled_function(backend, to_array):
    params = make_params(to_array)
    tangent = {"w": to_array(np.ones((2, 3))), "b": [to_array([1.0, -1.0, 0.5]), 2.0]}
    out, t_out = md.jvp(tree_model, (params,), (tangent,))
    assert set(t_out) == {"out", "extra"} and isinstance(t_out["extra"], tuple)
    assert_plain(backend, (out, t_out))
    flat_f = flat_version(tree_model, params)
    flat, _ = md.pytree.ravel_pytree(params)
    _, expected = md.jvp(flat_f, (flat,), (md.pytree.ravel_pytree(tangent)[0],))
    assert_close(md.pytree.ravel_pytree(t_out)[0], host(expected), rtol=1e-13)

    value, pullback = md.vjp(tree_model, params)
    u = {"out": to_array([0.3, -2.0]), "extra": (1.5,)}
    (cotangent,) = pullback(u)
    assert set(cotangent) == {"w", "b"}
    _, flat_pullback = md.vjp(flat_f, flat)
    assert_close(md.pytree.ravel_pytree(cotangent)[0],
                 host(flat_pullback(md.pytree.ravel_pytree(u)[0])[0]), rtol=1e-13)
    assert_close(value["out"], host(tree_model(params)["out"]))


@pytest.mark.parametrize("name", ["jacfwd", "jacrev"])
def test_jacobian_of_pytrees_is_output_structure_of_input_structure(backend, to_array, name):
    params = make_params(to_array)
    jac = getattr(md, name)(tree_model)(params)
    assert set(jac) == {"out", "extra"} and set(jac["out"]) == {"w", "b"}
    assert host(jac["out"]["w"]).shape == (2, 2, 3)      # out (2,) x w (2, 3)
    assert host(jac["extra"][0]["b"][1]).shape == ()      # () x ()
    assert_plain(backend, jac)
    flat, _ = md.pytree.ravel_pytree(params)
    expected = md.jacfwd(flat_version(tree_model, params))(flat)
    np.testing.assert_allclose(block_matrix(jac, OUT_SIZES, IN_SIZES), host(expected),
                               rtol=1e-13, atol=1e-14)


def test_hessian_and_hvp_of_a_pytree_match_the_raveled_function(backend, to_array):
    params = make_params(to_array)
    h = md.hessian(tree_loss)(params)
    assert set(h) == {"w", "b"} and set(h["w"]) == {"w", "b"}
    assert host(h["w"]["b"][0]).shape == (2, 3, 3)
    flat, _ = md.pytree.ravel_pytree(params)
    expected = host(md.hessian(lambda t: flat_version(tree_loss, params)(t)[0])(flat))
    matrix = block_matrix(h, IN_SIZES, IN_SIZES)
    np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(matrix, matrix.T, rtol=1e-12, atol=1e-13)
    v = {"w": to_array(np.full((2, 3), 0.5)), "b": [to_array([1.0, 0.0, -1.0]), 1.0]}
    hv = md.hvp(tree_loss, params, v)
    np.testing.assert_allclose(host(md.pytree.ravel_pytree(hv)[0]),
                               expected @ host(md.pytree.ravel_pytree(v)[0]), rtol=1e-12)


def test_custom_vjp_and_custom_jvp_take_and_return_pytrees(backend, to_array):
    @md.custom_vjp
    def scale(p, s):
        return {"a": p["a"] * s, "total": (md.sum(p["b"]) * s,)}

    def scale_fwd(p, s):
        return scale(p, s), (p, s)

    def scale_bwd(res, g):
        p, s = res
        return ({"a": g["a"] * s, "b": md.ones_like(p["b"]) * (g["total"][0] * s)},
                md.sum(g["a"] * p["a"]) + g["total"][0] * md.sum(p["b"]))

    scale.defvjp(scale_fwd, scale_bwd)

    @md.custom_jvp
    def scale_j(p, s):
        return {"a": p["a"] * s, "total": (md.sum(p["b"]) * s,)}

    scale_j.defjvp(lambda pr, t: (scale_j(*pr), {
        "a": t[0]["a"] * pr[1] + pr[0]["a"] * md.expand_dims(t[1], -1),
        "total": (md.sum(t[0]["b"], axis=-1) * pr[1] + md.sum(pr[0]["b"]) * t[1],)}))

    p = {"a": to_array([1.0, -2.0]), "b": to_array([0.5, 0.25, 1.0])}

    def loss(f):
        return lambda p, s: md.sum(f(p, s)["a"] ** 2) + f(p, s)["total"][0] * 3.0

    plain = loss(lambda p, s: {"a": p["a"] * s, "total": (md.sum(p["b"]) * s,)})
    expected = md.grad(plain, argnums=(0, 1))(p, 1.5)
    for got in (md.grad(loss(scale), argnums=(0, 1))(p, 1.5),
                md.jacfwd(loss(scale_j), argnums=(0, 1))(p, 1.5)):
        assert_close(got[0]["a"], host(expected[0]["a"]))
        assert_close(got[0]["b"], host(expected[0]["b"]))
        assert_close(got[1], host(expected[1]))


def test_a_custom_rule_with_several_outputs_is_one_primitive_with_one_result_per_leaf(
        backend, to_array):
    """No packing: each output leaf is a result of its own, so an output that nothing uses gets
    no cotangent (the rule sees zeros there), md.jit records one equation with two results, and
    grad, grad of the jitted function, jacfwd and vmap equal the plain function's."""
    @md.custom_vjp
    def polar(x, y):
        return {"s": md.sin(x) * y, "c": md.cos(x)}

    def polar_fwd(x, y):
        return polar(x, y), (x, y)

    seen = []

    def polar_bwd(res, g):
        x, y = res
        seen.append(g["c"])
        # md.multiply, not *: the zeros are a raw array, and array_api_strict's operators refuse
        # a traced right operand instead of deferring to it (NumPy's defer)
        return (g["s"] * md.cos(x) * y - md.multiply(g["c"], md.sin(x)),
                g["s"] * md.sin(x))

    polar.defvjp(polar_fwd, polar_bwd)
    polar.defjvp(lambda pr, t: (polar(*pr), {
        "s": t[0] * md.cos(pr[0]) * pr[1] + t[1] * md.sin(pr[0]), "c": -t[0] * md.sin(pr[0])}))
    x, y = to_array([0.3, 1.2, -0.7]), to_array([2.0, -1.0, 0.5])

    def uses_s(x, y):
        return md.sum(polar(x, y)["s"])

    def plain(x, y):
        return md.sum(md.sin(x) * y)

    expected = host(md.grad(plain)(x, y))
    assert_close(md.grad(uses_s)(x, y), expected)
    assert np.all(host(seen[0]) == 0.0) and host(seen[0]).shape == (3,)
    assert_close(md.grad(md.jit(uses_s))(x, y), expected)
    assert_close(md.jacfwd(uses_s)(x, y), expected)
    batched = md.vmap(uses_s)(md.stack([x, -x]), md.stack([y, y]))
    assert_close(batched, np.array([float(host(plain(x, y))), float(host(plain(-x, y)))]))
    listing = str(md.make_program(uses_s)(x, y))
    assert "v1: f64[3], v2: f64[3] = polar(x1, x2" in listing, listing


KWARG_USES = {
    "grad": lambda f, x: md.grad(lambda x, c: md.sum(f(x, c=c)))(x, c=3.0),
    "value_and_grad": lambda f, x: md.value_and_grad(lambda x, c: md.sum(f(x, c=c)))(x, c=3.0)[1],
    "jacfwd": lambda f, x: md.jacfwd(f)(x, c=3.0),
    "jacrev": lambda f, x: md.jacrev(f)(x, c=3.0),
    "hessian": lambda f, x: md.hessian(lambda x, c: md.sum(f(x, c=c) ** 2))(x, c=3.0),
}


@pytest.mark.parametrize("use", list(KWARG_USES))
def test_keyword_arguments_pass_through_every_transform_undifferentiated(backend, to_array, use):
    def f(x, *, c):
        return x * c

    x = to_array([1.0, 2.0])
    expected = {"grad": np.full(2, 3.0), "value_and_grad": np.full(2, 3.0),
                "jacfwd": 3.0 * np.eye(2), "jacrev": 3.0 * np.eye(2),
                "hessian": 18.0 * np.eye(2)}[use]
    assert_close(KWARG_USES[use](f, x), expected)
