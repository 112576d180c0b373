"""``md.vmap``: pytrees and axes, nesting with every transform, keyed random streams, errors.

Every result is compared with the loop ``stack([f(x_b) for b])`` that vmap stands for. The
batched ops run the same floating-point operations on the same numbers as the loop, so the
tolerance is 1e-12 relative (a summation's order may differ between one batched call and B
separate ones); random draws are compared exactly (each element's generator makes them).
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.batching import BatchingError
from minidiff.models import brock_hommes, cont, lob, random_walk, sir

RTOL = 1e-12


def host(x):
    return np.asarray(md.to_host(x))


def close(a, b, rtol=RTOL):
    np.testing.assert_allclose(host(a), host(b), rtol=rtol, atol=1e-300)


def loop(f, *args):
    """The loop vmap stands for, over axis 0 of every argument."""
    b_ = md.get_backend()
    args = [b_.from_host(np.asarray(a)) if isinstance(a, np.ndarray) else a for a in args]
    return np.stack([host(f(*[md.getitem(a, b) for a in args])) for b in range(args[0].shape[0])])


def f_scalar(x):
    return md.sum(md.sin(x) * x) + md.max(x) ** 2


X = np.linspace(-1.0, 1.0, 12).reshape(4, 3)


# ---------------------------------------------------------------------------------------------
# axes and pytrees
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_the_loop_and_runs_the_function_once(backend, to_array):
    calls = []

    def f(x):
        calls.append(1)
        return f_scalar(x)

    x = to_array(X)
    close(md.vmap(f)(x), loop(f_scalar, X))
    assert len(calls) == 1


def test_in_axes_out_axes_and_pytrees(backend, to_array):
    x, w = to_array(X), to_array(np.arange(3.0))

    def f(tree, scale):
        return {"s": md.sum(tree["a"] * scale), "v": (tree["b"] * 2.0, scale)}

    out = md.vmap(f, in_axes=({"a": 1, "b": 0}, None), out_axes={"s": 0, "v": (1, None)})(
        {"a": md.transpose(x), "b": x}, w)
    close(out["s"], (X * np.arange(3.0)).sum(axis=1))
    close(out["v"][0], 2.0 * X.T)   # batch axis moved to 1
    close(out["v"][1], np.arange(3.0))  # unbatched output, out_axes None: returned as is
    # an unbatched output with an axis is broadcast over the batch
    close(md.vmap(lambda a: w)(md.getitem(x, slice(0, 2))), np.stack([np.arange(3.0)] * 2))


def test_vmap_of_vmap_maps_two_axes(backend, to_array):
    x = to_array(X)
    out = md.vmap(md.vmap(lambda a: md.exp(a) * a))(x)
    close(out, np.exp(X) * X)
    outer = md.vmap(md.vmap(lambda a, b: a * b, in_axes=(None, 0)), in_axes=(0, None))
    close(outer(md.getitem(x, (slice(None), 0)), md.getitem(x, 0)), np.outer(X[:, 0], X[0]))


# ---------------------------------------------------------------------------------------------
# nesting with the AD transforms and jit
# ---------------------------------------------------------------------------------------------


def test_per_sample_gradients_vmap_of_grad(backend, to_array):
    x = to_array(X)
    close(md.vmap(md.grad(f_scalar))(x), loop(md.grad(f_scalar), X))


def test_grad_of_vmap(backend, to_array):
    x = to_array(X)
    got = md.grad(lambda v: md.sum(md.vmap(f_scalar)(v) ** 2))(x)
    rows = [md.getitem(x, b) for b in range(4)]
    want = np.stack([2.0 * host(f_scalar(r)) * host(md.grad(f_scalar)(r)) for r in rows])
    close(got, want)


def test_jacfwd_of_vmap_and_vmap_of_jacfwd(backend, to_array):
    x = to_array(X)

    def g(v):
        return md.cumsum(md.tanh(v) * md.sum(v))

    per = loop(md.jacfwd(g), X)                   # (4, 3, 3)
    close(md.vmap(md.jacfwd(g))(x), per)
    full = host(md.jacfwd(md.vmap(g))(x))        # (4, 3, 4, 3): block diagonal in the batch
    for b in range(4):
        close(full[b, :, b, :], per[b])
        assert np.all(full[b, :, [c for c in range(4) if c != b], :] == 0.0)


def test_hessian_per_sample(backend, to_array):
    x = to_array(X)
    close(md.vmap(md.hessian(f_scalar))(x), loop(md.hessian(f_scalar), X), rtol=1e-10)


def test_vmap_of_jit_and_jit_of_vmap(backend, to_array):
    x = to_array(X)
    jf = md.jit(f_scalar)
    close(md.vmap(jf)(x), loop(f_scalar, X))
    assert jf.cache_info().misses == 1  # the batched program is the jitted call's own
    close(md.jit(md.vmap(f_scalar))(x), loop(f_scalar, X))
    close(md.vmap(md.grad(jf))(x), loop(md.grad(f_scalar), X))
    close(md.grad(lambda v: md.sum(md.vmap(jf)(v)))(x), loop(md.grad(f_scalar), X))
    close(md.jacfwd(lambda v: md.vmap(jf)(v))(md.reshape(md.getitem(x, 0), (1, 3))),
          host(md.grad(f_scalar)(md.getitem(x, 0)))[None, None])


def test_checkpointed_loop_inside_vmap(backend, to_array):
    x = to_array(X)

    def run(theta):
        def step(state, t):
            return md.add(md.sin(md.multiply(state, theta)), 0.1 * t)
        return md.sum(md.checkpointed_loop(step, md.ones(3), 6, snapshots=2))

    close(md.vmap(run)(x), loop(run, X))
    close(md.vmap(md.grad(run))(x), loop(md.grad(run), X))
    close(md.grad(lambda v: md.sum(md.vmap(run)(v)))(x), loop(md.grad(run), X))


# ---------------------------------------------------------------------------------------------
# random streams
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["smoothed", "straight_through", "score", "none"])
def test_random_walk_under_vmap_draws_what_the_loop_draws(backend, to_array, estimator):
    thetas = to_array([0.2, 0.5, 0.7])

    def sim(theta, rng):
        return random_walk.simulate(theta, n_timesteps=6, n_agents=5, rng=rng,
                                    estimator=estimator)

    rows = [md.getitem(thetas, b) for b in range(3)]
    got = md.vmap(sim)(thetas, md.random.default_rng(7).spawn(3))
    want = [sim(t, g) for t, g in zip(rows, md.random.default_rng(7).spawn(3))]
    np.testing.assert_array_equal(host(got), np.stack([host(w) for w in want]))
    grads = md.vmap(md.jacfwd(lambda t, g: md.sum(sim(t, g))))(
        thetas, md.random.default_rng(7).spawn(3))
    close(grads, [host(md.jacfwd(lambda t, g: md.sum(sim(t, g)))(t, g))
                  for t, g in zip(rows, md.random.default_rng(7).spawn(3))])


def test_cont_under_vmap_equals_the_loop_with_its_jacobian(backend, to_array):
    base = np.asarray(cont.BENCHMARK_PARAMS)
    thetas = to_array(np.stack([base * (1.0 + 0.02 * i) for i in range(3)]))

    def sim(theta, rng):
        return cont.simulate(theta, n_timesteps=8, n_agents=20, rng=rng,
                             **cont.BENCHMARK_SETTINGS)

    rows = [md.getitem(thetas, b) for b in range(3)]
    got = md.vmap(sim)(thetas, md.random.default_rng(11).spawn(3))
    close(got, [host(sim(t, g)) for t, g in zip(rows, md.random.default_rng(11).spawn(3))])
    jac = md.vmap(md.jacfwd(sim))(thetas, md.random.default_rng(11).spawn(3))
    close(jac, [host(md.jacfwd(sim)(t, g))
                for t, g in zip(rows, md.random.default_rng(11).spawn(3))])


@pytest.mark.parametrize("model", [sir, brock_hommes], ids=["sir", "brock_hommes"])
def test_other_models_under_vmap_equal_the_loop(backend, to_array, model):
    base = np.asarray(model.DEFAULT_PARAMS, dtype=float)
    thetas = to_array(np.stack([base, base * 1.01]))

    def sim(theta, rng):
        return model.simulate(theta, n_timesteps=5, rng=rng)

    got = md.vmap(sim)(thetas, md.random.default_rng(2).spawn(2))
    want = [host(sim(md.getitem(thetas, b), g))
            for b, g in enumerate(md.random.default_rng(2).spawn(2))]
    close(got, want)


def test_every_sampler_draws_per_element(backend):
    def draws(p, rng):
        return md.stack([rng.normal(p, 2.0), rng.uniform(p, 2.0), rng.exponential(p),
                         rng.gumbel(p), rng.logistic(p), rng.lognormal(p),
                         rng.bernoulli(p / 3.0), rng.binomial(4.0, p / 3.0), rng.poisson(p),
                         rng.geometric(p / 3.0), rng.random(),
                         rng.categorical(md.stack([p / 3.0, 1.0 - p / 3.0]))])

    p = md.get_backend().from_host(np.asarray([0.5, 1.0, 2.0]))
    got = md.vmap(draws)(p, md.random.default_rng(5).spawn(3))
    want = [host(draws(md.getitem(p, b), g))
            for b, g in enumerate(md.random.default_rng(5).spawn(3))]
    close(got, want)


def test_a_generator_from_outside_refuses_to_draw_inside_vmap(backend, to_array):
    rng = md.random.default_rng(0)
    x = to_array(X)
    with pytest.raises(BatchingError, match="made outside minidiff.vmap.*rng.spawn"):
        md.vmap(lambda v: v * rng.normal())(x)
    with pytest.raises(BatchingError, match="made outside minidiff.vmap"):
        md.vmap(lambda v: v * rng.child().normal())(x)
    with pytest.raises(BatchingError, match="fresh entropy"):
        md.vmap(lambda v: v * md.random.default_rng().normal())(x)
    # a batched generator drawn inside an inner vmap would share its draws there
    gs = md.random.default_rng(0).spawn(4)
    with pytest.raises(BatchingError, match="made outside minidiff.vmap"):
        md.vmap(lambda v, g: md.vmap(lambda e: e * g.normal())(v))(x, gs)
    # a generator made inside from a seed gives the loop's answer: the same draws each time
    seeded = md.vmap(lambda v: v * md.random.default_rng(3).normal())(x)
    close(seeded, loop(lambda v: v * md.random.default_rng(3).normal(), X))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_mismatched_batch_sizes_name_both_arguments(backend, to_array):
    with pytest.raises(ValueError, match=r"argument 0 has 4 along axis 0; argument 1 has 3"):
        md.vmap(lambda a, b: a + b)(to_array(X), to_array(X[:3]))


def test_in_axes_of_the_wrong_structure_is_refused(backend, to_array):
    x = to_array(X)
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function got 2"):
        md.vmap(lambda a, b: a + b, in_axes=(0,))(x, x)
    with pytest.raises(ValueError, match="prefix of the argument's structure"):
        md.vmap(lambda t: t[0], in_axes=((0, 0),))((x,))
    with pytest.raises(ValueError, match="out of range"):
        md.vmap(lambda a: a, in_axes=2)(x)
    with pytest.raises(ValueError, match="batch size is unknown; pass axis_size"):
        md.vmap(lambda a: a, in_axes=None)(x)
    with pytest.raises(TypeError, match="only arrays"):
        md.vmap(lambda a, s: a, in_axes=(0, 0))(x, "text")


def test_out_axes_problems_are_named(backend, to_array):
    x = to_array(X)
    with pytest.raises(ValueError, match="out_axes is None for the output.*differs across"):
        md.vmap(lambda a: a * 2.0, out_axes=None)(x)
    with pytest.raises(ValueError, match="out_axes 3 .* out of range"):
        md.vmap(lambda a: a, out_axes=3)(x)


def test_python_control_flow_on_a_batched_value_points_to_where(backend, to_array):
    x = to_array(X)
    with pytest.raises(md.TracerConversionError, match="minidiff.where"):
        md.vmap(lambda a: a if md.sum(a) > 0 else -a)(x)
    with pytest.raises(BatchingError, match="float"):
        md.vmap(lambda a: float(md.sum(a)))(x)
    with pytest.raises(md.TracerConversionError, match="to_host of a value batched"):
        md.vmap(lambda a: md.to_host(a))(x)
    # under grad too: the comparison is batched inside the tape's value
    with pytest.raises(md.TracerConversionError, match="minidiff.where"):
        md.vmap(md.grad(lambda a: md.sum(a) if md.sum(a) > 0 else -md.sum(a)))(x)


def test_a_batched_index_array_is_refused(backend, to_array):
    idx = md.get_backend().from_host(np.asarray([[0, 1], [2, 0], [1, 1], [0, 0]]))
    with pytest.raises(TypeError, match="index array batched by minidiff.vmap"):
        md.vmap(lambda i: md.getitem(md.ones(3), i))(idx)


def test_stochastic_triples_and_vmap(backend, to_array):
    """Triples outside vmap follow the batched ops (no sampler: the plain derivative); a
    discrete draw there, or triples inside vmap, are refused: the triples' pruning would let
    the jumps of different batch elements compete."""
    from minidiff.stochastic import derivative_estimate

    x = to_array(X)

    def smooth(theta):
        return md.sum(md.vmap(lambda v: md.sin(v * theta))(x))

    got = derivative_estimate(smooth, to_array(0.7))
    close(got, np.sum(np.cos(X * 0.7) * X))

    def with_draws(theta):
        gs = md.random.default_rng(1).spawn(4)
        return md.sum(md.vmap(lambda v, g: g.bernoulli(md.sigmoid(v * theta)))(x, gs))

    with pytest.raises(BatchingError, match="jumps of different batch elements"):
        derivative_estimate(with_draws, to_array(0.7))
    with pytest.raises(BatchingError, match="derivative_estimate under minidiff.vmap"):
        md.vmap(lambda v: derivative_estimate(lambda t: md.sum(t * v), to_array(0.5)))(x)


def test_the_order_book_under_vmap_is_refused_naming_the_loop(backend, to_array):
    # the book moves its price window by the mid price read as numbers; stripping the batch
    # axis there once handed every element's prices to one book (a ShapeError, or mixed books
    # where the shapes happened to broadcast)
    thetas = md.asarray(np.tile(np.asarray(lob.DEFAULT_PARAMS, dtype=float), (2, 1)))
    with pytest.raises(BatchingError, match="lob.simulate.*one after another"):
        md.vmap(lambda t, r: lob.simulate(t, n_timesteps=3, rng=r))(
            thetas, md.random.default_rng(0).spawn(2))
