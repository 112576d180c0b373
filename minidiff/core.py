"""The core shared by every engine: primitives, engines (levels), boxed values and dispatch.

A *primitive* is an operation that every engine knows how to handle. It is defined once
(:class:`Primitive`), with

* ``impl``: its value on raw backend arrays (a tuple of them with ``multiple_results``);
* ``jvp``: its Jacobian-vector product, written with minidiff ops;
* ``vjp``: its vector-Jacobian product, written with minidiff ops;
* ``save``: which residuals the reverse pass keeps for ``vjp``;

and optionally joint rules that compute the value together with its tangent
(``value_and_jvp``) or its residuals (``value_and_save``), and a batching rule (``batch``).

Because the rules use minidiff ops, they can themselves be differentiated, which is how a
Hessian comes out of forward-over-reverse. A primitive made with ``differentiable=False``
(comparisons, ``sign``, ``floor``) is piecewise constant: it has no rules, and its output is a
constant to every derivative.

*Engines* keep nested transforms apart. Each transform (``jvp``, ``grad``, ``vmap``, ...) opens
a new :class:`Engine`, which is its *level*, and each value it creates is *boxed* with that
engine: a ``Dual`` (forward mode), a ``TapeValue`` (reverse mode), a ``BatchTracer``
(``vmap``). :func:`bind` finds the deepest engine among a primitive's arguments and hands it
the call (``engine.process``). The engine unboxes its own values, calls :func:`bind` again on
what is inside (which may be boxed by shallower engines) and boxes the result. A value boxed
at a shallower level is a constant to a deeper one, so two nested transforms never confuse
their perturbations.

The *ops table* gives boxed values NumPy's operators. Core sits below the ops, so it cannot
import them; instead ``minidiff.ops`` registers the ops that ``Box``'s operators and methods
call (:func:`register_ops`), and :func:`op` hands them out by name (``op("add")``).
"""

from __future__ import annotations

import contextvars
import itertools
import numbers
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend
from .escapes import (
    UFUNC_OPERATORS,
    TracerConversionError,
    batched_escape_message,
    escape_message,
    is_complex_dtype,
    numpy_call_message,
    ufunc_op_name,
)

__all__ = [
    "Box",
    "Engine",
    "Level",
    "Primitive",
    "active_levels",
    "bind",
    "deepest_level",
    "op",
    "raw",
    "register_ops",
    "shape_of",
    "ndim_of",
    "without_derivatives",
    "ModeError",
    "ShapeError",
    "TracerConversionError",
    "holds_box",
    "is_complex_dtype",
    "is_traced",
    "stacked",
]


class ModeError(TypeError):
    """A primitive was used in a mode (forward or reverse) for which it has no rule."""


class ShapeError(ValueError):
    """Shapes that do not fit together (broadcasting, matmul, reshape)."""


# ---------------------------------------------------------------------------------------------
# Engines: one per open transform, which is its level
# ---------------------------------------------------------------------------------------------

_level_counter = itertools.count(1)


class Engine:
    """One open transform: a level of nesting *and* the interpreter of primitives at it.

    Every transform makes one engine (``ForwardEngine``, ``ReverseEngine``, ``BatchEngine``,
    the triples' and ``md.jit``'s), opens it (:meth:`open`, which makes it this thread's
    deepest level), boxes its inputs with it (``box.level`` is the engine) and closes it
    (:meth:`close`). ``depth`` orders nested engines: inner transforms are deeper. While open,
    :func:`bind` hands it every primitive whose deepest argument it boxed:

    * ``process(primitive, args, params)``: apply a primitive to arguments of which at least
      one is boxed by this engine, and box the result (a tuple of results for a primitive with
      ``multiple_results``).

    Class attributes say what kind of interpreter it is:

    * ``tracks_jumps = True``: the engine follows finite jumps of values (stochastic triples,
      batching, tracing), so it must see piecewise-constant primitives, whose outputs jump.
      Every other engine follows only derivatives, to which those primitives are constants:
      :func:`bind` gives them the unboxed values and returns the constant unboxed.
    * ``batches = True`` (``vmap``'s engine) with ``batch_axes`` on its boxes (a class
      attribute of ``Box``, 0 by default): leading axes of the box's value that are a batch,
      left out of the shape every op sees (:func:`shape_of`).
    * ``stages = True`` (``md.jit``'s tracing): it follows values, not derivatives (see
      :func:`without_derivatives`).

    and an engine may have ``sample_discrete(dist, u, params)``: draw a discrete sample by
    inverting the uniforms ``u`` at parameters boxed by it (``minidiff.random``'s samplers ask
    the parameters' deepest engine, :func:`deepest_level`, before any ``estimator=``).
    """

    tracks_jumps = False
    batches = False
    stages = False
    depth = 0          # set by open(): one more than the deepest engine open before it
    uid = 0            # set by open(): unique over the process (generators stamp it)
    active = False     # True from open() to close(); values boxed by it are then traced

    def process(self, primitive: Primitive, args: tuple, params: dict) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not process primitives")

    @property
    def level(self) -> Engine:
        """The level this engine runs (itself: a level is its engine)."""
        return self

    @property
    def engine(self) -> Engine:
        """The engine that runs this level (itself: a level is its engine)."""
        return self

    def open(self) -> Engine:
        """Make this engine this thread's deepest open level; returns it."""
        if self.uid:
            raise RuntimeError(f"{self!r} was opened before; an engine runs one level once "
                               f"(make a new one for each transform)")
        stack = _open_levels.get()
        self.depth = (stack[-1].depth if stack else 0) + 1
        self.uid = next(_level_counter)
        self.active = True
        if self.batches:
            with _batching_lock:
                _batching_levels[0] += 1
        _open_levels.set(stack + (self,))
        return self

    def close(self) -> None:
        """Pop this engine (this thread's deepest level); values it boxed become inert."""
        was_active = self.active
        self.active = False
        stack = _open_levels.get()
        if not stack or stack[-1] is not self:
            raise RuntimeError(f"close_level: {self!r} is not this thread's deepest open level "
                               f"(open: {list(stack)}); levels must close in the order they "
                               f"opened, in the thread that opened them")
        _open_levels.set(stack[:-1])
        if was_active and self.batches:
            with _batching_lock:
                _batching_levels[0] -= 1

    def __enter__(self) -> Engine:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(depth={self.depth})"


Level = Engine  # the name the rules and boxes use for "the engine that boxed this value"


# The open levels, outermost first, per thread (and per asyncio task): a context variable
# holding a tuple, so a new thread starts with none and two threads can differentiate at once.
_open_levels: contextvars.ContextVar[tuple[Engine, ...]] = contextvars.ContextVar(
    "minidiff_open_levels", default=())


# How many batching levels (engines with ``batches = True``: vmap) are open, in all threads: while
# none is, shape_of need not look for batch axes. A list, so the hot path reads one item.
_batching_levels = [0]
_batching_lock = threading.Lock()


def open_level(engine: Engine) -> Engine:
    """``engine.open()``: push ``engine`` as this thread's deepest level and return it."""
    return engine.open()


def close_level(level: Engine) -> None:
    """``level.close()``: pop this thread's deepest level; values it boxed become inert."""
    level.close()


def reopen_level(level: Engine) -> Any:
    """Put a closed ``level`` back on this thread's stack as its deepest (a checkpointed
    segment re-recorded by a backward pass that runs after its transform returned), so that
    levels opened meanwhile are deeper than it. Returns the token for :func:`restore_levels`."""
    return _open_levels.set(_open_levels.get() + (level,))


def restore_levels(token: Any) -> None:
    """Undo :func:`reopen_level`."""
    _open_levels.reset(token)


def active_levels() -> tuple[Level, ...]:
    """The levels open now in this thread, outermost first (the last one is the deepest)."""
    return _open_levels.get()


def deepest_level(*args: Any) -> Level | None:
    """The deepest active level among ``args``' boxes (None when nothing is boxed): the level
    whose engine :func:`bind` hands a primitive of these arguments to."""
    top: Level | None = None
    for a in args:
        a = strip_inactive(a)
        if isinstance(a, Box) and (top is None or a.level.depth > top.depth):
            top = a.level
    return top


# ---------------------------------------------------------------------------------------------
# The ops table: what boxed values' operators call
# ---------------------------------------------------------------------------------------------

_OPS: dict[str, Callable[..., Any]] = {}


def register_ops(**ops: Callable[..., Any]) -> None:
    """Name the ops that ``Box``'s operators and methods call (``minidiff.ops`` does this as it
    defines them). A name is given to one op only: registering another under it is an error."""
    for name, fn in ops.items():
        if _OPS.get(name, fn) is not fn:
            raise ValueError(f"register_ops: {name!r} is already the op {_OPS[name]!r}")
        _OPS[name] = fn


def op(name: str) -> Callable[..., Any]:
    """The registered op called ``name``, e.g. ``op("add")`` (see :func:`register_ops`)."""
    try:
        return _OPS[name]
    except KeyError:
        raise LookupError(f"no op named {name!r} is registered; registered ops: "
                          f"{', '.join(sorted(_OPS))}") from None


def _method(name: str) -> Callable[..., Any]:
    """A method of ``Box`` that calls the op ``name`` with the box first."""
    def method(self: Box, *args: Any, **kwargs: Any) -> Any:
        return _OPS[name](self, *args, **kwargs)

    method.__name__ = name
    return method


def _unary(name: str) -> Callable[[Box], Any]:
    def method(self: Box) -> Any:
        return _OPS[name](self)

    method.__name__ = name
    return method


def _binary(name: str) -> Callable[[Box, Any], Any]:
    def method(self: Box, other: Any) -> Any:
        return _OPS[name](self, other)

    method.__name__ = name
    return method


def _reflected(name: str) -> Callable[[Box, Any], Any]:
    def method(self: Box, other: Any) -> Any:
        return _OPS[name](other, self)

    method.__name__ = f"r{name}"
    return method


# ---------------------------------------------------------------------------------------------
# Boxed values
# ---------------------------------------------------------------------------------------------


class Box:
    """A value carrying a level: the common base of ``Dual`` and ``TapeValue``.

    ``value`` is the primal, which may itself be boxed at a lower level. Boxes support NumPy's
    operators and the usual array attributes, each routed through a minidiff op (from the ops
    table). Comparisons give plain boolean arrays (their derivative is zero), except under an
    engine that tracks jumps.

    No escapes: while its transform runs, a box refuses to become a Python or NumPy value
    (``float``, ``int``, ``complex``, ``np.asarray``, NumPy functions and ufuncs), because the
    derivative of whatever is computed from that value would silently be zero. NumPy's binary
    operators with an array on the left (``ndarray + box``) go to minidiff's ops, as Python's
    reflected operators would. ``bool()`` stays allowed: eager control flow on values (``if x
    > 0``) gives the derivative of the branch taken, which is right wherever the branch does
    not change (stochastic triples, whose alternative world may take the other branch, refuse
    it). A box whose transform has finished (a value that leaked out of a closure) converts to
    its value as a plain array would.
    """

    __slots__ = ("value", "level")
    __array_priority__ = 1000  # NumPy scalars and old-style operands defer to Box as well
    __hash__ = object.__hash__  # defining __eq__ would otherwise remove it
    # How many leading axes of ``value`` are a batch rather than the value's own: 0 for the AD
    # boxes, 1 for ``vmap``'s (see :func:`shape_of`).
    batch_axes = 0

    # shape information comes from the innermost raw array, less the batch axes on the way
    @property
    def shape(self) -> tuple[int, ...]:
        return shape_of(self)

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
        x: Any = self
        while isinstance(x, Box):
            if x.batch_axes and x.level.active:  # one truth value per batch element
                raise TracerConversionError(batched_escape_message("bool() (an if, while, and, "
                                                                   "or) of"))
            x = x.value
        return bool(x)

    def __float__(self) -> float:
        if is_traced(self):
            raise TracerConversionError(escape_message("float()", "a Python float"))
        return float(raw(self))

    def __int__(self) -> int:
        if is_traced(self):
            raise TracerConversionError(escape_message("int()", "a Python int"))
        return int(raw(self))

    def __complex__(self) -> complex:
        if is_traced(self):
            raise TracerConversionError(
                escape_message("complex()", "a Python complex") + " (minidiff is "
                "real-valued: complex numbers have no derivative rules here)")
        return complex(raw(self))

    def __index__(self) -> int:
        raise TypeError(
            "a traced (differentiated) value cannot be used as an index; "
            "wrap it in minidiff.stop_gradient() if its derivative is not wanted"
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        if is_traced(self):
            raise TracerConversionError(
                "np.asarray (or np.array, or storing into a NumPy array) of a traced value "
                "would drop its derivative; keep it traced with minidiff ops "
                "(minidiff.asarray, minidiff.stack, minidiff.where), or convert "
                "minidiff.stop_gradient(x) if no derivative is wanted")
        value = raw(self)
        host = (_backend.backend_of(value) or _backend.get_backend()).to_host(value)
        return host if dtype is None else host.astype(dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = getattr(ufunc, "__name__", str(ufunc))
        if not any(is_traced(x) for x in (*inputs, *kwargs.get("out", ()))):
            # every box here belongs to a finished transform: NumPy on the values
            return getattr(ufunc, method)(*map(raw, inputs), **kwargs)
        op_name = UFUNC_OPERATORS.get(name)
        if method == "__call__" and op_name is not None and not kwargs:
            return _OPS[op_name](*inputs)  # what Python's reflected operator would do
        call = f"np.{name}" if method == "__call__" else f"np.{name}.{method}"
        if "out" in kwargs:
            raise TracerConversionError(
                f"{call} with out= on a traced value: a NumPy array cannot hold a traced "
                f"value (in-place updates drop the derivative); compute a new value instead, "
                f"e.g. a = a + x")
        raise TracerConversionError(numpy_call_message(call, ufunc_op_name(name, method)))

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        name = getattr(func, "__name__", str(func))
        if name in _METADATA_FUNCTIONS:  # np.shape(x), np.ndim(x): no value escapes
            return _METADATA_FUNCTIONS[name](args[0])
        if not _holds_traced((args, kwargs)):
            return func(*_strip_all(args), **_strip_all(kwargs))
        raise TracerConversionError(numpy_call_message(f"np.{name}", name))

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(
            "item assignment on a traced array is not differentiable (arrays are immutable "
            "under minidiff transforms); build the new array instead, e.g. "
            "x = minidiff.where(mask, new_values, x)"
        )

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    __add__, __radd__ = _binary("add"), _reflected("add")
    __sub__, __rsub__ = _binary("subtract"), _reflected("subtract")
    __mul__, __rmul__ = _binary("multiply"), _reflected("multiply")
    __truediv__, __rtruediv__ = _binary("divide"), _reflected("divide")
    __pow__, __rpow__ = _binary("power"), _reflected("power")
    __matmul__, __rmatmul__ = _binary("matmul"), _reflected("matmul")
    __neg__ = _unary("negative")
    __abs__ = _unary("abs")
    __getitem__ = _binary("getitem")
    __eq__ = _binary("equal")
    __ne__ = _binary("not_equal")
    __lt__ = _binary("less")
    __le__ = _binary("less_equal")
    __gt__ = _binary("greater")
    __ge__ = _binary("greater_equal")
    __and__, __rand__ = _binary("logical_and"), _reflected("logical_and")
    __or__, __ror__ = _binary("logical_or"), _reflected("logical_or")
    __invert__ = _unary("logical_not")
    sum = _method("sum")
    mean = _method("mean")
    max = _method("max")
    min = _method("min")
    prod = _method("prod")

    def __pos__(self) -> Box:
        return self

    def reshape(self, *shape: Any) -> Any:
        return _OPS["reshape"](self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Any:
        return _OPS["transpose"](self, axes or None)

    @property
    def T(self) -> Any:  # noqa: N802 (NumPy's name)
        return _OPS["transpose"](self)

    @property
    def mT(self) -> Any:  # noqa: N802 (NumPy's name)
        return _OPS["matrix_transpose"](self)


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


def without_derivatives(x: Any) -> Any:
    """``x`` as a constant to every derivative: what ``stop_gradient`` returns.

    The boxes of every level that follows derivatives (forward, reverse, triples) are removed.
    A level whose engine *stages* a program (``stages = True``: ``minidiff.jit``'s tracing)
    follows values, not derivatives, so its box is kept (with everything outside it removed):
    the program then records the cut instead of baking the traced value in as a constant.
    A batching box (``batch_axes`` > 0, ``vmap``) is a value too, one per batch element: it is
    kept, around its value without derivatives. With neither open this is :func:`raw`.
    """
    while isinstance(x, Box):
        if x.level.active:
            if x.batch_axes:
                inner = without_derivatives(x.value)
                return x if inner is x.value else type(x)(inner, x.level)
            if x.level.stages:
                return x
        x = x.value
    return x


def is_traced(x: Any) -> bool:
    """True when ``x`` is boxed at a level whose transform is still running (at any depth)."""
    while isinstance(x, Box):
        if x.level.active:
            return True
        x = x.value
    return False


def _holds_traced(x: Any) -> bool:
    if isinstance(x, tuple | list):
        return any(_holds_traced(v) for v in x)
    if isinstance(x, dict):
        return any(_holds_traced(v) for v in x.values())
    return is_traced(x)


def _strip_all(x: Any) -> Any:
    if isinstance(x, tuple | list):
        return type(x)(_strip_all(v) for v in x)
    if isinstance(x, dict):
        return {k: _strip_all(v) for k, v in x.items()}
    return raw(x)


# np.shape(x), np.ndim(x) on a traced value: metadata, no value escapes
_METADATA_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "shape": lambda x: shape_of(x), "ndim": lambda x: len(shape_of(x)),
}


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array, a boxed value or a Python number (``()``).

    A boxed value's shape is that of the raw array inside, less the leading batch axes of the
    active batching boxes on the way (``Box.batch_axes``): under ``vmap`` a value reports the
    shape of one batch element, whichever levels box it inside or outside, so every rule and
    op sees per-example shapes. (While no batching level is open in any thread, no box has
    batch axes to drop, and the walk skips the question.)"""
    if _batching_levels[0]:
        return _batched_shape_of(x)
    while isinstance(x, Box):
        x = x.value
    shape = getattr(x, "shape", None)
    if shape is None:
        if type(x) is list or type(x) is tuple:  # nested lists of numbers, as NumPy reads them
            return (len(x), *shape_of(x[0])) if x else (0,)
        return ()
    return shape if type(shape) is tuple else tuple(shape)


def _batched_shape_of(x: Any) -> tuple[int, ...]:
    drop = 0
    while isinstance(x, Box):
        if x.batch_axes and x.level.active:
            drop += x.batch_axes
        x = x.value
    shape = getattr(x, "shape", None)
    if shape is None:
        if type(x) is list or type(x) is tuple:
            return (len(x), *shape_of(x[0])) if x else (0,)
        return ()
    shape = shape if type(shape) is tuple else tuple(shape)
    return shape[drop:] if drop else shape


def ndim_of(x: Any) -> int:
    return len(shape_of(x))


# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------

JvpRule = Callable[..., Any]
VjpRule = Callable[..., Sequence[Any]]


def _save_everything(args: Sequence[Any], out: Any, needs: Sequence[bool], **params: Any) -> Any:
    return (tuple(args), out)


def bind(primitive: Primitive, *args: Any, **params: Any) -> Any:
    """Apply ``primitive`` to ``args``, letting the deepest level among them handle it.

    With no boxed argument this is just ``impl`` on raw arrays. A non-differentiable
    primitive skips every level whose engine does not track jumps.
    """
    top: Level | None = None
    constants = False
    for a in args:
        if isinstance(a, Box):
            if not a.level.active:  # boxed by a transform that has finished: unbox and retry
                return bind(primitive, *map(strip_inactive, args), **params)
            if top is None or a.level.depth > top.depth:
                top = a.level
        elif type(a) is not float:
            constants = True
    if top is None:
        return _apply_raw(primitive, args, params)
    if constants and _check_constants(primitive, args):
        # a (nested) list or tuple of traced values means the array they make, as in NumPy
        return bind(primitive, *map(stacked, args), **params)
    if primitive.differentiable or top.tracks_jumps:
        return top.process(primitive, args, params)
    # piecewise constant: unbox every level whose engine follows only derivatives (to them the
    # result is a constant), down to one that tracks jumps
    stripped = []
    boxed = False
    for a in args:
        while isinstance(a, Box) and not a.level.tracks_jumps:
            a = a.value
        boxed = boxed or isinstance(a, Box)
        stripped.append(a)
    if boxed:
        return bind(primitive, *stripped, **params)
    return _apply_raw(primitive, stripped, params)


_PYTHON_SCALARS = (float, int, bool)


def _check_constants(primitive: Primitive, args: Sequence[Any]) -> bool:
    """Check the arguments that are not boxes when some other argument is traced.

    Returns True when one of them is a (nested) list or tuple holding boxes: the caller
    stacks it (never a constant, which would drop those boxes' derivatives). Constants must be
    real (complex ones have no rules here) and hold numbers (an object array of boxes would
    hide them from every engine).
    """
    for a in args:
        if type(a) in _PYTHON_SCALARS or isinstance(a, Box):
            continue
        if isinstance(a, list | tuple):
            if holds_box(a):
                return True
            continue
        dtype = getattr(a, "dtype", None)
        if getattr(dtype, "kind", None) == "O":
            raise TypeError(
                f"{primitive.name}: an array of dtype object meets a traced value; its "
                f"entries would be hidden from differentiation. Build the array with "
                f"minidiff.stack([...]) or minidiff.asarray([...]) instead of np.array")
        if type(a) is complex or is_complex_dtype(dtype):
            raise TypeError(
                f"{primitive.name}: a complex value meets a traced one, but minidiff "
                f"differentiates real-valued functions only (a complex derivative needs "
                f"conjugation rules it does not have); carry the real and imaginary parts as "
                f"two real arrays")
    return False


def _apply_raw(primitive: Primitive, args: Sequence[Any], params: dict) -> Any:
    backend = _backend.get_backend()
    array_type = backend.array_type
    has_array = False
    for a in args:
        if isinstance(a, array_type):
            has_array = True
        elif type(a) not in _PYTHON_SCALARS:  # slow path: lists, other numbers, strays
            if any(isinstance(v, list | tuple) and holds_box(v) for v in args):
                # a list of traced values means the array they make (as in NumPy)
                return bind(primitive, *map(stacked, args), **params)
            args = _raw_arguments(primitive, args, backend)
            break
    else:
        if not has_array:  # only Python numbers: give the op an array to work on
            args = _raw_arguments(primitive, args, backend)
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


class Primitive:
    """One operation, defined once for every engine.

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
        differentiable: False for a piecewise-constant op (a comparison, ``sign``, ``floor``):
            it takes no rules, and engines that follow derivatives never see it (see
            :class:`Level`).
        batch: the batching rule (``vmap``), ``batch(size, args, batched, **params)``. Each
            ``args[i]`` with ``batched[i]`` True carries a leading batch axis of length
            ``size`` before its own shape; the others are shared by every batch element. The
            rule returns the output (or a tuple of outputs) with the batch axis leading,
            written with minidiff ops (so levels further out see it). None means: the
            elementwise rule for ``elementwise`` primitives (line the batch axes up with
            NumPy's right-aligned broadcasting), else a loop over the batch that stacks one
            call per element (exact, slow; ``docs/vmap.md`` lists who uses it).
        multiple_results: True when ``impl`` returns a tuple of outputs. Every engine then
            returns a tuple: ``jvp`` returns a tuple of tangents (None for an output without
            one), ``vjp`` receives a list of cotangents, one per output (None for an output
            that got none).
        value_and_jvp: a joint forward rule, ``value_and_jvp(primals, tangents, **params)
            -> (out, out_tangent)``, used instead of binding the primal and calling ``jvp``
            (a jitted call runs one program for both; ``custom_jvp``'s rule gives both).
        value_and_save: a joint reverse rule, ``value_and_save(primals, needs, **params) ->
            (out, residuals, linked)``, used instead of binding the primal and calling
            ``save``. ``linked`` (None for all) lists the outputs of a primitive with
            several results that carry a derivative; empty means none does, and nothing is
            recorded.

    Executor fields: what an executor of ``md.jit`` may do instead of calling ``impl``. Each
    is a fact about the op, declared where the op is defined; the defaults promise nothing, so
    they are always safe.

        fresh: its result is always a new array, never a view of an argument (so a buffer it
            writes may be reused once the result is dead).
        into: the name of the backend kernel (``Backend.kernels.into[into]``) that computes it
            bit for bit into a given buffer, ``kernel(*args, out=buffer)``.
        direct: the name of a backend function (``Backend.kernels.direct[direct]``) that
            computes exactly what ``impl`` does with fewer indirections.
        loop: how one element of its result reads in a compiled elementwise loop, a format
            string of its arguments' elements (``"({0} + {1})"``); only for ops that a loop
            computes exactly as the array library does (IEEE arithmetic, comparisons, logic).
        passes_through: the position of the argument ``impl`` returns unchanged (the value of
            ``stop_gradient``), or None.
        selects: argument 0 is a boolean condition choosing, element by element, between the
            others (``where``): the others alone decide the result's dtype.
        coerce_numbers: what ``impl`` makes of a Python-number argument (``where``: a float),
            for an executor that converts constant arguments once instead of on every call.
        negation_commutes: f(−u) = −f(u) exactly for its one array argument (a sum, a
            reshape), so a negation may move across it.
        expands: its result only repeats its one argument's elements (``broadcast_to``), so
            an elementwise op costs less applied before it than after it.
        scalar_loop: how one element reads in a loop over single elements that may use libm's
            scalar functions (``"math.exp({0})"``), which can differ from the array library
            in the last bit; ``md.scan``'s whole-loop kernel uses it where ``loop`` is None.
    """

    __slots__ = ("name", "impl", "jvp", "vjp", "save", "broadcasts", "elementwise",
                 "differentiable", "batch", "multiple_results", "value_and_jvp",
                 "value_and_save", "fresh", "into", "direct", "loop", "passes_through",
                 "selects", "coerce_numbers", "negation_commutes", "expands",
                 "scalar_loop")

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
        differentiable: bool = True,
        batch: Callable[..., Any] | None = None,
        multiple_results: bool = False,
        value_and_jvp: Callable[..., Any] | None = None,
        value_and_save: Callable[..., Any] | None = None,
        fresh: bool = False,
        into: str | None = None,
        direct: str | None = None,
        loop: str | None = None,
        passes_through: int | None = None,
        selects: bool = False,
        coerce_numbers: Callable[[Any], Any] | None = None,
        negation_commutes: bool = False,
        expands: bool = False,
        scalar_loop: str | None = None,
    ) -> None:
        if not differentiable and (jvp is not None or vjp is not None):
            raise ValueError(f"{name}: a non-differentiable primitive takes no jvp or vjp rule")
        self.name = name
        self.impl = impl
        self.jvp = jvp
        self.vjp = vjp
        self.save = save if save is not None else _save_everything
        self.broadcasts = broadcasts
        self.elementwise = elementwise
        self.differentiable = differentiable
        self.batch = batch
        self.multiple_results = multiple_results
        self.value_and_jvp = value_and_jvp
        self.value_and_save = value_and_save
        self.fresh = fresh
        self.into = into
        self.direct = direct
        self.loop = loop
        self.passes_through = passes_through
        self.selects = selects
        self.coerce_numbers = coerce_numbers
        self.negation_commutes = negation_commutes
        self.expands = expands
        self.scalar_loop = scalar_loop

    __call__ = bind  # calling a primitive binds it, with no wrapper in between

    def __repr__(self) -> str:
        return f"<minidiff primitive {self.name}>"


def holds_box(x: Any) -> bool:
    """True when ``x`` is a box or a (nested) list or tuple holding one."""
    if isinstance(x, list | tuple):
        return any(holds_box(v) for v in x)
    return isinstance(x, Box)


def stacked(x: Any) -> Any:
    """A (nested) list holding boxes as one array, stacked with minidiff ops (differentiable);
    anything else unchanged."""
    if isinstance(x, list | tuple) and holds_box(x):
        return _OPS["stack"]([stacked(v) for v in x])
    return x


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
    other = _backend.backend_of(a)
    if other is not None:
        raise _backend.BackendError(
            f"{primitive.name}: an array of the {other.name!r} backend was mixed with the "
            f"current {backend.name!r} backend; move it with "
            f"minidiff.asarray(minidiff.to_host(x)) or switch with minidiff.use_backend"
        )
    raise TypeError(
        f"{primitive.name}: cannot use an argument of type {type(a).__name__} as an array "
        f"of the {backend.name!r} backend; pass an array, or a list of numbers or of traced "
        f"values (minidiff.stack([...]) makes one array of them)"
    )

