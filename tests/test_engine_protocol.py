"""The engine protocol: an engine is its level, and a primitive may return several results and
give its value together with its tangent or its residuals.

* ``with Engine() as e`` opens a level (depth one more than the deepest open one) and closes
  it; an engine runs one level once.
* ``sincos`` below is a primitive with two results, defined only through the protocol (no
  engine knows it). Its derivatives under grad, jvp, jacfwd, jacrev and vmap of grad match the
  closed forms d sin = cos, d cos = −sin (exact in float64 up to rounding: rtol 1e-12), also
  when only one of its outputs is used (the VJP rule then gets None for the other).
* Joint rules replace the primal evaluation: under jvp and grad, ``impl`` does not run at the
  differentiated level, the joint rule gives the value (counted calls).
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.core import Engine, Primitive, active_levels
from minidiff.forward import ForwardEngine
from minidiff.reverse import ReverseEngine

X = np.array([0.3, -1.2, 2.0])


def host(x):
    return np.asarray(md.to_host(x))


def test_an_engine_is_its_level_and_opens_and_closes_as_a_context():
    with ForwardEngine(1) as outer:
        assert isinstance(outer, Engine) and outer.active and outer.level is outer
        with ReverseEngine() as inner:
            assert inner.depth == outer.depth + 1
            assert active_levels()[-2:] == (outer, inner)
        assert not inner.active and active_levels()[-1] is outer
    assert not outer.active and outer not in active_levels()
    with pytest.raises(RuntimeError, match="opened before"):
        outer.open()


def _sincos_primitive(counts: dict) -> Primitive:
    def impl(x):
        counts["impl"] += 1
        xp = md.get_backend().xp
        return xp.sin(x), xp.cos(x)

    def jvp(tangents, args, out, **params):
        (t,), (x,) = tangents, args
        return md.cos(x) * t, -md.sin(x) * t

    def vjp(gs, residuals, needs, **params):
        (x,) = residuals
        g_sin, g_cos = gs
        total = None
        if g_sin is not None:  # rules use minidiff ops (a raw array may be on the left)
            total = md.multiply(g_sin, md.cos(x))
        if g_cos is not None:
            term = md.negative(md.multiply(g_cos, md.sin(x)))
            total = term if total is None else md.add(total, term)
        return [total]

    return Primitive("sincos", impl, jvp=jvp, vjp=vjp, multiple_results=True,
                     save=lambda args, out, needs: (args[0],))


def test_a_primitive_with_two_results_is_differentiated_by_every_mode(to_array):
    sincos = _sincos_primitive({"impl": 0})

    def f(x):
        s, c = sincos(x)
        return md.sum(s * s * 2.0 + c)

    x = to_array(X)
    expected = 4.0 * np.sin(X) * np.cos(X) - np.sin(X)
    np.testing.assert_allclose(host(md.grad(f)(x)), expected, rtol=1e-12)
    np.testing.assert_allclose(host(md.jacfwd(f)(x)), expected, rtol=1e-12)
    _, tangent = md.jvp(f, (x,), (to_array(np.ones(3)),))
    np.testing.assert_allclose(float(host(tangent)), expected.sum(), rtol=1e-12)
    both = md.jacrev(lambda x: sincos(x))(x)
    np.testing.assert_allclose(host(both[0]), np.diag(np.cos(X)), rtol=1e-12)
    np.testing.assert_allclose(host(both[1]), np.diag(-np.sin(X)), rtol=1e-12)
    batched = md.vmap(md.grad(f))(to_array(np.stack([X, 2.0 * X])))  # per-row gradients
    np.testing.assert_allclose(host(batched)[1], 4.0 * np.sin(2 * X) * np.cos(2 * X)
                               - np.sin(2 * X), rtol=1e-12)


def test_an_unused_result_sends_no_cotangent(to_array):
    seen = []
    sincos = _sincos_primitive({"impl": 0})
    plain_vjp = sincos.vjp

    def vjp(gs, residuals, needs, **params):
        seen.append(tuple(g is not None for g in gs))
        return plain_vjp(gs, residuals, needs, **params)

    sincos.vjp = vjp
    g = md.grad(lambda x: md.sum(sincos(x)[1]))(to_array(X))
    np.testing.assert_allclose(host(g), -np.sin(X), rtol=1e-12)
    assert seen == [(False, True)]


def test_joint_rules_give_the_value_without_running_impl(to_array):
    counts = {"impl": 0, "joint_jvp": 0, "joint_save": 0}
    sincos = _sincos_primitive(counts)

    def value_and_jvp(primals, tangents):
        counts["joint_jvp"] += 1
        (x,), (t,) = primals, tangents
        s, c = md.sin(x), md.cos(x)
        return (s, c), (c * t, -s * t)

    def value_and_save(primals, needs):
        counts["joint_save"] += 1
        (x,) = primals
        return (md.sin(x), md.cos(x)), (x,), None

    sincos.value_and_jvp = value_and_jvp
    sincos.value_and_save = value_and_save

    def f(x):
        s, c = sincos(x)
        return md.sum(s * c)

    x = to_array(X)
    expected = np.cos(2.0 * X)  # d/dx sin x cos x
    _, tangent = md.jvp(f, (x,), (to_array(np.ones(3)),))
    np.testing.assert_allclose(float(host(tangent)), expected.sum(), rtol=1e-12)
    np.testing.assert_allclose(host(md.grad(f)(x)), expected, rtol=1e-12)
    assert counts == {"impl": 0, "joint_jvp": 1, "joint_save": 1}
