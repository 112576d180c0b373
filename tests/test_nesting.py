"""Nested transforms, long programs and what reverse mode keeps in memory.

* Perturbation confusion: d/dx [x · (d/dy (x + y))|_{y=1}] at x = 1 is 1, because the inner
  derivative is 1 whatever x is. An engine that lets the outer perturbation of x leak into the
  inner derivative answers 2.
* Third derivatives through every mix of forward and reverse mode, against a closed form.
* A chain of 20,000 primitives (20 times Python's default recursion limit), differentiated in
  both modes: the backward pass is a loop, since a recursive one would stop at the limit.
* The tape frees residuals as backward uses them, and keeps only what each rule needs.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import minidiff as md
from minidiff import transforms
from minidiff.core import close_level, open_level
from minidiff.memory import MeteredTape
from minidiff.reverse import ReverseEngine


def host(x):
    return np.asarray(md.to_host(x))


# ---------------------------------------------------------------------------------------------
# perturbation confusion
# ---------------------------------------------------------------------------------------------


def inner_by_grad(x):
    return x * md.grad(lambda y: x + y)(1.0)


def inner_by_jvp(x):
    return x * md.jvp(lambda y: x + y, (1.0,), (1.0,))[1]


PERTURBATION_FORMS = {
    "grad-of-grad": lambda: md.grad(inner_by_grad)(1.0),
    "jvp-of-jvp": lambda: md.jvp(inner_by_jvp, (1.0,), (1.0,))[1],
    "jvp-of-grad": lambda: md.jvp(inner_by_grad, (1.0,), (1.0,))[1],
    "grad-of-jvp": lambda: md.grad(inner_by_jvp)(1.0),
}


@pytest.mark.parametrize("form", list(PERTURBATION_FORMS))
def test_perturbation_confusion_is_impossible(backend, form):
    result = PERTURBATION_FORMS[form]()
    assert backend.is_array(result)
    assert float(host(result)) == 1.0  # 2.0 if the two perturbations of x were confused


def test_inner_derivative_of_a_closed_over_variable_is_a_constant_to_the_outer(backend):
    # d/dx [d/dy (x y)]|_{y=2} = d/dx x = 1; d/dx [x² · d/dy (x y)] = d/dx x³ = 3x²
    assert float(host(md.grad(lambda x: md.grad(lambda y: x * y)(2.0))(3.0))) == 1.0
    g = md.jvp(lambda x: x * x * md.grad(lambda y: x * y)(2.0), (3.0,), (1.0,))[1]
    assert float(host(g)) == pytest.approx(27.0, rel=1e-14)


# ---------------------------------------------------------------------------------------------
# third derivatives
# ---------------------------------------------------------------------------------------------


def f_scalar(x):
    return x ** 3 * md.sin(x)


def f_third(x):
    """d³/dx³ [x³ sin x] = 6 sin x + 18 x cos x − 9 x² sin x − x³ cos x."""
    s, c = math.sin(x), math.cos(x)
    return 6 * s + 18 * x * c - 9 * x * x * s - x ** 3 * c


def d_fwd(f):
    return lambda x: md.jvp(f, (x,), (1.0,))[1]


THIRD_DERIVATIVES = {
    "rev-rev-rev": md.grad(md.grad(md.grad(f_scalar))),
    "fwd-rev-rev": d_fwd(md.grad(md.grad(f_scalar))),
    "fwd-fwd-rev": d_fwd(d_fwd(md.grad(f_scalar))),
    "rev-fwd-rev": md.grad(d_fwd(md.grad(f_scalar))),
    "rev-rev-fwd": md.grad(md.grad(d_fwd(f_scalar))),
    "fwd-fwd-fwd": d_fwd(d_fwd(d_fwd(f_scalar))),
}


@pytest.mark.parametrize("order", list(THIRD_DERIVATIVES))
@pytest.mark.parametrize("x", [0.7, -1.3])
def test_third_derivative_matches_the_closed_form(backend, order, x):
    result = THIRD_DERIVATIVES[order](x)
    assert float(host(result)) == pytest.approx(f_third(x), rel=1e-12)


def test_third_derivative_tensor_by_forward_and_reverse_over_hessian(backend, to_array):
    """f(x) = Σ x_i³ sin x_i + x_0 x_1 x_2: T_iii = f'''(x_i), T_ijk = 1 for {i,j,k} = {0,1,2}."""

    def f(x):
        return md.sum(f_scalar(x)) + x[0] * x[1] * x[2]

    point = np.array([0.7, -1.3, 0.4])
    expected = np.zeros((3, 3, 3))
    for i in range(3):
        expected[i, i, i] = f_third(point[i])
    for i, j, k in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        expected[i, j, k] = 1.0
    x = to_array(point)
    np.testing.assert_allclose(host(md.jacfwd(md.hessian(f))(x)), expected, atol=1e-12)
    np.testing.assert_allclose(host(md.jacrev(md.hessian(f))(x)), expected, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# long chains
# ---------------------------------------------------------------------------------------------

CHAIN = 20_000


def sin_chain(x):
    for _ in range(CHAIN):
        x = md.sin(x)
    return x


def sin_chain_closed_form(x0):
    """x_{k+1} = sin x_k; d x_n / d x_0 = Π cos x_k."""
    x, d = x0, 1.0
    for _ in range(CHAIN):
        d *= math.cos(x)
        x = math.sin(x)
    return x, d


def test_grad_of_a_20000_step_chain_needs_no_recursion():
    assert CHAIN > 10 * sys.getrecursionlimit()
    value, g = md.value_and_grad(sin_chain)(1.0)
    x_n, d = sin_chain_closed_form(1.0)
    assert float(value) == pytest.approx(x_n, rel=1e-12)
    assert float(g) == pytest.approx(d, rel=1e-9)


def test_jvp_of_a_20000_step_chain():
    value, tangent = md.jvp(sin_chain, (1.0,), (2.0,))
    x_n, d = sin_chain_closed_form(1.0)
    assert float(value) == pytest.approx(x_n, rel=1e-12)
    assert float(tangent) == pytest.approx(2.0 * d, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# residuals and memory
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def recorded_tapes(monkeypatch):
    """The tapes of every reverse-mode transform run during the test, in order (metered, so
    that their bytes can be read)."""
    tapes = []

    class RecordingEngine(ReverseEngine):
        def __init__(self, tape=None):
            super().__init__(MeteredTape())
            tapes.append(self.tape)

    monkeypatch.setattr(transforms, "ReverseEngine", RecordingEngine)
    return tapes


N = 1000  # elements; float64, so 8 N bytes per full array


def test_grad_frees_every_residual_after_backward(backend, to_array, recorded_tapes):
    x = to_array(np.linspace(-1.0, 1.0, N))
    md.grad(lambda x: md.sum(md.tanh(md.exp(x) * x) + md.sin(x)))(x)
    (tape,) = recorded_tapes
    memory = tape.memory()
    assert memory["bytes_now"] == 0
    assert memory["bytes_by_primitive"] == {}
    assert memory["bytes_peak"] > 0


def test_exp_keeps_only_its_output_and_add_keeps_nothing(backend, to_array, recorded_tapes):
    x = to_array(np.linspace(-1.0, 1.0, N))
    md.grad(lambda x: md.sum(md.add(md.exp(x), x)))(x)
    (tape,) = recorded_tapes
    by_name = {node.name: tape.nbytes_of(node) for node in tape.nodes}
    assert by_name["exp"] == 8 * N
    assert by_name["add"] == 0
    assert tape.memory()["peak_by_primitive"].get("exp") == 8 * N
    assert tape.memory()["peak_by_primitive"].get("add", 0) == 0
    assert tape.memory()["bytes_peak"] == 8 * N


def test_tape_holds_residuals_until_backward_then_frees_them(backend, to_array):
    engine = ReverseEngine(MeteredTape())
    level = open_level(engine)
    try:
        x = engine.tape.add_input(to_array(np.linspace(-1.0, 1.0, N)), level)
        y = md.exp(x)
        out = md.sum(md.add(y, x))
        before = engine.tape.memory()
        cotangents = engine.tape.backward(out, to_array(1.0))
    finally:
        close_level(level)
    assert before["bytes_now"] == 8 * N
    assert before["bytes_by_primitive"] == {"exp": 8 * N}
    after = engine.tape.memory()
    assert after["bytes_now"] == 0
    assert after["bytes_peak"] == 8 * N
    np.testing.assert_allclose(host(cotangents[x.node.index]),
                               np.exp(np.linspace(-1.0, 1.0, N)) + 1.0, rtol=1e-14)
