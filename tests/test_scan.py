"""md.scan against the Python loop it stands for: values and every transform, on NumPy and
array_api_strict.

The scan runs the body's traced program with the replay executor, which calls the raw
implementations eager mode calls, so values equal the loop's bit for bit. Derivatives go through
derived programs (a scan of the body's JVP; a reverse scan of its VJP) that sum the same terms in
another grouping than the loop's tape (a constant's cotangent is summed over the steps in the
scan's carry), so they are compared at 1e-12 relative: rounding of a few dozen float64 terms.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_reference import close, python_scan, same_bits

import minidiff as md
from minidiff import scanning
from minidiff.scanning import ScanError
from minidiff.testing import check_grads


def step(c, x):
    """A nonlinear recurrence: the carry feeds sin, products and a where."""
    c = md.multiply(md.sin(c), x) + md.where(c > 0.0, c * c, 0.5 * c) + 0.1
    return c, md.multiply(md.exp(-c * c), x)  # md.multiply: x may be a raw strict array


def loss_with(scanner, reverse=False):
    def loss(theta, xs):
        final, ys = scanner(lambda c, x: step(c * theta, x), theta, xs, reverse=reverse)
        return md.sum(ys * ys) + md.sum(final * final * final)
    return loss


SCAN = md.scan
LOOP = python_scan


@pytest.fixture
def data(to_array):
    rng = np.random.default_rng(1)
    return to_array(rng.uniform(0.2, 0.9, 3)), to_array(rng.uniform(-1.0, 1.0, (6, 3)))


@pytest.mark.parametrize("reverse", [False, True])
def test_values_are_the_loops_bits(backend, data, reverse):
    theta, xs = data
    a = md.scan(step, theta, xs, reverse=reverse)
    b = python_scan(step, theta, xs, reverse=reverse)
    same_bits(a[0], b[0])
    same_bits(a[1], b[1])


@pytest.mark.parametrize("transform", ["grad", "jacfwd", "jacrev", "hessian"])
@pytest.mark.parametrize("reverse", [False, True])
def test_every_transform_equals_the_loops(backend, data, transform, reverse):
    """The closure captures theta (a lifted constant) and the carry starts at theta: the
    derivative flows through carry, constants and xs."""
    theta, xs = data
    t = getattr(md, transform)
    for argnums in (0, 1):
        close(t(loss_with(SCAN, reverse), argnums)(theta, xs),
              t(loss_with(LOOP, reverse), argnums)(theta, xs))


def test_grad_of_grad_and_jvp_of_grad(data):
    theta, xs = data
    v = md.asarray(np.array([0.3, -1.0, 0.5]))

    def hvp_rev(loss):
        return md.grad(lambda p: md.sum(md.grad(loss)(p, xs) * v))(theta)

    close(hvp_rev(loss_with(SCAN)), hvp_rev(loss_with(LOOP)))
    close(md.hvp(lambda p: loss_with(SCAN)(p, xs), theta, v),
          md.hvp(lambda p: loss_with(LOOP)(p, xs), theta, v))


@settings(max_examples=8)  # each example traces and derives fresh programs (~0.4 s)
@given(st.lists(st.floats(-1.0, 1.0), min_size=8, max_size=8),
       st.floats(0.2, 0.9), st.booleans())
def test_derivatives_match_finite_differences(values, theta, reverse):
    """Central differences in float64 (check_grads: eps 1e-6, rtol 1e-5, both modes, order 2)."""
    xs = md.asarray(np.reshape(np.array(values), (4, 2)))
    p = md.asarray(np.array([theta, 1.0 - theta]))
    check_grads(lambda p, xs: loss_with(SCAN, reverse)(p, xs), (p, xs), order=2)


def test_pytrees_none_xs_and_length(backend, to_array):
    """A dict carry with a tuple inside, a tuple of xs, a dict of ys; then xs=None."""
    rng = np.random.default_rng(2)
    a, b = to_array(rng.normal(size=(5, 2))), to_array(rng.normal(size=(5,)))
    init = {"h": to_array([0.5, -0.5]), "pair": (to_array(1.0), to_array([0.1, 0.2, 0.3]))}

    def body(c, x):
        xa, xb = x
        h = md.tanh(c["h"] * xa + xb)
        s, v = c["pair"]
        s = s + md.sum(h)
        return {"h": h, "pair": (s, v * 0.9)}, {"h2": h * h, "s": s}

    def loss(init, xs, scanner):
        c, ys = scanner(body, init, xs)
        return md.sum(ys["h2"]) + ys["s"][-1] + c["pair"][0] + md.sum(c["pair"][1])

    c1, y1 = md.scan(body, init, (a, b))
    c2, y2 = python_scan(body, init, (a, b))
    for u, w in zip(md.pytree.tree_leaves((c1, y1)), md.pytree.tree_leaves((c2, y2))):
        same_bits(u, w)
    g1 = md.grad(loss)(init, (a, b), md.scan)
    g2 = md.grad(loss)(init, (a, b), python_scan)
    for u, w in zip(md.pytree.tree_leaves(g1), md.pytree.tree_leaves(g2)):
        close(u, w)

    def counter(c, x):
        return c * 1.5 + 1.0, c
    for reverse in (False, True):
        c, ys = md.scan(counter, to_array(1.0), length=4, reverse=reverse)
        c2, ys2 = python_scan(counter, to_array(1.0), length=4, reverse=reverse)
        same_bits(c, c2)
        same_bits(ys, ys2)


def test_zero_length(backend, to_array):
    x0 = to_array([1.0, 2.0])
    xs = md.reshape(to_array([]), (0, 2))
    c, ys = md.scan(step, x0, xs)
    same_bits(c, x0)
    assert tuple(ys.shape) == (0, 2)
    g = md.grad(lambda p: md.sum(md.scan(step, p, xs)[0] * p))(x0)
    close(g, 2.0 * x0)
    j = md.jacfwd(lambda p: md.scan(step, p, xs)[0])(x0)
    close(j, md.asarray(np.eye(2)) if backend.name == "numpy" else j)


def test_checkpointed_loop_of_scans(data):
    """A checkpointed loop (revolve) whose step is a scan: the same gradient as the loop. The
    backward pass re-runs a segment after grad's level has closed, so the scan traces its body
    there: the parameter read first (p * c) must still be a captured constant of the body."""
    theta, xs = data

    def outer(scanner):
        def loss(p):
            def segment(c, k):
                c, ys = scanner(lambda c, x: step(md.multiply(p, c), x), c, xs)
                return c + 0.01 * md.sum(ys)
            c = md.checkpointed_loop(segment, p, 4, snapshots=1)
            return md.sum(c * c)
        return loss

    close(md.grad(outer(SCAN))(theta), md.grad(outer(LOOP))(theta))


def test_scan_inside_jit(data):
    theta, xs = data
    f = md.jit(lambda p, xs: loss_with(SCAN)(p, xs))
    close(f(theta, xs), loss_with(LOOP)(theta, xs))
    close(md.grad(f)(theta, xs), md.grad(loss_with(LOOP))(theta, xs))


def test_nested_scan_and_an_integer_carry(data):
    """A scan in a scan's body (one equation of the outer body's program), and an
    integer counter in the carry, which has no derivative and does not block the others."""
    theta, xs = data

    def inner(c, x):
        return c * 0.9 + md.sin(x * c), c

    def outer(scanner):
        def loss(p):
            def body(carry, x):
                c, i = carry
                c2, ys = scanner(inner, c, md.stack([x, md.multiply(x, p)]))
                return (c2 + md.sum(ys) * 0.01 + md.where(i > 1, 0.5, 0.0), i + 1), md.sum(c2)
            (c, _), ys = scanner(body, (p, md.asarray(np.array(0))), xs)
            return md.sum(c) + md.sum(ys)
        return loss

    same_bits(outer(SCAN)(theta), outer(LOOP)(theta))
    for t in (md.grad, md.jacfwd, md.hessian):
        close(t(outer(SCAN))(theta), t(outer(LOOP))(theta))


def test_a_body_seen_again_reuses_its_programs_but_never_stale_constants(backend, to_array):
    """Equal bodies share derived programs; a closure array, a number or an index array that
    changed makes another body (a stale constant would be a silently wrong answer)."""
    xs = to_array(np.arange(12.0).reshape(4, 3))
    scanning._BODIES.clear()

    def run(c, k, index):
        def body(carry, x):
            return carry * k + md.multiply(x, c)[index], md.multiply(x, c)
        return md.scan(body, to_array([0.5, 0.5]), xs)

    first = run(to_array([1.0, 2.0, 3.0]), 0.5, (slice(0, 2),))
    for c, k, index in (([1.0, 2.0, 3.0], 0.5, (slice(0, 2),)), ([1.0, 2.0, 4.0], 0.5,
                        (slice(0, 2),)), ([1.0, 2.0, 3.0], 0.25, (slice(0, 2),)),
                        ([1.0, 2.0, 3.0], 0.5, (slice(1, 3),))):
        got = run(to_array(c), k, index)
        want = python_scan(lambda carry, x: (carry * k + md.multiply(x, to_array(c))[index],
                                             md.multiply(x, to_array(c))), to_array([0.5, 0.5]),
                           xs)
        same_bits(got[0], want[0])
        same_bits(got[1], want[1])
    same_bits(first[0], run(to_array([1.0, 2.0, 3.0]), 0.5, (slice(0, 2),))[0])
    assert sum(map(len, scanning._BODIES.values())) == 4  # three changed bodies, one reused
    for value in range(10):  # a constant that changes every call: a few variants are kept
        run(to_array([1.0, 2.0, float(value)]), 0.5, (slice(0, 2),))
    assert max(map(len, scanning._BODIES.values())) <= scanning._MAX_VARIANTS


# ---------------------------------------------------------------------------------------------
# honesty and bad inputs
# ---------------------------------------------------------------------------------------------


def test_a_captured_generator_is_refused():
    rng = md.random.default_rng(0)

    def noisy(c, x):
        return c + x + rng.normal(size=2), c

    with pytest.raises(ScanError, match=r"generator it closes over.*pass them in\s+xs"):
        md.scan(noisy, md.zeros(2), md.ones((3, 2)))
    # the fix the message names: the draws as xs
    draws = rng.normal(size=(3, 2))
    c, _ = md.scan(lambda c, x: (c + 1.0 + x, c), md.zeros(2), draws)
    same_bits(c, 3.0 + md.sum(draws, axis=0))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"different leading axes \(leaf 0: 3, leaf 1: 4\)"):
        md.scan(lambda c, x: (c, c), md.zeros(2), (md.ones((3, 2)), md.ones((4,))))
    with pytest.raises(ValueError, match="length=5 but the leaves of xs have 3 rows"):
        md.scan(lambda c, x: (c, c), md.zeros(2), md.ones((3, 2)), length=5)
    with pytest.raises(ValueError, match="give length=T"):
        md.scan(lambda c, x: (c, c), md.zeros(2))
    with pytest.raises(ScanError, match="carry of structure"):
        md.scan(lambda c, x: ((c, c), c), md.zeros(2), md.ones((3, 2)))
    with pytest.raises(ScanError, match=r"leaf 0 of the carry .* shape \(\) .* shape \(2,\)"):
        md.scan(lambda c, x: (md.sum(c), c), md.zeros(2), md.ones((3, 2)))
    with pytest.raises(ScanError, match="must return a pair"):
        md.scan(lambda c, x: c, md.zeros(2), md.ones((3, 2)))
    with pytest.raises(md.TracerConversionError, match="md.where"):
        md.scan(lambda c, x: (c if md.sum(c) > 0 else -c, c), md.zeros(2), md.ones((3, 2)))


def test_under_stochastic_triples_the_scan_runs_its_loop(data):
    """Triples have no scan rules: md.scan runs the loop it stands for, op by op, and gives
    the loop's derivative estimate (a deterministic body: the pathwise derivative, exactly)."""
    from minidiff.stochastic import derivative_estimate
    theta, xs = data
    got = derivative_estimate(lambda p: loss_with(SCAN)(p, xs), theta, seed=0)
    want = derivative_estimate(lambda p: loss_with(LOOP)(p, xs), theta, seed=0)
    same_bits(got, want)
    close(got, md.grad(loss_with(LOOP))(theta, xs))
