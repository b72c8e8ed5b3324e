"""Helpers shared by the test-bed tests that run Shoal clusters: manifests, the cluster's
status, its worker pods and Events, and a client connected to its scheduler."""

from __future__ import annotations

import base64
import json

import grpc

import shoal

WORKER_POD = """
    cores: 1
    resources:
      requests: {cpu: 50m, memory: 200Mi}
      limits: {cpu: "1", memory: 1Gi}"""


def cluster_manifest(name: str, workers: str, extra: str = "") -> str:
    return f"""
apiVersion: shoal.dev/v1alpha1
kind: ShoalCluster
metadata:
  name: {name}
spec:
  scheduler:
    resources:
      requests: {{cpu: 50m, memory: 128Mi}}
  workers:{WORKER_POD}
{workers}
{extra}
"""


def autoscaled(low: int, high: int) -> str:
    return f"""    replicas: {low}
    minReplicas: {low}
    maxReplicas: {high}
    autoscaling:
      enabled: true
      targetDurationSeconds: 5
      scaleDownStabilizationSeconds: 20"""


def status(kubectl, cluster: str) -> dict:
    return kubectl.get("shoalcluster", cluster).get("status", {})


def group(kubectl, cluster: str, name: str = "default") -> dict:
    return next((g for g in status(kubectl, cluster).get("workerGroups", []) if g["name"] == name), {})


def workers(kubectl, cluster: str, group_name: str | None = None) -> dict[str, dict]:
    """Worker pods of the cluster (of one group) by name, being deleted or not."""
    selector = f"shoal.dev/cluster={cluster},app.kubernetes.io/component=worker"
    if group_name:
        selector += f",shoal.dev/group={group_name}"
    pods = json.loads(kubectl.run("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in pods}


def live(pods: dict[str, dict]) -> set[str]:
    return {name for name, p in pods.items() if not p["metadata"].get("deletionTimestamp")}


def ready(pods: dict[str, dict]) -> set[str]:
    return {
        name for name, p in pods.items()
        if not p["metadata"].get("deletionTimestamp")
        and any(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))
    }


def events(kubectl, cluster: str) -> list[tuple[str, str]]:
    """(reason, note) of the Events about the cluster, oldest first."""
    items = json.loads(kubectl.run("get", "events", "-o", "json").stdout)["items"]
    about = [e for e in items if (e.get("regarding") or e.get("involvedObject") or {}).get("name") == cluster]
    about.sort(key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or e["metadata"]["creationTimestamp"])
    return [(e.get("reason", ""), e.get("note") or e.get("message") or "") for e in about]


def token(kubectl, cluster: str) -> str:
    return base64.b64decode(kubectl.get("secret", f"{cluster}-token")["data"]["token"]).decode()


def address(kubectl, cluster: str, port: int = 8786) -> str:
    ip = kubectl.run("get", "service", f"{cluster}-scheduler", "-o", "jsonpath={.spec.clusterIP}").stdout
    return f"{ip}:{port}"


def connect(kubectl, cluster: str) -> shoal.Client:
    kubectl.wait_until(
        f"the scheduler of {cluster} to be ready",
        lambda: status(kubectl, cluster).get("conditions") and any(
            c["type"] == "SchedulerReady" and c["status"] == "True" for c in status(kubectl, cluster)["conditions"]
        ),
        timeout=180,
    )
    target, secret = address(kubectl, cluster), token(kubectl, cluster)
    refused: list[str] = []

    def handshake():
        # A ready scheduler can still be out of reach through its Service for a moment:
        # kube-proxy has not programmed the new clusterIP yet, or still sends a reused one
        # to the backend it had before (a CI run got HTTP 404 from some other server there).
        try:
            return shoal.Client(target, token=secret)
        except shoal.SchedulerError as e:
            if e.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            refused.append(str(e))
            return None

    try:
        return kubectl.wait_until(f"a handshake with the scheduler of {cluster} at {target}", handshake, timeout=60)
    except AssertionError as e:
        raise AssertionError(f"{e}; the last refusal: {refused[-1] if refused else 'none'}") from None


def pod_ip(kubectl, name: str) -> str:
    return kubectl.run("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout


def operator_pod(kubectl) -> str:
    return kubectl.run(
        "get", "pods", "-l", "app.kubernetes.io/name=shoal-operator", "-o", "jsonpath={.items[0].metadata.name}"
    ).stdout
