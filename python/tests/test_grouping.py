"""The grouping of Dask graph nodes into Shoal tasks (``shoal._grouping``), on plain graphs;
``sanity_check`` runs after every grouping."""

from __future__ import annotations

import random

import pytest

from shoal import _grouping


def grouped(deps: dict, order: list, wanted: set, cap: int) -> list[_grouping.Group]:
    groups = _grouping.group_subtrees(deps, order, wanted, cap)
    _grouping.sanity_check(deps, order, wanted, cap, groups)
    return groups


def binary_tree(levels: int) -> tuple[dict, list]:
    """Node ``(l, i)`` at level l adds ``(l-1, 2i)`` and ``(l-1, 2i+1)``; leaves at level 0."""
    deps: dict = {}
    order: list = []
    for level in range(levels):
        for i in range(2 ** (levels - 1 - level)):
            deps[(level, i)] = [] if level == 0 else [(level - 1, 2 * i), (level - 1, 2 * i + 1)]
            order.append((level, i))
    return deps, order


def test_tree_becomes_whole_subtrees_under_the_cap():
    """A binary tree groups into complete subtrees of at most ``cap`` nodes, which run side
    by side; the top of the tree is a group of its own."""
    deps, order = binary_tree(5)  # 31 nodes
    groups = grouped(deps, order, {(4, 0)}, cap=7)
    sizes = sorted(len(g.members) for g in groups)
    assert sizes == [3, 7, 7, 7, 7]
    # Each joined subtree's members, then their consumer (sanity_check: a valid run order).
    assert groups[0].members == [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
    assert groups[-1].members == [(3, 0), (3, 1), (4, 0)]
    assert groups[-1].inputs == [(2, 0), (2, 1), (2, 2), (2, 3)]


def test_cap_of_one_keeps_every_node_its_own_task():
    """At cap 1 the grouping is the identity, in the given order."""
    deps, order = binary_tree(4)
    groups = grouped(deps, order, set(), cap=1)
    assert [g.members for g in groups] == [[k] for k in order]


def test_shared_and_wanted_nodes_end_their_groups():
    """A node two others consume, and a node the caller wants, are group outputs."""
    deps = {"a": [], "shared": ["a"], "b": ["shared"], "c": ["shared"], "want": [], "d": ["b", "c", "want"]}
    order = ["a", "shared", "b", "c", "want", "d"]
    groups = grouped(deps, order, {"d", "want"}, cap=10)
    by_sink = {g.sink: g.members for g in groups}
    assert by_sink == {"shared": ["a", "shared"], "want": ["want"], "d": ["b", "c", "d"]}
    assert groups[-1].inputs == ["shared", "want"]


def test_fan_in_over_the_cap_is_never_half_grouped():
    """A node with more single-use producers than the cap takes none of them: the
    producers run side by side rather than some of them inside the consumer's task."""
    deps = {f"p{i}": [] for i in range(10)}
    deps["sum"] = [f"p{i}" for i in range(10)]
    order = [f"p{i}" for i in range(10)] + ["sum"]
    groups = grouped(deps, order, {"sum"}, cap=5)
    assert len(groups) == 11 and all(len(g.members) == 1 for g in groups)


def test_long_chain_is_cut_at_the_cap():
    """A chain longer than the cap becomes consecutive pieces of at most ``cap`` nodes."""
    order = [f"n{i}" for i in range(10)]
    deps = {k: ([order[i - 1]] if i else []) for i, k in enumerate(order)}
    groups = grouped(deps, order, {"n9"}, cap=4)
    assert [len(g.members) for g in groups] == [4, 4, 2]
    assert groups[1].inputs == ["n3"] and groups[2].inputs == ["n7"]


def test_keys_outside_the_graph_are_group_inputs():
    """A dependency missing from the graph (a held Future) is an input of its group."""
    deps = {"a": ["held"], "b": ["a", "held"]}
    groups = grouped(deps, ["a", "b"], {"b"}, cap=4)
    assert [(g.members, g.inputs) for g in groups] == [(["a", "b"], ["held"])]


def test_size_cap_keeps_many_groups_per_core():
    """The cap leaves at least ``GROUPS_PER_CORE`` groups per core and never exceeds the maximum."""
    assert _grouping.size_cap(10, 2) == 1
    assert _grouping.size_cap(2_668, 2) == 2_668 // (2 * _grouping.GROUPS_PER_CORE)
    assert _grouping.size_cap(2_000_000, 1) == _grouping.MAX_GROUP
    assert _grouping.size_cap(1000, 0) == 1000 // _grouping.GROUPS_PER_CORE


def test_random_graphs_keep_the_invariants():
    """Random DAGs, wanted sets and caps: every grouping passes ``sanity_check``."""
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 80)
        deps: dict = {}
        for i in range(n):
            k = f"k{i}"
            choices = [f"k{j}" for j in range(i)]
            deps[k] = rng.sample(choices, min(len(choices), rng.choice([0, 1, 1, 1, 2, 3])))
            if rng.random() < 0.05:
                deps[k].append("outside")
        order = list(deps)
        wanted = {k for k in order if rng.random() < 0.1} | {order[-1]}
        grouped(deps, order, wanted, rng.randint(1, 12))


def test_different_annotations_never_share_a_group():
    """Nodes whose labels (Dask annotations) differ end up in different groups, so each
    group's task carries the annotations of every member."""
    deps, order = binary_tree(3)  # 7 nodes
    labels = {(0, 0): ("highmem",), (0, 1): ("highmem",)}
    groups = _grouping.group_subtrees(deps, order, {(2, 0)}, 7, labels)
    _grouping.sanity_check(deps, order, {(2, 0)}, 7, groups)
    for g in groups:
        assert len({labels.get(m) for m in g.members}) == 1, g
    assert [g.members for g in groups if (0, 0) in g.members] == [[(0, 0)]]
    unlabelled = grouped(deps, order, {(2, 0)}, 7)
    assert len(unlabelled) == 1 and len(groups) > 1


class _Node:
    """A graph node as the plans read it: only its ``dependencies``."""

    def __init__(self, deps) -> None:
        self.dependencies = frozenset(deps)


def _plans(graph: dict, wanted: set, cap: int):
    """The Python plan and the native one of a graph, as comparable data."""
    from shoal import dask_hook

    ordered, deps = dask_hook._order_and_deps(graph)
    groups = _grouping.group_subtrees(deps, ordered, wanted, cap)
    _grouping.sanity_check(deps, ordered, wanted, cap, groups)
    python = [(g.members, g.inputs, ordered.index(g.sink)) for g in groups]
    native = [tuple(entry) for entry in _grouping.native().plan(graph, wanted, cap)]
    return python, native


@pytest.mark.skipif(_grouping.native() is None, reason="shoal._native is not built (make native)")
def test_native_plan_equals_the_python_plan():
    """On random DAGs (with outside keys, tuple and int keys, wanted sets and caps) the
    native plan gives exactly the Python path's groups, inputs and sink positions."""
    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(1, 80)
        keys = [rng.choice([f"k{i}", ("k", i), i]) for i in range(n)]
        graph: dict = {}
        for i, k in enumerate(keys):
            deps = rng.sample(keys[:i], min(i, rng.choice([0, 1, 1, 1, 2, 3])))
            if rng.random() < 0.05:
                deps.append("outside")
            graph[k] = _Node(deps)
        wanted = {k for k in keys if rng.random() < 0.1} | {keys[-1]}
        python, native = _plans(graph, wanted, rng.randint(1, 12))
        assert native == python


@pytest.mark.skipif(_grouping.native() is None, reason="shoal._native is not built (make native)")
def test_native_plan_leaves_cycles_to_the_python_path():
    """A cyclic graph gives no native plan (the Python path raises, naming the cycle)."""
    graph = {"a": _Node(["b"]), "b": _Node(["a"]), "c": _Node([])}
    assert _grouping.native().plan(graph, {"c"}, 4) is None


def test_native_is_off_with_shoal_native_0(monkeypatch):
    """``SHOAL_NATIVE=0`` turns the native plan off: the Python path runs."""
    monkeypatch.setenv("SHOAL_NATIVE", "0")
    assert _grouping.native() is None
