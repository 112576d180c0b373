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
# # 1. Automatic differentiation
#
# Automatic differentiation (AD) computes exact derivatives of programs: not approximations
# (finite differences), not formulas (symbolic differentiation), but the numbers the chain rule
# gives, evaluated alongside the program. This notebook rebuilds the first notebook of the
# ICAIF 2024 tutorial *Differentiable Probabilistic Programming for Agent-Based Models* on
# minidiff alone (no PyTorch, no sympy, no torchviz), and adds what those tools cannot show:
# both sweeps of the Wengert list, and the measured memory of forward, reverse and
# checkpointed reverse mode on an agent-based model.
#
# Every claim in the text is computed below, and a check cell asserts it.
#
# **Quick mode.** With `MINIDIFF_TUTORIAL_QUICK=1` (the CI test sets it) the sweeps are
# shorter; the checks still run, with the tolerances stated in each cell.

# %%
import json
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minidiff as md

QUICK = os.environ.get("MINIDIFF_TUTORIAL_QUICK", "") not in ("", "0")
FIGURES = os.environ.get("MINIDIFF_TUTORIAL_FIGURES")  # docs/build.py saves figures there


def size(full, quick):
    """`full` in the full run, `quick` when MINIDIFF_TUTORIAL_QUICK=1."""
    return quick if QUICK else full


def save(fig, name):
    """Keep a figure for the README (only when docs/build.py asks)."""
    if FIGURES:
        fig.savefig(os.path.join(FIGURES, f"{name}.png"), dpi=90, bbox_inches="tight")


def host(x):
    """A minidiff value as a NumPy array (for plotting and checks)."""
    return np.asarray(md.to_host(x))


print("quick mode" if QUICK else "full run", "| backend:", md.get_backend().name)

# %% [markdown]
# ## 1. Finite differences
#
# The forward difference $\frac{f(x+\epsilon) - f(x)}{\epsilon}$ approximates $f'(x)$ with a
# truncation error of $\frac{\epsilon}{2} f''(\xi)$. For
# $f(x) = x^3 + 4x^2 - 10$ (so $f'(x) = 3x^2 + 8x$) it is exactly
# $(3x + 4)\epsilon + \epsilon^2$, small for $\epsilon = 10^{-2}$. minidiff's `grad` gives
# the derivative to rounding; since $f$ acts elementwise, the gradient of $\sum_i f(x_i)$ is
# $f'$ at every point of the grid in one reverse sweep.

# %%
def cubic(x):
    return x**3 + 4 * x**2 - 10


def cubic_derivative(x):
    return 3 * x**2 + 8 * x


def forward_difference(f, x, eps):
    return (f(x + eps) - f(x)) / eps


x = np.linspace(-5, 5, 10)
eps = 1e-2
fd = forward_difference(cubic, x, eps)
ad = host(md.grad(lambda v: md.sum(cubic(v)))(md.asarray(x)))

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(x, cubic(x), "o-", label="f(x)")
ax.plot(x, cubic_derivative(x), "o-", label="f′(x) exact", alpha=0.6)
ax.plot(x, fd, "s--", label="f′(x) forward difference, ε = 1e-2", alpha=0.6)
ax.plot(x, ad, "x", color="k", label="f′(x) by md.grad")
ax.set_xlabel("x (dimensionless)")
ax.set_ylabel("f(x) and f′(x) (dimensionless)")
ax.set_title("f(x) = x³ + 4x² − 10: finite differences work here")
ax.legend()
plt.show()
print(f"largest finite-difference error: {np.max(np.abs(fd - cubic_derivative(x))):.4f} "
      f"(at x = 5: (3·5 + 4)ε + ε² = {19 * eps + eps**2:.4f}); "
      f"largest AD error: {np.max(np.abs(ad - cubic_derivative(x))):.1e}")

# %% [markdown]
# Now $f(x) = \sin(1000x)$ on 50 points of $[-0.5, 0.5]$, whose derivative
# $1000\cos(1000x)$ reaches $\pm 1000$. With $\epsilon = 10^{-2}$ the step spans 1.6
# periods, so the difference quotient is bounded by $2/\epsilon = 200$ and says nothing
# about the truth. $\epsilon = 10^{-5}$ works, with an error of at most
# $\frac{\epsilon}{2}\max|f''| = 5$. Choosing $\epsilon$ needs knowledge of $f''$ that we
# rarely have, and the cost grows with the input dimension: one extra evaluation per input.

# %%
x = np.linspace(-0.5, 0.5, 50)
truth = 1000 * np.cos(1000 * x)
fd_coarse = forward_difference(lambda v: np.sin(1000 * v), x, 1e-2)
fd_fine = forward_difference(lambda v: np.sin(1000 * v), x, 1e-5)
ad = host(md.grad(lambda v: md.sum(md.sin(1000 * v)))(md.asarray(x)))

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
ax0.plot(x, np.sin(1000 * x), "o-", ms=3)
ax0.set_xlabel("x (dimensionless)")
ax0.set_ylabel("sin(1000x) (dimensionless)")
ax0.set_title("f(x) = sin(1000x) on 50 points")
ax1.plot(x, truth, "o-", ms=3, label="1000·cos(1000x) (exact)")
ax1.plot(x, fd_coarse, "s-", ms=3, label="forward difference, ε = 1e-2", alpha=0.7)
ax1.plot(x, fd_fine, "^--", ms=3, label="forward difference, ε = 1e-5", alpha=0.7)
ax1.plot(x, ad, "x", color="k", label="md.grad")
ax1.axhline(200, color="grey", lw=0.8, ls=":")
ax1.axhline(-200, color="grey", lw=0.8, ls=":", label="±2/ε for ε = 1e-2")
ax1.set_xlabel("x (dimensionless)")
ax1.set_ylabel("f′(x) (dimensionless)")
ax1.set_title("the coarse step is bounded by 2/ε = 200")
ax1.legend(fontsize="small", loc="lower right")
plt.show()
print(f"exact derivative on the grid: {truth.min():.0f} .. {truth.max():.0f}; "
      f"ε = 1e-2: {fd_coarse.min():.0f} .. {fd_coarse.max():.0f}; "
      f"ε = 1e-5 error ≤ {np.max(np.abs(fd_fine - truth)):.2f}")

# %%
# Check. These are deterministic: the tolerances are rounding (1e-9 relative) or the
# truncation bounds derived above.
cubic_fd_error = np.abs(forward_difference(cubic, np.linspace(-5, 5, 10), 1e-2)
                        - cubic_derivative(np.linspace(-5, 5, 10)))
expected_error = np.abs((3 * np.linspace(-5, 5, 10) + 4) * 1e-2 + 1e-4)
assert np.allclose(cubic_fd_error, expected_error, rtol=1e-6, atol=1e-9)
assert np.all(np.abs(fd_coarse) <= 2 / 1e-2 + 1e-9)          # bounded by 2/ε
assert truth.max() > 800 and truth.min() < -800               # the truth reaches ±880
assert np.max(np.abs(fd_fine - truth)) <= 1e-5 / 2 * 1000**2  # ε/2 · max|f''| = 5
assert np.allclose(ad, truth, rtol=1e-9, atol=1e-9)           # AD: exact to rounding
print("finite differences: checks passed")

# %% [markdown]
# ## 2. Symbolic differentiation and expression swell
#
# Symbolic differentiation applies the rules $(a + b)' = a' + b'$, $(ab)' = a'b + ab'$ to a
# formula. The tutorial used sympy; here is a symbolic differentiator in twenty lines, enough
# to see the problem. A formula is a tree: when $f(x) = 3x^2 - x + 1$ is applied to itself,
# the inner formula is copied into every place $x$ appears, so the tree doubles with each
# application, and the product rule copies subtrees again.

# %%
class Expr:
    """A formula node: op is 'x', 'const', 'add', 'sub', 'mul' or 'pow' (integer power)."""

    def __init__(self, op, *args):
        self.op, self.args = op, args

    def __add__(self, other):
        return Expr("add", self, lift(other))

    def __radd__(self, other):
        return Expr("add", lift(other), self)

    def __sub__(self, other):
        return Expr("sub", self, lift(other))

    def __rsub__(self, other):
        return Expr("sub", lift(other), self)

    def __mul__(self, other):
        return Expr("mul", self, lift(other))

    def __rmul__(self, other):
        return Expr("mul", lift(other), self)

    def __pow__(self, n):
        return Expr("pow", self, n)

    def __str__(self):
        if self.op == "x":
            return "x"
        if self.op == "const":
            return f"{self.args[0]:g}"
        if self.op == "pow":
            return f"({self.args[0]})^{self.args[1]}"
        a, b = self.args
        return f"({a} {dict(add='+', sub='-', mul='*')[self.op]} {b})"


def lift(v):
    return v if isinstance(v, Expr) else Expr("const", v)


def diff(e):
    """d e / dx by the textbook rules, without simplification."""
    if e.op == "x":
        return lift(1)
    if e.op == "const":
        return lift(0)
    if e.op in ("add", "sub"):
        return Expr(e.op, diff(e.args[0]), diff(e.args[1]))
    if e.op == "mul":
        a, b = e.args
        return diff(a) * b + a * diff(b)
    a, n = e.args
    return (n * a ** (n - 1)) * diff(a)


def tree_size(e):
    """Nodes of the formula written out as a tree (a shared subformula counts each time)."""
    return 1 + sum(tree_size(a) for a in e.args if isinstance(a, Expr))


def dag_size(e, seen=None):
    """Distinct nodes: the same formula with shared subformulas stored once (a DAG)."""
    seen = set() if seen is None else seen
    if id(e) not in seen:
        seen.add(id(e))
        for a in e.args:
            if isinstance(a, Expr):
                dag_size(a, seen)
    return len(seen)


def f(x):
    return 3 * x**2 - x + 1


X = Expr("x")
print("f(x)  =", f(X))
print("f'(x) =", diff(f(X)))
print("f∘f∘f∘f(x) written out has", len(str(f(f(f(f(X)))))), "characters")

# %% [markdown]
# The same function traced by minidiff is a *Wengert list*: one row per primitive that ran,
# each row naming its arguments, so nothing is copied. `md.wengert` records it with both
# sweeps: the forward sweep's tangents $\dot v_i$ and the reverse sweep's adjoints
# $\bar v_i$. Here is $f \circ f$ at $x = 0.5$; its derivative is the adjoint of the input
# row $x_1$ (and, with the seed $\dot x = 1$, the tangent of the output row).

# %%
def compose(k):
    def fk(x):
        for _ in range(k):
            x = f(x)
        return x
    return fk


listing = md.wengert(compose(2), 0.5)
print(listing)

# %% [markdown]
# Counting nodes for $f$ applied $k = 1, \dots, 6$ times: the formula's tree, its symbolic
# derivative's tree, the DAG of the formula, and the Wengert list's rows (which, with its
# reverse sweep, *is* the derivative).

# %%
ks = list(range(1, 7))
sizes = {"formula as a tree": [], "symbolic derivative as a tree": [],
         "formula as a DAG": [], "Wengert list rows": []}
for k in ks:
    formula = compose(k)(X)
    sizes["formula as a tree"].append(tree_size(formula))
    sizes["symbolic derivative as a tree"].append(tree_size(diff(formula)))
    sizes["formula as a DAG"].append(dag_size(formula))
    sizes["Wengert list rows"].append(len(md.wengert(compose(k), 0.5).rows))

fig, ax = plt.subplots(figsize=(6.5, 4))
for (label, values), marker in zip(sizes.items(), "os^x"):
    ax.plot(ks, values, marker + "-", label=label)
ax.set_yscale("log")
ax.set_xlabel("number of applications k of f(x) = 3x² − x + 1")
ax.set_ylabel("nodes (count)")
ax.set_title("expression swell: trees double, the Wengert list grows linearly")
ax.legend(fontsize="small")
save(fig, "01-expression-swell")
plt.show()
for label, values in sizes.items():
    print(f"{label:>30}: {values}")

# %%
# Check (exact counts). Each application of f holds x twice, so the tree obeys
# s_k = 2 s_{k-1} + 6 (the rest of f's tree: add, sub, mul, pow and the constants 3 and 1);
# the DAG adds those 6 nodes once per application; the Wengert list adds 4 primitives (power,
# multiply, subtract, add: constants are arguments, not rows) plus the one input row.
tree = sizes["formula as a tree"]
assert all(tree[i] == 2 * tree[i - 1] + 6 for i in range(1, len(tree)))
assert sizes["formula as a DAG"] == [1 + 6 * k for k in ks]
assert sizes["Wengert list rows"] == [1 + 4 * k for k in ks]
assert sizes["symbolic derivative as a tree"][-1] > 100 * sizes["Wengert list rows"][-1]
d_exact = host(md.grad(compose(4))(0.5))
h = 1e-6  # central difference of a polynomial: error O(h²) relative
d_fd = (compose(4)(0.5 + h) - compose(4)(0.5 - h)) / (2 * h)
assert abs(float(d_exact) - d_fd) < 1e-6 * abs(d_fd)
print("expression swell: checks passed")

# %% [markdown]
# ### Control flow
#
# A symbolic tool cannot take
#
# $$f(x) = \begin{cases} x^3 & x < 2 \\ 3x & x \ge 2 \end{cases}$$
#
# because `if x < 2` has no truth value for a symbol. AD runs the program at a number, so the
# branch is taken and the derivative of the branch that ran comes out: $3x^2$ below 2 and
# $3$ above (the derivative does not exist at $x = 2$ itself, where $f$ jumps). In minidiff a
# comparison of a traced value gives a plain boolean, so Python's `if` works under `grad`;
# `md.where` is the same program on a whole array at once.

# %%
def piecewise(x):
    if x < 2:
        return x**3
    return 3 * x


def piecewise_masked(x):
    return md.where(x < 2, x**3, 3 * x)


xs = np.linspace(0, 5, 50)
values = [float(piecewise(v)) for v in xs]
derivs = [float(md.grad(piecewise)(float(v))) for v in xs]
derivs_masked = host(md.grad(lambda v: md.sum(piecewise_masked(v)))(md.asarray(xs)))

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(xs, values, "o-", ms=3, label="f(x)")
ax.plot(xs, derivs, "s", ms=4, label="f′(x) by md.grad with Python if", alpha=0.6)
ax.plot(xs, derivs_masked, "x", color="k", label="f′(x) by md.grad with md.where")
ax.set_xlabel("x (dimensionless)")
ax.set_ylabel("f(x), f′(x) (dimensionless)")
ax.set_title("a piecewise function: AD differentiates the branch taken")
ax.legend()
plt.show()

# %%
# Check (exact to rounding, 1e-12): the derivative of the branch that ran.
expected = np.where(xs < 2, 3 * xs**2, 3.0)
assert np.allclose(derivs, expected, rtol=1e-12, atol=1e-12)
assert np.allclose(derivs_masked, expected, rtol=1e-12, atol=1e-12)
print("control flow: checks passed")

# %% [markdown]
# ## 3. Tree against DAG: `x = x*x` three times
#
# The function below squares three times, $x^8$. Written as a formula it is a tree of 15
# nodes (8 leaves); the program that computes it needs 3 multiplications, each reading the
# previous result twice: a DAG of 4 nodes, which is exactly its Wengert list.

# %%
def square3(x):
    x = x * x
    x = x * x
    x = x * x
    return x


def draw_tree(ax, e, x0, x1, y, dy):
    """Draw formula `e` as a tree in the box [x0, x1] at height y; returns the node position."""
    xm = (x0 + x1) / 2
    kids = [a for a in e.args if isinstance(a, Expr)]
    for i, kid in enumerate(kids):
        width = (x1 - x0) / len(kids)
        kx, ky = draw_tree(ax, kid, x0 + i * width, x0 + (i + 1) * width, y - dy, dy)
        ax.plot([xm, kx], [y, ky], color="grey", lw=1, zorder=1)
    label = {"x": "x", "mul": "×"}.get(e.op, e.op)
    ax.text(xm, y, label, ha="center", va="center", zorder=2,
            bbox=dict(boxstyle="circle", fc="white", ec="C0"))
    return xm, y


tree_formula = square3(X)
wl = md.wengert(square3, 1.5)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
draw_tree(ax0, tree_formula, 0, 1, 3, 1)
ax0.set_title(f"expression tree: {tree_size(tree_formula)} nodes")
ax0.set_xlabel("leaves, left to right")
ax0.set_ylabel("depth (levels from the root)")
for i, row in enumerate(wl.rows):
    ax1.text(0.5, i, f"{row.name} = {row.definition}", ha="center", va="center",
             bbox=dict(boxstyle="round", fc="white", ec="C1"))
    if i:
        for bend in (-0.15, 0.15):  # the two arguments of each multiply
            ax1.annotate("", xy=(0.5, i - 0.25), xytext=(0.5, i - 0.75),
                         arrowprops=dict(arrowstyle="->", connectionstyle=f"arc3,rad={bend}"))
ax1.set_ylim(-0.6, len(wl.rows) - 0.4)
ax1.set_title(f"DAG (the Wengert list): {len(wl.rows)} nodes")
ax1.set_ylabel("row of the Wengert list")
ax1.set_xlabel("each arrow: one argument")
for ax in (ax0, ax1):
    ax.set_xticks([])
ax0.set_yticks([])
ax1.set_yticks(range(len(wl.rows)))
plt.show()

# %%
# Check (exact counts).
assert tree_size(tree_formula) == 15 and dag_size(tree_formula) == 4
assert [r.op for r in wl.rows] == ["input", "multiply", "multiply", "multiply"]
assert wl.rows[-1].args == ("v2", "v2")
assert math.isclose(float(wl.rows[0].adjoint), 8 * 1.5**7, rel_tol=1e-12)  # d x⁸/dx
print("tree against DAG: checks passed")

# %% [markdown]
# ## 4. The graph of $f(x, y) = x^2 + 4y + \cos^2(x)$ at $(2, 1.5)$
#
# The tutorial drew PyTorch's graph with torchviz. minidiff's Wengert list *is* the graph,
# with more on it: every row's primal value, its tangent (seed $\dot x = \dot y = 1$, so the
# output's tangent is $\partial_x f + \partial_y f$), its adjoint (so the input rows hold
# $\partial f/\partial x$ and $\partial f/\partial y$), and what the tape keeps for the
# reverse sweep. The value is 10.1732, $\partial f/\partial x = 2x - 2\cos x \sin x = 4.7568$
# and $\partial f/\partial y = 4$.

# %%
def g(x, y):
    return x**2 + 4 * y + md.cos(x) ** 2


wl = md.wengert(g, 2.0, 1.5)
print(wl)


def dot(listing):
    """The Wengert list as Graphviz DOT text (paste it into any Graphviz viewer)."""
    names = {r.name for r in listing.rows}
    lines = ["digraph wengert {", "  rankdir=BT; node [shape=box];"]
    for r in listing.rows:
        lines.append(f'  {r.name} [label="{r.name} = {r.definition}\\n'
                     f'value {float(r.primal):.4g}, adjoint {float(r.adjoint):.4g}"];')
        lines += [f"  {a} -> {r.name};" for a in r.args if a in names]
    return "\n".join(lines + ["}"])


print(dot(wl))

# %%
def draw_wengert(ax, listing):
    """Draw a Wengert list as a DAG: rows placed by depth, arrows from arguments."""
    depth, pos = {}, {}
    for r in listing.rows:
        parents = [a for a in r.args if a in depth]
        depth[r.name] = 1 + max((depth[a] for a in parents), default=-1)
    columns = {}
    for r in listing.rows:
        columns.setdefault(depth[r.name], []).append(r.name)
    for d, names in columns.items():
        for i, name in enumerate(names):
            pos[name] = (i - (len(names) - 1) / 2, d)
    for r in listing.rows:
        for a in r.args:
            if a in pos:
                ax.annotate("", xy=pos[r.name], xytext=pos[a],
                            arrowprops=dict(arrowstyle="->", color="grey", shrinkA=22,
                                            shrinkB=22))
        text = (f"{r.name} = {r.definition}\nvalue {float(r.primal):.4g}\n"
                f"tangent {float(r.tangent):.4g}  adjoint {float(r.adjoint):.4g}")
        ax.text(*pos[r.name], text, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="#fff8e6" if r.outputs else "white",
                          ec="C0" if r.op == "input" else "C1"))
    xs_ = [p[0] for p in pos.values()]
    ax.set_xlim(min(xs_) - 0.8, max(xs_) + 0.8)
    ax.set_ylim(-0.6, max(depth.values()) + 0.6)
    ax.set_yticks(range(max(depth.values()) + 1))


fig, ax = plt.subplots(figsize=(9, 6))
draw_wengert(ax, wl)
ax.set_xticks([])
ax.set_ylabel("depth (primitives from the inputs)")
ax.set_xlabel("rows at the same depth, side by side")
ax.set_title("f(x, y) = x² + 4y + cos²(x) at (2, 1.5): forward tangents, reverse adjoints")
save(fig, "01-wengert-graph")
plt.show()

# %%
# Check: the tutorial's numbers, to the 4 decimals it prints (tolerance 5e-5).
value = float(wl.rows[-1].primal)
dfdx, dfdy = (float(wl[name].adjoint) for name in ("x1", "x2"))
assert abs(value - 10.1732) < 5e-5 and abs(dfdx - 4.7568) < 5e-5 and dfdy == 4.0
gx, gy = md.grad(g, argnums=(0, 1))(2.0, 1.5)
assert float(gx) == dfdx and float(gy) == dfdy  # the same reverse sweep as md.grad
assert math.isclose(float(wl.rows[-1].tangent), dfdx + dfdy, rel_tol=1e-12)  # J·(1, 1)
print(f"value {value:.4f}, ∂f/∂x = {dfdx:.4f}, ∂f/∂y = {dfdy:.4f}: checks passed")

# %% [markdown]
# ## 5. Forward or reverse: which needs one sweep?
#
# Forward mode pushes one tangent direction $\dot x$ through the program and gets one
# *column* $J\dot x$ of the Jacobian; reverse mode pulls one cotangent $\bar y$ back and gets
# one *row* $\bar y^\top J$. For $f: \mathbb R^m \to \mathbb R^n$ the whole Jacobian costs $m$
# forward sweeps or $n$ reverse sweeps. The tutorial's two examples:
#
# * $f_1(x_1)$: square twice, return $[x_1, x_1, x_1]$ (1 input, 3 outputs);
# * $f_2(x_1, x_2, x_3) = (x_1 x_2 x_3)^2$ (3 inputs, 1 output).
#
# We count sweeps with a *counting identity*: a custom primitive whose value is its input and
# whose JVP and VJP rules are the identity, but which increments a counter each time a rule
# runs. `md.jvp` runs one forward sweep per call and `md.vjp`'s pull-back one reverse sweep
# per call.

# %%
calls = {"forward": 0, "reverse": 0}


@md.custom_jvp
def counted(x):
    return x


@counted.defjvp
def _counted_jvp(primals, tangents):
    calls["forward"] += 1
    return primals[0], tangents[0]


def _counted_fwd(x):
    return x, None  # value and residuals (none needed)


def _counted_bwd(residuals, g):
    calls["reverse"] += 1
    return (g,)


counted.defvjp(_counted_fwd, _counted_bwd)


def f1(x):
    x = counted(x)
    x = x * x
    x = x * x
    return md.concatenate([x, x, x])  # shape (3,)


def f2(x):  # x holds (x1, x2, x3)
    x = counted(x)
    return (x[0] * x[1] * x[2]) ** 2


def sweeps(fn, x, n_out):
    """Sweeps to get the whole Jacobian: one jvp per input, or one vjp pull-back per output."""
    m = x.shape[0]
    calls.update(forward=0, reverse=0)
    cols = [md.jvp(fn, (x,), (md.asarray(np.eye(m)[j]),))[1] for j in range(m)]
    out, pull_back = md.vjp(fn, x)
    rows = [pull_back(md.asarray(np.eye(n_out)[i]) if n_out > 1 else md.asarray(1.0))[0]
            for i in range(n_out)]
    jac_fwd = np.stack([host(c).reshape(-1) for c in cols], axis=1)
    jac_rev = np.stack([host(r) for r in rows], axis=0)
    return calls["forward"], calls["reverse"], jac_fwd, jac_rev


table = {}
for name, fn, x0, n_out in [("f1", f1, md.asarray([1.5]), 3),
                            ("f2", f2, md.asarray([1.0, 2.0, 3.0]), 1)]:
    n_fwd, n_rev, jf, jr = sweeps(fn, x0, n_out)
    table[name] = (n_fwd, n_rev, jf, jr)
    print(f"{name}: {x0.shape[0]} input(s), {n_out} output(s): forward mode needed "
          f"{n_fwd} sweep(s), reverse mode {n_rev}; Jacobian {jf.reshape(-1).round(3)}")

# %%
# Check (exact counts; the two Jacobians agree to rounding).
assert table["f1"][:2] == (1, 3) and table["f2"][:2] == (3, 1)
for _, _, jf, jr in table.values():
    assert np.allclose(jf, jr, rtol=1e-12)
assert np.isclose(table["f1"][2][0, 0], 4 * 1.5**3)          # d x⁴/dx
assert np.allclose(table["f2"][2].reshape(-1), [72, 36, 24])  # 2(x1x2x3)·(x2x3, x1x3, x1x2)
print("sweep counts: checks passed")

# %% [markdown]
# ## 6. Timing the Jacobian
#
# The tutorial's experiment: $f(x) = \left(\sum_i x_i\right) \cdot \mathbf 1_{n_{out}}$, with
# either 10 inputs and $n$ outputs or $n$ inputs and 10 outputs, $n$ from 1000 to 9000.
# `md.jacrev` runs one reverse sweep per output; `md.jacfwd` runs one forward pass carrying
# all $m$ tangent directions at once (a batch of shape $(m, \dots)$), so its work grows with
# $m$ times the size of each value. So reverse mode grows with $n$ in the first case and
# forward mode stays flat; in the second case it is the other way round.
#
# The counting identity first checks the sweep counts exactly; then we time each case (best
# of 3 runs).

# %%
def make_f(n_outputs):
    return lambda x: md.sum(counted(x)) * md.ones((n_outputs,))


n_range = size(list(range(1000, 10000, 1000)), [250, 500, 1000, 2000])
cases = {"10 inputs, n outputs": lambda n: (make_f(n), md.ones((10,))),
         "n inputs, 10 outputs": lambda n: (make_f(10), md.ones((n,)))}
times = {case: {"forward": [], "reverse": []} for case in cases}
counts = {case: {"forward": [], "reverse": []} for case in cases}


def best_of(fn, repeats=3):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


for case, build in cases.items():
    for n in n_range:
        fn, x0 = build(n)
        for mode, jac in (("forward", md.jacfwd), ("reverse", md.jacrev)):
            calls.update(forward=0, reverse=0)
            jac(fn)(x0)
            counts[case][mode].append(calls[mode])
            times[case][mode].append(best_of(lambda: jac(fn)(x0)))

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, case in zip(axes, cases):
    for mode in ("forward", "reverse"):
        ax.plot(n_range, times[case][mode], "o-",
                label=f"{mode} ({'md.jacfwd' if mode == 'forward' else 'md.jacrev'})")
    ax.set_xlabel("n (number of " + ("outputs" if case.startswith("10") else "inputs") + ")")
    ax.set_ylabel("time for the whole Jacobian (s)")
    ax.set_title(case)
    ax.legend()
plt.show()
for case in cases:
    f_t, r_t = times[case]["forward"], times[case]["reverse"]
    print(f"{case}: forward {f_t[0]:.4f} → {f_t[-1]:.4f} s, reverse {r_t[0]:.4f} → "
          f"{r_t[-1]:.4f} s as n goes {n_range[0]} → {n_range[-1]}")

# %%
# Check. The sweep counts are exact: jacrev runs one reverse sweep per output, jacfwd one
# forward pass (carrying all tangents) whatever the sizes.
out_case, in_case = cases
assert counts[out_case]["reverse"] == n_range and counts[in_case]["reverse"] == [10] * len(n_range)
assert counts[out_case]["forward"] == counts[in_case]["forward"] == [1] * len(n_range)
# Timing: the mode whose work grows with n must end up slower than the other by a wide margin
# (a factor 3 leaves room for a noisy machine; the measured factors are printed above).
assert times[out_case]["reverse"][-1] > 3 * times[out_case]["forward"][-1]
assert times[in_case]["forward"][-1] > 3 * times[in_case]["reverse"][-1]
print("Jacobian timing: checks passed")

# %% [markdown]
# ## 7. Ours: memory against T on the Cont model
#
# Agent-based models have few parameters and many steps, so forward mode is viable, and it
# has a second advantage: it keeps nothing. Reverse mode must keep every step's residuals on
# the tape until the backward pass reads them, so its memory grows like $T$.
# `md.checkpointed_loop` keeps only about $\sqrt T$ snapshots of the state and recomputes the
# steps between them during the backward pass (Griewank's revolve schedule).
#
# This is the machinery of the `minidiff memory` command (`minidiff.cli.memory.run_sweep`),
# run on Cont's volatility-clustering market (`minidiff.models.cont`): for each $T$ it
# measures the peak memory (tracemalloc) of the primal, `jacfwd` (4 tangents), `grad` and
# `grad` with the time loop in `checkpointed_loop`, and reads the tape's own account. The
# third panel holds $T$ fixed and widens the parameter vector to $P$ entries (a fixed linear
# map onto Cont's 4, so the simulation is the same at every $P$): forward mode carries $P$
# tangents, reverse mode one adjoint per value whatever $P$.

# %%
from minidiff.cli.memory import WORKLOADS, growth_exponent, run_sweep  # noqa: E402
from minidiff.cli.memory_figure import draw, run_parameter_sweep, slope  # noqa: E402

n_agents = size(2000, 200)
steps = size([25, 50, 100, 200, 400, 800, 1600], [10, 20, 40, 80])
rows = run_sweep(WORKLOADS["cont"], n_agents, steps, progress=False)
param_counts = size([1, 2, 4, 8, 16, 32, 64], [1, 4, 16])
param_rows = run_parameter_sweep(WORKLOADS["cont"], n_agents, 100, param_counts)

labels = {"primal": "primal (no derivative)", "forward": "forward (jacfwd)",
          "reverse": "reverse (grad)", "checkpointed": "checkpointed reverse"}
fig = plt.figure(figsize=(17, 5))
draw(fig, rows, param_rows, labels, f"Cont model, N = {n_agents} agents")
fig.tight_layout()
save(fig, "01-memory")
plt.show()
slopes = {mode: growth_exponent(rows, mode) for mode in ("forward", "reverse", "checkpointed")}
p_slopes = {mode: slope(param_counts, [r.peak[mode] for r in param_rows])
            for mode in ("forward", "reverse")}
print("peak memory ∝ P^slope at T = 100:", {m: round(s, 2) for m, s in p_slopes.items()})
last = rows[-1]
print("peak memory ∝ T^slope:", {m: round(s, 2) for m, s in slopes.items()})
print(f"at T = {last.n_steps}: reverse {last.peak['reverse'] / 2**20:.2f} MiB, checkpointed "
      f"{last.peak['checkpointed'] / 2**20:.2f} MiB ({last.snapshots} snapshots), forward "
      f"{last.peak['forward'] / 2**20:.2f} MiB; time checkpointed / reverse = "
      f"{last.seconds['checkpointed'] / last.seconds['reverse']:.2f}")

# %% [markdown]
# Forward mode's memory is flat in $T$, reverse mode's grows linearly (about 17 bytes per
# agent per step on the tape), and checkpointed reverse mode's grows much more slowly: its
# snapshots grow like $\sqrt T$, but on top of a fixed cost for one step's tape, so the
# fitted slope over this range (in the legend) is below ½; the grey guides show what slopes 1
# and ½ look like. It pays a constant factor more time. Against the number of parameters the
# roles swap: forward mode's memory and time grow with $P$, reverse mode's do not.

# %%
# Check. Memory is deterministic for a given allocation pattern, so no Monte Carlo error:
# the bands are those `minidiff memory` uses to describe growth (flat: slope < 0.15;
# sublinear: < 0.75; linear: about 1). The three gradients must agree to rounding.
assert abs(slopes["forward"]) < 0.15
assert 0.85 < slopes["reverse"] < 1.15
assert 0.1 < slopes["checkpointed"] < 0.75
assert last.peak["checkpointed"] < 0.5 * last.peak["reverse"]
assert all(r.gradient_difference < 1e-10 for r in rows)
# Against P (deterministic too): forward mode's peak at the largest P is more than twice its
# peak at P = 1 (it holds P tangents of every live value on top of a fixed cost, so the
# fitted slope starts below 1), and reverse mode's peak stays within 10% across P.
forward_peaks = [r.peak["forward"] for r in param_rows]
reverse_peaks = [r.peak["reverse"] for r in param_rows]
assert forward_peaks[-1] > 2 * forward_peaks[0]
assert max(reverse_peaks) < 1.1 * min(reverse_peaks)
print("memory against T: checks passed")

# %%
# Key numbers: computed alike in the quick and the full run (no sample sizes enter them), so
# tests/test_tutorials.py can check that the outputs stored in the .ipynb come from the
# current code: it compares this line from a fresh quick run with the stored one.
key_numbers = {
    "d compose(4)/dx at 0.5": float(d_exact),
    "wengert value, df/dx, df/dy": [value, dfdx, dfdy],
    "tree sizes": sizes["formula as a tree"],
    "masked piecewise derivative, sum over the grid": float(derivs_masked.sum()),
}
print("key numbers:", json.dumps(key_numbers))


# %% [markdown]
# ## Summary
#
# * Finite differences need a step chosen per function, and one extra evaluation per input.
# * Symbolic formulas swell: each application of $f$ doubles the tree. The Wengert list that
#   AD records grows by four rows.
# * AD differentiates the branch a program takes, so control flow is no obstacle.
# * The Jacobian of $f: \mathbb R^m \to \mathbb R^n$ costs $m$ forward or $n$ reverse sweeps.
# * Reverse mode pays for its cheap gradients with memory that grows with the length of the
#   simulation; forward mode keeps nothing, and checkpointing buys most of the memory back.
