"""Code that reads a value's raw numbers (minidiff.core.raw) under md.vmap.

``raw`` strips every box, the batching box too, so under ``vmap`` it hands back every batch
element stacked where the code expects one element's numbers. Each test reaches one such call
site: either ``vmap`` equals the Python loop over the batch, or the site refuses with a
BatchingError naming the function. Comparisons are exact or to 1e-12 (float64, the same
operations in another order)."""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.batching import BatchingError, unbatched_raw
from minidiff.models import brock_hommes, housing
from minidiff.random import default_rng
from minidiff.stochastic import blackbox, harness
from minidiff.testing import check_grads

TOL = 1e-12  # float64: the loop and the batch run the same operations


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def test_unbatched_raw_strips_derivative_boxes_and_refuses_a_running_vmap():
    def f(x):
        assert float(unbatched_raw(x, "f", "why")) == 3.0
        return x * x

    assert float(md.grad(f)(3.0)) == 6.0
    with pytest.raises(BatchingError, match=r"^g: because, but under minidiff.vmap"):
        md.vmap(lambda x: unbatched_raw(x, "g", "because"))(md.asarray([1.0, 2.0]))
    leaked = []
    md.vmap(lambda x: leaked.append(x) or x)(md.asarray([1.0, 2.0]))
    assert host(unbatched_raw(leaked[0], "h", "why")).tolist() == [1.0, 2.0]  # vmap finished


@pytest.mark.parametrize("shared_probs", [False, True])
def test_gumbel_softmax_categorical_under_vmap_equals_the_loop(shared_probs):
    """The Gumbel noise conditioned on the sample reads the logits' values: under vmap one
    row of logits per batch element (it used to broadcast the stacked logits as one)."""
    weights = md.asarray([1.0, 2.0, 4.0])

    def f(p, seed):
        probs = md.stack([p, 0.5 * (1 - p), 0.5 * (1 - p)])
        if shared_probs:
            probs = md.asarray([0.2, 0.3, 0.5]) + 0.0 * p
        rng = default_rng(seed)
        draw = rng.categorical(md.stack([probs, probs]), one_hot=True,
                               estimator="gumbel_softmax", tau=0.5)
        return md.sum(draw * weights) * p

    ps, seeds = md.asarray([0.2, 0.7, 0.5]), [1, 2, 3]
    for s in seeds:
        batched = md.vmap(md.grad(lambda p: f(p, s)))(ps)
        loop = [float(md.grad(lambda p: f(p, s))(p)) for p in host(ps)]
        np.testing.assert_allclose(host(batched), loop, rtol=TOL, atol=TOL)


def test_housing_under_vmap_refuses_instead_of_mixing_the_markets():
    """The clearing price is a Newton search on the bids' numbers; with one month the search
    used to run once on every market's bids pooled (a silently wrong price)."""
    params = md.stack([md.asarray(housing.DEFAULT_PARAMS),
                       md.asarray(housing.DEFAULT_PARAMS) * 1.01])

    def run(theta):
        return housing.simulate(theta, n_timesteps=1, n_agents=20, rng=0)

    with pytest.raises(BatchingError, match="^housing.simulate: the clearing price"):
        md.vmap(run)(params)
    assert host(run(params[0])).shape[0] == 1  # one market at a time runs


@pytest.mark.parametrize("estimator", ["score_function", "finite_difference"])
def test_blackbox_estimators_refuse_a_program_batched_by_an_outer_vmap(estimator):
    """theta itself must be plain, but f may close over a batched value: its outputs were
    stacked into the samples (a reshape error, or an np.stack of a traced value)."""
    theta = md.asarray([1.0, 2.0])

    def estimate(scale):
        def f(t, rng):
            return scale * md.sum(t * rng.poisson(t * t, estimator="score"))
        if estimator == "score_function":
            return blackbox.score_function(f, theta, 3, seed=0)
        return blackbox.finite_difference(f, theta, 1e-3, 3, seed=0)

    assert host(estimate(2.0)).shape == (3, 2)  # unbatched, it runs
    with pytest.raises(BatchingError, match=f"^{estimator}: f's value is read as numbers"):
        md.vmap(estimate)(md.asarray([1.0, 3.0]))


def test_wengert_refuses_under_vmap_and_lists_a_vmap_inside_it():
    """Its rows hold one computation's numbers: under vmap it used to fail deep inside (a
    reshape of the stacked values). A vmap inside f is one computation on stacked values."""
    xs = md.asarray([0.5, 1.5])
    with pytest.raises(BatchingError, match="^wengert: the list's rows"):
        md.vmap(lambda x: md.wengert(lambda y: md.sin(y) * y, x))(xs)
    listing = md.wengert(lambda y: md.sum(md.vmap(lambda z: md.sin(z) * z)(y)), xs)
    assert host(listing.rows[-1].primal) == pytest.approx(float(np.sum(np.sin([0.5, 1.5])
                                                                         * [0.5, 1.5])))


def test_model_parameter_checks_see_every_batch_element():
    """check_number reads a batched parameter's numbers on purpose: each element is checked."""
    def run(beta):
        return brock_hommes.simulate(md.asarray(brock_hommes.DEFAULT_PARAMS), n_timesteps=3,
                                     rng=0, beta=beta)

    betas = md.asarray([120.0, 60.0])
    batched = host(md.vmap(run)(betas))
    np.testing.assert_allclose(batched, [host(run(b)) for b in (120.0, 60.0)],
                               rtol=TOL, atol=TOL)
    with pytest.raises(ValueError, match="beta"):
        md.vmap(run)(md.asarray([120.0, -1.0]))


def test_per_seed_samples_under_vmap_equal_the_loop_and_summarise_refuses():
    """Pathwise samples of a program that closes over a batched scale: each element's samples,
    stacked over the seeds (they were stripped of the batch axis, a silently wrong shape)."""
    theta = md.asarray([1.0, 2.0])

    def samples(scale):
        return harness.pathwise_samples(
            lambda t, rng: scale * md.sum(t * t * rng.normal(size=(2,))), theta)(3)

    scales = [1.0, 3.0]
    batched = host(md.vmap(samples)(md.asarray(scales)))
    np.testing.assert_allclose(batched, np.stack([host(samples(s)) for s in scales]),
                               rtol=TOL, atol=TOL)
    with pytest.raises(BatchingError, match="^summarise: the samples"):
        md.vmap(lambda s: harness.summarise("x", samples(s)).mean)(md.asarray(scales))


def test_check_grads_refuses_under_vmap():
    """Its inner products and maximum error would pool the batch elements into one check."""
    with pytest.raises(BatchingError, match="^check_grads: "):
        md.vmap(lambda x: check_grads(md.sin, (x,)) or x)(md.asarray([0.5, 1.5]))
    check_grads(md.sin, (md.asarray(0.5),))  # outside vmap, it checks


def test_gumbel_softmax_categorical_with_batched_generators_equals_the_loop():
    """Shared probabilities, one generator per element (rng.spawn): the uniforms behind the
    noise are batched and the logits are not."""
    weights = md.asarray([1.0, 2.0, 4.0])

    def f(p, rng):
        probs = md.stack([p, 0.5 * (1 - p), 0.5 * (1 - p)])
        draw = rng.categorical(md.stack([probs, probs]), one_hot=True,
                               estimator="gumbel_softmax", tau=0.5)
        return md.sum(draw * weights) * p

    p = md.asarray(0.4)
    batched = md.vmap(lambda rng: md.grad(f)(p, rng))(default_rng(1).spawn(3))
    loop = [float(md.grad(f)(p, rng)) for rng in default_rng(1).spawn(3)]
    np.testing.assert_allclose(host(batched), loop, rtol=TOL, atol=TOL)


def test_draw_argument_checks_read_every_batch_element():
    """The samplers' argument checks read the stacked values on purpose: a valid batch draws
    what the loop draws, and one bad element is enough to refuse."""
    def draw(n):
        return default_rng(0).binomial(n, 0.5, size=(4,))

    ns = [3.0, 10.0]
    np.testing.assert_array_equal(host(md.vmap(draw)(md.asarray(ns))),
                                  np.stack([host(draw(n)) for n in ns]))
    with pytest.raises(ValueError, match="^binomial: n must be"):
        md.vmap(draw)(md.asarray([3.0, 2.5]))
    with pytest.raises(ValueError, match="^bernoulli: probability p"):
        md.vmap(lambda p: default_rng(0).bernoulli(p))(md.asarray([0.5, 1.5]))
