"""A harness comparing gradient estimators: mean, standard error, bias z-score, spread, cost.

An *estimator* here is any callable ``estimator(n) -> samples`` returning n independent (or at
least uncorrelated) per-sample estimates, shape ``(n,)`` for one derivative or ``(n, K)`` for K.
For n samples g_1, ..., g_n with mean ḡ and standard deviation s (divisor n − 1):

    standard error  se = s / √n,        bias z-score  z = (ḡ − exact) / se.

Under the central limit theorem z is approximately N(0, 1) for an unbiased estimator, so
|z| > 3 is strong evidence of bias (and a zero-variance estimator gets z = 0 if it is exact to
rounding, ±inf otherwise). The cost is the wall-clock time of the call divided by n.

Adapters turn the other estimators into that shape:

* ``lambda n: score_function(f, θ, n, ...)`` and ``lambda n: finite_difference(f, θ, h, n)``;
* :func:`per_seed` ``(estimate)``: runs ``estimate(seed)`` for seeds 0, ..., n − 1;
* :func:`pathwise_samples` ``(f, θ)``: ``md.grad`` of ``f(θ, rng)`` on stream i, per sample i
  (reparameterised samplers, surrogates, straight-through, Gumbel-softmax, smoothed);
* :func:`triple_samples` ``(f, θ)``: stochastic triples, ``derivative_estimate`` of ``f(θ, rng)``
  on stream i, per sample i.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import backend as _backend
from ..batching import unbatched_raw
from ..core import Box, raw, shape_of, without_derivatives
from ..ops import stack
from ..transforms import grad, jacfwd
from .blackbox import as_theta, check_count, root_generator
from .triples import derivative_estimate

__all__ = ["EstimatorRow", "Comparison", "compare_estimators", "summarise", "per_seed",
           "pathwise_samples", "triple_samples"]

Number = float | tuple[float, ...]


@dataclass(frozen=True)
class EstimatorRow:
    """One estimator's summary. ``mean``, ``sd``, ``se`` and ``z`` are floats for a scalar
    derivative and tuples (one entry per component) for K derivatives; ``z`` is None without an
    exact value."""

    name: str
    n_samples: int
    mean: Number
    sd: Number
    se: Number
    z: Number | None
    seconds_per_sample: float


def _z(mean: float, se: float, exact: float) -> float:
    if se > 0:
        return (mean - exact) / se
    if math.isclose(mean, exact, rel_tol=1e-9, abs_tol=1e-12):
        return 0.0
    return math.copysign(math.inf, mean - exact)


def summarise(name: str, samples: Any, exact: Any = None,
              seconds: float = math.nan) -> EstimatorRow:
    """The row for ``samples`` (shape (n,) or (n, K), n ≥ 2); ``seconds`` is the total cost."""
    b = _backend.get_backend()
    xp = b.xp
    x = b.asarray(unbatched_raw(samples, "summarise", "the samples are reduced to one row "
                                "of statistics"))
    if not xp.isdtype(x.dtype, "real floating"):
        x = xp.astype(x, b.float_dtype)
    shape = shape_of(x)
    if len(shape) == 0 or shape[0] < 2:
        raise ValueError(f"compare_estimators: {name!r} gave samples of shape {shape}; need at "
                         f"least 2 samples along the first axis")
    n = shape[0]
    scalar = len(shape) == 1
    x = xp.reshape(x, (n, math.prod(shape[1:])))
    mean = xp.sum(x, axis=0) / n
    var = xp.sum((x - mean) ** 2, axis=0) / (n - 1)
    means = [float(v) for v in b.to_host(mean)]
    sds = [math.sqrt(max(float(v), 0.0)) for v in b.to_host(var)]
    ses = [s / math.sqrt(n) for s in sds]
    if exact is None:
        zs = None
    else:
        exact_values = unbatched_raw(exact, "summarise", "the exact value is compared with "
                                     "the samples' mean as numbers")
        exacts = [float(v) for v in b.to_host(xp.reshape(b.asarray(exact_values, dtype=x.dtype),
                                                         (-1,)))]
        if len(exacts) == 1:
            exacts = exacts * len(means)
        if len(exacts) != len(means):
            raise ValueError(f"compare_estimators: exact has {len(exacts)} entries but {name!r} "
                             f"estimates {len(means)} derivatives")
        zs = [_z(m, s, e) for m, s, e in zip(means, ses, exacts)]

    def pack(values: list[float] | None) -> Number | None:
        if values is None:
            return None
        return values[0] if scalar else tuple(values)

    return EstimatorRow(name, n, pack(means), pack(sds), pack(ses), pack(zs), seconds / n)


@dataclass
class Comparison:
    """The rows of :func:`compare_estimators`, in the order given; ``str()`` is the table."""

    rows: list[EstimatorRow]
    exact: Any = None

    def __iter__(self) -> Iterator[EstimatorRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | str) -> EstimatorRow:
        if isinstance(key, str):
            for row in self.rows:
                if row.name == key:
                    return row
            raise KeyError(key)
        return self.rows[key]

    def __str__(self) -> str:
        header = ["estimator", "n", "mean", "sd", "se", "z (bias)", "µs/sample"]
        lines = []
        for row in self.rows:
            parts = _components(row)
            for label, mean, sd, se, z in parts:
                lines.append([label, str(row.n_samples), _fmt(mean), _fmt(sd), _fmt(se),
                              "—" if z is None else f"{z:+.2f}",
                              _fmt(row.seconds_per_sample * 1e6)])
        widths = [max(len(r[c]) for r in [header, *lines]) for c in range(len(header))]
        out = []
        if self.exact is not None:
            out.append(f"exact: {_fmt_exact(self.exact)}")
        for r in [header, *lines]:
            cells = [r[0].ljust(widths[0])] + [r[c].rjust(widths[c]) for c in range(1, len(r))]
            out.append("  ".join(cells))
        return "\n".join(out)


def _components(row: EstimatorRow) -> list[tuple[str, float, float, float, float | None]]:
    if not isinstance(row.mean, tuple):
        return [(row.name, row.mean, row.sd, row.se, row.z)]
    zs = row.z if row.z is not None else [None] * len(row.mean)
    return [(f"{row.name}[{k}]", m, s, e, z)
            for k, (m, s, e, z) in enumerate(zip(row.mean, row.sd, row.se, zs))]


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-3:
        return f"{x:.3e}"
    if abs(x) >= 1000:
        return f"{x:.1f}"
    return f"{x:.4g}"


def _fmt_exact(exact: Any) -> str:
    if isinstance(exact, int | float):
        return f"{exact:g}"
    b = _backend.get_backend()
    return ", ".join(f"{float(v):g}" for v in b.to_host(b.xp.reshape(b.asarray(raw(exact)),
                                                                      (-1,))))


def compare_estimators(estimators: Mapping[str, Callable[[int], Any]], n_samples: int,
                       exact: Any = None, *, show: bool = False) -> Comparison:
    """Run each estimator for ``n_samples`` samples and summarise it (see the module notes).

    Args:
        estimators: name → ``callable(n) -> samples`` of shape (n,) or (n, K).
        n_samples: n ≥ 2.
        exact: the true derivative (a number, or K numbers), for the bias z-score.
        show: print the table as well.

    Returns:
        A :class:`Comparison`: its rows (mean, sd, se, z, seconds per sample), printable.
    """
    n_samples = check_count(n_samples, "compare_estimators", 2)
    rows = []
    for name, estimator in estimators.items():
        if not callable(estimator):
            raise TypeError(f"compare_estimators: {name!r} is not callable; give a function "
                            f"n -> samples")
        start = time.perf_counter()
        samples = _one_array(estimator(n_samples), f"compare_estimators: {name!r}")
        seconds = time.perf_counter() - start
        n_got = shape_of(samples)[0] if shape_of(samples) else 0
        if n_got != n_samples:
            raise ValueError(f"compare_estimators: {name!r} returned {n_got} samples, asked for "
                             f"{n_samples}")
        rows.append(summarise(name, samples, exact, seconds))
    result = Comparison(rows, exact)
    if show:
        print(result)
    return result


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------


def _one_array(x: Any, who: str, containers: tuple = (tuple, dict)) -> Any:
    """Refuse several outputs (a tuple or a dict) where one array of samples is expected:
    stacked, a tuple's outputs would read as components of one derivative."""
    if isinstance(x, containers):
        raise TypeError(f"{who} returned {type(x).__name__} (several outputs); an estimator "
                        f"gives one array of samples, shape (n,) or (n, K). Compare each output "
                        f"with its own estimator, or join them into one array (md.stack, "
                        f"md.concatenate) if they are components of one derivative")
    return x


def per_seed(estimate: Callable[[int], Any], first_seed: int = 0) -> Callable[[int], Any]:
    """``n -> stack([estimate(s) for s in first_seed, ..., first_seed + n − 1])``; each
    estimate is one array (several outputs are refused)."""

    def run(n: int) -> Any:
        b = _backend.get_backend()
        values = [without_derivatives(_one_array(estimate(s), "per_seed: the estimate",
                                                 (tuple, list, dict)))
                  for s in range(first_seed, first_seed + n)]
        # under vmap (an estimate batched by it) the stack keeps the batch axis leading
        return stack([v if isinstance(v, Box) else b.asarray(v) for v in values])

    return run


def pathwise_samples(f: Callable[[Any, Any], Any], theta: Any, *, seed: Any = 0,
                     mode: str = "reverse") -> Callable[[int], Any]:
    """Per-sample pathwise derivatives: sample i is ∇_θ f(θ, root.stream(i)), by ``grad``
    (``mode="reverse"``) or ``jacfwd`` (``"forward"``); ``f`` returns a scalar.

    Whatever estimator f's draws use (reparameterised, straight-through, Gumbel-softmax,
    smoothed) is the estimator measured."""
    if mode not in ("forward", "reverse"):
        raise ValueError(f"pathwise_samples: mode must be 'forward' or 'reverse', got {mode!r}")
    theta = as_theta(theta, "pathwise_samples")
    root = root_generator(seed)
    derivative = grad if mode == "reverse" else jacfwd

    def estimate(i: int) -> Any:
        return derivative(lambda t: f(t, root.stream(i)))(theta)

    return per_seed(estimate)


def triple_samples(f: Callable[[Any, Any], Any], theta: Any, *, seed: Any = 0,
                   **options: Any) -> Callable[[int], Any]:
    """Per-sample stochastic-triple estimates: sample i is
    ``derivative_estimate(lambda t: f(t, root.stream(i)), θ, seed=i, **options)`` (the program's
    draws from stream i, the pruning decisions from seed i; each sample unbiased)."""
    theta = as_theta(theta, "triple_samples")
    root = root_generator(seed)

    def estimate(i: int) -> Any:
        return derivative_estimate(lambda t: f(t, root.stream(i)), theta, seed=i, **options)

    return per_seed(estimate)
