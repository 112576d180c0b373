"""Pytrees: nested tuples, lists and dicts of arrays, flattened to a list of leaves and back.

A *pytree* is a tree whose inner nodes are containers and whose leaves are values:

* nodes: ``tuple`` (namedtuples too), ``list`` and ``dict``;
* leaves: everything else (arrays, traced values, numbers, and also ``None``, strings and
  other objects, which the transforms then refuse with a message naming where they sit).

``tree_flatten`` lists the leaves in a fixed order (left to right, dict entries by sorted key)
and returns the *structure* (a :class:`PyTreeDef`) that ``tree_unflatten`` needs to put them
back::

    leaves, tree = tree_flatten({"w": (a, b), "bias": c})   # leaves [c, a, b]
    tree_unflatten(tree, [2 * v for v in leaves])          # {"bias": 2c, "w": (2a, 2b)}

The transforms (``grad``, ``jacfwd``, ``vjp``, ``custom_vjp``, ``check_grads``,
``checkpointed_loop``, ...) work on the leaves and give results the structure of their
arguments, as JAX's do: ``grad(f)({"w": W, "b": b})`` is ``{"b": ∂f/∂b, "w": ∂f/∂W}``, and
``jacfwd`` of a function from a tree of inputs to a tree of outputs is the output tree whose
leaves are input trees of blocks, block (i, j) of shape ``out_i.shape + in_j.shape``.

``ravel_pytree`` turns a tree of float arrays into one vector and back, built from minidiff ops
(``reshape``, ``concatenate``, slicing), so it is differentiable: an optimiser or a Jacobian
can treat dozens of parameter arrays as one vector θ of their total size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .core import shape_of
from .ops import asarray, concatenate, getitem, reshape, zeros

__all__ = [
    "LEAF", "PyTreeDef", "tree_flatten", "tree_unflatten", "tree_structure", "tree_leaves",
    "tree_map", "ravel_pytree", "leaf_paths",
]


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _dict_keys(d: dict) -> tuple:
    """Keys in flattening order: sorted when they can be, else as inserted (as JAX does)."""
    try:
        return tuple(sorted(d))
    except TypeError:
        return tuple(d)


class PyTreeDef:
    """The structure of a pytree: its containers, without the leaves.

    Attributes:
        node: None for a leaf; else the container type (``tuple``, ``list``, ``dict`` or a
            namedtuple class).
        keys: a dict's keys in flattening order (empty for other nodes).
        children: the structures of the node's entries, in flattening order.
        n_leaves: how many leaves the tree holds.
    """

    __slots__ = ("node", "keys", "children", "n_leaves")

    def __init__(self, node: type | None, keys: tuple, children: tuple) -> None:
        self.node = node
        self.keys = keys
        self.children = children
        self.n_leaves = 1 if node is None else sum(c.n_leaves for c in children)

    @property
    def is_leaf(self) -> bool:
        return self.node is None

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PyTreeDef) and self.node is other.node
                and self.keys == other.keys and self.children == other.children)

    def __hash__(self) -> int:
        return hash((self.node, self.keys, self.children))

    def __repr__(self) -> str:
        return f"PyTreeDef({self._describe()})"

    def _describe(self) -> str:
        if self.node is None:
            return "*"
        inner = [c._describe() for c in self.children]
        if self.node is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.keys, inner)) + "}"
        if self.node is list:
            return "[" + ", ".join(inner) + "]"
        if self.node is tuple:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        return f"{self.node.__name__}(" + ", ".join(inner) + ")"

    def unflatten(self, leaves: Any) -> Any:
        """Put ``leaves`` (a sequence of ``n_leaves`` values) back into this structure."""
        leaves = list(leaves)
        if self.node is None and len(leaves) == 1:
            return leaves[0]
        if len(leaves) != self.n_leaves:
            raise ValueError(f"tree_unflatten: the structure {self._describe()} holds "
                             f"{self.n_leaves} leaves, but {len(leaves)} were given")
        return self._build(iter(leaves))

    def _build(self, leaves: Any) -> Any:
        if self.node is None:
            return next(leaves)
        children = [c._build(leaves) for c in self.children]
        if self.node is dict:
            return dict(zip(self.keys, children))
        if self.node is list:
            return children
        if self.node is tuple:
            return tuple(children)
        return self.node(*children)  # a namedtuple

    def paths(self) -> list[str]:
        """Where each leaf sits, as indexing code: ``""`` for a lone leaf, ``"[0]['w']"``..."""
        out: list[str] = []
        self._paths("", out)
        return out

    def _paths(self, prefix: str, out: list[str]) -> None:
        if self.node is None:
            out.append(prefix)
            return
        if self.node is dict:
            labels = [f"[{k!r}]" for k in self.keys]
        elif self.node in (tuple, list):
            labels = [f"[{i}]" for i in range(len(self.children))]
        else:
            labels = [f".{name}" for name in self.node._fields]
        for label, child in zip(labels, self.children):
            child._paths(prefix + label, out)


LEAF = PyTreeDef(None, (), ())  # the structure of a lone leaf


def _flatten(x: Any, leaves: list) -> PyTreeDef:
    if isinstance(x, dict):
        keys = _dict_keys(x)
        return PyTreeDef(dict, keys, tuple(_flatten(x[k], leaves) for k in keys))
    if isinstance(x, list):
        return PyTreeDef(list, (), tuple(_flatten(v, leaves) for v in x))
    if isinstance(x, tuple):
        node = type(x) if _is_namedtuple(x) else tuple
        return PyTreeDef(node, (), tuple(_flatten(v, leaves) for v in x))
    leaves.append(x)
    return LEAF


def tree_flatten(tree: Any) -> tuple[list[Any], PyTreeDef]:
    """The leaves of ``tree`` in order, and its structure."""
    leaves: list[Any] = []
    structure = _flatten(tree, leaves)
    return leaves, structure


def tree_unflatten(structure: PyTreeDef, leaves: Any) -> Any:
    """The tree of ``structure`` holding ``leaves`` (the inverse of :func:`tree_flatten`)."""
    return structure.unflatten(leaves)


def tree_structure(tree: Any) -> PyTreeDef:
    return tree_flatten(tree)[1]


def tree_leaves(tree: Any) -> list[Any]:
    return tree_flatten(tree)[0]


def leaf_paths(tree: Any) -> list[str]:
    """Where each leaf of ``tree`` sits (see :meth:`PyTreeDef.paths`)."""
    return tree_structure(tree).paths()


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``f`` applied leaf by leaf: ``f(leaf, *corresponding leaves of rest)``, in ``tree``'s
    structure. Every tree in ``rest`` must have the same structure as ``tree``."""
    leaves, structure = tree_flatten(tree)
    others = []
    for i, other in enumerate(rest):
        other_leaves, other_structure = tree_flatten(other)
        if other_structure != structure:
            raise ValueError(f"tree_map: tree {i + 1} has structure "
                             f"{other_structure._describe()} but the first has "
                             f"{structure._describe()}")
        others.append(other_leaves)
    return structure.unflatten(f(*args) for args in zip(leaves, *others))


def ravel_pytree(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Flatten a tree of float arrays into one vector θ, and the function θ ↦ tree.

    θ is the leaves, each flattened, joined end to end: size Σ leaf.size. Both directions are
    minidiff ops (``reshape`` and ``concatenate`` one way, slices and ``reshape`` back), so
    derivatives pass through them: ``grad(lambda θ: loss(unravel(θ)))`` is the raveled
    gradient. Python numbers become 0-d float arrays.
    """
    leaves, structure = tree_flatten(tree)
    for path, leaf in zip(structure.paths(), leaves):
        if leaf is None or isinstance(leaf, str) or not (
                isinstance(leaf, int | float) or hasattr(leaf, "shape")):
            raise TypeError(f"ravel_pytree: the leaf at {path or 'the root'} is "
                            f"{_describe_value(leaf)}; only arrays and numbers can be raveled")
    leaves = [asarray(float(v)) if isinstance(v, int | float) else v for v in leaves]
    shapes = [shape_of(v) for v in leaves]
    sizes = [math.prod(s) for s in shapes]
    if not leaves:
        flat = zeros((0,))
    elif len(leaves) == 1:
        flat = reshape(leaves[0], (-1,))
    else:
        flat = concatenate([reshape(v, (-1,)) for v in leaves])
    total = sum(sizes)

    def unravel(vector: Any) -> Any:
        if shape_of(vector) != (total,):
            raise ValueError(f"ravel_pytree: the unravel function takes a vector of shape "
                             f"({total},), got shape {shape_of(vector)}")
        if len(leaves) == 1:
            return structure.unflatten([reshape(vector, shapes[0])])
        pieces, start = [], 0
        for shape, size in zip(shapes, sizes):
            pieces.append(reshape(getitem(vector, slice(start, start + size)), shape))
            start += size
        return structure.unflatten(pieces)

    return flat, unravel


def _describe_value(x: Any) -> str:
    """A short description of an unexpected value for error messages: None, a str 'abc', ..."""
    if x is None:
        return "None"
    text = repr(x)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"a {type(x).__name__} ({text})"
