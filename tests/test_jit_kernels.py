"""The backend's fast kernels (``Backend.kernels``): the same answers as the plain formulas.

* ``select`` is ``where`` bit for bit, NaNs, infinities and signed zeros included, for masks
  of every density (it takes a branchless path for unpredictable ones) and broadcast shapes.
* ``sigmoid`` is accurate to a few ulp in both tails (against SciPy's ``expit``), where the
  tanh form 0.5 + 0.5·tanh(x/2) would lose every digit below σ ≈ 1e-16.
* Each ``into`` kernel, writing into a given buffer, gives the bits of the op it stands for,
  so md.jit's replay may use either.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import minidiff as md
from minidiff.backend import NUMPY_KERNELS, generic_kernels


def bits(x):
    return np.asarray(x).tobytes()


@pytest.mark.parametrize("share", [0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("shape", [(5000,), (3, 5000)])
def test_select_is_where_bit_for_bit(share, shape):
    rng = np.random.default_rng(1)
    mask = rng.random(5000) < share
    x = rng.normal(size=shape)
    y = rng.normal(size=5000)
    x[..., 3], x[..., 9], y[7], y[11] = np.nan, -0.0, -np.inf, -0.0
    cases = [(x, y), (x, 0.0), (0.0, x), (1.0, 0.0), (np.float64(2.5), y), (x, -0.0),
             (3.0, x), (x[..., ::-1], y), (y, x)]
    for a, b in cases:
        got, want = NUMPY_KERNELS.select(mask, a, b), np.where(mask, a, b)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert bits(got) == bits(want)
        out = np.full(want.shape, 7.0)  # the replay's scratch buffer
        assert NUMPY_KERNELS.into["where"](mask, a, b, out=out) is out
        assert bits(out) == bits(want)


def test_select_leaves_other_dtypes_and_small_masks_to_where():
    mask = np.array([True, False, True])
    assert bits(NUMPY_KERNELS.select(mask, 1, 2)) == bits(np.where(mask, 1, 2))
    assert bits(NUMPY_KERNELS.select(mask, np.float32(1), 2.0)) == bits(
        np.where(mask, np.float32(1), 2.0))


@pytest.mark.parametrize("kernels", [NUMPY_KERNELS, generic_kernels(np)],
                         ids=["numpy", "generic"])
def test_sigmoid_is_accurate_in_both_tails(kernels):
    x = np.concatenate([np.linspace(-745.0, 745.0, 20001), [-np.inf, np.inf, 0.0, -0.0]])
    want = sps.expit(x)
    with np.errstate(over="raise", invalid="raise"):  # no overflow warning escapes
        got = kernels.sigmoid(x)
    normal = want > 1e-300  # below, both are denormal or zero (σ(x) ≈ eˣ there)
    np.testing.assert_allclose(got[normal], want[normal], rtol=8 * 2.2e-16)
    assert np.all((got[~normal] >= 0.0) & (got[~normal] <= 1e-300))
    assert np.isnan(kernels.sigmoid(np.array([np.nan])))[0]


def test_every_into_kernel_gives_its_ops_bits():
    rng = np.random.default_rng(2)
    x = rng.normal(size=1000) * 3
    y = rng.normal(size=1000) * 3
    positive = np.abs(x) + 0.1
    ops = {"add": (md.add, (x, y)), "subtract": (md.subtract, (x, 2.5)),
           "multiply": (md.multiply, (0.5, y)), "divide": (md.divide, (x, y)),
           "negative": (md.negative, (x,)), "maximum": (md.maximum, (x, y)),
           "exp": (md.exp, (x,)), "log": (md.log, (positive,)), "log1p": (md.log1p, (positive,)),
           "expm1": (md.expm1, (x,)), "sqrt": (md.sqrt, (positive,)), "sin": (md.sin, (x,)),
           "cos": (md.cos, (x,)), "tanh": (md.tanh, (x,)), "abs": (md.abs, (x,)),
           "sign": (md.sign, (x,)), "floor": (md.floor, (x,)), "sigmoid": (md.sigmoid, (x,)),
           "greater": (md.greater, (x, y)), "less_equal": (md.less_equal, (x, 0.0)),
           "equal": (md.equal, (x, x)), "logical_and": (md.logical_and, (x > 0, y > 0)),
           "logical_not": (md.logical_not, (x > 0,))}
    for name, (op, args) in ops.items():
        want = op(*args)
        kernel = NUMPY_KERNELS.into[name]
        out = np.empty_like(np.asarray(want))
        assert bits(kernel(*args, out=out)) == bits(want), name
        assert bits(out) == bits(want), name
        assert bits(kernel(*args)) == bits(want), name
