"""minidiff.pytree: flattening nested tuples, lists and dicts, and raveling them to one vector.

Round trips are checked on hand-made trees and on random ones (hypothesis); ``ravel_pytree``
is checked to be differentiable in both directions on both backends.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidiff as md
from minidiff.pytree import (
    PyTreeDef,
    leaf_paths,
    ravel_pytree,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)

Point = namedtuple("Point", ["x", "y"])


def host(x):
    return np.asarray(md.to_host(x))


# ---------------------------------------------------------------------------------------------
# flatten and unflatten
# ---------------------------------------------------------------------------------------------


def test_flatten_lists_leaves_left_to_right_with_dict_keys_sorted():
    tree = {"w": (1, [2, 3]), "b": 4, "a": {"z": 5, "c": 6}}
    leaves, structure = tree_flatten(tree)
    assert leaves == [6, 5, 4, 1, 2, 3]  # "a" ("c", "z"), then "b", then "w"
    assert structure.n_leaves == 6
    assert tree_unflatten(structure, leaves) == tree


def test_containers_keep_their_types_and_namedtuples_their_fields():
    tree = (Point(1.0, [2.0]), [3.0], {"k": (4.0,)})
    rebuilt = tree_unflatten(tree_structure(tree), tree_leaves(tree))
    assert type(rebuilt) is tuple and type(rebuilt[0]) is Point and type(rebuilt[1]) is list
    assert rebuilt == tree
    assert rebuilt[0].y == [2.0]


def test_none_strings_and_objects_are_leaves_that_transforms_then_refuse():
    obj = object()
    leaves, structure = tree_flatten([None, "s", obj])
    assert leaves == [None, "s", obj]
    assert structure.paths() == ["[0]", "[1]", "[2]"]


def test_a_lone_array_is_a_leaf_with_an_empty_path():
    x = np.ones(3)
    leaves, structure = tree_flatten(x)
    assert leaves[0] is x and structure.is_leaf and structure.paths() == [""]


def test_leaf_paths_are_indexing_code():
    tree = {"w": [1.0, {"deep": 2.0}], "p": Point(3.0, 4.0)}
    assert leaf_paths(tree) == ["['p'].x", "['p'].y", "['w'][0]", "['w'][1]['deep']"]


def test_structures_compare_by_shape_of_the_tree_not_by_the_leaves():
    a = tree_structure({"x": [1, 2], "y": 3})
    b = tree_structure({"y": 30, "x": [10, 20]})  # insertion order does not matter
    c = tree_structure({"x": (1, 2), "y": 3})     # a tuple is not a list
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert isinstance(a, PyTreeDef) and "'x'" in repr(a)


def test_unflatten_with_the_wrong_number_of_leaves_says_how_many():
    structure = tree_structure((1, [2, 3]))
    with pytest.raises(ValueError, match=r"holds 3 leaves, but 2 were given"):
        tree_unflatten(structure, [1, 2])


def test_tree_map_applies_leaf_by_leaf_and_checks_structures():
    assert tree_map(lambda a, b: a + b, {"x": 1, "y": (2,)}, {"x": 10, "y": (20,)}) == \
        {"x": 11, "y": (22,)}
    with pytest.raises(ValueError, match=r"tree_map: tree 1 has structure"):
        tree_map(lambda a, b: a + b, {"x": 1}, {"x": 1, "y": 2})


# random nested trees of floats: tuples, lists and dicts up to depth 3
TREES = st.recursive(
    st.floats(-10, 10),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
    ),
    max_leaves=8,
)


@given(TREES)
def test_flatten_then_unflatten_is_the_identity(tree):
    leaves, structure = tree_flatten(tree)
    assert structure.n_leaves == len(leaves) == len(structure.paths())
    assert tree_unflatten(structure, leaves) == tree
    assert tree_map(lambda v: v, tree) == tree


# ---------------------------------------------------------------------------------------------
# ravel_pytree
# ---------------------------------------------------------------------------------------------


def test_ravel_pytree_round_trips(backend, to_array):
    tree = {"w": to_array(np.arange(6.0).reshape(2, 3)), "b": [to_array([7.0]), 8.0]}
    flat, unravel = ravel_pytree(tree)
    assert host(flat).tolist() == [7.0, 8.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # "b" before "w"
    back = unravel(flat)
    assert host(back["w"]).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert host(back["b"][0]).tolist() == [7.0] and host(back["b"][1]).shape == ()
    with pytest.raises(ValueError, match=r"vector of shape \(8,\)"):
        unravel(to_array(np.zeros(7)))


def test_ravel_pytree_of_one_leaf_and_of_no_leaves(backend, to_array):
    flat, unravel = ravel_pytree(to_array(np.ones((2, 2))))
    assert host(flat).shape == (4,) and host(unravel(flat)).shape == (2, 2)
    flat, unravel = ravel_pytree({})
    assert host(flat).shape == (0,) and unravel(flat) == {}


def test_ravel_pytree_refuses_leaves_that_are_not_arrays():
    with pytest.raises(TypeError, match=r"ravel_pytree: the leaf at \['name'\] is a str"):
        ravel_pytree({"name": "abc", "w": 1.0})
    with pytest.raises(TypeError, match=r"ravel_pytree: the leaf at \[1\] is None"):
        ravel_pytree([1.0, None])


def test_ravel_pytree_is_differentiable_both_ways(backend, to_array):
    """grad through unravel is the raveled gradient; jacfwd of ravel is the identity."""
    w, b = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([0.3, -0.7])
    params = {"w": to_array(w), "b": to_array(b)}

    def loss(p):
        return md.sum(md.tanh(p["w"] @ p["b"]) ** 2) + md.sum(p["b"] ** 3)

    flat, unravel = ravel_pytree(params)
    g_flat = md.grad(lambda theta: loss(unravel(theta)))(flat)
    g_tree = md.grad(loss)(params)
    np.testing.assert_allclose(host(g_flat), host(ravel_pytree(g_tree)[0]), rtol=1e-14)
    jac = md.jacfwd(lambda p: ravel_pytree(p)[0])(params)
    np.testing.assert_array_equal(host(jac["b"]), np.eye(6)[:, :2])
    np.testing.assert_array_equal(host(jac["w"]), np.eye(6)[:, 2:].reshape(6, 2, 2))
