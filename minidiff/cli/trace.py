"""``minidiff trace``: the Wengert list of a tutorial example, once per sweep.

``minidiff trace --example NAME`` prints the Wengert list of one of the tutorial's examples
twice, once per sweep, and says which mode of AD is cheaper for it and why:

* ``square3``: ``x = x*x`` three times, y = x⁸ (1 input, 1 output);
* ``f1``: two squarings, then ``[x1, x1, x1]`` (1 input, 3 outputs);
* ``f2``: ``(x1·x2·x3)²`` (3 inputs, 1 output).

The rule it illustrates: the Jacobian of f: Rᵐ → Rⁿ takes m forward sweeps (one per input
direction) or n reverse sweeps (one per output), and reverse mode must keep residuals on its
tape for the backward sweep, while forward mode keeps nothing.

``minidiff trace --list`` shows the examples; ``--x`` evaluates at other inputs. The lists come
from :func:`minidiff.wengert`.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..wengert import WengertList, wengert

__all__ = ["EXAMPLES", "DESCRIPTION", "configure_parser", "command"]


# ---------------------------------------------------------------------------------------------
# The tutorial's examples
# ---------------------------------------------------------------------------------------------


def square3(x: Any) -> Any:
    """``x = x*x`` three times: y = x⁸, dy/dx = 8x⁷."""
    for _ in range(3):
        x = x * x
    return x


def f1(x1: Any) -> list[Any]:
    """Two squarings, returned three times: y = (x⁴, x⁴, x⁴), dy/dx = (4x³, 4x³, 4x³)."""
    x1 = x1 * x1
    x1 = x1 * x1
    return [x1, x1, x1]


def f2(x1: Any, x2: Any, x3: Any) -> Any:
    """y = (x1·x2·x3)², ∇y = 2·x1·x2·x3 · (x2·x3, x1·x3, x1·x2)."""
    return (x1 * x2 * x3) ** 2


@dataclass(frozen=True)
class Example:
    """A function from the tutorial, its default inputs and what it is meant to show."""

    name: str
    title: str
    fn: Callable[..., Any]
    x: tuple[float, ...]
    note: str


EXAMPLES: dict[str, Example] = {
    e.name: e
    for e in [
        Example("square3", "x = x*x three times, so y = x⁸", square3, (2.0,),
                "As an expression tree y = ((x·x)·(x·x))·((x·x)·(x·x)) has 8 leaves and 7 "
                "products; the Wengert list is a DAG that reuses each value: 3 rows."),
        Example("f1", "f1(x1): two squarings, then return [x1, x1, x1]", f1, (2.0,),
                "One input fans out to three outputs: a tall 3×1 Jacobian."),
        Example("f2", "f2(x1, x2, x3) = (x1·x2·x3)²", f2, (1.0, 2.0, 3.0),
                "Three inputs meet in one output: a wide 1×3 Jacobian, a gradient."),
    ]
}


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _unit(k: int, n: int) -> list[float]:
    return [1.0 if i == k else 0.0 for i in range(n)]


_NBSP = "\u00a0"  # keeps "ẋ = (1, 0, 0)" on one line when a paragraph is wrapped


def _seed_text(symbol: str, seed: Sequence[float]) -> str:
    return f"{symbol} = ({', '.join(f'{v:g}' for v in seed)})".replace(" ", _NBSP)


def _wrap(text: str) -> str:
    return textwrap.fill(text, 96).replace(_NBSP, " ")


def _matrix(rows: list[list[float]]) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{v:g}" for v in r) + "]" for r in rows) + "]"


def _sweeps(example: Example,
            x: Sequence[float]) -> tuple[WengertList, WengertList, list, list]:
    """Every sweep each mode needs for the full Jacobian (the examples are scalar in, scalar
    out): m forward sweeps seeded with unit tangents, n reverse sweeps with unit cotangents.

    Returns the first list of each mode and the Jacobian as each mode assembles it.
    """
    m = len(x)
    forward = [wengert(example.fn, *x, tangents=_unit(k, m)) for k in range(m)]
    n = len(forward[0].outputs)

    many = forward[0].returns_sequence
    reverse = [wengert(example.fn, *x, cotangent=_unit(k, n) if many else 1.0) for k in range(n)]

    def out_tangents(t: WengertList) -> list[float]:
        return [float(t.rows[i].tangent) if i is not None else 0.0 for i in t.outputs]

    columns = [out_tangents(t) for t in forward]                       # J[:, k] per sweep
    jac_forward = [[columns[k][j] for k in range(m)] for j in range(n)]
    jac_reverse = [[float(t.rows[i].adjoint) for i in t.inputs] for t in reverse]  # J[j, :]
    return forward[0], reverse[0], jac_forward, jac_reverse


def _plural(k: int, word: str) -> str:
    return f"{k} {word}{'s' * (k != 1)}"


def _verdict(m: int, n: int, tape_bytes: int, name: str) -> str:
    """Which mode is cheaper for a function of m inputs and n outputs, and why."""
    sweeps = (f"{name} has {_plural(m, 'input')} and {_plural(n, 'output')}, so its full "
              f"Jacobian takes {_plural(m, 'forward sweep')} (one per input) or "
              f"{_plural(n, 'reverse sweep')} (one per output).")
    memory = (f"its tape keeps {tape_bytes} bytes of residuals from the forward pass until "
              f"the backward sweep reads them, while forward mode keeps nothing (each "
              f"tangent is dropped with its value).")
    if m < n:
        return f"Cheaper: forward mode. {sweeps} Reverse mode also costs memory: {memory}"
    if m > n:
        return (f"Cheaper: reverse mode. {sweeps} It saves {_plural(m - n, 'sweep')}, "
                f"paid for in memory: {memory} The saving grows with the number of inputs, "
                f"the memory with the length of the program.")
    return (f"Cheaper: forward mode, on memory. {sweeps} With equal sweeps memory decides, "
            f"and reverse mode needs more: {memory}")


def _report(example: Example, x: Sequence[float]) -> str:
    first_fwd, first_rev, jac_fwd, jac_rev = _sweeps(example, x)
    m, n = len(x), len(first_fwd.outputs)
    args = ", ".join(f"{v:g}" for v in x)
    return "\n".join([
        f"{example.name}: {example.title}, at x = ({args})",
        _wrap(example.note),
        "",
        _wrap(f"Forward sweep 1 of {m}: rows top to bottom, each tangent computed together "
              f"with its primal. Seed {_seed_text('ẋ', _unit(0, m))}."),
        first_fwd.table("forward"),
        "",
        _wrap(f"Reverse sweep 1 of {n}: rows bottom to top, each adjoint pulled back from the "
              f"outputs. Seed {_seed_text('ȳ', _unit(0, n))}. It reads the residuals the "
              f"tape kept during the forward pass: {first_rev.tape_bytes} bytes in all."),
        first_rev.table("reverse"),
        "",
        f"Jacobian ({n} output{'s' * (n != 1)} × {m} input{'s' * (m != 1)}):",
        f"  forward mode, {_plural(m, 'sweep')}, one column each: {_matrix(jac_fwd)}",
        f"  reverse mode, {_plural(n, 'sweep')}, one row each:    {_matrix(jac_rev)}",
        "",
        _wrap(_verdict(m, n, first_rev.tape_bytes, example.name)),
    ])


def _list_examples() -> str:
    width = max(len(name) for name in EXAMPLES)
    lines = ["Examples (minidiff trace --example NAME [--x VALUE ...]):"]
    for e in EXAMPLES.values():
        x = ", ".join(f"{v:g}" for v in e.x)
        lines.append(f"  {e.name.ljust(width)}  {e.title}  (default x = {x})")
    return "\n".join(lines)


DESCRIPTION = (
    "Print the Wengert list of one of the tutorial's examples, its forward sweep (each row's "
    "value and tangent rule, primal and tangent) and its reverse sweep (each row's adjoint "
    "rule, its adjoint as the sum over its uses, and the tape's bytes), and say which mode is "
    "cheaper and why.")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The options of ``minidiff trace``."""
    parser.epilog = _list_examples()
    parser.add_argument("--example", choices=list(EXAMPLES), metavar="NAME",
                        help=f"one of: {', '.join(EXAMPLES)}")
    parser.add_argument("--list", action="store_true", help="list the examples")
    parser.add_argument("--x", nargs="+", type=float, metavar="VALUE",
                        help="input values instead of the example's defaults")


def command(args: argparse.Namespace, parser: argparse.ArgumentParser,
            emit: Callable[[str], None] = print) -> int:
    """Run ``minidiff trace``: list the examples, or report on one."""
    if args.list:
        emit(_list_examples())
        return 0
    if args.example is None:
        parser.error("give --example NAME (or --list to see the examples)")
    example = EXAMPLES[args.example]
    x = example.x if args.x is None else tuple(args.x)
    if len(x) != len(example.x):
        parser.error(f"--x: {example.name} takes {len(example.x)} input value(s), "
                     f"got {len(x)}")
    emit(_report(example, x))
    return 0
