"""``shoal.KubeCluster`` from outside the cluster (a kubeconfig, like a laptop) on the full
test node: it creates a ShoalCluster through the API server, reaches the scheduler and the
dashboard through its own supervised port-forward, computes a Dask graph, scales and
adapts, survives its tunnel and its listeners being cut, and leaves nothing behind on
close or when its process is SIGKILLed (the client lease). A start that cannot succeed
raises with the pod's Events, and a cluster on another version is refused."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.node

SKEW_VERSION = os.environ.get("SHOAL_E2E_SKEW_VERSION", "")
WORKER_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
#: Seconds the lease outlives a killed client, at most: its duration plus the operator's
#: reaction (it requeues at the expiry instant) and the pods' deletion.
LEASE_SECONDS = 15
GONE_WITHIN = LEASE_SECONDS + 45


def poll(what: str, predicate, timeout: float, every: float = 0.5):
    """Polls ``predicate`` until it returns something truthy; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 - a failing probe is retried until the deadline
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def live_pods(kubectl, cluster: str, component: str | None = None) -> list[str]:
    selector = f"shoal.dev/cluster={cluster}" + (f",app.kubernetes.io/component={component}" if component else "")
    pods = json.loads(kubectl.run("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


def gone(kubectl, cluster: str) -> bool:
    leftovers = kubectl.run(
        "get", "pods,services,secrets,leases", "-l", f"shoal.dev/cluster={cluster}", "-o", "name"
    ).stdout.strip()
    return not kubectl.exists("shoalcluster", cluster) and not leftovers


def compute(client) -> int:
    import dask
    import dask.array as da

    x = da.arange(300_000, chunks=20_000)
    (total,) = dask.compute((x * 3).sum(), scheduler=client.get)
    return int(total)


EXPECTED = 3 * sum(range(300_000))


def dashboard_status(link: str) -> tuple[int, str]:
    """Opens the link as a browser would (cookie jar, redirects): status and page."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(link, timeout=30) as response:
        return response.status, response.read().decode(errors="replace")


def api_server(kubectl) -> tuple[str, int]:
    server = kubectl.run("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    m = re.match(r"https?://\[?([^\]/]+?)\]?:(\d+)", server)
    assert m, server
    return m.group(1), int(m.group(2))


def cut_api_connections(host: str, port: int) -> int:
    """Aborts every TCP connection of this process to the API server (the port-forward's
    tunnels and the API client's pooled connections), as a network drop would; returns
    how many. Only this process's sockets: ``ss -K`` by each socket's own local port."""
    pid = os.getpid()
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dst", f"{host}:{port}"], capture_output=True, text=True, check=True
    ).stdout
    ports = [
        line.split()[2].rsplit(":", 1)[1]
        for line in out.splitlines()
        if f"pid={pid}," in line
    ]
    for local in ports:
        subprocess.run(
            ["ss", "-K", "-tn", "state", "established", "dst", f"{host}:{port}", "sport", "=", f":{local}"],
            capture_output=True, check=True,
        )
    return len(ports)


def test_kubecluster_from_a_kubeconfig(kubectl, operator):
    """Create, compute, dashboard, scale, adapt, cut tunnels and listeners, logs, reprs, close: all from outside."""
    import shoal

    with shoal.KubeCluster(
        namespace=kubectl.namespace, n_workers=2, resources=WORKER_RESOURCES, timeout=240, progress=False
    ) as cluster:
        name = cluster.name
        assert cluster.status == "Running" and cluster.version == shoal.__version__
        assert cluster.address.startswith("127.0.0.1:"), cluster.address
        obj = kubectl.get("shoalcluster", name)
        assert obj["spec"]["version"] == shoal.__version__
        assert obj["status"]["version"] == shoal.__version__
        # The client lease exists, names this process and is owned by the cluster.
        lease = kubectl.get("lease", f"{name}-client")
        assert lease["spec"]["holderIdentity"].endswith(f"/{os.getpid()}"), lease["spec"]
        assert lease["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]

        client = cluster.get_client()
        assert compute(client) == EXPECTED
        assert client.dashboard_link == cluster.dashboard_link

        link = cluster.dashboard_link
        assert re.match(r"^http://127\.0\.0\.1:\d+/status\?token=.+", link), link
        code, page = dashboard_status(link)
        assert code == 200 and "<html" in page.lower(), page[:300]

        cluster.scale(3)
        cluster.wait_for_workers(3, timeout=180)
        poll("3 workers at the scheduler", lambda: len(client.cluster_info().workers) == 3, 60)
        assert compute(client) == EXPECTED
        cluster.scale(2)
        poll("the pool back at 2 worker pods", lambda: len(live_pods(kubectl, name, "worker")) == 2, 120)

        cluster.adapt(1, 3)
        workers = kubectl.get("shoalcluster", name)["spec"]["workers"]
        assert workers["autoscaling"]["enabled"] is True
        assert (workers["minReplicas"], workers["maxReplicas"]) == (1, 3)
        poll(
            "the autoscaler to take over",
            lambda: (kubectl.get("shoalcluster", name).get("status", {}).get("workerGroups") or [{}])[0]
            .get("autoscaler", {}).get("state") not in (None, "Disabled"),
            60,
        )
        assert "adapt 1-3" in repr(cluster)

        # The forward's listeners die: they come back on the same ports; the open session goes on.
        address = cluster.address
        restarts = sum(cluster._forward.restarts.values())
        cluster._forward.close_listeners()
        poll("the listeners to be started again", lambda: sum(cluster._forward.restarts.values()) >= restarts + 2, 20)
        assert cluster.address == address
        assert compute(client) == EXPECTED
        with cluster.get_client() as second:
            assert compute(second) == EXPECTED
        code, _ = dashboard_status(cluster.dashboard_link)
        assert code == 200

        # The tunnels drop (every connection of this process to the API server aborted): a
        # new connection opens a new tunnel through the same local port.
        host, port = api_server(kubectl)
        assert cut_api_connections(host, port) >= 1
        client.close()  # its session ended with its connection: the scheduler dropped its keys
        with cluster.get_client() as third:
            assert compute(third) == EXPECTED
        code, _ = dashboard_status(cluster.dashboard_link)
        assert code == 200
        assert cluster._keeper.alive

        logs = cluster.get_logs()
        scheduler = f"{name}-scheduler"
        assert list(logs)[0] == scheduler and logs[scheduler].strip(), logs.keys()
        assert any(pod.startswith(f"{name}-default-worker-") for pod in logs), logs.keys()
        html = cluster._repr_html_()
        assert "Running" in html and "Dashboard" in html and "Cores" in html and "Memory" in html

    assert cluster.status == "closed"
    poll(f"every object of {name} to be gone", lambda: gone(kubectl, name), 120)


def test_a_killed_client_leaves_no_cluster(kubectl, operator):
    """A process that created a KubeCluster is SIGKILLed: its lease expires and the cluster and pods are gone in bound."""
    code = (
        "import sys, shoal\n"
        f"c = shoal.KubeCluster(namespace={kubectl.namespace!r}, n_workers=1, lease_seconds={LEASE_SECONDS},\n"
        f"                      resources={WORKER_RESOURCES!r}, timeout=240, progress=False)\n"
        "print(c.name, flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        name = child.stdout.readline().strip()
        assert name, child.stderr.read() if child.poll() is not None else "no cluster name printed"
        assert kubectl.get("shoalcluster", name)["status"]["phase"] == "Running"
        assert live_pods(kubectl, name), "the cluster has no pods"
        renewed = kubectl.get("lease", f"{name}-client")["spec"]["renewTime"]
        poll("a renewal of the lease", lambda: kubectl.get("lease", f"{name}-client")["spec"]["renewTime"] != renewed, 30)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    killed = time.monotonic()
    poll(f"the cluster {name} and its pods to be gone", lambda: gone(kubectl, name), GONE_WITHIN, every=1.0)
    took = time.monotonic() - killed
    events = json.loads(kubectl.run("get", "events", "-o", "json").stdout)["items"]
    reasons = {e.get("reason") for e in events if (e.get("involvedObject") or {}).get("name") == name}
    assert "LeaseExpired" in reasons, reasons
    print(f"cluster {name} gone {took:.1f} s after its client was SIGKILLed (lease {LEASE_SECONDS} s)")


def test_a_start_that_cannot_succeed_raises_with_events(kubectl, operator):
    """An image the node does not have (pull policy Never) fails fast with the pod's Events; the cluster is deleted."""
    import shoal
    from shoal.kube import ClusterStartError

    started = time.monotonic()
    with pytest.raises(ClusterStartError) as info:
        shoal.KubeCluster(
            name="nopull", namespace=kubectl.namespace, n_workers=1, image="shoal.dev/not-there",
            image_pull_policy="Never", resources=WORKER_RESOURCES, timeout=180, progress=False,
        )
    error = info.value
    assert time.monotonic() - started < 120
    text = str(error)
    assert "ErrImageNeverPull" in text and "nopull-scheduler" in text, text
    assert "Events of pod nopull-scheduler" in text and "shoal.dev/not-there" in text, text
    assert error.cluster == "nopull" and error.namespace == kubectl.namespace
    poll("the failed cluster to be deleted", lambda: not kubectl.exists("shoalcluster", "nopull"), 60)


def test_a_cluster_of_another_version_is_refused(kubectl, operator):
    """from_name refuses a cluster that reports another Shoal version, naming both and the fix."""
    if not SKEW_VERSION:
        raise pytest.UsageError("SHOAL_E2E_SKEW_VERSION is not set; run the tests through `make e2e`")
    import shoal
    from shoal.kube import ClusterNotFoundError, ClusterVersionError

    with pytest.raises(ClusterNotFoundError, match="no ShoalCluster named 'absent'"):
        shoal.KubeCluster.from_name("absent", namespace=kubectl.namespace, progress=False)
    kubectl.apply(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: old}\n"
        f"spec: {{version: '{SKEW_VERSION}', workers: {{replicas: 0}}}}\n"
    )
    poll("the old cluster to report its version", lambda: kubectl.get("shoalcluster", "old").get("status", {}).get("version"), 60)
    with pytest.raises(ClusterVersionError) as info:
        shoal.KubeCluster.from_name("old", namespace=kubectl.namespace, timeout=60, progress=False)
    text = str(info.value)
    assert f"runs shoal {SKEW_VERSION}" in text and f"client is shoal {shoal.__version__}" in text, text
    assert f"pip install shoal=={SKEW_VERSION}" in text and f"version={shoal.__version__!r}" in text, text
    assert kubectl.exists("shoalcluster", "old"), "from_name must not delete a cluster it did not create"


#: Exactly what KubeCluster needs in its namespace (the chart's notebook-user Role must
#: cover it). pods/portforward: kr8s opens WebSockets (GET: "get" before Kubernetes 1.35,
#: "create" too since); only used from outside the cluster.
NOTEBOOK_ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: kubecluster-user}
rules:
  - {apiGroups: [shoal.dev], resources: [shoalclusters], verbs: [get, create, patch, delete]}
  - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [create, patch]}
  - {apiGroups: [""], resources: [secrets], verbs: [get]}
  - {apiGroups: [""], resources: [pods], verbs: [get, list, patch]}
  - {apiGroups: [""], resources: [pods/log], verbs: [get]}
  - {apiGroups: [""], resources: [pods/portforward], verbs: [get, create]}
  - {apiGroups: [""], resources: [events], verbs: [list]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: notebook}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: notebook-kubecluster-user}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: kubecluster-user}
subjects: [{kind: ServiceAccount, name: notebook}]
"""

IN_POD_SCRIPT = f"""
import dask, dask.array as da, shoal
c = shoal.KubeCluster(n_workers=1, resources={WORKER_RESOURCES!r}, lease_seconds=600, timeout=240, progress=False)
assert c.address == f"{{c.name}}-scheduler.{{c.namespace}}.svc:8786", c.address
assert c._forward is None
with c.get_client() as client:
    (total,) = dask.compute(da.arange(100_000, chunks=10_000).sum(), scheduler=client.get)
print("TOTAL", int(total))
print("LINK", c.dashboard_link)
print("REPR", repr(c))
print("NAME", c.name, flush=True)
import threading
threading.Event().wait()
"""


def test_kubecluster_in_a_pod_with_only_the_notebook_role(kubectl, operator):
    """In a pod (service account with the minimal Role): Service address, Hub link, client label, owned by the pod."""
    image = os.environ.get("SHOAL_E2E_RUNTIME_IMAGE", "shoal.dev/shoal:0.1.0")
    kubectl.apply(NOTEBOOK_ROLE)
    notebook = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "notebook", "labels": {"app": "notebook"}},
        "spec": {
            "serviceAccountName": "notebook", "restartPolicy": "Never",
            "containers": [{
                "name": "notebook", "image": image, "imagePullPolicy": "Never",
                "command": ["python3", "-c", IN_POD_SCRIPT],
                "env": [{"name": "JUPYTERHUB_SERVICE_PREFIX", "value": "/user/alice/"},
                        {"name": "JUPYTERHUB_USER", "value": "alice"}],
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
            }],
        },
    }
    kubectl.apply(json.dumps(notebook))

    def logged() -> str | None:
        out = kubectl.run("logs", "notebook", check=False).stdout
        phase = kubectl.get("pod", "notebook").get("status", {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            raise AssertionError(f"the notebook pod ended ({phase}):\n{out}")
        return out if "NAME " in out else None

    out = poll("the notebook's cluster to compute", logged, 300, every=1.0)
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line[:5] in ("TOTAL", "LINK ", "REPR ", "NAME "))
    name = lines["NAME"].strip()
    assert name.startswith("shoal-alice-"), name
    assert int(lines["TOTAL"]) == sum(range(100_000))
    assert lines["LINK"].startswith(f"/user/alice/proxy/{name}-scheduler.{kubectl.namespace}.svc:8787/status?token="), lines
    assert "Running" in lines["REPR"], lines
    pod = kubectl.get("pod", "notebook")
    assert pod["metadata"]["labels"].get(f"client.shoal.dev/{name}") == "true", pod["metadata"]["labels"]
    owners = kubectl.get("shoalcluster", name)["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Pod", "notebook", pod["metadata"]["uid"])], owners
    # Deleting the notebook pod deletes its cluster (owner reference), long before the lease would.
    deleted = time.monotonic()
    kubectl.run("delete", "pod", "notebook", "--wait=false")
    poll(f"the cluster {name} of the deleted pod to be gone", lambda: gone(kubectl, name), 120, every=1.0)
    print(f"cluster {name} gone {time.monotonic() - deleted:.1f} s after its notebook pod was deleted")


def kubeconfig_for(kubectl, account: str, path) -> str:
    """A kubeconfig that authenticates as the service account ``account`` (a bound token)."""
    token = kubectl.run("create", "token", account, "--duration", "1h").stdout.strip()
    config = json.loads(kubectl.run("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"].update(user=account, namespace=kubectl.namespace)
    path.write_text(json.dumps(config))
    return str(path)


OUTSIDE_SCRIPT = f"""
import urllib.request, http.cookiejar, dask, dask.array as da, shoal
from shoal.kube import KubePermissionError
try:
    c = shoal.KubeCluster(n_workers=1, resources={WORKER_RESOURCES!r}, timeout=240, progress=False)
except KubePermissionError as e:
    print("REFUSED", e.verb, e.resource, e.group)
    print(e)
    raise SystemExit(0)
with c:
    with c.get_client() as client:
        (total,) = dask.compute(da.arange(100_000, chunks=10_000).sum(), scheduler=client.get)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    print("TOTAL", int(total), "DASHBOARD", opener.open(c.dashboard_link, timeout=30).status, flush=True)
"""


def test_outside_with_only_the_notebook_role(kubectl, operator, tmp_path):
    """With only the minimal Role a kubeconfig runs a cluster through the port-forward; lacking a verb names it."""
    kubectl.apply(NOTEBOOK_ROLE)
    env = {**os.environ, "KUBECONFIG": kubeconfig_for(kubectl, "notebook", tmp_path / "notebook.kubeconfig")}
    run = subprocess.run([sys.executable, "-c", OUTSIDE_SCRIPT], env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0 and "TOTAL 4999950000 DASHBOARD 200" in run.stdout, run.stdout + run.stderr

    kubectl.apply(
        NOTEBOOK_ROLE.replace("kubecluster-user", "no-lease").replace("notebook", "nolease")
        .replace("  - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [create, patch]}\n", "")
    )
    env["KUBECONFIG"] = kubeconfig_for(kubectl, "nolease", tmp_path / "nolease.kubeconfig")
    run = subprocess.run([sys.executable, "-c", OUTSIDE_SCRIPT], env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0 and "REFUSED patch leases coordination.k8s.io" in run.stdout, run.stdout + run.stderr
    assert "grant patch on leases.coordination.k8s.io" in run.stdout, run.stdout
    poll("the refused cluster to be deleted", lambda: not kubectl.run("get", "shoalclusters", "-o", "name").stdout.strip(), 60)

    # `create` alone on pods/portforward is not enough for WebSocket port-forwards (GET).
    kubectl.apply(
        NOTEBOOK_ROLE.replace("kubecluster-user", "no-forward").replace("notebook", "noforward")
        .replace("[pods/portforward], verbs: [get, create]", "[pods/portforward], verbs: [create]")
    )
    env["KUBECONFIG"] = kubeconfig_for(kubectl, "noforward", tmp_path / "noforward.kubeconfig")
    run = subprocess.run([sys.executable, "-c", OUTSIDE_SCRIPT], env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0 and "REFUSED get pods/portforward" in run.stdout, run.stdout + run.stderr
    assert "grant get and create on pods/portforward" in run.stdout, run.stdout
    poll("the refused cluster to be deleted", lambda: not kubectl.run("get", "shoalclusters", "-o", "name").stdout.strip(), 60)


def test_from_name_connects_and_can_take_over_the_lease(kubectl, operator):
    """A cluster left running is found by name; lease=True makes this process its lease holder; close() keeps it."""
    import shoal

    first = shoal.KubeCluster(
        namespace=kubectl.namespace, n_workers=0, lease_seconds=None, shutdown_on_close=False, progress=False
    )
    name = first.name
    first.close()
    assert kubectl.exists("shoalcluster", name) and "clientLease" not in kubectl.get("shoalcluster", name)["spec"]
    again = shoal.KubeCluster.from_name(name, namespace=kubectl.namespace, lease=True, progress=False)
    try:
        assert kubectl.get("shoalcluster", name)["spec"]["clientLease"] == {"durationSeconds": 60}
        lease = kubectl.get("lease", f"{name}-client")["spec"]
        assert lease["holderIdentity"] == again.holder and lease["leaseDurationSeconds"] == 60, lease
        with again.get_client() as client:
            assert client.cluster_info().version.runtime_version == shoal.__version__
    finally:
        again.close()
    assert again.status == "closed" and kubectl.exists("shoalcluster", name), "from_name's close() must keep the cluster"
    kubectl.run("delete", "shoalcluster", name, "--wait=true")
