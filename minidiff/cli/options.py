"""Command-line option types shared by the subcommands, built on :mod:`minidiff.validation`.

argparse calls an option's ``type`` on its text and prints an ``ArgumentTypeError``'s message
after the option's name: ``argument --seed: expected an integer seed ≥ 0, got -1``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..validation import parse_int

__all__ = ["integer_option", "integer_list_option"]


def integer_option(what: str, least: int) -> Callable[[str], int]:
    """An argparse type: an integer ≥ ``least``, refused as "expected {what} ≥ least, got …"."""
    def parse(text: str) -> int:
        try:
            return parse_int(text, least, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def integer_list_option(what: str, least: int, example: str) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers ≥ ``least`` (e.g. ``example``), returned
    sorted and without repeats."""
    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"give a comma-separated list such as {example}")
        if not all(p.lstrip("+-").isdigit() for p in parts):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers such as {example}, got {text!r}")
        try:
            return sorted({parse_int(p, least, what) for p in parts})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse
