"""Pytrees of parameters: nested dicts, tuples and lists whose leaves are arrays.

Variational families and optimisers keep their parameters as pytrees, e.g.
``{"loc": (d,), "log_scale": (d,)}`` or a list of layers. The transforms (``md.grad``, ...)
take single arrays, so :func:`ravel` packs a pytree into one flat vector and returns the inverse
map; both directions are written with minidiff ops (``reshape``, ``concatenate``, ``getitem``),
so a function of the pytree can be differentiated through ``unravel``:

    flat, unravel = ravel(params)                      # flat: (P,), P = total leaf size
    g_flat = md.grad(lambda v: f(unravel(v)))(flat)    # (P,)
    g = unravel(g_flat)                                # the gradient, shaped like params

Dict keys are visited in sorted order (so the layout does not depend on insertion order);
tuples and lists in order. A leaf is anything else (an array, a traced value, a Python number).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import minidiff as md

__all__ = ["ravel", "tree_leaves", "tree_map", "tree_structure", "tree_unflatten"]


def _children(tree: Any) -> tuple[str, list[Any], Any] | None:
    if isinstance(tree, dict):
        keys = sorted(tree)
        return "dict", [tree[k] for k in keys], tuple(keys)
    if isinstance(tree, tuple | list):
        return type(tree).__name__, list(tree), len(tree)
    return None


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree``, depth first (dict keys sorted)."""
    node = _children(tree)
    if node is None:
        return [tree]
    return [leaf for child in node[1] for leaf in tree_leaves(child)]


def tree_structure(tree: Any) -> Any:
    """A hashable description of ``tree``'s shape (containers and keys, not the leaves)."""
    node = _children(tree)
    if node is None:
        return "*"
    kind, children, keys = node
    return kind, keys, tuple(tree_structure(c) for c in children)


def tree_unflatten(structure: Any, leaves: list[Any]) -> Any:
    """Rebuild a pytree of ``structure`` (from :func:`tree_structure`) from its leaves."""
    it = iter(leaves)

    def build(s: Any) -> Any:
        if s == "*":
            return next(it)
        kind, keys, subs = s
        children = [build(c) for c in subs]
        if kind == "dict":
            return dict(zip(keys, children))
        return tuple(children) if kind == "tuple" else list(children)

    tree = build(structure)
    if next(it, None) is not None:
        raise ValueError("tree_unflatten: more leaves than the structure holds")
    return tree


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``fn`` applied leafwise to ``tree`` (and to the matching leaves of ``rest``, which must
    have the same structure)."""
    structure = tree_structure(tree)
    for other in rest:
        if tree_structure(other) != structure:
            raise ValueError(f"tree_map: pytrees differ in structure: {structure} and "
                             f"{tree_structure(other)}")
    leaves = [tree_leaves(t) for t in (tree, *rest)]
    return tree_unflatten(structure, [fn(*xs) for xs in zip(*leaves)])


def ravel(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(flat, unravel)``: the leaves concatenated into one vector of shape (P,), and the map
    from such a vector back to a pytree of the same structure and leaf shapes.

    Both are minidiff ops, so they are differentiable (in every transform). Leaves keep their
    shapes, including 0-d; ``unravel`` accepts any vector of length P (a gradient, an update)."""
    structure = tree_structure(tree)
    leaves = [md.asarray(x) for x in tree_leaves(tree)]  # traced leaves pass unchanged
    shapes = [tuple(leaf.shape) for leaf in leaves]
    sizes = [_size(s) for s in shapes]
    total = sum(sizes)
    if leaves:
        flat = md.concatenate([md.reshape(leaf, (-1,)) for leaf in leaves])
    else:
        flat = md.zeros((0,))

    def unravel(vector: Any) -> Any:
        if tuple(vector.shape) != (total,):
            raise ValueError(f"unravel: expected a vector of shape ({total},), got "
                             f"{tuple(vector.shape)}")
        parts, offset = [], 0
        for shape, n in zip(shapes, sizes):
            parts.append(md.reshape(md.getitem(vector, slice(offset, offset + n)), shape))
            offset += n
        return tree_unflatten(structure, parts)

    return flat, unravel


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
