"""The operator on the full test node: installed with Helm, it runs a ShoalCluster whose
scheduler and workers really start, register at the pinned version, and run a Dask graph
submitted from outside the cluster; deleting the cluster leaves nothing behind."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

REPO = Path(__file__).resolve().parents[2]
SKEW_VERSION = os.environ.get("SHOAL_E2E_SKEW_VERSION", "")


def cluster_status(kubectl) -> dict:
    return kubectl.get("shoalcluster", "demo").get("status", {})


def worker_pods(kubectl) -> list[dict]:
    """Worker pods that are not being deleted."""
    pods = json.loads(kubectl.run("get", "pods", "-l", "app.kubernetes.io/component=worker", "-o", "json").stdout)
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def test_chart_runs_a_cluster_that_computes_dask_graphs(kubectl, operator):
    """Scheduler and workers reach Running at the pinned version and compute a Dask graph from outside."""
    kubectl.apply((REPO / "examples" / "cluster.yaml").read_text())
    status = kubectl.wait_until(
        "the cluster to be Running",
        lambda: (s := cluster_status(kubectl)).get("phase") == "Running" and s,
        timeout=180,
    )
    assert status["readyWorkers"] == 2 and "@sha256:" in status["imageDigest"], status
    running = {p["status"]["containerStatuses"][0]["imageID"] for p in worker_pods(kubectl)}
    assert running == {status["imageDigest"]}, f"workers run {running}, the scheduler {status['imageDigest']}"
    # A worker started after the scheduler runs starts from the recorded digest, not the tag.
    # The replacement starts at once, at the lowest index free while the old pod terminates.
    # The workers are not always -0 and -1: a worker whose container exits at start is
    # replaced under the next free name (seen at the end of full-tier runs: both first
    # workers exited within 50 ms of starting and were replaced at once).
    before = sorted(p["metadata"]["name"] for p in worker_pods(kubectl))
    victim, survivor = before
    kubectl.run("delete", "pod", victim, "--wait=true")
    replacement = kubectl.wait_until(
        "a replacement worker",
        lambda: next((p for p in worker_pods(kubectl) if p["metadata"]["name"] not in before), None),
    )
    assert replacement["spec"]["containers"][0]["image"] == status["imageDigest"], replacement["spec"]
    kubectl.wait_until(
        "the cluster to be Running again",
        lambda: (s := cluster_status(kubectl)).get("phase") == "Running" and s.get("readyWorkers") == 2,
        timeout=120,
    )

    service_ip = kubectl.run("get", "service", "demo-scheduler", "-o", "jsonpath={.spec.clusterIP}").stdout
    token = base64.b64decode(kubectl.get("secret", "demo-token")["data"]["token"]).decode()

    import dask
    import dask.array as da
    import numpy as np

    import shoal

    with shoal.Client(f"{service_ip}:8786", token=token) as client:
        info = client.cluster_info()
        assert info.version.runtime_version == status["version"], info.version
        names = sorted(w.name for w in info.workers)
        assert len(names) == 2 and all(n.startswith("demo-default-worker-") for n in names), names
        assert survivor in names and replacement["metadata"]["name"] in names, names
        x = da.arange(200_000, chunks=10_000)
        (total,) = dask.compute((x * 2).sum(), scheduler=client.get)
    assert total == int(np.arange(200_000).sum() * 2)

    check_a_worker_of_another_version_is_refused_and_shown(kubectl, status["version"], survivor)

    kubectl.run("delete", "shoalcluster", "demo", "--wait=true")
    kubectl.wait_until(
        "every object of the cluster to be gone",
        lambda: kubectl.run("get", "pods,services,secrets", "-l", "shoal.dev/cluster=demo", "-o", "name").stdout.strip() == "",
        timeout=120,
    )


def version_skew_event(kubectl) -> str | None:
    events = json.loads(kubectl.run("get", "events", "-o", "json").stdout)["items"]
    notes = [e.get("note") or e.get("message") or "" for e in events if e.get("reason") == "VersionSkew"]
    return notes[-1] if notes else None


def check_a_worker_of_another_version_is_refused_and_shown(kubectl, version: str, pod: str) -> None:
    """A worker (``pod``, running) edited to another version's image is refused by the
    scheduler, shown as a condition and an Event naming both versions, and replaced on the
    pinned version."""
    if not SKEW_VERSION:
        raise pytest.UsageError("SHOAL_E2E_SKEW_VERSION is not set; run the tests through `make e2e`")
    kubectl.run("set", "image", f"pod/{pod}", f"worker=shoal.dev/shoal:{SKEW_VERSION}")
    note = kubectl.wait_until("a VersionSkew Event on the cluster", lambda: version_skew_event(kubectl), timeout=60)
    assert f"version {SKEW_VERSION}" in note and f"version {version}" in note, note
    refusal = kubectl.wait_until(
        "the scheduler to refuse the worker",
        lambda: next(
            (line for line in kubectl.run("logs", "demo-scheduler").stdout.splitlines() if "worker refused" in line), None
        ),
        timeout=90,
    )
    assert f"the scheduler runs shoal {version}" in refusal and f"worker runs shoal {SKEW_VERSION}" in refusal, refusal
    kubectl.wait_until(
        "the refused worker to be replaced on the pinned version",
        lambda: (s := cluster_status(kubectl)).get("phase") == "Running" and s.get("readyWorkers") == 2,
        timeout=120,
    )
