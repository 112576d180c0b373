"""Black-box gradient estimators of an expectation: the score function and finite differences.

Both estimate d/dθ E[f(θ)] for a *stochastic program* ``f(theta, rng)`` that draws its random
numbers from the keyed generator ``rng`` (:func:`minidiff.random.default_rng`) and returns a
scalar. Sample i always runs on the stream ``root.stream(i)`` of the root generator made from
``seed``, so a run is reproducible and two estimators given the same seed see the same draws.
Each function returns the *per-sample* estimates g_1, ..., g_n, shape ``(n,)`` for a scalar θ and
``(n, *θ.shape)`` otherwise (``(n, K)`` for K parameters); their mean is the estimate and their
spread gives its standard error (:func:`minidiff.stochastic.compare_estimators`).

Score function (REINFORCE, likelihood ratio)
--------------------------------------------
If the draws x have density p(x; θ) and f also depends on θ directly,

    ∇ E[f(x, θ)] = E[ ∇_θ f(x, θ) + f(x, θ) ∇_θ log p(x; θ) ],

because ∇ ∫ f p = ∫ (∇f) p + ∫ f (∇ log p) p. The program draws with ``estimator="score"``: the
sample carries no derivative, and ``rng.log_prob`` accumulates log p(x; θ) as a traced value.
One estimate is the derivative of the *surrogate*

    S_b(θ) = f + stop_gradient(f − b) · (log p − stop_gradient(log p)),

whose value is f and whose gradient is ∇f + (f − b) ∇log p. Subtracting a *baseline* b keeps
the estimator unbiased whenever b is independent of the sample it multiplies, because the score
has mean zero: E[b ∇log p] = b ∫ ∇p = b ∇1 = 0. A good b (close to E[f]) removes the part of
f ∇log p that is only noise, E[f]·∇log p, whose variance is E[f]² Var(∇log p).

* ``"none"``: b = 0.
* a number c: the constant baseline b = c.
* ``"leave_one_out"``: b_i = (1/(n−1)) Σ_{j≠i} f_j, the mean of the *other* samples' values. It
  is independent of sample i (the samples are independent), so each g_i is unbiased. The mean
  of the g_i equals (1/(n−1)) Σ_i (f_i − f̄) ∇log p_i + mean ∇f_i, n/(n−1) times a sample
  covariance. The g_i are exchangeable with pairwise covariances O(1/n²), so their standard
  error is right to first order.
* ``"ema"``: b_i = the exponential moving average of f_1, ..., f_{i−1} with decay d
  (m_i = d m_{i−1} + (1 − d) f_i, b_i = m_{i−1}/(1 − d^{i−1}) with Adam's correction of the
  start at 0; b_1 = 0). b_i depends only on earlier samples, so E[g_i − ∇E f | past] = 0: the
  errors are martingale differences, uncorrelated, and the standard error is exact.

Since ∇S_b = ∇S_0 − b ∇log p is affine in b, each sample is differentiated once: one pass
(``jacfwd``, or ``jacrev``'s two sweeps) gives ∇S_0 and ∇log p, and f; the baselines, which need
the whole batch, are applied afterwards.

Finite differences
------------------
Central: g = (f(θ + h e_k) − f(θ − h e_k)) / (2h); forward: g = (f(θ + h e_k) − f(θ)) / h, for
each unit vector e_k. With *common random numbers* every evaluation of sample i uses the same
stream, so the noise cancels in the difference: for a program smooth in θ given its draws the
variance is O(1) as h → 0, while independent streams give Var f(θ+h) + Var f(θ−h) over 4h², that
is O(1/h²). For discrete draws by inversion (X = 1[U < p]) common random numbers help less: the
two runs differ only where some U falls between the two probabilities, a rare jump of size 1
divided by 2h, so the variance is O(1/h) instead of O(1/h²). The bias is O(h²) (central) or O(h)
(forward) when E f is smooth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import backend as _backend
from ..batching import unbatched_raw
from ..core import Box, shape_of
from ..ops import add, multiply, stack, stop_gradient, subtract
from ..random import default_rng
from ..transforms import jacfwd, jacrev
from ..validation import check_int

__all__ = ["score_function", "finite_difference"]

BASELINES = ("none", "leave_one_out", "ema")
SCHEMES = ("central", "forward")


_READS_NUMBERS = ("f's value is read as numbers to combine the samples into one estimate "
                  "(here f depends on a value batched by vmap)")


def root_generator(seed: Any) -> Any:
    """The generator whose streams the samples use: ``default_rng(seed)`` for an integer seed,
    or ``seed`` itself when it is already a generator (anything with a ``stream`` method)."""
    if hasattr(seed, "stream"):
        return seed
    return default_rng(seed)


def check_count(n_samples: Any, name: str, least: int = 1) -> int:
    """``n_samples`` as an int ≥ ``least`` (any integer type; not a bool or a float)."""
    return check_int(name, "n_samples", n_samples, least)


def as_theta(theta: Any, name: str) -> Any:
    """θ as a floating backend array (integers are converted, traced values refused)."""
    if isinstance(theta, Box):
        raise TypeError(f"{name}: theta must be a plain array, not a traced value; the "
                        f"estimator runs its own differentiation")
    b = _backend.get_backend()
    arr = b.asarray(theta)
    if not b.xp.isdtype(arr.dtype, "real floating"):
        arr = b.xp.astype(arr, b.float_dtype)
    return arr


def _check_scalar(out: Any, name: str) -> Any:
    if shape_of(out) != ():
        raise TypeError(f"{name}: f(theta, rng) must return a scalar, but returned shape "
                        f"{shape_of(out)}")
    return out


# ---------------------------------------------------------------------------------------------
# Score function
# ---------------------------------------------------------------------------------------------


def _baselines(values: Any, baseline: Any, ema_decay: float) -> Any:
    """b_i for each sample (a backend array of shape (n,)), from the values f_i."""
    b = _backend.get_backend()
    xp = b.xp
    n = values.shape[0]
    if not isinstance(baseline, str):
        return xp.full((n,), float(baseline), dtype=b.float_dtype)
    if baseline == "none":
        return xp.zeros((n,), dtype=b.float_dtype)
    if baseline == "leave_one_out":
        return (xp.sum(values) - values) / (n - 1)
    host = [float(v) for v in b.to_host(values)]
    out = []
    m = 0.0
    for i, value in enumerate(host):
        out.append(m / (1.0 - ema_decay ** i) if i > 0 else 0.0)
        m = ema_decay * m + (1.0 - ema_decay) * value
    return b.asarray(out)


def score_function(f: Callable[[Any, Any], Any], theta: Any, n_samples: int,
                   baseline: str | float = "none", *, seed: Any = 0, ema_decay: float = 0.9,
                   mode: str = "forward") -> Any:
    """Per-sample score-function estimates of d/dθ E[f(θ, rng)] (see the module notes).

    Args:
        f: ``f(theta, rng) -> scalar``; its draws that depend on θ use ``estimator="score"``, so
            that ``rng.log_prob`` holds their log-probability (traced) when f returns.
        theta: the parameters (a number or an array).
        n_samples: how many samples (≥ 2 for ``"leave_one_out"``).
        baseline: ``"none"``, ``"leave_one_out"``, ``"ema"`` or a constant number.
        seed: an integer, or a generator whose ``stream(i)`` sample i uses (its ``log_prob``
            ledger, which its streams share, is reset before and after each sample).
        ema_decay: d in [0, 1) for the ``"ema"`` baseline.
        mode: ``"forward"`` (``jacfwd``: one pass with K = θ.size tangents) or ``"reverse"``
            (``jacrev``: one tape, two backward sweeps).

    Returns:
        The n estimates, shape ``(n_samples, *theta.shape)``.
    """
    name = "score_function"
    least = 2 if baseline == "leave_one_out" else 1
    n_samples = check_count(n_samples, name, least)
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"{name}: unknown baseline {baseline!r}; use one of {BASELINES} "
                             f"or a number")
    elif isinstance(baseline, bool) or not isinstance(baseline, int | float) \
            or not math.isfinite(baseline):
        raise ValueError(f"{name}: baseline must be one of {BASELINES} or a finite number, got "
                         f"{baseline!r}")
    if not (isinstance(ema_decay, int | float) and 0.0 <= ema_decay < 1.0):
        raise ValueError(f"{name}: ema_decay must lie in [0, 1), got {ema_decay!r}")
    if mode not in ("forward", "reverse"):
        raise ValueError(f"{name}: mode must be 'forward' or 'reverse', got {mode!r}")
    theta = as_theta(theta, name)
    root = root_generator(seed)
    jacobian = jacfwd if mode == "forward" else jacrev
    b = _backend.get_backend()

    values: list[Any] = []
    grad_s0: list[Any] = []
    grad_logp: list[Any] = []
    for i in range(n_samples):
        def pieces(t: Any, i: int = i) -> Any:
            rng = root.stream(i)
            out = _check_scalar(f(t, rng), name)
            logp = rng.log_prob
            values.append(b.asarray(unbatched_raw(out, name, _READS_NUMBERS)))
            centred = subtract(logp, stop_gradient(logp))  # value 0, gradient ∇log p
            # ops, not operators: a raw array on the left of a traced value is not always
            # deferred to it (array_api_strict raises)
            return stack([add(out, multiply(stop_gradient(out), centred)),
                          add(multiply(out, 0.0), centred)])

        root.reset_log_prob()  # the streams share the root's ledger of score draws
        try:
            jac = jacobian(pieces)(theta)
        finally:
            root.reset_log_prob()
        grad_s0.append(jac[0, ...])
        grad_logp.append(jac[1, ...])

    xp = b.xp
    baselines = _baselines(b.asarray(xp.stack(values)), baseline, float(ema_decay))
    expand = (n_samples,) + (1,) * len(shape_of(theta))
    return xp.stack(grad_s0) - xp.reshape(baselines, expand) * xp.stack(grad_logp)


# ---------------------------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------------------------


def finite_difference(f: Callable[[Any, Any], Any], theta: Any, h: float, n_samples: int, *,
                      common_random_numbers: bool = True, scheme: str = "central",
                      seed: Any = 0) -> Any:
    """Per-sample finite-difference estimates of d/dθ E[f(θ, rng)], every partial.

    Args:
        f: ``f(theta, rng) -> scalar``, called on plain arrays (no transform).
        theta: the parameters (a number or an array of K entries).
        h: the step (> 0), the same for every parameter.
        n_samples: how many samples.
        common_random_numbers: when true, every evaluation of sample i draws from the same
            stream ``root.stream(i)``; when false, every evaluation draws from its own stream.
        scheme: ``"central"`` (2K evaluations per sample) or ``"forward"`` (K + 1).
        seed: an integer, or a generator whose streams are used.

    Returns:
        The n estimates, shape ``(n_samples, *theta.shape)``.
    """
    name = "finite_difference"
    n_samples = check_count(n_samples, name)
    if isinstance(h, bool) or not isinstance(h, int | float) or not math.isfinite(h) or h <= 0:
        raise ValueError(f"{name}: the step h must be a finite number > 0, got {h!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"{name}: unknown scheme {scheme!r}; use one of {SCHEMES}")
    theta = as_theta(theta, name)
    root = root_generator(seed)
    b = _backend.get_backend()
    xp = b.xp
    shape = shape_of(theta)
    k_params = math.prod(shape)
    flat = xp.reshape(theta, (k_params,))
    eye = xp.eye(k_params, dtype=flat.dtype)
    n_evals = 2 * k_params if scheme == "central" else k_params + 1

    def evaluate(point: Any, i: int, e: int) -> Any:
        key = i if common_random_numbers else i * n_evals + e
        out = f(xp.reshape(point, shape), root.stream(key))
        return b.asarray(unbatched_raw(_check_scalar(out, name), name, _READS_NUMBERS))

    samples = []
    for i in range(n_samples):
        partials = []
        if scheme == "forward":
            base = evaluate(flat, i, 0)
            for k in range(k_params):
                partials.append((evaluate(flat + h * eye[k, ...], i, 1 + k) - base) / h)
        else:
            for k in range(k_params):
                up = evaluate(flat + h * eye[k, ...], i, 2 * k)
                down = evaluate(flat - h * eye[k, ...], i, 2 * k + 1)
                partials.append((up - down) / (2.0 * h))
        samples.append(xp.reshape(xp.stack(partials), shape))
    return xp.stack(samples)
