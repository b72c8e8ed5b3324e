"""Elastic clusters on the full test node: the operator (installed with Helm) grows a cluster
when work queues up and shrinks it when the work drains, losing nothing; scales to zero and
back; culls idle clusters; never deletes a worker while the scheduler is unreachable; and
brings up a resource-specific worker group only for the tasks that ask for it.

The tasks run in real worker pods; their functions travel by value (this module is
registered with cloudpickle), so the pods need nothing of the tests installed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cloudpickle
import pytest
from bed import (
    WORKER_POD,
    address,
    autoscaled,
    cluster_manifest,
    connect,
    events,
    group,
    live,
    operator_pod,
    pod_ip,
    ready,
    status,
    token,
    workers,
)

import shoal

pytestmark = pytest.mark.node

cloudpickle.register_pickle_by_value(sys.modules[__name__])

def slow_square(i: int, seconds: float = 0.6):
    """A task that takes a while, returning its value and the pod (host) that ran it."""
    time.sleep(seconds)
    return i * i, socket.gethostname()


def host(_: int = 0) -> str:
    return socket.gethostname()


def scale_events(kubectl, cluster: str) -> list[str]:
    return [f"{reason}: {note}" for reason, note in events(kubectl, cluster) if reason.startswith("Scal")]


def test_burst_scales_up_to_max_and_back_losing_nothing(kubectl, operator):
    """300 sleeping tasks on a min 1 / max 4 cluster: it grows to 4 workers, shrinks back to
    1 after the graph, every task ran exactly once, and the results held by the retired
    workers are gathered after their pods are gone; Events show each step with its reason.
    The scheduler's Dask-style HTTP API answers the estimate with the token, 401 without."""
    kubectl.apply(cluster_manifest("elastic", autoscaled(1, 4)))
    kubectl.wait_until("one ready worker", lambda: len(ready(workers(kubectl, "elastic"))) == 1, timeout=180)
    with connect(kubectl, "elastic") as client:
        futures = client.map(slow_square, range(300), key_prefix="square")
        kubectl.wait_until("4 ready workers", lambda: len(ready(workers(kubectl, "elastic"))) == 4, timeout=120)
        check_adaptive_target_http(kubectl, "elastic")
        shoal.wait(futures, timeout=300)
        kubectl.wait_until(
            "the cluster to shrink back to 1 worker pod",
            lambda: len(workers(kubectl, "elastic")) == 1,
            timeout=180,
        )
        results = client.gather(futures)
        assert [value for value, _ in results] == [i * i for i in range(300)]
        ran_on = {pod for _, pod in results}
        gone = ran_on - set(workers(kubectl, "elastic"))
        assert len(ran_on) >= 2 and gone, f"results came from {ran_on}; pods left {set(workers(kubectl, 'elastic'))}"
        info = client.cluster_info()
        assert info.tasks.finished_total == 300, f"{info.tasks.finished_total} executions for 300 tasks"
    steps = scale_events(kubectl, "elastic")
    ups = [s for s in steps if s.startswith("ScaledUp")]
    downs = [s for s in steps if s.startswith("ScaledDown")]
    burst = [s for s in ups if "scaling up from 0 " not in s]  # not the start at minReplicas
    assert burst and downs, steps
    assert all("task" in s for s in burst), burst  # the scheduler's reason travels with each step
    assert any("to 4 workers" in s for s in burst), burst


def check_adaptive_target_http(kubectl, cluster: str) -> None:
    """GET /api/v1/adaptive_target: the estimate with the cluster token, 401 without."""
    url = f"http://{address(kubectl, cluster, 8787)}/api/v1/adaptive_target"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token(kubectl, cluster)}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.loads(answer.read())
    assert isinstance(body.get("workers"), int) and body["workers"] >= 1, body
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401


def test_min_zero_idles_with_no_workers_and_wakes_for_a_graph(kubectl, operator):
    """minReplicas 0: no worker pods while idle; a graph submitted to the empty cluster is
    queued, brings a worker up and completes; then the cluster returns to zero workers."""
    kubectl.apply(cluster_manifest("sleepy", autoscaled(0, 2)))
    kubectl.wait_until(
        "the scheduler to run with no worker pods",
        lambda: status(kubectl, "sleepy").get("phase") == "Running" and not workers(kubectl, "sleepy"),
        timeout=180,
    )
    with connect(kubectl, "sleepy") as client:
        assert not client.cluster_info().workers
        squares = client.map(slow_square, range(10), [0.1] * 10, key_prefix="wake")
        assert [v for v, _ in client.gather(squares, timeout=240)] == [i * i for i in range(10)]
        del squares
    kubectl.wait_until("the cluster to return to zero workers", lambda: not workers(kubectl, "sleepy"), timeout=180)


def test_idle_clusters_are_culled_and_busy_or_attended_ones_are_not(kubectl, operator):
    """idleTimeout: a cluster with no client and no work for that long is deleted, with a
    warning first and an Event saying why; one with a connected client, and one running work,
    outlive the timeout. (The idle clock starts with the scheduler process, some 20 s before
    its pod is Ready, so the timeout leaves the test time to connect first.)"""
    fixed = """    replicas: 1"""
    for name in ("attended", "busy"):
        kubectl.apply(cluster_manifest(name, fixed, "  idleTimeout: 60"))
    with connect(kubectl, "attended") as attended, connect(kubectl, "busy") as busy:
        kubectl.wait_until("a ready worker in busy", lambda: ready(workers(kubectl, "busy")), timeout=180)
        work = busy.submit(slow_square, 1, 150.0, key="long-task")
        kubectl.apply(cluster_manifest("idle", fixed, "  idleTimeout: 60"))
        kubectl.wait_until("the idle cluster to be deleted", lambda: not kubectl.exists("shoalcluster", "idle"), timeout=180)
        reasons = [reason for reason, _ in events(kubectl, "idle")]
        assert "IdleTimeoutSoon" in reasons and "IdleTimeout" in reasons, events(kubectl, "idle")
        culled = next(note for reason, note in events(kubectl, "idle") if reason == "IdleTimeout")
        assert "60" in culled and "idle" in culled, culled
        # The other two started first, so they have passed their timeout too, and live on.
        assert kubectl.exists("shoalcluster", "attended") and kubectl.exists("shoalcluster", "busy")
        assert len(attended.cluster_info().workers) == 1
        value, _ = work.result(timeout=200)
        assert value == 1
        assert kubectl.exists("shoalcluster", "busy") and kubectl.exists("shoalcluster", "attended")


def test_scale_down_waits_while_the_scheduler_is_unreachable(kubectl, operator):
    """A burst grows the cluster to 3 workers; as soon as the work drains, the operator's
    path to the scheduler is cut (a firewall rule on the node), before the scale-down is
    due: no worker pod is deleted while it is cut, well past the window; once it is back
    the scale-down completes, and every result is still there."""
    kubectl.apply(cluster_manifest("cut", autoscaled(1, 3)))
    with connect(kubectl, "cut") as client:
        futures = client.map(slow_square, range(60), [1.0] * 60, key_prefix="kept")
        kubectl.wait_until("3 ready workers", lambda: len(ready(workers(kubectl, "cut"))) == 3, timeout=180)
        shoal.wait(futures, timeout=180)
        # The work has drained: a scale-down is due once the 20 s window has passed.
        rule = ["FORWARD", "-s", pod_ip(kubectl, operator_pod(kubectl)), "-d", pod_ip(kubectl, "cut-scheduler"), "-j", "DROP"]
        subprocess.run(["iptables", "-I", *rule], check=True)
        try:
            before = {name: p["metadata"]["uid"] for name, p in workers(kubectl, "cut").items()}
            kubectl.wait_until(
                "the autoscaler to see the scheduler unreachable",
                lambda: group(kubectl, "cut").get("autoscaler", {}).get("state") == "SchedulerUnreachable",
                timeout=90,
            )
            deadline = time.monotonic() + 40  # past the 20 s window: a scale-down would be due
            while time.monotonic() < deadline:
                now = workers(kubectl, "cut")
                assert {n: p["metadata"]["uid"] for n, p in now.items()} == before, "a worker changed while cut"
                assert live(now) == set(before), f"a worker is being deleted while the scheduler is unreachable: {now}"
                time.sleep(1)
        finally:
            subprocess.run(["iptables", "-D", *rule], check=True)
        kubectl.wait_until("the scale-down to complete", lambda: len(workers(kubectl, "cut")) == 1, timeout=180)
        assert [v for v, _ in client.gather(futures)] == [i * i for i in range(60)]
        assert client.cluster_info().tasks.finished_total == 60


def test_highmem_group_runs_only_annotated_tasks_and_returns_to_zero(kubectl, operator):
    """A default group (min 1) and a highmem group (min 0, max 2): unannotated work never
    starts a highmem worker; tasks annotated resources={"highmem": 1} bring one up, run only
    there, and the group returns to 0 afterwards."""
    import dask

    highmem = f"""
---
apiVersion: shoal.dev/v1alpha1
kind: ShoalWorkerGroup
metadata:
  name: highmem
spec:
  cluster: mixed
  workers:{WORKER_POD}
    replicas: 0
    minReplicas: 0
    maxReplicas: 2
    taskResources: {{highmem: 1}}
    autoscaling:
      enabled: true
      targetDurationSeconds: 5
      scaleDownStabilizationSeconds: 20
"""
    kubectl.apply(cluster_manifest("mixed", autoscaled(1, 1), highmem))
    kubectl.wait_until("one default worker", lambda: len(ready(workers(kubectl, "mixed", "default"))) == 1, timeout=180)
    with connect(kubectl, "mixed") as client:
        plain = client.map(slow_square, range(40), [0.2] * 40, key_prefix="plain")
        deadline = time.monotonic() + 30
        while not all(f.done() for f in plain) or time.monotonic() < deadline:
            assert not workers(kubectl, "mixed", "highmem"), "unannotated tasks started a highmem worker"
            time.sleep(1)
        ran_plain = {h for _, h in client.gather(plain)}
        assert all(h.startswith("mixed-default-worker-") for h in ran_plain), ran_plain
        with dask.annotate(resources={"highmem": 1}):
            hosts = [dask.delayed(host)(i) for i in range(8)]
        ran_on = set(dask.compute(*hosts, scheduler=client.get))
        assert len(ran_on) >= 1 and all(h.startswith("mixed-highmem-worker-") for h in ran_on), ran_on
        direct = client.submit(host, 0, resources={"highmem": 1}, key="direct-highmem")
        assert direct.result(timeout=180).startswith("mixed-highmem-worker-")
        del direct
    kubectl.wait_until("the highmem group to return to 0", lambda: not workers(kubectl, "mixed", "highmem"), timeout=180)
    assert any("highmem" in s for s in scale_events(kubectl, "mixed")), scale_events(kubectl, "mixed")
