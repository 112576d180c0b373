"""The Wengert list of a function, with its forward and reverse sweeps side by side.

A program that computes y = f(x) is, to an AD engine, a list of assignments, one per primitive:

    v_i = φ_i(v_j, v_k, ...)        (j, k < i; the first rows are the inputs x_1 ... x_n)

This is the *Wengert list*. Automatic differentiation attaches one more number to every row:

* forward mode, top to bottom, a *tangent* v̇_i = Σ_j ∂φ_i/∂v_j · v̇_j, seeded with ẋ;
  it travels alongside the primal and is forgotten with it, so nothing is kept;
* reverse mode, bottom to top, an *adjoint* v̄_j = Σ_i v̄_i · ∂φ_i/∂v_j, seeded with ȳ;
  the partials ∂φ_i/∂v_j need the primals, so the forward pass must keep them (the
  *residuals*) on the tape until the reverse sweep reaches row i.

:func:`wengert` computes all of these in one run. It opens a forward level (one tangent direction)
and inside it a reverse level, so every value recorded on the tape is a ``Dual`` carrying its
primal and tangent together. The tape lists exactly the primitives that ran: composite ops
(``mean``, ``tan``, ``stack``, ...) appear as the primitives they are made of. A backward pass
over that tape then gives every row's adjoint.

Each row also shows the rules applied to it (:mod:`minidiff.wengert_text`): ``v3 = v2 · v2``,
its tangent ``v̇3 = v̇2 · v2 + v̇2 · v2`` and its adjoint rule ``v̄2 += v̄3 · v2`` (twice, once per
factor). The sum over j above is the lesson of the reverse sweep: a value used k times gets k
contributions, and each row keeps them (:attr:`Row.contributions`, shown as
``v̄2 = 16 (v3) + 16 (v3) = 32``), so the adjoint column is their visible sum.

The bytes column counts the residuals a plain ``grad`` tape keeps for each row (the tangents
that ride along here are left out): the tape is a :class:`minidiff.memory.MeteredTape`, which
charges each buffer once, to the first row that keeps it.

A function returning a tuple or list of outputs is traced as is: each output is seeded with its
own cotangent and pulled back separately, and the adjoints are summed. By linearity that is the
single reverse sweep seeded with all the cotangents at once, ȳ = (ȳ_1, ..., ȳ_m).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import backend as _backend
from .batching import BatchingError, batch_levels
from .core import ShapeError, raw, shape_of
from .forward import Dual, ForwardEngine
from .memory import MeteredTape
from .reverse import Node, ReverseEngine, TapeValue
from .transforms import _as_input, _as_output
from .wengert_text import RuleText, bar, format_value, param_text, rule_texts, to_python
from .wengert_uses import Uses

__all__ = ["wengert", "WengertList", "Row"]


@dataclass(frozen=True)
class Row:
    """One assignment v_i = φ_i(...) of the Wengert list, with its derivatives.

    Attributes:
        index: position on the tape (inputs first).
        name: ``x1``, ``x2``, ... for inputs and ``v1``, ``v2``, ... for primitives.
        op: the primitive's name, or ``"input"``.
        args: one label per argument: a row name, or a constant (``"2"``, ``"const(3,)"``).
        params: the primitive's static parameters (``axis``, ``shape``, ...).
        shape: the shape of the value.
        primal: v_i, a backend array.
        tangent: v̇_i, the directional derivative along the seed ẋ (same shape as v_i).
        adjoint: v̄_i = ∂(ȳ·y)/∂v_i (same shape; zero where no path leads to an output).
        nbytes: bytes of the residuals the tape keeps for this row's VJP rule.
        kept: the buffers those residuals are, each once: row names (``x1`` for ``x1 * x1``,
            whose one kept buffer serves both factors' partials) or ``array(shape)`` for
            arrays that are no row's value.
        outputs: labels (``y1``, ...) of the outputs this row is.
        traced: for each argument, whether it is a row (else a constant, with no derivative).
        rule: the row's value, tangent and adjoint rules as text (:class:`RuleText`).
        contributions: the terms whose sum is the adjoint, one per use of this row in the
            reverse sweep, as ``(source, value)``: ``source`` is the row whose adjoint rule
            sent it (``v3`` twice for v2 in ``v3 = v2 · v2``) or ``y``/``y1``... for the seed.
    """

    index: int
    name: str
    op: str
    args: tuple[str, ...]
    params: dict
    shape: tuple[int, ...]
    primal: Any
    tangent: Any
    adjoint: Any
    nbytes: int
    kept: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    traced: tuple[bool, ...] = ()
    rule: RuleText | None = None
    contributions: tuple[tuple[str, Any], ...] = ()

    @property
    def definition(self) -> str:
        """``multiply(x1, x1)``, or ``input`` for an input row."""
        if self.op == "input":
            return "input"
        params = "".join(f", {k}={param_text(v)}" for k, v in self.params.items())
        return f"{self.op}({', '.join(self.args)}{params})"

    @property
    def accumulation(self) -> str:
        """How the adjoint adds up over the uses: ``v̄2 = 16 (v3) + 16 (v3) = 32``."""
        total = format_value(self.adjoint)
        if not self.contributions:
            return f"{bar(self.name)} = {total} (no use reaches an output)"
        terms = " + ".join(f"{format_value(v)} ({src})" for src, v in self.contributions)
        return f"{bar(self.name)} = {terms}" + (
            f" = {total}" if len(self.contributions) > 1 else "")

    def to_dict(self) -> dict[str, Any]:
        """The row with its arrays as (nested) Python lists or floats."""
        return {
            "index": self.index, "name": self.name, "op": self.op, "args": list(self.args),
            "params": {k: param_text(v) for k, v in self.params.items()},
            "shape": list(self.shape),
            "primal": to_python(self.primal), "tangent": to_python(self.tangent),
            "adjoint": to_python(self.adjoint), "nbytes": self.nbytes,
            "kept": list(self.kept), "outputs": list(self.outputs),
            "traced": list(self.traced),
            "rule": None if self.rule is None else {
                "value": self.rule.value, "tangent": self.rule.tangent,
                "adjoint": list(self.rule.adjoint)},
            "contributions": [[src, to_python(v)] for src, v in self.contributions],
        }


@dataclass
class WengertList:
    """The Wengert list of one call, with primal, tangent and adjoint columns.

    ``print(listing)`` shows the table; :meth:`table` shows one sweep; :meth:`to_dict` and
    :attr:`rows` are for programs.

    Attributes:
        rows: one :class:`Row` per input and per primitive, in the order they ran.
        inputs: the row index of each input.
        outputs: the row index of each output (None for an output that is a constant).
        tangents: the forward seed ẋ, one array per input.
        cotangents: the reverse seed ȳ, one array per output.
        returns_sequence: whether ``f`` returned a tuple/list of outputs (then ``cotangent``
            is a tuple/list too).
    """

    rows: list[Row]
    inputs: list[int]
    outputs: list[int | None]
    tangents: list[Any] = field(repr=False)
    cotangents: list[Any] = field(repr=False)
    returns_sequence: bool = False

    @property
    def n_primitives(self) -> int:
        return len(self.rows) - len(self.inputs)

    @property
    def tape_bytes(self) -> int:
        """Residual bytes the tape holds once the forward pass ends (its peak)."""
        return sum(r.nbytes for r in self.rows)

    def __getitem__(self, name: str) -> Row:
        """The row called ``name`` (``"x1"``, ``"v3"``)."""
        found = [row for row in self.rows if row.name == name]
        if found:
            return found[0]
        raise KeyError(f"no row named {name!r}; rows are {[r.name for r in self.rows]}")

    def table(self, sweep: str = "both") -> str:
        """An aligned table of the rows.

        ``sweep="forward"`` lists rows top to bottom with each row's value and tangent rule,
        primal and tangent, the order in which forward mode computes them; ``"reverse"`` lists
        them bottom to top, the order of the backward pass, with each row's adjoint rule (what
        it adds to its arguments' adjoints), its own adjoint as the sum of what its uses sent
        it, and the residuals the tape kept for it; ``"both"`` shows the values of both sweeps.
        """
        columns = {
            "forward": ["row", "value rule", "tangent rule", "primal", "tangent", "out"],
            "reverse": ["row", "adjoint rule", "adjoint = sum over uses", "tape keeps",
                        "tape bytes", "out"],
            "both": ["row", "value rule", "shape", "primal", "tangent", "adjoint",
                     "tape keeps", "tape bytes", "out"],
        }
        if sweep not in columns:
            raise ValueError(f"sweep must be one of {sorted(columns)}, got {sweep!r}")
        rows = self.rows[::-1] if sweep == "reverse" else self.rows
        cells = {
            "row": lambda r: r.name, "value rule": lambda r: r.rule.value,
            "tangent rule": lambda r: r.rule.tangent,
            "adjoint rule": lambda r: "; ".join(r.rule.adjoint),
            "adjoint = sum over uses": lambda r: r.accumulation,
            "shape": lambda r: str(r.shape), "primal": lambda r: format_value(r.primal),
            "tangent": lambda r: format_value(r.tangent),
            "adjoint": lambda r: format_value(r.adjoint), "tape bytes": lambda r: str(r.nbytes),
            "tape keeps": lambda r: ", ".join(r.kept), "out": lambda r: ", ".join(r.outputs),
        }
        header = columns[sweep]
        body = [[cells[c](r) for c in header] for r in rows]
        widths = [max(_width(line[i]) for line in [header, *body]) for i in range(len(header))]
        right = {"tape bytes"}

        def line(values: Sequence[str]) -> str:
            parts = [" " * (w - _width(v)) + v if c in right else v + " " * (w - _width(v))
                     for c, v, w in zip(header, values, widths)]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(header), rule, *(line(b) for b in body)])

    def summary(self) -> str:
        """One line: sizes, seeds and what the tape keeps."""
        seeds_in = ", ".join(format_value(t) for t in self.tangents)
        seeds_out = ", ".join(format_value(c) for c in self.cotangents)
        return (f"{len(self.inputs)} input(s), {len(self.outputs)} output(s), "
                f"{self.n_primitives} primitive(s); seeds: tangent ẋ = ({seeds_in}), "
                f"cotangent ȳ = ({seeds_out}); the tape keeps {self.tape_bytes} bytes")

    def __str__(self) -> str:
        return f"Wengert list: {self.summary()}\n{self.table('both')}"

    def to_dict(self) -> dict[str, Any]:
        """Everything in plain Python types (for JSON, notebooks, tests)."""
        return {
            "rows": [r.to_dict() for r in self.rows],
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "tangents": [to_python(t) for t in self.tangents],
            "cotangents": [to_python(c) for c in self.cotangents],
            "tape_bytes": self.tape_bytes,
            "returns_sequence": self.returns_sequence,
        }


def wengert(f: Callable[..., Any], *args: Any, tangents: Sequence[Any] | None = None,
            cotangent: Any = None) -> WengertList:
    """Run ``f(*args)`` and return its Wengert list with primal, tangent and adjoint columns.

    Args:
        f: a function of arrays written with minidiff ops; it may return an array or a
            tuple/list of arrays.
        *args: the inputs (arrays or Python floats); every one is differentiated.
        tangents: the forward seed ẋ, one per input with its shape (default: ones), so the
            tangent column is J·ẋ row by row.
        cotangent: the reverse seed ȳ with the output's shape, or a tuple/list of them for a
            tuple/list of outputs (default: ones), so input adjoints are Jᵀ·ȳ.

    Example: ``print(minidiff.wengert(lambda x: x * x * x, 2.0))``.
    """
    if not args:
        raise TypeError("wengert: give the function's inputs, e.g. wengert(f, 2.0)")
    if batch_levels():
        raise BatchingError("wengert: the list's rows hold one computation's values as numbers, "
                            "but under minidiff.vmap every value holds a whole batch; call "
                            "wengert outside vmap, on one element")
    inputs = [_as_input(a, i, "wengert") for i, a in enumerate(args)]
    seeds_in = _seeds(tangents, [shape_of(x) for x in inputs], "tangents")
    xp = _backend.get_backend().xp

    with ForwardEngine(1) as f_level, _ListingEngine(f_level) as engine:
        r_level = engine
        # each tangent of shape S becomes the (K=1, *S) batch the forward engine carries
        boxed = [engine.add_input(Dual(x, xp.reshape(t, (1, *shape_of(t))), f_level))
                 for x, t in zip(inputs, seeds_in)]
        result = f(*boxed)

    many = isinstance(result, tuple | list)
    outs = [_as_output(o) for o in (result if many else [result])]
    on_tape = [o.node.index if isinstance(o, TapeValue) and o.level is r_level else None
               for o in outs]
    out_shapes = [shape_of(o) for o in outs]
    if cotangent is not None and many != isinstance(cotangent, tuple | list):
        raise TypeError("wengert: give one cotangent per output (a tuple/list exactly when f "
                        "returns a tuple/list)")
    seeds_out = _seeds(None if cotangent is None else (cotangent if many else [cotangent]),
                       out_shapes, "cotangent")

    labels: dict[int, list[str]] = {}
    for k, index in enumerate(on_tape):
        if index is not None:
            labels.setdefault(index, []).append(f"y{k + 1}" if many else "y")

    # Reverse sweep(s): one per output on the same tape, adjoints summed (linearity). With
    # retain=True the backward pass keeps every row's cotangent: that is the adjoint column.
    # Each rule's output is also written down per argument (the contributions).
    adjoints: dict[int, Any] = {}
    uses = Uses(engine.tape, engine._names)
    with uses:
        for k, (out, index, seed) in enumerate(zip(outs, on_tape, seeds_out)):
            if index is None:
                continue
            uses.add(index, (bar(f"y{k + 1}" if many else "y"), -1), raw(seed))
            for i, g in enumerate(engine.tape.backward(out, seed, retain=True)):
                if g is not None:
                    adjoints[i] = raw(g) if i not in adjoints else adjoints[i] + raw(g)

    rows = [replace(rec, outputs=tuple(labels.get(rec.index, ())),
                    adjoint=adjoints.get(rec.index, xp.zeros_like(rec.primal)),
                    contributions=uses.of(rec.index))
            for rec in engine.records]
    return WengertList(rows=rows, inputs=list(range(len(inputs))), outputs=on_tape,
                       tangents=seeds_in, cotangents=seeds_out, returns_sequence=many)


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------


class _ListingEngine(ReverseEngine):
    """A reverse engine that also writes down each node's name, arguments and value.

    It records on a :class:`MeteredTape`, so each row's bytes are the tape's own charge. The
    values it records are ``Dual``s of the forward level around it; each node keeps only their
    primals, which is what a plain ``grad`` tape keeps. Nodes recorded on a sub-tape (the
    recomputations of checkpointing during the backward pass) are not rows.
    """

    def __init__(self, forward_level: Any) -> None:
        super().__init__(MeteredTape())
        self.forward_level = forward_level
        self.listing = self.tape
        self.records: list[Row] = []  # adjoints and output labels are filled in later
        self._names: dict[int, str] = {}       # node index -> row name
        self._by_id: dict[int, str] = {}       # id of a row's primal -> row name
        self._counts = [0, 0]                  # inputs and primitives named so far
        self._shapes: dict[int, tuple] = {}    # node index -> shape of its value

    def add_input(self, value: Any) -> TapeValue:
        box = self.tape.add_input(value, self.level)
        self._counts[0] += 1
        self._write(box.node, f"x{self._counts[0]}", (), value)
        return box

    def record(self, rule: Any, args: tuple | list, residuals: Any, out: Any,
               params: dict | None = None, needs: tuple | None = None) -> TapeValue:
        residuals = _primals_only(residuals, self.forward_level)
        box = super().record(rule, args, residuals, out, params, needs)
        if self.tape is self.listing:
            self._counts[1] += 1
            self._write(box.node, f"v{self._counts[1]}", tuple(self._label(a) for a in args),
                        out)
        return box

    def _write(self, node: Node, name: str, labels: tuple[str, ...], out: Any) -> None:
        self._names[node.index] = name
        primal = raw(out)
        ours = isinstance(out, Dual) and out.level is self.forward_level
        xp = _backend.get_backend().xp
        tangent = (xp.reshape(raw(out.tangent), shape_of(primal)) if ours
                   else xp.zeros_like(primal))
        self._by_id[id(primal)] = name  # records hold the primal, so the id stays unique
        # after naming: exp keeps its own output; a buffer kept for two partials is one buffer
        kept = tuple(dict(self._kept(node.residuals)).values())
        traced = tuple(p is not None for p in node.parents)
        shape = shape_of(primal)
        broadcast = tuple(t and self._shapes[p.index] != shape
                          for t, p in zip(traced, node.parents))
        self._shapes[node.index] = shape
        self.records.append(Row(index=node.index, name=name, op=node.name, args=labels,
                                params=dict(node.params), shape=shape,
                                primal=primal, tangent=tangent, adjoint=None,
                                nbytes=self.tape.nbytes_of(node), kept=kept, traced=traced,
                                rule=rule_texts(name, node.name, labels, traced,
                                                dict(node.params), broadcast)))

    def _kept(self, residuals: Any) -> list[tuple[int, str]]:
        """Each array among the residuals as (its id, a label): the row it is the value of, or
        ``array(shape)`` for one that is no row's value. Listed by id, a buffer kept twice (for
        both factors of ``x * x``) appears once, and two buffers of one shape twice."""
        if residuals is None or type(residuals) in (int, float, bool):
            return []
        if isinstance(residuals, tuple | list):
            return [pair for r in residuals for pair in self._kept(r)]
        if id(residuals) in self._by_id:
            return [(id(residuals), self._by_id[id(residuals)])]
        return ([(id(residuals), f"array{shape_of(residuals)}")]
                if hasattr(residuals, "dtype") else [])

    def _label(self, a: Any) -> str:
        if isinstance(a, TapeValue) and a.level is self.level:
            return self._names[a.node.index]
        value = raw(a)
        if isinstance(value, int | float):
            return f"{value:g}"
        if shape_of(value) == ():
            return f"{float(value):g}"
        return f"const{shape_of(value)}"


def _width(text: str) -> int:
    """Columns ``text`` takes: combining marks (the bar of v̄, the dot of v̇) take none."""
    return sum(not unicodedata.combining(c) for c in text)


def _primals_only(residuals: Any, level: Any) -> Any:
    """``residuals`` with each Dual of ``level`` replaced by its primal (tuples, lists and
    dicts, such as checkpointing's snapshot slots, rebuilt; anything else is left as it is)."""
    if isinstance(residuals, Dual) and residuals.level is level:
        return residuals.value
    if isinstance(residuals, tuple | list):
        return type(residuals)(_primals_only(r, level) for r in residuals)
    if isinstance(residuals, dict):
        return {k: _primals_only(r, level) for k, r in residuals.items()}
    return residuals


def _seeds(given: Sequence[Any] | None, shapes: list[tuple[int, ...]], what: str) -> list[Any]:
    """One seed per shape: ones by default, else the given values checked against ``shapes``."""
    b = _backend.get_backend()
    if given is None:
        return [b.xp.ones(s, dtype=b.float_dtype) for s in shapes]
    if not isinstance(given, tuple | list) or len(given) != len(shapes):
        raise ValueError(f"wengert: {what} needs {len(shapes)} value(s), one per "
                         f"{'input' if what == 'tangents' else 'output'}")
    seeds = []
    for i, (g, s) in enumerate(zip(given, shapes)):
        g = b.asarray(float(g)) if isinstance(g, int | float) else b.asarray(raw(g))
        if shape_of(g) != s:
            raise ShapeError(f"wengert: {what}[{i}] has shape {shape_of(g)}, but needs {s}")
        seeds.append(b.xp.astype(g, b.float_dtype))
    return seeds
