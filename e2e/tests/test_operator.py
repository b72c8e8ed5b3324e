"""The operator on the full test node: installed with Helm, it runs a ShoalCluster whose
scheduler and workers really start, register at the pinned version, and run a Dask graph
submitted from outside the cluster; deleting the cluster leaves nothing behind."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def operator(kubectl, tmp_path):
    """The chart installed (watching the test's namespace), uninstalled afterwards."""
    helm = os.environ.get("SHOAL_E2E_HELM")
    if not helm:
        raise pytest.UsageError("SHOAL_E2E_HELM is not set; run the tests through `make e2e`")
    env = {**os.environ, "KUBECONFIG": kubectl.kubeconfig, "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "g"), "HELM_DATA_HOME": str(tmp_path / "d")}
    release = ["--namespace", kubectl.namespace]
    install = subprocess.run(
        [helm, "install", "shoal", str(REPO / "charts" / "shoal-operator"), *release,
         "--set", f"watchNamespace={kubectl.namespace}", "--set", "image.pullPolicy=Never",
         "--wait", "--timeout", "120s"],
        env=env, capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr + kubectl.run("get", "pods", "-o", "wide").stdout
    yield
    subprocess.run([helm, "uninstall", "shoal", *release, "--wait"], env=env, capture_output=True)


def cluster_status(kubectl) -> dict:
    return kubectl.get("shoalcluster", "demo").get("status", {})


def test_chart_runs_a_cluster_that_computes_dask_graphs(kubectl, operator):
    """Scheduler and workers reach Running at the pinned version and compute a Dask graph from outside."""
    kubectl.apply((REPO / "examples" / "cluster.yaml").read_text())
    status = kubectl.wait_until(
        "the cluster to be Running",
        lambda: (s := cluster_status(kubectl)).get("phase") == "Running" and s,
        timeout=180,
    )
    assert status["readyWorkers"] == 2 and status["imageDigest"], status
    workers = json.loads(kubectl.run("get", "pods", "-l", "app.kubernetes.io/component=worker", "-o", "json").stdout)
    images = {p["spec"]["containers"][0]["image"] for p in workers["items"]}
    assert all("@sha256:" in image for image in images), f"workers not pinned to the digest: {images}"

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
        assert names == ["demo-default-worker-0", "demo-default-worker-1"], names
        x = da.arange(200_000, chunks=10_000)
        (total,) = dask.compute((x * 2).sum(), scheduler=client.get)
    assert total == int(np.arange(200_000).sum() * 2)

    kubectl.run("delete", "shoalcluster", "demo", "--wait=true")
    kubectl.wait_until(
        "every object of the cluster to be gone",
        lambda: kubectl.run("get", "pods,services,secrets", "-l", "shoal.dev/cluster=demo", "-o", "name").stdout.strip() == "",
        timeout=120,
    )
