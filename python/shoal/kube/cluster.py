"""``KubeCluster``: creates a ShoalCluster (or connects to one by name), waits until it runs,
and gives Clients of it, wherever this Python process runs:

- in a pod (in-cluster service-account credentials): clients connect to the Service
  ``<c>-scheduler.<ns>.svc:8786``; the cluster is owned by this pod (deleting the pod
  deletes it) and the pod gets the label ``client.shoal.dev/<c>`` that the cluster's
  NetworkPolicy admits;
- outside (a kubeconfig): a supervised port-forward through the API server to the
  scheduler's gRPC and dashboard ports on free loopback ports.

No orphans: the cluster is created with ``spec.clientLease`` and a daemon thread renews
the Lease ``<c>-client`` every ``lease_seconds / 3``; when this process dies, even by
SIGKILL, the renewals stop and the operator deletes the cluster after ``lease_seconds``.
``close()``, the ``with`` block's end, and the interpreter's exit delete it at once
(unless ``shutdown_on_close=False``).

Not here: the pure builders (``spec.py``), the API calls (``api.py``), the forward
(``forward.py``), the lease timing (``lease.py``), links and reprs (``links.py``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import weakref

import shoal
from shoal.kube import links
from shoal.kube import spec as S
from shoal.kube.api import KubeApi, in_pod, own_namespace
from shoal.kube.errors import (
    ClusterNotFoundError,
    ClusterStartError,
    ClusterVersionError,
    KubeAPIError,
    KubeClusterError,
    KubePermissionError,
)
from shoal.kube.forward import Forward
from shoal.kube.lease import LeaseKeeper
from shoal.kube.progress import StartDisplay

log = logging.getLogger("shoal.kube")

#: Seconds between polls of the cluster while it starts.
POLL_EVERY = 1.0
#: Log lines of a failing pod shown in a start error.
LOG_TAIL = 30


def _user() -> str:
    user = os.environ.get("JUPYTERHUB_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


class KubeCluster:
    """A Shoal cluster on Kubernetes, created for this process.

    ``name`` defaults to ``shoal-<user>-<random>``; ``namespace`` to the pod's own (in a
    pod) or the kubeconfig context's. ``version`` defaults to this client's
    (``shoal.__version__``), so the cluster and the notebook never differ. ``resources``
    and ``scheduler_resources`` are Kubernetes resource requirements
    (``{"limits": {"cpu": "1", "memory": "2Gi"}}``) of each worker and of the scheduler;
    ``cores`` the tasks each worker runs at once (default: its CPU limit, or 1).
    ``idle_timeout`` (seconds, None: never) deletes a cluster with no client and no work.
    ``lease_seconds`` (15..3600, None: no lease) bounds how long the cluster outlives this
    process if it dies. ``timeout`` bounds the wait for phase Running. ``port_forward``
    None: only when not in a pod. ``progress`` None: shown in Jupyter and terminals.

    Raises :class:`~shoal.kube.ClusterStartError` (with the cluster's status, the failing
    pod's Events and log tail) when the cluster cannot start; the cluster is then deleted.
    """

    def __init__(
        self,
        name: str | None = None,
        namespace: str | None = None,
        n_workers: int = 2,
        version: str | None = None,
        image: str | None = None,
        resources: dict | None = None,
        *,
        cores: int | None = None,
        scheduler_resources: dict | None = None,
        env: dict[str, str] | None = None,
        image_pull_policy: str | None = None,
        idle_timeout: int | None = 3600,
        lease_seconds: int | None = 60,
        shutdown_on_close: bool = True,
        timeout: float = 300.0,
        port_forward: bool | None = None,
        progress: bool | None = None,
    ) -> None:
        self._init_state(namespace, name, shutdown_on_close, port_forward)
        self.version = version or shoal.__version__
        owner = self._own_pod_reference()
        manifest = S.build_spec(
            self.name, self.namespace,
            n_workers=n_workers, version=self.version, image=image, image_pull_policy=image_pull_policy,
            resources=resources, scheduler_resources=scheduler_resources, cores=cores, env=env,
            idle_timeout=idle_timeout, lease_seconds=lease_seconds, owner=owner,
        )
        try:
            created = self._api.create_cluster(manifest)
        except KubeAPIError as e:
            if e.status == 409:
                raise KubeClusterError(
                    f"a ShoalCluster named {self.name!r} already exists",
                    cluster=self.name, namespace=self.namespace,
                    fix=f"connect to it with KubeCluster.from_name({self.name!r}), or pick another name",
                ) from None
            raise
        self._created = True
        self._arm_finalizer()
        try:
            if lease_seconds is not None:
                self._start_lease(created, lease_seconds)
            self._connect(timeout, progress, image or "shoal.dev/shoal")
        except BaseException:
            self._abandon()
            raise

    @classmethod
    def from_name(
        cls,
        name: str,
        namespace: str | None = None,
        *,
        lease: bool = False,
        shutdown_on_close: bool = False,
        timeout: float = 300.0,
        port_forward: bool | None = None,
        progress: bool | None = None,
    ) -> KubeCluster:
        """Connects to an existing ShoalCluster. It is left running on ``close()`` unless
        ``shutdown_on_close``; ``lease=True`` takes over renewing its client lease (the
        cluster then goes away when this process dies, as if it had created it)."""
        self = cls.__new__(cls)
        self._init_state(namespace, name, shutdown_on_close, port_forward)
        found = self._api.get_cluster(name)
        if found is None:
            raise ClusterNotFoundError(
                f"no ShoalCluster named {name!r} in namespace {self.namespace!r}",
                cluster=name, namespace=self.namespace,
                fix="check the name and namespace (kubectl get shoalclusters); it may have been deleted by its "
                "idle timeout or an expired client lease (kubectl get events)",
            )
        self.version = shoal.__version__
        self._check_version(found)
        self._arm_finalizer()
        try:
            if lease:
                duration = ((found.get("spec") or {}).get("clientLease") or {}).get("durationSeconds")
                if duration is None:
                    duration = 60
                    found = self._api.patch_cluster(name, {"spec": {"clientLease": {"durationSeconds": duration}}})
                self._start_lease(found, duration)
            self._connect(timeout, progress, (found.get("spec") or {}).get("image") or "shoal.dev/shoal")
        except BaseException:
            self._abandon()
            raise
        return self

    # ---- setup --------------------------------------------------------------------

    def _init_state(self, namespace: str | None, name: str | None, shutdown_on_close: bool, port_forward) -> None:
        self._in_pod = in_pod()
        if namespace is None and self._in_pod:
            namespace = own_namespace()
        self._api = KubeApi(namespace, cluster=name or "")
        self.namespace = self._api.namespace
        self.name = name or S.default_name(_user(), secrets.token_hex(3))
        self._api.cluster = self.name
        self.shutdown_on_close = shutdown_on_close
        self._port_forward = (not self._in_pod) if port_forward is None else bool(port_forward)
        self._created = False
        self._closed = False
        self._lock = threading.Lock()
        self._keeper: LeaseKeeper | None = None
        self._forward: Forward | None = None
        self._labelled_pod: str | None = None
        self._finalizer = None
        #: What the exit finalizer stops and deletes (no reference to self).
        self._exit_state: dict = {"api": self._api, "name": self.name, "delete": shutdown_on_close, "parts": []}
        self._pod_name: str | None = None
        self._last: dict | None = None
        self.token: str | None = None
        self.address: str | None = None
        self.holder = S.holder_identity(socket.gethostname(), os.getpid())

    def _abandon(self) -> None:
        """close() after a failed start, never masking the start's own error."""
        try:
            self.close(timeout=30.0)
        except Exception as e:  # noqa: BLE001 - the start's error is the one to raise
            log.warning("shoal: could not clean up ShoalCluster %s/%s: %s", self.namespace, self.name, e)

    def _arm_finalizer(self) -> None:
        # At interpreter exit (not SIGKILL: the lease covers that) the cluster is deleted
        # as close() would; the finalizer holds no reference to self.
        self._finalizer = weakref.finalize(self, _shutdown, self._exit_state)

    def _own_pod_reference(self) -> dict | None:
        """The ownerReference to this notebook's pod, when running in one (same namespace)."""
        if not self._in_pod:
            return None
        pod_name = os.environ.get("HOSTNAME") or socket.gethostname()
        if own_namespace() != self.namespace:
            log.info("shoal: cluster %s is in another namespace than this pod: no owner reference", self.name)
            return None
        pod = self._api.get_pod(pod_name)
        if pod is None:
            log.info("shoal: this pod (%s) was not found by name: no owner reference", pod_name)
            return None
        self._pod_name = pod_name
        return S.pod_owner_reference(pod)

    def _start_lease(self, cluster: dict, duration: int) -> None:
        """Creates or takes over the Lease now (so a missing permission fails the start),
        then renews it from a daemon thread."""
        lease = S.lease_name(self.name)
        holder_seen: list[str | None] = [None]

        def renew() -> None:
            now = dt.datetime.now(dt.timezone.utc)
            if not self._api.patch_lease(lease, S.lease_renewal(self.holder, duration, now, holder_seen[0])):
                self._api.create_lease(S.lease_manifest(cluster, self.holder, duration, now))
            holder_seen[0] = self.holder

        renew()
        self._keeper = LeaseKeeper(renew, duration, self.name).start()
        self._exit_state["parts"].append(self._keeper)

    def _connect(self, timeout: float, progress: bool | None, image: str) -> None:
        """Waits for phase Running, checks the version, reads the token and opens the way
        to the scheduler (the client label in a pod, else a port-forward)."""
        cluster = self._wait_running(timeout, progress, f"{image}:{self.version}")
        self._check_version(cluster)
        status = cluster.get("status") or {}
        secret = status.get("tokenSecret") or (cluster.get("spec") or {}).get("tokenSecret") or S.token_secret(self.name)
        self.token = self._api.read_token(secret)
        if not self.token:
            raise KubeClusterError(
                f"the token Secret {secret!r} of the cluster has no key {S.TOKEN_KEY!r}",
                cluster=self.name, namespace=self.namespace,
                fix="the operator creates it; if spec.tokenSecret names your own Secret, add the key",
            )
        if self._in_pod and self._pod_name is None:
            self._pod_name = os.environ.get("HOSTNAME") or socket.gethostname()
        if self._in_pod and own_namespace() == self.namespace:
            self._api.patch_pod(self._pod_name, S.client_label_patch(self.name))
            self._labelled_pod = self._pod_name
        if self._port_forward:
            self._forward = Forward(
                self.namespace, S.scheduler_pod(self.name), [S.SCHEDULER_PORT, S.DASHBOARD_PORT], cluster=self.name
            ).start()
            self._exit_state["parts"].append(self._forward)
            self.address = f"127.0.0.1:{self._forward.local_port(S.SCHEDULER_PORT)}"
            self._check_forward()
        else:
            self.address = f"{S.service_host(self.name, self.namespace)}:{S.SCHEDULER_PORT}"

    def _check_forward(self, timeout: float = 20.0) -> None:
        """One request through the tunnel (the scheduler's /healthz): a forward the API
        server refuses fails here, naming the permission, not later as a client timeout."""
        assert self._forward is not None
        url = f"http://127.0.0.1:{self._forward.local_port(S.DASHBOARD_PORT)}/healthz"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except urllib.error.HTTPError:
                return  # the scheduler answered: the tunnel works
            except OSError:
                if self._forward.refused_status() == 403:
                    raise KubePermissionError(
                        "the Kubernetes API refused to port-forward to the scheduler",
                        verb="get", resource="pods/portforward", cluster=self.name, namespace=self.namespace,
                        pod=S.scheduler_pod(self.name), cause="403 Forbidden on the pods/portforward WebSocket",
                        fix=(
                            f"grant get and create on pods/portforward in namespace {self.namespace} (WebSocket "
                            "port-forwards need get before Kubernetes 1.35, create since), or run in a pod"
                        ),
                    ) from None
                if time.monotonic() >= deadline:
                    raise KubeAPIError(
                        "the port-forward to the scheduler carries no traffic",
                        cluster=self.name, namespace=self.namespace, pod=S.scheduler_pod(self.name),
                        cause=repr(self._forward.last_error) if self._forward.last_error else f"{url} did not answer",
                        fix="check that the scheduler pod is ready and that the API server reaches its node",
                    ) from None
                time.sleep(0.5)

    def _wait_running(self, timeout: float, progress: bool | None, image: str) -> dict:
        display = StartDisplay(f"ShoalCluster {self.name}", progress)
        deadline = time.monotonic() + timeout
        degraded_since: float | None = None
        waiting_since: dict = {}
        while True:
            cluster = self._api.get_cluster(self.name)
            if cluster is None:
                raise ClusterNotFoundError(
                    "the ShoalCluster was deleted while it started",
                    cluster=self.name, namespace=self.namespace,
                    fix="see `kubectl get events` in the namespace for who deleted it",
                )
            self._last = cluster
            display.update(S.progress_line(cluster))
            if (cluster.get("status") or {}).get("phase") == "Running":
                display.finish(S.progress_line(cluster))
                return cluster
            pods = self._api.cluster_pods(self.name)
            now = time.monotonic()
            applied = S.condition(cluster.get("status") or {}, "Applied")
            degraded = (cluster.get("status") or {}).get("phase") == "Degraded" and applied and S.failing(applied)
            degraded_since = (degraded_since or now) if degraded else None
            failure = S.startup_failure(cluster, pods, now - degraded_since if degraded_since else 0.0, waiting_since, now)
            if failure is not None or time.monotonic() >= deadline:
                display.finish(S.progress_line(cluster) + (f" | {failure.reason}" if failure else " | timed out"))
                raise self._start_error(cluster, pods, failure, timeout, image)
            time.sleep(POLL_EVERY)

    def _start_error(self, cluster: dict, pods: list[dict], failure, timeout: float, image: str) -> ClusterStartError:
        status = cluster.get("status") or {}
        message = S.status_message(status)
        pod = failure.pod if failure and failure.pod else S.scheduler_pod(self.name)
        details = [f"  status:    phase {status.get('phase') or 'Pending'}; {S.progress_line(cluster)}"]
        if message:
            details.append(f"  message:   {message}")
        details.append(self._pod_evidence(pod, pods))
        if failure is not None:
            headline = f"the ShoalCluster cannot start: {failure.reason}"
            cause = failure.message
            fix = S.failure_fix(failure.reason, image)
        elif not status:
            headline = f"the ShoalCluster did not reach phase Running within {timeout:.0f} s"
            cause = "the operator never acted on it (the cluster has no status and no pods)"
            fix = f"install the Shoal operator, watching namespace {self.namespace} (helm install ... --set watchNamespace=)"
        else:
            headline = f"the ShoalCluster did not reach phase Running within {timeout:.0f} s"
            cause = message or "pods not ready yet (slow image pull, no node with room, or a crash)"
            fix = "pass a longer timeout=, or see the Events below (kubectl describe shoalcluster/pods)"
        return ClusterStartError(
            headline, cluster=self.name, namespace=self.namespace, pod=pod, cause=cause, fix=fix,
            details="\n".join(details),
        )

    def _pod_evidence(self, pod: str, pods: list[dict]) -> str:
        """The pod's Events and log tail, for an error message; best effort."""
        out = []
        try:
            events = self._api.events(pod, "Pod")
        except KubeClusterError as e:
            events, out = [], [f"  (no Events: {e.message})"]
        if events:
            out.append(f"Events of pod {pod}:")
            for e in events[-15:]:
                when = e.get("lastTimestamp") or e.get("eventTime") or ""
                out.append(f"  {when} {e.get('type', '')} {e.get('reason', '')}: {(e.get('message') or '').strip()}")
        elif not out:
            out.append(f"  (no Events for pod {pod})")
        exists = any(p["metadata"]["name"] == pod for p in pods)
        if exists:
            try:
                tail = self._api.pod_logs(pod, tail=LOG_TAIL) or self._api.pod_logs(pod, tail=LOG_TAIL, previous=True)
            except KubeClusterError as e:
                tail = f"(no log: {e.message})"
            out.append(f"Log tail of pod {pod} (last {LOG_TAIL} lines):")
            out.extend(f"  {line}" for line in (tail or "(empty)").splitlines())
        return "\n".join(out)

    def _check_version(self, cluster: dict) -> None:
        reported = (cluster.get("status") or {}).get("version")
        message = S.version_mismatch(shoal.__version__, reported, self.name, self.namespace)
        if message:
            raise ClusterVersionError(
                message, cluster=self.name, namespace=self.namespace,
                cause=f"cluster version {reported}, client version {shoal.__version__}",
                fix=f"KubeCluster(version={shoal.__version__!r}) or pip install shoal=={reported}",
            )

    # ---- use ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KubeClusterError("this KubeCluster is closed", cluster=self.name, namespace=self.namespace)

    def _cluster(self) -> dict:
        cluster = self._api.get_cluster(self.name)
        if cluster is None:
            raise ClusterNotFoundError(
                "the ShoalCluster is gone",
                cluster=self.name, namespace=self.namespace,
                cause=self._gone_reason(),
                fix="create a new KubeCluster (results held by the old one are lost)",
            )
        self._last = cluster
        return cluster

    def _gone_reason(self) -> str:
        """The Warning Event that explains a deletion (lease expiry, idle timeout), if any."""
        try:
            events = self._api.events(self.name, S.KIND)
        except KubeClusterError:
            return ""
        warnings = [e for e in events if e.get("type") == "Warning"]
        if not warnings:
            return "deleted by someone or something else (no Warning Event says why)"
        last = warnings[-1]
        return f"{last.get('reason')}: {last.get('message')}"

    def get_client(self, **kwargs):
        """A new :class:`shoal.Client` of this cluster (token and dashboard link set)."""
        self._check_open()
        from shoal.client import Client

        return Client(self, **kwargs)

    def scale(self, n: int) -> None:
        """Sets the default worker pool to ``n`` workers (and turns adaptive scaling off)."""
        self._check_open()
        workers = (self._cluster().get("spec") or {}).get("workers") or {}
        self._last = self._api.patch_cluster(self.name, S.scale_patch(workers, n))

    def adapt(self, minimum: int = 0, maximum: int = S.DEFAULT_MAX_REPLICAS) -> None:
        """Lets the operator scale the default pool between ``minimum`` and ``maximum``
        workers from the scheduler's estimate of the work."""
        self._check_open()
        workers = (self._cluster().get("spec") or {}).get("workers") or {}
        self._last = self._api.patch_cluster(self.name, S.adapt_patch(workers, minimum, maximum))

    def wait_for_workers(self, n: int, timeout: float = 120.0) -> None:
        """Blocks until ``n`` workers are ready (status.readyWorkers)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self._cluster().get("status") or {}
            if int(status.get("readyWorkers") or 0) >= n:
                return
            if time.monotonic() >= deadline:
                raise KubeClusterError(
                    f"{status.get('readyWorkers', 0)} of {n} workers ready after {timeout:.0f} s",
                    cluster=self.name, namespace=self.namespace, cause=S.status_message(status),
                )
            time.sleep(POLL_EVERY)

    def get_logs(self, tail: int | None = None) -> dict[str, str]:
        """The log of each pod of the cluster, scheduler first: ``{pod name: text}``."""
        pods = sorted(
            (p["metadata"]["name"] for p in self._api.cluster_pods(self.name)),
            key=lambda n: (n != S.scheduler_pod(self.name), n),
        )
        return {pod: self._api.pod_logs(pod, tail=tail) for pod in pods}

    @property
    def status(self) -> str:
        """The cluster's phase (``Pending``, ``Running``, ... or ``closed``/``gone``)."""
        if self._closed:
            return "closed"
        try:
            return (self._cluster().get("status") or {}).get("phase") or "Pending"
        except ClusterNotFoundError:
            return "gone"

    @property
    def scheduler_address(self) -> str:
        """The scheduler inside the cluster (``<c>-scheduler.<ns>.svc:8786``)."""
        return f"{S.service_host(self.name, self.namespace)}:{S.SCHEDULER_PORT}"

    @property
    def dashboard_link(self) -> str:
        """The dashboard page, with the token (opening it logs the browser in)."""
        port = self._forward.local_port(S.DASHBOARD_PORT) if self._forward is not None else None
        return links.dashboard_link(self.name, self.namespace, self.token, env=os.environ, forwarded_port=port)

    # ---- end ----------------------------------------------------------------------

    def close(self, timeout: float = 60.0) -> None:
        """Stops renewing the lease and the port-forward, removes this pod's client label,
        and deletes the cluster (waiting up to ``timeout`` seconds for it to go) unless
        ``shutdown_on_close`` is False."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._keeper is not None:
            self._keeper.stop()
        if self._forward is not None:
            self._forward.stop()
        if self._labelled_pod:
            try:
                self._api.patch_pod(self._labelled_pod, S.client_label_patch(self.name, on=False))
            except KubeClusterError as e:
                log.debug("shoal: could not remove the client label of %s: %s", self._labelled_pod, e)
        if not self.shutdown_on_close:
            return
        self._api.delete_cluster(self.name)
        deadline = time.monotonic() + timeout
        while self._api.get_cluster(self.name) is not None:
            if time.monotonic() >= deadline:
                log.warning(
                    "shoal: ShoalCluster %s/%s still exists %.0f s after its deletion", self.namespace, self.name, timeout
                )
                return
            time.sleep(0.5)

    def __enter__(self) -> KubeCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- display ------------------------------------------------------------------

    def _figures(self) -> tuple[links.Figures | None, str]:
        if self._closed:
            return (links.figures(self._last) if self._last else None), "closed"
        try:
            return links.figures(self._cluster()), ""
        except KubeClusterError as e:
            return (links.figures(self._last) if self._last else None), e.message

    def __repr__(self) -> str:
        fig, state = self._figures()
        return links.text_repr(self.name, self.namespace, fig, self.dashboard_link if self.token else None, state)

    def _repr_html_(self) -> str:
        fig, state = self._figures()
        return links.html_repr(self.name, self.namespace, fig, self.dashboard_link if self.token else None, state)


def _shutdown(state: dict) -> None:
    """At interpreter exit: stop the lease and forward threads, delete the cluster."""
    for part in state["parts"]:
        try:
            part.stop(1.0)
        except Exception:  # noqa: BLE001 - exiting: nothing to report to
            pass
    if state["delete"]:
        try:
            state["api"].delete_cluster(state["name"])
        except Exception:  # noqa: BLE001 - exiting; the lease or idle timeout remains
            pass
