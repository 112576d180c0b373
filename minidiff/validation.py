"""Checks of settings: the counts, sizes, probabilities and rates that configure a run.

Every public function that takes a setting checks it at the call with one of these, so a bad
one fails there, in one line that names the function (``where``), the setting (``name``), what
is allowed and what it got, e.g. ``calibrate: n_samples must be an integer ≥ 1, got 0``.

=========================  ========================================  =======================
check                      accepts                                   returns
=========================  ========================================  =======================
``check_int``              an integer ≥ ``least`` (not a bool)       ``int``
``check_positive_int``     an integer ≥ 1                            ``int``
``check_real``             a finite real in an interval              ``float``
``check_positive``         a finite real > 0                         ``float``
``check_probability``      a real in [0, 1]                          ``float``
``check_finite``           any finite real                           ``float``
``check_choice``           one of a tuple of names                   the name
``parse_int``              the text of an integer ≥ ``least``        ``int``
=========================  ========================================  =======================

A value of the wrong type raises :class:`SettingTypeError`, which is both a ``TypeError`` and a
``ValueError`` (as NumPy's ``AxisError`` is both a ``ValueError`` and an ``IndexError``), so
code that catches either keeps working; a value of the right type outside what is allowed
raises ``ValueError``. Settings are plain Python numbers (or NumPy scalars), never traced
values: a model's differentiable parameters are checked by the models' own checks.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["SettingTypeError", "check_int", "check_positive_int", "check_real",
           "check_positive", "check_probability", "check_finite", "check_choice",
           "parse_int", "interval"]


class SettingTypeError(TypeError, ValueError):
    """A setting of the wrong type (a float where an integer belongs, a string, a bool)."""


def interval(low: float, high: float, open_low: bool = False, open_high: bool = False) -> str:
    """The interval in the usual notation, e.g. ``[0, inf)``; infinite ends are open."""
    left = "(" if open_low or low == -math.inf else "["
    right = ")" if open_high or high == math.inf else "]"
    return f"{left}{low:g}, {high:g}{right}"


def check_int(where: str, name: str, value: Any, least: int = 0, *, none_ok: bool = False,
              why: str = "") -> int | None:
    """``value`` as an int, refused unless it is an integer ≥ ``least``.

    Bools, floats (even 2.0) and strings are refused: a count given as 2.5 or "3" is a
    mistake, not something to round. ``none_ok`` lets None through (a setting with a default
    chosen later); ``why`` is appended to the message (e.g. why the least value is what it
    is)."""
    if value is None and none_ok:
        return None
    allowed = ("None or " if none_ok else "") + f"an integer ≥ {least}"
    reason = f" ({why})" if why else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingTypeError(f"{where}: {name} must be {allowed}{reason}, got {value!r} "
                               f"({type(value).__name__})")
    if value < least:
        raise ValueError(f"{where}: {name} must be {allowed}{reason}, got {value!r}")
    return int(value)


def check_positive_int(where: str, name: str, value: Any, *, none_ok: bool = False) -> int:
    """``value`` as an int ≥ 1 (see :func:`check_int`)."""
    return check_int(where, name, value, 1, none_ok=none_ok)


def check_real(where: str, name: str, value: Any, low: float = -math.inf,
               high: float = math.inf, *, open_low: bool = False,
               open_high: bool = False) -> float:
    """``value`` as a float, refused unless it is a finite real number in the interval from
    ``low`` to ``high`` (closed unless ``open_low``/``open_high``). NaN and ±∞ are refused
    whatever the interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingTypeError(f"{where}: {name} must be a real number, got {value!r} "
                               f"({type(value).__name__})")
    v = float(value)
    allowed = interval(low, high, open_low, open_high)
    if not math.isfinite(v) or v < low or v > high or (open_low and v == low) or (
            open_high and v == high):
        where_to = f" in {allowed}" if allowed != "(-inf, inf)" else ""
        raise ValueError(f"{where}: {name} must be a finite number{where_to}, got {value!r}")
    return v


def check_positive(where: str, name: str, value: Any) -> float:
    """``value`` as a float > 0 and finite."""
    return check_real(where, name, value, 0.0, open_low=True)


def check_probability(where: str, name: str, value: Any) -> float:
    """``value`` as a float in [0, 1]."""
    return check_real(where, name, value, 0.0, 1.0)


def check_finite(where: str, name: str, value: Any) -> float:
    """``value`` as a finite float."""
    return check_real(where, name, value)


def check_choice(where: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` unchanged if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{where}: {name} must be one of {choices}, got {value!r}")
    return value


def parse_int(text: str, least: int, what: str = "an integer") -> int:
    """The integer written in ``text``, refused unless it is ≥ ``least``: for command-line
    options. The message reads "expected {what} ≥ {least}, got ...", which argparse prefixes
    with the option's name; raise it as ``argparse.ArgumentTypeError`` there."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected {what} ≥ {least}, got {text!r}") from None
    if value < least:
        raise ValueError(f"expected {what} ≥ {least}, got {value}")
    return value
