"""Kubernetes API access for KubeCluster, through kr8s's synchronous API: the ShoalCluster,
its token Secret, its pods, their logs and Events, the client Lease and the notebook's own
pod. Every call returns plain dicts and turns the API's refusals into
:mod:`shoal.kube.errors` naming the verb and resource missing (403), or None for a missing
object where that is an answer (404).

Credentials: a kubeconfig (``$KUBECONFIG``, ``~/.kube/config``) or, in a pod, the service
account (kr8s finds either). Not here: port-forwards (``forward.py``), what to send
(``spec.py``).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from shoal.kube import spec as S
from shoal.kube.errors import ClusterNotFoundError, KubeAPIError, KubePermissionError

try:
    import httpx
    import kr8s
    from kr8s.objects import Event, Pod, Secret, new_class
except ImportError as e:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "shoal.KubeCluster needs the Kubernetes client library kr8s: pip install 'shoal[kube]'"
    ) from e

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

ShoalCluster = new_class(
    "ShoalCluster", version=S.API_VERSION, asyncio=False, namespaced=True, plural="shoalclusters"
)
Lease = new_class("Lease", version="coordination.k8s.io/v1", asyncio=False, namespaced=True, plural="leases")


def in_pod(env=os.environ, account: Path = SERVICE_ACCOUNT) -> bool:
    """Whether this process runs in a pod with in-cluster credentials."""
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and (account / "token").exists()


def own_namespace(account: Path = SERVICE_ACCOUNT) -> str | None:
    try:
        return (account / "namespace").read_text().strip() or None
    except OSError:
        return None


class KubeApi:
    """The calls KubeCluster makes, in one namespace."""

    def __init__(self, namespace: str | None = None, cluster: str = "") -> None:
        self.cluster = cluster
        try:
            self.api = kr8s.api()
        except Exception as e:  # noqa: BLE001 - no credentials, unreadable kubeconfig
            raise KubeAPIError(
                "cannot reach the Kubernetes API: no usable credentials",
                cluster=cluster, namespace=namespace or "",
                cause=str(e) or type(e).__name__,
                fix="set KUBECONFIG to a kubeconfig (or run in a pod with a service account token mounted)",
            ) from None
        self.namespace = namespace or self.api.namespace or "default"

    # ---- errors -----------------------------------------------------------------------

    def _run(self, fn, verb: str, resource: str, group: str = "", name: str = "", missing_ok: bool = False):
        """Runs one API call: ``(True, result)``, or ``(False, None)`` for a missing object
        when ``missing_ok``. A dropped connection is retried (twice, not for create); 403 →
        KubePermissionError, a missing cluster → ClusterNotFoundError, others → KubeAPIError."""
        what = f"{resource}.{group}" if group else resource
        target = f"{what} {name!r}" if name else what
        attempts = 1 if verb == "create" else 3
        for attempt in range(attempts):
            try:
                return True, fn()
            except kr8s.NotFoundError:
                code, error = 404, None
            except kr8s.ServerError as e:
                code, error = (e.response.status_code if e.response is not None else None), e
            except (httpx.TransportError, kr8s.APITimeoutError, OSError) as e:
                if attempt + 1 < attempts:
                    continue
                raise KubeAPIError(
                    f"the Kubernetes API did not answer ({verb} {target})",
                    cluster=self.cluster, namespace=self.namespace, cause=str(e) or type(e).__name__,
                    fix="check that the API server is reachable (kubectl get pods works)",
                ) from None
            if code == 404:
                if missing_ok:
                    return False, None
                if resource == "shoalclusters":
                    raise ClusterNotFoundError(
                        f"no ShoalCluster named {name!r}", cluster=self.cluster, namespace=self.namespace,
                        fix="it was deleted (kubectl get events says why); create a new one",
                    ) from None
            if code == 403:
                raise KubePermissionError(
                    f"the Kubernetes API refused to {verb} {target}",
                    verb=verb, resource=resource, group=group, cluster=self.cluster, namespace=self.namespace,
                    cause=str(error),
                    fix=(
                        f"grant {verb} on {what} in namespace {self.namespace} to this identity (the chart's "
                        "notebook-user Role has what KubeCluster needs: bind it to the notebook's service account)"
                    ),
                ) from None
            raise KubeAPIError(
                f"the Kubernetes API failed to {verb} {target}",
                status=code, cluster=self.cluster, namespace=self.namespace, cause=f"{code}: {error}",
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _obj(self, cls, name: str):
        return cls({"metadata": {"name": name, "namespace": self.namespace}}, api=self.api)

    def _get(self, cls, name: str, resource: str, group: str = "") -> dict | None:
        obj = self._obj(cls, name)
        found, _ = self._run(obj.refresh, "get", resource, group, name, missing_ok=True)
        return obj.raw.to_dict() if found else None

    # ---- the ShoalCluster -------------------------------------------------------------

    def create_cluster(self, manifest: dict) -> dict:
        obj = ShoalCluster(manifest, api=self.api)
        self._run(obj.create, "create", "shoalclusters", S.GROUP, manifest["metadata"]["name"])
        return obj.raw.to_dict()

    def get_cluster(self, name: str) -> dict | None:
        return self._get(ShoalCluster, name, "shoalclusters", S.GROUP)

    def patch_cluster(self, name: str, patch: dict) -> dict:
        obj = self._obj(ShoalCluster, name)
        self._run(lambda: obj.patch(patch), "patch", "shoalclusters", S.GROUP, name)
        return obj.raw.to_dict()

    def delete_cluster(self, name: str) -> bool:
        """Deletes the cluster (its pods go with it); False if it was already gone."""
        obj = self._obj(ShoalCluster, name)
        found, _ = self._run(
            lambda: obj.delete(propagation_policy="Background"), "delete", "shoalclusters", S.GROUP, name,
            missing_ok=True,
        )
        return found

    # ---- secrets, pods, logs, events -------------------------------------------------

    def read_token(self, secret: str) -> str | None:
        raw = self._get(Secret, secret, "secrets")
        value = ((raw or {}).get("data") or {}).get(S.TOKEN_KEY)
        return base64.b64decode(value).decode().strip() if value else None

    def cluster_pods(self, cluster: str) -> list[dict]:
        selector = f"{S.CLUSTER_LABEL}={cluster}"
        _, pods = self._run(
            lambda: [p.raw.to_dict() for p in self.api.get(Pod, namespace=self.namespace, label_selector=selector)],
            "list", "pods",
        )
        return pods

    def get_pod(self, name: str) -> dict | None:
        return self._get(Pod, name, "pods")

    def patch_pod(self, name: str, patch: dict) -> None:
        obj = self._obj(Pod, name)
        self._run(lambda: obj.patch(patch), "patch", "pods", "", name)

    def pod_logs(self, name: str, tail: int | None = None, previous: bool = False) -> str:
        """The pod's (first container's) log, the last ``tail`` lines; "" if it has none."""
        obj = self._obj(Pod, name)
        _, lines = self._run(
            lambda: list(obj.logs(tail_lines=tail, previous=previous, timeout=30)), "get", "pods/log", "", name,
            missing_ok=True,
        )
        return "\n".join(lines or [])

    def events(self, name: str, kind: str | None = None) -> list[dict]:
        """Events about the object ``name`` (of ``kind`` if given), oldest first."""
        selector = f"involvedObject.name={name}" + (f",involvedObject.kind={kind}" if kind else "")
        _, found = self._run(
            lambda: [e.raw.to_dict() for e in self.api.get(Event, namespace=self.namespace, field_selector=selector)],
            "list", "events",
        )
        return sorted(found, key=_event_time)

    # ---- the client lease -------------------------------------------------------------

    def get_lease(self, name: str) -> dict | None:
        return self._get(Lease, name, "leases", "coordination.k8s.io")

    def create_lease(self, manifest: dict) -> None:
        obj = Lease(manifest, api=self.api)
        self._run(obj.create, "create", "leases", "coordination.k8s.io", manifest["metadata"]["name"])

    def patch_lease(self, name: str, patch: dict) -> bool:
        """Patches the Lease; False if it does not exist."""
        obj = self._obj(Lease, name)
        found, _ = self._run(lambda: obj.patch(patch), "patch", "leases", "coordination.k8s.io", name, missing_ok=True)
        return found


def _event_time(event: dict) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp") or ""
