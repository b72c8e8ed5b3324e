"""``python -m shoal.executor``: runs Python tasks for a Shoal worker.

The worker starts one such process per core and speaks to it over stdin (requests) and
stdout (replies): frames of a 4-byte little-endian length and one protobuf message
(``shoal.v1.ExecutorRequest`` / ``ExecutorReply``, proto/shoal/v1/executor.proto). Tasks run
in the order sent and each reply is written as soon as its task ends. ``print`` output of
tasks goes to stderr (the worker's log), never into the frame stream.

Results with large buffers (numpy arrays, pandas blocks, Arrow buffers) stay *live* here:
the reply says so (``live``, with the size the value would take in the store) and the
tasks this executor runs next read the object itself, as Dask's threads do. Only when
another process must read one (another executor, a peer, the client, or the worker
spilling it) does the worker ask (``ExecutorRequest.publish``); a second thread then
writes the prepared buffers into the worker's shared-memory store (``SHOAL_STORE_DIR``,
``_objects.write_prepared``) while tasks go on, answers, and lets the object go. Readers in
other processes map the file read-only (from the store's ``in`` folder when the worker
fetched it from a peer, from ``SHOAL_SPILL_DIR`` once the worker spilled it): a numpy input
is a view of the one shared copy. A value whose large buffers are not all read-only (a
``bytearray``, say) is written at once instead. So **inputs are read-only**: the large
arrays of a result are made read-only when it is stored, writing into one raises
``ValueError: assignment destination is read-only``, and a task copies what it changes
(``x = x.copy()``), as Dask asks of tasks anyway (the tasks reading one key share one
object).

Values read or made here are kept by task id (slot and generation: one key of one graph,
unique for the worker's lifetime), never by their bytes, least recently used dropped first
(64 MiB of pickles at most, and a sixteenth of the executor's memory limit,
``SHOAL_EXECUTOR_MEMORY_LIMIT``), and forgotten when the worker releases the key. A value
several tasks read, such as a shuffle's pieces, is unpickled once per executor rather than
once per task. As in Dask's own workers, the tasks reading the *same key* share one object;
two keys never share one, even when their values pickle to equal bytes.

Freed memory: the worker starts executors with glibc's mmap threshold at 64 MiB and its
trim threshold at an eighth of the executor's share of memory (64 MiB to 1 GiB), so that a
freed chunk-sized array is reused by the next task instead of being handed back and faulted
in again (the allele-counts graph of ``bench/local_compare.py``, run in one process: 1.13 s
and 42,000 page faults with glibc's defaults, 0.98 s and 8 with 64 MiB thresholds),
and an executor idle for ``IDLE_TRIM_AFTER`` seconds hands its free heap back
(``malloc_trim``), so the worker's memory figures count only memory in use.

A task's exception is sent back with its type, message, traceback and the pickled exception
(the client re-raises it). A crash of this process (segfault, ``os._exit``, memory) is seen by
the worker, which fails only the running task with the cause and starts a new executor.
"""

from __future__ import annotations

import ctypes
import os
import queue
import struct
import sys
import threading
import time
import traceback
from collections import OrderedDict

from shoal import _dask_nodes, _objects, _payload
from shoal.v1 import common_pb2, executor_pb2

_LEN = struct.Struct("<I")


def _read_exact(stream, n: int) -> bytearray | None:
    """``n`` bytes from an unbuffered stream, read in place; ``None`` at its end."""
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        read = stream.readinto(view[got:])
        if not read:
            return None
        got += read
    return buffer


# Seconds without a request after which the executor hands its free heap back to the
# kernel. The worker starts executors with glibc's mmap and trim thresholds raised
# (runtime/worker/src/python.rs), so that freed chunk-sized arrays are reused without
# faulting fresh pages in; trimming when idle keeps the memory figures honest anyway.
IDLE_TRIM_AFTER = 0.5


def _heap_trimmer():
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


# Seconds a task holding the interpreter runs on before the reading thread may take it
# to answer a publish request (another task waits for it).
PUBLISH_LATENCY = 0.0005

# Most pickled bytes of kept values (each entry also counts ENTRY_OVERHEAD).
VALUE_CACHE_BYTES = 64 * 2**20
ENTRY_OVERHEAD = 256
_MISSING = object()


def cache_budget(memory_limit: int) -> int:
    """Bytes of values kept by an executor that may use ``memory_limit`` bytes (0: no limit)."""
    return VALUE_CACHE_BYTES if memory_limit <= 0 else min(VALUE_CACHE_BYTES, memory_limit // 16)


class ValueCache:
    """Unpickled values by the id of the task that made them, least recently used dropped
    first. A value larger than a quarter of the budget is never kept (it would push out
    everything else)."""

    def __init__(self, budget: int = VALUE_CACHE_BYTES) -> None:
        self.budget = budget
        self.size = 0
        # task id -> (value, pickled size)
        self.entries: OrderedDict[int, tuple[object, int]] = OrderedDict()

    def loads(self, task: int, data: bytes):
        """The value of ``task``, whose pickle is ``data``: kept, or unpickled (and kept)."""
        entry = self.entries.get(task, _MISSING)
        if entry is _MISSING:
            value = _payload.loads(data)
            self.keep(task, len(data), value)
            return value
        self.entries.move_to_end(task)
        return entry[0]

    def load_file(self, task: int, paths: tuple[str, ...]):
        """The value of ``task`` in the store's files: kept, or read from the first of
        ``paths`` that exists (and kept, counted by the private memory it took: a mapped
        object's arrays are shared pages, and cost only their pickle stream)."""
        entry = self.entries.get(task, _MISSING)
        if entry is not _MISSING:
            self.entries.move_to_end(task)
            return entry[0]
        for path in paths[:-1]:
            try:
                value, size = _objects.load_file(path)
                break
            except FileNotFoundError:
                continue
        else:
            value, size = _objects.load_file(paths[-1])
        self.keep(task, size, value)
        return value

    def keep(self, task: int, size: int, value) -> None:
        """Keeps ``value`` of ``task`` (``size`` pickled bytes), dropping the oldest over the budget."""
        if size > self.budget // 4 or task in self.entries:
            return
        self.entries[task] = (value, size)
        self.size += size + ENTRY_OVERHEAD
        while self.size > self.budget:
            _, (_, old) = self.entries.popitem(last=False)
            self.size -= old + ENTRY_OVERHEAD

    def release(self, tasks) -> None:
        """Forgets the values of released tasks."""
        for task in tasks:
            entry = self.entries.pop(task, None)
            if entry is not None:
                self.size -= entry[1] + ENTRY_OVERHEAD


class Executor:
    def __init__(
        self,
        worker: str,
        cache_bytes: int = VALUE_CACHE_BYTES,
        store_dir: str | None = None,
        spill_dir: str | None = None,
    ) -> None:
        self.worker = worker
        self.shared: dict[int, object] = {}
        self.values = ValueCache(cache_bytes)
        self.store_dir = store_dir
        # Results kept live (not written yet), by task id: the value, and its prepared
        # pickle for when another process asks for it.
        self.live: dict[int, tuple[object, _objects.Prepared]] = {}
        # Where a stored input may be: the store, its inputs fetched from peers, the spill.
        self.folders = tuple(d for d in (store_dir, store_dir and os.path.join(store_dir, "in"), spill_dir) if d)

    def _inputs(self, task: executor_pb2.ExecTask) -> list:
        if len(task.input_tasks) != len(task.inputs):
            # a worker that sends no input ids: nothing can be shared safely
            return [_payload.loads(x) for x in task.inputs]
        in_store = task.in_store if len(task.in_store) == len(task.inputs) else ()
        inputs = []
        for i, (tid, data) in enumerate(zip(task.input_tasks, task.inputs)):
            if in_store and in_store[i]:
                entry = self.live.get(tid)
                if entry is not None:
                    inputs.append(entry[0])
                    continue
                name = f"{tid:016x}"
                inputs.append(self.values.load_file(tid, tuple(os.path.join(d, name) for d in self.folders)))
            else:
                inputs.append(self.values.loads(tid, data))
        return inputs

    def run(self, task: executor_pb2.ExecTask) -> executor_pb2.ExecutorReply:
        start = time.perf_counter()
        reply = executor_pb2.ExecutorReply(task=task.task)
        try:
            inputs = self._inputs(task)
            if task.payload.shared:
                shared = self.shared[task.payload.shared]
                if isinstance(shared, _Unloadable):
                    raise shared.error
                spec = _payload.loads_sharing(task.payload.pickled, shared)
            else:
                shared = None
                spec = _payload.loads(task.payload.pickled)
            tag = spec[0]
            if tag == "call":
                _, args, kwargs = spec
                func = shared
                args, kwargs = _payload.substitute(args, kwargs, inputs)
                result = func(*args, **kwargs)
            elif tag == "dask-nodes":
                _, keys, nodes = spec
                result = _dask_nodes.run_group(keys, nodes, inputs, task.key)
            else:
                raise ValueError(f"unknown Python task format {tag!r}; client and worker versions differ")
            self._store(task.task, result, reply, task.wanted)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, ValueError) and "read-only" in str(exc):
                exc.add_note(
                    "Task inputs are shared with other tasks, and the large arrays among them "
                    "are read-only (the one copy, in the worker's shared memory or in the "
                    "executor that made it): copy an input before changing it in place "
                    "(x = x.copy())."
                )
            reply.error.CopyFrom(self._error(task.key, exc))
        reply.duration_us = int((time.perf_counter() - start) * 1e6)
        return reply

    def _store(self, task: int, result, reply: executor_pb2.ExecutorReply, wanted: bool = False) -> None:
        """Puts a result where the worker expects it: in the reply (small values), kept
        live (large read-only buffers, unless a client wants it: it will be gathered), or
        written into the store."""
        if self.store_dir is None:
            data = _payload.dumps(result)
            self.values.keep(task, len(data), result)
            reply.value = data
            return
        name = f"{task:016x}"
        # While a large result is pickled, its temporary file exists: if this process dies
        # then, the worker knows that the task's code had ended and runs it again.
        marker = os.path.join(self.store_dir, _objects.temporary_name(name))
        try:
            prepared = _objects.prepare(result, marker)
        except BaseException:
            _discard(marker)
            raise
        if isinstance(prepared, bytes):
            self.values.keep(task, len(prepared), result)
            reply.value = prepared
        elif prepared.readonly and not wanted:
            _discard(marker)
            self.live[task] = (result, prepared)
            reply.live = True
            reply.size = prepared.layout()[2]
        else:
            try:
                _objects.write_prepared(prepared, self.store_dir, name)
                reply.in_store = True
            except OSError:
                # /dev/shm full or gone: the value travels as bytes.
                reply.value = prepared.to_bytes()

    def publish(self, tasks) -> list[executor_pb2.Published]:
        """Writes live results into the store for other processes, and lets them go (this
        executor maps the file like any reader from now on; one the store cannot take goes
        as bytes and stays live here). Runs beside the task thread: it runs no code of the
        values'."""
        out = []
        for task in tasks:
            entry = self.live.get(task)
            if entry is None:
                out.append(executor_pb2.Published(task=task, gone=True))
                continue
            try:
                _objects.write_prepared(entry[1], self.store_dir, f"{task:016x}")
            except OSError:
                # /dev/shm full or gone: the bytes go to the worker, and the value stays
                # live here for the tasks already sent to read it (no file to map).
                out.append(executor_pb2.Published(task=task, value=entry[1].to_bytes()))
                continue
            out.append(executor_pb2.Published(task=task, in_store=True))
            self.live.pop(task, None)
        return out

    def release(self, tasks) -> None:
        """Forgets what is kept of released values."""
        self.values.release(tasks)
        for task in tasks:
            self.live.pop(task, None)

    def _error(self, key: str, exc: BaseException) -> common_pb2.TaskError:
        try:
            pickled = _payload.dumps_code(exc)
        except Exception:  # noqa: BLE001 - an unpicklable exception still reports its text
            pickled = b""
        name = type(exc).__name__
        return common_pb2.TaskError(
            kind=name,
            message=f"{name}: {exc}",
            detail="".join(traceback.format_exception(exc)),
            worker=self.worker,
            exception=pickled,
        )


class _Unloadable:
    """A shared blob that could not be unpickled: the tasks using it fail with why."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _load_shared(data: bytes):
    try:
        return _payload.loads(data)
    except Exception as exc:  # noqa: BLE001 - reported through every task that uses it
        if isinstance(exc, ModuleNotFoundError):
            exc.add_note(
                "The function was pickled by reference to its module, which this worker cannot "
                "import: install the module where workers run, or ship it by value with "
                "cloudpickle.register_pickle_by_value(module)."
            )
        return _Unloadable(exc)


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Replies:
    """Reply frames on the real stdout, written whole by one thread at a time."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, reply: executor_pb2.ExecutorReply) -> None:
        data = reply.SerializeToString()
        with self.lock:
            self.stream.write(_LEN.pack(len(data)))
            self.stream.write(data)
            self.stream.flush()


def _read_requests(executor: Executor, requests, replies: _Replies, work: queue.SimpleQueue) -> None:
    """The reading thread: answers publish requests at once (whatever task runs) and hands
    everything else to the task thread in order; ``None`` at the end of the stream."""
    try:
        while True:
            header = _read_exact(requests, 4)
            if header is None:
                return
            body = _read_exact(requests, _LEN.unpack(header)[0])
            if body is None:
                return
            request = executor_pb2.ExecutorRequest.FromString(body)
            if request.publish:
                replies.send(executor_pb2.ExecutorReply(published=executor.publish(request.publish)))
            if request.tasks or request.released or request.blobs:
                work.put(request)
    finally:
        work.put(None)


def main() -> None:
    requests = os.fdopen(sys.stdin.fileno(), "rb", buffering=0)
    # Frames go to the real stdout; anything tasks print goes to stderr.
    replies = _Replies(os.fdopen(os.dup(sys.stdout.fileno()), "wb"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    trim = _heap_trimmer()
    limit = int(os.environ.get("SHOAL_EXECUTOR_MEMORY_LIMIT") or 0)
    executor = Executor(
        os.environ.get("SHOAL_WORKER_NAME", "unknown"),
        cache_budget(limit),
        store_dir=os.environ.get("SHOAL_STORE_DIR") or None,
        spill_dir=os.environ.get("SHOAL_SPILL_DIR") or None,
    )
    work: queue.SimpleQueue = queue.SimpleQueue()
    # A publish request waits for the reading thread to get the interpreter from a task
    # that holds it: at most this long, not the default 5 ms.
    sys.setswitchinterval(PUBLISH_LATENCY)
    threading.Thread(target=_read_requests, args=(executor, requests, replies, work), daemon=True).start()
    while True:
        try:
            request = work.get(timeout=IDLE_TRIM_AFTER)
        except queue.Empty:
            if trim is not None:
                trim(0)
            request = work.get()
        if request is None:
            return
        executor.release(request.released)
        for blob in request.blobs:
            executor.shared[blob.id] = _load_shared(blob.data)
        for task in request.tasks:
            replies.send(executor.run(task))


if __name__ == "__main__":
    main()
