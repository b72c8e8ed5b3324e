"""Exceptions of the Shoal client, and the rebuilding of a task's remote exception.

A task that raised is re-raised with its original type and message, with notes naming the
task key, the worker and (for a task whose dependency failed) the failed dependency, plus
the remote traceback. When the exception cannot be rebuilt (it was not picklable, or its
class is not importable here), :class:`TaskError` carries what the runtime knows.

Not here: deciding when a task failed (``client.py`` tracks events).
"""

from __future__ import annotations

import concurrent.futures
import pickle

import grpc


class ShoalError(Exception):
    """Base class of the errors raised by the Shoal client."""


class SchedulerError(ShoalError):
    """The scheduler refused a call or could not be reached."""

    def __init__(self, call: str, address: str, code: grpc.StatusCode | None, message: str):
        self.call = call
        self.address = address
        self.code = code
        self.message = message
        code_name = code.name if code is not None else "UNKNOWN"
        super().__init__(f"{call} refused by the scheduler at {address} ({code_name}): {message}")


class VersionMismatchError(SchedulerError):
    """The scheduler runs another Shoal version; its message says which and how to fix it."""


class AuthenticationError(SchedulerError):
    """The scheduler refused the auth token (or none was given)."""


class ConnectionLostError(ShoalError):
    """The connection to the scheduler ended while results were awaited."""


class TaskError(ShoalError):
    """A task failed and its own exception could not be re-raised.

    ``kind`` is the runtime's short cause ("WorkerLost", "WorkerOOMKilled",
    "ExecutorCrashed", "MemoryLimit", "Unsupported", "Cancelled", or an exception type
    name); the first three have their own subclasses.
    """

    def __init__(self, key: str, kind: str, message: str, worker: str = "", detail: str = ""):
        self.key = key
        self.kind = kind
        self.message = message
        self.worker = worker
        self.detail = detail
        where = f" on worker {worker!r}" if worker else ""
        super().__init__(f"task {key!r} failed{where} ({kind}): {message}")


class WorkerLostError(TaskError):
    """A task lost its worker more often than it may be retried.

    ``losses`` lists each loss as ``(worker, cause, memory_limit, detail)``, ``cause``
    being ``"OOMKilled"``, ``"Crashed"``, ``"Removed"`` or ``"Unknown"``.
    """

    def __init__(self, key: str, kind: str, message: str, worker: str = "", detail: str = "", losses=()):
        super().__init__(key, kind, message, worker, detail)
        self.losses = list(losses)


class WorkerOOMError(WorkerLostError):
    """A task was running on workers the kernel OOM-killed (their pods ran out of memory).

    ``pods`` are the OOM-killed workers' pod names, ``limit`` their memory limit in bytes
    (0 when unknown), ``advice`` what to change.
    """

    advice = (
        "raise the worker group's memory limit (resources.limits.memory, or set oomPolicy) "
        "or make the task's chunks or partitions smaller"
    )

    def __init__(self, key: str, kind: str, message: str, worker: str = "", detail: str = "", losses=()):
        super().__init__(key, kind, message, worker, detail, losses)
        oom = [loss for loss in self.losses if loss[1] == "OOMKilled"]
        self.pods = [loss[0] for loss in oom]
        self.limit = max((loss[2] for loss in oom), default=0)


class MemoryLimitError(TaskError):
    """The worker stopped the task before the kernel could OOM-kill it: its pod's memory
    passed the terminate threshold. ``used``, ``limit`` and ``task_used`` are bytes,
    ``threshold`` the fraction of the limit."""

    def __init__(self, key: str, kind: str, message: str, worker: str = "", detail: str = "", memory=None):
        super().__init__(key, kind, message, worker, detail)
        self.used = memory.used if memory is not None else 0
        self.limit = memory.limit if memory is not None else 0
        self.threshold = memory.threshold if memory is not None else 0.0
        self.task_used = memory.task_used if memory is not None else 0


_LOSS_CAUSES = {0: "Unknown", 1: "OOMKilled", 2: "Crashed", 3: "Removed"}


class CancelledError(TaskError, concurrent.futures.CancelledError):
    """The task was cancelled (by this client, or its computation was cancelled)."""


def rebuild(key: str, error) -> BaseException:
    """The exception to raise for a failed task, from its ``shoal.v1.TaskError``.

    A fresh object each call, so notes never accumulate across raises.
    """
    kind, message, worker, detail = error.kind, error.message, error.worker, error.detail
    if kind == "Cancelled":
        return CancelledError(key, kind, message, worker, detail)
    exc = None
    if error.exception:
        try:
            exc = pickle.loads(error.exception)
        except Exception:  # noqa: BLE001 - a class missing here falls back to TaskError
            exc = None
        if not isinstance(exc, BaseException):
            exc = None
    if exc is None:
        err = _runtime_error(key, error)
        if detail:
            add_note(err, f"Remote traceback:\n{detail.rstrip()}")
        return err
    where = f" on worker {worker!r}" if worker else ""
    note = f"shoal: task {key!r} failed{where}"
    if message.startswith("dependency "):
        # The scheduler's message names the failed dependency: 'dependency "x" failed: ...'.
        note += f"; {message}"
    add_note(exc, note)
    if detail:
        add_note(exc, f"Remote traceback:\n{detail.rstrip()}")
    return exc


def _runtime_error(key: str, error) -> TaskError:
    """The :class:`TaskError` (or subclass) for a failure the runtime itself reported."""
    kind, message, worker, detail = error.kind, error.message, error.worker, error.detail
    if kind in ("WorkerLost", "WorkerOOMKilled"):
        losses = [(x.worker, _LOSS_CAUSES.get(x.cause, "Unknown"), x.memory_limit, x.detail) for x in error.losses]
        cls = WorkerOOMError if kind == "WorkerOOMKilled" else WorkerLostError
        return cls(key, kind, message, worker, detail, losses)
    if kind == "MemoryLimit":
        memory = error.memory if error.HasField("memory") else None
        return MemoryLimitError(key, kind, message, worker, detail, memory)
    return TaskError(key, kind, message, worker, detail)


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note`` (Python 3.11+); on 3.10 the note is kept in ``__notes__`` only."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]
