"""Bad input fails early, with a message that names the op and says what was wrong."""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md

TRANSFORMS_OF_ONE_ARGUMENT = {
    "grad": lambda f, x: md.grad(f)(x),
    "jvp": lambda f, x: md.jvp(f, (x,), (x,)),
    "vjp": lambda f, x: md.vjp(f, x),
    "jacfwd": lambda f, x: md.jacfwd(f)(x),
    "jacrev": lambda f, x: md.jacrev(f)(x),
}


# ---------------------------------------------------------------------------------------------
# grad of a non-scalar output
# ---------------------------------------------------------------------------------------------


def test_grad_of_a_non_scalar_output_points_to_jacrev_and_vjp(backend, to_array):
    with pytest.raises(TypeError, match=r"grad: .*scalar.*shape \(3,\).*jacrev.*vjp"):
        md.grad(lambda x: md.sin(x))(to_array([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match=r"grad: .*scalar.*shape \(2, 3\).*jacrev.*vjp"):
        md.value_and_grad(lambda x: md.reshape(x, (2, 3)))(to_array(np.ones(6)))


# ---------------------------------------------------------------------------------------------
# integer and boolean inputs
# ---------------------------------------------------------------------------------------------

NON_FLOAT_INPUTS = {
    "python int": (lambda: 2, "int"),
    "int array": (lambda: md.asarray([1, 2, 3]), "int"),
    "bool array": (lambda: md.asarray([True, False, True]), "bool"),
}


@pytest.mark.parametrize("kind", list(NON_FLOAT_INPUTS))
def test_grad_rejects_integer_and_boolean_inputs(backend, kind):
    make, dtype = NON_FLOAT_INPUTS[kind]
    with pytest.raises(TypeError, match=rf"grad: argument 0 has dtype \S*{dtype}.*floating"):
        md.grad(lambda x: md.sum(x))(make())


@pytest.mark.parametrize("transform", list(TRANSFORMS_OF_ONE_ARGUMENT))
@pytest.mark.parametrize("kind", list(NON_FLOAT_INPUTS))
def test_every_transform_rejects_integer_and_boolean_inputs(backend, transform, kind):
    make, dtype = NON_FLOAT_INPUTS[kind]
    with pytest.raises(TypeError, match=rf"{transform}: argument 0 has dtype \S*{dtype}"):
        TRANSFORMS_OF_ONE_ARGUMENT[transform](lambda x: x, make())


def test_grad_rejects_an_integer_argument_named_by_argnums(backend, to_array):
    with pytest.raises(TypeError, match=r"grad: argument 1 has dtype \S*int"):
        md.grad(lambda x, n: md.sum(x) * n, argnums=(0, 1))(to_array([1.0]), 3)


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


def test_broadcasting_mismatch_names_the_op_and_both_shapes(backend):
    with pytest.raises(md.ShapeError, match=r"add: .*\(3,\) and \(4,\).*broadcast"):
        md.add(md.zeros((3,)), md.zeros((4,)))
    with pytest.raises(md.ShapeError, match=r"multiply: .*\(2, 3\) and \(2,\).*broadcast"):
        md.multiply(md.ones((2, 3)), md.ones((2,)))


def test_broadcasting_mismatch_through_operators_on_traced_values(backend, to_array):
    x, y = to_array(np.ones(3)), to_array(np.ones(4))
    with pytest.raises(md.ShapeError, match=r"add: .*\(3,\) and \(4,\)"):
        md.grad(lambda x, y: md.sum(x + y), argnums=(0, 1))(x, y)
    with pytest.raises(md.ShapeError, match=r"subtract: .*\(3,\) and \(4,\)"):
        md.grad(lambda x: md.sum(x - md.ones((4,))))(x)
    with pytest.raises(md.ShapeError, match=r"multiply: .*\(3,\) and \(4,\)"):
        md.jvp(lambda x: x * md.ones((4,)), (x,), (x,))
    with pytest.raises(md.ShapeError, match=r"divide: .*\(3,\) and \(4,\)"):
        md.jacfwd(lambda x, y: x / y, argnums=(0, 1))(x, y)
    # the reflected operator of a traced right operand (NumPy array on the left)
    with md.use_backend("numpy"):
        with pytest.raises(md.ShapeError, match=r"add: .*\(4,\) and \(3,\)"):
            md.grad(lambda x: md.sum(np.ones(4) + x))(np.ones(3))


def test_matmul_of_misaligned_shapes_names_both_shapes(backend, to_array):
    with pytest.raises(md.ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\).*align"):
        md.matmul(md.zeros((2, 3)), md.zeros((4, 5)))
    with pytest.raises(md.ShapeError, match=r"matmul: shapes \(3,\) and \(4,\).*align"):
        md.matmul(md.zeros((3,)), md.zeros((4,)))
    with pytest.raises(md.ShapeError, match=r"matmul: shapes \(2, 3\) and \(2, 3\)"):
        md.grad(lambda a: md.sum(a @ a))(to_array(np.ones((2, 3))))


def test_impossible_reshape_names_both_shapes(backend, to_array):
    with pytest.raises(md.ShapeError, match=r"reshape: .*\(2, 3\) into \(4,\)"):
        md.reshape(md.zeros((2, 3)), (4,))
    with pytest.raises(md.ShapeError, match=r"reshape: .*\(2, 3\) into \(4, -1\)"):
        md.reshape(md.zeros((2, 3)), (4, -1))
    with pytest.raises(md.ShapeError, match=r"reshape: .*\(3,\) into \(2, 2\)"):
        md.grad(lambda x: md.sum(x.reshape(2, 2)))(to_array(np.ones(3)))


def test_jvp_with_a_tangent_of_the_wrong_shape_names_both_shapes(backend, to_array):
    with pytest.raises(md.ShapeError,
                       match=r"jvp: tangent 1 has shape \(4,\) but its primal has shape \(3,\)"):
        md.jvp(lambda x, y: x * y, (to_array(np.ones(3)), to_array(np.ones(3))),
               (to_array(np.ones(3)), to_array(np.ones(4))))


def test_jvp_with_mismatched_primals_and_tangents_says_so(backend, to_array):
    x = to_array(np.ones(3))
    with pytest.raises(ValueError, match=r"jvp: 2 primals but 1 tangents"):
        md.jvp(lambda x, y: x * y, (x, x), (x,))
    with pytest.raises(TypeError, match=r"jvp: primals and tangents must be tuples"):
        md.jvp(lambda x: x, x, x)


def test_vjp_with_a_cotangent_of_the_wrong_shape_names_both_shapes(backend, to_array):
    _, pullback = md.vjp(lambda x: x * 2.0, to_array(np.ones(3)))
    with pytest.raises(md.ShapeError, match=r"vjp: .*cotangent has shape \(4,\).*\(3,\)"):
        pullback(to_array(np.ones(4)))


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(md.BackendError, match=r"unknown backend 'tensorflow'.*'numpy'"):
        md.set_backend("tensorflow")
    with pytest.raises(md.BackendError, match=r"unknown backend 'torch'.*'array_api_strict'"):
        with md.use_backend("torch"):
            pass


def foreign_array(name):
    """A float64 array of backend ``name`` (loading that backend)."""
    with md.use_backend(name):
        return md.ones((3,))


MIXES = [("array_api_strict", "numpy"), ("numpy", "array_api_strict")]


@pytest.mark.parametrize(("current", "foreign"), MIXES)
def test_arrays_of_two_backends_in_one_op_name_both(current, foreign):
    other = foreign_array(foreign)
    message = rf"{{op}}: an array of the '{foreign}' backend was mixed with the current " \
              rf"'{current}' backend"
    with md.use_backend(current):
        with pytest.raises(md.BackendError, match=message.format(op="add")):
            md.add(md.ones((3,)), other)
        with pytest.raises(md.BackendError, match=message.format(op="exp")):
            md.exp(other)


@pytest.mark.parametrize(("current", "foreign"), MIXES)
def test_arrays_of_two_backends_under_a_transform_name_both(current, foreign):
    other = foreign_array(foreign)
    message = rf"multiply: an array of the '{foreign}' backend was mixed with the current " \
              rf"'{current}' backend"
    with md.use_backend(current):
        x = md.ones((3,))
        with pytest.raises(md.BackendError, match=message):
            md.grad(lambda x: md.sum(x * other))(x)
        with pytest.raises(md.BackendError, match=message):
            md.jvp(lambda x: x * other, (x,), (x,))


def test_matmul_with_a_foreign_array_reports_the_backend_mix_not_a_shape_error():
    with md.use_backend("array_api_strict"):
        with pytest.raises(md.BackendError, match=r"matmul: .*'numpy'.*'array_api_strict'"):
            md.matmul(md.ones((2, 3)), np.ones((3, 2)))


# ---------------------------------------------------------------------------------------------
# modes without a rule
# ---------------------------------------------------------------------------------------------


def make_clip_gradient():
    @md.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda residuals, g: (md.clip(g, -1.0, 1.0),))
    return clip_gradient


def make_log1pexp():
    @md.custom_jvp
    def log1pexp(x):
        return md.log(1.0 + md.exp(x))

    log1pexp.defjvp(lambda p, t: (log1pexp(p[0]), md.sigmoid(p[0]) * t[0]))
    return log1pexp


FORWARD_USES = {
    "jvp": lambda f, x: md.jvp(f, (x,), (x,)),
    "jacfwd": lambda f, x: md.jacfwd(f)(x),
    "hessian": lambda f, x: md.hessian(lambda x: md.sum(f(x)))(x),
    "hvp": lambda f, x: md.hvp(lambda x: md.sum(f(x)), x, x),
}

REVERSE_USES = {
    "grad": lambda f, x: md.grad(lambda x: md.sum(f(x)))(x),
    "vjp": lambda f, x: md.vjp(f, x),
    "jacrev": lambda f, x: md.jacrev(f)(x),
    "hessian": lambda f, x: md.hessian(lambda x: md.sum(f(x)))(x),
}


@pytest.mark.parametrize("use", list(FORWARD_USES))
def test_custom_vjp_function_in_forward_mode_raises_mode_error(backend, to_array, use):
    with pytest.raises(md.ModeError, match=r"clip_gradient has no JVP rule.*forward mode"):
        FORWARD_USES[use](make_clip_gradient(), to_array([0.5, -1.0]))


@pytest.mark.parametrize("use", list(REVERSE_USES))
def test_custom_jvp_function_in_reverse_mode_raises_mode_error(backend, to_array, use):
    with pytest.raises(md.ModeError, match=r"log1pexp has no VJP rule.*reverse mode"):
        REVERSE_USES[use](make_log1pexp(), to_array([0.5, -1.0]))


def test_mode_error_is_a_type_error():
    assert issubclass(md.ModeError, TypeError)


# ---------------------------------------------------------------------------------------------
# traced values used as mutable or as indices
# ---------------------------------------------------------------------------------------------


def assign_first(x):
    x[0] = 0.0
    return md.sum(x)


@pytest.mark.parametrize("transform", ["grad", "jvp", "jacfwd"])
def test_item_assignment_on_a_traced_array_points_to_where(backend, to_array, transform):
    fn = {"grad": lambda x: md.grad(assign_first)(x),
          "jvp": lambda x: md.jvp(assign_first, (x,), (x,)),
          "jacfwd": lambda x: md.jacfwd(assign_first)(x)}[transform]
    with pytest.raises(TypeError, match=r"item assignment on a traced array.*minidiff\.where"):
        fn(to_array([1.0, 2.0]))


def test_a_traced_value_used_as_an_index_points_to_stop_gradient(backend):
    with pytest.raises(TypeError, match=r"traced .*index.*stop_gradient"):
        md.grad(lambda i: [1.0, 2.0, 3.0][i])(1.0)


# ---------------------------------------------------------------------------------------------
# argnums (checked before any array is touched, so once, on the default backend) and has_aux
# ---------------------------------------------------------------------------------------------

ARGNUM_TRANSFORMS = {
    "grad": md.grad,
    "value_and_grad": md.value_and_grad,
    "jacfwd": md.jacfwd,
    "jacrev": md.jacrev,
}


@pytest.mark.parametrize("transform", list(ARGNUM_TRANSFORMS))
@pytest.mark.parametrize("argnums", [2, -3, (0, 2)])
def test_out_of_range_argnums_names_the_transform(transform, argnums):
    x = md.asarray([1.0, 2.0])
    name = "grad" if transform == "value_and_grad" else transform
    with pytest.raises(ValueError, match=rf"{name}: argnums .*out of range for 2"):
        ARGNUM_TRANSFORMS[transform](lambda x, y: md.sum(x * y), argnums=argnums)(x, x)


@pytest.mark.parametrize("transform", list(ARGNUM_TRANSFORMS))
def test_empty_argnums_names_the_transform(transform):
    x = md.asarray([1.0, 2.0])
    name = "grad" if transform == "value_and_grad" else transform
    with pytest.raises(ValueError, match=rf"{name}: argnums must name at least one"):
        ARGNUM_TRANSFORMS[transform](lambda x: md.sum(x), argnums=())(x)


@pytest.mark.parametrize("transform", list(ARGNUM_TRANSFORMS))
@pytest.mark.parametrize("argnums", [1.5, "0", (0, None)])
def test_non_integer_argnums_names_the_transform(transform, argnums):
    x = md.asarray([1.0, 2.0])
    name = "grad" if transform == "value_and_grad" else transform
    with pytest.raises((TypeError, ValueError), match=rf"{name}: argnums"):
        ARGNUM_TRANSFORMS[transform](lambda x, y: md.sum(x * y), argnums=argnums)(x, x)


def test_hessian_with_bad_argnums_names_a_transform():
    x = md.asarray([1.0, 2.0])
    with pytest.raises(ValueError, match=r"(hessian|jacfwd|grad): argnums .*out of range"):
        md.hessian(lambda x: md.sum(x * x), argnums=1)(x)


def test_has_aux_without_a_pair_says_what_to_return(backend, to_array):
    with pytest.raises(TypeError, match=r"grad\(has_aux=True\): .*pair \(output, aux\)"):
        md.grad(lambda x: md.sum(x), has_aux=True)(to_array([1.0, 2.0]))


# ---------------------------------------------------------------------------------------------
# recovery
# ---------------------------------------------------------------------------------------------


def test_an_error_inside_nested_transforms_leaves_no_level_open(backend, to_array):
    from minidiff.core import active_levels

    def inner(x):
        return md.grad(lambda y: md.sum(y + md.ones((4,))))(x)

    with pytest.raises(md.ShapeError):
        md.jvp(inner, (to_array(np.ones(3)),), (to_array(np.ones(3)),))
    assert active_levels() == ()
    assert float(md.to_host(md.grad(lambda x: md.grad(lambda y: y ** 3)(x))(2.0))) == 12.0
