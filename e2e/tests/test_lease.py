"""The client lease on the full test node, operator side: a ShoalCluster with
``spec.clientLease`` lives while a separate client process renews its Lease ``<c>-client``
(through the API server with kr8s, as ``shoal.KubeCluster`` does, but without it: this
tests the operator's half alone), and once that process is SIGKILLed the operator deletes
the cluster promptly after the duration, and with it every pod. On the way, the cluster's
NetworkPolicy admits the chart's real operator pod. The measured times are printed (``-s``
shows them); on this bed: cluster deleted about 20 s after the kill, every pod gone about
0.7 s later (lease 20 s)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.node

CLUSTER = "leased"
#: spec.clientLease.durationSeconds of the cluster.
DURATION = 20
#: After the kill, the ShoalCluster object goes within the duration plus this: the
#: operator looks again a second after the expiry instant, and the last renewal was up to
#: duration/3 before the kill, so this is slack for the API server and the test's polls.
CLUSTER_GONE_SLACK = 5
#: After the kill, every pod (the scheduler and the workers, terminated gracefully: they
#: exit on SIGTERM) and the Lease are gone within the duration plus this.
ALL_GONE_SLACK = 30

WORKER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}

#: The client: creates the Lease (owned by the cluster, like shoal.KubeCluster's) and
#: renews it every duration/3 until it is killed. Its pause is its renewal timer.
CHILD = r"""
import datetime as dt, os, sys, time
import kr8s
from kr8s.objects import new_class

kubeconfig, namespace, cluster, uid, duration = sys.argv[1:6]
duration = int(duration)
api = kr8s.api(kubeconfig=kubeconfig, namespace=namespace)
Lease = new_class("Lease", version="coordination.k8s.io/v1", asyncio=False, namespaced=True, plural="leases")

def now():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

holder = f"{os.uname().nodename}/{os.getpid()}"
owner = {"apiVersion": "shoal.dev/v1alpha1", "kind": "ShoalCluster", "name": cluster, "uid": uid,
         "controller": False, "blockOwnerDeletion": False}
lease = Lease({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": f"{cluster}-client", "namespace": namespace, "ownerReferences": [owner]},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                        "acquireTime": now(), "renewTime": now()}}, api=api)
lease.create()
print("holder", holder, flush=True)
while True:
    time.sleep(duration / 3)
    lease.patch({"spec": {"renewTime": now()}})
    print("renewed", now(), flush=True)
"""


def manifest() -> str:
    spec = {
        "workers": {"replicas": 2, "resources": WORKER_RESOURCES},
        "clientLease": {"durationSeconds": DURATION},
    }
    return json.dumps({"apiVersion": "shoal.dev/v1alpha1", "kind": "ShoalCluster", "metadata": {"name": CLUSTER}, "spec": spec})


def lease_spec(kubectl) -> dict:
    out = kubectl.run("get", "lease", f"{CLUSTER}-client", "--ignore-not-found", "-o", "json").stdout
    return json.loads(out)["spec"] if out.strip() else {}


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def pods(kubectl) -> list[str]:
    """Every pod of the cluster, terminating ones included."""
    out = kubectl.run("get", "pods", "-l", f"shoal.dev/cluster={CLUSTER}", "-o", "name").stdout
    return out.split()


def check_network_policy_admits_the_operator(kubectl) -> None:
    """The chart's operator runs with NetworkPolicies on: the cluster has one, and the
    operator peer it admits selects the operator's real pod in its namespace."""
    policy = kubectl.get("networkpolicy", f"{CLUSTER}-scheduler")
    peer = policy["spec"]["ingress"][0]["from"][2]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": kubectl.namespace}, peer
    selector = ",".join(f"{k}={v}" for k, v in peer["podSelector"]["matchLabels"].items())
    admitted = kubectl.run("get", "pods", "-l", selector, "-o", "name").stdout.split()
    assert len(admitted) == 1 and "shoal-operator" in admitted[0], (selector, admitted)


def test_killed_client_lease_deletes_the_cluster_and_its_pods(kubectl, operator, tmp_path):
    """Renewed, the cluster outlives its lease duration; its client SIGKILLed, the cluster
    is deleted within the duration + 5 s and every pod is gone within the duration + 30 s,
    with a LeaseExpired Warning naming the holder."""
    kubectl.apply(manifest())
    uid = kubectl.get("shoalcluster", CLUSTER)["metadata"]["uid"]
    created = time.monotonic()
    log = (tmp_path / "client.log").open("w")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kubectl.kubeconfig, kubectl.namespace, CLUSTER, uid, str(DURATION)],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
    )
    client_log = lambda: (tmp_path / "client.log").read_text()  # noqa: E731 - read on failure
    try:
        kubectl.wait_until(
            "the cluster to be Running",
            lambda: kubectl.get("shoalcluster", CLUSTER).get("status", {}).get("phase") == "Running",
            timeout=180,
        )
        first = parse_time(kubectl.wait_until("the client's Lease", lambda: lease_spec(kubectl).get("renewTime")))
        holder = lease_spec(kubectl)["holderIdentity"]
        # Renewed, the cluster lives on past its duration from creation and from the
        # first renewal, and its status shows the holder.
        kubectl.wait_until(
            "two renewals and more than the duration since the cluster was created",
            lambda: (
                time.monotonic() - created > DURATION + 2
                and parse_time(lease_spec(kubectl)["renewTime"]) - first > dt.timedelta(seconds=DURATION * 2 / 3)
            ),
            timeout=DURATION * 3,
        )
        assert child.poll() is None, f"the client exited: {client_log()}"
        check_network_policy_admits_the_operator(kubectl)
        status = kubectl.get("shoalcluster", CLUSTER)["status"]
        assert status["clientLease"]["holder"] == holder, status
        assert status["phase"] == "Running", status
    except BaseException:
        child.kill()
        print(client_log())
        raise

    last_renewal = parse_time(lease_spec(kubectl)["renewTime"])
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    killed = time.monotonic()
    killed_wall = dt.datetime.now(dt.timezone.utc)
    print(f"client SIGKILLed {(killed_wall - last_renewal).total_seconds():.1f} s after its last renewal")

    kubectl.wait_until(
        "the ShoalCluster to be deleted",
        lambda: not kubectl.exists("shoalcluster", CLUSTER),
        timeout=DURATION + CLUSTER_GONE_SLACK + 10,
    )
    cluster_gone = time.monotonic() - killed
    kubectl.wait_until(
        "every pod of the cluster and its Lease to be gone",
        lambda: not pods(kubectl) and not kubectl.exists("lease", f"{CLUSTER}-client"),
        timeout=DURATION + ALL_GONE_SLACK + 30,
    )
    all_gone = time.monotonic() - killed
    since_renewal = (dt.datetime.now(dt.timezone.utc) - last_renewal).total_seconds()
    print(
        f"lease {DURATION} s: ShoalCluster deleted {cluster_gone:.1f} s after the SIGKILL, every pod "
        f"and the Lease gone {all_gone:.1f} s after it ({since_renewal:.1f} s after the last renewal)"
    )
    assert cluster_gone <= DURATION + CLUSTER_GONE_SLACK, f"cluster deleted {cluster_gone:.1f} s after the kill"
    assert all_gone <= DURATION + ALL_GONE_SLACK, f"pods gone {all_gone:.1f} s after the kill"

    events = json.loads(kubectl.run("get", "events", "-o", "json").stdout)["items"]
    notes = [e.get("message", "") for e in events if e.get("reason") == "LeaseExpired" and e.get("type") == "Warning"]
    assert notes, [e.get("reason") for e in events]
    assert f"held by {holder}" in notes[0] and f"durationSeconds is {DURATION} s" in notes[0], notes
    assert "set spec.clientLease to null" in notes[0], notes
