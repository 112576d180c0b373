"""minidiff.validation: every settings check refuses what it should, with a message that names
the function, the setting, what is allowed and what it got, and passes what it should."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidiff import validation as v


@pytest.mark.parametrize("bad", [1.0, 2.5, "3", True, None, [1]])
def test_a_count_of_the_wrong_type_is_both_a_type_and_a_value_error(bad):
    with pytest.raises(v.SettingTypeError, match=r"f: n must be an integer ≥ 1, got") as info:
        v.check_positive_int("f", "n", bad)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_counts_below_the_least_value_are_value_errors_and_numpy_integers_pass():
    with pytest.raises(ValueError, match=r"f: n must be an integer ≥ 2 \(two at least\), got 1"):
        v.check_int("f", "n", 1, 2, why="two at least")
    assert v.check_int("f", "n", np.int64(3), 2) == 3 and type(v.check_int("f", "n", 3)) is int
    assert v.check_positive_int("f", "n", None, none_ok=True) is None
    with pytest.raises(ValueError, match=r"must be None or an integer ≥ 1, got 0"):
        v.check_positive_int("f", "n", 0, none_ok=True)


@pytest.mark.parametrize("check, value, message", [
    (v.check_positive, 0.0, r"f: x must be a finite number in \(0, inf\), got 0.0"),
    (v.check_positive, math.inf, r"in \(0, inf\), got inf"),
    (v.check_probability, 1.5, r"f: x must be a finite number in \[0, 1\], got 1.5"),
    (v.check_finite, math.nan, r"f: x must be a finite number, got nan"),
])
def test_reals_out_of_their_interval_are_refused(check, value, message):
    with pytest.raises(ValueError, match=message):
        check("f", "x", value)


def test_reals_pass_as_floats_and_non_numbers_are_type_errors():
    assert v.check_probability("f", "p", 1) == 1.0 and v.check_positive("f", "x", 2) == 2.0
    with pytest.raises(v.SettingTypeError, match="f: x must be a real number, got '1'"):
        v.check_finite("f", "x", "1")
    with pytest.raises(ValueError, match=r"f: mode must be one of \('a', 'b'\), got 'c'"):
        v.check_choice("f", "mode", "c", ("a", "b"))


def test_parse_int_reads_text_and_names_what_it_expected():
    assert v.parse_int("12", 1) == 12
    with pytest.raises(ValueError, match=r"expected an integer seed ≥ 0, got -1"):
        v.parse_int("-1", 0, "an integer seed")
    with pytest.raises(ValueError, match=r"expected an integer ≥ 1, got '2.5'"):
        v.parse_int("2.5", 1)
