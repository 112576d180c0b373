# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. minidiff from scratch
#
# This notebook builds a working automatic-differentiation library in about 150 lines of
# plain Python: first a forward engine of dual numbers, then a reverse engine with a tape,
# both driven by one table of rules. Every piece is then mapped onto minidiff's real source,
# with links to the lines, so that reading minidiff afterwards is recognising what you have
# already built. The last sections use the real thing: nested derivatives (and the bug that
# levels exist to prevent), the derived gradient program of `md.make_program(md.grad(f))`,
# Hessian-vector products and `minidiff.testing.check_grads`. Three exercises have check
# cells; their solutions are filled in (change them and rerun the check).
#
# The toy engine works on Python floats only, which keeps each rule one line. minidiff's
# engine is the same design on arrays: what it adds (shapes, broadcasting, K tangents at once,
# pytrees, freeing residuals, error messages) is listed in the map below. The files a learner
# reads next, in order and with their line ranges, are in
# [the reading order](../reading-order.md).
#
# **Quick mode.** With `MINIDIFF_TUTORIAL_QUICK=1` (the CI test sets it) the figure uses fewer
# points; every check runs.

# %%
import functools
import math
import os

import matplotlib.pyplot as plt
import numpy as np

import minidiff as md
from minidiff.testing import check_grads

QUICK = os.environ.get("MINIDIFF_TUTORIAL_QUICK", "") not in ("", "0")


def size(full, quick):
    """`full` in the full run, `quick` when MINIDIFF_TUTORIAL_QUICK=1."""
    return quick if QUICK else full


print("quick mode" if QUICK else "full run", "| backend:", md.get_backend().name)

# %% [markdown]
# ## 1. Dual numbers, the naive way
#
# Forward mode evaluates a program on pairs $(x, \dot x)$: a value and its derivative along
# one input direction. Each operation maps pairs to pairs by the chain rule,
#
# $$ (u, \dot u) \cdot (v, \dot v) = (uv,\; \dot u v + u \dot v), \qquad
#    \sin(u, \dot u) = (\sin u,\; \cos u \cdot \dot u), $$
#
# which is arithmetic with $\varepsilon^2 = 0$ on $u + \dot u\,\varepsilon$. Seeding the input
# with $\dot x = 1$ makes the output's second component $f'(x)$. About twenty lines:

# %%
class NaiveDual:
    """u + u̇·ε with ε² = 0: a value and its derivative."""

    def __init__(self, value, tangent):
        self.value, self.tangent = value, tangent

    def __add__(self, other):
        other = other if isinstance(other, NaiveDual) else NaiveDual(other, 0.0)
        return NaiveDual(self.value + other.value, self.tangent + other.tangent)

    def __mul__(self, other):
        other = other if isinstance(other, NaiveDual) else NaiveDual(other, 0.0)
        return NaiveDual(self.value * other.value,
                         self.tangent * other.value + self.value * other.tangent)

    __radd__, __rmul__ = __add__, __mul__


def naive_derivative(f):
    """f'(x), by evaluating f on the dual number x + 1·ε."""
    def df(x):
        y = f(NaiveDual(x, 1.0))
        return y.tangent if isinstance(y, NaiveDual) else 0.0
    return df


cubic = naive_derivative(lambda x: x * x * x + 2.0 * x)   # f' = 3x² + 2
print("d/dx (x³ + 2x) at x = 2:", cubic(2.0))
assert cubic(2.0) == 14.0
print("naive dual numbers: checks passed")

# %% [markdown]
# ### Perturbation confusion
#
# Derivatives of derivatives are where this breaks. Take
#
# $$ g(x) = x \cdot \frac{\partial}{\partial y}\big(x \cdot y\big)\Big|_{y=2} = x \cdot x,
#    \qquad g'(1) = 2. $$
#
# The inner derivative seeds $y$ with tangent 1; but $x$, already a dual number of the outer
# derivative, carries a tangent of 1 too, and the inner product cannot tell the two apart:
# $\dot{(xy)} = \dot x y + x \dot y = 2 + 1 = 3$ adds the *outer* perturbation into the *inner*
# derivative. The answer comes out wrong, with no error.

# %%
def g_naive(x):
    inner = naive_derivative(lambda y: x * y)(2.0)   # should be x, whatever x is
    return x * inner


confused = naive_derivative(g_naive)(1.0)
print("naive dual numbers: g'(1) =", confused, "(the truth is 2)")
assert confused == 3.0  # the two perturbations mixed
print("perturbation confusion reproduced: checks passed")

# %% [markdown]
# The cure is to give each derivative its own **level** and to tag every dual number with the
# level that created it. An operation on values of different levels acts at the deepest one and
# treats shallower values as constants (tangent 0 at that level); their own tangents are
# handled when control returns to their level. That is the design of JAX's Autodidax and of
# minidiff, and it is what the engine below is built around.
#
# ## 2. The core: primitives, levels, `bind`
#
# Three ideas, about 60 lines:
#
# * A **primitive** is an operation defined once, with its value on plain numbers (`impl`) and
#   its two derivative rules: the JVP $\dot y = \sum_i \frac{\partial y}{\partial x_i}\dot x_i$
#   and the VJP $\bar x_i \mathrel{+}= \bar y \cdot \frac{\partial y}{\partial x_i}$. For an
#   elementwise op both follow from the partial derivatives, so we write only those.
# * A **level** is one open transform, run by an **engine** (forward or reverse) that knows
#   how to apply a primitive to the values it has boxed.
# * **`bind(primitive, *args)`** finds the deepest level among the arguments and hands the call
#   to its engine; with no boxed argument it runs `impl`. The engine unboxes its own level and
#   calls `bind` again on what is inside, so one call passes down through every open level.
#
# The rules are written with the toy's own ops (`cos(x)`, `g * d`), so an outer level traces
# them too: that is what will make derivatives of derivatives work.

# %%
LEVELS = []  # the open levels, outermost first


class Level:
    def __init__(self, engine, depth):
        self.engine, self.depth = engine, depth


def open_level(engine):
    level = Level(engine, len(LEVELS) + 1)
    engine.level = level
    LEVELS.append(level)
    return level


def close_level(level):
    assert LEVELS[-1] is level, "levels close in the order they opened"
    LEVELS.pop()


class Box:
    """A value boxed at a level (a Dual or a TapeValue); its operators bind primitives."""

    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other): return div(other, self)
    def __neg__(self): return neg(self)


class Primitive:
    def __init__(self, name, impl, jvp, vjp):
        self.name, self.impl, self.jvp, self.vjp = name, impl, jvp, vjp

    def __call__(self, *args):
        return bind(self, *args)


def bind(primitive, *args):
    """Apply `primitive`, letting the deepest level among `args` handle it."""
    boxed = [a for a in args if isinstance(a, Box)]
    if not boxed:
        return primitive.impl(*args)
    top = max((a.level for a in boxed), key=lambda level: level.depth)
    return top.engine.process(primitive, args)


def elementwise(name, impl, partials):
    """A primitive from its partial derivatives: `partials(*args, out)` gives ∂out/∂arg_i."""
    def jvp(tangents, args, out):          # ẏ = Σ_i ∂y/∂x_i · ẋ_i   (None: constant)
        terms = [d * t for d, t in zip(partials(*args, out), tangents) if t is not None]
        return functools.reduce(lambda a, b: a + b, terms)

    def vjp(g, args, out, needs):          # x̄_i += ȳ · ∂y/∂x_i
        return [g * d if n else None for d, n in zip(partials(*args, out), needs)]

    return Primitive(name, impl, jvp, vjp)


add = elementwise("add", lambda x, y: x + y, lambda x, y, out: [1.0, 1.0])
sub = elementwise("sub", lambda x, y: x - y, lambda x, y, out: [1.0, -1.0])
mul = elementwise("mul", lambda x, y: x * y, lambda x, y, out: [y, x])
div = elementwise("div", lambda x, y: x / y, lambda x, y, out: [1.0 / y, -out / y])
neg = elementwise("neg", lambda x: -x, lambda x, out: [-1.0])
exp = elementwise("exp", math.exp, lambda x, out: [out])
log = elementwise("log", math.log, lambda x, out: [1.0 / x])
sin = elementwise("sin", math.sin, lambda x, out: [cos(x)])
cos = elementwise("cos", math.cos, lambda x, out: [-sin(x)])

print("sin(0.5) with no level open is plain math.sin:", sin(0.5) == math.sin(0.5))
assert sin(0.5) == math.sin(0.5) and mul(3.0, 4.0) == 12.0 and not LEVELS
print("core: checks passed")

# %% [markdown]
# ## 3. The forward engine
#
# A `Dual` is a value and a tangent **at a level**. The forward engine's `process` unboxes the
# arguments of its own level (others are constants: tangent None), binds the primitive again on
# the values, and applies the JVP rule. `jvp(f, x, v)` opens a level, seeds $x$ with tangent
# $v$, runs $f$, and reads the output's tangent *at its own level only*.

# %%
class Dual(Box):
    def __init__(self, value, tangent, level):
        self.value, self.tangent, self.level = value, tangent, level


class ForwardEngine:
    def process(self, primitive, args):
        ours = [isinstance(a, Dual) and a.level is self.level for a in args]
        values = [a.value if o else a for a, o in zip(args, ours)]
        tangents = [a.tangent if o else None for a, o in zip(args, ours)]
        out = bind(primitive, *values)             # may be handled by a shallower level
        return Dual(out, primitive.jvp(tangents, values, out), self.level)


def jvp(f, x, v):
    """(f(x), f'(x)·v) in one forward pass."""
    level = open_level(ForwardEngine())
    try:
        y = f(Dual(x, v, level))
    finally:
        close_level(level)
    if isinstance(y, Dual) and y.level is level:
        return y.value, y.tangent
    return y, 0.0 * v                              # f did not depend on x at this level


def derivative(f):
    return lambda x: jvp(f, x, 1.0)[1]


def f(x):
    return x * sin(x) + exp(x / 2.0)


def f_prime(x):  # by hand
    return sin(x) + x * math.cos(x) + 0.5 * math.exp(x / 2.0)


print(f"forward: f'(1.3) = {derivative(f)(1.3):.15f}, by hand {f_prime(1.3):.15f}")
# the same arithmetic in another order: equal to a few ulps (rounding, float64)
assert abs(derivative(f)(1.3) - f_prime(1.3)) <= 4 * np.spacing(f_prime(1.3))
print("forward engine: checks passed")

# %% [markdown]
# ## 4. The reverse engine: a tape
#
# Reverse mode runs the program once forwards, writing each primitive it applies onto a
# **tape** (the Wengert list), then walks the tape backwards from the output, pulling the
# adjoint $\bar v = \partial y / \partial v$ back through each VJP rule. The tape's order of
# creation is a topological order, so a plain loop in reverse suffices: no recursion, no sort.
#
# The one line that matters most is the `+=` in the backward loop. A value used twice (as in
# $x \cdot x$) receives one contribution per use, and its adjoint is their **sum**; overwriting
# instead of adding is the classic bug (micrograd's lesson). `backward(..., show=True)` prints
# each contribution as it is added.

# %%
class Node:
    """One row of the Wengert list: which primitive ran on which rows, and what its VJP reads."""

    def __init__(self, index, primitive, parents, args, out):
        self.index, self.primitive, self.parents = index, primitive, parents
        self.args, self.out = args, out           # the residuals (minidiff keeps fewer)


class TapeValue(Box):
    def __init__(self, value, node, level):
        self.value, self.node, self.level = value, node, level


class ReverseEngine:
    def __init__(self):
        self.nodes = []

    def add_input(self, x):
        node = Node(len(self.nodes), None, (), (), x)
        self.nodes.append(node)
        return TapeValue(x, node, self.level)

    def process(self, primitive, args):
        ours = [isinstance(a, TapeValue) and a.level is self.level for a in args]
        values = [a.value if o else a for a, o in zip(args, ours)]
        out = bind(primitive, *values)
        parents = [a.node if o else None for a, o in zip(args, ours)]
        node = Node(len(self.nodes), primitive, parents, values, out)
        self.nodes.append(node)
        return TapeValue(out, node, self.level)

    def backward(self, output, seed=1.0, show=False):
        """Every row's adjoint, walking the tape once from `output` down."""
        adjoints = [None] * len(self.nodes)
        adjoints[output.node.index] = seed
        for node in reversed(self.nodes):
            g = adjoints[node.index]
            if g is None or node.primitive is None:
                continue
            needs = [p is not None for p in node.parents]
            grads = node.primitive.vjp(g, node.args, node.out, needs)
            for parent, contribution in zip(node.parents, grads):
                if parent is None:
                    continue
                if show:
                    print(f"  v̄{parent.index} += {_val(contribution):g}   "
                          f"(from v{node.index} = {node.primitive.name})")
                previous = adjoints[parent.index]
                adjoints[parent.index] = (contribution if previous is None
                                          else previous + contribution)
        return adjoints


def _val(x):
    return x.value if isinstance(x, Box) else x


def value_and_grad(f, show=False):
    def vg(x):
        engine = ReverseEngine()
        level = open_level(engine)
        try:
            xb = engine.add_input(x)
            y = f(xb)
        finally:
            close_level(level)     # the backward pass runs at the outer levels
        if not (isinstance(y, TapeValue) and y.level is level):
            return y, 0.0 * x
        adjoint = engine.backward(y, show=show)[xb.node.index]
        return y.value, (0.0 * x if adjoint is None else adjoint)
    return vg


def grad(f, show=False):
    return lambda x: value_and_grad(f, show)(x)[1]


print(f"reverse: f'(1.3) = {grad(f)(1.3):.15f}")
assert abs(grad(f)(1.3) - f_prime(1.3)) <= 4 * np.spacing(f_prime(1.3))
print("x used twice, y = x·x·x at x = 2 (dy/dx = 3x² = 12):")
g12 = grad(lambda x: x * x * x, show=True)(2.0)
assert g12 == 12.0
print("reverse engine: checks passed")

# %% [markdown]
# Row v0 is the input $x$, v1 = x·x, v2 = v1·x. The backward pass visits v2 first: it sends
# $\bar v_2 \cdot x = 2$ to v1 and $\bar v_2 \cdot v_1 = 4$ to x. Then v1 = x·x sends
# $\bar v_1 \cdot x = 4$ to x **twice**, once per factor. The adjoint of x is $4 + 4 + 4 = 12$.
#
# minidiff's Wengert list shows the same bookkeeping for the real engine (its rows are named
# x1, v1, v2, ..., and its reverse table lists them in the order the backward pass visits
# them, last row first): each row's adjoint rule, and each adjoint as the sum of what its uses
# sent it.

# %%
listing = md.wengert(lambda x: x * x * x, 2.0)
print(listing.table("reverse"))
assert float(listing["x1"].adjoint) == 12.0
assert [float(v) for _, v in listing["x1"].contributions] == [4.0, 4.0, 4.0]
print("Wengert list: checks passed")

# %% [markdown]
# ## 5. How exact? Against finite differences
#
# Both engines apply the chain rule to exact local derivatives, so their only error is
# rounding. A central difference $\frac{f(x+h) - f(x-h)}{2h}$ has a truncation error
# $\propto h^2$ and a rounding error $\propto \epsilon_{\text{mach}}/h$: no step $h$ gets it below
# about $10^{-11}$ here.

# %%
steps = np.logspace(-13, -1, size(60, 20))
x0 = 1.3
exact = f_prime(x0)
fd_error = [abs((f(x0 + h) - f(x0 - h)) / (2 * h) - exact) / abs(exact) for h in steps]
forward_error = abs(derivative(f)(x0) - exact) / abs(exact)
reverse_error = abs(grad(f)(x0) - exact) / abs(exact)

fig, ax = plt.subplots(figsize=(6.4, 3.6))
ax.loglog(steps, np.maximum(fd_error, 1e-17), "o-", ms=3, label="central difference")
ax.axhline(max(forward_error, 1e-17), color="C1", label="toy forward engine")
ax.axhline(max(reverse_error, 1e-17), color="C2", ls="--", label="toy reverse engine")
ax.set_xlabel("finite-difference step h")
ax.set_ylabel("relative error of f'(1.3)")
ax.set_title("AD is exact to rounding; finite differences are not")
ax.legend()
plt.show()

best_fd = min(fd_error)
print(f"best central difference: {best_fd:.1e}; forward {forward_error:.1e}, "
      f"reverse {reverse_error:.1e}")
assert best_fd > 1e-12 and max(forward_error, reverse_error) < 1e-15
print("exactness: checks passed")

# %% [markdown]
# ## 6. The toy engine, mapped onto minidiff
#
# Every piece above has a counterpart in minidiff, at the lines linked (on GitHub, in a
# checkout and on this site, each link opens the file at that line), and each adds what arrays
# and real programs need.
#
# * `Primitive(name, impl, jvp, vjp)` is [`Primitive`](../../minidiff/core.py#L683). It adds
#   a `save` rule naming the residuals the VJP reads, so the tape keeps only those, and flags
#   for broadcasting and piecewise-constant ops.
# * `elementwise(name, impl, partials)` is
#   [`elementwise_primitive`](../../minidiff/ops/elementwise.py#L132); see
#   [`multiply`](../../minidiff/ops/elementwise.py#L234). Each partial names what it reads, so
#   what is kept cannot drift from what is read, and
#   [`unbroadcast`](../../minidiff/ops/linear.py#L278) sums cotangents over broadcast axes.
# * `Level`, `open_level` and `LEVELS` are [`Engine`](../../minidiff/core.py#L92) (the
#   engine *is* the level: it has the depth, and its `process` handles the primitives) and
#   [`open_level`](../../minidiff/core.py#L196). The stack of levels is per thread (a context
#   variable), and the values of a closed level become inert.
# * `bind` is [`bind`](../../minidiff/core.py#L585). Piecewise-constant ops skip the levels
#   that follow derivatives, and Python numbers and lists of traced values become arrays.
# * The `Box` operators are [`Box`](../../minidiff/core.py#L297): NumPy's operators and
#   methods, and a refusal to become a Python or NumPy number while traced.
# * `Dual` and `ForwardEngine.process` are [`Dual`](../../minidiff/forward.py#L25) and
#   [`process`](../../minidiff/forward.py#L51), with a leading axis of K tangent directions,
#   so `jacfwd` gets a whole Jacobian from one pass.
# * `Node` and `ReverseEngine.process` are [`Node`](../../minidiff/reverse.py#L37) and
#   [`process`](../../minidiff/reverse.py#L297); other recorders (checkpointing, `md.jit`)
#   write nodes of their own.
# * `backward` is [`_sweep`](../../minidiff/reverse.py#L185), which also frees each node's
#   residuals as soon as its rule has run.
# * `jvp` and `value_and_grad` are [`jvp`](../../minidiff/transforms.py#L291) and
#   [`value_and_grad`](../../minidiff/transforms.py#L123) (with
#   [`_record`](../../minidiff/transforms.py#L81)), plus `argnums`, `has_aux` and checks on
#   what goes in and out; `jacfwd`, `jacrev`, `vjp`, `hessian` and `hvp` are built the same way.
# * One float in and one float out become pytrees:
#   [`tree_flatten`](../../minidiff/pytree.py#L157) and
#   [`input_leaves`](../../minidiff/transform_io.py#L101) take nested tuples, lists and dicts
#   of arrays in and out, checked leaf by leaf.
#
# The next cell checks the toy against minidiff on the same function, in both modes.

# %%
def f_md(x):
    return x * md.sin(x) + md.exp(x / 2.0)


toy = (derivative(f)(1.3), grad(f)(1.3))
real = (float(md.jvp(f_md, (1.3,), (1.0,))[1]), float(md.grad(f_md)(1.3)))
print("toy (forward, reverse):", toy, "\nminidiff (jvp, grad):  ", real)
assert np.allclose(toy, real, rtol=1e-14, atol=0)  # the same rules: equal to rounding
print("toy against minidiff: checks passed")

# %% [markdown]
# ## 7. Nesting: levels cure perturbation confusion
#
# With levels the toy gets $g'(1) = 2$: inside the inner derivative, $x$ is a `Dual` of the
# outer level, a constant at the inner one. minidiff gives the same, with `grad` inside `grad`.

# %%
def g_levels(x):
    return x * derivative(lambda y: x * y)(2.0)


def g_md(x):
    return x * md.grad(lambda y: x * y)(2.0)


print("toy with levels: g'(1) =", derivative(g_levels)(1.0))
print("minidiff:        g'(1) =", float(md.grad(g_md)(1.0)))
assert derivative(g_levels)(1.0) == 2.0 and float(md.grad(g_md)(1.0)) == 2.0
print("perturbation confusion cured: checks passed")

# %% [markdown]
# ### Forward-over-reverse
#
# Because VJP rules are written with the engine's own ops, the backward pass can itself be
# differentiated. `derivative(grad(f))` runs the reverse engine's backward pass on `Dual`s of
# an outer forward level: a second derivative from one forward pass over one tape. That is how
# minidiff builds `hessian` ([`jacfwd(grad(f))`](../../minidiff/transforms.py#L383)) and
# [`hvp`](../../minidiff/transforms.py#L398), the Hessian-vector product
# $\nabla^2 f(x)\,v$ at the cost of a few gradients, without forming the Hessian.

# %%
def f_second(x):  # by hand: f'' of x·sin x + exp(x/2)
    return 2 * math.cos(x) - x * math.sin(x) + 0.25 * math.exp(x / 2.0)


toy_second = derivative(grad(f))(1.3)
md_second = float(md.hessian(f_md)(1.3))
print(f"f''(1.3): toy {toy_second:.15f}, minidiff hessian {md_second:.15f}, "
      f"by hand {f_second(1.3):.15f}")
# tolerances here and below: the same partials evaluated in another order, so the results
# differ by rounding only (a few ulps of values of order 1; 1e-14 leaves a margin of ~50 ulps)
assert abs(toy_second - f_second(1.3)) < 1e-14 and abs(md_second - f_second(1.3)) < 1e-14

# hvp on a function of a vector: f(x) = Σ sin(x_i) x_i², ∇²f diagonal, (∇²f v)_i = f_i'' v_i
x = md.asarray([0.3, -1.1, 2.0])
v = md.asarray([1.0, 0.5, -2.0])
hv = md.to_host(md.hvp(lambda x: md.sum(md.sin(x) * x**2), x, v))
xs, vs = np.array([0.3, -1.1, 2.0]), np.array([1.0, 0.5, -2.0])
by_hand = (2 * np.sin(xs) + 4 * xs * np.cos(xs) - xs**2 * np.sin(xs)) * vs
print("hvp:", hv, "\nby hand:", by_hand)
np.testing.assert_allclose(hv, by_hand, rtol=1e-13)
print("forward-over-reverse: checks passed")

# %% [markdown]
# ## 8. The derived program: `md.make_program(md.grad(f))`
#
# `md.jit` traces a function into a program: one line per primitive, like a Wengert list
# written as code (JAX calls it a jaxpr). Tracing `md.grad(f)` instead of `f` prints the
# program the reverse engine *derives*: the forward pass, then the backward pass, simplified.
# For $f(x) = \sum_i x_i \sin x_i$ the gradient is $\sin x + x \cos x$. In the second listing
# the constant `c1` is the seed $\bar y = 1$, broadcast to $x$'s shape by `sum`'s VJP rule;
# `multiply`'s VJP sends $\bar v_2 \cdot \sin x$ to one factor and $\bar v_2 \cdot x$ to the
# other, `sin`'s VJP multiplies the latter by $\cos x$, and `add` is the `+=` of the two uses of
# $x$. The forward pass's `sum` is gone: nothing in the gradient reads it.

# %%
def h(x):
    return md.sum(x * md.sin(x))


xv = md.asarray([0.5, 1.0, 2.0])
print(md.make_program(h)(xv))
print()
program = md.make_program(md.grad(h))(xv)
print(program)
ops_used = [line.split("= ")[1].split("(")[0] for line in str(program).splitlines()
            if " = " in line]
print("\nprimitives in the gradient program:", ops_used)
assert sorted(ops_used) == ["add", "cos", "multiply", "multiply", "multiply", "sin"]
xh = np.array([0.5, 1.0, 2.0])
np.testing.assert_allclose(md.to_host(md.jit(md.grad(h))(xv)), np.sin(xh) + xh * np.cos(xh),
                           rtol=1e-15)
print("derived program: checks passed")

# %% [markdown]
# ## 9. Checking rules: `minidiff.testing.check_grads`
#
# A hand-written derivative rule is the one place AD can be silently wrong. `check_grads`
# compares forward and reverse mode with central finite differences along random directions,
# checks $\langle u, J v\rangle = \langle J^\top u, v\rangle$ between the modes, and (with
# `order=2`) does the same for the derivatives of the derivatives. Here it passes for the
# correct rule of softplus, $\frac{d}{dx}\log(1 + e^x) = \sigma(x)$, and catches a rule that
# forgets the chain rule's $1/(1+e^x)$ factor.

# %%
@md.custom_jvp
def softplus(x):
    return md.log(1.0 + md.exp(x))


@softplus.defjvp
def softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), md.sigmoid(x) * t


@md.custom_jvp
def softplus_wrong(x):
    return md.log(1.0 + md.exp(x))


@softplus_wrong.defjvp
def softplus_wrong_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus_wrong(x), md.exp(x) * t      # wrong: d/dx log(1 + eˣ) is not eˣ


point = (md.asarray([-1.0, 0.3, 2.0]),)
check_grads(softplus, point, modes=("fwd",), order=1)
try:
    check_grads(softplus_wrong, point, modes=("fwd",), order=1)
    caught = None
except AssertionError as err:
    caught = str(err)
print("the wrong rule:", caught.splitlines()[0] if caught else "NOT CAUGHT")
assert caught is not None
check_grads(lambda x: md.sum(md.sin(x) * x**2), point, order=2)  # both modes
print("check_grads: checks passed")

# %% [markdown]
# ## 10. Exercises
#
# Each exercise has a cell for your answer (the solution is filled in) and a check cell that
# asserts it. Change the answer, rerun the check, and see it fail.
#
# **Exercise 1: a new primitive.** Add `tanh` to the toy engine with `elementwise`. Its partial
# is $1 - \tanh^2 x$; write it in terms of `out`, so that it reads the value already computed
# (as minidiff's `tanh` does). The check compares first and second derivatives with minidiff.

# %% tags=["hide-input"]
# your answer (solution):
tanh = elementwise("tanh", math.tanh, lambda x, out: [1.0 - out * out])

# %%
def k_toy(x):
    return tanh(x) * x


def k_md(x):
    return md.tanh(x) * x


for x0 in (-0.7, 0.2, 1.5):  # rounding only, as in section 7
    assert abs(grad(k_toy)(x0) - float(md.grad(k_md)(x0))) < 1e-14
    assert abs(derivative(grad(k_toy))(x0) - float(md.hessian(k_md)(x0))) < 1e-13
print("exercise 1: checks passed")

# %% [markdown]
# **Exercise 2: adjoints add up.** For $y = x \cdot x \cdot x$ at $x = 2$, minidiff's rows are
# x1 (the input), v1 = x1 · x1 and v2 = v1 · x1. List the contributions to $\bar x_1$ in the
# order the reverse sweep adds them, as (row that sends it, value), with $\bar y = 1$.

# %% tags=["hide-input"]
# your answer (solution): v2 = v1·x1 is visited first and sends v̄2·v1 = 4; then v1 = x1·x1
# sends v̄1·x1 = (v̄2·x1)·x1 = 4 once per factor
contributions_to_x1 = [("v2", 4.0), ("v1", 4.0), ("v1", 4.0)]

# %%
listing = md.wengert(lambda x: x * x * x, 2.0)
assert [(src, float(g)) for src, g in listing["x1"].contributions] == contributions_to_x1
assert sum(g for _, g in contributions_to_x1) == float(listing["x1"].adjoint) == 12.0
print(listing["x1"].accumulation)
print("exercise 2: checks passed")

# %% [markdown]
# **Exercise 3: a Hessian-vector product in the toy.** Write `toy_hvp(f, x, v)`, the
# second derivative times $v$ for a function of one float, by forward-over-reverse with the
# toy's `jvp` and `grad`. The check compares it with `md.hvp` and with the second derivative
# by hand.

# %% tags=["hide-input"]
# your answer (solution):
def toy_hvp(f, x, v):
    return jvp(grad(f), x, v)[1]

# %%
def m_toy(x):
    return sin(x) * x * x * x


def m_md(x):
    return md.sin(x) * x**3


for x0, v0 in ((0.5, 2.0), (-1.2, 0.3)):  # rounding only, relative to the value's size
    by_hand = (6 * x0 * math.sin(x0) + 6 * x0**2 * math.cos(x0) - x0**3 * math.sin(x0)) * v0
    assert abs(toy_hvp(m_toy, x0, v0) - by_hand) < 1e-13 * max(1.0, abs(by_hand))
    assert abs(float(md.hvp(m_md, x0, v0)) - by_hand) < 1e-13 * max(1.0, abs(by_hand))
print("exercise 3: checks passed")

# %%
# Key numbers: exact derivatives, alike in the quick and the full run, so
# tests/test_tutorials.py can check that the outputs stored in the .ipynb come from the
# current code (it compares this line from a fresh quick run with the stored one).
import json  # noqa: E402

key_numbers = {
    "x sin x + exp(x/2) at 1.3: toy (forward, reverse)": list(toy),
    "x sin x + exp(x/2) at 1.3: minidiff (jvp, grad)": list(real),
    "f''(1.3): toy, minidiff hessian": [toy_second, md_second],
    "hvp of sum(sin(x) x^2)": [float(v) for v in hv],
}
print("key numbers:", json.dumps(key_numbers))

# %% [markdown]
# ## Where to go next
#
# * [The reading order](../reading-order.md): minidiff's files in the order this notebook
#   introduced them, with the lines to read in each and what to look for.
# * [Notebook 1](01-automatic-differentiation.ipynb): what the two sweeps cost, measured on
#   an agent-based model, and the Wengert list of both sweeps (`minidiff trace`).
# * [How minidiff fits together](../architecture.md): the layers and the data flow of
#   `grad(f)(x)`.
