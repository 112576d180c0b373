"""Reverse mode: a tape (Wengert list) and an iterative backward pass.

During the forward pass every primitive appends one :class:`Node` to the :class:`Tape`: which
rule ran, which earlier nodes fed it, and the *residuals* its VJP rule will need (for ``exp``,
only its output; for ``add``, nothing but shapes). The nodes are in order of creation, which is
a topological order: a node's parents always come before it.

The backward pass walks the nodes in reverse order, pulling the output's cotangent ū = ∂L/∂u
back through each node's rule. For a node u = f(x_1, ..., x_n) that is the VJP

    x̄_i += ū · ∂f/∂x_i          (shape of x_i; the rule undoes any broadcasting),

summed over every node that used x_i, so that when the walk reaches x_i its cotangent is
complete. Each node's residuals are freed as soon as its rule has run, and the walk is a plain
loop, so a chain of 100,000 operations needs no recursion.

Memory is the price of reverse mode: residuals accumulate for the whole forward pass. The tape
itself counts nothing; :class:`minidiff.memory.MeteredTape` is a tape that counts those bytes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .backend import get_backend
from .core import Box, Engine, Level, ModeError, Primitive, bind
from .ops import add

__all__ = ["Node", "Tape", "TapeValue", "ReverseEngine", "copy_array", "is_mutable_array",
           "same_values"]

_FREED = object()  # what a node's residuals become once the backward pass has used them


class Node:
    """One entry of the Wengert list.

    Attributes:
        index: position on the tape.
        rule: what pulls cotangents back through this node: a :class:`Primitive`, or any object
            with a ``name`` and ``vjp(g, residuals, needs, **params)`` (checkpointing records
            one that re-runs a segment); None for an input.
        parents: for each argument, the node it came from, or None for a constant.
        residuals: what the VJP rule needs (freed after the backward pass uses it).
        params: the rule's static parameters (axis, shape, ...).
        needs: for each argument, whether it was traced (a parent exists): what the VJP rule
            is asked to differentiate.
        cotangent: during a backward pass, the sum of the cotangents its uses have sent so far
            (None before the first). It lives on the node, so a pass over a sub-tape that
            recorded uses of this node (a checkpointed segment re-run during the backward pass
            of the tape this node is on) adds its terms here like any other use.
    """

    __slots__ = ("index", "rule", "parents", "residuals", "params", "needs", "cotangent")

    def __init__(self, index: int, rule: Any, parents: tuple, residuals: Any, params: dict,
                 needs: tuple | None = None) -> None:
        self.index = index
        self.rule = rule
        self.parents = parents
        self.residuals = residuals
        self.params = params
        self.needs = tuple(p is not None for p in parents) if needs is None else needs
        self.cotangent = None

    @property
    def name(self) -> str:
        return self.rule.name if self.rule is not None else "input"


class TapeValue(Box):
    """A value recorded on a tape: its primal and the node that produced it."""

    __slots__ = ("node",)

    def __init__(self, value: Any, node: Node, level: Level) -> None:
        self.value = value
        self.node = node
        self.level = level

    def __repr__(self) -> str:
        return f"TapeValue(value={self.value!r}, node={self.node.index})"


class Tape:
    """The Wengert list of one reverse-mode level: its nodes, and the backward pass over them.

    A subclass may watch what is recorded and freed by overriding :meth:`record` and
    :meth:`free` (the metered tape counts residual bytes that way).
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._kept: dict[int, tuple[Any, Any]] = {}  # id of a constant -> (weak ref, copy)

    def __len__(self) -> int:
        return len(self.nodes)

    def add_input(self, value: Any, level: Level) -> TapeValue:
        """Record an input (a node with no rule) and box ``value`` with it."""
        node = Node(len(self.nodes), None, (), None, {}, ())
        self.nodes.append(node)
        return TapeValue(value, node, level)

    def record(self, rule: Any, parents: tuple, residuals: Any, params: dict,
               needs: tuple | None = None) -> Node:
        """Append the node of one rule applied to ``parents`` (None for constants)."""
        node = Node(len(self.nodes), rule, parents, residuals, params, needs)
        self.nodes.append(node)
        return node

    def keep(self, x: Any) -> Any:
        """The value of ``x`` now: a copy of a raw writable array (one per array per tape while
        its values stay the same, for arrays too large to copy at every use), anything else
        unchanged.

        A node's residuals are read by the backward pass, later; a NumPy array the function
        closes over (or the caller passed in) may be updated in place by then. The tape keeps
        copies of such arrays, so the backward pass reads what the forward pass read. An array
        kept before is copied again only if its values have changed since.
        """
        if not is_mutable_array(x):
            return x
        if x.size <= _SMALL:  # a copy costs less than the comparison that could save it
            return copy_array(x)
        held = self._kept.get(id(x))
        if held is None or held[0]() is not x or not same_values(held[1], x):
            copy = copy_array(x)
            try:  # a weak reference: the tape must not keep the original alive as well
                held = self._kept[id(x)] = (weakref.ref(x), copy)
            except TypeError:  # an array type without weak references: no memo
                return copy
        return held[1]

    def keep_constants(self, residuals: Any, constants: Sequence[Any]) -> Any:
        """``residuals`` with each of ``constants`` it holds (at depth 3 at most, in tuples
        and lists) replaced by :meth:`keep`'s copy."""
        return _replace(residuals, {id(c): c for c in constants}, self.keep, 3)

    def free(self, node: Node) -> bool:
        """Drop a node's residuals; True if it still held them."""
        if node.residuals is _FREED:
            return False
        node.residuals = _FREED
        node.params = {}
        return True

    def release(self) -> None:
        """Free every node's residuals (when no backward pass will read them)."""
        for node in self.nodes:
            self.free(node)

    def backward(self, output: TapeValue, seed: Any, *, retain: bool = False) -> list[Any]:
        """Pull ``seed`` (the cotangent of ``output``) back to every node: see
        :meth:`backward_from`."""
        return self.backward_from([(output, seed)], retain=retain)

    def backward_from(self, seeds: Sequence[tuple[TapeValue, Any]], *,
                      retain: bool = False) -> list[Any]:
        """Pull the cotangents of several outputs, ``seeds = [(output, cotangent), ...]``, back
        to every node in one sweep.

        Returns a list with each node's accumulated cotangent (None where no path leads from
        that node to an output). With ``retain=False`` residuals are freed as they are used
        (and so are the cotangents of nodes already passed), so the tape can be walked only
        once; with ``retain=True`` every node's cotangent is kept in the list. Parents recorded
        on another tape (values a sub-tape's segment captured) receive their cotangents on
        their nodes, for the sweep of their own tape.
        """
        nodes = self.nodes
        last = -1
        try:
            for output, g in seeds:
                node = output.node
                node.cotangent = g if node.cotangent is None else add(node.cotangent, g)
                last = max(last, node.index)
            self._sweep(last, retain)
            return [node.cotangent for node in nodes]
        finally:
            for node in nodes:
                node.cotangent = None

    def _sweep(self, last: int, retain: bool) -> None:
        """x̄_i += VJP(ū) for each node u from ``last`` down to the first."""
        nodes = self.nodes
        if not retain:  # nodes recorded after the output cannot reach it
            for node in nodes[last + 1:]:
                self.free(node)
        for index in range(last, -1, -1):
            node = nodes[index]
            g = node.cotangent
            if g is None or node.rule is None:
                if not retain:  # no path to the output: its residuals will never be read
                    self.free(node)
                continue
            if node.residuals is _FREED:
                raise RuntimeError(
                    "this tape's residuals were freed by an earlier backward pass; "
                    "run the function again (or use vjp, which keeps them) to differentiate twice"
                )
            grads = node.rule.vjp(g, node.residuals, node.needs, **node.params)
            for parent, gi in zip(node.parents, grads, strict=True):
                if parent is None or gi is None:
                    continue
                previous = parent.cotangent
                parent.cotangent = gi if previous is None else add(previous, gi)
            if not retain:
                self.free(node)
                node.cotangent = None


class _Output:
    """The rule of the node of one output of a primitive with several results: its cotangent
    (summed over its uses) goes to slot ``j`` of the call's node, whose rule then gets one
    cotangent per output (None for those that got none)."""

    __slots__ = ("name", "j", "m")

    def __init__(self, name: str, j: int, m: int) -> None:
        self.name, self.j, self.m = f"{name}[{j}]", j, m

    def vjp(self, g: Any, call: Node, needs: tuple) -> tuple:
        gs = call.cotangent
        if gs is None:
            gs = call.cotangent = [None] * self.m
        gs[self.j] = g
        return (None,)  # placed, not added: the call's node is its parent only by name


_IMMUTABLE = (float, int, bool, type(None))
_SMALL = 4096  # elements: arrays up to this size are copied each time, larger ones once


def same_values(a: Any, b: Any) -> bool:
    """Equal shapes, dtypes and values (NaN equal to NaN) of two raw arrays."""
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return False
    xp = get_backend().xp
    equal = a == b
    if bool(xp.all(equal)):  # the common case, in two passes
        return True
    if not xp.isdtype(a.dtype, "real floating"):
        return False
    return bool(xp.all(xp.logical_or(equal, xp.logical_and(xp.isnan(a), xp.isnan(b)))))


def copy_array(x: Any) -> Any:
    """A copy of a raw array: its own ``copy()`` (NumPy, CuPy), else the standard's
    ``asarray(x, copy=True)`` (array_api_strict has no method)."""
    own = getattr(x, "copy", None)
    return own() if own is not None else get_backend().xp.asarray(x, copy=True)


def is_mutable_array(x: Any) -> bool:
    """True for a raw array of the current backend that can be updated in place (not a box, a
    Python number or a read-only NumPy array)."""
    if isinstance(x, Box) or type(x) in _IMMUTABLE or not get_backend().is_array(x):
        return False
    return getattr(getattr(x, "flags", None), "writeable", True)


def _replace(x: Any, targets: dict[int, Any], keep: Callable[[Any], Any], depth: int) -> Any:
    if id(x) in targets and targets[id(x)] is x:
        return keep(x)
    if depth and type(x) in (tuple, list):
        items = [_replace(v, targets, keep, depth - 1) for v in x]
        if any(a is not b for a, b in zip(items, x)):
            return type(x)(items)
    return x


class _OnlyOutput:
    """The rule of the one node of a call with a single result, for a rule that takes a list
    of cotangents."""

    __slots__ = ("rule", "name")

    def __init__(self, rule: Any) -> None:
        self.rule, self.name = rule, rule.name

    def vjp(self, g: Any, residuals: Any, needs: tuple, **params: Any) -> Any:
        return self.rule.vjp([g], residuals, needs, **params)


class ReverseEngine(Engine):
    """Processes primitives at one reverse-mode level by recording them on a tape.

    ``tape`` is where the nodes go (a fresh :class:`Tape` by default; a metered one to count
    bytes).
    """

    def __init__(self, tape: Tape | None = None) -> None:
        self.tape = Tape() if tape is None else tape

    def process(self, primitive: Primitive, args: tuple, params: dict) -> Any:
        """Compute ``primitive`` on the primals of ``args`` and record one node for it.

        The value and the residuals come from the primitive's ``value_and_save`` if it has
        one (a jitted call runs one program for both), else from binding it on the primals
        and asking its ``save``. A primitive with several results records one node for the
        call and one per output that carries a derivative (see :class:`_Output`).
        """
        if primitive.vjp is None:
            raise ModeError(
                f"{primitive.name} has no VJP rule, so reverse mode (grad, vjp, jacrev) "
                f"cannot differentiate it; give it one with .defvjp, or use forward mode"
            )
        primals, needs = [], []
        constants = None
        for a in args:
            ours = isinstance(a, TapeValue) and a.level is self
            primals.append(a.value if ours else a)
            needs.append(ours)
            if not ours and type(a) not in _IMMUTABLE and not isinstance(a, Box):
                constants = [a] if constants is None else [*constants, a]
        needs = tuple(needs)
        if params:  # an index array in the parameters, read again by the VJP: as it is now
            params = {k: v.frozen(self.tape.keep) if hasattr(v, "frozen") else v
                      for k, v in params.items()}
        joint = primitive.value_and_save
        if joint is None:
            out = bind(primitive, *primals, **params)
            residuals = primitive.save(primals, out, needs, **params)
            linked = None
        else:
            out, residuals, linked = joint(primals, needs, **params)
        if constants:
            residuals = self.tape.keep_constants(residuals, constants)
        if primitive.multiple_results:
            return self.record_results(primitive, args, residuals, out, params, needs, linked)
        return self.record(primitive, args, residuals, out, params, needs)

    def record(self, rule: Any, args: tuple | list, residuals: Any, out: Any,
               params: dict | None = None, needs: tuple | None = None) -> TapeValue:
        """Put one node for ``rule`` applied to ``args`` on the tape and box ``out`` with it.

        ``args`` may mix values boxed at this level (they become the node's parents) and
        constants. ``process`` records primitives this way; checkpointing records its own
        nodes, whose rule re-runs a segment instead of applying a formula.
        """
        parents = tuple(a.node if isinstance(a, TapeValue) and a.level is self else None
                        for a in args)
        node = self.tape.record(rule, parents, residuals, {} if params is None else params,
                                needs)
        return TapeValue(out, node, self)

    def record_results(self, rule: Any, args: tuple | list, residuals: Any, outs: Sequence,
                       params: dict | None = None, needs: tuple | None = None,
                       linked: Sequence[int] | None = None) -> tuple:
        """Record a rule with several results: one node for the call, one per output in
        ``linked`` (default: all), each boxing its output (a single output: one node).
        ``linked`` empty records nothing (no output depends on a differentiated argument).
        Returns the outputs."""
        outs = list(outs)
        linked = range(len(outs)) if linked is None else linked
        if not linked:
            return tuple(outs)
        if len(outs) == 1:  # one output: one node, whose rule gets its cotangent in a list
            outs[0] = self.record(_OnlyOutput(rule), args, residuals, outs[0], params, needs)
            return tuple(outs)
        # the call's node has no value of its own: a 0-d zero stands in for it
        call = self.record(rule, args, residuals, get_backend().xp.zeros(()), params, needs)
        for j in linked:  # the call is each output's parent (in the listing), sent nothing
            outs[j] = self.record(_Output(rule.name, j, len(outs)), (call,), call.node,
                                  outs[j], {}, (True,))
        return tuple(outs)
