"""User-defined primitives: give a function your own derivative rules.

``custom_jvp`` and ``custom_vjp`` turn a function into a primitive of its own. The function
body computes the value (with minidiff ops or anything else that works on arrays); the rules
you attach say how to differentiate it, and minidiff never looks inside the body. For
example::

    @minidiff.custom_jvp
    def log1pexp(x):
        return minidiff.log(1.0 + minidiff.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), minidiff.sigmoid(x) * t

    @minidiff.custom_vjp
    def clip_gradient(x):
        return x

    def clip_fwd(x):
        return x, None                       # value and residuals

    def clip_bwd(residuals, g):
        return (minidiff.clip(g, -1.0, 1.0),)  # one cotangent per argument

    clip_gradient.defvjp(clip_fwd, clip_bwd)

Tangents carry a leading axis of K directions (shape ``(K, *x.shape)``), so elementwise rules
like ``sigmoid(x) * t`` work as written. Each decorator supports one mode unless both rules
are given (``defjvp`` and ``defvjp`` can both be called on either): using the missing mode
raises ``minidiff.ModeError``.

Arguments and outputs may be pytrees (tuples, lists and dicts of arrays): the rules get
primals, tangents and cotangents in the same structures. Keyword arguments are bound to
their positions first (by the function's signature), so the rules see positional arguments
only. What a rule returns is checked against the primal: a tangent must have the structure of
the output and shape ``(K, *out.shape)``, a cotangent the structure and shape of its argument
(None for zero), both in the primal's floating dtype; a mismatch raises naming the rule.
The primitive has one result per leaf of the output (``Primitive.multiple_results``): nothing
is packed into one array, ``md.jit`` records one equation with a variable per leaf, and a leaf
that nothing downstream uses gets no cotangent, which ``bwd`` sees as zeros of its shape.

``bwd`` reads the residuals later than ``fwd`` made them: writable arrays among them (an array
the function closes over, an argument) are kept as copies, so updating those arrays in place
before the backward pass changes nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from . import backend as _backend
from .core import Box, Primitive, is_complex_dtype, raw, shape_of
from .ops import zeros
from .pytree import PyTreeDef, _describe_value, tree_flatten
from .reverse import copy_array, is_mutable_array

__all__ = ["custom_jvp", "custom_vjp", "CustomPrimitive"]


def _rule_name(rule: Any) -> str:
    name = getattr(rule, "__name__", None)
    return "rule" if name in (None, "<lambda>") else f"rule {name}"


class _Call:
    """One call's structures: the arguments' tree and leaf types, and (filled in when the
    body runs) the output's tree, leaf shapes and dtypes. A static parameter of the primitive.
    """

    __slots__ = ("name", "in_tree", "in_shapes", "in_dtypes", "out_tree", "out_shapes",
                 "out_dtypes")

    def __init__(self, name: str, in_tree: PyTreeDef, leaves: list) -> None:
        self.name = name
        self.in_tree = in_tree
        self.in_shapes = [shape_of(v) for v in leaves]
        self.in_dtypes = [getattr(raw(v), "dtype", None) for v in leaves]
        self.out_tree: PyTreeDef | None = None
        self.out_shapes: list = []
        self.out_dtypes: list = []

    def __repr__(self) -> str:
        return f"{self.name}{self.in_tree._describe()}"

    def record_output(self, out: Any) -> list:
        leaves, tree = tree_flatten(out)
        for leaf, path in zip(leaves, tree.paths()):
            if not (isinstance(leaf, int | float) or hasattr(leaf, "shape")):
                raise TypeError(f"{self.name}: the function's output"
                                f"{' at ' + path if path else ''} is {_describe_value(leaf)}; "
                                f"a custom rule's function must return arrays (or tuples, "
                                f"lists and dicts of them)")
        self.out_tree = tree
        self.out_shapes = [shape_of(v) for v in leaves]
        self.out_dtypes = [getattr(raw(v), "dtype", None) for v in leaves]
        return leaves


def _check_leaf(value: Any, shape: tuple, dtype: Any, what: str) -> Any:
    """``value`` as an array of ``shape`` in the floating dtype ``dtype``, or an error."""
    if not isinstance(value, Box):
        if not (isinstance(value, int | float) or hasattr(value, "shape")):
            raise TypeError(f"{what} is {_describe_value(value)}, not an array")
        value = _backend.get_backend().asarray(value)
    if shape_of(value) != tuple(shape):
        raise ValueError(f"{what} has shape {shape_of(value)}, but it must have shape "
                         f"{tuple(shape)}")
    got = raw(value).dtype
    xp = _backend.get_backend().xp
    if is_complex_dtype(got) or not xp.isdtype(got, "real floating") or (
            dtype is not None and xp.isdtype(dtype, "real floating") and got != dtype):
        expected = dtype if dtype is not None and xp.isdtype(dtype, "real floating") \
            else "a real floating dtype"
        raise TypeError(f"{what} has dtype {got}, but it must have dtype {expected} (that "
                        f"of the primal)")
    return value


class CustomPrimitive:
    """A function whose derivatives are given by user rules rather than by tracing its body."""

    def __init__(self, fun: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.name = getattr(fun, "__name__", "custom")
        try:
            self.signature: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):
            self.signature = None
        # positional parameters: a call with fewer arguments gets the defaults bound (the
        # rules always see every positional argument)
        self.n_positional = 0 if self.signature is None else sum(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            for p in self.signature.parameters.values())
        # one result per leaf of the output, whatever its structure: every engine hands the
        # leaves back as a tuple, and the call rebuilds the structure
        self.primitive = Primitive(self.name, self._impl, multiple_results=True)

    def _impl(self, *leaves: Any, call: _Call) -> tuple:
        out = self.fun(*call.in_tree.unflatten(leaves))
        return tuple(call.record_output(out))

    def _positional(self, args: tuple, kwargs: dict) -> tuple:
        """The call's arguments by position: keywords and defaults bound by the signature."""
        if not kwargs and len(args) >= self.n_positional:
            return args
        if self.signature is None:
            raise TypeError(f"{self.name}: keyword arguments need a function whose signature "
                            f"can be read; pass the arguments by position")
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.kwargs:
            raise TypeError(f"{self.name}: the keyword arguments {sorted(bound.kwargs)} have no "
                            f"position; custom rules take positional arguments")
        return tuple(bound.args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = self._positional(args, kwargs)
        leaves, in_tree = tree_flatten(args)
        call = _Call(self.name, in_tree, leaves)
        outs = self.primitive(*leaves, call=call)  # runs the function: out_tree is known after
        return call.out_tree.unflatten(list(outs))

    def defjvp(self, rule: Callable[[tuple, tuple], tuple[Any, Any]]) -> Callable:
        """``rule(primals, tangents) -> (out, out_tangent)``. Constant arguments get zero
        tangents; the tangent has the output's structure, each leaf of shape
        ``(K, *out.shape)``. Under forward mode the rule's ``out`` is the value (the function
        itself does not run, so the primal is computed once)."""
        name = f"{self.name}: the jvp {_rule_name(rule)}"

        def value_and_jvp(args: list, tangents: list, call: _Call) -> tuple[Any, Any]:
            k = next(shape_of(t)[0] for t in tangents if t is not None)
            filled = [zeros((k, *shape_of(a))) if t is None else t
                      for t, a in zip(tangents, args)]
            result = rule(call.in_tree.unflatten(args), call.in_tree.unflatten(filled))
            if not (isinstance(result, tuple | list) and len(result) == 2):
                raise TypeError(f"{name} must return a pair (output, tangent), got "
                                f"{_describe_value(result)}")
            if call.out_tree is None:  # the function has not run: the rule's output is the value
                values = call.record_output(result[0])
            else:
                values, tree = tree_flatten(result[0])
                if tree != call.out_tree:
                    raise ValueError(f"{name} returned an output of structure "
                                     f"{tree._describe()}, but the function returns "
                                     f"{call.out_tree._describe()}")
            t_leaves, t_tree = tree_flatten(result[1])
            if t_tree != call.out_tree:
                raise ValueError(f"{name} returned a tangent of structure {t_tree._describe()},"
                                 f" but the function's output has structure "
                                 f"{call.out_tree._describe()}")
            checked = []
            for t, shape, dtype, path in zip(t_leaves, call.out_shapes, call.out_dtypes,
                                             call.out_tree.paths()):
                where = f"{name} returned a tangent{' at ' + path if path else ''} that"
                checked.append(_check_leaf(t, (k, *shape), dtype, where))
            return tuple(values), tuple(checked)

        def jvp(tangents: list, args: list, out: Any, call: _Call) -> Any:
            return value_and_jvp(args, tangents, call)[1]  # the function gave the value

        self.primitive.jvp = jvp
        self.primitive.value_and_jvp = value_and_jvp
        return rule

    def defvjp(self, fwd: Callable[..., tuple[Any, Any]],
               bwd: Callable[[Any, Any], tuple]) -> None:
        """``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, g) -> cotangents`` (a tuple,
        one per argument, each with its argument's structure and shapes; None for zero)."""
        fwd_name = f"{self.name}: the fwd {_rule_name(fwd)}"
        bwd_name = f"{self.name}: the bwd {_rule_name(bwd)}"

        def save(args: list, out: Any, needs: tuple, call: _Call) -> Any:
            result = fwd(*call.in_tree.unflatten(args))
            if not (isinstance(result, tuple | list) and len(result) == 2):
                raise TypeError(f"{fwd_name} must return a pair (output, residuals), got "
                                f"{_describe_value(result)}")
            out_tree = tree_flatten(result[0])[1]
            if out_tree != call.out_tree:
                raise ValueError(f"{fwd_name} returned an output of structure "
                                 f"{out_tree._describe()}, but the function returns "
                                 f"{call.out_tree._describe()}")
            # the backward pass reads these later: arrays that could be updated in place by
            # then (closed over, or the caller's) are kept as they are now
            leaves, tree = tree_flatten(result[1])
            if any(is_mutable_array(v) for v in leaves):
                return tree.unflatten([copy_array(v) if is_mutable_array(v) else v
                                       for v in leaves])
            return result[1]

        def vjp(g: list, residuals: Any, needs: tuple, call: _Call) -> list[Any]:
            n_args = len(call.in_tree.children)
            # an output that received no cotangent gets zeros: the rule sees every leaf
            g = [zeros(shape) if ct is None else ct for ct, shape in zip(g, call.out_shapes)]
            grads = bwd(residuals, call.out_tree.unflatten(g))
            if not isinstance(grads, tuple | list) or len(grads) != n_args:
                raise TypeError(f"{bwd_name} must return a tuple of {n_args} cotangent(s), one "
                                f"per argument, got {_describe_value(grads)}")
            flat: list[Any] = []
            for i, (ct, arg_tree) in enumerate(zip(grads, call.in_tree.children)):
                if ct is None:
                    flat.extend([None] * arg_tree.n_leaves)
                    continue
                ct_leaves, ct_tree = tree_flatten(ct)
                if ct_tree != arg_tree:
                    raise ValueError(f"{bwd_name} returned a cotangent for argument {i} of "
                                     f"structure {ct_tree._describe()}, but the argument has "
                                     f"structure {arg_tree._describe()}")
                flat.extend(ct_leaves)
            paths = call.in_tree.paths()
            checked: list[Any] = []
            for j, (ct, need) in enumerate(zip(flat, needs)):
                if ct is None or not need:  # None: a zero cotangent, which the tape skips
                    checked.append(None)
                    continue
                where = f"{bwd_name} returned a cotangent (args{paths[j]}) that"
                checked.append(_check_leaf(ct, call.in_shapes[j], call.in_dtypes[j], where))
            return checked

        self.primitive.save = save
        self.primitive.vjp = vjp


custom_jvp = CustomPrimitive
custom_vjp = CustomPrimitive
