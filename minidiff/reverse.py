"""Reverse mode: a tape (Wengert list) and an iterative backward pass.

During the forward pass every primitive appends one :class:`Node` to the :class:`Tape`: which
primitive ran, which earlier nodes fed it, and the *residuals* its VJP rule will need (for
``exp``, only its output; for ``add``, nothing but shapes). The backward pass walks the nodes
in reverse order of creation, which is a topological order, pulling the output's cotangent
ū = ∂L/∂u back through each rule,

    x̄_i += ū · ∂f/∂x_i     (the VJP of node u = f(x_1, ..., x_n)),

and frees each node's residuals as soon as its rule has run. The walk is a plain loop, so a
chain of 100,000 operations needs no recursion.

Memory is the price of reverse mode: residuals accumulate for the whole forward pass. The tape
counts them, in bytes, now and at peak, by primitive.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .core import Box, Level, ModeError, Primitive, bind, residual_buffers

__all__ = ["Node", "Tape", "TapeValue", "ReverseEngine"]

_FREED = object()  # what a node's residuals become once the backward pass has used them


class Node:
    """One entry of the Wengert list.

    Attributes:
        index: position on the tape.
        primitive: the primitive that produced this node (None for an input).
        parents: for each argument, the node it came from, or None for a constant.
        residuals: what the VJP rule needs (freed after the backward pass uses it).
        params: the primitive's static parameters (axis, shape, ...).
        nbytes: bytes this node added to the tape's account (buffers already kept by an
            earlier node are not charged again).
        buffers: keys of the buffers its residuals keep alive.
        needs: for each argument, whether it was traced (a parent exists): what the VJP rule
            is asked to differentiate.
    """

    __slots__ = ("index", "primitive", "parents", "residuals", "params", "nbytes", "buffers",
                 "needs")

    def __init__(self, index: int, primitive: Primitive | None, parents: tuple,
                 residuals: Any, params: dict, nbytes: int, needs: tuple | None = None) -> None:
        self.index = index
        self.primitive = primitive
        self.parents = parents
        self.residuals = residuals
        self.params = params
        self.nbytes = nbytes
        self.buffers: tuple[int, ...] = ()
        self.needs = tuple(p is not None for p in parents) if needs is None else needs

    @property
    def name(self) -> str:
        return self.primitive.name if self.primitive is not None else "input"


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
    """The Wengert list of one reverse-mode level, with its memory accounting."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.bytes_now = 0
        self.bytes_peak = 0
        self.bytes_by_primitive: dict[str, int] = defaultdict(int)
        self.peak_by_primitive: dict[str, int] = defaultdict(int)
        self.on_record: Callable[[Node, Any], None] | None = None
        self._held: dict[int, list] = {}  # buffer key -> [holders, nbytes, charged primitive]
        self._cotangents: list[Any] | None = None  # set during a backward pass
        self._on_foreign: Callable[[Node, Any], None] | None = None

    def __len__(self) -> int:
        return len(self.nodes)

    def add_input(self, value: Any, level: Level) -> TapeValue:
        node = Node(len(self.nodes), None, (), None, {}, 0)
        self.nodes.append(node)
        if self.on_record is not None:
            self.on_record(node, value)
        return TapeValue(value, node, level)

    def record(self, primitive: Primitive, parents: tuple, residuals: Any,
               params: dict, out: Any, needs: tuple | None = None) -> Node:
        name = primitive.name
        charged = 0
        buffers = residual_buffers(residuals)
        for key, nbytes in buffers.items():
            entry = self._held.get(key)
            if entry is None:
                self._held[key] = [1, nbytes, name]
                charged += nbytes
            else:
                entry[0] += 1
        node = Node(len(self.nodes), primitive, parents, residuals, params, charged, needs)
        node.buffers = tuple(buffers)
        self.nodes.append(node)
        if charged:
            self.bytes_now += charged
            self.bytes_peak = max(self.bytes_peak, self.bytes_now)
            self.bytes_by_primitive[name] += charged
            self.peak_by_primitive[name] = max(self.peak_by_primitive[name],
                                               self.bytes_by_primitive[name])
        if self.on_record is not None:
            self.on_record(node, out)
        return node

    def free(self, node: Node) -> None:
        """Drop a node's residuals; a buffer leaves the account when its last holder goes."""
        if node.residuals is _FREED:
            return
        node.residuals = _FREED
        node.params = {}
        for key in node.buffers:
            entry = self._held[key]
            entry[0] -= 1
            if entry[0] == 0:
                del self._held[key]
                self.bytes_now -= entry[1]
                self.bytes_by_primitive[entry[2]] -= entry[1]

    def release(self) -> None:
        """Free every node's residuals (when no backward pass will read them)."""
        for node in self.nodes:
            self.free(node)

    def owns(self, node: Node) -> bool:
        """True when ``node`` is on this tape (not on an enclosing or a sub-tape)."""
        return node.index < len(self.nodes) and self.nodes[node.index] is node

    def accumulate(self, node: Node, g: Any) -> None:
        """Add ``g`` to the cotangent of ``node`` during a backward pass over this tape.

        Checkpointing re-records segments on sub-tapes; their backward passes deliver the
        cotangents of values captured from this tape (parameters closed over) here.
        """
        if not self.owns(node):
            if self._on_foreign is None:
                raise RuntimeError("a cotangent arrived for a value recorded on another tape")
            self._on_foreign(node, g)
            return
        if self._cotangents is None:
            raise RuntimeError("Tape.accumulate is only valid during a backward pass")
        from .ops import add

        previous = self._cotangents[node.index]
        self._cotangents[node.index] = g if previous is None else add(previous, g)

    def backward(self, output: TapeValue, seed: Any, *, retain: bool = False,
                 on_adjoint: Callable[[Node, Any], None] | None = None,
                 on_foreign: Callable[[Node, Any], None] | None = None) -> list[Any]:
        """Pull ``seed`` (the cotangent of ``output``) back to every node.

        Returns a list with each node's accumulated cotangent (None where no path leads from
        that node to the output). With ``retain=False`` residuals are freed as they are used,
        so the tape can be walked only once. Cotangents for parents recorded on another tape
        (a sub-tape's captured values) go to ``on_foreign(node, g)``.
        """
        cotangents: list[Any] = [None] * len(self.nodes)
        cotangents[output.node.index] = seed
        saved = self._cotangents, self._on_foreign
        self._cotangents, self._on_foreign = cotangents, on_foreign
        try:
            self._sweep(output, cotangents, retain, on_adjoint)
        finally:
            self._cotangents, self._on_foreign = saved
        return cotangents

    def _sweep(self, output: TapeValue, cotangents: list[Any], retain: bool,
               on_adjoint: Callable[[Node, Any], None] | None) -> None:
        from .ops import add

        nodes = self.nodes
        if not retain:  # nodes recorded after the output cannot reach it
            for node in nodes[output.node.index + 1:]:
                self.free(node)
        for index in range(output.node.index, -1, -1):
            g = cotangents[index]
            node = nodes[index]
            if g is None or node.primitive is None:
                if g is not None and on_adjoint is not None:
                    on_adjoint(node, g)
                if not retain:  # no path to the output: its residuals will never be read
                    self.free(node)
                continue
            if on_adjoint is not None:
                on_adjoint(node, g)
            if node.residuals is _FREED:
                raise RuntimeError(
                    "this tape's residuals were freed by an earlier backward pass; "
                    "run the function again (or use vjp, which keeps them) to differentiate twice"
                )
            grads = node.primitive.vjp(g, node.residuals, node.needs, **node.params)
            for parent, gi in zip(node.parents, grads, strict=True):
                if parent is None or gi is None:
                    continue
                if parent.index >= len(nodes) or nodes[parent.index] is not parent:
                    self.accumulate(parent, gi)  # captured from an enclosing tape
                    continue
                previous = cotangents[parent.index]
                cotangents[parent.index] = gi if previous is None else add(previous, gi)
            if not retain:
                self.free(node)
                cotangents[index] = None
        return cotangents

    def memory(self) -> dict[str, Any]:
        """Bytes of residuals held now and at peak, with a breakdown by primitive."""
        return {
            "nodes": len(self.nodes),
            "bytes_now": self.bytes_now,
            "bytes_peak": self.bytes_peak,
            "bytes_by_primitive": {k: v for k, v in self.bytes_by_primitive.items() if v},
            "peak_by_primitive": dict(self.peak_by_primitive),
        }


class ReverseEngine:
    """Processes primitives at one reverse-mode level by recording them on a tape."""

    def __init__(self) -> None:
        self.tape = Tape()
        self.level: Level | None = None

    def process(self, primitive: Primitive, args: tuple, params: dict) -> TapeValue:
        level = self.level
        if primitive.vjp is None:
            raise ModeError(
                f"{primitive.name} has no VJP rule, so reverse mode (grad, vjp, jacrev) "
                f"cannot differentiate it; give it one with .defvjp, or use forward mode"
            )
        primals, parents, needs = [], [], []
        for a in args:
            ours = isinstance(a, TapeValue) and a.level is level
            primals.append(a.value if ours else a)
            parents.append(a.node if ours else None)
            needs.append(ours)
        out = bind(primitive, *primals, **params)
        needs = tuple(needs)
        residuals = primitive.save(primals, out, needs, **params)
        node = self.tape.record(primitive, tuple(parents), residuals, params, out, needs)
        return TapeValue(out, node, level)
