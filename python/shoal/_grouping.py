"""Groups the nodes of a Dask graph into Shoal tasks: a node whose only consumer is one other
node (and that the caller does not want back) runs in its consumer's task, so each task is a
small in-tree of nodes, run in one executor call with no scheduling, transfer or pickling
between them. Reductions, chains and blockwise pipelines of tiny tasks then cost one
scheduler round trip per group instead of per node.

A node joins its consumer's group only when *all* such producers fit together under the
size cap (whole subtrees, never half a fan-in), and the cap keeps many more groups than
cores, so grouping never serializes work that could have run side by side: a graph of
``n`` nodes on ``c`` cores gets groups of at most ``n / (16 c)`` nodes.

Pure: plain data in, plain data out; no Dask imports. Not here: how a group is pickled
(``dask_hook``) or run (``executor``). The same grouping in Rust, for graphs of millions of
nodes, is ``shoal._native`` (``python/native``; see :func:`native`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import chain

# Groups per core the cap aims for, so that load still balances.
GROUPS_PER_CORE = 16
# Most nodes in one group: bounds what one failure or one lost worker recomputes.
MAX_GROUP = 4096


@dataclass
class Group:
    """One Shoal task: ``members`` in run order (each joined subtree's members, then their
    consumer), the last one its output (``sink``)."""

    members: list
    # Keys the members need from outside the group (other groups' sinks, or keys outside
    # the graph), each once, in first-use order.
    inputs: list

    @property
    def sink(self):
        return self.members[-1]


def native():
    """``shoal._native`` (the same order and grouping in Rust, ``python/native``) when it
    was built and is not turned off with ``SHOAL_NATIVE=0``; else None (the Python path)."""
    if os.environ.get("SHOAL_NATIVE", "1") == "0":
        return None
    try:
        from shoal import _native
    except ImportError:
        return None
    return _native


def size_cap(nodes: int, cores: int) -> int:
    """Most nodes per group for a graph of ``nodes`` on ``cores`` cores."""
    return max(1, min(MAX_GROUP, nodes // (GROUPS_PER_CORE * max(1, cores))))


def group_subtrees(deps: dict, order: list, wanted: set, cap: int, labels: dict | None = None) -> list[Group]:
    """Groups ``order`` (every key of ``deps``, each after its dependencies) into in-trees
    of at most ``cap`` nodes. ``deps[k]`` lists k's dependencies (keys outside ``deps`` are
    inputs from elsewhere). Wanted keys and keys with several consumers end a group.
    Groups come in the order of their sinks in ``order``. Keys with different ``labels``
    (their Dask annotations; absent means none) never share a group, so every member of a
    group carries the annotations of its sink, which its task is submitted with."""
    labels = labels or {}
    consumers = Counter(chain.from_iterable(deps[k] for k in order))
    parent: dict = {}
    # The members of the group each key heads so far, in run order (a joining dependency's
    # list is taken over, so a chain appends and never copies).
    members: dict = {}
    for k in order:
        label = labels.get(k) if labels else None
        joining = None
        total = 1
        for d in deps[k]:
            if consumers[d] == 1 and d in members and d not in wanted and (not labels or labels.get(d) == label):
                if joining is None:
                    joining = [d]
                else:
                    joining.append(d)
                total += len(members[d])
        if joining is not None and total <= cap:
            group = members.pop(joining[0])
            parent[joining[0]] = k
            for d in joining[1:]:
                group.extend(members.pop(d))
                parent[d] = k
            group.append(k)
            members[k] = group
        else:
            members[k] = [k]
    groups = []
    for k in order:
        if k in parent:
            continue
        group_members = members[k]
        inputs: dict = {}
        for m in group_members:
            for d in deps[m]:
                if d not in parent:  # a grouped dependency's one consumer is this member
                    inputs[d] = None
        groups.append(Group(group_members, list(inputs)))
    return groups


def sanity_check(deps: dict, order: list, wanted: set, cap: int, groups: list[Group]) -> None:
    """Asserts the invariants of a grouping: every key in exactly one group, within the cap,
    after its dependencies in the group;
    a member other than the sink has one consumer, inside its group, and is not wanted;
    inputs are exactly the members' dependencies from outside the group; every input from
    the graph is an earlier group's sink."""
    seen: set = set()
    sinks_so_far: set = set()
    consumers: dict = {}
    for k in order:
        for d in deps[k]:
            consumers[d] = consumers.get(d, 0) + 1
    for g in groups:
        assert 1 <= len(g.members) <= cap, g
        assert not seen.intersection(g.members), "a key is in two groups"
        seen.update(g.members)
        inside = set(g.members)
        for m in g.members[:-1]:
            assert m not in wanted, f"wanted key {m!r} is not a sink"
            assert consumers.get(m) == 1, f"{m!r} has {consumers.get(m)} consumers but is grouped"
        ran: set = set()
        for m in g.members:
            assert all(d in ran for d in deps[m] if d in inside), f"{m!r} runs before a dependency"
            ran.add(m)
        outside = {d for m in g.members for d in deps[m] if d not in inside}
        assert outside == set(g.inputs) and len(g.inputs) == len(outside), g
        for d in g.inputs:
            assert d not in deps or d in sinks_so_far, f"input {d!r} is not an earlier sink"
        sinks_so_far.add(g.sink)
    assert seen == set(order), "some keys are in no group"
