"""Shoal's Python client: ``Client`` (submit, map, gather, scatter, the Dask scheduler
hook), ``LocalCluster`` (a scheduler and workers on this machine), ``KubeCluster`` (a
cluster on Kubernetes through the Shoal operator; needs the ``kube`` extra), futures
helpers and ``progress``. The worker-side task runner is ``python -m shoal.executor``.

``__version__`` must equal the Rust workspace version: the scheduler refuses other
versions at the handshake.

Names are imported on first use, so the executor processes inside workers (which need
none of the client) start without loading gRPC or Dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "shoal.client",
    "LocalCluster": "shoal.cluster",
    "KubeCluster": "shoal.kube.cluster",
    "AuthenticationError": "shoal.errors",
    "CancelledError": "shoal.errors",
    "ConnectionLostError": "shoal.errors",
    "SchedulerError": "shoal.errors",
    "ShoalError": "shoal.errors",
    "TaskError": "shoal.errors",
    "MemoryLimitError": "shoal.errors",
    "WorkerLostError": "shoal.errors",
    "WorkerOOMError": "shoal.errors",
    "VersionMismatchError": "shoal.errors",
    "ALL_COMPLETED": "shoal.futures",
    "FIRST_COMPLETED": "shoal.futures",
    "FIRST_EXCEPTION": "shoal.futures",
    "Future": "shoal.futures",
    "as_completed": "shoal.futures",
    "wait": "shoal.futures",
    "progress": "shoal.progress",
    "performance_report": "shoal.diagnostics",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from shoal.client import Client
    from shoal.cluster import LocalCluster
    from shoal.diagnostics import performance_report
    from shoal.errors import (
        AuthenticationError,
        CancelledError,
        ConnectionLostError,
        MemoryLimitError,
        SchedulerError,
        ShoalError,
        TaskError,
        VersionMismatchError,
        WorkerLostError,
        WorkerOOMError,
    )
    from shoal.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, as_completed, wait
    from shoal.kube.cluster import KubeCluster
    from shoal.progress import progress


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
