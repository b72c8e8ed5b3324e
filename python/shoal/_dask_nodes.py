"""Dask ``_task_spec`` nodes as plain tuples that pickle at C speed and run in a tight loop:
the encoding of one Shoal task's Dask nodes (a group, see ``_grouping``) on the client, and
their evaluation in the executor. Not part of the public API.

Why not the nodes themselves: pickling a ``Task`` goes through its Python ``__getstate__``
(and unpickling through ``__setstate__``), calling one checks its arguments against a set of
all values, and a blockwise-fused node (``_execute_subgraph``) runs its two-node inner graph
through ``execute_graph``, which calls ``dask.order`` each time: together about 60 µs per
node of a ``da.ones(...).sum()`` graph whose functions take 8 µs.

An encoded node ``e`` is one of:

- an ``int``: the value in that slot (a ``TaskRef`` or an ``Alias``);
- ``(CALL, func, args, kwargs, dyn_args, dyn_kwargs)``: a ``Task`` (or one of its containers
  ``List``, ``Tuple``, ``Set``, ``Dict``, which are Tasks of a constructor); ``args`` and
  ``kwargs`` hold the arguments that are plain values, ``dyn_args`` ``(index, e)`` and
  ``dyn_kwargs`` ``(name, e)`` the ones computed from other values;
- ``(SUB, plan, deps)``: ``_execute_subgraph(inner, outkey, inkeys, *deps)``; ``plan`` is
  the inner nodes reaching ``outkey`` in dependency order, encoded over local slots (the
  ``deps``' values first, then the plan's own), its last entry ``outkey``. Nodes of the
  inner graph that ``outkey`` does not need are not run (``execute_graph`` runs them and
  drops their values);
- ``(DATA, value)``: a ``DataNode``;
- ``(NODE, node, deps)``: any other node (or one that does not encode), run as Dask runs it,
  with ``{key: value}`` of its ``deps`` ``(key, slot)``.

A group's slots are its inputs (in the task's input order), then its members in run order.
Pure: no I/O, no Dask imports but ``dask._task_spec``.
"""

from __future__ import annotations

from typing import Any

CALL, SUB, DATA, NODE = 0, 1, 2, 3


def _classes():
    from dask import _task_spec as ts

    calls = (ts.Task, ts.List, ts.Tuple, ts.Set, ts.Dict)
    return ts, frozenset(calls)


def encoder():
    """An encoder for one submission: ``shoal._native.Encoder`` (the same encoding in Rust)
    when it was built and is not turned off (``SHOAL_NATIVE=0``), else :class:`Encoder`."""
    from shoal._grouping import native

    module = native()
    if module is None:
        return Encoder()
    from dask import _task_spec

    return module.Encoder(_task_spec)


class Encoder:
    """Encodes the nodes of one submission, a group at a time. Inner graphs of fused nodes,
    which Dask shares between the nodes of a layer, are encoded once per group (and so
    pickle once per task); so is a fused node with the same arguments as the one before it
    of its inner graph (see ``_same``), such as every chunk of ``da.ones``: the group then
    holds, pickles and runs one encoded node for all of them."""

    def __init__(self) -> None:
        self.ts, self.calls = _classes()
        # id(inner graph) -> [inner graph, outkey, inkeys, its plan, the last node's
        # arguments after inkeys, that node's encoding], for one group.
        self.plans: dict = {}

    def group(self, graph: dict, members: list, inputs: list) -> tuple[tuple, tuple]:
        """``(keys, nodes)`` of a group: its member keys and, per member, ``(e, release)``:
        its encoding over the group's slots and the slots of members no longer needed once
        it has run (its dependencies inside the group: each has it as its one consumer)."""
        self.plans.clear()
        slot = {k: i for i, k in enumerate(inputs)}
        base = len(inputs)
        inside = set(members) if len(members) > 1 else ()
        nodes = []
        for i, key in enumerate(members):
            node = graph[key]
            nodes.append((self.node(node, slot), tuple(slot[d] for d in node.dependencies if d in inside)))
            slot[key] = base + i
        return tuple(members), tuple(nodes)

    def node(self, node, slot: dict):
        """One node over ``slot`` (``{key: slot}`` of the values it may refer to)."""
        try:
            return self._encode(node, slot)
        except (KeyError, TypeError, ValueError):
            # A shape this encoder does not know: the node runs as Dask runs it.
            return (NODE, node, tuple((d, slot[d]) for d in node.dependencies))

    def _encode(self, a, slot: dict):
        ts = self.ts
        t = type(a)
        if t is ts.TaskRef:
            return slot[a.key]
        if t is ts.Alias:
            return slot[a.target]
        if t is ts.DataNode:
            return (DATA, a.value)
        if t in self.calls:
            if a.func is ts._execute_subgraph:
                return self._subgraph(a, slot)
            args, dyn_args = self._arguments(a.args, slot)
            kwargs = a.kwargs
            dyn_kwargs: tuple = ()
            if kwargs and any(isinstance(v, (ts.GraphNode, ts.TaskRef)) for v in kwargs.values()):
                kwargs = dict(kwargs)
                dyn = []
                for name, v in a.kwargs.items():
                    if isinstance(v, (ts.GraphNode, ts.TaskRef)):
                        dyn.append((name, self._encode(v, slot)))
                        del kwargs[name]
                dyn_kwargs = tuple(dyn)
            return (CALL, a.func, args, kwargs or None, dyn_args, dyn_kwargs)
        if isinstance(a, ts.GraphNode):
            return (NODE, a, tuple((d, slot[d]) for d in a.dependencies))
        raise TypeError(f"not a Dask node: {t.__name__}")

    def _arguments(self, args: tuple, slot: dict) -> tuple[tuple, tuple]:
        ts = self.ts
        nodes = (ts.GraphNode, ts.TaskRef)
        if not any(isinstance(v, nodes) for v in args):
            return args, ()
        plain = list(args)
        dyn = []
        for i, v in enumerate(args):
            if type(v) is ts.DataNode:
                plain[i] = v.value
            elif isinstance(v, nodes):
                dyn.append((i, self._encode(v, slot)))
                plain[i] = None
        return tuple(plain), tuple(dyn)

    def _subgraph(self, task, slot: dict):
        inner, outkey, inkeys = task.args[:3]
        inkeys = tuple(inkeys)
        entry = self.plans.get(id(inner))
        if entry is None or entry[1] != outkey or entry[2] != inkeys:
            entry = [inner, outkey, inkeys, self._plan(inner, outkey, inkeys), (), None]
            self.plans[id(inner)] = entry
        args = task.args[3:]
        last = entry[4]
        if entry[5] is not None and len(args) == len(last) and all(map(self._same, args, last)):
            # The same arguments as the node before: within a group they encode the same.
            return entry[5]
        deps = tuple(self._encode(a, slot) if isinstance(a, (self.ts.GraphNode, self.ts.TaskRef)) else (DATA, a)
                     for a in args)
        if len(deps) != len(inkeys):
            raise ValueError("inner graph inputs and dependencies differ in number")
        entry[4], entry[5] = args, (SUB, entry[3], deps)
        return entry[5]

    def _same(self, a, b) -> bool:
        """Whether arguments ``a`` and ``b`` of a fused node encode the same in one group:
        one object, or data nodes of one value or of equal shapes (tuples of ints, as Dask
        gives each chunk of ``da.ones`` its own)."""
        if a is b:
            return True
        if type(a) is not self.ts.DataNode or type(b) is not self.ts.DataNode:
            return False
        x, y = a.value, b.value
        if x is y:
            return True
        return type(x) is tuple and type(y) is tuple and _is_shape(x) and _is_shape(y) and x == y

    def _plan(self, inner: dict, outkey, inkeys) -> tuple:
        local = {k: i for i, k in enumerate(inkeys)}
        order: list = []
        stack = [(outkey, False)]
        entered: set = set()
        while stack:
            key, ready = stack.pop()
            if ready:
                order.append(key)
                continue
            if key in entered or key in local:
                continue
            entered.add(key)
            stack.append((key, True))
            stack.extend((d, False) for d in inner[key].dependencies if d not in entered and d not in local)
        plan = []
        for key in order:
            plan.append(self._encode(inner[key], local))
            local[key] = len(local)
        return tuple(plan)


def _is_shape(value: tuple) -> bool:
    for v in value:
        if type(v) is not int:
            return False
    return True


def run(e, vals: list) -> Any:
    """The value of encoded node ``e`` over slot values ``vals``."""
    if type(e) is int:
        return vals[e]
    tag = e[0]
    if tag == CALL:
        _, func, args, kwargs, dyn_args, dyn_kwargs = e
        if dyn_args:
            args = list(args)
            for i, x in dyn_args:
                args[i] = vals[x] if type(x) is int else run(x, vals)
        if dyn_kwargs:
            kwargs = dict(kwargs) if kwargs else {}
            for name, x in dyn_kwargs:
                kwargs[name] = vals[x] if type(x) is int else run(x, vals)
        if kwargs:
            return func(*args, **kwargs)
        return func(*args)
    if tag == SUB:
        _, plan, deps = e
        local: list = []
        append = local.append
        for x in deps:  # a loop, not a comprehension: no function call per node
            append(vals[x] if type(x) is int else x[1] if x[0] == DATA else run(x, vals))
        for x in plan:
            if type(x) is not int and x[0] == CALL and not x[5]:
                # A call without computed keywords, the usual inner node: run here.
                _, func, args, kwargs, dyn_args, _ = x
                if dyn_args:
                    args = list(args)
                    for i, y in dyn_args:
                        args[i] = local[y] if type(y) is int else run(y, local)
                append(func(*args, **kwargs) if kwargs else func(*args))
            else:
                append(run(x, local))
        return local[-1]
    if tag == DATA:
        return e[1]
    _, node, deps = e
    return node({d: vals[s] for d, s in deps})


def run_group(keys: tuple, nodes: tuple, inputs: list, task_key: str) -> Any:
    """Runs a group's encoded nodes in order on its inputs; returns the last one's value.
    A member's value is dropped once its one consumer has run. An exception names the Dask
    key of the node that raised it."""
    vals = list(inputs)
    append = vals.append
    for i, (e, release) in enumerate(nodes):
        try:
            append(run(e, vals))
        except Exception as exc:
            if len(nodes) > 1:
                note = f"shoal: raised by Dask task {keys[i]!r}, run as part of task {task_key!r}"
                if hasattr(exc, "add_note"):
                    exc.add_note(note)
                else:  # Python 3.10
                    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
            raise
        for r in release:
            vals[r] = None
    return vals[-1]
