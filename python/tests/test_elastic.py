"""Per-task options on real processes: ``resources`` route tasks to the workers offering
them (and a request nobody offers is refused whole), ``retries`` and ``priority`` reach
the scheduler from ``submit`` and from ``dask.annotate``, and ``cluster_info`` carries the
autoscaling estimate with its reason."""

from __future__ import annotations

import os
import pathlib
import time

import dask
import pytest
from procs import ProcessCluster


def worker_name(_=None) -> str:
    return os.environ["SHOAL_WORKER_NAME"]


def wait_for_file(path: str, timeout: float = 60) -> str:
    """Blocks the task until ``path`` exists (the test creates it), failing loudly."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return "released"


def record(path: str, name: str) -> str:
    with open(path, "a") as f:
        f.write(name + "\n")
    return name


def started_then_wait(started: str, release: str) -> str:
    pathlib.Path(started).touch()
    return wait_for_file(release)


@pytest.fixture
def cluster():
    with ProcessCluster() as c:
        yield c


def wait_until(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def test_resources_run_only_on_offering_worker(cluster):
    """Tasks asking for a resource (submit, map, dask.annotate) run only where it is offered."""
    cluster.add_worker("plain")
    cluster.add_worker("big", "--group", "highmem", "--resources", "highmem=1")
    with cluster.connect(2) as client:
        names = client.gather(client.map(worker_name, range(12), resources={"highmem": 1}))
        assert set(names) == {"big"}
        assert client.submit(worker_name, resources={"highmem": 1}).result(timeout=60) == "big"
        with dask.annotate(resources={"highmem": 1}):
            annotated = [dask.delayed(worker_name, pure=False)(i) for i in range(6)]
        assert set(dask.compute(*annotated, scheduler=client)) == {"big"}
        info = client.cluster_info()
        groups = {g.name: g for g in info.adaptive.groups}
        assert set(groups) == {"default", "highmem"}
        assert all(g.reason for g in groups.values()), groups
        big = next(w for w in info.workers if w.name == "big")
        assert big.group == "highmem" and dict(big.resources) == {"highmem": 1.0}


def test_unsatisfiable_resource_is_refused(cluster):
    """A task asking for a resource no worker offers is refused, naming key, ask and fix."""
    cluster.add_worker("plain")
    with cluster.connect(1) as client:
        with pytest.raises(Exception, match="gpu=1") as info:
            client.submit(worker_name, key="train-1", resources={"gpu": 1})
        text = str(info.value)
        assert "train-1" in text and "plain" in text and "ShoalWorkerGroup" in text
        # Nothing of the refused submission is kept: the cluster still works.
        assert client.submit(worker_name).result(timeout=60) == "plain"


def test_priority_annotation_orders_ready_tasks(cluster, tmp_path):
    """On one 1-core worker, annotated higher-priority Dask tasks run before the others."""
    cluster.add_worker("w0")
    log, release = str(tmp_path / "order"), str(tmp_path / "release")
    with cluster.connect(1) as client:
        blocker = client.submit(wait_for_file, release)
        low = [dask.delayed(record, pure=False)(log, f"low-{i}") for i in range(4)]
        with dask.annotate(priority=10):
            high = [dask.delayed(record, pure=False)(log, f"high-{i}") for i in range(4)]
        futures = client.compute(low + high)
        pathlib.Path(release).touch()
        assert blocker.result(timeout=60) == "released"
        client.gather(futures)
        order = pathlib.Path(log).read_text().split()
        assert sorted(order[:4]) == [f"high-{i}" for i in range(4)], order


def test_priority_keyword_orders_submissions(cluster, tmp_path):
    """submit(priority=...) reaches the scheduler: higher runs first among queued tasks."""
    cluster.add_worker("w0")
    log, release = str(tmp_path / "order"), str(tmp_path / "release")
    with cluster.connect(1) as client:
        # Forty blockers fill the worker's queue, so the later tasks wait in the scheduler.
        blockers = [client.submit(wait_for_file, release, key=f"block-{i}") for i in range(40)]
        low = client.submit(record, log, "low")
        high = client.submit(record, log, "high", priority=5)
        pathlib.Path(release).touch()
        client.gather(blockers + [low, high])
        assert pathlib.Path(log).read_text().split() == ["high", "low"]


def test_retries_zero_fails_on_first_worker_loss(cluster, tmp_path):
    """A task annotated retries=0 errs when its worker is lost the first time."""
    cluster.add_worker("w0")
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    with cluster.connect(1) as client:
        with dask.annotate(retries=0):
            task = dask.delayed(started_then_wait, pure=False)(started, release)
        future = client.compute(task)
        wait_until(lambda: os.path.exists(started), "the task starting")
        cluster.kill_worker("w0")
        cluster.add_worker("w1")
        error = future.exception(timeout=60)
        assert error is not None and "limit 0 retries" in str(error), error
