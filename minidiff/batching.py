"""Batching: the engine behind ``md.vmap``.

``vmap(f)`` runs ``f`` once on a whole batch instead of once per element. It opens a level run
by a :class:`BatchEngine` and boxes each batched input as a :class:`BatchTracer`, whose value
holds every element stacked along a leading *batch axis* (length B): shape ``(B, *S)`` for
elements of shape ``S``. The box reports the element's shape ``S`` (``Box.batch_axes = 1``,
read by :func:`minidiff.core.shape_of`), so ``f`` and every op inside it see one element, as
in the loop ``[f(x[b]) for b in range(B)]``.

Each primitive bound on a batch tracer comes to :meth:`BatchEngine.process`, which unboxes its
own level, applies the primitive's *batching rule* to the stacked values and boxes the result.
A rule knows which arguments carry the batch axis (an argument without it is shared by every
element) and returns the output with the batch axis leading:

* elementwise ops (the default for ``Primitive(elementwise=True)``): NumPy aligns shapes from
  the right, so a batched ``(B, *S)`` meeting an element rank R > len(S) becomes
  ``(B, 1, ..., 1, *S)`` first (:func:`minidiff.ops.linear.batch_aligned`); then the op runs
  once on the stacked values;
* ops with axes (sum, max, cumsum, transpose, reshape, getitem, ...): the same op with every
  axis shifted by one past the batch axis, and the batch length prepended to shapes;
* everything else without a rule of its own: a loop over the batch, one call per element,
  stacked (exact; ``docs/vmap.md`` says which ops use it).

Rules are written with minidiff ops, so levels further out (``grad`` outside ``vmap``) see
them, and levels further in (``vmap`` of ``grad``) box values inside the stacked ones: every
nesting works as it does for the AD engines. The engine sees piecewise-constant primitives too
(``tracks_jumps``): a comparison's result is data, batched like any other.

Values, not derivatives: ``stop_gradient`` keeps a batch tracer (one value per element), and
a batch tracer refuses Python control flow (``if x > 0``), ``float()`` and ``np.asarray``,
which would need one answer for the whole batch (use ``md.where``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .core import Box, Engine, Level, Primitive, TracerConversionError, active_levels, bind
from .escapes import batched_escape_message
from .ops import getitem, stack
from .ops.linear import batch_aligned

__all__ = ["BatchTracer", "BatchEngine", "BatchingError", "batch_levels", "check_batched_draw",
           "register_batched_type", "batched_type_combiner", "is_batch_level", "unbatched_raw"]


class BatchingError(TracerConversionError):
    """A batched value was asked for one Python or NumPy value, or a draw under ``vmap`` would
    give every batch element the same random numbers."""


class BatchTracer(Box):
    """Every batch element's value of one array, stacked along a leading batch axis.

    Attributes:
        value: the stacked values, shape ``(B, *S)`` (possibly boxed at lower levels);
            ``shape`` reports ``S``.
        level: the batching level that owns the batch axis.
    """

    __slots__ = ()
    batch_axes = 1

    def __init__(self, value: Any, level: Level) -> None:
        self.value = value
        self.level = level

    def __repr__(self) -> str:
        return f"BatchTracer({self.value!r})"

    def _refuse(self, what: str) -> BatchingError:
        return BatchingError(batched_escape_message(what))

    def __float__(self) -> float:
        if self.level.active:
            raise self._refuse("float() of")
        return super().__float__()

    def __int__(self) -> int:
        if self.level.active:
            raise self._refuse("int() of")
        return super().__int__()

    def __complex__(self) -> complex:
        if self.level.active:
            raise self._refuse("complex() of")
        return super().__complex__()

    def __index__(self) -> int:
        raise self._refuse("using as an index or a size")

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        if self.level.active:
            raise self._refuse("np.asarray (or storing into a NumPy array) of")
        return super().__array__(dtype, copy)


def unbatched_raw(x: Any, where: str, why: str) -> Any:
    """The raw array inside ``x``, for code that reads it as *one* element's numbers.

    :func:`minidiff.core.raw` strips every box, a batching box too: under ``vmap`` it hands
    back every element stacked, shape ``(B, *S)``, where the caller expects ``S``. This strips
    the derivative boxes the same way but refuses a box of a running ``vmap``, with a
    :class:`BatchingError` that starts with ``where`` (the function) and says ``why`` the raw
    numbers are read (what would differ between the batch elements).
    """
    while isinstance(x, Box):
        if x.batch_axes and x.level.active:
            raise BatchingError(
                f"{where}: {why}, but under minidiff.vmap that value holds every batch "
                f"element's numbers at once; run the elements one after another (a Python "
                f"loop over the batch) instead of under vmap")
        x = x.value
    return x


class BatchEngine(Engine):
    """Processes primitives at one batching level, whose batch axis has length ``size``."""

    tracks_jumps = True  # comparisons, sign, floor: their values differ per element
    batches = True       # its boxes carry a batch axis (see minidiff.core.shape_of)

    def __init__(self, size: int) -> None:
        self.size = size

    def process(self, primitive: Primitive, args: tuple, params: dict) -> Any:
        level = self
        values, batched = [], []
        for a in args:
            if isinstance(a, BatchTracer) and a.level is level:
                values.append(a.value)
                batched.append(True)
            else:
                values.append(a)
                batched.append(False)
        rule = primitive.batch
        if rule is not None:
            out = rule(self.size, values, batched, **params)
        elif primitive.elementwise:
            out = bind(primitive, *batch_aligned(values, batched), **params)
        else:
            out = loop_rule(primitive, self.size, values, batched, params)
        if isinstance(out, tuple):
            return tuple(BatchTracer(o, level) for o in out)
        return BatchTracer(out, level)


def loop_rule(primitive: Primitive, size: int, values: Sequence[Any], batched: Sequence[bool],
              params: dict) -> Any:
    """The fallback rule: bind ``primitive`` once per batch element and stack the results
    (tuples of outputs position by position). Exact for any primitive; costs B calls."""
    outs = [bind(primitive, *[getitem(v, b) if f else v for v, f in zip(values, batched)],
                 **params) for b in range(size)]
    if outs and isinstance(outs[0], tuple):
        return tuple(stack([o[j] for o in outs]) for j in range(len(outs[0])))
    return stack(outs)


def is_batch_level(level: Level) -> bool:
    return isinstance(level, BatchEngine)


def batch_levels() -> tuple[int, ...]:
    """The ids of the batching levels open now in this thread, outermost first: what a
    generator is stamped with when it is made (see :func:`check_batched_draw`)."""
    return tuple(lv.uid for lv in active_levels() if isinstance(lv, BatchEngine))


def check_batched_draw(born: tuple[int, ...], what: str) -> None:
    """Refuse a draw (by the sampler ``what``) from a generator stamped ``born`` made outside
    the innermost ``vmap`` open now: in the loop ``[f(x[b]) for b]`` that generator would
    advance between elements and give each other numbers, but under ``vmap`` it would be
    drawn once, the same numbers for every element."""
    levels = batch_levels()
    if levels and levels[-1] not in born:
        raise BatchingError(
            f"{what}: a random generator made outside minidiff.vmap drew inside it. In a loop "
            f"over the batch it would advance between elements, but vmap runs the function "
            f"once, so every element would get the same numbers. Pass one generator per "
            f"element as a batched argument, e.g. vmap(f)(thetas, rng.spawn(n)), or make a "
            f"keyed stream inside the function from a seed")


# Objects that a list (or tuple) of batches as one: vmap combines ``[g_0, ..., g_{B-1}]``
# given in_axes 0 into one batched object (minidiff.random registers its Generator).
_BATCHED_TYPES: dict[type, Callable[[list, Level], Any]] = {}


def register_batched_type(cls: type, combine: Callable[[list, Level], Any]) -> None:
    """Let ``vmap`` batch a list of ``cls`` objects: ``combine(items, level)`` makes the one
    object the function sees (e.g. a generator that draws each element's numbers from its
    own generator)."""
    _BATCHED_TYPES[cls] = combine


def batched_type_combiner(items: Any) -> Callable[[list, Level], Any] | None:
    """The registered ``combine`` for a non-empty list or tuple of objects of one registered
    type, else None."""
    if not isinstance(items, list | tuple) or not items:
        return None
    for cls, combine in _BATCHED_TYPES.items():
        if all(isinstance(i, cls) for i in items):
            return combine
    return None
