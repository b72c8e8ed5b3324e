"""The notebook workflow on the full test node, with a real JupyterHub: the Hub spawns a
user's server pod from the notebook image (KubeSpawner); code run in that server's kernel
creates a cluster with shoal.KubeCluster, computes, scales and prints its dashboard link,
which opens through the Hub's proxy (page, assets, and the live page in Chromium, a
screenshot under test-output/notebook/); a kernel SIGKILLed after creating its cluster leaves
nothing behind once the client lease runs out. On a failure the Hub's log, the notebook
pod's log and the namespace's Events are printed."""

from __future__ import annotations

import os
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from conftest import install_chart
from hub import Hub, Kernel

pytestmark = pytest.mark.node

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python" / "tests"))
from browser import OUTPUT, chromium  # noqa: E402 (python/tests/browser.py: Debian's Chromium)

USER = "alice"
LEASE_SECONDS = 20
SERVICE_ACCOUNT = "shoal-notebook"
SMALL = ('resources={"requests": {"cpu": "50m", "memory": "200Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, '
         'scheduler_resources={"requests": {"cpu": "50m", "memory": "128Mi"}}, cores=1')


def notebook_image() -> str:
    runtime = os.environ.get("SHOAL_E2E_RUNTIME_IMAGE", "")
    if ":" not in runtime:
        raise pytest.UsageError("SHOAL_E2E_RUNTIME_IMAGE is not set; run the tests through `make e2e`")
    return "shoal.dev/shoal-notebook:" + runtime.rsplit(":", 1)[1]


@pytest.fixture()
def hub(kubectl, tmp_path, request):
    """The chart (with the notebook Role bound to the notebook service account) and a Hub
    spawning into the test's namespace; the Hub is stopped by PID afterwards, its log (and
    the notebook pod's, and the Events) printed first if the test failed."""
    chp = os.environ.get("SHOAL_CHP")
    if not chp or not os.access(chp, os.X_OK):
        raise pytest.UsageError("SHOAL_CHP must name configurable-http-proxy; run `make e2e` (browser-deps)")
    node_ip = os.environ.get("SHOAL_E2E_NODE_IP")
    if not node_ip:
        raise pytest.UsageError("SHOAL_E2E_NODE_IP is not set; run the tests through `make e2e`")
    kubectl.run("create", "serviceaccount", SERVICE_ACCOUNT)
    uninstall = install_chart(kubectl, tmp_path, "notebookUsers.create=true",
                              f"notebookUsers.serviceAccounts={{{SERVICE_ACCOUNT}}}")
    workdir = tmp_path / "hub"
    workdir.mkdir()
    running = Hub(workdir, namespace=kubectl.namespace, kubeconfig=kubectl.kubeconfig, image=notebook_image(),
                  service_account=SERVICE_ACCOUNT, node_ip=node_ip, chp=chp)
    failed_before = request.session.testsfailed
    try:
        yield running
    finally:
        if request.session.testsfailed > failed_before:
            print(diagnostics(running, kubectl))
        running.stop()
        uninstall()


def diagnostics(running: Hub, kubectl) -> str:
    """The Hub's log tail, the notebook pod's log and the namespace's Events."""
    pod = kubectl.run("logs", f"jupyter-{USER}", "--tail=80", check=False)
    events = kubectl.run("get", "events", "--sort-by=.lastTimestamp", check=False)
    return (f"===== Hub log (last 200 lines) =====\n{running.log_tail(200)}\n"
            f"===== pod jupyter-{USER} =====\n{pod.stdout}{pod.stderr}\n"
            f"===== Events in {kubectl.namespace} =====\n{events.stdout}{events.stderr}")


class Assets(HTMLParser):
    """The relative URLs of a page's scripts and stylesheets."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        url = attributes.get("src") if tag == "script" else attributes.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


def cluster_gone(kubectl, name: str) -> bool:
    pods = kubectl.run("get", "pods", "-l", f"shoal.dev/cluster={name}", "-o", "name").stdout.strip()
    return not kubectl.exists("shoalcluster", name) and not pods


def test_notebook_creates_computes_scales_and_opens_its_dashboard_through_the_hub(hub, kubectl):
    """A notebook in a Hub-spawned pod runs a Dask reduction on its own KubeCluster, scales
    it, and its dashboard_link loads (page and assets) through the Hub's proxy."""
    started = time.monotonic()
    token = hub.spawn(USER)
    print(f"{USER}'s server spawned and ready in {time.monotonic() - started:.1f}s")
    kernel = Kernel(hub, USER, token)
    out = kernel.execute(f"""
import dask.array as da, numpy as np
from shoal import KubeCluster
cluster = KubeCluster(name="nb-{USER}", n_workers=1, lease_seconds={LEASE_SECONDS}, progress=False, {SMALL})
client = cluster.get_client()
x = da.random.RandomState(0).random((2000, 2000), chunks=500)
total = float((x + x.T).sum().compute(scheduler=client))
assert np.isclose(total, float((x + x.T).sum().compute(scheduler="threads"))), total
cluster.scale(3)
cluster.wait_for_workers(3, timeout=180)
assert len(client.cluster_info().workers) == 3, client.cluster_info().workers
print("SUM", total)
print("LINK", cluster.dashboard_link)
""")
    assert "SUM " in out, out
    link = re.search(r"^LINK (\S+)$", out, re.M)
    assert link, out
    prefix = f"/user/{USER}/proxy/nb-{USER}-scheduler.{kubectl.namespace}.svc:8787/status"
    assert link.group(1).startswith(prefix + "?token="), link.group(1)
    pod = kubectl.get("pod", f"jupyter-{USER}")
    assert pod["metadata"]["labels"].get(f"client.shoal.dev/nb-{USER}") == "true", pod["metadata"]["labels"]

    # The link through the Hub's proxy: the user's token authenticates to their server, the
    # link's own token logs in to the dashboard (a cookie, then a relative redirect).
    browser = requests.Session()
    browser.headers["Authorization"] = f"token {token}"
    page = browser.get(hub.url + link.group(1), timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower(), (page.status_code, page.text[:500])
    assert page.url.endswith(prefix), page.url
    assets = Assets()
    assets.feed(page.text)
    assert len(assets.urls) >= 3, assets.urls
    for url in assets.urls:
        got = browser.get(requests.compat.urljoin(page.url, url), timeout=60)
        assert got.status_code == 200 and got.content, (url, got.status_code)
    data = browser.get(requests.compat.urljoin(page.url, "api/v1/dashboard"), timeout=60)
    assert data.status_code == 200 and data.json(), (data.status_code, data.text[:300])
    live_in_chromium(hub.url + link.group(1), token)

    kernel.execute("cluster.close()\nprint('closed')")
    kubectl.wait_until("the notebook's cluster and pods to be gone", lambda: cluster_gone(kubectl, f"nb-{USER}"),
                       timeout=120)
    kernel.close()


def live_in_chromium(link: str, token: str) -> None:
    """The link in Chromium (the user's token as a header, as the Hub's cookie would be):
    the page's event stream goes live through CHP and jupyter-server-proxy and shows the 3
    workers; a screenshot goes to test-output/notebook/dashboard.png."""
    out = OUTPUT / "notebook"
    out.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                      extra_http_headers={"Authorization": f"token {token}"})
        page = context.new_page()
        page.goto(link, timeout=60_000)
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline:
            state = page.evaluate("({c: shoalDashboard.live.connection, u: shoalDashboard.live.updates,"
                                  " w: shoalDashboard.state.workers.size})")
            if state["c"] == "live" and state["u"] >= 2 and state["w"] == 3:
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"the dashboard through the Hub did not go live with 3 workers in 60s: {state}")
        page.screenshot(path=str(out / "dashboard.png"), full_page=True)
        context.close()


def test_a_killed_kernel_leaves_no_cluster(hub, kubectl):
    """A kernel SIGKILLed after creating its cluster: the cluster and all its pods are gone
    within the client lease plus a bound."""
    token = hub.spawn(USER)
    kernel = Kernel(hub, USER, token)
    out = kernel.execute(f"""
import os
from shoal import KubeCluster
cluster = KubeCluster(name="nb-killed", n_workers=1, lease_seconds={LEASE_SECONDS}, progress=False, {SMALL})
print("PID", os.getpid())
""")
    pid = re.search(r"^PID (\d+)$", out, re.M)
    assert pid, out
    assert kubectl.exists("shoalcluster", "nb-killed")
    # The image has no kill(1); Python sends the signal from beside the kernel.
    kubectl.run("exec", f"jupyter-{USER}", "--", "python3", "-c",
                f"import os, signal; os.kill({pid.group(1)}, signal.SIGKILL)")
    killed = time.monotonic()
    bound = LEASE_SECONDS + 30
    kubectl.wait_until(f"the killed kernel's cluster and pods to be gone within {bound}s",
                       lambda: cluster_gone(kubectl, "nb-killed"), timeout=bound)
    gone_after = time.monotonic() - killed
    print(f"cluster and pods gone {gone_after:.1f}s after the kernel was SIGKILLed (lease {LEASE_SECONDS}s)")
    events = kubectl.run("get", "events", "--field-selector", "reason=LeaseExpired", "-o", "name").stdout
    assert events.strip(), "no LeaseExpired Event"
    kernel.close()
