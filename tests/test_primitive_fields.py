"""The executor fields of each primitive state facts about the op, checked against its ``impl``.

``md.jit``'s executors act on these fields instead of calling ``impl`` (see ``docs/jit.md``),
so a field declared wrongly is a wrong answer. Every primitive of ``minidiff.ops`` (and the
executors' own ``quiet_exp``) is found by walking the modules, so a new declaration is checked
without being listed here:

* ``into``: the backend kernel gives ``impl``'s bits, written into a buffer or not;
* ``direct``: the backend function gives ``impl``'s bits;
* ``loop``: the expression, evaluated element by element in float64, gives ``impl``'s values
  (NaN where ``impl`` gives NaN);
* ``passes_through``: ``impl`` returns that argument itself;
* ``fresh``: the result shares no memory with the arguments;
* ``negation_commutes``: f(−u) = −f(u), bit for bit;
* ``expands``: the result holds only the argument's elements.

All comparisons are exact (the fields promise the same bits), on NumPy, whose kernels these are.
"""

from __future__ import annotations

import math
import re
import types

import numpy as np
import pytest

import minidiff.ops as ops_package
from minidiff.backend import NUMPY_KERNELS
from minidiff.core import Primitive
from minidiff.jit import simplify
from minidiff.ops import (
    comparisons,
    constants,
    elementwise,
    indexing,
    linalg,
    linear,
    reductions,
    special,
    surrogates,
)

MODULES = [ops_package, comparisons, constants, elementwise, indexing, linalg, linear,
           reductions, special, surrogates, simplify]


def all_primitives() -> list[Primitive]:
    found: dict[int, Primitive] = {}
    for module in MODULES:
        assert isinstance(module, types.ModuleType)
        for value in vars(module).values():
            if isinstance(value, Primitive):
                found[id(value)] = value
    return sorted(found.values(), key=lambda p: (p.name, id(p)))


PRIMITIVES = all_primitives()
# parameters of the elementwise primitives that take some
PARAMS = {"soft_step": {"k": 2.0}, "polygamma": {"n": 1}}


def bits(x):
    return np.asarray(x).tobytes()


def same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    return got.shape == want.shape and got.dtype == want.dtype and bits(got) == bits(want)


def elementwise_args(p: Primitive, n_args: int, size: int = 64) -> list[np.ndarray]:
    """float64 values with the awkward ones (±0, ±inf, NaN, ties), booleans where the op
    reads booleans."""
    rng = np.random.default_rng(3)
    special_values = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5])

    def floats() -> np.ndarray:
        v = rng.normal(size=size) * 3
        v[:special_values.size] = special_values
        return v

    if p.name.startswith("logical"):
        return [rng.random(size) < 0.5 for _ in range(n_args)]
    args = [floats() for _ in range(n_args)]
    if p.selects:
        args[0] = rng.random(size) < 0.5
    if n_args == 2:
        args[1][8:16] = args[0][8:16]  # ties
    return args


def arity(p: Primitive) -> int:
    if p.loop is not None:
        return max(int(k) for k in re.findall(r"\{(\d)\}", p.loop)) + 1
    if p.selects:
        return 3
    return 2 if p.broadcasts else 1


def test_the_walk_finds_the_primitives_executors_know():
    names = {p.name for p in PRIMITIVES}
    assert {"add", "where", "sum", "broadcast_to", "stop_gradient", "straight_through",
            "soft_step", "matmul", "exp"} <= names
    assert sum(p.into is not None for p in PRIMITIVES) >= 25
    assert sum(p.loop is not None for p in PRIMITIVES) >= 18


@pytest.mark.parametrize("p", [p for p in PRIMITIVES if p.into is not None],
                         ids=lambda p: p.name)
def test_into_kernel_gives_the_impls_bits(p):
    assert p.fresh, f"{p.name}: written into a buffer, so its result is a new array"
    args = elementwise_args(p, arity(p))
    params = PARAMS.get(p.name, {})
    with np.errstate(all="ignore"):
        want = p.impl(*args, **params)
        kernel = NUMPY_KERNELS.into[p.into]
        out = np.full(np.shape(want), 7.0).astype(np.asarray(want).dtype)
        got = kernel(*args, out=out)
        assert same(got, want), p.name
        assert same(kernel(*args), want), p.name


@pytest.mark.parametrize("p", [p for p in PRIMITIVES if p.loop is not None],
                         ids=lambda p: p.name)
def test_loop_expression_gives_the_impls_values(p):
    n = arity(p)
    args = elementwise_args(p, n)
    params = PARAMS.get(p.name, {})
    with np.errstate(all="ignore"):
        want = np.asarray(p.impl(*args, **params))
        got = []
        for i in range(want.size):
            element = {f"a{j}": args[j][i] for j in range(n)}
            expression = p.loop.format(*[f"a{j}" for j in range(n)])
            try:
                got.append(eval(expression, {"math": math}, element))  # noqa: S307
            except ValueError:  # math.sqrt(-1): numba's error_model="numpy" gives NaN
                got.append(math.nan)
    got = np.asarray(got, dtype=want.dtype)
    if want.dtype == np.float64:
        assert np.array_equal(got, want, equal_nan=True), p.name
        numbers = ~np.isnan(want)  # signed zeros must match; a NaN's sign bit carries nothing
        assert np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers])), p.name
    else:
        assert np.array_equal(got, want), p.name


@pytest.mark.parametrize("p", [p for p in PRIMITIVES if p.passes_through is not None],
                         ids=lambda p: p.name)
def test_passes_through_returns_the_argument_itself(p):
    args = elementwise_args(p, arity(p))
    assert p.impl(*args) is args[p.passes_through]
    assert not p.fresh


@pytest.mark.parametrize("p", [p for p in PRIMITIVES if p.direct is not None],
                         ids=lambda p: p.name)
def test_direct_function_gives_the_impls_bits(p):
    rng = np.random.default_rng(4)
    if p.selects:
        cases = [((rng.random(3000) < 0.4, rng.normal(size=3000), 0.0), {}),
                 ((rng.random(5) < 0.4, 1.0, rng.normal(size=5)), {})]
    else:  # a reduction over axes
        x = rng.normal(size=(7, 300))
        cases = [((x,), {"axis": (1,), "keepdims": False}),
                 ((x,), {"axis": (0, 1), "keepdims": True})]
    for args, params in cases:
        assert same(NUMPY_KERNELS.direct[p.direct](*args, **params), p.impl(*args, **params))


# arguments of the fresh primitives that are not elementwise
NON_ELEMENTWISE = {
    "sum": lambda x: ((x,), {"axis": (1,), "keepdims": False}),
    "max": lambda x: ((x,), {"axis": (0,), "keepdims": True}),
    "prod": lambda x: ((x,), {"axis": (1,), "keepdims": False}),
    "cumsum": lambda x: ((x,), {"axis": 1}),
    "matmul": lambda x: ((x, x.T), {}),
    "concatenate": lambda x: ((x, x), {"axis": 0}),
}


@pytest.mark.parametrize("p", [p for p in PRIMITIVES if p.fresh], ids=lambda p: p.name)
def test_a_fresh_result_shares_no_memory_with_the_arguments(p):
    if p.elementwise:
        args, params = elementwise_args(p, arity(p)), PARAMS.get(p.name, {})
    elif p.name in NON_ELEMENTWISE:
        args, params = NON_ELEMENTWISE[p.name](np.arange(12.0).reshape(3, 4))
    else:
        assert p.name == "scatter_add", f"{p.name}: give this test its arguments"
        return  # builds its result from zeros: nothing to share
    with np.errstate(all="ignore"):
        out = p.impl(*args, **params)
    assert not any(np.shares_memory(out, a) for a in args if isinstance(a, np.ndarray))


NEGATION = {
    "sum": {"axis": (0,), "keepdims": False},
    "reshape": {"shape": (4, 3)},
    "broadcast_to": {"shape": (2, 3, 4)},
}


@pytest.mark.parametrize("p", [p for p in PRIMITIVES if p.negation_commutes or p.expands],
                         ids=lambda p: p.name)
def test_negation_moves_across_and_expansion_only_repeats(p):
    assert p.name in NEGATION, f"{p.name}: give this test its parameters"
    rng = np.random.default_rng(5)
    u = rng.normal(size=(3, 4)) * 1e3
    u[0, :2] = [0.0, -0.0]
    params = NEGATION[p.name]
    if p.negation_commutes:
        assert same(p.impl(-u, **params), -np.asarray(p.impl(u, **params)))
    if p.expands:
        assert set(np.unique(p.impl(u, **params))) <= set(np.unique(u))
