"""The full tier: pods really run on the test node, get IPs, resolve Services and are OOM-killed."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

pytestmark = pytest.mark.node

RUNTIME_IMAGE = os.environ.get("SHOAL_E2E_RUNTIME_IMAGE", "")


def pod(name: str, command: list[str], memory: str = "128Mi") -> str:
    """A one-shot pod on the runtime image, running as the image's non-root user."""
    if not RUNTIME_IMAGE:
        raise pytest.UsageError("SHOAL_E2E_RUNTIME_IMAGE is not set; run the tests through `make e2e`")
    args = ", ".join(f'"{arg}"' for arg in command)
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  securityContext: {{runAsNonRoot: true}}
  containers:
  - name: main
    image: {RUNTIME_IMAGE}
    imagePullPolicy: Never
    command: [{args}]
    resources:
      requests: {{cpu: 50m, memory: {memory}}}
      limits: {{cpu: "1", memory: {memory}}}
    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
"""


def finished(kubectl, name: str):
    """The pod's container state once it has terminated, else None."""
    status = kubectl.get("pod", name)["status"]
    for container in status.get("containerStatuses", []):
        terminated = container.get("state", {}).get("terminated")
        if terminated:
            return terminated
    return None


def test_runtime_image_prints_its_version(kubectl):
    """A pod from the locally built runtime image runs `shoal version` as a non-root user."""
    kubectl.apply(pod("version", ["shoal", "version"]))
    state = kubectl.wait_until("the version pod to finish", lambda: finished(kubectl, "version"))
    logs = kubectl.run("logs", "version").stdout
    assert state["exitCode"] == 0, logs
    assert re.search(r"\d+\.\d+\.\d+", logs), logs


def test_memory_limit_is_enforced_and_reported_oomkilled(kubectl):
    """A container that allocates past its memory limit is killed by the kernel and reported OOMKilled."""
    hog = ["python3", "-c", "b = bytearray(512 * 1024 * 1024); print(len(b))"]
    kubectl.apply(pod("hog", hog, memory="64Mi"))
    state = kubectl.wait_until("the memory hog to be killed", lambda: finished(kubectl, "hog"))
    assert state["reason"] == "OOMKilled", state
    assert state["exitCode"] == 137, state


def test_pods_get_ips_and_resolve_services(kubectl):
    """A pod gets an IP on the test bridge and resolves the `kubernetes` Service by DNS to its cluster IP."""
    script = (
        "import socket; "
        "print(socket.gethostbyname('kubernetes.default.svc.cluster.local')); "
        "s = socket.create_connection(('kubernetes.default', 443), timeout=10); print('connected')"
    )
    kubectl.apply(pod("dns", ["python3", "-c", script]))
    state = kubectl.wait_until("the DNS pod to finish", lambda: finished(kubectl, "dns"))
    logs = kubectl.run("logs", "dns").stdout
    assert state["exitCode"] == 0, logs
    service_ip = kubectl.run("-n", "default", "get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert logs.split() == [service_ip, "connected"]
    assert kubectl.get("pod", "dns")["status"]["podIP"].startswith("10.213.0.")


def test_helm_installs_and_uninstalls_a_chart(kubectl, tmp_path):
    """The test bed's helm installs a chart into the cluster and uninstalls it cleanly."""
    helm = os.environ.get("SHOAL_E2E_HELM")
    if not helm:
        raise pytest.UsageError("SHOAL_E2E_HELM is not set; run the tests through `make e2e`")
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata: {value: {{ .Values.value | quote }}}\n"
    )
    (chart / "values.yaml").write_text("value: from-helm\n")
    env = {**os.environ, "KUBECONFIG": kubectl.kubeconfig, "HELM_CACHE_HOME": str(tmp_path / "cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "config"), "HELM_DATA_HOME": str(tmp_path / "data")}
    helm_cmd = [helm, "--namespace", kubectl.namespace]
    subprocess.run([*helm_cmd, "install", "probe", str(chart), "--wait"], env=env, check=True, capture_output=True)
    assert kubectl.get("configmap", "probe")["data"] == {"value": "from-helm"}
    subprocess.run([*helm_cmd, "uninstall", "probe", "--wait"], env=env, check=True, capture_output=True)
    assert not kubectl.exists("configmap", "probe")
