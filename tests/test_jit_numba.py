"""md.jit(executor="numba"): elementwise chains fused into compiled loops.

Fused kernels do the same IEEE operations as NumPy in the same order (no fast-math, and the
transcendental functions stay NumPy calls), so results agree with eager mode to rounding: the
tolerance asked here is a relative 1e-12, the issue's bound for fused kernels. These tests
need numba (the ``jit`` extra) and skip without it. On backends other than NumPy the executor
replays (numba reads only NumPy arrays), which the ``backend`` fixture checks too.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md

numba = pytest.importorskip("numba")

from test_jit import cont_loss, cont_step, noise  # noqa: E402,F401  (the fixture too)

from minidiff.jit import fusion  # noqa: E402  (after the skip: needs numba)

RTOL = 1e-12  # the tolerance for fused kernels


def host(x):
    return np.asarray(md.to_host(x))


def assert_close(a, b):
    if isinstance(a, tuple | list):
        for x, y in zip(a, b):
            assert_close(x, y)
        return
    x, y = host(a), host(b)
    assert x.shape == y.shape
    np.testing.assert_allclose(x, y, rtol=RTOL, atol=RTOL * max(1.0, float(np.max(np.abs(y)))))


def chain(x, y):
    """Long elementwise chains (fused), a sigmoid (split around its exp), a where on a random
    mask, broadcasting between (3, 5) and (5,), and a reduction between two chains."""
    s = md.sigmoid(3.0 * x - y)
    h = md.add(md.where(x > 0.1, 1.0, 0.0), s) - md.stop_gradient(s)
    u = md.sqrt(md.abs(h * y) + 1.0) / (2.0 + x * x)
    total = md.sum(u * u, axis=0)
    return md.sum(md.where(total > 1.0, total * y, -total) - md.exp(y) * 0.5)


@pytest.fixture
def inputs(to_array):
    rng = np.random.default_rng(5)
    return to_array(rng.normal(size=(3, 5))), to_array(rng.normal(size=5))


@pytest.mark.parametrize("name", ["value", "grad", "jacfwd", "hessian"])
def test_fused_results_match_eager_mode_to_rounding(backend, inputs, name):
    transform = {"value": lambda f: f, "grad": lambda f: md.grad(f, argnums=(0, 1)),
                 "jacfwd": lambda f: md.jacfwd(f, argnums=(0, 1)),
                 "hessian": md.hessian}[name]
    assert_close(transform(md.jit(chain, executor="numba"))(*inputs),
                 transform(chain)(*inputs))


@pytest.mark.parametrize("name", ["grad", "jacfwd"])
def test_a_loop_of_fused_steps_matches_the_eager_loop(backend, noise, name):  # noqa: F811
    transform = {"grad": md.grad, "jacfwd": md.jacfwd}[name]
    theta = md.asarray([-1.0, 0.5, 0.5, 1.0])
    assert_close(transform(cont_loss(md.jit(cont_step, executor="numba"), noise))(theta),
                 transform(cont_loss(cont_step, noise))(theta))


def test_chains_become_kernels_cached_by_source_and_compile_time_is_reported():
    x = md.asarray(np.linspace(-1.0, 1.0, 4000))
    f = md.jit(lambda v: md.sum(md.where(v > 0.0, v * 2.0 + 1.0, v * v - 3.0)),
               executor="numba")
    f(x)  # traces (the trace computes the value)
    f(x)  # compiles and runs
    program = f.lower(x)
    source = program.compiled[("numba", "numpy")].source
    assert "k0(" in source or "k1(" in source  # the chain runs as one kernel
    assert f.cache_info().compile_seconds > 0.02  # numba compiled a kernel for this chain
    kernels = fusion.kernel_cache_size()
    g = md.jit(lambda v: md.sum(md.where(v > 0.0, v * 2.0 + 1.0, v * v - 3.0)),
               executor="numba")
    assert_close(g(x), f(x))
    assert fusion.kernel_cache_size() == kernels  # the same chain reuses its kernel
