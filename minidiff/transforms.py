"""Function transforms: what users call to differentiate.

Every transform opens a new level, boxes its inputs at that level, runs the function, and
unboxes its own level from the result. Nothing else needs to touch a ``Dual`` or a tape.

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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend
from .core import Box, ShapeError, close_level, open_level, raw, shape_of
from .forward import Dual, ForwardEngine
from .ops import reshape, stack, transpose, zeros
from .reverse import ReverseEngine, Tape, TapeValue

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "hessian", "hvp"]

ArgNums = int | Sequence[int]


# ---------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------


def _argnums(argnums: ArgNums, n_args: int, name: str) -> tuple[tuple[int, ...], bool]:
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
    return tuple(i % n_args for i in nums), multiple


def _as_input(x: Any, position: int, name: str) -> Any:
    """A differentiable input: a backend float array (or a value boxed by an outer level)."""
    if not isinstance(x, Box):
        x = _backend.get_backend().asarray(x)
    dtype = raw(x).dtype
    if not _backend.get_backend().xp.isdtype(dtype, "real floating"):
        raise TypeError(
            f"{name}: argument {position} has dtype {dtype}, but only floating-point inputs can "
            f"be differentiated (a derivative with respect to an integer or boolean is "
            f"undefined); pass floats, e.g. 2.0 instead of 2, or convert the array to float64"
        )
    return x


def _unbox(x: Any, level: Any) -> Any:
    """Remove ``level``'s box from ``x`` and from tuples, lists and dicts of values."""
    if isinstance(x, Box):
        return x.value if x.level is level else x
    if isinstance(x, tuple | list):
        return type(x)(_unbox(v, level) for v in x)
    if isinstance(x, dict):
        return {k: _unbox(v, level) for k, v in x.items()}
    return x


def _as_output(x: Any) -> Any:
    """A value as a transform hands it back: boxes of outer levels unchanged, Python numbers as
    float64 arrays, and NumPy scalars (np.float64, from reductions) as 0-d arrays."""
    if isinstance(x, Box):
        return x
    b = _backend.get_backend()
    if isinstance(x, int | float):
        return b.asarray(float(x))
    return b.xp.asarray(x)


def _split_aux(result: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise TypeError(f"{name}(has_aux=True): the function must return a pair (output, aux)")
    return result[0], result[1]


# ---------------------------------------------------------------------------------------------
# Reverse mode
# ---------------------------------------------------------------------------------------------


def record_on_tape(f: Callable[..., Any], args: Sequence[Any], nums: Sequence[int], name: str,
                   kwargs: dict | None = None, tape: Tape | None = None,
                   ) -> tuple[ReverseEngine, Any, Any, list[TapeValue]]:
    """Run ``f(*args)`` at a new reverse-mode level with ``args[i]`` (i in ``nums``) as inputs.

    Returns ``(engine, level, result, inputs)``; the level is closed again, and the tape holds
    everything ``f`` recorded, ready for ``_backward``. ``tape`` is where the nodes go: a fresh
    plain tape by default, or one given by an instrument (``memory.MeteredTape`` counts bytes).
    """
    args = list(args)
    for i in nums:
        args[i] = _as_input(args[i], i, name)
    engine = ReverseEngine(tape)
    level = open_level(engine)
    try:
        inputs = [engine.tape.add_input(args[i], level) for i in nums]
        for i, box in zip(nums, inputs):
            args[i] = box
        result = f(*args, **(kwargs or {}))
    finally:
        close_level(level)
    return engine, level, result, inputs


def value_and_grad(f: Callable[..., Any], argnums: ArgNums = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """``f`` and its gradient, by one forward pass (recording a tape) and one backward sweep.

    ``f`` must return a scalar. With ``has_aux=True`` it returns ``(scalar, aux)`` and the
    transformed function returns ``((value, aux), grad)``. With a tuple ``argnums`` the gradient
    is a tuple, one entry per argument.
    """

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> Any:
        nums, multiple = _argnums(argnums, len(args), "grad")
        engine, level, result, inputs = record_on_tape(f, args, nums, "grad", kwargs)
        out, aux = _split_aux(result, has_aux, "grad")
        out = _as_output(out)
        if shape_of(out) != ():
            raise TypeError(
                f"grad: the function must return a scalar, but returned shape "
                f"{shape_of(out)}; for non-scalar outputs use jacrev (the full Jacobian) "
                f"or vjp (a vector-Jacobian product)"
            )
        grads = _backward(engine, level, out, inputs, seed=None, retain=False)
        value = _as_output(_unbox(out, level))
        grads = [_as_output(g) for g in grads]
        grads = tuple(grads) if multiple else grads[0]
        if has_aux:
            return (value, _unbox(aux, level)), grads
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
    if not (isinstance(out, TapeValue) and out.level is level):  # out does not depend on inputs
        if not retain:
            engine.tape.release()
        return [zeros(shape_of(x)) for x in inputs]
    if seed is None:
        b = _backend.get_backend()
        seed = b.xp.ones(shape_of(out), dtype=raw(out).dtype)
    cotangents = engine.tape.backward(out, seed, retain=retain)
    return [zeros(shape_of(x)) if cotangents[x.node.index] is None else cotangents[x.node.index]
            for x in inputs]


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple]]:
    """``f(*primals)`` and the function u ↦ (Jᵀu for each primal).

    The tape is kept until the returned function is garbage-collected, so it may be called
    many times (``jacrev`` does, once per output element).
    """
    engine, level, out, inputs = record_on_tape(f, primals, range(len(primals)), "vjp")
    out = _as_output(out)
    out_shape = shape_of(out)

    def vjp_fn(cotangent: Any) -> tuple:
        if not isinstance(cotangent, Box):
            cotangent = _backend.get_backend().asarray(cotangent)
        if shape_of(cotangent) != out_shape:
            raise ShapeError(f"vjp: the cotangent has shape {shape_of(cotangent)} but the output "
                             f"has shape {out_shape}")
        return tuple(_backward(engine, level, out, inputs, cotangent, retain=True))

    return _as_output(_unbox(out, level)), vjp_fn


def jacrev(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode: one backward sweep per output element.

    Shape: ``out.shape + in.shape`` (a tuple of these for a tuple ``argnums``).
    """

    @functools.wraps(f)
    def jacrev_f(*args: Any) -> Any:
        nums, multiple = _argnums(argnums, len(args), "jacrev")
        engine, level, out, inputs = record_on_tape(f, args, nums, "jacrev")
        out = _as_output(out)
        out_shape = shape_of(out)
        n_out = 1
        for d in out_shape:
            n_out *= d
        b = _backend.get_backend()
        rows: list[list[Any]] = [[] for _ in inputs]
        eye = b.xp.eye(n_out, dtype=b.float_dtype)
        for m in range(n_out):
            seed = b.xp.reshape(eye[m, ...], out_shape)
            for row, g in zip(rows, _backward(engine, level, out, inputs, seed, retain=True)):
                row.append(g)
        jacobians = []
        for x, row in zip(inputs, rows):
            in_shape = shape_of(x)
            jac = stack(row) if row else zeros((0, *in_shape))
            jacobians.append(reshape(jac, (*out_shape, *in_shape)))
        return tuple(jacobians) if multiple else jacobians[0]

    return jacrev_f


# ---------------------------------------------------------------------------------------------
# Forward mode
# ---------------------------------------------------------------------------------------------


def _tangent_parts(x: Any, level: Any, k: int) -> tuple[Any, Any]:
    """The primal and the (K, *shape) tangent of an output (zero if it is constant)."""
    if isinstance(x, Dual) and x.level is level:
        return x.value, x.tangent
    x = _as_output(x)
    return x, zeros((k, *shape_of(x)))


def jvp(f: Callable[..., Any], primals: Sequence[Any],
        tangents: Sequence[Any]) -> tuple[Any, Any]:
    """``(f(*primals), J · tangents)`` in one forward pass.

    ``primals`` and ``tangents`` are sequences of equal length and matching shapes. ``f`` may
    return an array or a tuple/list of arrays (then both results are tuples/lists).
    """
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp: primals and tangents must be tuples (or lists) of arguments")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    args = [_as_input(p, i, "jvp") for i, p in enumerate(primals)]
    ts = []
    for i, (p, t) in enumerate(zip(args, tangents)):
        t = t if isinstance(t, Box) else _backend.get_backend().asarray(t)
        if shape_of(t) != shape_of(p):
            raise ShapeError(f"jvp: tangent {i} has shape {shape_of(t)} but its primal has shape "
                             f"{shape_of(p)}")
        ts.append(reshape(t, (1, *shape_of(t))))
    engine = ForwardEngine(1)
    level = open_level(engine)
    try:
        out = f(*[Dual(p, t, level) for p, t in zip(args, ts)])
    finally:
        close_level(level)

    def split(o: Any) -> tuple[Any, Any]:
        value, tangent = _tangent_parts(o, level, 1)
        return _as_output(value), _as_output(reshape(tangent, shape_of(value)))

    if isinstance(out, tuple | list):
        pairs = [split(o) for o in out]
        return type(out)(p for p, _ in pairs), type(out)(t for _, t in pairs)
    return split(out)


def jacfwd(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode, in one pass carrying K = (total input size) directions.

    The primal (and any random draws in it) is evaluated once. Shape: ``out.shape + in.shape``
    (a tuple over ``argnums`` if it is a tuple; a tuple/list over outputs if ``f`` returns one).
    """

    @functools.wraps(f)
    def jacfwd_f(*args: Any) -> Any:
        nums, multiple = _argnums(argnums, len(args), "jacfwd")
        args = list(args)
        for i in nums:
            args[i] = _as_input(args[i], i, "jacfwd")
        sizes = []
        for i in nums:
            n = 1
            for d in shape_of(args[i]):
                n *= d
            sizes.append(n)
        k = sum(sizes)
        b = _backend.get_backend()
        engine = ForwardEngine(k)
        level = open_level(engine)
        try:
            offset = 0
            for i, n in zip(nums, sizes):
                seed = b.xp.eye(k, n, k=-offset, dtype=b.float_dtype)  # rows offset..offset+n
                args[i] = Dual(args[i], b.xp.reshape(seed, (k, *shape_of(args[i]))), level)
                offset += n
            out = f(*args)
        finally:
            close_level(level)
        in_shapes = [shape_of(raw(args[i])) for i in nums]

        def jacobians(o: Any) -> Any:
            value, tangent = _tangent_parts(o, level, k)
            out_shape = shape_of(value)
            blocks = []
            offset = 0
            for n, in_shape in zip(sizes, in_shapes):
                block = tangent[offset:offset + n, ...] if len(sizes) > 1 else tangent
                block = reshape(block, (n, _size(out_shape)))
                block = reshape(transpose(block), (*out_shape, *in_shape))
                blocks.append(block)
                offset += n
            return tuple(blocks) if multiple else blocks[0]

        if isinstance(out, tuple | list):
            return type(out)(jacobians(o) for o in out)
        return jacobians(out)

    return jacfwd_f


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------------------------------------
# Second order
# ---------------------------------------------------------------------------------------------


def hessian(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """∇²f by forward-over-reverse: ``jacfwd(grad(f))``, one forward pass over one tape.

    Shape ``in.shape + in.shape``; for a tuple ``argnums``, nested tuples of blocks.
    """
    return jacfwd(grad(f, argnums=argnums), argnums=argnums)


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    """The Hessian-vector product ∇²f(x) · v, by a forward pass through ``grad(f)``."""
    return jvp(grad(f), (x,), (v,))[1]

