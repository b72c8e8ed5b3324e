"""``shoal.KubeCluster``: a Shoal cluster on Kubernetes for one notebook or script, created
through the API server as a ShoalCluster object and run by the Shoal operator.

Modules, one job each: ``spec`` (pure: the manifest, patches, owner references, the lease
object, the version check, reading a failed start), ``api`` (kr8s calls), ``forward``
(a supervised port-forward from outside the cluster), ``lease`` (the keeper thread and its
pure timing), ``links`` (dashboard link forms, figures, reprs), ``progress`` (the start
display), ``cluster`` (the ``KubeCluster`` class), ``errors``.

Needs the ``kube`` extra (``pip install 'shoal[kube]'``, i.e. kr8s) only when a cluster
is created or connected to; the pure modules import without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "KubeCluster": "shoal.kube.cluster",
    "KubeClusterError": "shoal.kube.errors",
    "ClusterStartError": "shoal.kube.errors",
    "ClusterNotFoundError": "shoal.kube.errors",
    "ClusterVersionError": "shoal.kube.errors",
    "KubePermissionError": "shoal.kube.errors",
    "KubeAPIError": "shoal.kube.errors",
    "build_spec": "shoal.kube.spec",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from shoal.kube.cluster import KubeCluster  # noqa: F401
    from shoal.kube.errors import (  # noqa: F401
        ClusterNotFoundError,
        ClusterStartError,
        ClusterVersionError,
        KubeAPIError,
        KubeClusterError,
        KubePermissionError,
    )
    from shoal.kube.spec import build_spec  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal.kube' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
