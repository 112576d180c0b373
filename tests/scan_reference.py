"""What the md.scan tests compare against: the Python loop a scan stands for, and the
comparisons of its results (shared by test_scan.py, test_scan_numba.py, test_scan_vmap.py)."""

from __future__ import annotations

import numpy as np

import minidiff as md

RTOL = 1e-12  # regrouped float64 sums of a few dozen terms (test_scan.py's module notes)


def host(x):
    return np.asarray(md.to_host(x))


def close(a, b, rtol=RTOL):
    a, b = host(a), host(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.max(np.abs(b))))


def same_bits(a, b):
    a, b = host(a), host(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.tobytes() == b.tobytes()


def python_scan(f, init, xs=None, length=None, reverse=False):
    """The loop md.scan stands for (JAX's reference semantics), for one array or pytree xs."""
    n = length if xs is None else md.pytree.tree_leaves(xs)[0].shape[0]
    carry, ys = init, [None] * n
    for t in (range(n - 1, -1, -1) if reverse else range(n)):
        x = None if xs is None else md.pytree.tree_map(lambda a: a[t, ...], xs)
        carry, ys[t] = f(carry, x)
    return carry, md.pytree.tree_map(lambda *r: md.stack(list(r)), *ys)
