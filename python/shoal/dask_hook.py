"""Runs Dask graphs on Shoal: the scheduler hook behind ``Client.get`` (so
``dask.compute(x, scheduler=client)``, ``x.compute(scheduler=client)`` and
``dask.config.set(scheduler=client)`` work), ``Client.compute`` and ``Client.persist``.

A graph (an expression, a ``HighLevelGraph`` or a plain dict) is materialized into
``dask._task_spec`` nodes, grouped into small in-trees (``_grouping``: a node whose only
consumer is one other node runs in that node's task; ``dask.config`` ``shoal.max-group-size``
bounds or, at 1, disables it), and each group becomes one task whose payload is
``("dask-nodes", keys, nodes)``, the nodes as plain tuples (``_dask_nodes``: pickled at C
speed, run without Dask's per-node checks; see ``_payload.py`` and ``_dumps_node``), submitted in depth-first order with
that order as priority. Dask keys (str, int, float, tuples) become Shoal keys with
:func:`shoal_key`. Dask-expr dataframes are blockwise-fused before submission (``dask.compute``
does not fuse them). Shoal Futures inside graphs (``__dask_future__``) are dependencies on
keys the scheduler already holds.

Annotations from ``dask.annotate`` (read with ``__dask_annotations__`` of expressions and
``layer.annotations`` of ``HighLevelGraph`` layers) are honoured for ``resources``,
``retries`` and ``priority`` (higher first, like Dask); nodes with different annotations are
never grouped into one task. Others (``workers``, ``allow_other_workers``) are ignored.

Not here: Dask's ``p2p`` shuffle (it needs distributed's worker plugin; Shoal clients default the shuffle
to ``tasks``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from itertools import chain
from typing import Any

from shoal import _dask_nodes, _grouping, _payload, _wire
from shoal.client import _no_gc
from shoal.errors import ShoalError
from shoal.futures import Future, pickled_as_refs


def shoal_key(key: Any) -> str:
    """The Shoal key of a Dask key: a str is kept (prefixed by ``'`` when it starts with
    ``(``, ``#`` or ``'``), a tuple becomes its ``repr``, a number ``#`` + its ``repr``.
    Distinct Dask keys get distinct Shoal keys."""
    t = type(key)
    if t is str:
        return "'" + key if key[:1] in ("(", "#", "'") else key
    if t is tuple:
        return repr(key)
    if t in (int, float):
        return "#" + repr(key)
    if isinstance(key, str):
        return shoal_key(str(key))
    if isinstance(key, tuple):
        return repr(tuple(key))
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return "#" + repr(key.item() if hasattr(key, "item") else key)
    raise TypeError(f"Dask key {key!r} is a {type(key).__name__}; keys must be str, int, float or tuples of them")


def _flatten(keys) -> list:
    out = []
    stack = [keys]
    while stack:
        k = stack.pop()
        if isinstance(k, list):
            stack.extend(reversed(k))
        else:
            out.append(k)
    return out


def _pack(keys, values: dict):
    if isinstance(keys, list):
        return [_pack(k, values) for k in keys]
    return values[keys]


def _fuse_dataframes(expr, keys: list):
    """Blockwise-fuses the dask-expr dataframes of an expression sequence (their keys
    change). Returns the expression and a map from requested to computed keys."""
    try:
        from dask._expr import _ExprSequence
        from dask.dataframe.dask_expr._expr import Expr as FrameExpr
    except ImportError:
        return expr, {}
    if type(expr) is not _ExprSequence or not any(isinstance(op, FrameExpr) for op in expr.operands):
        return expr, {}
    fused_ops = [op.fuse() if isinstance(op, FrameExpr) else op for op in expr.operands]
    renamed = {}
    for old, new in zip(expr.operands, fused_ops):
        old_keys, new_keys = _flatten(list(old.__dask_keys__())), _flatten(list(new.__dask_keys__()))
        if len(old_keys) != len(new_keys):
            return expr, {}
        renamed.update(zip(old_keys, new_keys))
    if not all(k in renamed for k in keys):
        return expr, {}
    return _ExprSequence(*fused_ops), renamed


def materialize(dsk, keys: list) -> tuple[dict, dict]:
    """The ``dask._task_spec`` graph needed for ``keys`` (flat), and the map from a
    requested key to the key actually computed for it (when fusion renamed it)."""
    from dask._task_spec import convert_legacy_graph, cull
    from dask.utils import ensure_dict

    renamed: dict = {}
    if isinstance(dsk, Mapping):
        graph = ensure_dict(dsk)
    elif hasattr(dsk, "__dask_graph__"):
        dsk, renamed = _fuse_dataframes(dsk, keys)
        graph = dsk.__dask_graph__()
        graph = ensure_dict(graph) if not isinstance(graph, dict) else graph
    else:
        raise TypeError(f"cannot run {type(dsk).__name__} as a Dask graph: expected an expression, a HighLevelGraph or a dict")
    graph = convert_legacy_graph(graph)
    wanted = [renamed.get(k, k) for k in keys]
    graph = cull(graph, list(dict.fromkeys(k for k in wanted if k in graph)))
    return graph, renamed


_HONOURED = ("resources", "retries", "priority")


def annotations_of(dsk) -> dict:
    """``{dask key: {annotation: value}}`` for the annotations Shoal honours, from an
    expression (``__dask_annotations__``) or a ``HighLevelGraph`` (each layer's
    ``annotations``, a value or a function of the key)."""
    by_type: dict = {}
    if hasattr(dsk, "__dask_annotations__"):
        by_type = dsk.__dask_annotations__() or {}
    elif hasattr(dsk, "layers"):
        for layer in dsk.layers.values():
            for name, value in (getattr(layer, "annotations", None) or {}).items():
                if name in _HONOURED:
                    target = by_type.setdefault(name, {})
                    for k in layer:
                        target[k] = value(k) if callable(value) else value
    out: dict = {}
    for name in _HONOURED:
        for k, v in (by_type.get(name) or {}).items():
            out.setdefault(k, {})[name] = v
    return out


def _label(annotation: dict | None):
    """A hashable form of a key's annotations (equal annotations, equal labels)."""
    if not annotation:
        return None
    resources = annotation.get("resources") or {}
    return (tuple(sorted(resources.items())), annotation.get("retries"), annotation.get("priority") or 0)


def _options(annotation: dict | None) -> dict:
    """The ``_wire.task`` keywords for a key's ``resources`` and ``retries``."""
    if not annotation:
        return {}
    options: dict = {}
    if annotation.get("resources"):
        options["resources"] = {str(k): float(v) for k, v in annotation["resources"].items()}
    if annotation.get("retries") is not None:
        options["max_retries"] = int(annotation["retries"])
    return options


def submit(client, graph: dict, wanted: list, annotations: dict | None = None) -> tuple[dict, int]:
    """Submits a materialized graph in one submission; returns ``{dask key: Future}`` for
    the wanted keys (those in the graph, or held Futures' keys outside it) and the number
    of Shoal tasks the graph became (nodes grouped by ``_grouping``). ``annotations`` (see
    :func:`annotations_of`) set resources, retries and priority per task."""
    # Ordering, grouping and encoding allocate millions of small containers: with the
    # collector on, 12 µs per node of a 200,000-node graph are spent encoding, 4 without.
    with _no_gc():
        return _submit(client, graph, wanted, annotations or {})


def _submit(client, graph: dict, wanted: list, annotations: dict) -> tuple[dict, int]:
    wanted_set = set(wanted)
    outside = [k for k in wanted_set if k not in graph]
    held: dict = {}
    for k in outside:
        # A key dropped from the graph because it aliases itself: a held Future's key.
        if isinstance(k, str) and client._status(k) != "released":
            held[k] = Future(k, client)
        else:
            raise KeyError(f"requested key {k!r} is neither in the graph nor held by this client")
    if not graph:
        return held, 0
    groups, priority = _plan(graph, wanted_set, _group_cap(client, len(graph)), annotations)
    batch_of = _batches(groups)
    position = {g.sink: i for i, g in enumerate(groups)}
    # Sinks a later submission reads: held (wanted) until the whole graph is submitted.
    bridge = {d for i, g in enumerate(groups) for d in g.inputs if batch_of[position.get(d, i)] != batch_of[i]}
    skeys = [shoal_key(g.sink) for g in groups]
    encoder = _NodeEncoder()
    result: dict = {}
    bridges: list = []
    start = 0
    with pickled_as_refs():
        while start < len(groups):
            end = start
            while end < len(groups) and batch_of[end] == batch_of[start]:
                end += 1
            index = {groups[i].sink: i - start for i in range(start, end)}
            tasks = []
            blobs_before: dict[int, list[bytes]] = {}
            for i in range(start, end):
                g = groups[i]
                new_blobs = len(encoder.blobs)
                options = _options(annotations.get(g.sink)) if annotations else {}
                hold = g.sink in wanted_set or g.sink in bridge
                tasks.append(_encode(graph, g, skeys[i], index, position, priority[g.sink], hold, encoder, options))
                if len(encoder.blobs) > new_blobs:
                    blobs_before[i - start] = [encoder.blobs[-1]]
            held_keys = [groups[i].sink for i in range(start, end) if groups[i].sink in wanted_set or groups[i].sink in bridge]
            futures = client._submit(skeys[start:end], tasks, [shoal_key(k) for k in held_keys], blobs_before)
            for k, f in zip(held_keys, futures):
                if k in wanted_set:
                    result[k] = f
                else:
                    bridges.append(f)
            start = end
    del bridges  # the later submissions hold what they read
    result.update(held)
    return result, len(groups)


# A large graph goes in several submissions, so that the cluster runs the first groups
# while the client encodes the rest: the first of about FIRST_BATCH_NODES nodes, each next
# one twice the size of the one before, up to MAX_BATCH_NODES.
FIRST_BATCH_NODES = 20_000
MAX_BATCH_NODES = 320_000


def _batches(groups: list) -> list[int]:
    """The submission each group goes in (groups in sink order, whole groups per batch)."""
    out = []
    batch, size, limit = 0, 0, FIRST_BATCH_NODES
    for g in groups:
        if size >= limit:
            batch, size, limit = batch + 1, 0, min(2 * limit, MAX_BATCH_NODES)
        out.append(batch)
        size += len(g.members)
    return out


def _plan(graph: dict, wanted: set, cap: int, annotations: dict) -> tuple[list, dict]:
    """The graph's groups (``_grouping``) in the order of their sinks, and each sink's
    priority: its place in the depth-first order, ranked first by the user's ``priority``
    annotation. The native plan (``shoal._native``, when built) computes the same groups
    and order as the Python path for graphs without annotations; a cycle takes the Python
    path, which names its keys."""
    native = _grouping.native()
    if native is not None and not annotations:
        planned = native.plan(graph, wanted, cap)
        if planned is not None:
            groups = [_grouping.Group(members, inputs) for members, inputs, _ in planned]
            return groups, {g.sink: position for g, (_, _, position) in zip(groups, planned)}
    ordered, deps = _order_and_deps(graph)
    labels = {k: _label(annotations[k]) for k in ordered if k in annotations} if annotations else None
    groups = _grouping.group_subtrees(deps, ordered, wanted, cap, labels)
    priority = {k: i for i, k in enumerate(ordered)}
    if annotations:
        # Dask runs higher priorities first; Shoal lower ones. Within one user priority,
        # the depth-first order still decides.
        user = {k: int(a.get("priority") or 0) for k, a in annotations.items() if k in priority}
        ranks = {p: r for r, p in enumerate(sorted(set(user.values()) | {0}, reverse=True))}
        n = len(ordered)
        priority = {k: ranks[user.get(k, 0)] * n + i for k, i in priority.items()}
    return groups, {g.sink: priority[g.sink] for g in groups}


def _group_cap(client, nodes: int) -> int:
    """Most nodes per task: ``dask.config`` ``shoal.max-group-size`` when set (1: one
    task per node), else sized from the graph and the cluster's cores."""
    import dask

    fixed = dask.config.get("shoal.max-group-size", None)
    if fixed is not None:
        return max(1, int(fixed))
    if _grouping.size_cap(nodes, 1) == 1:
        return 1  # too small to group on any cluster: no need to count cores
    return _grouping.size_cap(nodes, client._cores())


def depth_first_order(graph: dict) -> list:
    """Keys in depth-first post order from the graph's outputs: every task after its
    dependencies, one branch finished before the next starts (what ``dask.order`` aims
    for, at a fraction of its cost: it is the priority Shoal runs tasks in)."""
    return _order_and_deps(graph)[0]


def _order_and_deps(graph: dict) -> tuple[list, dict]:
    """The depth-first post order, and ``{key: its dependencies}`` in that order, read once
    from the nodes. A dependency on a key whose subtree is still being walked (on the
    current path) is a cycle, refused by name."""
    needed = set(chain.from_iterable(node.dependencies for node in graph.values()))
    out: list = []
    deps: dict = {}
    done: set = set()
    for start in chain((k for k in graph if k not in needed), graph):
        # Outputs first; then keys no output reaches (each needed by another: a cycle is
        # among them, which the walk finds).
        if start in deps:
            continue
        first = graph[start].dependencies
        deps[start] = first
        stack = [(start, iter(first))]
        while stack:
            key, pending = stack[-1]
            for d in pending:
                if d in deps:
                    if d not in done:
                        path = [k for k, _ in stack]
                        cycle = path[path.index(d):] + [d]
                        raise ShoalError(
                            "the graph has a cycle: " + " -> ".join(map(repr, cycle)) + "; a task "
                            "cannot depend on its own result: check how these keys refer to each other"
                        )
                    continue
                node = graph.get(d)
                if node is None:
                    continue
                ds = node.dependencies
                deps[d] = ds
                stack.append((d, iter(ds)))
                break
            else:
                stack.pop()
                out.append(key)
                done.add(key)
    return out, deps


def _dumps_node(obj) -> bytes:
    """Pickles a task payload as distributed does: plain pickle (twice as fast on array
    graphs), and ``_payload.dumps_code`` (cloudpickle, by value) when plain pickle fails
    (lambdas, local functions), when the bytes refer to ``__main__`` (notebook and script
    functions, which workers cannot import), or when modules are registered to travel by
    value. Both load with ``pickle.loads``."""
    import cloudpickle.cloudpickle as cp

    if not getattr(cp, "_PICKLE_BY_VALUE_MODULES", None):
        try:
            data = pickle.dumps(obj, protocol=5)
        except Exception:  # noqa: BLE001 - cloudpickle handles what pickle cannot
            pass
        else:
            if b"__main__" not in data:
                return data
    return _payload.dumps_code(obj)


class _NodeEncoder:
    """Pickles task specs with the fast plain pickler, functions by reference. A function
    that must travel by value (a lambda, a function of ``__main__``) is cloudpickled once
    per submission as a shared blob, and each spec using it pickles with a reference to the
    blob: a graph of 100,000 calls of a notebook function sends the function once. Falls
    back to ``_dumps_node`` (the whole spec by value) when that does not apply."""

    def __init__(self) -> None:
        import cloudpickle.cloudpickle as cp

        self.by_value = bool(getattr(cp, "_PICKLE_BY_VALUE_MODULES", None))
        # id(func) -> (blob id, func) for functions sent by value; the func is kept so
        # that its id stays its own.
        self.functions: dict[int, tuple[int, object]] = {}
        # Encoded blob entries, in the order they were first used.
        self.blobs: list[bytes] = []
        # The Dask nodes as plain tuples (see ``_dask_nodes``).
        self.nodes = _dask_nodes.encoder()

    def encode(self, spec: tuple, graph: dict, members: list) -> tuple[bytes, int]:
        """``spec`` (holding the nodes of ``members``) pickled; when the function most of
        the nodes call must travel by value, with that function left out as the task's
        shared blob."""
        if self.by_value:
            return _dumps_node(spec), 0
        # Once a function has gone by value, specs calling it skip the plain attempt.
        func = _most_common_func(graph, members) if self.functions else None
        if func is None or id(func) not in self.functions:
            try:
                data = pickle.dumps(spec, protocol=5)
            except Exception:  # noqa: BLE001 - by value, below
                pass
            else:
                if b"__main__" not in data:
                    return data, 0
            func = func or _most_common_func(graph, members)
            if func is None:
                return self._found(spec)
        try:
            data = _payload.dumps_sharing(spec, func)
        except Exception:  # noqa: BLE001 - lambdas or local objects among the arguments
            return self._found(spec)
        if b"__main__" in data:
            return self._found(spec)
        blob = self._blob(func)
        return (data, blob) if blob else (_dumps_node(spec), 0)

    def _blob(self, func) -> int:
        """The id of the shared blob holding ``func`` (added once; 0: it cannot pickle)."""
        entry = self.functions.get(id(func))
        if entry is None:
            try:
                code = _dumps_node(func)
            except Exception:  # noqa: BLE001 - the whole node may still pickle
                return 0
            entry = (_payload.blob_id(code), func)
            self.functions[id(func)] = entry
            self.blobs.append(_wire.blob(entry[0], code))
        return entry[0]

    def _found(self, spec: tuple) -> tuple[bytes, int]:
        """The spec with the one function inside it that travels by value as the shared
        blob (one that a node's arguments hold, such as ``map_blocks``'s function), else
        the whole spec by value."""
        try:
            data, func = _payload.dumps_sharing_found(spec, _travels_by_value)
        except Exception:  # noqa: BLE001 - by value, below
            func = None
        if func is None or b"__main__" in data:
            return _dumps_node(spec), 0
        blob = self._blob(func)
        return (data, blob) if blob else (_dumps_node(spec), 0)


def _most_common_func(graph: dict, members: list):
    """The function worth sending once: the one most of the nodes of ``members`` call
    (a blockwise-fused node: the nodes of its inner graph) among those that must travel
    by value (a function of ``__main__``, a lambda, a local function), else among all;
    None without calls."""
    from dask._task_spec import Task, _execute_subgraph

    counts: dict = {}
    funcs: dict = {}
    by_value: set = set()
    inner_funcs: dict = {}  # id(inner graph) -> the functions its nodes call

    def count(func) -> None:
        key = id(func)
        if key not in funcs:
            funcs[key] = func
            if _travels_by_value(func):
                by_value.add(key)
        counts[key] = counts.get(key, 0) + 1

    for node in map(graph.__getitem__, members):
        if not isinstance(node, Task):
            continue
        if node.func is _execute_subgraph and node.args and isinstance(node.args[0], dict):
            inner = node.args[0]
            called = inner_funcs.get(id(inner))
            if called is None:
                called = inner_funcs[id(inner)] = [n.func for n in inner.values() if isinstance(n, Task)]
            for func in called:
                count(func)
        else:
            count(node.func)
    pool = by_value or counts
    return funcs[max(pool, key=counts.__getitem__)] if pool else None


def _travels_by_value(func) -> bool:
    """Whether workers could not import ``func`` by reference."""
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", "")
    return module in (None, "__main__") or "<lambda>" in name or "<locals>" in name


def _encode(
    graph: dict,
    group: _grouping.Group,
    skey: str,
    index: dict,
    position: dict,
    priority: int,
    wanted: bool,
    encoder: _NodeEncoder,
    options: dict | None = None,
) -> bytes:
    """One group of nodes as an encoded task: inputs are its dependencies in the same
    submission (``index``: by ordinal), then the keys it needs from earlier submissions of
    the graph (``position``: every group's sink) or from outside it (held Futures), by
    key. Its payload is ``("dask-nodes", keys, nodes)``: the member keys and their
    ``_dask_nodes`` encodings in run order."""
    inside, external = [], []
    for d in group.inputs:
        (inside if d in index else external).append(d)
    inside.sort(key=index.__getitem__)
    existing = []
    for d in external:
        if d in position:
            existing.append(shoal_key(d))
            continue
        if not isinstance(d, str):
            needer = next(m for m in group.members if d in graph[m].dependencies)
            raise ValueError(
                f"Dask task {needer!r} depends on {d!r}, which is neither in the graph nor a "
                "shoal Future; compute it in the same graph"
            )
        existing.append(d)
    spec = ("dask-nodes", *encoder.nodes.group(graph, group.members, inside + external))
    pickled, shared = encoder.encode(spec, graph, group.members)
    payload = _wire.python_payload(pickled, shared)
    return _wire.task(skey, payload, [index[d] for d in inside], existing, priority, wanted, **(options or {}))


def get(client, dsk, keys, **kwargs):
    """``Client.get``: runs the graph, returns results shaped like ``keys``."""
    flat = _flatten(keys)
    annotations = annotations_of(dsk)
    graph, renamed = materialize(dsk, flat)
    futures, _ = submit(client, graph, [renamed.get(k, k) for k in flat], annotations)
    try:
        values = client.gather({k: futures[renamed.get(k, k)] for k in dict.fromkeys(flat)})
    finally:
        del futures
        client._flush_releases()
    return _pack(keys, values)


def _collections_expr(collections: list, optimize_graph: bool):
    from dask._expr import FinalizeCompute
    from dask.base import collections_to_expr

    return FinalizeCompute(collections_to_expr(collections, optimize_graph)).optimize()


def compute(client, collections, optimize_graph: bool = True, progress: bool = False):
    """``Client.compute``: a Future of each collection's finalized result."""
    from dask.base import is_dask_collection

    single = not isinstance(collections, (list, tuple))
    items = [collections] if single else list(collections)
    positions = [i for i, c in enumerate(items) if is_dask_collection(c)]
    out = list(items)
    if positions:
        expr = _collections_expr([items[i] for i in positions], optimize_graph)
        keys = _flatten(list(expr.__dask_keys__()))
        annotations = annotations_of(expr)
        graph, renamed = materialize(expr, keys)
        computed = [renamed.get(k, k) for k in keys]
        futures, tasks = submit(client, graph, computed, annotations)
        for i, k in zip(positions, computed):
            out[i] = futures[k]
        if progress:
            from shoal.progress import track_graph

            track_graph(client, [out[i] for i in positions], tasks)
    return out[0] if single else out


def _optimized(collection, optimize_graph: bool):
    """Dask-expr dataframes are optimized and fused as their own ``persist`` does."""
    expr = getattr(collection, "expr", None)
    if optimize_graph and expr is not None and hasattr(collection, "optimize"):
        try:
            from dask.dataframe.dask_expr._expr import Expr as FrameExpr
        except ImportError:
            return collection
        if isinstance(expr, FrameExpr):
            return collection.optimize()
    return collection


def persist(client, collections, optimize_graph: bool = True):
    """``Client.persist``: collections whose graphs are Futures of their held results
    (the Future of Dask key ``k`` has Shoal key ``shoal_key(k)``)."""
    from dask._task_spec import convert_legacy_graph
    from dask.base import is_dask_collection
    from dask.utils import ensure_dict

    single = not isinstance(collections, (list, tuple))
    items = [collections] if single else list(collections)
    graph: dict = {}
    annotations: dict = {}
    plans = []
    for c in items:
        if not is_dask_collection(c):
            plans.append(None)
            continue
        c = _optimized(c, optimize_graph)
        keys = _flatten(list(c.__dask_keys__()) if isinstance(c.__dask_keys__(), list) else [c.__dask_keys__()])
        dsk = c.__dask_graph__()
        annotations.update(annotations_of(dsk))
        if optimize_graph and hasattr(c, "__dask_optimize__"):
            dsk = c.__dask_optimize__(dsk, keys)
        graph.update(convert_legacy_graph(ensure_dict(dsk)))
        plans.append((c, keys))
    wanted = [k for plan in plans if plan for k in plan[1]]
    from dask._task_spec import cull

    graph = cull(graph, list(dict.fromkeys(k for k in wanted if k in graph)))
    futures, _ = submit(client, graph, list(dict.fromkeys(wanted)), annotations)
    out = []
    for c, plan in zip(items, plans):
        if plan is None:
            out.append(c)
            continue
        c, keys = plan
        rebuild, state = c.__dask_postpersist__()
        out.append(rebuild({k: futures[k] for k in keys}, *state))
    return out[0] if single else out
