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

    ``kind`` is the runtime's short cause ("WorkerLost", "ExecutorCrashed", "MemoryLimit",
    "Unsupported", "Cancelled", or an exception type name).
    """

    def __init__(self, key: str, kind: str, message: str, worker: str = "", detail: str = ""):
        self.key = key
        self.kind = kind
        self.message = message
        self.worker = worker
        self.detail = detail
        where = f" on worker {worker!r}" if worker else ""
        super().__init__(f"task {key!r} failed{where} ({kind}): {message}")


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
        err = TaskError(key, kind, message, worker, detail)
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


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note`` (Python 3.11+); on 3.10 the note is kept in ``__notes__`` only."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]
