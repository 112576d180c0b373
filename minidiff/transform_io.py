"""What the transforms accept and return: pytrees of float arrays, checked leaf by leaf.

Every transform flattens its arguments (:func:`input_leaves`), boxes the leaves, and puts the
results back into the arguments' structures (:func:`regroup`, :func:`jacobian_tree`). A leaf
that cannot be differentiated is refused here, with the transform's name and the leaf's place
in the tree: None (a forgotten ``return``), strings and other objects, integers and booleans
(no derivative), and complex values (minidiff is real-valued; a complex derivative needs
conjugation rules it does not have).

Several output leaves stay separate: one backward sweep starts from all of them at once
(``Tape.backward_from``), and each carries its own tangent.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend
from .core import Box, is_complex_dtype, raw, shape_of
from .ops import getitem
from .pytree import LEAF, PyTreeDef, _describe_value, tree_flatten, tree_map

__all__ = ["argnums_of", "as_input", "input_leaves", "as_output", "output_leaves", "unbox",
           "split_aux", "scalar_output", "pieces", "regroup", "jacobian_tree",
           "note_list_arguments"]

ArgNums = int | Sequence[int]

_WHAT_IS_ALLOWED = "arrays and numbers, and tuples, lists and dicts of them"


# ---------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------


def argnums_of(argnums: ArgNums, n_args: int, name: str) -> tuple[tuple[int, ...], bool]:
    """``argnums`` as non-negative positions, and whether it was a tuple (results are then
    tuples too). Out-of-range, empty and repeated argnums are refused."""
    multiple = not isinstance(argnums, int)
    if multiple and not (isinstance(argnums, tuple | list)
                         and all(isinstance(i, int) for i in argnums)):
        raise TypeError(f"{name}: argnums must be an int or a tuple of ints, got {argnums!r}")
    nums = tuple(argnums) if multiple else (argnums,)
    if not nums:
        raise ValueError(f"{name}: argnums must name at least one argument")
    for i in nums:
        if not isinstance(i, int) or not -n_args <= i < n_args:
            raise ValueError(f"{name}: argnums {argnums!r} is out of range for {n_args} "
                             f"positional argument(s)")
    nums = tuple(i % n_args for i in nums)
    if multiple and len(set(nums)) != len(nums):
        repeated = min(i for i in nums if nums.count(i) > 1)
        raise ValueError(f"{name}: argnums {argnums!r} names argument {repeated} more than "
                         f"once; name each argument once (its derivative is one block)")
    return nums, multiple


def _is_array_like(x: Any) -> bool:
    return isinstance(x, Box | numbers.Number) or (hasattr(x, "shape") and hasattr(x, "dtype"))


_CONTAINERS = (tuple, list, dict)


def as_input(x: Any, position: int, name: str, path: str = "") -> Any:
    """A differentiable input leaf: a backend float array (or a value boxed by an outer
    level). ``path`` says where the leaf sits in argument ``position`` (for messages)."""
    if not isinstance(x, Box):
        if not (hasattr(x, "dtype") or isinstance(x, numbers.Number)):
            raise TypeError(f"{name}: {_where(position, path)} is {_describe_value(x)}; "
                            f"transforms differentiate {_WHAT_IS_ALLOWED}")
        if isinstance(x, complex):
            raise TypeError(_complex_message(name, _where(position, path)))
        x = _backend.get_backend().asarray(x)
    dtype = raw(x).dtype
    if not _backend.get_backend().xp.isdtype(dtype, "real floating"):
        if is_complex_dtype(dtype):
            raise TypeError(_complex_message(name, _where(position, path)))
        raise TypeError(
            f"{name}: {_where(position, path)} has dtype {dtype}, but only floating-point "
            f"inputs can be differentiated (a derivative with respect to an integer or boolean "
            f"is undefined); pass floats, e.g. 2.0 instead of 2, or convert the array to float64"
        )
    return x


def _where(position: int, path: str) -> str:
    return f"argument {position}" + (f" at {path}" if path else "")


def _complex_message(name: str, where: str) -> str:
    return (f"{name}: {where} is complex, but minidiff differentiates real-valued functions "
            f"only (a complex derivative needs conjugation rules it does not have); pass the "
            f"real and imaginary parts as two float arrays")


def input_leaves(x: Any, position: int, name: str) -> tuple[list[Any], PyTreeDef]:
    """The leaves of argument ``position``, each checked by :func:`as_input`, and its
    structure."""
    if not isinstance(x, _CONTAINERS):  # one array: the common case, kept cheap
        return [as_input(x, position, name)], LEAF
    leaves, tree = tree_flatten(x)
    paths = tree.paths()
    return [as_input(v, position, name, p) for v, p in zip(leaves, paths)], tree


def as_output(x: Any, name: str = "minidiff", path: str = "") -> Any:
    """An output leaf as a transform hands it back: boxes of outer levels unchanged, Python
    numbers as float64 arrays, and NumPy scalars (np.float64, from reductions) as 0-d arrays.
    Anything else is refused (None from a forgotten ``return``, strings, objects)."""
    if isinstance(x, Box):
        return x
    b = _backend.get_backend()
    if isinstance(x, bool | int | float):
        return b.asarray(float(x))
    where = "the function's output" + (f" at {path}" if path else "")
    if not _is_array_like(x):
        hint = " (did the function forget a `return`?)" if x is None else ""
        raise TypeError(f"{name}: {where} is {_describe_value(x)}{hint}; the function must "
                        f"return {_WHAT_IS_ALLOWED}")
    if isinstance(x, complex) or is_complex_dtype(getattr(x, "dtype", None)):
        raise TypeError(f"{name}: {where} is complex; minidiff differentiates real-valued "
                        f"functions only: return the real and imaginary parts as two arrays")
    return b.xp.asarray(x)


def output_leaves(out: Any, name: str) -> tuple[list[Any], PyTreeDef]:
    """The leaves of a function's output, each checked by :func:`as_output`, and its
    structure."""
    if not isinstance(out, _CONTAINERS):
        return [as_output(out, name)], LEAF
    leaves, tree = tree_flatten(out)
    paths = tree.paths()
    return [as_output(v, name, p) for v, p in zip(leaves, paths)], tree


def unbox(x: Any, level: Any) -> Any:
    """Remove ``level``'s box from the leaves of a pytree (other leaves are left alone)."""
    if not isinstance(x, _CONTAINERS):
        return x.value if isinstance(x, Box) and x.level is level else x
    return tree_map(lambda v: v.value if isinstance(v, Box) and v.level is level else v, x)


def split_aux(result: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise TypeError(f"{name}(has_aux=True): the function must return a pair (output, aux), "
                        f"got {_describe_value(result)}")
    return result[0], result[1]


def pieces(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """Cut the leading axis of ``flat`` into consecutive blocks of the sizes of ``shapes``."""
    if len(shapes) == 1:
        return [flat]
    pieces, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        pieces.append(getitem(flat, slice(start, start + size)))
        start += size
    return pieces


def regroup(flat: Sequence[Any], trees: Sequence[PyTreeDef]) -> list[Any]:
    """Consecutive runs of ``flat`` put back into each of ``trees``."""
    if len(trees) == 1 and trees[0].node is None:
        return [flat[0]]
    out, start = [], 0
    for tree in trees:
        out.append(tree.unflatten(flat[start:start + tree.n_leaves]))
        start += tree.n_leaves
    return out


def jacobian_tree(out_tree: PyTreeDef, in_trees: Sequence[PyTreeDef], multiple: bool,
                   block: Callable[[int, int], Any]) -> Any:
    """The output structure whose leaves are (per argnum) input structures of ``block(i, j)``,
    for output leaf i and input leaf j (numbered across every argnum)."""
    n_in = sum(t.n_leaves for t in in_trees)
    per_output = []
    for i in range(out_tree.n_leaves):
        per_arg = regroup([block(i, j) for j in range(n_in)], in_trees)
        per_output.append(tuple(per_arg) if multiple else per_arg[0])
    return out_tree.unflatten(per_output)




def scalar_output(out: Any, name: str) -> Any:
    if out is None or isinstance(out, tuple | list | dict):
        what = "None (did the function forget a `return`?)" if out is None else \
            f"a {type(out).__name__} {tree_flatten(out)[1]._describe()}"
        raise TypeError(f"{name}: the function must return a scalar, but returned {what}; "
                        f"for several outputs use jacrev or vjp, or has_aux=True to return "
                        f"extra values alongside the scalar")
    out = as_output(out, name)
    if shape_of(out) != ():
        raise TypeError(
            f"{name}: the function must return a scalar, but returned shape "
            f"{shape_of(out)}; for non-scalar outputs use jacrev (the full Jacobian) "
            f"or vjp (a vector-Jacobian product)"
        )
    return out


def note_list_arguments(exc: BaseException, args: Sequence[Any], nums: Sequence[int],
                        name: str) -> None:
    """Add a note to a TypeError the function raised when one of the differentiated arguments
    is a list: the transform passes it as a list of separate traced values (a pytree, as JAX
    does), which Python's list operators do not treat as an array."""
    lists = [i for i in nums if isinstance(args[i], list)]
    if lists and isinstance(exc, TypeError) and hasattr(exc, "add_note"):
        exc.add_note(
            f"note: {name} passed argument {lists[0]}, a list, to the function as a list of "
            f"separate traced values (a pytree, as in JAX), not as one array; to differentiate "
            f"it as an array pass minidiff.asarray([...]) (or a NumPy array), or call "
            f"minidiff.asarray(x) inside the function")
