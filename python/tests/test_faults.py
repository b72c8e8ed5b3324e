"""Faults with Python tasks on real processes: exceptions reach the caller whole, killed
workers lose no work, and tasks that crash their executor fail alone with the cause."""

from __future__ import annotations

import operator
import os
import time

import dask
import pytest
from procs import ProcessCluster

import shoal


def boom(x):
    raise ValueError(f"bad input {x}")


def slow_inc(x):
    time.sleep(0.02)
    return x + 1


def total(*values):
    return sum(values)


def segfault():
    import ctypes

    return ctypes.string_at(0)


def hard_exit():
    os._exit(3)


@pytest.fixture
def cluster():
    with ProcessCluster() as c:
        yield c


def test_exception_keeps_type_message_key_and_worker(cluster):
    """A task's exception is re-raised with its type and message, naming key and worker."""
    cluster.add_worker("w0")
    with cluster.connect(1) as client:
        future = client.submit(boom, 7)
        with pytest.raises(ValueError, match="bad input 7") as info:
            future.result(timeout=60)
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert future.key in notes
        assert "w0" in notes


def test_killed_worker_loses_no_work(cluster):
    """A worker killed mid-graph: the graph completes with the right result."""
    cluster.add_worker("w0")
    cluster.add_worker("w1")
    with cluster.connect(2) as client:
        parts = client.map(slow_inc, range(200))
        result = client.submit(total, *parts)
        deadline = time.monotonic() + 60
        while sum(f.done() for f in parts) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        cluster.kill_worker("w0")
        assert result.result(timeout=120) == sum(range(1, 201))
        assert "worker lost" in cluster.log("scheduler")


def test_killed_worker_mid_grouped_dask_graph_loses_no_work(cluster):
    """A worker killed while grouped Dask nodes run: the graph completes with the right result."""
    cluster.add_worker("w0")
    cluster.add_worker("w1")
    level = [dask.delayed(slow_inc)(i) for i in range(256)]
    while len(level) > 1:
        level = [dask.delayed(operator.add)(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    with cluster.connect(2) as client, dask.config.set({"shoal.max-group-size": 8}):
        (future,) = client.compute([level[0]])
        deadline = time.monotonic() + 60
        while client.cluster_info().tasks.finished_total < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        cluster.kill_worker("w0")
        assert future.result(timeout=120) == sum(range(1, 257))
        assert "worker lost" in cluster.log("scheduler")


@pytest.mark.parametrize(
    ("crash", "cause"),
    [(segfault, "SIGSEGV"), (hard_exit, "exited with code 3")],
)
def test_executor_crash_fails_only_that_task(cluster, crash, cause):
    """A task that kills its executor fails with the task and the cause; the worker goes on."""
    cluster.add_worker("w0")
    with cluster.connect(1) as client:
        bad = client.submit(crash)
        with pytest.raises(shoal.TaskError) as info:
            bad.result(timeout=60)
        error = info.value
        assert error.kind == "ExecutorCrashed"
        assert bad.key in str(error) and cause in str(error)
        assert error.worker == "w0"
        assert client.submit(slow_inc, 1).result(timeout=60) == 2


