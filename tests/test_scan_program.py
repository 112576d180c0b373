"""A scan inside a traced function (``md.jit``, ``md.make_program``, another scan's body) is one
equation with several results whose ``body`` parameter is the body's program.

The listing shows the body indented under the scan, and does not grow with the number of
steps. Values, and every transform through the jitted function, equal the Python loop the scan
stands for (tests/scan_reference.py): values bit for bit where the replay runs the loop's own
implementations, derivatives at 1e-12 relative (derived scans sum the same terms in another
grouping, test_scan.py's module notes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scan_reference import close, python_scan, same_bits

import minidiff as md
from minidiff.jit.derive import derived_programs
from minidiff.jit.tracing import JitError
from minidiff.testing import check_grads


def sin_step(c, _):
    c = md.sin(c) * 1.1
    return c, md.square(c)


def scan_of_length(length):
    return lambda x: md.scan(sin_step, x, length=length)


def step(c, x):
    c = md.multiply(md.sin(c), x) + md.where(c > 0.0, c * c, 0.5 * c) + 0.1
    return c, md.multiply(md.exp(-c * c), x)


def loss_with(scanner, reverse=False):
    def loss(theta, xs):
        final, ys = scanner(lambda c, x: step(c * theta, x), theta, xs, reverse=reverse)
        return md.sum(ys * ys) + md.sum(final * final * final)
    return loss


def numbers():
    rng = np.random.default_rng(1)
    return rng.uniform(0.2, 0.9, 3), rng.uniform(-1.0, 1.0, (6, 3))


@pytest.fixture
def data(to_array):
    """On NumPy and on array_api_strict (conftest's backend)."""
    return tuple(map(to_array, numbers()))


def test_the_listing_shows_the_body_indented_and_does_not_grow_with_length():
    short = md.make_program(scan_of_length(4))(np.ones(3))
    long = md.make_program(scan_of_length(400))(np.ones(3))
    assert short.n_equations == long.n_equations == 1
    text = short.listing()
    assert "  v1: f64[3], v2: f64[4,3] = scan(x1, " in text
    assert "length=4, reverse=False) {\n    program sin_step(x1: f64[3]):\n" in text
    assert "\n      v1: f64[3] = sin(x1)\n" in text
    assert "\n  }\n  return (v1, v2)" in text
    assert len(text.splitlines()) == len(long.listing().splitlines())
    same_bits(md.jit(scan_of_length(4))(np.ones(3))[1],
              python_scan(sin_step, np.ones(3), length=4)[1])


@pytest.mark.parametrize("reverse", [False, True])
def test_values_and_every_transform_through_jit_equal_the_loop(data, reverse):
    theta, xs = data
    jitted, loop = md.jit(loss_with(md.scan, reverse)), loss_with(python_scan, reverse)
    same_bits(jitted(theta, xs), loop(theta, xs))
    for name in ("grad", "jacfwd", "jacrev"):
        t = getattr(md, name)
        for argnums in (0, 1):
            want = t(loop, argnums)(theta, xs)
            close(t(jitted, argnums)(theta, xs), want)                           # t ∘ jit
            close(md.jit(t(loss_with(md.scan, reverse), argnums))(theta, xs), want)  # jit ∘ t
    scales = (1.0, 0.5, 1.5)
    close(md.vmap(jitted, in_axes=(0, None))(md.stack([theta * s for s in scales]), xs),
          md.stack([loop(theta * s, xs) for s in scales]))


@pytest.mark.parametrize("reverse", [False, True])
def test_a_jitted_scan_matches_finite_differences_and_the_adjoint_identity(data, reverse):
    """check_grads: central differences in float64 (eps 1e-6, rtol 1e-5), forward and reverse,
    second order, and <u, J v> = <J^T u, v> at 1e-12, on both results (final carry, ys)."""
    theta, xs = data

    def f(p, xs):
        return md.scan(lambda c, x: step(c * p, x), p, xs, reverse=reverse)

    check_grads(md.jit(f), (theta, xs), order=2)


def test_derived_programs_scan_too_instead_of_unrolling():
    """The JVP and both VJP parts of a jitted scan hold one scan equation each, whatever T."""
    theta, xs = numbers()
    counts = []
    for rows in (xs, np.tile(xs, (5, 1))):
        jitted = md.jit(loss_with(md.scan))
        md.grad(jitted)(theta, rows)
        md.jacfwd(jitted)(theta, rows)
        derived = derived_programs(jitted.lower(theta, rows))
        assert len(derived) == 3
        for program in derived:
            assert [e.primitive.name for e in program.equations].count("scan") == 1
        counts.append([p.n_equations for p in derived])
    assert counts[0] == counts[1]


def test_a_pytree_carry_in_jit(data):
    theta, xs = data

    def f(scanner):
        def run(p, xs):
            def body(carry, x):
                a, (b, n) = carry["a"], carry["rest"]
                a = md.sin(a * x) + b
                return {"a": a, "rest": (b * 0.9, n + 1.0)}, {"y": a * p}
            return scanner(body, {"a": p, "rest": (md.cos(p), md.asarray(0.0))}, xs)
        return run

    got, want = md.jit(f(md.scan))(theta, xs), f(python_scan)(theta, xs)
    for pick in (lambda r: r[0]["a"], lambda r: r[0]["rest"][0], lambda r: r[0]["rest"][1],
                 lambda r: r[1]["y"]):
        same_bits(pick(got), pick(want))
    holes = md.jit(lambda c: md.scan(lambda c, x: (c, {"y": c, "none": None}), c, length=2))
    assert holes(theta)[1]["none"] is None

    def loss(scanner):
        def value(p, xs):
            final, ys = f(scanner)(p, xs)
            return md.sum(final["a"]) + md.sum(ys["y"] * ys["y"]) + final["rest"][1]
        return value

    close(md.grad(md.jit(loss(md.scan)))(theta, xs), md.grad(loss(python_scan))(theta, xs))


def inner(c, x):
    return c * 0.9 + md.sin(x * c), c


def nested(scanner, executor="replay"):
    def loss(p):
        def body(carry, x):
            c, i = carry
            c2, ys = scanner(inner, c, md.stack([x, md.multiply(x, p)]), executor=executor)
            return (c2 + md.sum(ys) * 0.01 + md.where(i > 1, 0.5, 0.0), i + 1), md.sum(c2)
        xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
        (c, _), ys = scanner(body, (p, md.asarray(np.array(0))), xs, executor=executor)
        return md.sum(c) + md.sum(ys)
    return loss


def loop_scan(f, init, xs=None, length=None, reverse=False, executor=None):
    return python_scan(f, init, xs, length, reverse)


@pytest.mark.parametrize("executor", ["replay", "numba"])
def test_a_nested_scan_lists_twice_indented_and_runs(executor):
    if executor == "numba":
        pytest.importorskip("numba")
    theta = np.array([0.3, 0.6, 0.8])
    text = md.make_program(nested(md.scan))(theta).listing()
    assert "\n    program body(" in text
    assert "scan(x1, v4, kinds=('c', 'x'), carry_out=(0,), length=2, reverse=False) {\n" \
           "        program inner(x1: f64[3], x2: f64[3]):\n" in text
    assert "\n          v3: f64[3] = sin(v2)\n" in text
    jitted, loop = md.jit(nested(md.scan, executor), executor=executor), nested(loop_scan)
    close(jitted(theta), loop(theta))
    close(md.grad(jitted)(theta), md.grad(loop)(theta))
    if executor == "numba":  # compiling numba kernels for every derived body takes seconds
        return
    for t in (md.jacfwd, md.hessian):
        close(t(jitted)(theta), t(loop)(theta))
    thetas = np.stack([theta, 0.5 * theta])
    close(md.vmap(jitted)(thetas), md.stack([loop(t) for t in thetas]))


def test_vmap_of_a_scan_keeps_an_unbatched_carry_unbatched():
    """An integer counter in the carry does not depend on the batched argument: it stays one
    value inside the batched body (broadcasting it would change the body's types)."""
    xs = np.linspace(0.0, 1.0, 12).reshape(4, 3)

    def f(scanner):
        def loss(p):
            def body(carry, x):
                c, i = carry
                return (c * p + md.where(i > 1, 0.5, 0.0) + x, i + 1), md.sum(c)
            (c, i), ys = scanner(body, (p, md.asarray(np.array(0))), xs)
            return md.sum(c) + md.sum(ys) + i
        return loss

    thetas = np.stack([np.full(3, 0.5), np.full(3, 1.5)])
    close(md.vmap(f(md.scan))(thetas), md.stack([f(python_scan)(t) for t in thetas]))


def test_a_zero_length_scan_in_jit():
    f = md.jit(lambda c: md.scan(lambda c, x: (c * 2.0, c + 1.0), c, length=0))
    final, ys = f(np.ones(2))
    same_bits(final, np.ones(2))
    assert ys.shape == (0, 2)


def test_a_captured_generator_is_refused_in_jit():
    """Inside md.jit the body is traced once per trace of the jitted function; the two traces
    of the function compare the bodies, so the draws are still caught."""
    rng = md.random.default_rng(0)

    def noisy(c):
        return md.scan(lambda c, x: (c + rng.normal(size=2), c), c, length=3)

    with pytest.raises(JitError, match=r"the body of scan \(equation 1\).*generator it closes"):
        md.jit(noisy)(np.ones(2))


def test_the_executors_simplification_passes_keep_a_scan_equation():
    """Negations carried across the program (simplify) must be computed before the scan
    reads them; a scan whose ys nothing reads is still run, whole."""
    def f(x):
        final, _ = md.scan(lambda c, _: (md.sin(-c) * 2.0, -c), -md.exp(x), length=3)
        return -final + (-md.exp(x)) * 0.5

    x = np.array([0.1, 0.4, -0.7])
    program = md.make_program(f)(x)
    assert [e.primitive.name for e in program.equations].count("scan") == 1
    same_bits(md.jit(f)(x), f(x))
    final, _ = python_scan(lambda c, _: (md.sin(-c) * 2.0, -c), -md.exp(x), length=3)
    same_bits(md.jit(f)(x), -final + (-md.exp(x)) * 0.5)


def test_a_scan_in_a_function_jitted_with_numba_runs_its_body_with_numba():
    pytest.importorskip("numba")
    theta, xs = np.array([0.3, 0.6, 0.8]), np.linspace(-1.0, 1.0, 18).reshape(6, 3)
    jitted = md.jit(loss_with(md.scan), executor="numba")
    program = jitted.lower(theta, xs)
    assert program.equations[0].params["body"].executor == "numba"
    close(jitted(theta, xs), loss_with(python_scan)(theta, xs))
    assert md.jit(loss_with(md.scan)).lower(theta, xs).equations[0].params["body"].executor \
        == "replay"


def test_the_listings_in_the_docs_are_what_make_program_prints():
    docs = Path(__file__).resolve().parent.parent / "docs"

    def step(c, x):
        c = md.sin(c) * x
        return c, md.square(c)

    def f(c0, xs):
        return md.scan(step, c0, xs)

    def loss(c0, xs):
        final, ys = md.scan(step, c0, xs)
        return md.sum(ys)

    args = (np.ones(3), np.ones((4, 3)))
    assert md.make_program(f)(*args).listing() in (docs / "jit.md").read_text()
    assert md.make_program(md.grad(loss))(*args).listing() in (docs / "scan.md").read_text()
