"""Per-op overhead of minidiff over raw NumPy, in plain, forward and reverse mode.

For each op and each size (0-d scalars, 1e5-element arrays) this times one call of

* ``numpy``:  the op on raw NumPy arrays;
* ``primal``: the minidiff op on the same raw arrays (dispatch only, nothing traced);
* ``jvp``:    ``md.jvp(f, args, ones)``, one forward pass carrying one tangent per argument;
* ``vjp``:    ``out, pull = md.vjp(f, *args); pull(ones)``, the forward pass recording a tape
              and the backward sweep (what ``grad`` does, without needing a scalar output);

and prints each as microseconds per call and as a ratio to ``numpy``. Every argument of a row is
differentiated. Each time is the minimum (or, with ``--stat median``, the median) over
``--repeat`` batches of calls, a batch being long enough to last ``--min-time`` seconds.

Shapes: "scalar" means 0-d arrays, except that ``matmul`` (a matrix-vector product) and the
indexing rows need an axis and use a (1, 1) matrix and (1,) vectors (the slice row then takes
``x[:1]``). "array" means 1e5 elements: vectors of ``--size`` elements, ``x[idx]`` with
``size / 2`` random integer indices, and for ``matmul`` a square matrix of about ``--size``
elements times a vector.

Two tables per size: one op per transform call (so the transform's own set-up is included),
and the marginal cost of one more op inside a program of ``--chain`` ops, ``acc = acc +
op(args)`` (the same program in NumPy), which is what a long simulation pays per op.

Large arrays: with glibc's default settings, ops that free several 800 kB arrays at once pay
page faults on the next allocations, and that, not the arithmetic, can dominate the jvp and vjp
columns. The allocator is therefore tuned by default (see ``bench/_common.py``), for NumPy and
minidiff alike; ``--default-malloc`` shows the untuned numbers. Run both.

Run: ``python bench/overhead.py [--repeat 5] [--min-time 0.02] [--size 100000] [--default-malloc]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import add_malloc_option, malloc_from, print_header

import minidiff as md

Op = tuple[str, Callable[..., Any], Callable[..., Any], Callable[[str, int, Any], tuple]]


def _shape(x: Any) -> tuple[int, ...]:
    """The shape of a raw or traced array."""
    return np.shape(md.stop_gradient(x))


def _vectors(k: int, shape: tuple[int, ...], rng: Any) -> tuple:
    """``k`` positive random arrays (positive so that ``log`` is defined)."""
    return tuple(rng.uniform(0.5, 2.0, size=shape) for _ in range(k))


def _make_ops(size: int, rng: Any) -> list[Op]:
    """(name, minidiff function, NumPy function, argument maker) for each benchmarked op.

    The argument maker returns the differentiated arguments for a regime ("scalar" or "array");
    constants (the matrix, the index array) are captured by the functions.
    """
    side = max(1, math.isqrt(size))
    matrices = {"scalar": rng.standard_normal((1, 1)), "array": rng.standard_normal((side, side))}
    index = {"scalar": np.zeros(1, dtype=np.intp),
             "array": rng.integers(0, size, size=size // 2)}

    def one(regime: str, n: int, rng: Any) -> tuple:
        return _vectors(1, () if regime == "scalar" else (n,), rng)

    def two(regime: str, n: int, rng: Any) -> tuple:
        return _vectors(2, () if regime == "scalar" else (n,), rng)

    def vec(regime: str, n: int, rng: Any) -> tuple:
        return _vectors(1, (1,) if regime == "scalar" else (n,), rng)

    def matvec_arg(regime: str, n: int, rng: Any) -> tuple:
        return _vectors(1, (matrices[regime].shape[1],), rng)

    def where_args(regime: str, n: int, rng: Any) -> tuple:
        x, y = _vectors(2, () if regime == "scalar" else (n,), rng)
        return x - 1.25, y  # about half of x is positive

    def np_sigmoid(x: Any) -> Any:
        return 1.0 / (1.0 + np.exp(-x))

    # matmul and the index rows look their constant up by the argument's size, so one function
    # serves both regimes
    def a_for(x: Any) -> Any:
        return matrices["scalar" if _shape(x) == (1,) else "array"]

    def idx_for(x: Any) -> Any:
        return index["scalar" if _shape(x) == (1,) else "array"]

    return [
        ("add", md.add, np.add, two),
        ("multiply", md.multiply, np.multiply, two),
        ("exp", md.exp, np.exp, one),
        ("log", md.log, np.log, one),
        ("sin", md.sin, np.sin, one),
        ("tanh", md.tanh, np.tanh, one),
        ("sigmoid", md.sigmoid, np_sigmoid, one),
        ("sum", md.sum, np.sum, one),
        ("matmul (A @ x)", lambda x: md.matmul(a_for(x), x), lambda x: a_for(x) @ x,
         matvec_arg),
        ("x[1:] (slice)", lambda x: x[1:] if _shape(x)[0] > 1 else x[:1],
         lambda x: x[1:] if x.shape[0] > 1 else x[:1], vec),
        ("x[idx] (int array)", lambda x: md.getitem(x, idx_for(x)), lambda x: x[idx_for(x)],
         vec),
        ("where(x > 0, x, y)", lambda x, y: md.where(x > 0, x, y),
         lambda x, y: np.where(x > 0, x, y), where_args),
    ]


def _time_per_call(call: Callable[[], Any], repeat: int, min_time: float,
                   stat: str) -> float:
    """Seconds per call: ``stat`` over ``repeat`` batches, each lasting at least ``min_time``."""
    number = 1
    while True:  # calibrate the batch length
        start = time.perf_counter()
        for _ in range(number):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))
    samples = [elapsed / number]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return min(samples) if stat == "min" else statistics.median(samples)


def _repeated(fn: Callable[..., Any], m: int, add: Callable[[Any, Any], Any]) -> Callable:
    """``fn`` applied ``m`` times to the same arguments, the results summed: one program of
    ``m`` ops and ``m - 1`` adds, every op on the path to the output."""
    if m == 1:
        return fn

    def program(*args: Any) -> Any:
        acc = fn(*args)
        for _ in range(m - 1):
            acc = add(acc, fn(*args))
        return acc

    return program


def _calls(md_fn: Callable[..., Any], np_fn: Callable[..., Any], args: tuple,
           m: int) -> dict[str, Callable[[], Any]]:
    """The four timed calls, each running ``m`` repetitions of the op (see ``_repeated``)."""
    md_fn, np_fn = _repeated(md_fn, m, md.add), _repeated(np_fn, m, np.add)
    ones = tuple(np.ones_like(a) for a in args)
    out_ones = np.ones_like(np.asarray(np_fn(*args)))

    def numpy_call() -> Any:
        return np_fn(*args)

    def primal_call() -> Any:
        return md_fn(*args)

    def jvp_call() -> Any:
        return md.jvp(md_fn, args, ones)

    def vjp_call() -> Any:
        _, pull = md.vjp(md_fn, *args)
        return pull(out_ones)

    return {"numpy": numpy_call, "primal": primal_call, "jvp": jvp_call, "vjp": vjp_call}


def _check(md_fn: Callable[..., Any], np_fn: Callable[..., Any], args: tuple) -> None:
    """The minidiff op must compute what the NumPy op computes (else the timing is moot)."""
    got, want = np.asarray(md_fn(*args)), np.asarray(np_fn(*args))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=0.0):
        raise AssertionError("minidiff and NumPy disagree; fix the benchmark")


def _print_table(title: str, rows: list[tuple[str, dict[str, float]]]) -> None:
    print(f"\n== {title} ==")
    header = (f"{'op':<20} {'numpy us':>10} {'primal us':>10} {'x':>6} {'jvp us':>10} "
              f"{'x':>6} {'vjp us':>10} {'x':>6}")
    print(header)
    print("-" * len(header))
    for name, times in rows:
        base = times["numpy"]
        cells = [f"{base * 1e6:>10.2f}"]
        for mode in ("primal", "jvp", "vjp"):
            ratio = times[mode] / base if base > 0 else float("nan")
            cells.append(f"{times[mode] * 1e6:>10.2f} {ratio:>6.1f}")
        print(f"{name:<20} " + " ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="batches per measurement")
    parser.add_argument("--min-time", type=float, default=0.02,
                        help="seconds each batch lasts at least")
    parser.add_argument("--size", type=int, default=100_000, help="elements of the array case")
    parser.add_argument("--stat", choices=("min", "median"), default="min",
                        help="statistic over batches")
    parser.add_argument("--chain", type=int, default=16,
                        help="ops per program in the marginal-cost table (>= 2)")
    parser.add_argument("--seed", type=int, default=0)
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    if args.chain < 2:
        parser.error("--chain must be at least 2")
    malloc_note = malloc_from(args)

    rng = md.get_backend().make_rng(args.seed)
    ops = _make_ops(args.size, rng)
    started = time.perf_counter()
    print_header(malloc_note)
    print(f"time per call, {args.stat} of {args.repeat} batches of >= {args.min_time}s; "
          f"ratio = time / numpy time; every argument differentiated")
    modes = ("numpy", "primal", "jvp", "vjp")
    for regime in ("scalar", "array"):
        label = "0-d scalars" if regime == "scalar" else f"{args.size:.0e}-element arrays"
        single, marginal = [], []
        for name, md_fn, np_fn, make_args in ops:
            fn_args = make_args(regime, args.size, rng)
            _check(md_fn, np_fn, fn_args)
            one = {mode: _time_per_call(call, args.repeat, args.min_time, args.stat)
                   for mode, call in _calls(md_fn, np_fn, fn_args, 1).items()}
            many = {mode: _time_per_call(call, args.repeat, args.min_time, args.stat)
                    for mode, call in _calls(md_fn, np_fn, fn_args, args.chain).items()}
            single.append((name, one))
            marginal.append((name, {mode: max(many[mode] - one[mode], 0.0) / (args.chain - 1)
                                    for mode in modes}))
        _print_table(f"{label}: one op per call (each transform call runs one op)", single)
        _print_table(f"{label}: marginal cost of one (op + add) inside a program of "
                     f"{args.chain} (t_{args.chain} - t_1) / {args.chain - 1}", marginal)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
