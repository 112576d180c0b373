"""The core shared by both engines: primitives, levels, boxed values and dispatch.

A *primitive* is an operation that both engines know how to differentiate. It is defined once
(:class:`Primitive`), with

* ``impl``: its value on raw backend arrays;
* ``jvp``: its Jacobian-vector product, written with minidiff ops;
* ``vjp``: its vector-Jacobian product, written with minidiff ops;
* ``save``: which residuals the reverse pass keeps for ``vjp``.

Because the rules use minidiff ops, they can themselves be differentiated, which is how a
Hessian comes out of forward-over-reverse.

*Levels* keep nested transforms apart. Each transform (``jvp``, ``grad``, ...) opens a new
:class:`Level`, and each value it creates is *boxed* with that level: a ``Dual`` (forward mode)
or a ``TapeValue`` (reverse mode). :func:`bind` finds the highest level among a primitive's
arguments and lets that level's engine handle the call. The engine unboxes its own level,
calls :func:`bind` again on what is inside (which may be boxed at lower levels) and boxes the
result. A value boxed at a lower level is a constant to a higher one, so two nested transforms
never confuse their perturbations.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend

__all__ = [
    "Box",
    "Level",
    "Primitive",
    "bind",
    "raw",
    "shape_of",
    "ndim_of",
    "ModeError",
    "ShapeError",
]


class ModeError(TypeError):
    """A primitive was used in a mode (forward or reverse) for which it has no rule."""


class ShapeError(ValueError):
    """Shapes that do not fit together (broadcasting, matmul, reshape)."""


# ---------------------------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------------------------

_level_counter = itertools.count(1)


class Level:
    """One open transform. ``depth`` orders nested levels: inner transforms are deeper.

    ``engine`` is the object that processes primitives at this level (a forward or a reverse
    engine); it has a method ``process(primitive, args, params)``.
    """

    __slots__ = ("depth", "engine", "uid", "active")

    def __init__(self, engine: Any, depth: int) -> None:
        self.engine = engine
        self.depth = depth
        self.uid = next(_level_counter)
        self.active = True

    def __repr__(self) -> str:
        return f"Level(depth={self.depth}, engine={type(self.engine).__name__})"


_level_stack: list[Level] = []


def open_level(engine: Any) -> Level:
    """Push a new, deepest level run by ``engine``, and tell the engine its level."""
    level = Level(engine, len(_level_stack) + 1)
    engine.level = level
    _level_stack.append(level)
    return level


def close_level(level: Level) -> None:
    """Pop ``level``; values still boxed with it become inert."""
    level.active = False
    popped = _level_stack.pop()
    assert popped is level, "levels must close in the order they opened"


# ---------------------------------------------------------------------------------------------
# Boxed values
# ---------------------------------------------------------------------------------------------


class Box:
    """A value carrying a level: the common base of ``Dual`` and ``TapeValue``.

    ``value`` is the primal, which may itself be boxed at a lower level. Boxes support NumPy's
    operators and the usual array attributes, each routed through a minidiff op.
    """

    __slots__ = ("value", "level")
    __array_priority__ = 1000  # so that ndarray (op) Box defers to Box's reflected operator

    # shape information comes from the innermost raw array
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(raw(self).shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def dtype(self) -> Any:
        return raw(self).dtype

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __bool__(self) -> bool:
        return bool(raw(self))

    def __float__(self) -> float:
        return float(raw(self))

    def __int__(self) -> int:
        return int(raw(self))

    def __index__(self) -> int:
        raise TypeError(
            "a traced (differentiated) value cannot be used as an index; "
            "wrap it in minidiff.stop_gradient() if its derivative is not wanted"
        )

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(
            "item assignment on a traced array is not differentiable (arrays are immutable "
            "under minidiff transforms); build the new array instead, e.g. "
            "x = minidiff.where(mask, new_values, x)"
        )

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # Operators are attached in ops/__init__.py, once the ops exist.


def raw(x: Any) -> Any:
    """Strip every box from ``x``: the raw backend array (or Python number) inside."""
    while isinstance(x, Box):
        x = x.value
    return x


def strip_inactive(x: Any) -> Any:
    """Unbox levels whose transform has finished (values that leaked out of a closure)."""
    while isinstance(x, Box) and not x.level.active:
        x = x.value
    return x


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array, a boxed value or a Python number (``()``)."""
    while isinstance(x, Box):
        x = x.value
    shape = getattr(x, "shape", None)
    return () if shape is None else shape if type(shape) is tuple else tuple(shape)


def ndim_of(x: Any) -> int:
    return len(shape_of(x))


# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------

JvpRule = Callable[..., Any]
VjpRule = Callable[..., Sequence[Any]]


class Primitive:
    """One differentiable operation, defined once for both engines.

    Args:
        name: the NumPy-style name shown in traces and error messages.
        impl: ``impl(*raw_args, **params)`` computes the value on raw backend arrays.
        jvp: ``jvp(tangents, args, out, **params)`` returns the output tangent. ``tangents[i]``
            is None for an argument that is constant at this level; otherwise it has a leading
            axis of K directions, shape ``(K, *shape(args[i]))``. The result has shape
            ``(K, *shape(out))``.
        vjp: ``vjp(g, residuals, needs, **params)`` returns one cotangent per argument (None
            where ``needs[i]`` is False). ``g`` has the output's shape.
        save: ``save(args, out, needs, **params)`` returns the residuals ``vjp`` will need.
            The default keeps every argument and the output; rules that need less say so, which
            is what keeps the tape small.
        broadcasts: True for ops whose arguments broadcast together; their shape errors name
            both shapes.
        elementwise: True when each output element depends only on the same element of each
            (broadcast) argument; stochastic triples then evaluate the alternative world of all
            K directions in one call.
    """

    __slots__ = ("name", "impl", "jvp", "vjp", "save", "broadcasts", "elementwise")

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        *,
        jvp: JvpRule | None = None,
        vjp: VjpRule | None = None,
        save: Callable[..., Any] | None = None,
        broadcasts: bool = False,
        elementwise: bool = False,
    ) -> None:
        self.name = name
        self.impl = impl
        self.jvp = jvp
        self.vjp = vjp
        self.save = save if save is not None else _save_everything
        self.broadcasts = broadcasts
        self.elementwise = elementwise

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self, *args, **params)

    def __repr__(self) -> str:
        return f"<minidiff primitive {self.name}>"


def _save_everything(args: Sequence[Any], out: Any, needs: Sequence[bool], **params: Any) -> Any:
    return (tuple(args), out)


def bind(primitive: Primitive, *args: Any, **params: Any) -> Any:
    """Apply ``primitive`` to ``args``, letting the deepest level among them handle it.

    With no boxed argument this is just ``impl`` on raw arrays.
    """
    top: Level | None = None
    for a in args:
        if isinstance(a, Box):
            if not a.level.active:  # boxed by a transform that has finished: unbox and retry
                return bind(primitive, *map(strip_inactive, args), **params)
            if top is None or a.level.depth > top.depth:
                top = a.level
    if top is None:
        return _apply_raw(primitive, args, params)
    return top.engine.process(primitive, args, params)


def _apply_raw(primitive: Primitive, args: Sequence[Any], params: dict) -> Any:
    backend = _backend._current[-1]
    array_type = backend.array_type
    for a in args:
        if not isinstance(a, array_type):  # slow path: numbers, lists, strays
            args = _raw_arguments(primitive, args, backend)
            break
    try:
        return primitive.impl(*args, **params)
    except (ValueError, TypeError) as exc:
        if primitive.broadcasts:
            shapes = " and ".join(str(shape_of(a)) for a in args)
            raise ShapeError(
                f"{primitive.name}: operands with shapes {shapes} cannot be broadcast "
                f"together ({exc})"
            ) from exc
        raise


def _raw_arguments(primitive: Primitive, args: Sequence[Any], backend: Any) -> list[Any]:
    """Check and convert arguments that are not arrays of the current backend (Python
    numbers, lists, arrays of another backend) for ``impl``."""
    args = [_to_backend(primitive, a, backend) for a in args]
    if not any(isinstance(a, backend.array_type) for a in args):
        # every argument is a Python number: give the op an array to work on
        args = [backend.asarray(float(a)) if isinstance(a, numbers.Number) else a for a in args]
    return args


def _to_backend(primitive: Primitive, a: Any, backend: _backend.Backend) -> Any:
    """Check that a raw argument belongs to the current backend (or is a Python value)."""
    if a is None or isinstance(a, numbers.Number) or backend.is_array(a):
        return a
    if isinstance(a, list | tuple):
        return backend.asarray(list(a))
    for other_name in _backend.available_backends():
        other = _backend._LOADED.get(other_name)
        if other is not None and other is not backend and other.is_array(a):
            raise _backend.BackendError(
                f"{primitive.name}: an array of the {other.name!r} backend was mixed with the "
                f"current {backend.name!r} backend; move it with "
                f"minidiff.asarray(minidiff.to_host(x)) or switch with minidiff.use_backend"
            )
    raise TypeError(
        f"{primitive.name}: cannot use an argument of type {type(a).__name__} as an array "
        f"of the {backend.name!r} backend"
    )

