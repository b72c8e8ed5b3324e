"""Dask collections on Shoal (``client.get`` as a Dask scheduler, ``compute``, ``persist``):
every result is compared with Dask's threaded scheduler."""

from __future__ import annotations

import operator
import pickle

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.highlevelgraph import HighLevelGraph

import shoal
from shoal import dask_hook
from shoal.v1 import client_pb2


def inc(x):
    return x + 1


def fail(x):
    raise KeyError(f"missing {x}")


@pytest.fixture(autouse=True, params=["auto", "grouped"])
def grouping(request):
    """Every test runs twice: with the default grouping (small graphs stay one task per
    node) and with nodes grouped into tasks of up to 6 (``shoal.max-group-size``)."""
    size = None if request.param == "auto" else 6
    with dask.config.set({"shoal.max-group-size": size}):
        yield request.param


@pytest.fixture(scope="module")
def frame():
    rng = np.random.RandomState(0)
    n = 2_000
    pdf = pd.DataFrame({
        "a": rng.randint(0, 7, n),
        "b": rng.randint(0, 3, n),
        "c": rng.random(n),
        "d": np.arange(n),
    })
    return dd.from_pandas(pdf, npartitions=8)


@pytest.fixture(scope="module")
def matrix():
    return da.random.RandomState(1).random((240, 240), chunks=60)


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    """Row order of shuffles and merges is not defined: compare sorted rows."""
    return df.sort_values(list(df.columns)).reset_index(drop=True)


# ---- the hook ----------------------------------------------------------------------------


def test_delayed_dag_through_every_way_of_selecting_the_scheduler(client):
    """scheduler=client.get, scheduler=client and dask.config.set(scheduler=client) all
    run on Shoal and give the threaded result."""
    parts = [dask.delayed(inc)(i) for i in range(10)]
    total = dask.delayed(sum)(parts)
    pair = dask.delayed(operator.mul)(total, parts[3])
    expected = dask.compute(total, pair, scheduler="threads")
    assert dask.compute(total, pair, scheduler=client.get) == expected
    assert pair.compute(scheduler=client) == expected[1]
    with dask.config.set(scheduler=client):
        assert dask.compute(total, pair) == expected


def test_plain_dict_graph_with_mixed_key_types_and_nested_keys(client):
    """A dict graph with str, int, float and tuple keys gives results shaped like `keys`."""
    dsk = {"x": 1, ("y", 0): (inc, "x"), 5: (inc, ("y", 0)), 2.5: (operator.add, 5, "x")}
    assert client.get(dsk, [[5], "x", [2.5, ("y", 0)]]) == [[3], 1, [4, 2]]
    assert client.get(dsk, 2.5) == 4


@pytest.mark.parametrize(
    ("graph", "key", "cycle"),
    [
        ({"a": (operator.neg, "b"), "b": (operator.neg, "a")}, "a", "'a' -> 'b' -> 'a'"),
        ({"x": (operator.neg, "a"), "a": (operator.neg, "b"), "b": (operator.neg, "a")}, "x", "'a' -> 'b' -> 'a'"),
    ],
)
def test_cyclic_graph_is_refused_naming_the_cycle(client, graph, key, cycle):
    """A cycle (unreachable from any output, or under one) is refused before submission,
    naming its keys in order, not reported as an empty graph."""
    with pytest.raises(shoal.ShoalError, match="cycle: " + cycle.replace("'", ".")):
        client.get(graph, key)


def test_high_level_graph_input(client):
    """A HighLevelGraph is accepted like a dict."""
    hlg = HighLevelGraph.from_collections("z", {"z": (inc, 41)}, dependencies=[])
    assert client.get(hlg, ["z"]) == [42]


def test_dask_keys_map_to_distinct_shoal_keys():
    """Distinct Dask keys (a str that looks like a tuple, 1 vs 1.0 vs "1") never share a
    Shoal key."""
    keys = ["x", "1", 1, 1.0, ("x", 1), "('x', 1)", "#1", "'a", ("x", 1.0), ("x", ("y", 2))]
    assert len({dask_hook.shoal_key(k) for k in keys}) == len(keys)
    with pytest.raises(TypeError, match="str, int, float or tuples"):
        dask_hook.shoal_key(object())


def test_failing_dask_task_raises_its_exception_naming_the_dependency(client, grouping):
    """A failing node raises its original exception type; a note names the failed node
    (as the dependency that failed, or as the node that raised inside a group)."""
    bad = dask.delayed(fail)(1)
    with pytest.raises(KeyError, match="missing 1") as info:
        dask.delayed(inc)(bad).compute(scheduler=client)
    notes = "\n".join(info.value.__notes__)
    assert bad.key in notes
    assert ("dependency" if grouping == "auto" else "raised by Dask task") in notes


def pairwise_tree(leaves: int):
    level = [dask.delayed(inc)(i) for i in range(leaves)]
    while len(level) > 1:
        level = [dask.delayed(operator.add)(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_grouped_nodes_run_as_fewer_tasks(client, grouping):
    """With a group size of 6, a 63-node binary tree runs as 21 three-node subtrees (16 at
    the bottom, 4 above them, the top); with the default size (a graph this small) as one
    task per node."""
    root = pairwise_tree(32)
    before = client.cluster_info().tasks.finished_total
    assert root.compute(scheduler=client) == sum(range(1, 33))
    ran = client.cluster_info().tasks.finished_total - before
    assert ran == (21 if grouping == "grouped" else 63)


def test_lambdas_and_main_functions_travel_by_value(client):
    """Nodes with lambdas or functions of ``__main__`` (notebooks, scripts) are pickled by
    value, so workers that cannot import them still run them."""

    def double(x):
        return x * 2

    double.__module__ = "__main__"
    dsk = {"x": (lambda: 20,), "y": (double, "x")}
    assert client.get(dsk, "y") == 40
    assert pickle.loads(dask_hook._dumps_node(inc)) is inc  # importable: by reference


class RecordingClient:
    """Stands in for a client at submission: records the encoded tasks and blobs."""

    def _cores(self):
        return 2

    def _status(self, key):
        return "released"

    def _submit(self, keys, tasks, wanted, blobs_before):
        self.tasks, self.blobs = tasks, [b for blobs in blobs_before.values() for b in blobs]
        return [None] * len(wanted)


def test_function_sent_by_value_travels_once_per_submission():
    """A graph of 200 calls of one lambda pickles the lambda once, as a shared blob that
    every task refers to; importable functions travel by reference, with no blob."""
    from dask._task_spec import convert_legacy_graph

    square = lambda x: x * x  # noqa: E731 - the point is a function pickle cannot import
    recorder = RecordingClient()
    graph = convert_legacy_graph({("sq", i): (square, i) for i in range(200)})
    dask_hook.submit(recorder, graph, list(graph))
    sent = client_pb2.GraphChunk.FromString(b"".join(recorder.tasks + recorder.blobs))
    assert len(sent.tasks) == 200 and len(sent.blobs) == 1
    assert {t.payload.python.shared for t in sent.tasks} == {sent.blobs[0].id}
    graph = convert_legacy_graph({("inc", i): (inc, i) for i in range(200)})
    dask_hook.submit(recorder, graph, list(graph))
    assert len(recorder.tasks) == 200 and recorder.blobs == []


def test_a_function_by_value_inside_fused_nodes_travels_once():
    """map_blocks of a lambda fused with its input (blockwise fusion): the lambda, inside
    each fused node's inner graph, is the one shared blob, not pickled with every node."""
    lookup = lambda block: block + 1  # noqa: E731 - a function workers cannot import
    x = da.ones((64, 64), chunks=8).map_blocks(lookup)
    graph = dict(x.__dask_graph__())
    from dask.array.optimization import optimize

    fused = dict(optimize(graph, list(graph)))
    recorder = RecordingClient()
    dask_hook.submit(recorder, fused, [k for k in fused if k[0] == x.name])
    sent = client_pb2.GraphChunk.FromString(b"".join(recorder.tasks + recorder.blobs))
    assert len(sent.blobs) == 1
    assert {t.payload.python.shared for t in sent.tasks} == {sent.blobs[0].id}


def call(func, x):
    return func(x)


def test_a_function_by_value_in_a_nodes_arguments_travels_once():
    """Nodes calling an importable function with a lambda among their arguments (as
    map_blocks passes its function): the lambda is the one shared blob."""
    from dask._task_spec import Task

    double = lambda x: 2 * x  # noqa: E731 - the point is a function pickle cannot import
    graph = {("d", i): Task(("d", i), call, double, i) for i in range(50)}
    recorder = RecordingClient()
    dask_hook.submit(recorder, graph, list(graph))
    sent = client_pb2.GraphChunk.FromString(b"".join(recorder.tasks + recorder.blobs))
    assert len(sent.tasks) == 50 and len(sent.blobs) == 1
    assert {t.payload.python.shared for t in sent.tasks} == {sent.blobs[0].id}


def test_dependency_outside_the_graph_names_the_node_that_needs_it():
    """A node depending on a key that is neither in the graph nor a Future is refused,
    naming that node (not the output of the group it would have run in)."""
    from dask._task_spec import Task, TaskRef

    graph = {"b": Task("b", inc, TaskRef(("x", 1))), "c": Task("c", inc, TaskRef("b"))}
    with pytest.raises(ValueError, match=r"Dask task 'b' depends on \('x', 1\), which is neither"):
        dask_hook.submit(RecordingClient(), graph, ["c"])


def test_large_graph_in_several_submissions(client, monkeypatch, grouping):
    """A graph submitted in batches (later submissions read earlier ones' outputs by key)
    gives the same result, and everything held between the submissions is released."""
    monkeypatch.setattr(dask_hook, "FIRST_BATCH_NODES", 7)
    monkeypatch.setattr(dask_hook, "MAX_BATCH_NODES", 20)
    root = pairwise_tree(64)
    assert root.compute(scheduler=client) == sum(range(1, 65))
    x = da.arange(3_000, chunks=50)
    assert (x * 2).sum().compute(scheduler=client) == 2 * sum(range(3_000))
    client._flush_releases()
    assert not client._states


def test_results_are_released_after_get(client):
    """get releases everything it submitted: the client holds no keys afterwards."""
    client.get({"a": 1, "b": (inc, "a")}, ["b"])
    client._flush_releases()
    assert not client._states


def test_futures_inside_graphs_are_dependencies(client):
    """A shoal Future given to dask.delayed is a dependency on its held key."""
    f = client.submit(inc, 10)
    assert dask.delayed(inc)(f).compute(scheduler=client) == 12
    assert dask.delayed(sum)([f, f, 1]).compute(scheduler=client) == 23


# ---- arrays ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda x: x.sum(),
        lambda x: x.mean(axis=0),
        lambda x: x.std(),
        lambda x: x.rechunk((120, 30)).sum(axis=1),
        lambda x: x @ x.T,
        lambda x: x[::7, 13:200:3],
        lambda x: (x + x.T)[50:190].max(axis=1),
    ],
    ids=["sum", "mean-axis0", "std", "rechunk", "matmul", "slicing", "transpose-slice-max"],
)
def test_array_results_equal_threaded(client, matrix, build):
    """Array reductions, rechunk, matmul and slicing equal the threaded scheduler."""
    expr = build(matrix)
    np.testing.assert_allclose(expr.compute(scheduler=client), expr.compute(scheduler="threads"))


# ---- dataframes --------------------------------------------------------------------------


def test_groupby_on_several_columns(client, frame):
    """A group-by on two columns with several aggregations equals the threaded result."""
    expr = frame.groupby(["a", "b"]).agg({"c": ["sum", "mean"], "d": "max"})
    pd.testing.assert_frame_equal(
        expr.compute(scheduler=client).sort_index(), expr.compute(scheduler="threads").sort_index()
    )


def test_merge(client, frame):
    """A merge with another frame on a column equals the threaded result."""
    names = dd.from_pandas(pd.DataFrame({"a": range(7), "name": list("abcdefg")}), npartitions=2)
    expr = frame.merge(names, on="a")
    pd.testing.assert_frame_equal(_rows(expr.compute(scheduler=client)), _rows(expr.compute(scheduler="threads")))


def test_shuffle_uses_tasks_and_equals_threaded(client, frame):
    """While a Shoal client is open Dask shuffles with `tasks`; the shuffle is correct."""
    assert dask.config.get("dataframe.shuffle.method") == "tasks"
    expr = frame.shuffle("b")
    pd.testing.assert_frame_equal(_rows(expr.compute(scheduler=client)), _rows(expr.compute(scheduler="threads")))


def test_set_index(client, frame):
    """set_index on an unsorted column equals the threaded result."""
    expr = frame.set_index("c")
    pd.testing.assert_frame_equal(expr.compute(scheduler=client), expr.compute(scheduler="threads"))


def test_dataframes_are_fused_before_submission(frame):
    """dask.compute does not fuse dataframes; the hook does (fewer tasks, same keys' count)."""
    expr = ((frame.d + 1) * 2 + frame.c).sum()
    seen = {}

    def spy(dsk, keys, **kwargs):
        seen["unfused"] = len(dsk.__dask_graph__())
        seen["fused"] = len(dask_hook.materialize(dsk, keys)[0])
        return dask.threaded.get(dsk, keys, **kwargs)

    expr.compute(scheduler=spy)
    assert seen["fused"] < seen["unfused"] / 2


# ---- compute and persist -----------------------------------------------------------------


def test_compute_returns_futures_of_final_results(client, matrix, frame):
    """client.compute gives a Future per collection (a list for a list)."""
    total = client.compute(matrix.sum())
    assert isinstance(total, shoal.Future)
    assert total.result() == pytest.approx(float(matrix.sum().compute(scheduler="threads")))
    counts, mean = client.compute([frame.a.value_counts(), matrix.mean()])
    pd.testing.assert_series_equal(
        counts.result().sort_index(), frame.a.value_counts().compute(scheduler="threads").sort_index()
    )
    assert mean.result() == pytest.approx(float(matrix.mean().compute(scheduler="threads")))


def test_persist_keeps_results_held_and_reusable(client, matrix, frame):
    """Persisted collections are backed by held Futures and compute like the originals."""
    held = client.persist(matrix)
    futures = [v for v in dict(held.__dask_graph__()).values() if isinstance(v, shoal.Future)]
    assert len(futures) == 16 and all(f.status == "finished" for f in shoal.wait(futures).done)
    np.testing.assert_allclose(held.sum(axis=0).compute(scheduler=client), matrix.sum(axis=0).compute(scheduler="threads"))
    frame_held = client.persist(frame)
    expr = frame_held.groupby("a").d.sum()
    pd.testing.assert_series_equal(expr.compute(scheduler=client), frame.groupby("a").d.sum().compute(scheduler="threads"))


def test_dask_persist_calls_client_persist(client):
    """dask.persist(..., scheduler=client) goes through client.persist."""
    d = dask.delayed(inc)(1)
    (held,) = dask.persist(d, scheduler=client)
    graph = dict(held.__dask_graph__())
    assert any(isinstance(v, shoal.Future) for v in graph.values())
    assert held.compute(scheduler=client) == 2
