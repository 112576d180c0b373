"""How a Wengert list is written down: each row's rule in both sweeps, and its values.

A row ``v3 = multiply(v1, v2)`` carries three rules, all from the same partial derivatives
∂v3/∂v1 = v2 and ∂v3/∂v2 = v1:

    value     v3 = v1 · v2
    tangent   v̇3 = v̇1 · v2 + v̇2 · v1             (Σ_j ∂v3/∂v_j · v̇_j, top to bottom)
    adjoint   v̄1 += v̄3 · v2;  v̄2 += v̄3 · v1      (v̄_j += v̄3 · ∂v3/∂v_j, bottom to top)

The adjoint rule is written with ``+=`` because a value used twice receives one contribution
per use, and its adjoint is their sum: in ``v3 = v2 · v2`` both factors are v2, so
v̄2 += v̄3 · v2 runs twice. :func:`rule_texts` gives the three lines of one row from a table of
elementwise partials (and of hand-written rules for the shape and linear-algebra ops);
a primitive it does not know is written by name (``v̄1 += VJP of cumsum(v̄2)``). The texts teach:
they say which rule the engine applied, while the numbers in the columns are the engine's own.

Arguments that are constants (``2``, ``const(3,)``) get no tangent or adjoint term; an argument
whose shape differs from the row's (broadcasting) gets ``unbroadcast(...)``: its contributions are
summed over the broadcast axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import backend as _backend
from .core import raw

__all__ = ["RuleText", "rule_texts", "bar", "dot", "format_value", "param_text"]


def bar(name: str) -> str:
    """The adjoint's symbol: ``v3`` → ``v̄3`` (a combining macron after the letter)."""
    return name[0] + "\u0304" + name[1:]


def dot(name: str) -> str:
    """The tangent's symbol: ``v3`` → ``v̇3`` (a combining dot after the letter)."""
    return name[0] + "\u0307" + name[1:]


@dataclass(frozen=True)
class _Elementwise:
    """An elementwise op: its value, and each partial ∂out/∂arg as text (``{0}``, ``{1}`` are
    the arguments, ``{out}`` the value; ``"1"`` and ``"-1"`` are written as signs)."""

    value: str
    partials: tuple[str | None, ...]


@dataclass(frozen=True)
class _Linear:
    """An op written with its own tangent and adjoint templates (``{t0}`` is the tangent of
    argument 0, ``{g}`` the row's adjoint, ``{p}`` its static parameters as ``, axis=0``)."""

    value: str
    tangent: str
    adjoints: tuple[str | None, ...]


_RULES: dict[str, _Elementwise | _Linear] = {
    "add": _Elementwise("{0} + {1}", ("1", "1")),
    "subtract": _Elementwise("{0} − {1}", ("1", "-1")),
    "multiply": _Elementwise("{0} · {1}", ("{1}", "{0}")),
    "divide": _Elementwise("{0} / {1}", ("1/{1}", "(−{out}/{1})")),
    "negative": _Elementwise("−{0}", ("-1",)),
    "power": _Elementwise("{0}^{1}", ("{1}·{0}^({1}−1)", "log({0})·{out}")),
    "maximum": _Elementwise("max({0}, {1})", ("[{0} > {1}]", "[{1} > {0}]")),
    "exp": _Elementwise("exp({0})", ("{out}",)),
    "log": _Elementwise("log({0})", ("1/{0}",)),
    "log1p": _Elementwise("log(1 + {0})", ("1/(1 + {0})",)),
    "expm1": _Elementwise("exp({0}) − 1", ("({out} + 1)",)),
    "sqrt": _Elementwise("√{0}", ("1/(2·{out})",)),
    "sin": _Elementwise("sin({0})", ("cos({0})",)),
    "cos": _Elementwise("cos({0})", ("(−sin({0}))",)),
    "tanh": _Elementwise("tanh({0})", ("(1 − {out}²)",)),
    "sigmoid": _Elementwise("σ({0})", ("{out}·(1 − {out})",)),
    "softplus": _Elementwise("log(1 + exp({0}))", ("σ({0})",)),
    "abs": _Elementwise("|{0}|", ("sign({0})",)),
    "erf": _Elementwise("erf({0})", ("2/√π·exp(−{0}²)",)),
    "gammaln": _Elementwise("log Γ({0})", ("ψ({0})",)),
    "where": _Linear("where({0}, {1}, {2})", "where({0}, {t1}, {t2})",
                     (None, "where({0}, {g}, 0)", "where({0}, 0, {g})")),
    "sum": _Linear("sum({0}{p})", "sum({t0}{p})", ("broadcast {g} to the shape of {0}",)),
    "reshape": _Linear("reshape({0}{p})", "reshape({t0}{p})", ("reshape({g}) to {0}'s shape",)),
    "broadcast_to": _Linear("broadcast_to({0}{p})", "broadcast_to({t0}{p})",
                            ("sum {g} over the broadcast axes",)),
    "transpose": _Linear("transpose({0}{p})", "transpose({t0}{p})",
                         ("transpose({g}) back",)),
    "getitem": _Linear("{0}{index}", "{t0}{index}", ("scatter-add {g} into {0}{index}",)),
    "matmul": _Linear("{0} @ {1}", "{t0} @ {1} + {0} @ {t1}", ("{g} @ {1}ᵀ", "{0}ᵀ @ {g}")),
    "cumsum": _Linear("cumsum({0}{p})", "cumsum({t0}{p})", ("reversed cumsum of {g}",)),
}


@dataclass(frozen=True)
class RuleText:
    """The three rules of one row, as text.

    Attributes:
        value: ``v3 = v1 · v2``.
        tangent: ``v̇3 = v̇1 · v2 + v̇2 · v1`` (empty for an input or a row no tangent reaches).
        adjoint: one line per traced argument, ``v̄1 += v̄3 · v2`` (empty for an input).
    """

    value: str
    tangent: str
    adjoint: tuple[str, ...]


def _times(factor: str, partial: str) -> str:
    """``factor · partial`` with the signs of ±1 folded in."""
    if partial == "1":
        return factor
    if partial == "-1":
        return f"−{factor}"
    return f"{factor} · {partial}"


def rule_texts(name: str, op: str, args: Sequence[str], traced: Sequence[bool],
               params: dict, broadcast: Sequence[bool] = ()) -> RuleText:
    """The value, tangent and adjoint rules of row ``name = op(*args)``.

    ``args`` are the arguments' labels (row names or constants), ``traced`` says which are rows
    (only those get tangent and adjoint terms), and ``broadcast`` which were broadcast to the
    row's shape (their adjoint terms are unbroadcast).
    """
    if op == "input":
        return RuleText(f"{name} = input", "", ())
    broadcast = tuple(broadcast) or (False,) * len(args)
    rule = _RULES.get(op)
    shown = dict(params)
    index = param_text(shown.pop("index")) if op == "getitem" and "index" in shown else ""
    p = "".join(f", {k}={param_text(v)}" for k, v in shown.items())
    fill = {"out": name, "g": bar(name), "p": p, "index": index,
            **{f"t{i}": dot(a) for i, a in enumerate(args)}}
    if rule is None or (len(rule.partials if isinstance(rule, _Elementwise) else rule.adjoints)
                        != len(args)):
        value = f"{op}({', '.join(args)}{p})"
        terms = [f"{dot(a)}" for a, t in zip(args, traced) if t]
        tangent = f"{dot(name)} = JVP of {op}({', '.join(terms)})" if terms else ""
        adjoint = tuple(f"{bar(a)} += VJP of {op}({bar(name)})"
                        for a, t in zip(args, traced) if t)
        return RuleText(f"{name} = {value}", tangent, adjoint)
    value = rule.value.format(*args, **fill)
    if isinstance(rule, _Elementwise):
        partials = [q if q is None else q.format(*args, **fill) for q in rule.partials]
        terms = [_times(dot(a), q) for a, t, q in zip(args, traced, partials)
                 if t and q is not None]
        tangent = f"{dot(name)} = {' + '.join(terms).replace('+ −', '− ')}" if terms else ""
        pulls = [(a, _times(bar(name), q), b)
                 for a, t, q, b in zip(args, traced, partials, broadcast) if t and q is not None]
    else:
        tangent_terms = [a for a, t in zip(args, traced) if t]
        tangent = (f"{dot(name)} = {rule.tangent.format(*args, **fill)}"
                   if tangent_terms else "")
        for a, t in zip(args, traced):  # an untraced argument's tangent is 0
            if not t:
                tangent = tangent.replace(dot(a), "0")
        pulls = [(a, q.format(*args, **fill), False)  # these rules handle shapes themselves
                 for a, t, q in zip(args, traced, rule.adjoints) if t and q is not None]
    adjoint = tuple(f"{bar(a)} += {f'unbroadcast({term})' if b else term}"
                    for a, term, b in pulls)
    return RuleText(f"{name} = {value}", tangent, adjoint)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def to_python(x: Any) -> Any:
    """A backend array as (nested) Python lists or a float."""
    return _backend.get_backend().to_host(raw(x)).tolist()


def format_value(x: Any, max_size: int = 6) -> str:
    """A value in a table cell: up to ``max_size`` entries in full (``[1, 2, 3]``), larger
    arrays summarised by their range and mean (``0..0.9 mean 0.45``)."""
    host = _backend.get_backend().to_host(raw(x))
    if host.size <= max_size:
        return _nested(host.tolist())
    flat = host.reshape(-1)
    return f"{float(flat.min()):.4g}..{float(flat.max()):.4g} mean {float(flat.mean()):.4g}"


def param_text(v: Any) -> str:
    """A static parameter as text; an index (``getitem``'s) as ``[1:, ..., [0, 0]]``; a named
    object (a jitted call's program) by its type and name."""
    items = getattr(v, "items", None)
    if not isinstance(items, tuple):
        name = getattr(v, "name", None)
        if isinstance(name, str) and not isinstance(v, type):
            return f"<{type(v).__name__} {name}>"
        return repr(v)

    def one(item: Any) -> str:
        if isinstance(item, slice):
            parts = ["" if p is None else str(p) for p in (item.start, item.stop, item.step)]
            return ":".join(parts[:2] if item.step is None else parts)
        if item is Ellipsis:
            return "..."
        return format_value(item) if hasattr(item, "dtype") else repr(item)

    return "[" + ", ".join(one(i) for i in items) + "]"


def _nested(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_nested(e) for e in v) + "]"
    return f"{v:.6g}"
