"""Function transforms: what users call to differentiate.

Every transform opens a new engine (its level: ``with ReverseEngine() as engine``), boxes its
inputs with it, runs the function, and unboxes its own level from the result. Nothing else
needs to touch a ``Dual`` or a tape.

=============  =========================================================  ==================
transform      returns                                                    engine
=============  =========================================================  ==================
jvp            f(x), J v                                                  forward, 1 pass
jacfwd         J, shape out.shape + in.shape                              forward, 1 pass
                                                                          (K = in.size
                                                                          directions)
vjp            f(x), u ↦ Jᵀ u                                             reverse
grad           ∇f (f scalar)                                              reverse, 1 sweep
jacrev         J                                                          reverse, out.size
                                                                          sweeps
hessian        ∇²f = jacfwd(grad f)                                       forward-over-reverse
hvp            ∇²f · v = jvp of grad f                                    forward-over-reverse
=============  =========================================================  ==================

Arguments and outputs are pytrees (:mod:`minidiff.pytree`): arrays, numbers, and tuples, lists
and dicts of them. A gradient has its argument's structure; a Jacobian is the output's
structure whose leaves are the input's structure of blocks, block (i, j) of shape
``out_i.shape + in_j.shape`` (with a tuple ``argnums``, a tuple of those per output leaf).
Anything else (None from a forgotten ``return``, strings, objects) is refused with a message
naming the transform and where the value sits. Keyword arguments of the transformed function
pass through to ``f`` and are not differentiated.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend
from .core import Box, ShapeError, raw, shape_of
from .forward import Dual, ForwardEngine
from .ops import reshape, stack, transpose, zeros
from .pytree import PyTreeDef, tree_flatten
from .reverse import ReverseEngine, Tape, TapeValue
from .transform_io import (
    ArgNums,
    argnums_of,
    as_output,
    input_leaves,
    jacobian_tree,
    note_list_arguments,
    output_leaves,
    pieces,
    regroup,
    scalar_output,
    split_aux,
    unbox,
)
from .transform_io import as_input as _as_input  # noqa: F401 (wengert's import)
from .transform_io import as_output as _as_output  # noqa: F401 (wengert's import)

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "hessian", "hvp"]

# ---------------------------------------------------------------------------------------------
# Reverse mode
# ---------------------------------------------------------------------------------------------


class _Recording:
    """What running ``f`` on a tape leaves: the engine (``level`` too: a level is its
    engine), what ``finish`` made of the result, the boxed input leaves (in argnums order) and
    each argument's structure."""

    __slots__ = ("engine", "level", "result", "inputs", "in_trees")

    def __init__(self, engine: ReverseEngine, level: Any, result: Any, inputs: list,
                 in_trees: list[PyTreeDef]) -> None:
        self.engine, self.level, self.result = engine, level, result
        self.inputs, self.in_trees = inputs, in_trees


def _record(f: Callable[..., Any], args: Sequence[Any], nums: Sequence[int], name: str,
            kwargs: dict | None = None, tape: Tape | None = None,
            finish: Callable[[Any], Any] | None = None) -> _Recording:
    """Run ``f(*args)`` at a new reverse-mode level with the leaves of ``args[i]`` (i in
    ``nums``) as inputs; ``finish(result)`` runs before the level closes (to check and
    flatten the outputs)."""
    original, args = args, list(args)
    leaves, trees = [], []
    for i in nums:
        leaves_i, tree = input_leaves(args[i], i, name)
        leaves.append(leaves_i)
        trees.append(tree)
    with ReverseEngine(tape) as engine:  # the engine is the new level, closed on exit
        inputs = []
        for i, leaves_i, tree in zip(nums, leaves, trees):
            boxes = [engine.tape.add_input(engine.tape.keep(v), engine) for v in leaves_i]
            inputs.extend(boxes)
            args[i] = tree.unflatten(boxes)
        try:
            result = f(*args, **(kwargs or {}))
        except TypeError as exc:
            note_list_arguments(exc, original, nums, name)
            raise
        if finish is not None:
            result = finish(result)
    return _Recording(engine, engine, result, inputs, trees)


def record_on_tape(f: Callable[..., Any], args: Sequence[Any], nums: Sequence[int], name: str,
                   kwargs: dict | None = None, tape: Tape | None = None,
                   ) -> tuple[ReverseEngine, Any, Any, list[TapeValue]]:
    """Run ``f(*args)`` at a new reverse-mode level with ``args[i]`` (i in ``nums``) as inputs.

    Returns ``(engine, level, result, inputs)``; the level is closed again, and the tape holds
    everything ``f`` recorded, ready for ``_backward``. ``inputs`` are the boxed leaves of the
    arguments, in order. ``tape`` is where the nodes go: a fresh plain tape by default, or one
    given by an instrument (``memory.MeteredTape`` counts bytes).
    """
    rec = _record(f, args, nums, name, kwargs, tape)
    return rec.engine, rec.level, rec.result, rec.inputs


def value_and_grad(f: Callable[..., Any], argnums: ArgNums = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """``f`` and its gradient, by one forward pass (recording a tape) and one backward sweep.

    ``f`` must return a scalar. With ``has_aux=True`` it returns ``(scalar, aux)`` and the
    transformed function returns ``((value, aux), grad)``. The gradient has the structure of
    the argument (a pytree); with a tuple ``argnums`` it is a tuple, one entry per argument.
    """

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> Any:
        nums, multiple = argnums_of(argnums, len(args), "grad")
        rec = _record(f, args, nums, "grad", kwargs)
        out, aux = split_aux(rec.result, has_aux, "grad")
        out = scalar_output(out, "grad")
        grads = _backward(rec.engine, rec.level, out, rec.inputs, seed=None, retain=False)
        value = as_output(unbox(out, rec.level))
        grads = regroup([as_output(g) for g in grads], rec.in_trees)
        grads = tuple(grads) if multiple else grads[0]
        if has_aux:
            return (value, unbox(aux, rec.level)), grads
        return value, grads

    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: ArgNums = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """The gradient ∇f of a scalar function, by reverse mode (see ``value_and_grad``).

    With ``has_aux=True`` returns ``(grad, aux)``.
    """
    vg = value_and_grad(f, argnums=argnums, has_aux=has_aux)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f


def _backward(engine: ReverseEngine, level: Any, out: Any, inputs: Sequence[TapeValue],
              seed: Any, retain: bool) -> list[Any]:
    """Cotangents of ``inputs`` given the cotangent ``seed`` of ``out`` (1 by default)."""
    return _backward_from(engine, level, [out], [seed], inputs, retain)


def _backward_from(engine: ReverseEngine, level: Any, outs: Sequence[Any],
                   seeds: Sequence[Any], inputs: Sequence[TapeValue],
                   retain: bool) -> list[Any]:
    """Cotangents of ``inputs`` given the cotangents ``seeds`` of several outputs ``outs``
    (None for ones), pulled back in one sweep; outputs that do not depend on the inputs are
    skipped."""
    pairs = []
    for out, seed in zip(outs, seeds):
        if not (isinstance(out, TapeValue) and out.level is level):
            continue  # out does not depend on the inputs
        if seed is None:
            b = _backend.get_backend()
            seed = b.xp.ones(shape_of(out), dtype=raw(out).dtype)
        pairs.append((out, seed))
    if not pairs:
        if not retain:
            engine.tape.release()
        return [zeros(shape_of(x)) for x in inputs]
    cotangents = engine.tape.backward_from(pairs, retain=retain)
    return [zeros(shape_of(x)) if cotangents[x.node.index] is None else cotangents[x.node.index]
            for x in inputs]


def _output_leaves(name: str) -> Callable[[Any], tuple]:
    """A ``finish`` for ``_record``: the output leaves and their structure."""

    def finish(out: Any) -> tuple:
        if out is None:
            as_output(None, name)
        return output_leaves(out, name)

    return finish


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple]]:
    """``f(*primals)`` and the function u ↦ (Jᵀu for each primal).

    ``u`` has the structure and shapes of ``f``'s output; each Jᵀu has its primal's. The tape
    is kept until the returned function is garbage-collected, so it may be called many times
    (``jacrev`` does, once per output element). It holds copies of the writable arrays it reads
    later (the primals, and constants ``f`` closes over), so the pull-back gives the derivative
    at the forward pass's values even if the caller updates those arrays in place in between.
    """
    rec = _record(f, primals, range(len(primals)), "vjp", finish=_output_leaves("vjp"))
    leaves, out_tree = rec.result
    shapes = [shape_of(v) for v in leaves]

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves, ct_tree = tree_flatten(cotangent)
        if ct_tree != out_tree:
            raise ValueError(f"vjp: the cotangent has structure {ct_tree._describe()} but the "
                             f"output has structure {out_tree._describe()}")
        seeds = []
        for c, shape, path in zip(ct_leaves, shapes, out_tree.paths()):
            if not isinstance(c, Box):
                c = _backend.get_backend().asarray(c)
            if shape_of(c) != shape:
                where = f" at {path}" if path else ""
                raise ShapeError(f"vjp: the cotangent{where} has shape {shape_of(c)} but the "
                                 f"output{where} has shape {shape}")
            seeds.append(c)
        grads = _backward_from(rec.engine, rec.level, leaves, seeds, rec.inputs, retain=True)
        return tuple(regroup(grads, rec.in_trees))

    return out_tree.unflatten([as_output(unbox(v, rec.level)) for v in leaves]), vjp_fn


def jacrev(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode: one backward sweep per output element.

    Shape: ``out.shape + in.shape`` for an array output and input; for pytrees, the output's
    structure of the input's structure of such blocks (a tuple over ``argnums`` if it is a
    tuple). Keyword arguments pass through to ``f``.
    """

    @functools.wraps(f)
    def jacrev_f(*args: Any, **kwargs: Any) -> Any:
        nums, multiple = argnums_of(argnums, len(args), "jacrev")
        rec = _record(f, args, nums, "jacrev", kwargs, finish=_output_leaves("jacrev"))
        leaves, out_tree = rec.result
        out_shapes = [shape_of(v) for v in leaves]
        in_shapes = [shape_of(x) for x in rec.inputs]
        b = _backend.get_backend()
        blocks: list[list[Any]] = []  # blocks[i][j]: (out_i.size, *in_j.shape)
        for leaf, shape in zip(leaves, out_shapes):
            n_out = math.prod(shape)
            if not (isinstance(leaf, TapeValue) and leaf.level is rec.level):  # a constant
                blocks.append([zeros((n_out, *s)) for s in in_shapes])
                continue
            rows: list[list[Any]] = [[] for _ in rec.inputs]
            eye = b.xp.eye(n_out, dtype=b.float_dtype)
            for m in range(n_out):
                seed = b.xp.reshape(eye[m, ...], shape)
                cotangents = _backward_from(rec.engine, rec.level, [leaf], [seed], rec.inputs,
                                            retain=True)
                for row, g in zip(rows, cotangents):
                    row.append(g)
            blocks.append([stack(row) if row else zeros((0, *s))
                           for row, s in zip(rows, in_shapes)])

        def block(i: int, j: int) -> Any:
            return reshape(blocks[i][j], (*out_shapes[i], *in_shapes[j]))

        return jacobian_tree(out_tree, rec.in_trees, multiple, block)

    return jacrev_f


# ---------------------------------------------------------------------------------------------
# Forward mode
# ---------------------------------------------------------------------------------------------


def _tangent_parts(x: Any, level: Any, k: int) -> tuple[Any, Any]:
    """The primal and the (K, *shape) tangent of an output leaf (zero if it is constant)."""
    if isinstance(x, Dual) and x.level is level:
        return x.value, x.tangent
    return x, zeros((k, *shape_of(x)))


def jvp(f: Callable[..., Any], primals: Sequence[Any],
        tangents: Sequence[Any]) -> tuple[Any, Any]:
    """``(f(*primals), J · tangents)`` in one forward pass.

    ``primals`` and ``tangents`` are sequences of equal length; each tangent has its primal's
    structure and shapes. ``f`` may return any pytree; both results then have its structure.
    """
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp: primals and tangents must be tuples (or lists) of arguments")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    b = _backend.get_backend()
    args, seeds, trees = [], [], []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        leaves, tree = input_leaves(p, i, "jvp")
        t_leaves, t_tree = tree_flatten(t)
        if t_tree != tree:
            raise ValueError(f"jvp: tangent {i} has structure {t_tree._describe()} but its "
                             f"primal has structure {tree._describe()}")
        for v, dv, path in zip(leaves, t_leaves, tree.paths()):
            dv = dv if isinstance(dv, Box) else b.asarray(dv)
            if shape_of(dv) != shape_of(v):
                where = f" at {path}" if path else ""
                raise ShapeError(f"jvp: tangent {i}{where} has shape {shape_of(dv)} but its "
                                 f"primal has shape {shape_of(v)}")
            seeds.append(reshape(dv, (1, *shape_of(dv))))
        args.append(leaves)
        trees.append(tree)
    with ForwardEngine(1) as level:
        duals = [Dual(v, s, level) for v, s in zip([v for a in args for v in a], seeds)]
        boxed = regroup(duals, trees)
        try:
            out = f(*boxed)
        except TypeError as exc:
            note_list_arguments(exc, primals, range(len(primals)), "jvp")
            raise
    leaves, out_tree = output_leaves(out, "jvp")
    values, out_tangents = [], []
    for o in leaves:
        value, tangent = _tangent_parts(o, level, 1)
        values.append(as_output(value))
        out_tangents.append(as_output(reshape(tangent, shape_of(value))))
    return out_tree.unflatten(values), out_tree.unflatten(out_tangents)


def jacfwd(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode, in one pass carrying K = (total input size) directions.

    The primal (and any random draws in it) is evaluated once. Shape: ``out.shape +
    in.shape`` for arrays; for pytrees, the output's structure of the input's structure of
    such blocks (a tuple over ``argnums`` if it is a tuple). Keyword arguments pass through.
    """

    @functools.wraps(f)
    def jacfwd_f(*args: Any, **kwargs: Any) -> Any:
        nums, multiple = argnums_of(argnums, len(args), "jacfwd")
        original, args = args, list(args)
        leaves, trees = [], []
        for i in nums:
            leaves_i, tree = input_leaves(args[i], i, "jacfwd")
            leaves.extend(leaves_i)
            trees.append(tree)
        in_shapes = [shape_of(v) for v in leaves]
        sizes = [math.prod(s) for s in in_shapes]
        k = sum(sizes)
        b = _backend.get_backend()
        with ForwardEngine(k) as level:
            duals, offset = [], 0
            for v, n, shape in zip(leaves, sizes, in_shapes):
                seed = b.xp.eye(k, n, k=-offset, dtype=b.float_dtype)  # rows offset..offset+n
                duals.append(Dual(v, b.xp.reshape(seed, (k, *shape)), level))
                offset += n
            for i, boxed in zip(nums, regroup(duals, trees)):
                args[i] = boxed
            try:
                out = f(*args, **kwargs)
            except TypeError as exc:
                note_list_arguments(exc, original, nums, "jacfwd")
                raise
        out_leaves, out_tree = output_leaves(out, "jacfwd")
        parts = [_tangent_parts(o, level, k) for o in out_leaves]
        out_shapes = [shape_of(value) for value, _ in parts]
        cut = [pieces(tangent, in_shapes) for _, tangent in parts]  # cut[i][j]: (n_j, *out_i)

        def block(i: int, j: int) -> Any:
            t = reshape(cut[i][j], (sizes[j], math.prod(out_shapes[i])))
            return reshape(transpose(t), (*out_shapes[i], *in_shapes[j]))

        return jacobian_tree(out_tree, trees, multiple, block)

    return jacfwd_f


# ---------------------------------------------------------------------------------------------
# Second order
# ---------------------------------------------------------------------------------------------


def hessian(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """∇²f by forward-over-reverse: ``jacfwd(grad(f))``, one forward pass over one tape.

    Shape ``in.shape + in.shape``; for a pytree argument the input's structure of the input's
    structure of blocks; for a tuple ``argnums``, nested tuples of blocks.
    """
    return jacfwd(grad(f, argnums=argnums), argnums=argnums)


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    """The Hessian-vector product ∇²f(x) · v, by a forward pass through ``grad(f)``; ``v`` has
    the structure and shapes of ``x``."""
    return jvp(grad(f), (x,), (v,))[1]
