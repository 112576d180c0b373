"""md.scan with executor="numba": the whole loop as one compiled kernel, against the Python loop.

A loop kernel sums in order where NumPy sums pairwise, and libm's exp may differ from NumPy's in
the last bit, so values and derivatives are compared at 1e-12 relative (rounding of sums of a few
dozen float64 terms; the dynamics here have no threshold a rounding could flip). Each test also
checks which bodies ran as one kernel, so a silent fallback to the step-by-step executor would
fail it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scan_reference import close, python_scan

import minidiff as md
from minidiff import scan_primitive
from minidiff.jit.loop_kernel import unsupported

pytest.importorskip("numba")


def numba_scan(f, init, xs=None, length=None, reverse=False):
    return md.scan(f, init, xs, length=length, reverse=reverse, executor="numba")


@pytest.fixture
def kernels(monkeypatch):
    """The names of the bodies that ran as one loop kernel, and of those that could not."""
    seen = {"whole": [], "steps": []}
    real = scan_primitive.loop_kernel

    def spy(body, kinds, carry_out):
        run = real(body, kinds, carry_out)
        seen["whole" if run is not None else "steps"].append(body.name)
        return run

    monkeypatch.setattr(scan_primitive, "loop_kernel", spy)
    return seen


def cont_step(theta):
    """The generic Cont step: straight-through sigmoids, a sum, a hard reset from a bool row."""
    sigma, depth = theta[0], theta[1] * 40.0

    def st(x):
        soft = md.sigmoid(5.0 * x)
        return md.where(x > 0.0, 1.0, 0.0) + soft - md.stop_gradient(soft)

    def step(carry, x):
        nu, total = carry
        zeta, update = x
        eps = sigma * zeta
        r = md.sum(st(eps - nu) - st(-eps - nu)) / depth
        return (md.where(update, md.abs(r), nu), total + r * r), r
    return step


@pytest.fixture
def cont_data():
    rng = np.random.default_rng(3)
    nu0 = md.asarray(rng.lognormal(0.0, 0.3, 40))
    zetas = md.asarray(rng.normal(size=12))
    updates = md.asarray(rng.uniform(size=(12, 40)) < 0.2)
    return nu0, (zetas, updates)


@pytest.mark.parametrize("reverse", [False, True])
def test_cont_values_and_derivatives_equal_the_loops(cont_data, kernels, reverse):
    nu0, xs = cont_data

    def loss(scanner):
        def f(theta):
            (nu, total), rs = scanner(cont_step(theta), (nu0 * theta[2], md.zeros(())), xs,
                                      reverse=reverse)
            return total + md.sum(rs * rs * rs) + md.sum(nu)
        return f

    theta = md.asarray([1.3, 0.7, 1.1])
    close(loss(numba_scan)(theta), loss(python_scan)(theta))
    for transform in (md.grad, md.jacfwd):  # (numba compiles each derived body: ~1 s each)
        close(transform(loss(numba_scan))(theta), transform(loss(python_scan))(theta))
    assert not kernels["steps"], kernels["steps"]
    names = " ".join(kernels["whole"])
    for part in ("jvp(", "vjp_forward(", "scan_backward("):  # the primal, JVP and VJP scans
        assert part in names, names


def test_mixed_shapes_reductions_and_reshapes(kernels):
    """A (3, 4) carry, a (4,) row, sums over each axis with and without keepdims, broadcasts
    both ways, a scalar carry, a 2-D y; grad reaches the carry and the xs."""
    rng = np.random.default_rng(4)
    a0 = md.asarray(rng.normal(size=(3, 4)))
    xs = md.asarray(rng.normal(size=(5, 4)))

    def step(carry, x):
        a, s = carry
        rows = md.sum(a, axis=1, keepdims=True)              # (3, 1)
        cols = md.sum(a * x, axis=0)                         # (4,)
        a = md.tanh(a * 0.5 + rows * 0.1 - cols) + md.exp(-s * s) * x
        s = s * 0.9 + md.sum(md.maximum(a, 0.0)) * 0.01 + md.log1p(md.sum(a * a))
        return (a, s), md.reshape(cols, (1, 4)) * md.sign(a)

    def loss(scanner):
        def f(a, xs):
            (a, s), ys = scanner(step, (a, md.zeros(())), xs)
            return md.sum(a * a) + s + md.sum(ys)
        return f

    close(loss(numba_scan)(a0, xs), loss(python_scan)(a0, xs))
    for got, want in zip(md.grad(loss(numba_scan), (0, 1))(a0, xs),
                         md.grad(loss(python_scan), (0, 1))(a0, xs)):
        close(got, want)
    assert kernels["whole"] and not kernels["steps"], kernels


def test_a_body_the_loop_cannot_write_runs_step_by_step(kernels):
    """Indexing is not a loop equation: that body (and so its derived ones) runs step by step
    with md.jit's numba executor, with the same results."""
    xs = md.asarray(np.arange(12.0).reshape(4, 3) / 10.0)

    def step(c, x):
        return md.sin(c) * x + c[md.asarray(np.array([2, 0, 1]))], md.sum(c)

    c0 = md.asarray([0.1, 0.2, 0.3])
    close(numba_scan(step, c0, xs)[0], python_scan(step, c0, xs)[0])
    close(md.grad(lambda c: md.sum(numba_scan(step, c, xs)[1]))(c0),
          md.grad(lambda c: md.sum(python_scan(step, c, xs)[1]))(c0))
    assert kernels["steps"] and not kernels["whole"]


def test_unsupported_names_what_stops_the_loop():
    program = md.make_program(lambda c: c[0:2] * 2.0)(md.asarray([1.0, 2.0, 3.0]))
    assert "getitem" in unsupported(program) or "index" in unsupported(program)
    program = md.make_program(lambda c: md.sin(c) * 2.0)(md.asarray([1.0, 2.0]))
    assert unsupported(program) is None


def test_zero_length_and_xs_none(kernels):
    c0 = md.asarray([1.0, 2.0])
    c, ys = numba_scan(lambda c, x: (c * 0.5 + x, md.sum(c)), c0, md.zeros((0, 2)))
    close(c, c0)
    assert tuple(ys.shape) == (0,)
    for reverse in (False, True):
        c, ys = numba_scan(lambda c, x: (c * 1.5 + 1.0, c), md.asarray(1.0), length=4,
                           reverse=reverse)
        c2, ys2 = python_scan(lambda c, x: (c * 1.5 + 1.0, c), md.asarray(1.0), length=4,
                              reverse=reverse)
        close(c, c2)
        close(ys, ys2)


def test_other_backends_run_the_steps(kernels):
    """array_api_strict arrays are not NumPy's: numba cannot read them, the steps replay."""
    pytest.importorskip("array_api_strict")
    with md.use_backend("array_api_strict") as b:
        xs = b.from_host(np.linspace(0.0, 1.0, 6).reshape(3, 2))
        c0 = b.from_host(np.array([0.5, -0.5]))
        c, _ = numba_scan(lambda c, x: (md.sin(c) + x, c), c0, xs)
        c2, _ = python_scan(lambda c, x: (md.sin(c) + x, c), c0, xs)
        close(c, c2)
    assert kernels["steps"] and not kernels["whole"]


def test_large_arrays_run_step_by_step(kernels, monkeypatch):
    """Above MAX_ELEMENTS the per-step kernels (NumPy's vectorised exp) are faster: the body
    runs step by step, with the same results."""
    from minidiff.jit import loop_kernel
    monkeypatch.setattr(loop_kernel, "MAX_ELEMENTS", 8)
    xs = md.asarray(np.linspace(-1.0, 1.0, 48).reshape(3, 16))

    def step(c, x):
        return md.exp(-c * c) + x, md.sum(c)

    c0 = md.asarray(np.linspace(0.0, 1.0, 16))
    close(numba_scan(step, c0, xs)[0], python_scan(step, c0, xs)[0])
    assert kernels["steps"] and not kernels["whole"]
    assert "16 elements" in loop_kernel.unsupported(md.make_program(lambda c: c * 2.0)(c0))
