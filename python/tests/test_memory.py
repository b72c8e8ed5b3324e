"""The worker's memory policy on real processes (no Kubernetes): a task allocating past
the worker's limit is stopped with the figures while the rest of the graph finishes;
results beyond the worker's memory are spilled and the graph completes; a worker over
its pause threshold gets no new tasks until its memory falls.

Without a cgroup limit the worker measures itself and its executors (resident memory),
so these tests set ``--memory-limit`` well under the machine's memory."""

from __future__ import annotations

import os
import time

import pytest
from procs import ProcessCluster

import shoal

MIB = 2**20


def hog_memory():
    blocks = []
    for _ in range(60):
        blocks.append(b"x" * (100 * MIB))
        time.sleep(0.02)
    return len(blocks)


def slow_inc(x):
    time.sleep(0.02)
    return x + 1


def total(*values):
    return sum(values)


def block(i, size):
    return bytes([i % 256]) * size


def length(data):
    return len(data)


def hold_until(gate, size):
    data = bytearray(size)
    data[::4096] = b"x" * len(data[::4096])
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.02)
    return len(data)


def where():
    return os.environ["SHOAL_WORKER_NAME"]


def state_of(client, name):
    for w in client.cluster_info().workers:
        if w.name == name:
            return w.state
    return None


def wait_for_state(client, name, state, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state_of(client, name) == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"worker {name} never became {state!r} (now {state_of(client, name)!r})")


@pytest.fixture
def cluster():
    with ProcessCluster() as c:
        yield c


def test_task_past_the_limit_fails_with_figures_and_the_rest_finishes(cluster):
    """The task driving memory past the terminate threshold fails as MemoryLimitError
    naming the task and the figures; the worker survives and runs the rest of the graph."""
    worker = cluster.add_worker("w0", "--memory-limit", "1Gi")
    with cluster.connect(1) as client:
        hog = client.submit(hog_memory, key="hog-1")
        incs = client.map(slow_inc, range(20))
        summed = client.submit(total, *incs)
        with pytest.raises(shoal.MemoryLimitError) as info:
            hog.result(timeout=120)
        error = info.value
        assert error.kind == "MemoryLimit" and error.key == "hog-1"
        assert "hog-1" in str(error) and "w0" in str(error)
        assert error.limit == 1024 * MIB
        assert error.threshold == pytest.approx(0.95)
        assert error.used > 0.95 * error.limit
        assert error.task_used > 500 * MIB, "the stopped executor was the one holding the memory"
        assert summed.result(timeout=120) == sum(range(1, 21))
        assert worker.poll() is None, "the worker process survived"
        assert client.submit(slow_inc, 41).result(timeout=60) == 42


def test_results_beyond_memory_complete_by_spilling(cluster):
    """Results adding up to more than the worker's memory are kept by spilling to disk;
    every one is still readable and whole."""
    cluster.add_worker("w0", "--memory-limit", "1Gi", "--memory-target", "0.3")
    size = 64 * MIB
    with cluster.connect(1) as client:
        blocks = [client.submit(block, i, size, key=f"block-{i}") for i in range(16)]
        lengths = client.gather([client.submit(length, b) for b in blocks], timeout=300)
        assert lengths == [size] * 16
        # The figures come with the worker's next heartbeat after the last result.
        deadline = time.monotonic() + 30
        while True:
            info = [w for w in client.cluster_info().workers if w.name == "w0"][0]
            if info.running == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert info.stored_bytes >= 16 * size
        assert info.spilled_bytes >= 16 * size - 0.3 * 1024 * MIB
        first, last = client.gather([blocks[0], blocks[-1]], timeout=120)
        assert first == block(0, size) and last == block(15, size)


def test_paused_worker_gets_no_new_tasks_until_it_resumes(cluster, tmp_path):
    """A worker over its pause threshold is shown paused and its new work goes to the
    other worker; when its memory falls it resumes and takes tasks again."""
    thresholds = ["--memory-target", "0.4", "--memory-spill", "0.5", "--memory-pause", "0.5"]
    cluster.add_worker("w0", "--memory-limit", "1Gi", *thresholds, "--resources", "big=1")
    cluster.add_worker("w1")
    gate = str(tmp_path / "gate")
    with cluster.connect(2) as client:
        held = client.submit(hold_until, gate, 600 * MIB, resources={"big": 1})
        wait_for_state(client, "w0", "paused")
        places = client.gather([client.submit(where) for _ in range(30)], timeout=120)
        assert set(places) == {"w1"}, places
        open(gate, "w").close()
        assert held.result(timeout=60) == 600 * MIB
        del held
        wait_for_state(client, "w0", "active")
        assert client.submit(where, resources={"big": 1}).result(timeout=60) == "w0"
