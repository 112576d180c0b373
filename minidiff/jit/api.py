"""``md.jit(f)``: trace once per signature, then replay; and ``md.make_program(f)(*args)``.

A jitted function flattens its arguments (nested tuples, lists and dicts; ``None`` is
structure) into arrays, and keys a cache by their *signature*: the pytree structure, each
array's shape and dtype, the values of the static arguments and the backend. On a miss it
traces ``f`` (:mod:`minidiff.jit.tracing`) into a program; every call then binds one jitted-call
primitive (:mod:`minidiff.jit.call`), which any transform differentiates through programs of
its own. Python numbers passed as arguments are traced as 0-d arrays (a float as float64), so
that a new value does not retrace; pass ``static_argnums`` for arguments whose Python value
the function needs (a step count, a flag, a seed).

Each new signature is traced twice and the two programs compared: a function that reads state
that changes between calls (most often random draws from a generator it closes over) gives
different constants, and a replay would silently repeat the first trace's values, so that is
an error. Draws belong in the arguments (pre-drawn arrays, or keyed streams made from static
keys inside ``f``).

Arrays ``f`` closes over are baked at trace time (as JAX does): the program holds a copy of
each, as the trace read it, so updating one in place later changes no call of that signature,
derivatives included. Pass an array as an argument to compute with its current values.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import backend as _backend
from ..core import Box, shape_of
from ..pytree import PyTreeDef, tree_flatten, tree_unflatten
from ..vmapping import vmap
from .call import call_p
from .derive import concrete, derived_programs, evaluate
from .executors import check_executor, run_program
from .program import Program
from .simplify import prune
from .tracing import JitError, compare_traces, trace

__all__ = ["jit", "make_program", "Jitted", "JitCacheInfo"]


# ---------------------------------------------------------------------------------------------
# Pytrees (minidiff.pytree), with a fast path for the common flat list of arrays
# ---------------------------------------------------------------------------------------------

_CONTAINERS = (tuple, list, dict)
_FLAT: dict[int, PyTreeDef] = {}


def flatten(tree: Any) -> tuple[list[Any], PyTreeDef]:
    """(leaves, structure) of a pytree (see :mod:`minidiff.pytree`)."""
    if type(tree) is list and not any(isinstance(x, _CONTAINERS) for x in tree):
        structure = _FLAT.get(len(tree))
        if structure is None:
            structure = _FLAT[len(tree)] = tree_flatten([None] * len(tree))[1]
        return list(tree), structure
    return tree_flatten(tree)


def unflatten(structure: PyTreeDef, leaves: Sequence[Any]) -> Any:
    return tree_unflatten(structure, leaves)


# ---------------------------------------------------------------------------------------------
# md.jit
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JitCacheInfo:
    """What a jitted function has traced and compiled.

    Attributes:
        hits: calls that found their signature's program in the cache.
        misses: calls (or ``lower``) that traced a new signature.
        entries: signatures in the cache now.
        traces: runs of the Python function under tracing (two per miss: see the notes).
        trace_seconds: time spent tracing the function.
        derived: programs derived for transforms (JVPs, VJP parts), traced on first use.
        compile_seconds: time the executor spent compiling the programs and derived ones
            (writing replay code, numba kernels).
        equations: equations of each cached program, in the order they were traced.
    """

    hits: int
    misses: int
    entries: int
    traces: int
    trace_seconds: float
    derived: int
    compile_seconds: float
    equations: tuple[int, ...]

    def __str__(self) -> str:
        return (f"{self.hits} hits, {self.misses} misses ({self.entries} signatures, "
                f"{self.traces} traces in {self.trace_seconds:.3f}s), {self.derived} derived "
                f"programs, compiling {self.compile_seconds:.3f}s")


class _Entry:
    __slots__ = ("program", "out_structure")

    def __init__(self, program: Program, out_structure: Any) -> None:
        self.program = program
        self.out_structure = out_structure


class Jitted:
    """A function traced once per signature and replayed (made by :func:`jit`)."""

    def __init__(self, fun: Callable[..., Any], static_argnums: int | Sequence[int] = (),
                 executor: str = "replay") -> None:
        if not callable(fun):
            raise TypeError(f"md.jit: expected a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in nums):
            raise TypeError(f"md.jit: static_argnums must be ints, got {static_argnums!r}")
        self.static_argnums = nums
        self.executor = check_executor(executor)
        self.name = getattr(fun, "__name__", "f")
        if self.name == "<lambda>":
            self.name = "lambda"
        self._cache: dict[Any, _Entry] = {}
        self._hits = self._misses = self._traces = 0
        self._trace_seconds = 0.0

    def __repr__(self) -> str:
        return f"md.jit({self.name}, executor={self.executor!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"md.jit({self.name}): pass arguments positionally (keyword "
                            f"arguments {sorted(kwargs)} are not traced); bind them first with "
                            f"functools.partial if they are fixed")
        leaves, key, statics, structure = self._signature(args)
        entry = self._cache.get(key)
        if entry is not None:
            self._hits += 1
            if any(isinstance(x, Box) for x in leaves):
                outs = call_p(*leaves, program=entry.program)
            else:
                outs = run_program(entry.program, leaves)
            return unflatten(entry.out_structure, outs)
        entry, values = self._trace(key, leaves, statics, structure)
        if any(isinstance(x, Box) for x in leaves):
            values = call_p(*leaves, program=entry.program)
        return unflatten(entry.out_structure, values)

    def lower(self, *args: Any) -> Program:
        """The program traced for these arguments' signature (tracing it if needed)."""
        leaves, key, statics, structure = self._signature(args)
        entry = self._cache.get(key)
        if entry is None:
            entry, _ = self._trace(key, leaves, statics, structure)
        return entry.program

    def cache_info(self) -> JitCacheInfo:
        """Hits, misses (one per signature traced) and the time spent tracing and compiling."""
        programs: dict[int, Program] = {}
        stack = [e.program for e in self._cache.values()]
        while stack:
            p = stack.pop()
            if id(p) in programs:
                continue
            programs[id(p)] = p
            stack.extend(derived_programs(p))
        roots = {id(e.program) for e in self._cache.values()}
        return JitCacheInfo(
            hits=self._hits, misses=self._misses, entries=len(self._cache),
            traces=self._traces, trace_seconds=self._trace_seconds,
            derived=len(programs) - len(roots),
            compile_seconds=sum(p.compile_seconds for p in programs.values()),
            equations=tuple(e.program.n_equations for e in self._cache.values()))

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- internals ------------------------------------------------------------------------------

    def _signature(self, args: tuple) -> tuple[list[Any], Any, tuple, Any]:
        if self.static_argnums:
            statics = self._statics(args)
            static = {i for i, _ in statics}
            dynamic = [a for i, a in enumerate(args) if i not in static]
        else:
            statics, dynamic = (), list(args)
        leaves, structure = flatten(dynamic)
        backend = _backend.get_backend()
        accepted = (Box, backend.array_type)
        types = []
        for position, leaf in enumerate(leaves):
            if not isinstance(leaf, accepted):
                if leaf is None:  # structure, like an empty subtree: not traced
                    types.append(None)
                    continue
                leaf = leaves[position] = self._as_leaf(leaf, backend)
            shape = shape_of(leaf)  # one batch element's, under vmap
            while isinstance(leaf, Box):
                leaf = leaf.value
            types.append((shape, leaf.dtype))  # a JitTracedValue has both too
        if None in types:
            leaves = [x for x in leaves if x is not None]
        return leaves, (structure, tuple(types), statics, backend.name), statics, structure

    def _statics(self, args: tuple) -> tuple:
        n = len(args)
        static = set()
        for i in self.static_argnums:
            if not -n <= i < n:
                raise ValueError(f"md.jit({self.name}): static_argnums {self.static_argnums} "
                                 f"is out of range for {n} positional argument(s)")
            static.add(i % n)
        statics = tuple((i, args[i]) for i in sorted(static))
        for i, v in statics:
            try:
                hash(v)
            except TypeError:
                raise TypeError(f"md.jit({self.name}): static argument {i} must be hashable "
                                f"(it keys the cache), got {type(v).__name__}") from None
        return statics

    def _as_leaf(self, x: Any, backend: _backend.Backend) -> Any:
        if isinstance(x, bool | int | float):
            return backend.asarray(x)
        raise TypeError(
            f"md.jit({self.name}): an argument of type {type(x).__name__} is not an array or a "
            f"number, so it cannot be traced; mark its position static "
            f"(md.jit(f, static_argnums=...)) or bind it with functools.partial")

    def _trace(self, key: Any, leaves: list[Any], statics: tuple,
               structure: Any) -> tuple[_Entry, list[Any]]:
        backend = _backend.get_backend()
        out_structures: list[Any] = []

        holes = [t is None for t in key[1]]  # None leaves: structure, not inputs

        def flat(engine: Any, *tracers: Any) -> list[Any]:
            if any(holes):
                given = iter(tracers)
                tracers = [None if hole else next(given) for hole in holes]
            args = list(unflatten(structure, tracers))
            for i, v in statics:
                args.insert(i, v)
            out_leaves, out_structure = flatten(self.fun(*args))
            out_structures.append(out_structure)
            return out_leaves

        inputs = [concrete(x) for x in leaves]
        started = time.perf_counter()
        try:
            first, _ = trace(flat, inputs, self.name, executor=self.executor,
                             backend=backend.name)
            second, values = trace(flat, inputs, self.name, executor=self.executor,
                                   backend=backend.name)
        finally:
            self._traces += 2
            self._trace_seconds += time.perf_counter() - started
        differs = compare_traces(first, second, _same_array) or (
            "" if out_structures[0] == out_structures[1] else "the structure of the result")
        if differs:
            raise JitError(
                f"md.jit({self.name}): tracing {self.name} twice on the same arguments gave "
                f"different programs ({differs}). {self.name} reads state that changes between "
                f"calls: most often random numbers drawn from a generator it closes over, which "
                f"a replay would silently repeat. Draw them outside and pass them as arguments, "
                f"or make the generator inside from a static key (default_rng(seed) or "
                f"rng.stream(key) with the seed or key in static_argnums).")
        self._misses += 1
        entry = self._cache[key] = _Entry(prune(second), out_structures[1])
        return entry, values


def _batch_rule(size: int, args: Sequence[Any], batched: Sequence[bool],
                program: Program) -> tuple:
    """vmap of a jitted call: the call of a program that evaluates ``program`` under vmap,
    traced once per batched-argument pattern (and per shapes, as any jitted function)."""
    key = ("batch", tuple(batched))
    batched_call = program.derived.get(key)
    if batched_call is None:
        def run(*xs: Any) -> tuple:
            return tuple(evaluate(program, xs))

        batched_call = program.derived[key] = Jitted(
            vmap(run, in_axes=tuple(0 if b else None for b in batched)),
            executor=program.executor)
    return tuple(batched_call(*args))


call_p.batch = _batch_rule


def _same_array(a: Any, b: Any) -> bool:
    """Equal shapes, dtypes and values (NaN equal to NaN) of two constants."""
    if not hasattr(a, "shape") or not hasattr(b, "shape"):
        return a == b or (a != a and b != b)
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return False
    xp = _backend.get_backend().xp
    if math.prod(a.shape) == 0:
        return True
    equal = a == b
    if xp.isdtype(a.dtype, "real floating"):
        equal = xp.logical_or(equal, xp.logical_and(xp.isnan(a), xp.isnan(b)))
    return bool(xp.all(equal))


def jit(fun: Callable[..., Any] | None = None, *, static_argnums: int | Sequence[int] = (),
        executor: str = "replay") -> Any:
    """Trace ``fun`` once per argument signature into a program, and replay it.

    Args:
        fun: a function of arrays (nested tuples, lists and dicts of them) written with
            minidiff ops, returning the same kind of thing.
        static_argnums: positions of arguments that are not traced: their Python values
            (hashable) key the cache, and ``fun`` may branch on them.
        executor: ``"replay"`` (default, every backend: the program as straight-line Python
            over the raw implementations, reusing buffers where the backend can) or
            ``"numba"`` (the ``jit`` extra: chains of elementwise ops fused into compiled
            loops).

    The result works under every transform, nested (``grad``, ``jacfwd``, ``jvp``, ``vjp``,
    ``hessian``, a jitted ``grad``, ...): each derives programs of its own from the traced one.
    Usable as a decorator, with or without arguments.
    """
    if fun is None:
        return lambda f: Jitted(f, static_argnums, executor)
    return Jitted(fun, static_argnums, executor)


def make_program(fun: Callable[..., Any], *, static_argnums: int | Sequence[int] = ()
                 ) -> Callable[..., Program]:
    """``make_program(f)(*args)``: the program ``md.jit`` traces for these arguments (print it
    for the listing, like JAX's ``make_jaxpr``)."""
    jitted = Jitted(fun, static_argnums)

    @functools.wraps(fun)
    def lower(*args: Any) -> Program:
        return jitted.lower(*args)

    return lower
