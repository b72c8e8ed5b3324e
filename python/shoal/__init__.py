"""Shoal's Python client: ``Client`` (submit, map, gather, scatter, the Dask scheduler
hook), ``LocalCluster`` (a scheduler and workers on this machine), futures helpers and
``progress``. The worker-side task runner is ``python -m shoal.executor``.

``__version__`` must equal the Rust workspace version: the scheduler refuses other
versions at the handshake.
"""

from shoal.client import Client, __version__
from shoal.cluster import LocalCluster
from shoal.errors import (
    AuthenticationError,
    CancelledError,
    ConnectionLostError,
    SchedulerError,
    ShoalError,
    TaskError,
    VersionMismatchError,
)
from shoal.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, as_completed, wait
from shoal.progress import progress

__all__ = [
    "ALL_COMPLETED",
    "AuthenticationError",
    "CancelledError",
    "Client",
    "ConnectionLostError",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Future",
    "LocalCluster",
    "SchedulerError",
    "ShoalError",
    "TaskError",
    "VersionMismatchError",
    "__version__",
    "as_completed",
    "progress",
    "wait",
]
