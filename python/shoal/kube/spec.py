"""Pure builders of what :class:`shoal.KubeCluster` sends and decides: the ShoalCluster
manifest, the scale and adapt patches, owner references, the client label, the client
Lease, the version check and the reading of a failed start from the cluster's status and
pods. Plain functions over plain dicts, time passed in; no Kubernetes API calls.

Names and fields follow the operator's CRD (``operator/src/crd``) and the contract of
issue 12: Service ``<c>-scheduler`` (8786 gRPC, 8787 HTTP), token Secret ``<c>-token`` key
``token``, Lease ``<c>-client``, label ``client.shoal.dev/<c>``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

GROUP = "shoal.dev"
API_VERSION = "shoal.dev/v1alpha1"
KIND = "ShoalCluster"
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
TOKEN_KEY = "token"
#: The operator's default bound of a worker pool (``spec.workers.maxReplicas``).
DEFAULT_MAX_REPLICAS = 100
#: ``spec.clientLease.durationSeconds`` bounds (the CRD's).
LEASE_MIN_SECONDS = 15
LEASE_MAX_SECONDS = 3600
#: ``spec.idleTimeout`` bounds (the CRD's).
IDLE_MIN_SECONDS = 10
IDLE_MAX_SECONDS = 31_536_000
#: Longest pod name the operator creates (a DNS label).
MAX_POD_NAME = 63
#: Marks the clusters this client created.
CREATED_BY_LABEL = "app.kubernetes.io/created-by"
CREATED_BY = "shoal.KubeCluster"
CLUSTER_LABEL = "shoal.dev/cluster"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")
#: Container waiting reasons that do not go away by waiting.
STUCK_REASONS = frozenset({
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
})
#: Of those, the ones the kubelet retries at each sync and that a busy node shows for a
#: moment (``CreateContainerConfigError: failed to sync secret cache: timed out waiting for
#: the condition`` while its informer starts): stuck only once they last RETRY_PATIENCE.
RETRIED_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
#: Seconds a retried reason must last before the start is given up.
RETRY_PATIENCE = 30.0


# ---- names --------------------------------------------------------------------------


def scheduler_service(cluster: str) -> str:
    return f"{cluster}-scheduler"


def scheduler_pod(cluster: str) -> str:
    return f"{cluster}-scheduler"


def token_secret(cluster: str) -> str:
    return f"{cluster}-token"


def lease_name(cluster: str) -> str:
    return f"{cluster}-client"


def client_label(cluster: str) -> str:
    """The label that lets a pod reach the cluster's scheduler through its NetworkPolicy."""
    return f"client.shoal.dev/{cluster}"


def service_host(cluster: str, namespace: str) -> str:
    return f"{scheduler_service(cluster)}.{namespace}.svc"


def default_name(user: str, suffix: str) -> str:
    """``shoal-<user>-<suffix>``, the user part cut to fit and made a DNS label."""
    clean = re.sub(r"[^a-z0-9-]+", "-", user.lower()).strip("-")[:16].strip("-")
    return f"shoal-{clean}-{suffix}" if clean else f"shoal-{suffix}"


def check_name(name: str, max_replicas: int = DEFAULT_MAX_REPLICAS) -> None:
    """Raises ValueError unless ``name`` is a DNS label short enough for every worker pod
    name the operator derives from it (``<c>-default-worker-<index>``, index up to twice
    ``max_replicas``)."""
    if not _NAME.match(name):
        raise ValueError(
            f"cluster name {name!r} is not a DNS label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    widest = f"{name}-default-worker-{max(1, max_replicas) * 2}"
    if len(widest) > MAX_POD_NAME:
        longest = MAX_POD_NAME - (len(widest) - len(name))
        raise ValueError(
            f"cluster name {name!r} is too long: its worker pods would be named like {widest!r} "
            f"({len(widest)} characters, over {MAX_POD_NAME}); use at most {longest} characters"
        )


def check_version(version: str) -> None:
    if not _VERSION.match(version):
        raise ValueError(f"version {version!r} is not a release version like 0.1.0 (never 'latest')")


# ---- the ShoalCluster ---------------------------------------------------------------


def build_spec(
    name: str,
    namespace: str,
    *,
    n_workers: int = 2,
    version: str,
    image: str | None = None,
    image_pull_policy: str | None = None,
    resources: dict | None = None,
    scheduler_resources: dict | None = None,
    cores: int | None = None,
    env: dict[str, str] | None = None,
    idle_timeout: int | None = None,
    lease_seconds: int | None = 60,
    owner: dict | None = None,
) -> dict:
    """The ShoalCluster manifest KubeCluster creates.

    ``resources`` / ``scheduler_resources`` are Kubernetes ResourceRequirements
    (``{"requests": {...}, "limits": {...}}``) of each worker / the scheduler. ``owner`` is
    an ownerReference (:func:`pod_owner_reference`) or None. Raises ValueError naming the
    bad argument.
    """
    if not isinstance(n_workers, int) or n_workers < 0:
        raise ValueError(f"n_workers must be a whole number >= 0, not {n_workers!r}")
    max_replicas = max(DEFAULT_MAX_REPLICAS, n_workers)
    check_name(name, max_replicas)
    check_version(version)
    if image is not None and (":" in image.rsplit("/", 1)[-1] or "@" in image):
        raise ValueError(f"image {image!r} must be a repository without a tag: the tag is always the version")
    if image_pull_policy not in (None, "IfNotPresent", "Always", "Never"):
        raise ValueError(f"image_pull_policy must be IfNotPresent, Always or Never, not {image_pull_policy!r}")
    if cores is not None and not (isinstance(cores, int) and 1 <= cores <= 1024):
        raise ValueError(f"cores must be a whole number from 1 to 1024, not {cores!r}")
    if idle_timeout is not None and not IDLE_MIN_SECONDS <= idle_timeout <= IDLE_MAX_SECONDS:
        raise ValueError(f"idle_timeout must be {IDLE_MIN_SECONDS}..{IDLE_MAX_SECONDS} seconds or None, not {idle_timeout!r}")
    if lease_seconds is not None and not LEASE_MIN_SECONDS <= lease_seconds <= LEASE_MAX_SECONDS:
        raise ValueError(
            f"lease_seconds must be {LEASE_MIN_SECONDS}..{LEASE_MAX_SECONDS} or None (no lease), not {lease_seconds!r}"
        )
    workers: dict = {"replicas": n_workers, "minReplicas": 0, "maxReplicas": max_replicas}
    if cores is not None:
        workers["cores"] = cores
    if resources:
        workers["resources"] = _resources(resources, "resources")
    if env:
        workers["env"] = {str(k): str(v) for k, v in env.items()}
    spec: dict = {"version": version, "workers": workers}
    if image:
        spec["image"] = image
    if image_pull_policy:
        spec["imagePullPolicy"] = image_pull_policy
    if scheduler_resources:
        spec["scheduler"] = {"resources": _resources(scheduler_resources, "scheduler_resources")}
    if idle_timeout is not None:
        spec["idleTimeout"] = int(idle_timeout)
    if lease_seconds is not None:
        spec["clientLease"] = {"durationSeconds": int(lease_seconds)}
    metadata: dict = {"name": name, "namespace": namespace, "labels": {CREATED_BY_LABEL: CREATED_BY}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _resources(value: dict, what: str) -> dict:
    if not isinstance(value, dict) or not value or set(value) - {"requests", "limits"}:
        raise ValueError(
            f"{what} must be Kubernetes resource requirements like "
            f"{{'requests': {{'cpu': '1', 'memory': '1Gi'}}, 'limits': {{'memory': '1Gi'}}}}, not {value!r}"
        )
    return {k: {str(r): str(q) for r, q in v.items()} for k, v in value.items()}


def scale_patch(workers: dict, n: int) -> dict:
    """The merge patch that sets the default pool to ``n`` workers by hand: autoscaling
    off, the bounds widened if ``n`` lies outside them (the CRD requires min <= replicas
    <= max)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"scale needs a whole number >= 0, not {n!r}")
    patch: dict = {"replicas": n, "autoscaling": {"enabled": False}}
    if n > workers.get("maxReplicas", DEFAULT_MAX_REPLICAS):
        patch["maxReplicas"] = n
    if n < workers.get("minReplicas", 0):
        patch["minReplicas"] = n
    return {"spec": {"workers": patch}}


def adapt_patch(workers: dict, minimum: int, maximum: int) -> dict:
    """The merge patch that lets the operator scale the default pool between ``minimum``
    and ``maximum`` from the scheduler's estimate; ``replicas`` is moved inside the bounds
    so the CRD's rule holds."""
    if not (isinstance(minimum, int) and isinstance(maximum, int)) or not 0 <= minimum <= maximum:
        raise ValueError(f"adapt needs 0 <= minimum <= maximum, not minimum={minimum!r} maximum={maximum!r}")
    replicas = min(max(workers.get("replicas", minimum), minimum), maximum)
    return {
        "spec": {
            "workers": {
                "autoscaling": {"enabled": True},
                "minReplicas": minimum,
                "maxReplicas": maximum,
                "replicas": replicas,
            }
        }
    }


# ---- owner references, labels -------------------------------------------------------


def pod_owner_reference(pod: dict) -> dict:
    """The ownerReference from a ShoalCluster to the notebook pod that created it: deleting
    the pod deletes the cluster. Neither controller nor blocking (no extra RBAC)."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }


def cluster_owner_reference(cluster: dict) -> dict:
    """The ownerReference from the client Lease to its ShoalCluster (collected with it)."""
    meta = cluster["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }


def client_label_patch(cluster: str, on: bool = True) -> dict:
    """The merge patch that adds (or removes) the cluster's client label on a pod."""
    return {"metadata": {"labels": {client_label(cluster): "true" if on else None}}}


# ---- the client Lease ---------------------------------------------------------------


def holder_identity(hostname: str, pid: int) -> str:
    """Who renews the lease: ``<hostname>/<pid>`` (the pod name inside a pod)."""
    return f"{hostname}/{pid}"


def micro_time(when: dt.datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> dt.datetime | None:
    """A Kubernetes Time or MicroTime, or None."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_manifest(cluster: dict, holder: str, duration: int, now: dt.datetime) -> dict:
    """The Lease ``<c>-client`` that says this client is alive, owned by the cluster."""
    meta = cluster["metadata"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {CLUSTER_LABEL: meta["name"]},
            "ownerReferences": [cluster_owner_reference(cluster)],
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": int(duration),
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        },
    }


def lease_renewal(holder: str, duration: int, now: dt.datetime, current_holder: str | None) -> dict:
    """The merge patch of one renewal; a new holder (``from_name(..., lease=True)``) also
    resets ``acquireTime`` and counts a transition."""
    spec: dict = {"holderIdentity": holder, "leaseDurationSeconds": int(duration), "renewTime": micro_time(now)}
    if current_holder != holder:
        spec["acquireTime"] = micro_time(now)
    return {"spec": spec}


# ---- version, status, failures ------------------------------------------------------


def version_mismatch(client_version: str, cluster_version: str | None, cluster: str, namespace: str) -> str | None:
    """Why this client may not use the cluster (its status.version differs), with the fix;
    None when the versions agree or the cluster has not reported one yet."""
    if not cluster_version or cluster_version == client_version:
        return None
    return (
        f"ShoalCluster {cluster!r} in namespace {namespace!r} runs shoal {cluster_version}, but this "
        f"client is shoal {client_version}; the scheduler accepts only its own version. Fix: create "
        f"the cluster with KubeCluster(version={client_version!r}) (the default), or install the "
        f"cluster's version here: pip install shoal=={cluster_version}"
    )


def condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


#: Conditions that are bad when True (the others are bad when False).
_BAD_WHEN_TRUE = frozenset({"VersionSkew", "WorkersOOMKilled", "SchedulerOOMKilled"})


def failing(c: dict) -> bool:
    """Whether a status condition reports a problem."""
    bad = "True" if c.get("type") in _BAD_WHEN_TRUE else "False"
    return c.get("status") == bad


def status_message(status: dict) -> str:
    """The cluster's own account of why it is not ready: its failing conditions' messages."""
    parts = []
    for c in status.get("conditions") or []:
        if failing(c) and c.get("type") != "Ready" and c.get("message"):
            parts.append(f"{c['type']}: {c['message']}")
    ready = condition(status, "Ready")
    if not parts and ready and ready.get("message"):
        parts.append(f"Ready: {ready['message']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class StartFailure:
    """Why a start cannot succeed: the pod at fault (or "" for the cluster), the reason
    (e.g. ``CrashLoopBackOff``) and the message Kubernetes gave."""

    pod: str
    reason: str
    message: str


#: Seconds a cluster may stay Degraded with a failed apply before its start is given up.
APPLY_PATIENCE = 30.0


def startup_failure(
    cluster: dict,
    pods: list[dict],
    degraded_for: float = 0.0,
    waiting_since: dict | None = None,
    now: float = 0.0,
) -> StartFailure | None:
    """The failure that waiting will not fix, scheduler pod first; None while the start
    may still succeed. ``degraded_for``: seconds the cluster has been Degraded with its
    ``Applied`` condition False (the operator cannot create its objects, e.g. RBAC).
    ``waiting_since``: the caller's ``{(pod, container, reason): time first seen}`` across
    polls, which this records into; a reason of ``RETRIED_REASONS`` is a failure only once
    seen for ``RETRY_PATIENCE`` seconds up to ``now`` (without it, at once)."""
    status = cluster.get("status") or {}
    if status.get("phase") == "Failed":
        return StartFailure("", "Failed", status_message(status) or "the operator marked the cluster Failed")
    applied = condition(status, "Applied")
    if degraded_for >= APPLY_PATIENCE and applied and failing(applied):
        return StartFailure("", "ApplyFailed", applied.get("message") or "the operator could not apply the cluster's objects")
    name = cluster["metadata"]["name"]
    ordered = sorted(pods, key=lambda p: p["metadata"]["name"] != scheduler_pod(name))
    for pod in ordered:
        pod_status = pod.get("status") or {}
        pod_name = pod["metadata"]["name"]
        if pod_status.get("phase") == "Failed" and not pod["metadata"].get("deletionTimestamp"):
            return StartFailure(pod_name, pod_status.get("reason") or "Failed", pod_status.get("message") or "the pod failed")
        for cs in (pod_status.get("initContainerStatuses") or []) + (pod_status.get("containerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            if reason in STUCK_REASONS:
                if reason in RETRIED_REASONS and waiting_since is not None:
                    first = waiting_since.setdefault((pod_name, cs.get("name"), reason), now)
                    if now - first < RETRY_PATIENCE:
                        continue
                message = waiting.get("message") or ""
                last = ((cs.get("lastState") or {}).get("terminated")) or {}
                if reason == "CrashLoopBackOff" and last:
                    message = (
                        f"container {cs.get('name')!r} exited with code {last.get('exitCode')} "
                        f"({last.get('reason', 'Error')}); {message}"
                    ).rstrip("; ")
                return StartFailure(pod_name, reason, message or f"container {cs.get('name')!r} is {reason}")
    return None


def failure_fix(reason: str, image: str) -> str:
    """What to do about a failed start of this kind."""
    if reason in ("ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"):
        return (
            f"make the image {image} available to the nodes (or pass image=/version= naming one that is); "
            "with imagePullPolicy Never it must already be on the node"
        )
    if reason == "CrashLoopBackOff":
        return "read the log tail below; a wrong version, resources too small or a bad env setting are the usual causes"
    if reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
        return "check the pod's Events below (a missing Secret or ConfigMap, or a bad security setting)"
    if reason == "Failed":
        return "correct the spec (see the cluster's Valid condition: kubectl describe shoalcluster)"
    if reason == "ApplyFailed":
        return (
            "the operator cannot create the cluster's objects (see the cause); if it is Forbidden, the "
            "operator's RBAC (its chart) lacks that permission: upgrade the chart or ask your admin"
        )
    return "see the Events and log tail below"


def progress_line(cluster: dict) -> str:
    """One line on where a start is: phase, scheduler, workers ready of wanted."""
    status = cluster.get("status") or {}
    phase = status.get("phase") or "Pending"
    sched = condition(status, "SchedulerReady")
    sched_text = "scheduler ready" if sched and sched.get("status") == "True" else "scheduler starting"
    wanted = status.get("desiredWorkers", (cluster.get("spec") or {}).get("workers", {}).get("replicas", 0))
    return f"{phase} | {sched_text} | workers {status.get('readyWorkers', 0)}/{wanted}"
