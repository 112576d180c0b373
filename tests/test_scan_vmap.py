"""vmap of md.scan: one scan of the batched body, against the loop over the batch.

The batched body runs each op once on the stacked (B, ...) values, so elementwise results are
the loop's bits; a sum over an element's axis runs on a (B, ...) array, where NumPy may group the
terms otherwise, so values and derivatives are compared at 1e-12 relative (rounding of sums of a
few dozen float64 terms).
"""

from __future__ import annotations

import numpy as np
import pytest
from scan_reference import close

import minidiff as md
from minidiff import scan_primitive


def per_element(f, in_axes, *args):
    """The loop vmap stands for: f on each element, stacked."""
    size = next(md.core.shape_of(a)[0] if not isinstance(a, tuple)
                else md.core.shape_of(a[0])[0] for a, ax in zip(args, in_axes) if ax == 0)
    outs = []
    for b in range(size):
        picked = [md.pytree.tree_map(lambda v: v[b, ...], a) if ax == 0 else a
                  for a, ax in zip(args, in_axes)]
        outs.append(f(*picked))
    return md.pytree.tree_map(lambda *r: md.stack(list(r)), *outs)


@pytest.fixture
def no_loop_rule(monkeypatch):
    """Fail if vmap falls back to one scan per element."""
    import minidiff.batching as batching
    real = batching.loop_rule

    def refuse(primitive, *args, **kwargs):
        assert primitive is not scan_primitive.scan_p, "vmap of a scan ran one scan per element"
        return real(primitive, *args, **kwargs)

    monkeypatch.setattr(batching, "loop_rule", refuse)


def model(theta, c0, xs, reverse=False, executor="replay"):
    """A carry (vector, scalar), a closure parameter theta, a pytree of ys."""
    def step(carry, x):
        c, s = carry
        c = md.tanh(c * theta[0] + x) + md.where(c > 0.0, 0.1 * c, -0.2 * c)
        s = s + md.sum(c * c) * theta[1]
        return (c, s), {"c": c, "s": s}

    (c, s), ys = md.scan(step, (c0, md.zeros(())), xs, reverse=reverse, executor=executor)
    return md.sum(c) + s + md.sum(md.sum(ys["c"], axis=1) * ys["s"])


@pytest.fixture
def data(to_array):
    rng = np.random.default_rng(5)
    return (to_array(rng.uniform(0.5, 1.5, (3, 2))), to_array(rng.normal(size=(3, 4))),
            to_array(rng.normal(size=(3, 6, 4))))


@pytest.mark.parametrize("in_axes", [(0, None, None), (None, 0, None), (None, None, 0),
                                     (0, 0, 0)])
@pytest.mark.parametrize("reverse", [False, True])
def test_vmap_of_scan_equals_the_loop_over_the_batch(backend, data, no_loop_rule, in_axes,
                                                     reverse):
    """Batched closure parameter, batched initial carry, batched xs (the carry then becomes
    batched at step 1), all three."""
    thetas, c0s, xss = data
    args = [a if ax == 0 else a[0, ...] for a, ax in zip((thetas, c0s, xss), in_axes)]

    def f(theta, c0, xs):
        return model(theta, c0, xs, reverse)

    close(md.vmap(f, in_axes=in_axes)(*args), per_element(f, in_axes, *args))


def test_derivatives_through_vmap_of_scan(data, no_loop_rule):
    """grad of a vmapped scan, vmap of grad (per-example gradients), vmap of jacfwd."""
    thetas, c0s, xss = data
    theta = thetas[0, ...]

    def total(theta):
        return md.sum(md.vmap(lambda c0, xs: model(theta, c0, xs), in_axes=(0, 0))(c0s, xss))

    def total_loop(theta):
        return sum(model(theta, c0s[b, ...], xss[b, ...]) for b in range(3))

    close(md.grad(total)(theta), md.grad(total_loop)(theta))
    for transform in (md.grad, md.jacfwd):
        per_example = md.vmap(transform(lambda t, c0, xs: model(t, c0, xs)), in_axes=(0, 0, 0))
        close(per_example(thetas, c0s, xss),
              per_element(transform(lambda t, c0, xs: model(t, c0, xs)), (0, 0, 0),
                          thetas, c0s, xss))


def test_vmap_of_scan_with_the_numba_loop(data, no_loop_rule):
    pytest.importorskip("numba")
    thetas, c0s, xss = data

    def f(theta, c0, xs):
        return model(theta, c0, xs, executor="numba")

    close(md.vmap(f)(thetas, c0s, xss),
          per_element(lambda t, c, x: model(t, c, x), (0, 0, 0), thetas, c0s, xss))
