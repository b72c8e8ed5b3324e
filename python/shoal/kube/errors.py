"""Errors of :class:`shoal.KubeCluster`: each names the cluster and namespace, and where it
knows them the pod, the cause and the fix.

Not here: the client's own errors (``shoal.errors``), deciding that a start failed
(``spec.startup_failure``).
"""

from __future__ import annotations

from shoal.errors import ShoalError


class KubeClusterError(ShoalError):
    """A ShoalCluster could not be created, reached or used.

    ``cluster``, ``namespace``, ``pod``, ``cause`` and ``fix`` are the parts of the message
    (``pod``, ``cause`` and ``fix`` may be empty); ``details`` holds longer evidence
    (Events, log tails) printed after them.
    """

    def __init__(
        self,
        message: str,
        *,
        cluster: str = "",
        namespace: str = "",
        pod: str = "",
        cause: str = "",
        fix: str = "",
        details: str = "",
    ) -> None:
        self.message = message
        self.cluster = cluster
        self.namespace = namespace
        self.pod = pod
        self.cause = cause
        self.fix = fix
        self.details = details
        super().__init__(_format(message, cluster, namespace, pod, cause, fix, details))


def _format(message: str, cluster: str, namespace: str, pod: str, cause: str, fix: str, details: str) -> str:
    lines = [message]
    if cluster:
        lines.append(f"  cluster:   {cluster} (namespace {namespace or '?'})")
    if pod:
        lines.append(f"  pod:       {pod}")
    if cause:
        lines.append(f"  cause:     {cause}")
    if fix:
        lines.append(f"  fix:       {fix}")
    if details:
        lines.append(details.rstrip())
    return "\n".join(lines)


class ClusterStartError(KubeClusterError):
    """The cluster did not reach phase Running: it failed, its pods cannot start, or the
    timeout passed. ``details`` has the cluster's status, the failing pod's Events and its
    log tail."""


class ClusterNotFoundError(KubeClusterError):
    """No ShoalCluster of that name exists (never created, or deleted: by ``close()``, its
    idle timeout, an expired client lease or someone else)."""


class ClusterVersionError(KubeClusterError):
    """The cluster runs another Shoal version than this client; the scheduler would refuse
    the client, so it is refused here with both versions and the fix."""


class KubePermissionError(KubeClusterError):
    """The Kubernetes API refused a call (403): ``verb``, ``resource`` and ``group`` name
    the permission missing."""

    def __init__(self, message: str, *, verb: str, resource: str, group: str = "", **parts) -> None:
        self.verb = verb
        self.resource = resource
        self.group = group
        super().__init__(message, **parts)


class KubeAPIError(KubeClusterError):
    """The Kubernetes API could not be reached or answered with an error (``status``: the
    HTTP status, None when there was no answer)."""

    def __init__(self, message: str, *, status: int | None = None, **parts) -> None:
        self.status = status
        super().__init__(message, **parts)
