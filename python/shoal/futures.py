"""Futures of Shoal tasks, and ``wait`` / ``as_completed`` over them.

A :class:`Future` is a handle on one key the client wants: its state lives in the client
(every Future of a key shares it), and the key is released (batched, in the background)
when its last Future is garbage collected. Futures travel inside Dask graphs
(``__dask_future__``) but not inside pickled task arguments: pass them to ``submit``/``map``
at the top level or directly inside a list, tuple or dict argument.

When Dask is installed, Future subclasses ``dask._task_spec.TaskRef`` (as distributed's
Future does), so Dask graph nodes taking a Future as an argument depend on its key.

Not here: talking to the scheduler (``client.py``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from shoal.client import Client

try:
    from dask._task_spec import TaskRef as _Base
except ImportError:  # Dask is optional

    class _Base:  # type: ignore[no-redef]
        __slots__ = ("key",)


_refs = threading.local()


class pickled_as_refs:
    """Within this context (in this thread) Futures pickle as ``TaskRef(key)``: used when
    Dask graph nodes holding Futures are pickled into tasks."""

    def __enter__(self) -> None:
        _refs.on = True

    def __exit__(self, *exc) -> None:
        _refs.on = False

FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"


class Future(_Base):
    """The eventual result of one task (one key) of a Shoal cluster."""

    __slots__ = ("client", "_held", "__weakref__")
    # Dask treats objects with this attribute and a ``key`` as futures inside graphs.
    __dask_future__ = True

    def __init__(self, key: str, client: Client) -> None:
        """Another Future for a key ``client`` already holds (raises ``KeyError`` if not)."""
        client._hold([key])
        self.key = key
        self.client = client
        self._held = True

    @classmethod
    def _adopt(cls, key: str, client: Client) -> Future:
        """A Future for a key the client already counted a reference for."""
        f = cls.__new__(cls)
        f.key = key
        f.client = client
        f._held = True
        return f

    def __del__(self) -> None:
        try:
            if self._held:
                self.client._drop(self.key)
        except Exception:  # noqa: BLE001 - interpreter shutdown, half-built object
            pass

    @property
    def status(self) -> str:
        """``"pending"``, ``"finished"``, ``"error"`` or ``"cancelled"``."""
        return self.client._status(self.key)

    def done(self) -> bool:
        return self.status != "pending"

    def result(self, timeout: float | None = None) -> Any:
        """Waits for the task and returns its value; raises the task's exception (with its
        original type) if it failed, ``TimeoutError`` if ``timeout`` seconds pass first."""
        return self.client.gather(self, timeout=timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Waits for the task; returns its exception, or ``None`` if it succeeded."""
        if not self.client._wait([self.key], timeout, ALL_COMPLETED):
            raise TimeoutError(f"task {self.key!r} did not finish within {timeout} s")
        return self.client._exception(self.key)

    def cancel(self) -> None:
        """Cancels the task if it has not finished (unless other clients want it too)."""
        self.client.cancel([self])

    def cancelled(self) -> bool:
        return self.status == "cancelled"

    def add_done_callback(self, fn) -> None:
        """Calls ``fn(future)`` once the task finished, failed or was cancelled (at once if
        it already did; otherwise from the client's event thread)."""
        self.client._add_callback(self, fn)

    def release(self) -> None:
        """Drops this Future's hold on the key now instead of at garbage collection; the
        Future must not be used afterwards."""
        if self._held:
            self._held = False
            self.client._drop(self.key)

    def __dask_tokenize__(self):
        return ("shoal.Future", self.key)

    def __reduce__(self):
        if getattr(_refs, "on", False):
            from dask._task_spec import TaskRef

            return (TaskRef, (self.key,))
        raise TypeError(
            f"a shoal Future (key {self.key!r}) cannot be pickled into a task argument; pass "
            "it to submit()/map() at the top level or directly inside a list, tuple or dict "
            "argument, or call .result() first"
        )

    def __repr__(self) -> str:
        return f"<shoal.Future: {self.status}, key: {self.key}>"

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Future) and other.key == self.key and other.client is self.client


class DoneAndNotDone(NamedTuple):
    done: set
    not_done: set


def _futures_of(futures: Future | Iterable[Future]) -> list[Future]:
    if isinstance(futures, Future):
        return [futures]
    if isinstance(futures, dict):
        return list(futures.values())
    out = list(futures)
    for f in out:
        if not isinstance(f, Future):
            raise TypeError(f"expected shoal Futures, got {type(f).__name__}: {f!r}")
    return out


def wait(futures, timeout: float | None = None, return_when: str = ALL_COMPLETED) -> DoneAndNotDone:
    """Waits until all (``ALL_COMPLETED``), any (``FIRST_COMPLETED``) of the futures are
    done, or any failed (``FIRST_EXCEPTION``). Returns ``(done, not_done)`` sets; raises
    ``TimeoutError`` when ``return_when=ALL_COMPLETED`` and ``timeout`` passes first."""
    fs = _futures_of(futures)
    if return_when not in (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION):
        raise ValueError(f"return_when must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, not {return_when!r}")
    by_client: dict[int, list[Future]] = {}
    for f in fs:
        by_client.setdefault(id(f.client), []).append(f)
    deadline = None if timeout is None else time.monotonic() + timeout
    for group in by_client.values():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        finished = group[0].client._wait([f.key for f in group], left, return_when)
        if return_when != ALL_COMPLETED and any(f.done() for f in fs):
            break
        if not finished and return_when == ALL_COMPLETED:
            pending = [f.key for f in group if not f.done()]
            raise TimeoutError(
                f"{len(pending)} of {len(fs)} tasks did not finish within {timeout} s "
                f"(first: {pending[0]!r})"
            )
    done = {f for f in fs if f.done()}
    return DoneAndNotDone(done, set(fs) - done)


class as_completed(Iterator):  # named like dask's and concurrent.futures'
    """Iterates over futures in the order they complete. ``with_results=True`` yields
    ``(future, result)`` pairs (raising a failed task's exception when it comes up).
    More futures can be added while iterating with ``add``."""

    def __init__(self, futures=(), with_results: bool = False, timeout: float | None = None) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self.with_results = with_results
        self._deadline = None if timeout is None else time.monotonic() + timeout
        for f in _futures_of(futures):
            self.add(f)

    def add(self, future: Future) -> None:
        with self._lock:
            self._pending += 1
        future.add_done_callback(self._queue.put)

    def update(self, futures) -> None:
        for f in _futures_of(futures):
            self.add(f)

    def count(self) -> int:
        """Futures not yielded yet."""
        return self._pending

    def __next__(self):
        with self._lock:
            if self._pending == 0:
                raise StopIteration
        left = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        try:
            future = self._queue.get(timeout=left)
        except queue.Empty:
            raise TimeoutError(f"{self._pending} futures did not complete within the timeout") from None
        with self._lock:
            self._pending -= 1
        if self.with_results:
            return future, future.result()
        return future

    def __iter__(self):
        return self
