"""Pytrees of parameters, for the families and optimisers: the library's own
:mod:`minidiff.pytree`, under the names inference uses.

Variational families and optimisers keep their parameters as pytrees, e.g.
``{"loc": (d,), "log_scale": (d,)}`` or a list of layers. :func:`ravel` packs a pytree into one
flat vector and returns the inverse map, both written with minidiff ops, so a function of the
pytree can be differentiated through ``unravel``:

    flat, unravel = ravel(params)                      # flat: (P,), P = total leaf size
    g_flat = md.grad(lambda v: f(unravel(v)))(flat)    # (P,)
    g = unravel(g_flat)                                # the gradient, shaped like params
"""

from __future__ import annotations

from minidiff.pytree import ravel_pytree as ravel
from minidiff.pytree import tree_leaves, tree_map, tree_structure, tree_unflatten

__all__ = ["ravel", "tree_leaves", "tree_map", "tree_structure", "tree_unflatten"]
