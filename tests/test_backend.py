"""Choosing the array library: set_backend, use_backend, MINIDIFF_BACKEND, and CuPy on a GPU.

The CuPy tests are marked ``gpu``. Where CuPy cannot import or no CUDA device exists they skip,
saying why; on a GPU they run the transforms on CuPy arrays and compare with NumPy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidiff as md
from minidiff.testing import check_grads

PACKAGE = Path(md.__file__).resolve().parent
REPO = PACKAGE.parent


@pytest.fixture(autouse=True)
def restore_backend():
    """Put back whatever backend was current, whatever the test did."""
    before = md.get_backend()
    yield
    md.set_backend(before)


def another_backend_than(backend):
    return "array_api_strict" if backend.name != "array_api_strict" else "numpy"


# ---------------------------------------------------------------------------------------------
# set_backend and use_backend
# ---------------------------------------------------------------------------------------------


def test_available_backends_names_all_three():
    assert set(md.available_backends()) == {"numpy", "cupy", "array_api_strict"}


def test_set_backend_makes_the_backend_current_and_ops_use_it():
    other = another_backend_than(md.get_backend())
    chosen = md.set_backend(other)
    assert isinstance(chosen, md.Backend)
    assert chosen.name == other
    assert md.get_backend() is chosen
    assert chosen.is_array(md.exp(md.asarray([0.0, 1.0])))
    assert chosen.is_array(md.grad(lambda x: md.sum(x * x))(md.asarray([1.0, 2.0])))


def test_set_backend_then_set_back_restores_the_original():
    before = md.get_backend()
    md.set_backend(another_backend_than(before))
    md.set_backend(before.name)
    assert md.get_backend() is before


def test_use_backend_restores_the_previous_backend_on_exit():
    before = md.get_backend()
    other = another_backend_than(before)
    with md.use_backend(other) as chosen:
        assert chosen.name == other
        assert md.get_backend() is chosen
        assert chosen.is_array(md.ones((2,)))
    assert md.get_backend() is before


def test_nested_use_backend_restores_each_level():
    before = md.get_backend()
    with md.use_backend("array_api_strict") as outer:
        with md.use_backend("numpy") as inner:
            assert md.get_backend() is inner
            with md.use_backend("array_api_strict"):
                assert md.get_backend() is outer
            assert md.get_backend() is inner
        assert md.get_backend() is outer
    assert md.get_backend() is before


def test_use_backend_restores_the_previous_backend_on_exception():
    before = md.get_backend()
    with pytest.raises(RuntimeError, match="boom"):
        with md.use_backend(another_backend_than(before)):
            raise RuntimeError("boom")
    assert md.get_backend() is before


def test_use_backend_restores_after_an_error_inside_a_transform():
    before = md.get_backend()
    with pytest.raises(md.ShapeError):
        with md.use_backend(another_backend_than(before)):
            md.grad(lambda x: md.sum(x + md.ones((4,))))(md.ones((3,)))
    assert md.get_backend() is before
    assert float(md.grad(lambda x: x * x)(3.0)) == 6.0


def test_set_backend_inside_use_backend_is_undone_on_exit():
    before = md.get_backend()
    with md.use_backend("numpy"):
        md.set_backend("array_api_strict")
        assert md.get_backend().name == "array_api_strict"
    assert md.get_backend() is before


def test_use_backend_accepts_a_backend_object():
    strict = md.set_backend("array_api_strict")
    md.set_backend("numpy")
    with md.use_backend(strict) as chosen:
        assert chosen is strict
        assert md.get_backend() is strict
    assert md.get_backend().name == "numpy"


def test_an_unknown_backend_leaves_the_current_one_unchanged():
    before = md.get_backend()
    with pytest.raises(md.BackendError, match=r"unknown backend 'nope'"):
        md.set_backend("nope")
    assert md.get_backend() is before
    with pytest.raises(md.BackendError, match=r"unknown backend 'nope'"):
        with md.use_backend("nope"):
            pass
    assert md.get_backend() is before


def test_backend_of_names_the_loaded_backend_an_array_belongs_to():
    numpy_backend = md.set_backend("numpy")
    strict = md.set_backend("array_api_strict")
    assert md.backend.backend_of(np.ones(2)) is numpy_backend
    assert md.backend.backend_of(strict.asarray([1.0])) is strict
    assert md.backend.backend_of([1.0, 2.0]) is None


def test_backends_compute_the_same_gradient():
    x = np.array([0.3, -1.2, 2.0])
    results = {}
    for name in ("numpy", "array_api_strict"):
        with md.use_backend(name) as b:
            g = md.grad(lambda x: md.sum(md.sin(x) * md.exp(x)))(b.from_host(x))
            results[name] = b.to_host(g)
    np.testing.assert_array_equal(results["numpy"], results["array_api_strict"])


# ---------------------------------------------------------------------------------------------
# MINIDIFF_BACKEND, read once at import (in a fresh interpreter)
# ---------------------------------------------------------------------------------------------

IMPORT_AND_REPORT = """
import minidiff as md
g = md.grad(lambda x: md.sum(x * x))(md.asarray([1.0, 2.0]))
print(md.get_backend().name, md.get_backend().is_array(g), md.to_host(g).tolist())
"""


def run_python(code, backend_name):
    env = dict(os.environ)
    env.pop("MINIDIFF_BACKEND", None)
    if backend_name is not None:
        env["MINIDIFF_BACKEND"] = backend_name
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("variable", "expected"), [
    ("array_api_strict", "array_api_strict"),
    ("numpy", "numpy"),
    (None, "numpy"),
])
def test_minidiff_backend_variable_chooses_the_backend_at_import(variable, expected):
    result = run_python(IMPORT_AND_REPORT, variable)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected, "True", "[2.0,", "4.0]"]


def test_unknown_minidiff_backend_variable_fails_at_import_naming_the_choices():
    result = run_python("import minidiff", "nope")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "BackendError" in last_line
    assert "unknown backend 'nope'" in last_line
    assert "'numpy'" in last_line and "'array_api_strict'" in last_line


# ---------------------------------------------------------------------------------------------
# CuPy
# ---------------------------------------------------------------------------------------------


def test_cupy_without_cupy_or_a_gpu_raises_a_clear_backend_error():
    try:
        with md.use_backend("cupy"):
            pass
    except md.BackendError as exc:
        assert "cupy" in str(exc) and "CUDA GPU" in str(exc)
    else:
        pytest.skip("CuPy and a CUDA device are available here")


X3 = np.array([0.3, 1.2, -0.7])
V3 = np.array([1.0, -0.5, 2.0])
A23 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])

SCALAR_FUNCTIONS = {
    "polynomial-trig": lambda x: md.sum(md.sin(x) * x ** 2) + md.sum(md.exp(x)),
    "reductions": lambda x: md.prod(x) + md.max(x) + md.logsumexp(x) + md.sum(md.cumsum(x)),
    "special": lambda x: md.sum(md.erf(x) + md.gammaln(x + 2.0) + md.digamma(x + 2.0)),
    "indexing-where": lambda x: md.sum(x[md.asarray([0, 0, 2])] * md.sigmoid(x)
                                       + md.where(x > 0, x, 0.0) * md.softplus(x)),
    "matmul": lambda x: md.sum(md.tanh(md.matmul(md.asarray(A23), x)) ** 2),
}


def vector_function(x):
    return md.tanh(md.matmul(md.asarray(A23), x)) * x[0] + md.sum(x ** 3)


def on_numpy(compute):
    with md.use_backend("numpy") as b:
        result = compute(b.from_host(X3), b.from_host(V3))
        return [np.asarray(b.to_host(r)) for r in result]


def assert_matches_numpy(backend, results, expected):
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        assert backend.is_array(got), f"{type(got).__name__} is not a CuPy array"
        np.testing.assert_allclose(backend.to_host(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(SCALAR_FUNCTIONS))
def test_cupy_grad_hessian_and_hvp_match_numpy(cupy_backend, name):
    f = SCALAR_FUNCTIONS[name]

    def compute(x, v):
        return [md.grad(f)(x), md.hessian(f)(x), md.hvp(f, x, v), md.value_and_grad(f)(x)[0]]

    expected = on_numpy(compute)
    results = compute(cupy_backend.from_host(X3), cupy_backend.from_host(V3))
    assert_matches_numpy(cupy_backend, results, expected)


@pytest.mark.gpu
def test_cupy_jvp_vjp_jacfwd_and_jacrev_match_numpy(cupy_backend):
    def compute(x, v):
        out, tangent = md.jvp(vector_function, (x,), (v,))
        _, pullback = md.vjp(vector_function, x)
        return [out, tangent, pullback(md.ones((2,)))[0], md.jacfwd(vector_function)(x),
                md.jacrev(vector_function)(x)]

    expected = on_numpy(compute)
    results = compute(cupy_backend.from_host(X3), cupy_backend.from_host(V3))
    assert_matches_numpy(cupy_backend, results, expected)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(SCALAR_FUNCTIONS))
def test_cupy_check_grads_passes_to_second_order(cupy_backend, name):
    check_grads(SCALAR_FUNCTIONS[name], (cupy_backend.from_host(X3),), order=2)


@pytest.mark.gpu
def test_cupy_perturbation_confusion_is_impossible(cupy_backend):
    result = md.jvp(lambda x: x * md.grad(lambda y: x + y)(1.0), (1.0,), (1.0,))[1]
    assert cupy_backend.is_array(result)
    assert float(cupy_backend.to_host(result)) == 1.0


@pytest.mark.gpu
def test_cupy_rejects_a_numpy_array_in_an_op(cupy_backend):
    with pytest.raises(md.BackendError, match=r"add: an array of the 'numpy' backend was mixed "
                                              r"with the current 'cupy' backend"):
        md.add(md.ones((3,)), np.ones(3))
