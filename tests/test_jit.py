"""md.jit with the replay executor: the same bits as eager mode, under every transform.

The replay executor calls the same raw implementations eager mode calls, in the same order,
so every comparison here is exact (``assert_same_bits``), on NumPy and on array_api_strict.
Transforms of a jitted function run programs derived from its trace (its JVP, the forward
and backward parts of its VJP); they too repeat eager mode's operations one for one.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.jit import JitError


def host(x):
    return np.asarray(md.to_host(x))


def assert_same_bits(a, b):
    """Equal pytrees of arrays, bit for bit (NaN equal to NaN, -0.0 distinct from 0.0)."""
    if isinstance(a, tuple | list):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_bits(x, y)
        return
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_bits(a[k], b[k])
        return
    x, y = host(a), host(b)
    assert x.shape == y.shape and x.dtype == y.dtype
    assert x.tobytes() == y.tobytes(), f"max difference {np.max(np.abs(x - y))}"


# ---------------------------------------------------------------------------------------------
# functions of many primitives, with broadcasting, reductions, shapes and constants
# ---------------------------------------------------------------------------------------------

CONST = np.linspace(-1.0, 1.0, 4)


def mixed(x, y):
    """(3, 4) and (4,) -> scalar: arithmetic, broadcasting, transcendental ops, where,
    maximum, stop_gradient, reductions over an axis, indexing and reshapes."""
    c = md.asarray(CONST)
    z = md.sin(x) * y + md.exp(x * 0.5) / (1.0 + y * y)
    z = md.where(z > 0.2, z, md.tanh(z) - c)
    z = md.maximum(z, md.sigmoid(x) - md.stop_gradient(y))
    rows = md.sum(z * z, axis=1) + md.log1p(md.sum(md.abs(x[:, 1:3]), axis=1))
    flat = md.reshape(md.transpose(x), (-1,))
    return md.sum(rows * rows) + md.mean(flat[::2]) - md.sum(md.sqrt(y * y + 1.0))


def two_outputs(x, y):
    """A pair of outputs, one of them a matrix."""
    a = md.sigmoid(x * y) + y
    return md.sum(a * x), md.exp(a) * 0.5 - x


def tree_step(state, params):
    """Pytrees in and out: a dict and a tuple."""
    nu, total = state["nu"], state["total"]
    scale, shift = params
    nu = md.where(nu > shift, nu * scale, nu + shift)
    return {"nu": nu, "total": total + md.sum(nu * nu)}, (md.max(nu), scale * 2.0)


@pytest.fixture
def inputs(to_array):
    rng = np.random.default_rng(3)
    return to_array(rng.normal(size=(3, 4))), to_array(rng.normal(size=4))


def test_a_jitted_function_returns_eager_modes_bits(backend, inputs):
    jitted = md.jit(mixed)
    expected = mixed(*inputs)
    assert_same_bits(jitted(*inputs), expected)  # the call that traces
    assert_same_bits(jitted(*inputs), expected)  # a replay
    assert jitted.cache_info().hits == 1


def test_pytrees_of_arguments_and_results_keep_their_structure(backend, to_array):
    state = {"nu": to_array([0.1, 0.7, 1.3]), "total": to_array(0.0)}
    params = (to_array(1.5), to_array(0.5))
    jitted = md.jit(tree_step)
    for _ in range(3):
        got, expected = jitted(state, params), tree_step(state, params)
        assert_same_bits(got, expected)
        state = got[0]


def test_none_in_the_arguments_is_structure_not_an_input(backend, to_array):
    def scaled(x, options):
        return x * 2.0 if options["scale"] is None else x * options["scale"]

    jitted = md.jit(scaled)
    x = to_array([1.0, 2.0])
    assert_same_bits(jitted(x, {"scale": None}), x * 2.0)
    assert_same_bits(jitted(x, {"scale": to_array(3.0)}), x * 3.0)
    assert jitted.cache_info().misses == 2
    assert jitted.lower(x, {"scale": None}).inputs[0].shape == (2,)
    assert len(jitted.lower(x, {"scale": None}).inputs) == 1


TRANSFORMS = {
    "grad": lambda f: md.grad(f, argnums=(0, 1)),
    "jacfwd": lambda f: md.jacfwd(f, argnums=(0, 1)),
    "jacrev": lambda f: md.jacrev(f, argnums=(0, 1)),
    "hessian": lambda f: md.hessian(f),
    "jvp": lambda f: lambda x, y: md.jvp(f, (x, y), (md.ones_like(x), y * 0.5)),
    "vjp": lambda f: lambda x, y: md.vjp(f, x, y)[1](md.asarray(1.5)),
    "hvp": lambda f: lambda x, y: md.hvp(lambda u: f(u, y), x, md.ones_like(x)),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transform_of_a_jitted_function_gives_eager_modes_bits(backend, inputs, name):
    transform = TRANSFORMS[name]
    assert_same_bits(transform(md.jit(mixed))(*inputs), transform(mixed)(*inputs))


@pytest.mark.parametrize("name", ["grad", "jacfwd", "jacrev", "hessian"])
def test_transforms_of_a_function_with_several_outputs(backend, inputs, name):
    def loss(f):
        def scalar(x, y):
            a, b = f(x, y)
            return a * md.sum(b) + md.sum(b * b)
        return scalar

    transform = TRANSFORMS[name]
    assert_same_bits(transform(loss(md.jit(two_outputs)))(*inputs),
                     transform(loss(two_outputs))(*inputs))


def test_jacfwd_of_a_matrix_output(backend, inputs):
    def second(x, y):
        return two_outputs(x, y)[1]

    assert_same_bits(md.jacfwd(md.jit(second), argnums=(0, 1))(*inputs),
                     md.jacfwd(second, argnums=(0, 1))(*inputs))


NESTINGS = {
    "jit(grad)": lambda f: md.jit(md.grad(f)),
    "grad(jit(grad))": lambda f: md.grad(lambda x, y: md.sum(md.jit(md.grad(f))(x, y) ** 2)),
    "jacfwd(jit(grad))": lambda f: md.jacfwd(md.jit(md.grad(f))),
    "jit(jacfwd)": lambda f: md.jit(md.jacfwd(f)),
    "jit(hessian)": lambda f: md.jit(md.hessian(f)),
    "grad(jit(jit))": lambda f: md.grad(md.jit(md.jit(f))),
    "hessian(jit(grad)) via sum": lambda f: md.hessian(
        lambda x, y: md.sum(md.jit(md.grad(f))(x, y))),
}


@pytest.mark.parametrize("name", list(NESTINGS))
def test_nested_jit_and_transforms_give_eager_modes_bits(backend, inputs, name):
    nesting = NESTINGS[name]
    eager = {"jit(grad)": md.grad(mixed),
             "grad(jit(grad))": md.grad(lambda x, y: md.sum(md.grad(mixed)(x, y) ** 2)),
             "jacfwd(jit(grad))": md.jacfwd(md.grad(mixed)),
             "jit(jacfwd)": md.jacfwd(mixed),
             "jit(hessian)": md.hessian(mixed),
             "grad(jit(jit))": md.grad(mixed),
             "hessian(jit(grad)) via sum": md.hessian(
                 lambda x, y: md.sum(md.grad(mixed)(x, y)))}[name]
    assert_same_bits(nesting(mixed)(*inputs), eager(*inputs))


# ---------------------------------------------------------------------------------------------
# a Python loop of jitted steps: T tape nodes under grad, T JVP runs under jacfwd
# ---------------------------------------------------------------------------------------------


def cont_step(nu, total, sigma, depth, zeta, update):
    """One step of the Cont model written with ordinary ops: straight-through sigmoid orders
    hard + soft - stop_gradient(soft), thresholds reset to |r| where ``update``."""
    def orders(x):
        soft = md.sigmoid(5.0 * x)  # (md.add: a raw strict array refuses a traced right operand)
        return md.add(md.where(x > 0.0, 1.0, 0.0), soft) - md.stop_gradient(soft)

    eps = md.multiply(sigma, zeta)
    r = md.divide(md.sum(orders(md.subtract(eps, nu)) - orders(md.subtract(-nu, eps))), depth)
    return md.where(update, md.abs(r), nu), md.add(total, r * r)


def cont_loss(step, noise):
    def loss(theta):
        mu, sigma_nu, sigma, eta = theta[0], theta[1], theta[2], theta[3]
        nu = md.exp(mu + sigma_nu * noise["z"])
        depth = eta * float(noise["z"].shape[0])  # theta's entries are traced: operators work
        total = md.zeros(())
        for zeta, update in zip(noise["zeta"], noise["update"]):
            nu, total = step(nu, total, sigma, depth, zeta, update)
        return total
    return loss


@pytest.fixture
def noise(backend, to_array):
    rng = np.random.default_rng(0)
    n, steps = 200, 12
    return {"z": to_array(rng.normal(size=n)),
            "zeta": [to_array(z) for z in rng.normal(size=steps)],
            "update": [backend.from_host(rng.random(n) < 0.3) for _ in range(steps)]}


THETA = [-1.0, 0.5, 0.5, 1.0]


@pytest.mark.parametrize("name", ["primal", "grad", "jacfwd", "jacrev", "hessian"])
def test_a_loop_of_jitted_steps_equals_the_eager_loop(backend, noise, name):
    jitted = md.jit(cont_step)
    transform = {"primal": lambda f: f, "grad": md.grad, "jacfwd": md.jacfwd,
                 "jacrev": md.jacrev, "hessian": md.hessian}[name]
    theta = md.asarray(THETA)
    assert_same_bits(transform(cont_loss(jitted, noise))(theta),
                     transform(cont_loss(cont_step, noise))(theta))
    info = jitted.cache_info()
    assert info.entries <= 2  # the first step's total is a constant, later ones are traced
    assert info.hits >= len(noise["zeta"]) - 2


def test_under_grad_a_loop_records_one_node_per_jitted_call(backend, noise):
    from minidiff.memory import tape_memory

    theta = md.asarray(THETA)
    jitted = md.jit(cont_step)
    eager = tape_memory(cont_loss(cont_step, noise), theta)
    compiled = tape_memory(cont_loss(jitted, noise), theta)
    steps = len(noise["zeta"])
    # each call: one node for the call and one per differentiable output (nu, total)
    assert compiled["nodes"] <= 3 * steps + 20 < eager["nodes"]


# ---------------------------------------------------------------------------------------------
# the cache: one trace per signature, static arguments
# ---------------------------------------------------------------------------------------------


def test_a_new_shape_or_dtype_retraces_and_the_cache_counts_it(backend, to_array):
    jitted = md.jit(lambda x: md.sum(x * x))
    jitted(to_array([1.0, 2.0]))
    jitted(to_array([3.0, 4.0]))
    jitted(to_array([1.0, 2.0, 3.0]))
    info = jitted.cache_info()
    assert (info.hits, info.misses, info.entries) == (1, 2, 2)
    assert info.traces == 4  # each signature is traced twice, to catch hidden state
    assert "1 hits, 2 misses" in str(info)


def test_static_arguments_key_the_cache_and_may_steer_python(backend, to_array):
    def power(x, n):
        out = x
        for _ in range(n - 1):
            out = out * x
        return out

    jitted = md.jit(power, static_argnums=1)
    x = to_array([1.5, -2.0])
    assert_same_bits(jitted(x, 3), power(x, 3))
    assert_same_bits(jitted(x, 4), power(x, 4))
    assert_same_bits(jitted(x, 3), power(x, 3))
    assert jitted.cache_info().misses == 2
    assert_same_bits(md.grad(lambda u: md.sum(jitted(u, 5)))(x),
                     md.grad(lambda u: md.sum(power(u, 5)))(x))


def test_python_numbers_are_traced_so_a_new_value_does_not_retrace(backend, to_array):
    jitted = md.jit(lambda x, a: x * a + 1.0)
    x = to_array([1.0, 2.0])
    assert_same_bits(jitted(x, 2.0), x * 2.0 + 1.0)
    assert_same_bits(jitted(x, 3.0), x * 3.0 + 1.0)
    assert jitted.cache_info().misses == 1


def test_the_listing_shows_typed_inputs_and_one_line_per_primitive(backend, to_array):
    program = md.make_program(lambda x, y: md.sum(md.exp(x) * y))(to_array([1.0, 2.0]),
                                                                  to_array(3.0))
    text = str(program)
    assert text.splitlines()[0] == "program lambda(x1: f64[2], x2: f64[]):"
    assert "v1: f64[2] = exp(x1)" in text
    assert "v2: f64[2] = multiply(v1, x2)" in text
    assert "v3: f64[] = sum(v2, axis=(0,), keepdims=False)" in text
    assert text.splitlines()[-1] == "  return (v3,)"
    assert program.n_equations == 3
    assert md.jit(lambda x: -x).lower(to_array([1.0])).n_equations == 1


def test_replayed_outputs_are_fresh_arrays(backend, to_array):
    # scratch buffers are reused between calls; outputs never are
    jitted = md.jit(lambda x: md.exp(md.sin(x) * 2.0) + 1.0)
    first = jitted(to_array(np.linspace(0, 1, 5000)))
    kept = host(first).copy()
    second = jitted(to_array(np.linspace(1, 2, 5000)))
    assert host(first).tobytes() == kept.tobytes()
    assert not np.array_equal(host(first), host(second))


# ---------------------------------------------------------------------------------------------
# honest tracing
# ---------------------------------------------------------------------------------------------


def test_python_control_flow_on_a_traced_value_explains_where_and_static_argnums(backend,
                                                                                 to_array):
    def branchy(x):
        return x * 2.0 if md.sum(x) > 0 else -x

    with pytest.raises(JitError, match=r"md.where.*static_argnums"):
        md.jit(branchy)(to_array([1.0, 2.0]))


@pytest.mark.parametrize("use", [float, int, lambda v: range(v)])
def test_a_traced_value_is_never_a_python_number(backend, to_array, use):
    with pytest.raises(JitError, match="traced array"):
        md.jit(lambda x: x * use(md.sum(x)))(to_array([1.0, 2.0]))


def test_raw_array_library_calls_on_traced_values_raise(backend, to_array):
    from minidiff.core import raw

    def leaks(x):
        return md.asarray(md.get_backend().xp.exp(raw(x)))

    # NumPy asks the traced value, which explains; array_api_strict refuses it by type
    match = "minidiff ops" if backend.name == "numpy" else "Array"
    with pytest.raises(TypeError, match=match):
        md.jit(leaks)(to_array([1.0, 2.0]))


def test_a_data_dependent_shape_raises(backend, to_array):
    with pytest.raises(JitError, match="depend on the data.*md.where"):
        md.jit(lambda x: md.sum(x[x > 0.0]))(to_array([1.0, -2.0, 3.0]))


def test_a_tracer_that_escapes_raises_when_used(backend, to_array):
    kept = []

    def leaky(x):
        kept.append(x * 2.0)
        return x

    md.jit(leaky)(to_array([1.0]))
    with pytest.raises(JitError, match="escaped"):
        md.exp(kept[0])
    with pytest.raises(JitError, match="escaped"):
        float(kept[0])


def test_a_value_of_an_enclosing_transform_read_from_a_closure_raises(backend, to_array):
    def outer(theta):
        return md.jit(lambda x: md.sum(x * theta))(to_array([1.0, 2.0]))

    with pytest.raises(JitError, match="Pass it to the jitted function as an argument"):
        md.grad(outer)(to_array(3.0))
    # passed as an argument, it is differentiated
    g = md.grad(lambda th: md.jit(lambda x, t: md.sum(x * t))(to_array([1.0, 2.0]), th))
    assert float(host(g(to_array(3.0)))) == 3.0


def test_random_draws_from_a_captured_generator_raise(backend, to_array):
    rng = md.random.default_rng(0)
    with pytest.raises(JitError, match="generator it closes over"):
        md.jit(lambda x: x + rng.normal(size=3))(to_array([1.0, 2.0, 3.0]))


def test_random_draws_returned_as_they_are_raise(backend, to_array):
    """A draw the function returns without computing with it is a constant result of the
    program: the two traces' results differ."""
    rng = md.random.default_rng(0)
    with pytest.raises(JitError, match=r"\(result 2\).*generator it closes over"):
        md.jit(lambda x: (x * 2.0, rng.normal(size=3)))(to_array([1.0, 2.0, 3.0]))


def test_random_draws_from_a_static_key_are_allowed(backend, to_array):
    def noisy(x, seed):
        return x + md.random.default_rng(seed).normal(size=3)

    jitted = md.jit(noisy, static_argnums=1)
    x = to_array([1.0, 2.0, 3.0])
    assert_same_bits(jitted(x, 7), noisy(x, 7))
    assert_same_bits(jitted(x, 7), noisy(x, 7))
    assert not np.array_equal(host(jitted(x, 8)), host(jitted(x, 7)))


def test_non_array_arguments_must_be_static(backend, to_array):
    with pytest.raises(TypeError, match="static_argnums"):
        md.jit(lambda x, name: x)(to_array([1.0]), "label")
    assert_same_bits(md.jit(lambda x, name: x * len(name), static_argnums=1)(
        to_array([1.0]), "abc"), to_array([3.0]))


def test_keyword_arguments_and_bad_options_are_refused(backend, to_array):
    with pytest.raises(TypeError, match="positionally"):
        md.jit(lambda x: x)(x=to_array([1.0]))
    with pytest.raises(ValueError, match="unknown executor"):
        md.jit(lambda x: x, executor="xla")
    with pytest.raises(ValueError, match="out of range"):
        md.jit(lambda x: x, static_argnums=3)(to_array([1.0]))


def test_the_numba_executor_without_numba_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "numba", None)  # as if numba were not installed
    with pytest.raises(ImportError, match=r"'jit' extra"):
        md.jit(lambda x: x, executor="numba")


def test_jit_under_stochastic_triples_says_it_is_unsupported(backend, to_array):
    from minidiff.stochastic import derivative_estimate

    jitted = md.jit(lambda p: p * 2.0)
    with pytest.raises(md.ModeError, match="without md.jit"):
        derivative_estimate(lambda p: jitted(p), to_array(0.3), seed=0)
