"""The catalogue of bad and tricky inputs: each one gives the right value or a clear error.

No silent wrong answers. Every case below either checks the value (against a hand-derived
value or central finite differences in float64, with the tolerance stated) or expects an
exception whose message names the op or transform and what was wrong. The cases follow these
classes:

1. a traced value turned into a Python or NumPy value (which would drop its derivative);
2. outputs and inputs that are not arrays: pytrees, None, strings;
6. edge values: prod at zeros, powers at zero, repeated argnums, complex values, custom rules
   returning the wrong shape or dtype, keyword arguments;
7. errors that used to be unclear.

Samplers, fresh draws, threads and the CLI (classes 3, 4, 5) are in
``tests/test_bad_inputs_random.py``. Cases that involve NumPy itself (its functions, ufuncs
and arrays) run on NumPy; the others run on NumPy and array_api_strict (``backend``).
"""

from __future__ import annotations

import math
import re
from collections import namedtuple

import numpy as np
import pytest

import minidiff as md
from minidiff.random import default_rng
from minidiff.stochastic import derivative_estimate
from minidiff.testing import check_grads

ESCAPE = md.TracerConversionError


def host(x):
    return np.asarray(md.to_host(x))


def assert_close(actual, expected, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(host(actual), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


def central_difference(f, x, eps=1e-6):
    """∇f at x (NumPy float64) by central differences: error O(eps²) ≈ 1e-12 relative for the
    smooth functions used here, far below the 1e-7 tolerance the cases below use with it."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        g[i] = (float(md.to_host(f(x + step))) - float(md.to_host(f(x - step)))) / (2 * eps)
    return g


# ---------------------------------------------------------------------------------------------
# class 1: no escapes (a traced value never silently becomes a Python or NumPy value)
# ---------------------------------------------------------------------------------------------


def test_float_of_a_traced_value_raises_instead_of_dropping_its_derivative(backend):
    # was: grad(lambda x: float(x) * x)(2.) == 2, not 4
    with pytest.raises(ESCAPE, match=r"float\(\) of a traced value.*stop_gradient"):
        md.grad(lambda x: float(x) * x)(2.0)


def test_math_functions_on_a_traced_value_raise(backend):
    # was: grad(math.sin)(1.) == 0
    with pytest.raises(ESCAPE, match=r"float\(\).*minidiff\.sin"):
        md.grad(math.sin)(1.0)
    with pytest.raises(ESCAPE, match=r"float\(\)"):
        md.jacfwd(math.exp)(1.0)


def test_int_and_complex_of_a_traced_value_raise(backend):
    with pytest.raises(ESCAPE, match=r"int\(\) of a traced value"):
        md.grad(lambda x: x * int(x))(2.0)
    with pytest.raises(ESCAPE, match=r"complex\(\) of a traced value.*real-valued"):
        md.jvp(lambda x: x * abs(complex(x)), (2.0,), (1.0,))


def test_np_asarray_of_a_traced_value_raises():
    # was: np.asarray(x, dtype=float) inside grad gave [1, 2, 3] instead of [2, 4, 6]
    with pytest.raises(ESCAPE, match=r"np\.asarray.*minidiff\.asarray"):
        md.grad(lambda x: md.sum(np.asarray(x, dtype=float) * x))(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ESCAPE, match=r"np\.asarray"):
        md.jacfwd(lambda x: np.array(x) + x)(np.array([1.0, 2.0]))


def test_storing_a_traced_value_into_a_numpy_array_raises():
    # was: a = np.zeros(3); a[0] = x gave a gradient of 0
    def store_scalar(x):
        a = np.zeros(3)
        a[0] = x
        return md.sum(a * x)

    # NumPy converts a scalar with float() and reports its own error, caused by ours
    with pytest.raises(ValueError) as info:
        md.grad(store_scalar)(2.0)
    assert isinstance(info.value.__cause__, ESCAPE)
    assert "a[i] = x" in str(info.value.__cause__)

    def store_row(x):
        a = np.zeros((2, 3))
        a[0] = x
        return md.sum(a)

    with pytest.raises(ESCAPE, match=r"storing into a NumPy array"):
        md.grad(store_row)(np.ones(3))


def test_float_of_a_stochastic_triple_raises_instead_of_dropping_its_jump(backend):
    # was: the jump was dropped and the mean came out 1.49 where the exact value is 3
    rng = default_rng(3)
    with pytest.raises(ESCAPE, match=r"float\(\) of a traced value"):
        derivative_estimate(lambda p: float(rng.bernoulli(p)) * 3.0, 0.5)


def test_numpy_ufuncs_on_a_traced_value_name_the_minidiff_op():
    with pytest.raises(ESCAPE, match=r"np\.sin on a traced value.*use minidiff\.sin.*"
                                     r"stop_gradient"):
        md.grad(lambda x: np.sin(x))(1.0)
    with pytest.raises(ESCAPE, match=r"np\.exp on a traced value.*minidiff\.exp"):
        md.jacfwd(np.exp)(np.array([1.0, 2.0]))
    with pytest.raises(ESCAPE, match=r"np\.arctan on a traced value.*no op of that name"):
        md.grad(np.arctan)(1.0)


def test_np_sum_of_a_traced_value_names_minidiff_sum_and_not_a_keyword_out():
    # was: "sum() got an unexpected keyword argument 'out'"
    with pytest.raises(ESCAPE, match=r"np\.sum on a traced value.*minidiff\.sum") as info:
        md.grad(np.sum)(np.array([1.0, 2.0]))
    assert "out" not in str(info.value)
    with pytest.raises(ESCAPE, match=r"np\.add\.reduce on a traced value.*minidiff\.sum"):
        md.grad(np.add.reduce)(np.array([1.0, 2.0]))
    with pytest.raises(ESCAPE, match=r"np\.stack on a traced value.*minidiff\.stack"):
        md.jacfwd(lambda x: np.stack([x, x]))(np.array([1.0, 2.0]))


def test_numpy_array_on_the_left_of_an_operator_is_differentiated():
    """``ndarray (op) traced`` is what Python's reflected operators would do: minidiff's ops."""
    a = np.array([2.0, 1.5, 0.5])
    x = np.array([0.3, 1.2, 2.0])
    for f in (lambda x: md.sum(a * x ** 2), lambda x: md.sum(a - x * x),
              lambda x: md.sum(a / x), lambda x: md.sum(a ** x),
              lambda x: a @ md.sin(x), lambda x: md.sum(a + np.float64(2.0) * x)):
        assert_close(md.grad(f)(x), central_difference(f, x), rtol=1e-7, atol=1e-8)


def test_in_place_numpy_update_with_a_traced_value_raises():
    def f(x):
        a = np.zeros(3)
        a += x
        return md.sum(a)

    with pytest.raises(ESCAPE, match=r"np\.add with out= on a traced value.*a = a \+ x"):
        md.grad(f)(np.ones(3))


def test_values_of_finished_transforms_convert_as_plain_arrays():
    leaked = []

    def f(x):
        leaked.append(x * 2.0)
        return x * x

    md.grad(f)(3.0)
    assert float(leaked[0]) == 6.0
    assert np.asarray(leaked[0]).tolist() == 6.0
    assert float(np.sin(leaked[0])) == pytest.approx(math.sin(6.0), rel=1e-15)
    assert float(np.sum(leaked[0])) == 6.0


def test_metadata_and_bool_of_a_traced_value_stay_allowed(backend):
    """np.shape/np.ndim give no value away; bool() (eager control flow on values) gives the
    derivative of the branch taken, which is right wherever the branch does not change."""
    with md.use_backend("numpy"):
        assert md.grad(lambda x: md.sum(x) * np.ndim(x) + np.shape(x)[0])(np.ones(3)).tolist() \
            == [1.0, 1.0, 1.0]

    def branchy(x):
        return x * x if x else -x  # bool() of a 0-d traced value

    assert_close(md.grad(branchy)(3.0), 6.0)
    assert_close(md.grad(branchy)(0.0), -1.0)


# ---------------------------------------------------------------------------------------------
# class 2: pytree inputs and outputs; outputs that are not arrays raise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("result", "message"), [
    (lambda x: {"loss": x * x}, r"grad: the function must return a scalar, but returned a "
                                r"dict.*jacrev or vjp.*has_aux"),
    (lambda x: None, r"grad: the function must return a scalar, but returned None \(did the "
                     r"function forget a `return`\?\)"),
    (lambda x: "loss", r"grad: the function's output is a str \('loss'\)"),
    (lambda x: (x, x), r"grad: the function must return a scalar, but returned a tuple"),
    (lambda x: object(), r"grad: the function's output is a object"),
])
def test_grad_of_an_output_that_is_not_a_scalar_array_raises(backend, result, message):
    # was: a gradient of 0 for dicts, None and strings
    with pytest.raises(TypeError, match=message):
        md.grad(result)(2.0)


def test_forgotten_return_raises_in_every_transform(backend):
    def forgot(x):
        x * 2.0  # noqa: B018 (the bug being caught)

    for name, call in {"jvp": lambda: md.jvp(forgot, (1.0,), (1.0,)),
                       "vjp": lambda: md.vjp(forgot, 1.0),
                       "jacfwd": lambda: md.jacfwd(forgot)(1.0),
                       "jacrev": lambda: md.jacrev(forgot)(1.0)}.items():
        with pytest.raises(TypeError, match=rf"{name}: the function's output is None \(did "
                                            rf"the function forget a `return`\?\)"):
            call()


def test_jacrev_of_a_tuple_output_gives_one_jacobian_per_output(backend):
    # was: [0, 0]
    jac = md.jacrev(lambda x: (x * x, x))(2.0)
    assert isinstance(jac, tuple) and len(jac) == 2
    assert_close(jac[0], 4.0)
    assert_close(jac[1], 1.0)
    jac = md.jacfwd(lambda x: (x * x, x))(2.0)
    assert_close(jac[0], 4.0)
    assert_close(jac[1], 1.0)


def test_jvp_and_vjp_of_dict_outputs_give_plain_arrays(backend, to_array):
    # was: object arrays holding leaked tracers
    x = to_array([1.0, 2.0])
    out, tangent = md.jvp(lambda x: {"sq": x * x, "pair": (md.sum(x), 3.0)}, (x,),
                          (to_array([1.0, 0.0]),))
    assert_close(tangent["sq"], [2.0, 0.0])
    assert_close(tangent["pair"][0], 1.0)
    assert_close(tangent["pair"][1], 0.0)  # a constant output has a zero tangent
    assert not isinstance(out["sq"], md.Dual)
    value, pullback = md.vjp(lambda x: {"sq": x * x, "total": md.sum(x)}, x)
    (g,) = pullback({"sq": to_array([1.0, 1.0]), "total": 2.0})
    assert_close(g, [2.0 * 1.0 + 2.0, 2.0 * 2.0 + 2.0])
    assert_close(value["total"], 3.0)


def test_dict_inputs_are_differentiated_leaf_by_leaf(backend, to_array):
    # was: a failure about "dtype object"
    params = {"mu": to_array([0.5, -1.0]), "log_sigma": 0.2}

    def nll(p):
        z = md.subtract(to_array([1.0, 2.0]), p["mu"]) / md.exp(p["log_sigma"])
        return md.sum(0.5 * z * z) + 2.0 * p["log_sigma"]

    g = md.grad(nll)(params)
    sigma = math.exp(0.2)
    z = (np.array([1.0, 2.0]) - np.array([0.5, -1.0])) / sigma
    assert_close(g["mu"], -z / sigma)
    assert_close(g["log_sigma"], -np.sum(z * z) + 2.0)


def test_namedtuple_and_nested_inputs_keep_their_structure(backend):
    Params = namedtuple("Params", ["a", "rest"])
    g = md.grad(lambda p: p.a * p.rest[0]["k"] ** 2)(Params(3.0, [{"k": 2.0}]))
    assert type(g) is Params and isinstance(g.rest, list) and set(g.rest[0]) == {"k"}
    assert_close(g.a, 4.0)
    assert_close(g.rest[0]["k"], 12.0)


@pytest.mark.parametrize(("argument", "message"), [
    (None, r"grad: argument 0 is None; transforms differentiate arrays and numbers"),
    ("abc", r"grad: argument 0 is a str \('abc'\)"),
    ({"w": 1.0, "tag": "x"}, r"grad: argument 0 at \['tag'\] is a str"),
    ([1.0, None], r"grad: argument 0 at \[1\] is None"),
    ({"n": 3}, r"grad: argument 0 at \['n'\] has dtype \S*int.*floating"),
])
def test_inputs_that_are_not_float_arrays_are_refused_with_their_place(backend, argument,
                                                                      message):
    with pytest.raises(TypeError, match=message):
        md.grad(lambda p: 1.0)(argument)


def test_an_output_leaf_that_is_not_an_array_is_named_by_its_path(backend, to_array):
    with pytest.raises(TypeError, match=r"jacrev: the function's output at \[1\]\['note'\] is "
                                        r"a str"):
        md.jacrev(lambda x: (x, {"note": "hi"}))(to_array([1.0]))


def test_structure_mismatches_of_tangents_and_cotangents_raise(backend, to_array):
    x = {"a": to_array([1.0]), "b": 2.0}
    with pytest.raises(ValueError, match=r"jvp: tangent 0 has structure \{'a': \*\} but its "
                                         r"primal has structure \{'a': \*, 'b': \*\}"):
        md.jvp(lambda p: p["a"] * p["b"], (x,), ({"a": to_array([1.0])},))
    _, pullback = md.vjp(lambda p: (p["a"], p["b"]), x)
    with pytest.raises(ValueError, match=r"vjp: the cotangent has structure \[\*, \*\] but the "
                                         r"output has structure \(\*, \*\)"):
        pullback([to_array([1.0]), 1.0])
    with pytest.raises(md.ShapeError, match=r"vjp: the cotangent at \[0\] has shape \(2,\)"):
        pullback((to_array([1.0, 1.0]), 1.0))


def test_a_list_argument_is_a_pytree_and_ops_read_a_list_as_its_array(backend):
    # hessian(md.prod)([0., 2., 3.]): the list is three scalars (as in JAX); md.prod reads the
    # list of traced values as the array they make (as NumPy would), so the answer is right
    h = md.hessian(md.prod)([0.0, 2.0, 3.0])
    assert isinstance(h, list) and all(isinstance(row, list) for row in h)
    matrix = np.array([[host(v) for v in row] for row in h])
    np.testing.assert_array_equal(matrix, [[0.0, 3.0, 2.0], [3.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    with pytest.raises(TypeError, match=r"grad passed argument 0, a list.*minidiff\.asarray"):
        try:
            md.grad(lambda x: md.sum(x * x))([1.0, 2.0])  # Python's list * list
        except TypeError as exc:  # the note is added to Python's own error: check it
            raise TypeError(" ".join(getattr(exc, "__notes__", []))) from exc


def test_ops_read_a_plain_list_as_the_array_it_makes(backend):
    # was: md.sum([1., 2., 3.]) returned the list (a list's shape was read as ())
    assert_close(md.sum([1.0, 2.0, 3.0]), 6.0)
    assert_close(md.prod([[1.0, 2.0], [3.0, 4.0]], axis=1), [2.0, 12.0])
    assert_close(md.mean([1.0, 2.0, 6.0]), 3.0)
    assert_close(md.max([1.0, 5.0, 3.0]), 5.0)


def test_checkpointed_loop_takes_a_pytree_state(backend):
    def step(s, t):
        return {"x": s["x"] * 0.9 + s["v"][0], "v": [s["v"][0] * 0.5]}

    def run(theta, loop):
        state = loop(step, {"x": theta, "v": [theta * 2.0]}, 8)
        return state["x"] + state["v"][0]

    def plain(f, state, n):
        for t in range(n):
            state = f(state, t)
        return state

    loop = lambda f, s, n: md.checkpointed_loop(f, s, n, snapshots=2)  # noqa: E731
    assert_close(md.grad(lambda th: run(th, loop))(1.3),
                 md.grad(lambda th: run(th, plain))(1.3), rtol=1e-14)


def test_check_grads_takes_pytrees_and_catches_a_wrong_rule_inside_them(backend, to_array):
    check_grads(lambda p: {"y": md.sin(p["w"]) * p["b"][0]}, ({"w": to_array([0.3, -0.4]),
                                                              "b": [to_array([1.5, 0.5])]},))

    @md.custom_jvp
    def wrong_sin(x):
        return md.sin(x)

    wrong_sin.defjvp(lambda p, t: (wrong_sin(p[0]), md.cos(p[0]) * t[0] * 1.01))
    with pytest.raises(AssertionError, match=r"forward-mode J·v differs"):
        check_grads(lambda p: {"y": wrong_sin(p["w"])}, ({"w": to_array([0.3, -0.4])},),
                    modes=("fwd",), order=1)


# ---------------------------------------------------------------------------------------------
# class 6: edge values
# ---------------------------------------------------------------------------------------------


def test_hessian_of_prod_at_a_zero_is_the_products_of_the_other_factors(backend, to_array):
    # was: [[0, 3, 2], [0, 0, 0], [0, 0, 0]], not even symmetric
    h = md.hessian(md.prod)(to_array([0.0, 2.0, 3.0]))
    np.testing.assert_array_equal(host(h), [[0.0, 3.0, 2.0], [3.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    h = md.hessian(md.prod)(to_array([0.0, 0.0, 3.0]))  # two zeros: only ∂²/∂x0∂x1 = 3
    np.testing.assert_array_equal(host(h), [[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("point", [[0.0, 2.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0],
                                   [1.5, -2.0, 0.5, 3.0]])
def test_check_grads_to_second_order_passes_on_prod_at_zeros(backend, to_array, point):
    check_grads(md.prod, (to_array(point),), order=2)


def test_third_derivative_of_prod_at_zeros_is_exact(backend, to_array):
    # ∂³(x0 x1 x2 x3)/∂x0∂x1∂x2 = x3, at a point where every other factor is 0
    d3 = md.jacfwd(md.jacfwd(md.grad(md.prod)))(to_array([0.0, 0.0, 0.0, 2.0]))
    assert host(d3)[0, 1, 2] == 2.0 and host(d3)[0, 1, 3] == 0.0
    assert host(d3)[2, 0, 1] == 2.0  # symmetric in the order of differentiation


def test_prod_over_an_axis_with_zeros_has_the_right_jacobian(backend, to_array):
    x = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    jac = host(md.jacrev(lambda a: md.prod(a, axis=1, keepdims=True))(to_array(x)))
    expected = np.zeros((2, 1, 2, 3))
    expected[0, 0, 0] = [6.0, 0.0, 0.0]
    expected[1, 0, 1] = [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(jac, expected)
    check_grads(lambda a: md.prod(a, axis=0), (to_array(x),), order=2)


def test_x_to_the_zero_has_derivative_zero_everywhere_in_both_modes(backend, to_array):
    # was: NaN at x = 0, spreading to other entries in jacfwd (JAX gives 0)
    x = to_array([0.0, 1.0, -2.0])
    f = lambda x: md.sum(x ** 0 + x ** 2)  # noqa: E731
    assert_close(md.grad(f)(x), [0.0, 2.0, -4.0])
    assert_close(md.jacfwd(lambda x: x ** 0 * x)(x), np.eye(3))
    assert_close(md.hessian(f)(x), 2.0 * np.eye(3))
    assert_close(md.grad(lambda x: md.power(x, 0.0))(0.0), 0.0)


def test_an_array_exponent_of_zero_at_x_zero_gives_finite_derivatives(backend, to_array):
    y = to_array([0.0, 1.0, 2.0, 3.0])
    f = lambda x: md.sum(md.power(x, y))  # noqa: E731
    zero = to_array(np.zeros(4))
    assert_close(md.grad(f)(zero), [0.0, 1.0, 0.0, 0.0])
    assert_close(md.jacfwd(md.grad(f))(zero), np.diag([0.0, 0.0, 2.0, 0.0]))
    assert_close(md.jacrev(md.grad(f))(zero), np.diag([0.0, 0.0, 2.0, 0.0]))


@pytest.mark.parametrize(("n", "first", "second"), [(1, 1.0, 0.0), (2, 0.0, 2.0),
                                                    (3, 0.0, 0.0)])
def test_integer_powers_at_zero_have_the_right_derivatives(backend, n, first, second):
    assert_close(md.grad(lambda x: x ** n)(0.0), first)
    assert_close(md.jacfwd(lambda x: x ** n)(0.0), first)
    assert_close(md.hessian(lambda x: x ** n)(0.0), second)
    assert_close(md.jacrev(md.jacfwd(lambda x: x ** n))(0.0), second)


@pytest.mark.parametrize("transform", [md.grad, md.value_and_grad, md.jacfwd, md.jacrev,
                                       md.hessian])
def test_repeated_argnums_raise(backend, transform):
    # was: argnums=(0, 0) gave (0, 3)
    with pytest.raises(ValueError, match=r"argnums \(0, 0\) names argument 0 more than once"):
        transform(lambda x, y: x * y * y, argnums=(0, 0))(1.0, 3.0)


def test_complex_inputs_are_refused_by_every_transform(backend):
    # was: a complex gradient with no conjugation
    for name, call in {"grad": lambda: md.grad(lambda z: md.sum(z))(1 + 2j),
                       "jacfwd": lambda: md.jacfwd(lambda z: z)(np.array([1j])),
                       "jvp": lambda: md.jvp(lambda z: z, (np.array(1j),), (1.0,))}.items():
        with pytest.raises(TypeError, match=rf"{name}: argument 0 is complex.*real-valued"):
            call()


def test_complex_intermediates_under_a_transform_raise_naming_the_op(backend):
    with pytest.raises(TypeError, match=r"multiply: a complex value meets a traced one.*"
                                        r"real-valued"):
        md.grad(lambda x: md.abs(x * (1.0 + 2.0j)))(1.0)
    with md.use_backend("numpy"):
        with pytest.raises(TypeError, match=r"add: a complex value meets a traced one"):
            md.jacfwd(lambda x: x + np.array([1j, 2j]))(np.ones(2))
    assert_close(md.abs(md.asarray(3.0) * 1.0), 3.0)  # outside a transform: plain NumPy


def test_custom_vjp_cotangent_of_the_wrong_shape_raises_naming_the_rule(backend, to_array):
    # was: not checked
    @md.custom_vjp
    def double(x):
        return 2.0 * x

    def double_bwd(residuals, g):
        return (md.sum(g) * 2.0,)  # a scalar, where x has shape (3,)

    double.defvjp(lambda x: (double(x), None), double_bwd)
    with pytest.raises(ValueError, match=r"double: the bwd rule double_bwd returned a cotangent "
                                         r"\(args\[0\]\) that has shape \(\), but it must have "
                                         r"shape \(3,\)"):
        md.grad(lambda x: md.sum(double(x)))(to_array([1.0, 2.0, 3.0]))


def test_custom_vjp_cotangent_of_the_wrong_dtype_or_count_raises(backend, to_array):
    @md.custom_vjp
    def ident(x):
        return x

    b = md.get_backend()
    ident.defvjp(lambda x: (x, None), lambda r, g: (b.xp.astype(g, b.xp.float32),))
    with pytest.raises(TypeError, match=r"ident: the bwd rule returned a cotangent \(args\[0\]\) "
                                        r"that has dtype \S*float32, but it must have dtype "
                                        r"\S*float64"):
        md.grad(lambda x: md.sum(ident(x)))(to_array([1.0]))
    ident.defvjp(lambda x: (x, None), lambda r, g: (g, g))
    with pytest.raises(TypeError, match=r"ident: the bwd rule must return a tuple of 1 "
                                        r"cotangent"):
        md.grad(lambda x: md.sum(ident(x)))(to_array([1.0]))


def test_custom_jvp_tangent_of_the_wrong_shape_or_structure_raises(backend, to_array):
    @md.custom_jvp
    def total(x):
        return md.sum(x)

    def total_jvp(primals, tangents):
        return total(primals[0]), tangents[0]  # forgot to sum: (K, 3) where (K,) is needed

    total.defjvp(total_jvp)
    with pytest.raises(ValueError, match=r"total: the jvp rule total_jvp returned a tangent "
                                         r"that has shape \(3, 3\), but it must have shape "
                                         r"\(3,\)"):
        md.jacfwd(total)(to_array([1.0, 2.0, 3.0]))

    @md.custom_jvp
    def pair(x):
        return x, x

    pair.defjvp(lambda p, t: (pair(p[0]), t[0]))
    with pytest.raises(ValueError, match=r"pair: the jvp rule returned a tangent of structure "
                                         r"\*, but the function's output has structure \(\*, \*\)"):
        md.jvp(pair, (to_array([1.0]),), (to_array([1.0]),))


def test_custom_rules_take_keyword_arguments(backend, to_array):
    @md.custom_jvp
    def scaled(x, scale=2.0):
        return x * scale

    scaled.defjvp(lambda p, t: (scaled(*p), t[0] * p[1] + t[1] * p[0]))
    assert_close(md.jacfwd(lambda x: scaled(x, scale=3.0))(to_array([1.0, 2.0])), 3.0 * np.eye(2))
    assert_close(md.jacfwd(scaled)(to_array([1.0, 2.0])), 2.0 * np.eye(2))  # the default


def test_keyword_arguments_pass_through_jacfwd_and_jacrev(backend, to_array):
    # was: rejected, with an error that blamed the user's function
    f = lambda x, *, c: x * c  # noqa: E731
    x = to_array([1.0, 2.0])
    assert_close(md.jacfwd(f)(x, c=3.0), 3.0 * np.eye(2))
    assert_close(md.jacrev(f)(x, c=3.0), 3.0 * np.eye(2))
    assert_close(md.hessian(lambda x, c: md.sum(x ** 3) * c)(x, c=2.0), np.diag([12.0, 24.0]))


# ---------------------------------------------------------------------------------------------
# class 7: errors that were unclear
# ---------------------------------------------------------------------------------------------


def test_grad_of_mean_on_an_empty_array_says_the_array_is_empty(backend, to_array):
    # was: ZeroDivisionError
    with pytest.raises(ValueError, match=r"mean: the array of shape \(0,\) is empty"):
        md.grad(md.mean)(to_array(np.zeros(0)))
    with pytest.raises(ValueError, match=r"mean: the array of shape \(3, 0\) is empty along "
                                         r"axis 1"):
        md.mean(md.zeros((3, 0)), axis=1)


def test_checkpointed_loop_accepts_a_python_float_state(backend):
    # was: "changed the state from [((), "<class 'numpy.float64'>")] to [((), 'float64')]"
    def run(theta, loop):
        return loop(lambda s, t: theta * s + 1.0, 0.5, 10)

    def plain(f, s, n):
        for t in range(n):
            s = f(s, t)
        return s

    expected = sum(k * 0.9 ** (k - 1) for k in range(1, 10)) + 10 * 0.5 * 0.9 ** 9
    assert_close(md.grad(lambda th: run(th, md.checkpointed_loop))(0.9), expected, rtol=1e-13)
    assert_close(md.grad(lambda th: run(th, plain))(0.9), expected, rtol=1e-13)
    assert_close(md.checkpointed_loop(lambda s, t: s + 1.0, 0.5, 3), 3.5)


def test_checkpointed_loop_names_the_leaf_whose_shape_changed(backend, to_array):
    with pytest.raises(ValueError, match=re.escape("step 0 changed the state at ['v'] from "
                                                   "((2,), '") + r"\S*float64'\) to \(\(4,\)"):
        md.grad(lambda x: md.sum(md.checkpointed_loop(
            lambda s, t: {"v": md.concatenate([s["v"], s["v"]]), "n": s["n"]},
            {"v": x, "n": 1.0}, 3)["v"]))(to_array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"step 0 changed the state's structure from "
                                         r"\{'v': \*\} to \(\*,\)"):
        md.checkpointed_loop(lambda s, t: (s["v"],), {"v": to_array([1.0])}, 2)


def test_ones_and_zeros_take_an_int_shape(backend):
    # was: "'int' object is not iterable"
    assert host(md.ones(3)).tolist() == [1.0, 1.0, 1.0]
    assert host(md.zeros(2)).shape == (2,)
