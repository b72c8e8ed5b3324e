"""``shoal.KubeCluster``'s pure parts: the ShoalCluster manifest, scale and adapt patches,
owner references and the client label, the client Lease and its renewal timing, the
version check, reading a failed start, dashboard links and reprs. No API server."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time

import pytest

import shoal
from shoal.kube import links
from shoal.kube import spec as S
from shoal.kube.errors import ClusterStartError, KubeClusterError, KubePermissionError
from shoal.kube.lease import RETRY_MAX, LeaseKeeper, lease_state, next_renewal

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone.utc)


def cluster_obj(name="c1", namespace="ns", status=None, workers=None, uid="uid-1") -> dict:
    return {
        "apiVersion": S.API_VERSION,
        "kind": S.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"version": "0.1.0", "workers": workers or {"replicas": 2, "minReplicas": 0, "maxReplicas": 100}},
        "status": status or {},
    }


def pod(name, waiting=None, phase="Pending", last=None) -> dict:
    cs = {"name": "main", "state": {"waiting": waiting} if waiting else {"running": {}}}
    if last:
        cs["lastState"] = {"terminated": last}
    return {"metadata": {"name": name}, "status": {"phase": phase, "containerStatuses": [cs]}}


# ---- the manifest -------------------------------------------------------------------


def test_build_spec_defaults():
    """The manifest pins the version, sizes the default pool, sets the lease and the idle timeout."""
    m = S.build_spec("c1", "ns", n_workers=3, version="0.1.0", idle_timeout=600, lease_seconds=45)
    assert m["apiVersion"] == "shoal.dev/v1alpha1" and m["kind"] == "ShoalCluster"
    assert m["metadata"]["name"] == "c1" and m["metadata"]["namespace"] == "ns"
    assert m["metadata"]["labels"] == {S.CREATED_BY_LABEL: S.CREATED_BY}
    assert "ownerReferences" not in m["metadata"]
    assert m["spec"] == {
        "version": "0.1.0",
        "workers": {"replicas": 3, "minReplicas": 0, "maxReplicas": 100},
        "idleTimeout": 600,
        "clientLease": {"durationSeconds": 45},
    }


def test_build_spec_options():
    """Image, pull policy, resources, cores, env and the owner reach their CRD fields; no lease when None."""
    owner = S.pod_owner_reference({"metadata": {"name": "jupyter-alice", "uid": "u-9"}})
    m = S.build_spec(
        "c1", "ns", n_workers=150, version="0.2.0-rc.1", image="registry.local:5000/shoal", image_pull_policy="Never",
        resources={"limits": {"cpu": 2, "memory": "2Gi"}}, scheduler_resources={"requests": {"memory": "1Gi"}},
        cores=4, env={"A": 1}, idle_timeout=None, lease_seconds=None, owner=owner,
    )
    spec = m["spec"]
    assert spec["image"] == "registry.local:5000/shoal" and spec["imagePullPolicy"] == "Never"
    assert spec["workers"] == {
        "replicas": 150, "minReplicas": 0, "maxReplicas": 150, "cores": 4,
        "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}, "env": {"A": "1"},
    }
    assert spec["scheduler"] == {"resources": {"requests": {"memory": "1Gi"}}}
    assert "clientLease" not in spec and "idleTimeout" not in spec
    assert m["metadata"]["ownerReferences"] == [owner]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "Bad_Name"}, "not a DNS label"),
        ({"name": "x" * 50}, "too long"),
        ({"version": "latest"}, "release version"),
        ({"n_workers": -1}, "n_workers"),
        ({"image": "shoal.dev/shoal:0.1.0"}, "without a tag"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
        ({"lease_seconds": 5}, "lease_seconds"),
        ({"idle_timeout": 1}, "idle_timeout"),
        ({"resources": {"cpu": "1"}}, "resource requirements"),
        ({"cores": 0}, "cores"),
    ],
)
def test_build_spec_refuses_bad_arguments(kwargs, needle):
    """Each bad argument is refused before any API call, naming it."""
    args = {"name": "c1", "namespace": "ns", "version": "0.1.0", **kwargs}
    with pytest.raises(ValueError, match=needle):
        S.build_spec(args.pop("name"), args.pop("namespace"), **args)


def test_default_name_is_a_short_dns_label():
    """Default names carry the (cleaned) user and fit the operator's pod-name limit."""
    assert S.default_name("Alice.Smith@example.org", "a1b2c3") == "shoal-alice-smith-exam-a1b2c3"
    assert S.default_name("", "a1b2c3") == "shoal-a1b2c3"
    assert S.default_name("---", "a1b2c3") == "shoal-a1b2c3"
    S.check_name(S.default_name("x" * 80, "a1b2c3"))


# ---- patches ------------------------------------------------------------------------


def test_scale_patch_turns_autoscaling_off_and_widens_bounds():
    """scale(n) sets replicas, stops adapting, and moves a bound n lies outside."""
    workers = {"replicas": 2, "minReplicas": 1, "maxReplicas": 4}
    assert S.scale_patch(workers, 3) == {"spec": {"workers": {"replicas": 3, "autoscaling": {"enabled": False}}}}
    assert S.scale_patch(workers, 9)["spec"]["workers"]["maxReplicas"] == 9
    assert S.scale_patch(workers, 0)["spec"]["workers"]["minReplicas"] == 0
    with pytest.raises(ValueError):
        S.scale_patch(workers, -1)


def test_adapt_patch_sets_bounds_and_keeps_replicas_inside():
    """adapt(min, max) enables autoscaling with the CRD's field names; replicas is clamped into the bounds."""
    patch = S.adapt_patch({"replicas": 5, "minReplicas": 0, "maxReplicas": 100}, 1, 3)
    assert patch == {
        "spec": {"workers": {"autoscaling": {"enabled": True}, "minReplicas": 1, "maxReplicas": 3, "replicas": 3}}
    }
    assert S.adapt_patch({"replicas": 0}, 2, 4)["spec"]["workers"]["replicas"] == 2
    with pytest.raises(ValueError):
        S.adapt_patch({}, 3, 1)


# ---- owner references, labels, lease --------------------------------------------------


def test_owner_references_never_block_or_control():
    """Cluster -> pod and Lease -> cluster references are plain (no controller, no blocking deletion)."""
    ref = S.pod_owner_reference({"metadata": {"name": "jupyter-alice", "uid": "u-1", "namespace": "ns"}})
    assert ref == {
        "apiVersion": "v1", "kind": "Pod", "name": "jupyter-alice", "uid": "u-1",
        "controller": False, "blockOwnerDeletion": False,
    }
    ref = S.cluster_owner_reference(cluster_obj())
    assert ref["apiVersion"] == "shoal.dev/v1alpha1" and ref["kind"] == "ShoalCluster"
    assert (ref["name"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == ("c1", "uid-1", False, False)


def test_client_label_patch():
    """The pod gets client.shoal.dev/<c>: "true", removed with null."""
    assert S.client_label("c1") == "client.shoal.dev/c1"
    assert S.client_label_patch("c1") == {"metadata": {"labels": {"client.shoal.dev/c1": "true"}}}
    assert S.client_label_patch("c1", on=False) == {"metadata": {"labels": {"client.shoal.dev/c1": None}}}


def test_lease_manifest_and_renewal():
    """The Lease <c>-client names its holder, duration and renew time (MicroTime) and is owned by the cluster."""
    holder = S.holder_identity("jupyter-alice", 4242)
    assert holder == "jupyter-alice/4242"
    lease = S.lease_manifest(cluster_obj(), holder, 60, NOW)
    assert lease["apiVersion"] == "coordination.k8s.io/v1" and lease["kind"] == "Lease"
    meta = lease["metadata"]
    assert (meta["name"], meta["namespace"]) == ("c1-client", "ns")
    assert meta["ownerReferences"] == [S.cluster_owner_reference(cluster_obj())]
    assert lease["spec"] == {
        "holderIdentity": holder, "leaseDurationSeconds": 60,
        "acquireTime": "2026-03-04T05:06:07.890123Z", "renewTime": "2026-03-04T05:06:07.890123Z",
    }
    later = NOW + dt.timedelta(seconds=20)
    assert S.lease_renewal(holder, 60, later, holder) == {
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60, "renewTime": "2026-03-04T05:06:27.890123Z"}
    }
    assert "acquireTime" in S.lease_renewal(holder, 60, later, "other-host/1")["spec"]
    assert S.parse_time(S.micro_time(NOW)) == NOW


def test_renewal_timing():
    """Renew a third of the duration after the last success; after failures retry after 1, 2, 4 s, capped."""
    assert next_renewal(last_success=100.0, duration=60, failures=0, now=100.0) == 20.0
    assert next_renewal(last_success=100.0, duration=60, failures=0, now=115.0) == 5.0
    assert next_renewal(last_success=100.0, duration=60, failures=0, now=130.0) == 0.0
    assert [next_renewal(100.0, 60, f, 125.0) for f in (1, 2, 3, 4, 9)] == [1.0, 2.0, 4.0, RETRY_MAX, RETRY_MAX]


def test_lease_state():
    """A lease is fresh, late past two thirds of its duration, expired past all of it."""
    assert lease_state(100.0, 60, 119.0) == "fresh"
    assert lease_state(100.0, 60, 141.0) == "late"
    assert lease_state(100.0, 60, 160.0) == "expired"


def test_lease_keeper_renews_and_survives_failures():
    """The keeper thread renews repeatedly, retries a failing renewal, and stops when told."""
    calls: list[float] = []
    enough = threading.Event()

    def renew() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise OSError("API server away")
        if len(calls) >= 4:
            enough.set()

    keeper = LeaseKeeper(renew, duration=0.3, name="c1").start()
    try:
        assert enough.wait(10), calls
        assert keeper.failures == 0 and keeper.last_error is None
    finally:
        keeper.stop()
    assert not keeper.alive


# ---- version, failures --------------------------------------------------------------


def test_version_mismatch_message_names_both_versions_and_the_fix():
    """A cluster on another version is refused with both versions, the cluster and both fixes."""
    assert S.version_mismatch("0.1.0", "0.1.0", "c1", "ns") is None
    assert S.version_mismatch("0.1.0", None, "c1", "ns") is None
    message = S.version_mismatch("0.1.0", "0.2.0", "c1", "ns")
    assert "'c1'" in message and "'ns'" in message
    assert "runs shoal 0.2.0" in message and "client is shoal 0.1.0" in message
    assert "KubeCluster(version='0.1.0')" in message and "pip install shoal==0.2.0" in message


def test_startup_failure_reads_stuck_pods_scheduler_first():
    """Stuck container reasons end the wait, the scheduler's first; transient ones do not."""
    c = cluster_obj()
    assert S.startup_failure(c, [pod("c1-scheduler", {"reason": "ContainerCreating"})]) is None
    assert S.startup_failure(c, [pod("c1-scheduler", {"reason": "ErrImagePull"})]) is None
    pods = [
        pod("c1-default-worker-0", {"reason": "ImagePullBackOff", "message": "back-off pulling"}),
        pod("c1-scheduler", {"reason": "CrashLoopBackOff", "message": "back-off 10s"},
            last={"exitCode": 2, "reason": "Error"}),
    ]
    failure = S.startup_failure(c, pods)
    assert failure.pod == "c1-scheduler" and failure.reason == "CrashLoopBackOff"
    assert "exited with code 2" in failure.message
    failure = S.startup_failure(c, [pod("c1-scheduler", {"reason": "ErrImageNeverPull", "message": "not present"})])
    assert (failure.reason, failure.message) == ("ErrImageNeverPull", "not present")
    assert "available to the nodes" in S.failure_fix("ErrImageNeverPull", "shoal.dev/shoal:0.1.0")


def test_startup_failure_waits_out_a_retried_config_error():
    """A CreateContainerConfigError the kubelet retries (its secret cache still syncing) ends
    the wait only after RETRY_PATIENCE seconds of the same reason; without the caller's
    record of first sightings it ends it at once."""
    c = cluster_obj()
    stuck = [pod("c1-scheduler", {"reason": "CreateContainerConfigError", "message": "failed to sync secret cache"})]
    seen: dict = {}
    assert S.startup_failure(c, stuck, waiting_since=seen, now=100.0) is None
    assert S.startup_failure(c, stuck, waiting_since=seen, now=100.0 + S.RETRY_PATIENCE - 1) is None
    assert S.startup_failure(c, [pod("c1-scheduler", {"reason": "ContainerCreating"})], waiting_since=seen, now=110.0) is None
    failure = S.startup_failure(c, stuck, waiting_since=seen, now=100.0 + S.RETRY_PATIENCE)
    assert (failure.pod, failure.reason) == ("c1-scheduler", "CreateContainerConfigError")
    assert S.startup_failure(c, stuck).reason == "CreateContainerConfigError"


def test_startup_failure_of_a_failed_cluster_carries_its_condition():
    """Phase Failed ends the wait with the cluster's own (Valid condition) message."""
    c = cluster_obj(status={
        "phase": "Failed",
        "conditions": [
            {"type": "Ready", "status": "False", "message": "not valid"},
            {"type": "Valid", "status": "False", "reason": "InvalidSpec", "message": "worker pod name too long"},
        ],
    })
    failure = S.startup_failure(c, [])
    assert failure.pod == "" and failure.reason == "Failed"
    assert failure.message == "Valid: worker pod name too long"


def test_progress_line():
    """The start line shows phase, scheduler readiness and workers ready of wanted."""
    c = cluster_obj(status={
        "phase": "Pending", "readyWorkers": 1, "desiredWorkers": 2,
        "conditions": [{"type": "SchedulerReady", "status": "True"}],
    })
    assert S.progress_line(c) == "Pending | scheduler ready | workers 1/2"
    assert S.progress_line(cluster_obj()) == "Pending | scheduler starting | workers 0/2"


def test_errors_name_cluster_pod_cause_and_fix():
    """KubeCluster errors are ShoalErrors whose text names cluster, namespace, pod, cause, fix and details."""
    e = ClusterStartError("cannot start", cluster="c1", namespace="ns", pod="c1-scheduler",
                          cause="CrashLoopBackOff", fix="read the log", details="Log tail:\n  boom")
    assert isinstance(e, shoal.ShoalError) and isinstance(e, KubeClusterError)
    text = str(e)
    for needle in ("cannot start", "c1 (namespace ns)", "c1-scheduler", "CrashLoopBackOff", "read the log", "boom"):
        assert needle in text
    e = KubePermissionError("refused", verb="create", resource="leases", group="coordination.k8s.io",
                            cluster="c1", namespace="ns", fix="grant it")
    assert (e.verb, e.resource, e.group) == ("create", "leases", "coordination.k8s.io")


# ---- links and reprs ------------------------------------------------------------------


def test_dashboard_link_forms():
    """Port-forward, JupyterHub proxy (relative and absolute) and Service URL forms, each with the token."""
    env: dict[str, str] = {}
    assert links.dashboard_link("c1", "ns", "t/k+n", env=env, forwarded_port=40123) == (
        "http://127.0.0.1:40123/status?token=t%2Fk%2Bn"
    )
    assert links.dashboard_link("c1", "ns", "tok", env=env) == "http://c1-scheduler.ns.svc:8787/status?token=tok"
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}
    assert links.dashboard_link("c1", "ns", "tok", env=hub) == (
        "/user/alice/proxy/c1-scheduler.ns.svc:8787/status?token=tok"
    )
    hub_public = {**hub, "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/"}
    assert links.dashboard_link("c1", "ns", "tok", env=hub_public) == (
        "https://hub.example.org/user/alice/proxy/c1-scheduler.ns.svc:8787/status?token=tok"
    )
    hub_url = {"JUPYTERHUB_SERVICE_PREFIX": "user/bob", "JUPYTERHUB_PUBLIC_HUB_URL": "http://hub:8000/hub/"}
    assert links.dashboard_link("c1", "ns", None, env=hub_url) == (
        "http://hub:8000/user/bob/proxy/c1-scheduler.ns.svc:8787/status"
    )
    # The port-forward wins over the Hub path: a Hub pod would not port-forward.
    assert links.dashboard_link("c1", "ns", "tok", env=hub, forwarded_port=1).startswith("http://127.0.0.1:1/")


def test_quantities_and_figures():
    """Cores follow the operator (cores, else CPU limit rounded up, else 1); memory the limit."""
    assert links.parse_quantity("1Gi") == 2**30 and links.parse_quantity("500m") == 0.5
    assert links.parse_quantity("2") == 2 and links.parse_quantity("lots") is None
    c = cluster_obj(
        workers={"replicas": 3, "minReplicas": 1, "maxReplicas": 5, "autoscaling": {"enabled": True},
                 "resources": {"limits": {"cpu": "1500m", "memory": "512Mi"}}},
        status={"phase": "Running", "readyWorkers": 3, "desiredWorkers": 3, "version": "0.1.0"},
    )
    fig = links.figures(c)
    assert (fig.phase, fig.ready, fig.wanted, fig.cores, fig.memory, fig.adapt) == (
        "Running", 3, 3, 6, 3 * 512 * 2**20, (1, 5)
    )
    plain = links.figures(cluster_obj(status={"readyWorkers": 2}))
    assert (plain.cores, plain.memory, plain.adapt) == (2, None, None)


def test_reprs():
    """The text repr is one line; the HTML repr escapes and links the dashboard without showing the token."""
    c = cluster_obj(status={"phase": "Running", "readyWorkers": 2, "desiredWorkers": 2, "version": "0.1.0"})
    fig = links.figures(c)
    link = "http://127.0.0.1:4/status?token=secret"
    text = links.text_repr("c1", "ns", fig, link)
    assert text == (
        "<shoal.KubeCluster 'c1' in 'ns': Running, 2/2 workers, 2 cores, no limit, dashboard " + link + ">"
    )
    page = links.html_repr("c1<x>", "ns", fig, link)
    assert "c1&lt;x&gt;" in page and 'href="http://127.0.0.1:4/status?token=secret"' in page
    assert ">http://127.0.0.1:4/status</a>" in page and "2 ready of 2" in page
    assert "closed" in links.text_repr("c1", "ns", None, None, "closed")


def test_importing_shoal_does_not_need_kr8s():
    """`import shoal` and the pure kube modules work where kr8s is not installed; KubeCluster says how to get it."""
    code = (
        "import sys; sys.modules['kr8s'] = None\n"
        "import shoal, shoal.kube.spec, shoal.kube.links\n"
        "assert 'KubeCluster' in dir(shoal)\n"
        "try:\n    shoal.KubeCluster\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'shoal[kube]'" in out.stdout


# ---- the port-forward's supervisor ------------------------------------------------------


class EchoListener:
    """Stands in for kr8s's PortForward: a loopback echo server on the given port."""

    def __init__(self, local: int) -> None:
        self.local = local
        self.servers: list = []

    async def __aenter__(self) -> int:
        import asyncio

        async def echo(reader, writer) -> None:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
            writer.close()

        self.servers.append(await asyncio.start_server(echo, "127.0.0.1", self.local))
        return self.local

    async def __aexit__(self, *exc) -> None:
        for server in self.servers:
            server.close()


def echo_once(conn, payload: bytes) -> bytes:
    conn.sendall(payload)
    return conn.recv(1024)


def test_forward_restarts_a_dead_listener_on_the_same_port():
    """A listener that stops is started again on the same local port; open connections and stop() behave."""
    import socket

    pytest.importorskip("kr8s")
    from shoal.kube.forward import Forward

    forward = Forward("ns", "c1-scheduler", [8786, 8787], make=lambda remote, local: EchoListener(local)).start(10)
    port = forward.local_port(8786)
    assert port != forward.local_port(8787)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as old:
            assert echo_once(old, b"one") == b"one"
            forward.close_listeners()
            deadline = time.monotonic() + 10
            while forward.restarts[8786] < 1 or forward.restarts[8787] < 1:
                assert time.monotonic() < deadline, forward.restarts
                time.sleep(0.05)
            assert forward.local_port(8786) == port
            with socket.create_connection(("127.0.0.1", port), timeout=5) as new:
                assert echo_once(new, b"two") == b"two"
            assert echo_once(old, b"three") == b"three"
    finally:
        forward.stop()
    assert not forward.alive
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_lasting_failed_apply_ends_the_start_and_healthy_conditions_are_not_reported():
    """Degraded with Applied=False for APPLY_PATIENCE s is a failure; OOMKilled=False is not a problem."""
    c = cluster_obj(status={
        "phase": "Degraded",
        "conditions": [
            {"type": "Applied", "status": "False", "message": "networkpolicies is forbidden"},
            {"type": "SchedulerOOMKilled", "status": "False", "message": "never OOM-killed"},
            {"type": "VersionSkew", "status": "True", "message": "a worker runs 0.0.9"},
        ],
    })
    assert S.startup_failure(c, [], degraded_for=S.APPLY_PATIENCE - 1) is None
    failure = S.startup_failure(c, [], degraded_for=S.APPLY_PATIENCE)
    assert (failure.reason, failure.message) == ("ApplyFailed", "networkpolicies is forbidden")
    assert "RBAC" in S.failure_fix("ApplyFailed", "img")
    assert S.status_message(c["status"]) == "Applied: networkpolicies is forbidden; VersionSkew: a worker runs 0.0.9"


def test_forward_tells_a_refused_tunnel_from_others():
    """The API server's refusal status is found inside kr8s's error groups and chained errors."""
    pytest.importorskip("kr8s")
    from exceptiongroup import ExceptionGroup  # the builtin on 3.11+ (kr8s depends on the backport)

    from shoal.kube.forward import Forward, _describe

    class Refused(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"<Response [{status}]>")
            self.response = type("Response", (), {"status_code": status})()

    forward = Forward("ns", "c1-scheduler", [8786], make=lambda remote, local: EchoListener(local))
    assert forward.refused_status() is None
    try:
        raise ConnectionError("cannot open a tunnel") from Refused(403)
    except ConnectionError as e:
        forward.last_error = ExceptionGroup("tunnel", [e])
    assert forward.refused_status() == 403
    assert _describe(ExceptionGroup("g", [OSError("reset"), TimeoutError()])) == "OSError: reset; TimeoutError"
