"""No silent deaths on the full test node: a worker pod the kernel OOM-kills is an event of
record (a Warning Event naming the pod, its limit and its tasks; a count in status; a
condition; a metric), the user's computation fails naming the task, OOMKilled and the limit;
with oomPolicy the replacement gets more memory and the work completes; and a scheduler
pod OOM-killed is said so in status and Events while its client gets an error at once.

The tasks run in real worker pods; their functions travel by value."""

from __future__ import annotations

import sys
import urllib.request

import cloudpickle
import pytest
from bed import connect, events, group, operator_pod, pod_ip, status, workers

import shoal

pytestmark = pytest.mark.node

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MIB = 2**20


def manifest(name: str, worker_memory: str, extra_workers: str = "", scheduler_memory: str = "256Mi") -> str:
    # Every threshold 0: the worker neither spills nor pauses nor stops a task, so the
    # kernel is the one that acts.
    return f"""
apiVersion: shoal.dev/v1alpha1
kind: ShoalCluster
metadata:
  name: {name}
spec:
  scheduler:
    resources:
      requests: {{cpu: 50m, memory: 64Mi}}
      limits: {{memory: {scheduler_memory}}}
  workers:
    replicas: 1
    cores: 1
    resources:
      requests: {{cpu: 50m, memory: 64Mi}}
      limits: {{cpu: "1", memory: {worker_memory}}}
    memoryThresholds: {{target: 0, spill: 0, pause: 0, terminate: 0}}
{extra_workers}
"""


def allocate(megabytes: int) -> int:
    """Touches `megabytes` MiB at once: faster than any sampling, so the kernel acts."""
    block = b"x" * (megabytes * MIB)
    return len(block) // MIB


def block(i: int) -> bytes:
    """A 16 MiB result: many of them, kept in the worker's memory, fill the pod."""
    return bytes([i % 256]) * (16 * MIB)


def head(data: bytes) -> tuple[int, int]:
    return data[0], len(data)


def add(a: int, b: int) -> int:
    return a + b


def condition(kubectl, cluster: str, kind: str) -> dict:
    return next((c for c in status(kubectl, cluster).get("conditions", []) if c["type"] == kind), {})


def operator_metric(kubectl, name: str, **labels: str) -> float:
    """The operator's metric `name` with these labels (0 when absent)."""
    url = f"http://{pod_ip(kubectl, operator_pod(kubectl))}:8080/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_executor_killed_by_the_kernel_names_the_task_and_the_limit(kubectl, operator):
    """One allocation past the 256Mi limit, faster than the worker's check: the kernel kills
    a process of the pod. On cgroup v1 nodes that is the executor (the worker survives and
    the task fails as MemoryLimitError); where the container is killed whole (cgroup v2's
    group kill) it is WorkerOOMError. Either way the error names the task, OOMKilled and
    the limit, and the cluster goes on."""
    kubectl.apply(manifest("hoggy", "256Mi"))
    with connect(kubectl, "hoggy") as client:
        assert client.submit(add, 1, 2).result(timeout=180) == 3
        hog = client.submit(allocate, 600, key="hog-600", retries=0)
        with pytest.raises((shoal.MemoryLimitError, shoal.WorkerOOMError)) as info:
            hog.result(timeout=300)
        error = info.value
        assert error.key == "hog-600"
        assert "OOMKilled" in str(error) and "256 MiB" in str(error), str(error)
        assert error.limit == 256 * MIB
        assert client.submit(add, 2, 3).result(timeout=180) == 5


def test_oom_killed_worker_pod_is_told_to_the_user_and_recorded(kubectl, operator):
    """Results kept in memory (the worker's thresholds off) outgrow the 256Mi pod: the
    kernel kills the worker, twice (one retry): the computation raises WorkerOOMError naming
    a task, OOMKilled and the limit; the cluster's Events (kubectl describe), status,
    condition and metric record each kill with the pod, its limit and its tasks."""
    kubectl.apply(manifest("oomy", "256Mi"))
    with connect(kubectl, "oomy") as client:
        assert client.submit(add, 1, 2).result(timeout=180) == 3
        blocks = [client.submit(block, i, key=f"block-{i}", retries=1) for i in range(40)]
        with pytest.raises(shoal.WorkerOOMError) as info:
            client.gather(blocks, timeout=600)
        error = info.value
        assert error.key.startswith("block-")
        assert "OOMKilled" in str(error) and "256 MiB" in str(error), str(error)
        assert error.limit == 256 * MIB and len(error.pods) >= 1
        assert all(pod.startswith("oomy-") for pod in error.pods), error.pods

    kills = kubectl.wait_until(
        "two OOM kills counted in status",
        lambda: (group(kubectl, "oomy").get("oomKills") or {}).get("total", 0) >= 2
        and group(kubectl, "oomy")["oomKills"],
        timeout=90,
    )
    last = kills["recent"][-1]
    assert last["memoryLimit"] == "256Mi" and last["pod"].startswith("oomy-")
    assert any(t.startswith("block-") for t in kills["recent"][0]["tasks"]), kills
    notes = [note for reason, note in events(kubectl, "oomy") if reason == "WorkerOOMKilled"]
    assert len(notes) >= 2 and "block-" in notes[0] and "256Mi" in notes[0], notes
    described = kubectl.run("describe", "shoalcluster", "oomy").stdout
    assert "WorkerOOMKilled" in described and "256Mi" in described
    cond = condition(kubectl, "oomy", "WorkersOOMKilled")
    assert cond.get("status") == "True", cond
    metric = operator_metric(
        kubectl, "shoal_worker_oom_kills_total", namespace=kubectl.namespace, cluster="oomy", group="default"
    )
    assert metric >= 2, metric


def test_oom_policy_gives_the_replacement_more_memory_and_the_work_completes(kubectl, operator):
    """With oomPolicy {increaseFactor: 4, maxMemory: 1Gi} the worker killed at 256Mi is
    replaced by one with 1Gi, recorded in status and an Event, and the graph completes."""
    policy = "    oomPolicy: {increaseFactor: 4, maxMemory: 1Gi}"
    kubectl.apply(manifest("roomy", "256Mi", policy))
    with connect(kubectl, "roomy") as client:
        blocks = [client.submit(block, i, key=f"block-{i}") for i in range(24)]
        # Checked where they are (24 x 16 MiB through the scheduler's 256Mi would not fit).
        heads = client.gather([client.submit(head, b) for b in blocks], timeout=600)
        assert heads == [(i, 16 * MIB) for i in range(24)]
    assert (group(kubectl, "roomy").get("oomKills") or {}).get("total", 0) >= 1
    raised = group(kubectl, "roomy").get("raisedMemoryLimit") or {}
    assert raised.get("limit") == "1Gi", raised
    assert any(reason == "MemoryLimitRaised" for reason, _ in events(kubectl, "roomy"))
    limits = {
        name: p["spec"]["containers"][0]["resources"]["limits"]["memory"]
        for name, p in workers(kubectl, "roomy").items()
        if not p["metadata"].get("deletionTimestamp")
    }
    assert "1Gi" in limits.values(), limits


def test_oom_killed_scheduler_is_said_so_and_its_client_is_not_left_hanging(kubectl, operator):
    """A scheduler with a 96Mi limit holding ever more task payloads (no worker runs them)
    is OOM-killed: the waiting client gets ConnectionLostError within seconds, and the
    cluster's status and Events name the scheduler's OOM kill."""
    kubectl.apply(manifest("schedoom", "256Mi", scheduler_memory="96Mi").replace("replicas: 1", "replicas: 0"))
    client = connect(kubectl, "schedoom")
    try:
        pending = []
        with pytest.raises((shoal.ConnectionLostError, shoal.SchedulerError)) as info:
            for _ in range(40):
                pending.append(client.submit(len, b"x" * (20 * MIB)))
            pending[0].result(timeout=60)
        assert "scheduler" in str(info.value) and client.address in str(info.value), str(info.value)
    finally:
        client.close()
    kubectl.wait_until(
        "the scheduler's OOM kill in status",
        lambda: ((status(kubectl, "schedoom").get("scheduler") or {}).get("oomKills") or {}).get("total", 0) >= 1,
        timeout=90,
    )
    notes = [note for reason, note in events(kubectl, "schedoom") if reason == "SchedulerOOMKilled"]
    assert notes and "96Mi" in notes[0], notes
    assert condition(kubectl, "schedoom", "SchedulerOOMKilled").get("status") == "True"
