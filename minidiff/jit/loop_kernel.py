"""A whole time loop as one numba kernel: the ``numba`` executor of ``md.scan``.

Replaying a scan body T times still pays a Python call and a NumPy call per equation per
step. When every equation of the body is one this module can write as a loop (elementwise
arithmetic and comparisons, ``where``, ``exp`` and ``log``, ``sum`` over axes, reshapes that
only add or drop axes of length 1, ``broadcast_to``) on float64 and bool values, the whole
scan becomes one compiled function:

    def loop(T, rev, x1, x2, xs3, ..., ys1):     # carries, stacked xs, constants, ys
        v7 = np.empty((1000,))                   # one buffer per array the step makes
        for s in range(T):
            t = T - 1 - s if rev else s
            x3 = xs3[t]                          # row t of a scanned input
            for q0 in range(1000):               # a chain of elementwise equations, fused
                m0 = (x2 * x3[q0]) - x1[q0]
                m1 = 1.0 / (1.0 + math.exp(-5.0 * m0))
                v7[q0] = m1
            acc = 0.0                            # sum(v7): a scalar stays a local variable
            for q0 in range(1000):
                acc += v7[q0]
            ...
            ys1[t] = v12                         # this step's y, into row t
            x1, n1 = n1, x1                      # next carry (copied into a spare buffer)

Scalars (shape ``()``) are local variables of the loop, so the scalar part of a step (the
return r = Σ o / (N η), the running loss) costs a few machine instructions. Elementwise
equations of one shape are grouped as the numba executor groups them
(:func:`minidiff.jit.fusion.group`), each group one loop nest.

Where a step's arrays are large (more than :data:`MAX_ELEMENTS` elements) its arithmetic
outweighs its dispatch, and the per-step kernels of ``md.jit``'s numba executor, which leave
``exp`` to NumPy's vectorised one and sum pairwise, are faster; such a body runs step by step.

Results agree with the replayed step to rounding, not bit for bit: a loop sums in order where
NumPy sums pairwise, and libm's ``exp`` may differ from NumPy's vectorised one in the last
bit. A body with anything else (indexing, matrix products, integer values, random draws
passed as keys) is run step by step by the per-step executor instead;
:func:`loop_kernel` returns None for it, and :func:`unsupported` says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend as _backend
from ..ops import linear
from .fusion import group
from .program import Const, Equation, Program, Var
from .simplify import simplify

__all__ = ["loop_kernel", "unsupported", "loop_expression"]


def loop_expression(primitive: Any) -> str | None:
    """How one element of ``primitive``'s result reads in a whole-loop kernel, or None."""
    return primitive.loop if primitive.loop is not None else primitive.scalar_loop


_DTYPES = ("float64", "bool")
# the largest array (elements) a whole-loop kernel takes: above it a step's arithmetic outweighs
# its dispatch, and the per-step kernels, which leave exp to NumPy's vectorised one (several
# times faster than the scalar libm exp a loop calls) and sum pairwise, are faster
# (bench/scan.py --agents N: Cont's step crosses over between N = 1e3 and 1e4)
MAX_ELEMENTS = 4096


def _elementwise(eqn: Equation) -> bool:
    return loop_expression(eqn.primitive) is not None and len(eqn.out.shape) >= 1


def _unit_reshape(in_shape: tuple, out_shape: tuple) -> bool:
    return [d for d in in_shape if d != 1] == [d for d in out_shape if d != 1]


def unsupported(program: Program) -> str | None:
    """Why ``program`` cannot run as one loop kernel (None when it can)."""
    for v in program.inputs:
        if str(v.dtype) not in _DTYPES:
            return f"an input of dtype {v.dtype}"
    for eqn in program.equations:
        if eqn.multiple:
            return f"the primitive {eqn.primitive.name} (several results: a nested scan)"
    for v in [*program.inputs, *(e.out for e in program.equations)]:
        if math.prod(v.shape) > MAX_ELEMENTS:
            return (f"an array of {math.prod(v.shape)} elements (more than {MAX_ELEMENTS}: "
                    f"the step's arithmetic outweighs its dispatch; the per-step kernels are "
                    f"faster)")
    for eqn in program.equations:
        name = eqn.primitive.name
        if str(eqn.out.dtype) not in _DTYPES:
            return f"{name} makes a value of dtype {eqn.out.dtype}"
        for a in eqn.inputs:
            if isinstance(a, Var):
                if str(a.dtype) not in _DTYPES:
                    return f"{name} reads a value of dtype {a.dtype}"
            elif a.is_array:
                if str(a.value.dtype) not in _DTYPES:
                    return f"{name} reads a constant of dtype {a.value.dtype}"
            elif type(a.value) not in (float, int, bool):
                return f"{name} reads a constant {type(a.value).__name__}"
        if loop_expression(eqn.primitive) is not None:
            continue
        if eqn.primitive is linear._sum_p:
            if str(eqn.inputs[0].dtype if isinstance(eqn.inputs[0], Var) else "") != "float64":
                return "sum of a value that is not a float64 variable"
            continue
        if eqn.primitive is linear._reshape_p:
            x = eqn.inputs[0]
            if isinstance(x, Var) and _unit_reshape(x.shape, eqn.out.shape):
                continue
            return f"reshape {getattr(x, 'shape', '?')} -> {eqn.out.shape}"
        return f"the primitive {name}"
    for a in program.outputs:
        if isinstance(a, Const) and not (a.is_array or type(a.value) in (float, int, bool)):
            return f"an output constant {type(a.value).__name__}"
    return None


class _Writer:
    """Writes the source of one loop kernel."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.names: dict[int, str] = {}
        self.namespace: dict[str, Any] = {"math": math}
        self.array_consts: list[Any] = []  # arrays read from the program's constants
        self.const_names: dict[int, str] = {}
        self.lines: list[str] = []
        self.n_temp = 0

    def name(self, v: Var) -> str:
        found = self.names.get(id(v))
        if found is None:
            found = self.names[id(v)] = f"v{len(self.names)}"
        return found

    def temp(self, stem: str) -> str:
        self.n_temp += 1
        return f"{stem}{self.n_temp}"

    def const(self, c: Const) -> str:
        found = self.const_names.get(id(c))
        if found is None:
            if c.is_array and c.value.shape:
                found = f"a{len(self.array_consts)}"
                self.array_consts.append(c.value)
            else:
                found = f"k{len(self.const_names)}"
                value = c.value
                if c.is_array:  # a 0-d array: its number
                    value = bool(value) if str(value.dtype) == "bool" else float(value)
                self.namespace[found] = float(value) if type(value) is int else value
            self.const_names[id(c)] = found
        return found

    def read(self, a: Any, loops: Sequence[str]) -> str:
        """The expression of atom ``a`` at the loop index ``loops`` (NumPy broadcasting:
        the atom's axes right-aligned with the loop's, axes of length 1 read at 0)."""
        if isinstance(a, Const):
            name = self.const(a)
            shape = tuple(a.value.shape) if a.is_array else ()
        else:
            name, shape = self.name(a), a.shape
        if not shape:
            return name
        rank = len(loops)
        subscript = ["0" if d == 1 else loops[rank - len(shape) + j] for j, d in enumerate(shape)]
        return f"{name}[{', '.join(subscript)}]"

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def loops(self, indent: int, shape: tuple) -> tuple[list[str], int]:
        names = [self.temp("q") for _ in shape]
        for d, q in enumerate(names):
            self.emit(indent + d, f"for {q} in range({shape[d]}):")
        return names, indent + len(shape)

    def copy(self, indent: int, target: str, a: Any, shape: tuple, row: str = "") -> None:
        """``target[row, ...] = a`` (an atom of ``shape``)."""
        if not shape:
            self.emit(indent, f"{target}[{row}] = {self.read(a, [])}" if row
                      else f"{target} = {self.read(a, [])}")
            return
        q, inner = self.loops(indent, shape)
        index = ", ".join(([row] if row else []) + q)
        self.emit(inner, f"{target}[{index}] = {self.read(a, q)}")


def _cast(dtype: Any, text: str) -> str:
    return f"bool({text})" if str(dtype) == "bool" else f"float({text})"


def _write_group(w: _Writer, eqns: list[Equation], outside: set, indent: int) -> None:
    shape = eqns[0].out.shape
    q, inner = w.loops(indent, shape)
    local: dict[int, str] = {}
    for eqn in eqns:
        args = [local.get(id(a)) if isinstance(a, Var) and id(a) in local else w.read(a, q)
                for a in eqn.inputs]
        m = w.temp("m")
        w.emit(inner, f"{m} = {loop_expression(eqn.primitive).format(*args)}")
        local[id(eqn.out)] = m
        if id(eqn.out) in outside:
            w.emit(inner, f"{w.name(eqn.out)}[{', '.join(q)}] = {m}")


def _write_scalar(w: _Writer, eqn: Equation, indent: int) -> None:
    args = [w.read(a, []) for a in eqn.inputs]
    text = loop_expression(eqn.primitive).format(*args)
    w.emit(indent, f"{w.name(eqn.out)} = {_cast(eqn.out.dtype, text)}")


def _write_sum(w: _Writer, eqn: Equation, indent: int) -> None:
    x = eqn.inputs[0]
    axes, keep = eqn.params["axis"], eqn.params["keepdims"]
    out = w.name(eqn.out)
    if not x.shape:
        w.emit(indent, f"{out} = {w.read(x, [])}" if not eqn.out.shape else
               f"{out}[{', '.join('0' * len(eqn.out.shape))}] = {w.read(x, [])}")
        return
    if not eqn.out.shape:
        acc = w.temp("acc")
        w.emit(indent, f"{acc} = 0.0")
        q, inner = w.loops(indent, x.shape)
        w.emit(inner, f"{acc} += {w.read(x, q)}")
        w.emit(indent, f"{out} = {acc}")
        return
    q, inner = w.loops(indent, eqn.out.shape)
    w.emit(inner, f"{out}[{', '.join(q)}] = 0.0")
    q, inner = w.loops(indent, x.shape)
    kept = [("0" if keep else None) if d in axes else q[d] for d in range(len(x.shape))]
    index = ", ".join(k for k in kept if k is not None)
    w.emit(inner, f"{out}[{index}] += {w.read(x, q)}")


def _write_reshape(w: _Writer, eqn: Equation, indent: int) -> None:
    x, out = eqn.inputs[0], eqn.out
    if not out.shape:  # (1, 1) -> ()
        w.emit(indent, f"{w.name(out)} = {w.name(x)}[{', '.join('0' * len(x.shape))}]")
        return
    q, inner = w.loops(indent, out.shape)
    along = iter(qd for qd, d in zip(q, out.shape) if d != 1)
    source = (w.name(x) if not x.shape else
              f"{w.name(x)}[{', '.join('0' if d == 1 else next(along) for d in x.shape)}]")
    w.emit(inner, f"{w.name(out)}[{', '.join(q)}] = {source}")


def _source(program: Program, kinds: Sequence[str], carry_out: Sequence[int]
            ) -> tuple[str, _Writer, list[int], list[int]]:
    w = _Writer(program)
    outputs = program.outputs
    carry_at = [i for i, k in enumerate(kinds) if k == "c"]
    carry_set = set(carry_out)
    y_at = [o for o in range(len(outputs)) if o not in carry_set]
    inputs = [w.name(v) for v in program.inputs]
    params = [f"{'xs_' if kind == 'x' else 'in_'}{name}" for kind, name in zip(kinds, inputs)]
    nodes = group(program.equations, _elementwise)
    produced = {id(e.out): n for n in nodes for e in n.eqns}
    outside = {id(a) for a in outputs if isinstance(a, Var)}
    for n in nodes:
        for e in n.eqns:
            for a in e.inputs:
                if isinstance(a, Var) and produced.get(id(a)) is not n:
                    outside.add(id(a))
    # prologue: buffers, carries, constants
    for v, kind, name, param in zip(program.inputs, kinds, inputs, params):
        if kind == "c":
            w.emit(1, f"{name} = {param}.copy()" if v.shape else f"{name} = {param}")
            if v.shape:
                w.emit(1, f"n_{name} = np.empty_like({name})")
        elif kind == "k":
            w.emit(1, f"{name} = {param}")
    for n in nodes:
        for e in n.eqns:
            if e.out.shape and (id(e.out) in outside or not n.fused):
                dtype = "np.bool_" if str(e.out.dtype) == "bool" else "np.float64"
                w.emit(1, f"{w.name(e.out)} = np.empty({e.out.shape!r}, dtype={dtype})")
    w.emit(1, "for s in range(T):")
    w.emit(2, "t = T - 1 - s if rev else s")
    for kind, name, param in zip(kinds, inputs, params):
        if kind == "x":
            w.emit(2, f"{name} = {param}[t]")
    for n in nodes:
        if n.fused or _elementwise(n.eqns[0]):
            _write_group(w, n.eqns, outside, 2)
            continue
        eqn = n.eqns[0]
        if eqn.primitive is linear._sum_p:
            _write_sum(w, eqn, 2)
        elif eqn.primitive is linear._reshape_p:
            _write_reshape(w, eqn, 2)
        else:
            _write_scalar(w, eqn, 2)
    # ys into row t; next carries (all read before any is replaced)
    for j, o in enumerate(y_at):
        shape = program.atom_type(outputs[o])[0]
        w.copy(2, f"ys_{j}", outputs[o], tuple(shape), row="t")
    for i, o in zip(carry_at, carry_out):
        v = program.inputs[i]
        name = w.name(v)
        w.copy(2, f"n_{name}", outputs[o], v.shape)
    for i in carry_at:
        name = w.name(program.inputs[i])
        w.emit(2, f"{name}, n_{name} = n_{name}, {name}")
    scalar_finals = []
    for i in carry_at:
        v = program.inputs[i]
        if v.shape:
            w.copy(1, f"out_{w.name(v)}", v, v.shape)
        else:
            scalar_finals.append(w.name(v))
    w.emit(1, f"return ({', '.join(scalar_finals)}{',' if len(scalar_finals) == 1 else ''})")
    array_outs = [f"out_{w.name(program.inputs[i])}" for i in carry_at
                  if program.inputs[i].shape]
    consts = [f"a{k}" for k in range(len(w.array_consts))]
    signature = ", ".join(["T", "rev", *params, *consts, *(f"ys_{j}" for j in range(len(y_at))),
                           *array_outs])
    source = "\n".join([f"def loop({signature}):", *w.lines])
    return source, w, carry_at, y_at


def loop_kernel(program: Program, kinds: Sequence[str], carry_out: Sequence[int]
                ) -> Callable[[Sequence[Any], int, bool], tuple] | None:
    """``run(operands, length, reverse) -> results`` running the whole scan of ``program`` in
    one compiled loop (operands and results as :mod:`minidiff.scan_primitive` lays them
    out), or None when a part of the body cannot be written as a loop (then the scan runs
    step by step). Compiled once per program, layout and backend."""
    backend = _backend.get_backend()
    key = ("loop", tuple(kinds), tuple(carry_out), backend.name)
    if key in program.compiled:
        return program.compiled[key]
    run = None
    if backend.kernels.into:  # NumPy arrays: numba reads them
        simple = simplify(program, backend)
        if unsupported(simple) is None:
            run = _make_runner(simple, kinds, carry_out, backend)
    program.compiled[key] = run
    return run


_KERNELS: dict[str, Any] = {}  # source and constants -> numba dispatcher


def _compiled(source: str, namespace: dict) -> Any:
    key = source + repr(sorted((k, repr(v)) for k, v in namespace.items() if k.startswith("k")))
    kernel = _KERNELS.get(key)
    if kernel is None:
        import numba  # the optional 'jit' extra (checked when the executor was chosen)

        scope = dict(namespace)
        exec(compile(source, "<md.scan numba loop>", "exec"), scope)
        kernel = _KERNELS[key] = numba.njit(error_model="numpy", cache=False)(scope["loop"])
    return kernel


def _make_runner(program: Program, kinds: Sequence[str], carry_out: Sequence[int],
                 backend: _backend.Backend) -> Callable[[Sequence[Any], int, bool], tuple]:
    source, w, carry_at, y_at = _source(program, kinds, carry_out)
    xp = backend.xp
    w.namespace["np"] = xp
    kernel = _compiled(source, w.namespace)
    inputs = program.inputs
    consts = [xp.ascontiguousarray(c) for c in w.array_consts]
    y_types = [program.atom_type(program.outputs[o]) for o in y_at]
    y_types = [(tuple(shape), xp.dtype(str(dtype)) if str(dtype) in _DTYPES else
                backend.float_dtype) for shape, dtype in y_types]
    n_out = len(program.outputs)

    def run(operands: Sequence[Any], length: int, reverse: bool) -> tuple:
        args = []
        for v, kind, a in zip(inputs, kinds, operands):
            if kind == "x" or v.shape:
                args.append(xp.ascontiguousarray(a))
            else:
                args.append(bool(a) if str(v.dtype) == "bool" else float(a))
        ys = [xp.empty((length, *shape), dtype=dtype) for shape, dtype in y_types]
        finals = [xp.empty(inputs[i].shape, dtype=inputs[i].dtype) for i in carry_at
                  if inputs[i].shape]
        scalars = iter(kernel(length, bool(reverse), *args, *consts, *ys, *finals))
        arrays = iter(finals)
        results: list[Any] = [None] * n_out
        for i, o in zip(carry_at, carry_out):
            v = inputs[i]
            results[o] = next(arrays) if v.shape else xp.asarray(next(scalars), dtype=v.dtype)
        for j, o in enumerate(y_at):
            results[o] = ys[j]
        return tuple(results)

    return run
