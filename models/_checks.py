"""The argument checks every model shares, so a wrong input gets the same clear error anywhere.

Each check names the model (``where``, e.g. ``"sir.simulate"``), the argument, what is allowed
and what it got, and raises before any simulation runs:

* :func:`unpack`: ``params`` as one scalar per name of the model's ``PARAM_NAMES``;
* :func:`check_number`: a scalar that must be finite and lie in an interval (a parameter, or a
  setting such as a step length); traced values are checked by their primal value;
* ``check_count``: an integer ≥ a least value (agents, steps), the settings check
  :func:`minidiff.validation.check_int`;
* :func:`check_estimator`: a name from :data:`minidiff.random.ESTIMATORS`;
* :func:`generator`: the ``rng`` of the model contract, an int seed, a
  :class:`minidiff.random.Generator` or None (fresh entropy from the operating system), turned
  into the run's own child generator.

Wrong types raise ``TypeError``, wrong values ``ValueError``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import minidiff as md
from minidiff.core import Box, raw, shape_of
from minidiff.random import ESTIMATORS, Generator, default_rng
from minidiff.validation import check_int as check_count
from minidiff.validation import interval

__all__ = ["unpack", "check_number", "check_count", "check_estimator", "generator", "interval"]


def unpack(where: str, params: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    """``params`` split into one scalar per name (traced pieces stay traced).

    Accepts a sequence of len(names) scalars, an array of shape (len(names),), or (for a model
    with one parameter) a scalar."""
    k = len(names)
    expected = f"{k} value{'s' if k > 1 else ''} {names}"
    if isinstance(params, list | tuple):
        if len(params) != k:
            raise ValueError(f"{where}: params must hold {expected}, got {len(params)}")
        values = tuple(md.asarray(p) for p in params)
        shapes = [shape_of(v) for v in values]
        if any(s != () for s in shapes):
            raise ValueError(f"{where}: each of params {names} must be a scalar, got shapes "
                             f"{shapes}")
        return values
    arr = md.asarray(params)
    shape = shape_of(arr)
    if shape == () and k == 1:
        return (arr,)
    if shape != (k,):
        raise ValueError(f"{where}: params must hold {expected}, as a sequence or an array of "
                         f"shape ({k},), got shape {shape}")
    return tuple(md.getitem(arr, i) for i in range(k))


def check_number(where: str, name: str, x: Any, low: float = -math.inf, high: float = math.inf,
                 *, open_low: bool = False, open_high: bool = False,
                 traced: bool = True) -> float | None:
    """Refuse ``x`` unless it is a finite scalar in the interval; return its value as a float.

    ``name`` may carry the meaning, e.g. ``"eta (market depth)"``. ``traced=False`` refuses
    traced values (fixed settings that are not differentiated). A value batched by
    ``md.vmap`` is checked element by element, and None is returned (there is no one value).
    """
    if isinstance(x, Box) and not traced:
        raise TypeError(f"{where}: {name} is a fixed setting, not a parameter; it cannot be "
                        f"traced (differentiate with respect to params instead)")
    v = raw(x)
    if isinstance(v, bool | str | bytes) or not (isinstance(v, int | float)
                                                or hasattr(v, "shape")):
        raise TypeError(f"{where}: {name} must be a number, got {x!r}")
    if shape_of(x) != ():
        raise ValueError(f"{where}: {name} must be a scalar, got shape {shape_of(x)}")
    if shape_of(v) != ():  # batched by md.vmap: one scalar per batch element, each checked
        for element in md.to_host(v).reshape(-1).tolist():
            check_number(where, name, element, low, high, open_low=open_low,
                         open_high=open_high)
        return None
    try:
        value = float(v) if isinstance(v, int | float) else float(md.to_host(v))
    except TypeError:
        raise TypeError(f"{where}: {name} must be a number, got {x!r}") from None
    allowed = interval(low, high, open_low, open_high)
    if not math.isfinite(value):
        bounded = f" and lie in {allowed}" if allowed != "(-inf, inf)" else ""
        raise ValueError(f"{where}: {name} must be finite{bounded}, got {value!r}")
    if value < low or value > high or (open_low and value == low) or (
            open_high and value == high):
        raise ValueError(f"{where}: {name} must lie in {allowed}, got {value!r}")
    return value


def check_estimator(where: str, estimator: Any, *, optional: bool = False) -> None:
    """A name from ``minidiff.random.ESTIMATORS`` (or None when ``optional``)."""
    if optional and estimator is None:
        return
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        allowed = ("None or " if optional else "") + f"one of {ESTIMATORS}"
        raise ValueError(f"{where}: unknown estimator {estimator!r}; use {allowed}")


def generator(where: str, rng: Any) -> Generator:
    """The run's generator: a new child (``Generator.child()``) of ``rng``, which is an int
    seed ≥ 0, a Generator, or None (a fresh seed from the operating system, as
    ``numpy.random.default_rng(None)``).

    A model keys all its draws under this child, once per ``simulate``, so one run's draws
    never depend on θ (common random numbers within a run, replayable checkpointed steps),
    while reusing a Generator gives every run fresh draws, as NumPy's does. The same int seed
    gives the same run every time; for common random numbers between runs at different θ,
    pass the same seed, or the same keyed stream of a Generator, e.g. ``rng.stream("crn")``
    (each such stream starts afresh, so each hands out the same first child)."""
    if rng is None or isinstance(rng, Generator):
        return default_rng(rng).child()
    allowed = "an integer seed ≥ 0, a minidiff.random.Generator, or None (fresh entropy)"
    try:
        seed = None if isinstance(rng, bool) else operator.index(rng)
    except TypeError:
        seed = None
    if seed is None:
        raise TypeError(f"{where}: rng must be {allowed}, got {rng!r} ({type(rng).__name__})")
    if seed < 0:
        raise ValueError(f"{where}: rng must be {allowed}, got the negative seed {seed}")
    return default_rng(seed).child()
