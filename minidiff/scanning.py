"""``md.scan``: a loop of T steps as one primitive, with JAX's ``lax.scan`` semantics.

    def step(carry, x):
        carry = carry + x            # minidiff ops
        return carry, carry * carry  # (next carry, this step's y)

    final, ys = md.scan(step, init, xs)      # ys stacks each step's y: shape (T, ...)

is the loop

    carry, ys = init, []
    for x in xs:                     # rows of xs (leading axis)
        carry, y = step(carry, x)
        ys.append(y)
    final, ys = carry, md.stack(ys)

but ``step`` is traced once (by ``md.jit``'s tracing) into a program, and the loop is one
primitive (:mod:`minidiff.scan_primitive`) that runs the program T times without dispatching
each op, and that every transform differentiates through programs derived from the body: a
scan of its JVP in forward mode, a reverse scan of its VJP over saved residuals in reverse mode.

Under ``vmap`` the primitive's batching rule runs one scan of the batched body; under a
transform with no scan rules (stochastic triples) ``md.scan`` runs the loop above, op by op.
``executor="numba"`` compiles the whole loop into one kernel where it can
(:mod:`minidiff.jit.loop_kernel`).

Carries, xs and ys are pytrees (nested tuples, lists, dicts of arrays). Arrays the body reads
from its closure are constants of the loop; those an enclosing transform differentiates
(parameters under ``grad``) are lifted into inputs of the body, so their derivatives are summed
over the steps. Random numbers come from the arguments: draw them outside and pass them in
``xs`` (one row per step) or in the carry. The body is traced twice and the programs compared,
so a body that draws from a generator it closes over (the same numbers at every step, in a
replay) is refused, as ``md.jit`` refuses it. Inside a traced function (``md.jit``, the body of
an enclosing scan) the body is traced once: the enclosing function is traced twice, and the
comparison of its two programs compares this scan's bodies too.

Inside a traced function a scan is recorded as **one** equation with several results (the final
carries, the stacked ys) whose parameter ``body`` is the body program, so a jitted program does
not grow with the number of steps, and the listing shows the body indented under the scan.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import backend as _backend
from .batching import BatchEngine
from .core import Box, ModeError, active_levels, close_level, open_level, shape_of
from .forward import ForwardEngine
from .jit.api import _same_array, flatten, unflatten
from .jit.derive import concrete
from .jit.executors import check_executor
from .jit.program import Const, Program, Var
from .jit.simplify import prune
from .jit.tracing import JitError, TraceEngine, Tracer, compare_traces
from .ops import stack
from .reverse import ReverseEngine
from .scan_derive import step_sample
from .scan_primitive import scan_p
from .validation import check_int, check_positive_int

__all__ = ["scan", "ScanError"]


class ScanError(JitError):
    """A body ``md.scan`` cannot trace honestly, or a scan's arguments that do not fit."""


class _BodyEngine(TraceEngine):
    """Tracing a scan body: values of enclosing transforms read from the closure become extra
    inputs (constants of the loop that keep their derivatives), instead of an error."""

    def __init__(self, name: str, executor: str) -> None:
        super().__init__(name, executor)
        self.captured: list[Any] = []
        self._lifted: dict[int, Var] = {}

    def _lift(self, a: Any) -> tuple[Var, Any]:
        var = self._lifted.get(id(a))
        if var is None:
            var = self.new_input(concrete(a)).var
            self._lifted[id(a)] = var
            self.captured.append(a)
        return var, concrete(a)

    def _atom(self, a: Any, op: str) -> tuple[Any, Any]:
        if isinstance(a, Box) and not (isinstance(a, Tracer) and a.level is self.level):
            return self._lift(a)
        return super()._atom(a, op)

    def output_atom(self, x: Any) -> tuple[Any, Any]:
        if isinstance(x, Box) and not (isinstance(x, Tracer) and x.level is self.level):
            return self._lift(x)
        return super().output_atom(x)


def _trace_body(fn: Callable[..., list[Any]], inputs: list[Any], name: str, executor: str
                ) -> tuple[Program, list[Any]]:
    engine = _BodyEngine(f"{name} (the body of md.scan)", executor)
    level = open_level(engine)
    try:
        tracers = [engine.new_input(x) for x in inputs]
        outs = list(fn(*tracers))
        atoms = [engine.output_atom(o)[0] for o in outs]
    finally:
        close_level(level)
        level.active = True  # an escaped tracer still reaches the engine, which explains
        engine.finished = True
    backend = _backend.get_backend()
    program = Program(name, engine.inputs, engine.equations, atoms, executor=executor,
                      backend=backend.name)
    return program, engine.captured


def _leaves(tree: Any, what: str, backend: _backend.Backend) -> tuple[list[Any], Any]:
    leaves, structure = flatten(tree)
    out = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, bool | int | float):
            leaf = backend.asarray(leaf)
        elif leaf is None or not isinstance(leaf, (Box, backend.array_type)):
            raise TypeError(f"md.scan: leaf {i} of {what} is a {type(leaf).__name__}, not an "
                            f"array or a number; carries and xs are pytrees of arrays")
        out.append(leaf)
    return out, structure


def _type(x: Any) -> tuple[tuple[int, ...], str]:
    """Shape (of one batch element, under vmap) and dtype."""
    value = _raw(x)
    shape = shape_of(x) if hasattr(value, "shape") else ()
    return tuple(shape), str(getattr(value, "dtype", type(value)))


def scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any = None,
         length: int | None = None, reverse: bool = False, unroll: int = 1,
         executor: str | None = None) -> tuple[Any, Any]:
    """Run ``carry, y = f(carry, x)`` over the rows of ``xs``, as one differentiable primitive.

    Args:
        f: the step, ``f(carry, x) -> (carry, y)``, written with minidiff ops. The carry it
            returns must have the structure, shapes and dtypes of the one it got.
        init: the first carry (a pytree of arrays).
        xs: a pytree of arrays with a common leading axis of length T (step t reads row t of
            each), or None (``f`` gets ``x = None``; give ``length``).
        length: T, needed when ``xs`` is None; when both are given they must agree.
        reverse: run t = T − 1, ..., 0 (the ys keep their row index, as in JAX).
        unroll: accepted for JAX's signature (an int ≥ 1) and ignored: the replay executor
            runs the body program once per step, the numba executor compiles the whole loop.
        executor: ``"replay"`` runs the body program once per step; ``"numba"`` (the ``jit``
            extra) compiles the whole loop into one kernel where every equation of the body
            (and of its derived JVP and VJP bodies) can be written as a loop, and otherwise
            runs that body step by step with ``md.jit``'s numba executor. None (default):
            inside a function traced by ``md.jit`` (or a scan's body), the executor of the
            enclosing trace; otherwise ``"replay"``.

    Returns:
        ``(final carry, ys)``, the ys stacked along a new leading axis of length T.

    Forward mode scans the body's JVP with the tangent carried along; reverse mode scans the
    forward part of its VJP, saving each step's residuals, and one tape node runs the
    backward part in a reverse scan (``docs/scan.md``).
    """
    if not callable(f):
        raise TypeError(f"md.scan: expected a step function, got {type(f).__name__}")
    check_positive_int("md.scan", "unroll", unroll)
    name = getattr(f, "__name__", "f")
    name = "lambda" if name == "<lambda>" else name
    if executor is None:
        traces = [lv.engine for lv in active_levels()
                  if lv.active and isinstance(lv.engine, TraceEngine)]
        executor = traces[-1].executor if traces else "replay"
    check_executor(executor)
    backend = _backend.get_backend()
    carry, carry_structure = _leaves(init, "init", backend)
    x_leaves: list[Any] = []
    x_structure = None
    if xs is not None:
        x_leaves, x_structure = _leaves(xs, "xs", backend)
    length = _check_length(name, x_leaves, length)
    if any(lv.active and not isinstance(lv.engine, _SCAN_ENGINES) for lv in active_levels()):
        return _python_loop(name, f, carry_structure, carry, x_structure, x_leaves, length,
                            bool(reverse))
    samples = [concrete(c) for c in carry] + [step_sample(x, "x", length) for x in x_leaves]
    n_c = len(carry)
    carry_types = [_type(c) for c in carry]
    y_structures: list[Any] = []

    def body(*tracers: Any) -> list[Any]:
        c = unflatten(carry_structure, tracers[:n_c])
        x = None if x_structure is None else unflatten(x_structure, tracers[n_c:])
        result = f(c, x)
        if not isinstance(result, tuple) or len(result) != 2:
            raise ScanError(f"md.scan({name}): the step must return a pair (carry, y), got "
                            f"{type(result).__name__}"
                            f"{f' of length {len(result)}' if isinstance(result, tuple) else ''}")
        new, y = result
        new_leaves, new_structure = flatten(new)
        if new_structure != carry_structure:
            raise ScanError(f"md.scan({name}): the step returned a carry of structure "
                            f"{new_structure}, but it was given {carry_structure}; return the "
                            f"carry in the structure of init")
        new_leaves = [backend.asarray(v) if isinstance(v, bool | int | float) else v
                      for v in new_leaves]
        for i, (v, want) in enumerate(zip(new_leaves, carry_types)):
            got = _type(v)
            if got != want:
                raise ScanError(
                    f"md.scan({name}): leaf {i} of the carry the step returned has shape "
                    f"{got[0]} and dtype {got[1]}, but init's has shape {want[0]} and dtype "
                    f"{want[1]}; a carry keeps its type from step to step (cast init, or the "
                    f"new carry, e.g. with md.astype)")
        y_leaves, y_structure = flatten(y)
        y_structures.append((y_structure, [v is None for v in y_leaves]))  # None: structure
        y_leaves = [backend.asarray(v) if isinstance(v, bool | int | float) else v
                    for v in y_leaves if v is not None]
        return [*new_leaves, *y_leaves]

    traced, captured = _trace_body(body, samples, name, executor)
    if not any(lv.active and isinstance(lv.engine, TraceEngine) for lv in active_levels()):
        _trace_again(name, body, samples, executor, traced, captured, y_structures)
    # else: the enclosing trace (md.jit, or the body of an enclosing scan) is traced twice and
    # compared, this scan's body with it, so one trace here is enough
    program = _cached(prune(traced))
    n_y = len(program.outputs) - n_c
    kinds = ("c",) * n_c + ("x",) * len(x_leaves) + ("k",) * len(captured)
    results = scan_p(*carry, *x_leaves, *captured, body=program, kinds=kinds,
                     carry_out=tuple(range(n_c)), length=length, reverse=bool(reverse))
    final = unflatten(carry_structure, list(results[:n_c]))
    y_structure, holes = y_structures[0]
    stacked = iter(results[n_c:n_c + n_y])
    ys = unflatten(y_structure, [None if hole else next(stacked) for hole in holes])
    return final, ys


def _trace_again(name: str, body: Callable[..., list[Any]], samples: list[Any], executor: str,
                 traced: Program, captured: list[Any], y_structures: list[Any]) -> None:
    """Trace the body a second time and refuse it if the programs differ: a body that reads
    hidden state (draws from a generator it closes over) would repeat one draw at every step."""
    again, captured_again = _trace_body(body, samples, name, executor)
    differs = compare_traces(traced, again, _same_array) or (
        "" if y_structures[0] == y_structures[1] else "the structure of the ys")
    if not differs and (len(captured) != len(captured_again) or not all(
            a is b or _same_array(concrete(a), concrete(b))
            for a, b in zip(captured, captured_again))):
        differs = "the values of enclosing transforms it reads from its closure"
    if differs:
        raise ScanError(
            f"md.scan({name}): tracing {name} twice on the same arguments gave different "
            f"programs ({differs}). {name} reads state that changes between calls: most often "
            f"random numbers drawn from a generator it closes over, which every step of the "
            f"scan would silently repeat. Draw the numbers outside the scan and pass them in "
            f"xs (one row per step, e.g. rng.normal(size=(T, n))) or in the carry.")


# the engines the scan primitive has rules for (forward, reverse, batching, tracing); under any
# other (stochastic triples) md.scan runs the loop it stands for, op by op
_SCAN_ENGINES = (ForwardEngine, ReverseEngine, BatchEngine, TraceEngine)


def _python_loop(name: str, f: Callable[[Any, Any], tuple[Any, Any]], carry_structure: Any,
                 carry: list[Any], x_structure: Any, x_leaves: list[Any], length: int,
                 reverse: bool) -> tuple[Any, Any]:
    """The loop ``md.scan`` stands for, run op by op (under a transform without scan rules)."""
    if not length:
        raise ModeError(f"md.scan({name}): a zero-length scan under this transform (stochastic "
                        f"triples?) has no step to give the ys their shapes; skip the scan "
                        f"when length is 0")
    state = unflatten(carry_structure, carry)
    ys: list[Any] = [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        x = None if x_structure is None else unflatten(x_structure,
                                                        [leaf[t, ...] for leaf in x_leaves])
        state, ys[t] = f(state, x)
    y_leaves, y_structure = flatten(ys[0])
    rows = [flatten(y)[0] for y in ys]
    stacked = [None if leaf is None else stack([r[j] for r in rows])
               for j, leaf in enumerate(y_leaves)]
    return state, unflatten(y_structure, stacked)


# Bodies already seen, by structure: a scan called again on an equal body (the same
# equations, wiring, parameters and constant values; e.g. one segment after another, or every
# call of a loss) reuses its derived programs and compiled code instead of deriving and
# compiling them again. Bounded (structures and constant variants of each): the oldest go.
_BODIES: OrderedDict[tuple, list[Program]] = OrderedDict()
_MAX_BODIES = 64
_MAX_VARIANTS = 4  # bodies of one structure with different constants


def _cached(program: Program) -> Program:
    key = (program.fingerprint(), program.backend, program.executor)
    for known in _BODIES.get(key, ()):
        if _same_program(known, program):
            _BODIES.move_to_end(key)
            return known
    same_structure = _BODIES.setdefault(key, [])
    same_structure.append(program)
    del same_structure[:-_MAX_VARIANTS]  # a constant that changes every call: keep a few
    _BODIES.move_to_end(key)
    while len(_BODIES) > _MAX_BODIES:
        _BODIES.popitem(last=False)
    return program


def _same_program(a: Program, b: Program) -> bool:
    """Equal programs: the fingerprint's structure (checked by the caller), the same constant
    values and wiring (compare_traces), and equal parameters, arrays in them included."""
    if compare_traces(a, b, _same_array):
        return False
    for x, y in zip(a.outputs, b.outputs):
        if isinstance(x, Const) and not (isinstance(y, Const) and _same_param(x.value, y.value)):
            return False
    return all(x.params.keys() == y.params.keys()
               and all(_same_param(x.params[k], y.params[k]) for k in x.params)
               for x, y in zip(a.equations, b.equations))


def _same_param(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if hasattr(a, "shape"):
        return _same_array(a, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same_param(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_param(a[k], b[k]) for k in a)
    items = getattr(a, "items", None)  # an index
    if isinstance(items, tuple):
        return _same_param(items, getattr(b, "items", None))
    try:
        equal = a == b
    except Exception:  # noqa: BLE001 (an object without a usable ==: not the same)
        return False
    return equal if isinstance(equal, bool) else False


def _raw(x: Any) -> Any:
    """The array under every box (a traced value's shape and dtype stand in for it)."""
    while isinstance(x, Box):
        x = x.value
    return x


def _check_length(name: str, x_leaves: list[Any], length: int | None) -> int:
    check_int(f"md.scan({name})", "length", length, 0, none_ok=True)
    if not x_leaves:
        if length is None:
            raise ValueError(f"md.scan({name}): with xs=None (or xs without arrays), give "
                             f"length=T, the number of steps")
        return length
    sizes = []
    for i, x in enumerate(x_leaves):
        shape = _type(x)[0]
        if not shape:
            raise ValueError(f"md.scan({name}): leaf {i} of xs is 0-d; every leaf of xs needs "
                             f"a leading axis of length T (one row per step)")
        sizes.append(shape[0])
    if len(set(sizes)) > 1:
        listed = ", ".join(f"leaf {i}: {s}" for i, s in enumerate(sizes))
        raise ValueError(f"md.scan({name}): the leaves of xs have different leading axes "
                         f"({listed}); every leaf needs the same number of rows, one per step")
    if length is not None and length != sizes[0]:
        raise ValueError(f"md.scan({name}): length={length} but the leaves of xs have "
                         f"{sizes[0]} rows")
    return sizes[0]
