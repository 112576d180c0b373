"""Which rule sent what to each argument during a reverse sweep: the terms of every adjoint.

The backward pass adds, for each node u = φ(v_1, ..., v_n), one term v̄_j += VJP(ū)_j to each
argument's adjoint. The engine keeps only the running sums. :class:`Uses` keeps the terms too,
for :func:`minidiff.wengert`, so a value used twice shows both of its contributions and their
sum (v̄2 = 16 (v3) + 16 (v3) = 32 for ``v3 = v2 · v2`` at v2 = 16). It wraps each node's rule
for the duration of the sweeps; the only number it changes is the order of a sum: a segment's
terms to a row it captured join that row's running sum as one.
"""

from __future__ import annotations

from typing import Any

from .core import raw
from .ops import add
from .recomputation import Recomputation
from .reverse import Node

__all__ = ["Uses"]


class Uses:
    """Writes down, during the reverse sweeps, what each rule sends to each of its arguments.

    While open, every node's rule is wrapped so that its VJP's outputs are kept per
    (target row, source row, argument position), summed over the sweeps. A rule that re-runs
    a segment on a sub-tape (checkpointing) also sends cotangents to rows the segment captured,
    whose nodes the sub-tape's pass adds them to: those are kept under the segment's row. The
    adjoint of a row is the sum of its entries.
    """

    def __init__(self, tape: Any, names: dict[int, str]) -> None:
        self.tape = tape
        self.names = names
        self.terms: dict[int, dict[tuple[str, int], Any]] = {}
        self._rules: list[tuple[Node, Any]] = []

    def add(self, target: int, key: tuple[str, int], g: Any) -> None:
        by_use = self.terms.setdefault(target, {})
        by_use[key] = g if key not in by_use else by_use[key] + g

    def of(self, index: int) -> tuple[tuple[str, Any], ...]:
        return tuple((source, g) for (source, _), g in self.terms.get(index, {}).items())

    def is_row(self, node: Node) -> bool:
        """True when ``node`` is on the listed tape (not on a segment's sub-tape)."""
        nodes = self.tape.nodes
        return node.index < len(nodes) and nodes[node.index] is node

    def __enter__(self) -> Uses:
        for node in self.tape.nodes:
            if node.rule is not None:
                self._rules.append((node, node.rule))
                node.rule = _Recorded(node.rule, node, self)
        return self

    def __exit__(self, *exc: Any) -> None:
        for node, rule in self._rules:
            node.rule = rule


class _Recorded:
    """A node's rule whose VJP also tells :class:`Uses` what it sent to each argument."""

    def __init__(self, rule: Any, node: Node, uses: Uses) -> None:
        self.rule, self.node, self.uses = rule, node, uses

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rule, name)

    def vjp(self, g: Any, residuals: Any, needs: Any, **params: Any) -> Any:
        uses = self.uses
        source = uses.names[self.node.index]
        # A recomputation re-runs a segment whose sub-tape sends cotangents to earlier rows it
        # captured: set their running sums aside, so that what arrives is its own term.
        earlier = [(n, n.cotangent) for n in uses.tape.nodes[:self.node.index]
                   ] if isinstance(self.rule, Recomputation) else []
        for n, _ in earlier:
            n.cotangent = None
        try:
            grads = self.rule.vjp(g, residuals, needs, **params)
        finally:
            for n, before in earlier:
                sent = n.cotangent
                if sent is not None:
                    uses.add(n.index, (source, -2), raw(sent))
                n.cotangent = before if sent is None else (
                    sent if before is None else add(before, sent))
        for position, (parent, gi) in enumerate(zip(self.node.parents, grads)):
            if parent is not None and gi is not None and uses.is_row(parent):
                uses.add(parent.index, (source, position), raw(gi))
        return grads
