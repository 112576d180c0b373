"""``md.vmap``: a function of one element, run on a whole batch at once.

``vmap(f)(xs)`` equals ``stack([f(x) for x in xs])`` and runs ``f`` once: each batched
argument is boxed at a new batching level (:mod:`minidiff.batching`) and every op inside ``f``
applies its batching rule to all elements together.

``in_axes`` says where each argument's batch axis is: an int for every argument, or a tuple
with one entry per positional argument, each an int, ``None`` (the argument is shared by every
element, as a closure would be) or a pytree prefix of the argument (a tuple, list or dict of
those, matching the argument's structure). ``out_axes`` does the same for the output. A list
(or tuple) of random generators with axis 0, such as ``rng.spawn(n)``, batches as one generator
whose element b draws from the b-th, so ``vmap(simulate)(thetas, rng.spawn(n))`` draws exactly
what the loop ``[simulate(t, g) for t, g in zip(thetas, rng.spawn(n))]`` draws.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .backend import get_backend
from .batching import BatchEngine, BatchTracer, batched_type_combiner
from .core import Box, close_level, ndim_of, open_level, shape_of, strip_inactive
from .ops import broadcast_to, reshape, transpose
from .validation import check_int

__all__ = ["vmap"]

_CONTAINERS = (tuple, list, dict)


def _path(position: int, path: str) -> str:
    return f"argument {position}" + (path and f" at {path}")



def _children(x: Any) -> list[tuple[str, Any]]:
    if isinstance(x, dict):
        return [(f"[{k!r}]", v) for k, v in x.items()]
    return [(f"[{i}]", v) for i, v in enumerate(x)]


def _check_axis(axis: Any, what: str) -> None:
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        raise TypeError(f"vmap: {what} must be an int, None, or a tuple/list/dict of those "
                        f"matching the argument's structure, got {axis!r}")


def _plan(x: Any, spec: Any, where: str, found: list) -> None:
    """Collect ``(leaf, axis, where)`` for the batched leaves of ``x`` under ``spec``."""
    if spec is None:
        return
    if isinstance(spec, _CONTAINERS):
        if isinstance(spec, dict):
            same = isinstance(x, dict) and set(spec) == set(x)
        else:
            same = isinstance(x, tuple | list) and len(spec) == len(x)
        if not same:
            raise ValueError(
                f"vmap: in_axes for {where} is {spec!r}, a {type(spec).__name__} of "
                f"{len(spec)}, but the value there is {_describe(x)}; in_axes must be a "
                f"prefix of the argument's structure (or one int/None for all of it)")
        child_specs = [spec[k] for k in x] if isinstance(spec, dict) else list(spec)
        for (key, child), child_spec in zip(_children(x), child_specs):
            _plan(child, child_spec, where + key, found)
        return
    _check_axis(spec, f"in_axes for {where}")
    if batched_type_combiner(x) is not None:
        if spec != 0:
            raise ValueError(f"vmap: {where} is a list of {type(x[0]).__name__}s, which "
                             f"batches along axis 0 only, got in_axes {spec}")
        found.append((x, 0, where, len(x)))
        return
    if isinstance(x, _CONTAINERS):
        for key, child in _children(x):
            _plan(child, spec, where + key, found)
        return
    if not (isinstance(x, Box) or hasattr(x, "shape")):
        raise TypeError(f"vmap: {where} is {_describe(x)} with in_axes {spec}, but only arrays "
                        f"(or lists of generators) have a batch axis; give it in_axes None to "
                        f"share it across the batch")
    rank = ndim_of(x)
    if not -rank <= spec < rank:
        raise ValueError(f"vmap: in_axes {spec} for {where} is out of range for its shape "
                         f"{shape_of(x)} ({rank} axes)")
    found.append((x, spec % rank, where, shape_of(x)[spec % rank]))


def _describe(x: Any) -> str:
    if isinstance(x, Box) or hasattr(x, "shape"):
        return f"an array of shape {shape_of(x)}"
    if isinstance(x, _CONTAINERS):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__} ({x!r})"


def _rebuild(x: Any, spec: Any, boxed: dict[str, Any], where: str) -> Any:
    """``x`` with each planned leaf (by its place) replaced by its batched box."""
    if where in boxed:
        return boxed[where]
    if spec is None or not isinstance(x, _CONTAINERS):
        return x
    if isinstance(x, dict):
        return {k: _rebuild(v, spec[k] if isinstance(spec, dict) else spec, boxed,
                            f"{where}[{k!r}]") for k, v in x.items()}
    parts = [_rebuild(v, spec[i] if isinstance(spec, tuple | list) else spec, boxed,
                      f"{where}[{i}]") for i, v in enumerate(x)]
    return type(x)(*parts) if hasattr(x, "_fields") else type(x)(parts)


def _move_to_front(x: Any, axis: int) -> Any:
    if axis == 0:
        return x
    rank = ndim_of(x)
    return transpose(x, (axis, *(a for a in range(rank) if a != axis)))


def _unbatch(x: Any, spec: Any, level: Any, size: int, where: str) -> Any:
    """One output leaf with its batch axis at ``spec`` (None: the leaf must be unbatched)."""
    x = strip_inactive(x)
    batched = isinstance(x, BatchTracer) and x.level is level
    if spec is None:
        if batched:
            raise ValueError(f"vmap: out_axes is None for the output{where}, but it differs "
                             f"across the batch; give it an axis (e.g. out_axes=0)")
        return x
    _check_axis(spec, f"out_axes for the output{where}")
    if not (isinstance(x, Box) or hasattr(x, "shape")):
        if isinstance(x, int | float) and not isinstance(x, bool):
            x = get_backend().asarray(float(x))
        else:
            raise TypeError(f"vmap: the output{where} is {_describe(x)}; a vmapped function "
                            f"returns arrays (or tuples, lists and dicts of them)")
    if batched:
        value = x.value
    else:  # the same for every element: broadcast it
        shape = shape_of(x)
        value = broadcast_to(reshape(x, (1, *shape)), (size, *shape))
    rank = ndim_of(value)
    if not -rank <= spec < rank:
        raise ValueError(f"vmap: out_axes {spec} for the output{where} is out of range for "
                         f"its {rank - 1} axes (plus the batch axis)")
    axis = spec % rank
    if axis == 0:
        return value
    order = list(range(1, rank))
    order.insert(axis, 0)
    return transpose(value, tuple(order))


def _outputs(out: Any, spec: Any, level: Any, size: int, where: str = "") -> Any:
    if isinstance(spec, _CONTAINERS):
        if (isinstance(spec, dict) and not (isinstance(out, dict) and set(out) == set(spec))) \
                or (not isinstance(spec, dict) and not (isinstance(out, tuple | list)
                                                        and len(out) == len(spec))):
            raise ValueError(f"vmap: out_axes{where and ' at ' + where} is {spec!r}, but the "
                             f"output there is {_describe(out)}; out_axes must be a prefix of "
                             f"the output's structure (or one int/None for all of it)")
    if isinstance(out, dict):
        return {k: _outputs(v, spec[k] if isinstance(spec, dict) else spec, level, size,
                            f"{where}[{k!r}]") for k, v in out.items()}
    if isinstance(out, tuple | list):
        parts = [_outputs(v, spec[i] if isinstance(spec, tuple | list) else spec, level, size,
                          f"{where}[{i}]") for i, v in enumerate(out)]
        return type(out)(*parts) if hasattr(out, "_fields") else type(out)(parts)
    return _unbatch(out, spec, level, size, where and f" at {where}")


def vmap(f: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Callable[..., Any]:
    """``f`` mapped over a batch axis of its arguments, run once on the whole batch.

    ``vmap(f)(x)`` equals ``stack([f(x[b]) for b in range(B)])``, with the batch axis of the
    result at ``out_axes``.

    Args:
        f: a function of arrays (pytrees of them), written for one element.
        in_axes: the batch axis of each argument: an int or None for all, or a tuple with one
            entry per positional argument (an int, None for an argument shared by every
            element, or a pytree prefix of the argument). A list of generators (e.g.
            ``rng.spawn(B)``) batches with axis 0: element b draws from generator b.
        out_axes: where the batch axis goes in each output (an int, None for an output that
            is the same for every element, or a pytree prefix of the output).
        axis_size: the batch length, needed only when no argument is batched.

    Keyword arguments of the mapped function are shared by every element (not batched).
    """
    if in_axes is not None and not isinstance(in_axes, int | tuple | list):
        raise TypeError(f"vmap: in_axes must be an int, None, or a tuple with one entry per "
                        f"positional argument, got {in_axes!r}")
    _check_axis(out_axes if not isinstance(out_axes, _CONTAINERS) else None, "out_axes")

    @functools.wraps(f)
    def vmapped(*args: Any, **kwargs: Any) -> Any:
        if isinstance(in_axes, tuple | list):
            if len(in_axes) != len(args):
                raise ValueError(f"vmap: in_axes has {len(in_axes)} entries but the function "
                                 f"got {len(args)} positional argument(s); give one entry per "
                                 f"argument (None for those shared by every element)")
            specs = list(in_axes)
        else:
            specs = [in_axes] * len(args)
        found: list = []
        for i, (a, spec) in enumerate(zip(args, specs)):
            _plan(a, spec, _path(i, ""), found)
        size = _batch_size(found, axis_size)
        engine = BatchEngine(size)
        level = open_level(engine)
        try:
            boxed = {}
            for x, axis, where, _ in found:
                combine = batched_type_combiner(x)
                boxed[where] = (combine(list(x), level) if combine is not None else
                                BatchTracer(_move_to_front(x, axis), level))
            batched_args = [_rebuild(a, spec, boxed, _path(i, ""))
                            for i, (a, spec) in enumerate(zip(args, specs))]
            out = f(*batched_args, **kwargs)
            return _outputs(out, out_axes, level, size)
        finally:
            close_level(level)

    return vmapped


def _batch_size(found: list, axis_size: int | None) -> int:
    check_int("vmap", "axis_size", axis_size, 0, none_ok=True)
    sizes = {n for *_, n in found}
    if len(sizes) > 1 or (axis_size is not None and sizes and sizes != {axis_size}):
        listed = "; ".join(f"{where} has {n} along axis {axis}" for _, axis, where, n in found)
        given = f" (axis_size={axis_size})" if axis_size is not None else ""
        raise ValueError(f"vmap: the batched arguments have different batch sizes{given}: "
                         f"{listed}; every batched argument needs the same length along its "
                         f"in_axes")
    if sizes:
        return sizes.pop()
    if axis_size is None:
        raise ValueError("vmap: no argument is batched (every in_axes is None), so the batch "
                         "size is unknown; pass axis_size=n")
    return axis_size
