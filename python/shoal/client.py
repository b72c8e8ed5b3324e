"""``shoal.Client``: a session with a Shoal scheduler over gRPC.

It handshakes (same Shoal version on both sides), keeps the session's event stream open
in a background thread (the scheduler releases a session's keys when that stream closes),
submits graphs in ~2 MiB chunks, tracks every wanted key's state from the events, gathers
results through the scheduler, and releases keys (batched, in a background thread) when
their last :class:`~shoal.futures.Future` is garbage collected.

Not here: the Dask scheduler hook (``dask_hook.py``), starting clusters (``cluster.py``),
progress bars (``progress.py``), the wire encoding of tasks (``_wire.py``).
"""

from __future__ import annotations

import atexit
import bisect
import collections
import contextlib
import gc
import logging
import os
import pickle
import socket
import threading
import time
import uuid
import weakref
from typing import Any

import grpc

from shoal import __version__, _objects, _payload, _wire
from shoal.errors import (
    AuthenticationError,
    CancelledError,
    ConnectionLostError,
    SchedulerError,
    ShoalError,
    VersionMismatchError,
    rebuild,
)
from shoal.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Future
from shoal.v1 import client_pb2, client_pb2_grpc, common_pb2

log = logging.getLogger("shoal")
_MAX_MESSAGE = 256 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    # A scheduler that vanished without closing the connection (its pod killed behind a
    # proxy) is noticed within seconds, not at the next TCP timeout.
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
#: Keys per Gather / Release call.
_KEYS_PER_CALL = 16_384
#: Pauses between Gather attempts while results are recomputed (None: give up).
_GATHER_RETRIES = (0.25, 0.5, 1.0, 2.0, 4.0, None)
#: How often dropped Futures are turned into one Release call.
_RELEASE_INTERVAL = 0.05
#: Seconds a count of the cluster's cores is reused for grouping Dask graphs.
_CORES_MAX_AGE = 5.0
#: Cores assumed while a cluster has no worker.
_CORES_UNKNOWN = 16


class _KeyState:
    """What the client knows of one key it wants (shared by all its Futures)."""

    __slots__ = ("status", "error", "refs", "callbacks", "waiters")

    def __init__(self) -> None:
        self.status = "pending"
        self.error: Any = None  # shoal.v1.TaskError, or an exception raised client-side
        self.refs = 1
        self.callbacks: list | None = None
        self.waiters: list | None = None


class _Waiter:
    """Counts completions of the keys a ``_wait`` call waits for."""

    __slots__ = ("remaining", "any_error", "event")

    def __init__(self, remaining: int, any_error: bool) -> None:
        self.remaining = remaining
        self.any_error = any_error
        self.event = threading.Event()

    def notify(self, status: str) -> None:
        self.remaining -= 1
        if self.remaining <= 0 or (self.any_error and status != "finished"):
            self.event.set()


def _target(address: str) -> str:
    for scheme in ("http://", "grpc://", "tcp://", "shoal://"):
        if address.startswith(scheme):
            return address[len(scheme):].rstrip("/")
    return address


def _dashboard_of(address: str) -> str | None:
    """The dashboard beside a scheduler at the usual ports (gRPC 8786, HTTP 8787, as on
    Kubernetes and in Dask), or None when the HTTP port cannot be told from the address.
    The link carries no token: the page asks for it once and keeps it in a cookie."""
    host, _, port = _target(address).rpartition(":")
    return f"http://{host}:8787/status" if port == "8786" and host else None


def _funcname(func) -> str:
    while hasattr(func, "func"):  # functools.partial
        func = func.func
    name = getattr(func, "__name__", None) or type(func).__name__
    return name.strip("<>") or "task"


class Client:
    """A session with a Shoal scheduler.

    ``address`` is ``"host:port"`` (or a :class:`~shoal.LocalCluster`), by default
    ``$SHOAL_SCHEDULER_ADDRESS`` (a ShoalJob's runner pod has it); ``token`` defaults to
    ``$SHOAL_TOKEN``. Use as a context manager or call :meth:`close`.
    """

    #: Dask accepts a scheduler object whose ``asynchronous`` is False.
    asynchronous = False

    def __init__(
        self,
        address: Any = None,
        token: str | None = None,
        name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.dashboard_link: str | None = None
        if address is None:
            address = os.environ.get("SHOAL_SCHEDULER_ADDRESS")
            if not address:
                raise ShoalError(
                    "no scheduler address: pass Client('host:port') or a cluster, or set "
                    "SHOAL_SCHEDULER_ADDRESS (a ShoalJob's runner has it)"
                )
        if hasattr(address, "address") and hasattr(address, "token"):  # a LocalCluster
            token = token or address.token
            self.dashboard_link = getattr(address, "dashboard_link", None)
            address = address.address
        if not isinstance(address, str) or not address:
            raise TypeError(f"address must be 'host:port' or a LocalCluster, not {address!r}")
        if self.dashboard_link is None:
            self.dashboard_link = _dashboard_of(address)
        token = token or os.environ.get("SHOAL_TOKEN")
        if not token:
            raise ShoalError(
                f"no auth token for the scheduler at {address}: pass token=... or set "
                "SHOAL_TOKEN (`shoal local` prints the token it generated)"
            )
        self.address = address
        # On the workers' machine (a loopback address): values in their shared-memory
        # store are read from its files, not streamed through the scheduler.
        self._local_files = _is_loopback(address)
        self.name = name or f"python-client@{socket.gethostname()}"
        self._metadata = (("authorization", f"Bearer {token.strip()}"),)
        self._closed = False
        self._lock = threading.RLock()  # key states, submissions, serial map
        self._submit_lock = threading.Lock()  # orders SubmitGraph and Release calls
        self._cores_seen = (0, -1e9)  # (cores of the cluster, when counted)
        self._states: dict[str, _KeyState] = {}
        self._firsts: list[int] = []  # first serial of each submission
        self._subkeys: list[list[str]] = []  # keys of each submission
        self._orphans: list[int] = []  # serials seen before their submission returned
        self._dead: collections.deque[str] = collections.deque()  # dropped Future keys
        self._stopping = threading.Event()
        self._lost_error: BaseException | None = None

        self._channel = grpc.insecure_channel(_target(address), options=_CHANNEL_OPTIONS)
        self._stub = client_pb2_grpc.SchedulerStub(self._channel)
        # Submissions are encoded by _wire, so the request serializer is the identity.
        self._submit_raw = self._channel.stream_unary(
            "/shoal.v1.Scheduler/SubmitGraph",
            request_serializer=None,
            response_deserializer=client_pb2.SubmitGraphResult.FromString,
        )
        try:
            self._connect(timeout)
        except BaseException:
            self._channel.close()
            raise
        self._events_thread = threading.Thread(target=self._listen, name="shoal-events", daemon=True)
        self._events_thread.start()
        self._release_thread = threading.Thread(target=self._releaser, name="shoal-release", daemon=True)
        self._release_thread.start()
        self._dask_config = _use_task_shuffle()
        _open_clients.add(self)

    # ---- session ---------------------------------------------------------------------

    def _connect(self, timeout: float) -> None:
        params = client_pb2.HandshakeParams(
            version=common_pb2.VersionInfo(
                protocol_version=common_pb2.PROTOCOL_VERSION_CURRENT, runtime_version=__version__
            ),
            client_name=self.name,
        )
        try:
            hs = self._stub.Handshake(params, metadata=self._metadata, timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                raise VersionMismatchError("handshake", self.address, code, e.details()) from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise AuthenticationError("handshake", self.address, code, e.details()) from None
            if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                raise SchedulerError(
                    "handshake", self.address, code,
                    f"no scheduler answered within {timeout} s ({e.details()}); check the "
                    "address and that the scheduler is running",
                ) from None
            raise self._error("handshake", e) from None
        self.session_id = hs.session_id
        self.cluster_name = hs.cluster_name
        self._subscription = self._stub.Subscribe(
            client_pb2.SubscribeParams(session_id=self.session_id), metadata=self._metadata
        )
        # The scheduler registers the subscription before it answers with headers: once
        # they arrived, no event of a later submission can be missed.
        self._subscription.initial_metadata()
        if self._subscription.done() and self._subscription.code() != grpc.StatusCode.OK:
            raise self._error("subscribe", self._subscription)

    def _error(self, call: str, e) -> SchedulerError:
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else str(e)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return AuthenticationError(call, self.address, code, details)
        return SchedulerError(call, self.address, code, details)

    def _check_open(self) -> None:
        if self._closed:
            raise ShoalError(f"this client of {self.address} is closed; create a new Client")
        if self._lost_error is not None:
            raise ConnectionLostError(str(self._lost_error))

    def close(self) -> None:
        """Ends the session: the scheduler releases every key this client wanted."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._subscription.cancel()
        self._events_thread.join(timeout=5)
        self._release_thread.join(timeout=5)
        self._fail_pending(ConnectionLostError(f"the client of {self.address} was closed"))
        self._channel.close()
        _open_clients.discard(self)
        _restore_shuffle(self._dask_config)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"session {self.session_id}"
        return f"<shoal.Client: {self.address}, {state}>"

    @property
    def status(self) -> str:
        return "closed" if self._closed else "running"

    def cluster_info(self) -> client_pb2.ClusterStatus:
        """Workers, task counts and figures of the cluster (``shoal.v1.ClusterStatus``)."""
        self._check_open()
        try:
            return self._stub.GetClusterInfo(common_pb2.Empty(), metadata=self._metadata, timeout=30)
        except grpc.RpcError as e:
            raise self._error("cluster info", e) from None

    def get_task_stream(self, start: float | None = None) -> list[dict]:
        """The tasks that ran since ``start`` (Unix seconds; None: all the scheduler keeps,
        the last 100,000), in Dask's record shape: ``key``, ``name`` (the prefix),
        ``worker``, ``status`` ("OK" or "error"), ``nbytes`` and ``startstops``."""
        stream = self._task_stream(start)
        return [
            {
                "key": t.key,
                "name": t.prefix,
                "worker": t.worker,
                "status": "OK" if t.ok else "error",
                "nbytes": t.nbytes,
                "startstops": [{"action": "compute", "start": t.start_unix_us / 1e6, "stop": t.stop_unix_us / 1e6}],
            }
            for t in stream.tasks
        ]

    def _task_stream(self, start: float | None) -> client_pb2.TaskStream:
        self._check_open()
        params = client_pb2.TaskStreamParams(since_unix_us=int((start or 0) * 1e6))
        try:
            return self._stub.GetTaskStream(params, metadata=self._metadata, timeout=60)
        except grpc.RpcError as e:
            raise self._error("task stream", e) from None

    def performance_report_html(self, start: float | None = None, title: str = "") -> str:
        """A standalone HTML report of what ran since ``start`` (see ``performance_report``)."""
        self._check_open()
        params = client_pb2.TaskStreamParams(since_unix_us=int((start or 0) * 1e6), title=title)
        try:
            return self._stub.GetPerformanceReport(params, metadata=self._metadata, timeout=120).html
        except grpc.RpcError as e:
            raise self._error("performance report", e) from None

    def _cores(self) -> int:
        """The cluster's cores, counted at most every few seconds (for grouping graphs);
        a cluster with no worker yet (scaling up from zero) counts as ``_CORES_UNKNOWN``."""
        cores, when = self._cores_seen
        now = time.monotonic()
        if now - when > _CORES_MAX_AGE:
            cores = sum(w.cores for w in self.cluster_info().workers) or _CORES_UNKNOWN
            self._cores_seen = (cores, now)
        return cores

    # ---- events ----------------------------------------------------------------------

    def _listen(self) -> None:
        error: BaseException | None = None
        try:
            for events in self._subscription:
                self._on_events(events)
            error = ConnectionLostError(
                f"the scheduler at {self.address} ended this session's event stream (it is "
                "shutting down); pending results are lost: reconnect and resubmit"
            )
        except grpc.RpcError as e:
            if self._stopping.is_set():
                return
            error = ConnectionLostError(
                f"lost the event stream of the scheduler at {self.address} ({e.code().name}: "
                f"{e.details()}); the scheduler process ended or became unreachable, and its "
                "results are lost (on Kubernetes, `kubectl describe shoalcluster` says whether "
                "its pod was OOM-killed): reconnect and resubmit"
            )
        except Exception as e:  # a bug here must not hang every waiter
            log.exception("shoal client event thread failed")
            error = ConnectionLostError(f"the client's event thread failed: {e!r}")
        if not self._stopping.is_set():
            self._lost_error = error
            self._fail_pending(error)

    def _on_events(self, events: client_pb2.ClientEvents) -> None:
        fired: list = []
        with self._lock:
            for f in events.finished:
                self._settle(f.key, "finished", None, fired)
            for serial in events.finished_serials:
                key = self._key_of(serial)
                if key is None:
                    self._orphans.append(serial)
                else:
                    self._settle(key, "finished", None, fired)
            for f in events.failed:
                error = common_pb2.TaskError()
                error.CopyFrom(f.error)
                status = "cancelled" if error.kind == "Cancelled" else "error"
                self._settle(f.key, status, error, fired)
        _fire(fired)

    def _key_of(self, serial: int) -> str | None:
        i = bisect.bisect_right(self._firsts, serial) - 1
        if i < 0:
            return None
        keys = self._subkeys[i]
        offset = serial - self._firsts[i]
        return keys[offset] if offset < len(keys) else None

    def _settle(self, key: str, status: str, error, fired: list) -> None:
        """Records a key's outcome (under the lock); its callbacks go to ``fired``."""
        st = self._states.get(key)
        if st is None or st.status != "pending":
            return
        st.status = status
        st.error = error
        if st.waiters:
            for w in st.waiters:
                w.notify(status)
            st.waiters = None
        if st.callbacks:
            fired.extend(st.callbacks)
            st.callbacks = None

    def _fail_pending(self, error: BaseException) -> None:
        fired: list = []
        with self._lock:
            for key, st in self._states.items():
                if st.status == "pending":
                    self._settle(key, "error", error, fired)
        _fire(fired)

    # ---- key references --------------------------------------------------------------

    def _hold(self, keys) -> None:
        """Counts one more Future for each key (which the client must hold already)."""
        with self._lock:
            for k in keys:
                st = self._states.get(k)
                if st is None:
                    raise KeyError(f"this client holds no key {k!r}; submit it first")
                st.refs += 1

    def _drop(self, key: str) -> None:
        """Called from ``Future.__del__``: only a thread-safe append, no locks."""
        if not self._closed:
            self._dead.append(key)

    def _releaser(self) -> None:
        while not self._stopping.wait(_RELEASE_INTERVAL):
            if self._dead:
                try:
                    self._flush_releases()
                except Exception:  # keep releasing later
                    log.exception("shoal: releasing keys failed")

    def _flush_releases(self) -> None:
        """Turns dropped Futures into Release calls for keys no Future holds any more."""
        with self._submit_lock:
            keys = []
            with self._lock:
                while True:
                    try:
                        k = self._dead.popleft()
                    except IndexError:
                        break
                    st = self._states.get(k)
                    if st is None:
                        continue
                    st.refs -= 1
                    if st.refs <= 0:
                        del self._states[k]
                        if st.status != "cancelled":
                            keys.append(k)
            if not keys or self._closed or self._lost_error is not None:
                return
            for i in range(0, len(keys), _KEYS_PER_CALL):
                params = client_pb2.KeysParams(session_id=self.session_id, keys=keys[i:i + _KEYS_PER_CALL])
                try:
                    self._stub.Release(params, metadata=self._metadata, timeout=60)
                except grpc.RpcError as e:
                    log.warning("shoal: %s", self._error("release", e))

    # ---- submission ------------------------------------------------------------------

    def _submit(self, keys: list[str], tasks: list[bytes], wanted: list[str], blobs_before=None) -> list[Future]:
        """Submits encoded tasks (in ~2 MiB chunks); returns Futures of the ``wanted`` keys
        (tasks encoded with ``wanted=True``), counted before the call so that no release
        of an earlier hold can overtake the submission."""
        self._check_open()
        with self._submit_lock:
            with self._lock:
                for k in wanted:
                    st = self._states.get(k)
                    if st is None:
                        self._states[k] = _KeyState()
                    else:
                        st.refs += 1
                        if st.status == "cancelled":  # wanted again after a cancel
                            st.status, st.error = "pending", None
            try:
                result = self._submit_raw(
                    _wire.chunks(self.session_id, tasks, blobs_before),
                    metadata=self._metadata,
                )
            except grpc.RpcError as e:
                with self._lock:
                    for k in wanted:
                        st = self._states.get(k)
                        if st is not None:
                            st.refs -= 1
                            if st.refs <= 0:
                                del self._states[k]
                raise self._error("submit graph", e) from None
            fired: list = []
            with self._lock:
                self._firsts.append(result.first_serial)
                self._subkeys.append(keys)
                if self._orphans:
                    orphans, self._orphans = self._orphans, []
                    for serial in orphans:
                        key = self._key_of(serial)
                        if key is None:
                            self._orphans.append(serial)
                        else:
                            self._settle(key, "finished", None, fired)
        _fire(fired)
        adopt = Future._adopt
        return [adopt(k, self) for k in wanted]

    def _deps_of(self, args: tuple, kwargs: dict) -> tuple[list[str], tuple, dict]:
        """Replaces Futures in arguments (top level, or directly inside a list, tuple or
        dict) by ``Dep(i)``; returns their keys in input order and the new arguments."""
        deps: dict[str, int] = {}

        def dep(f: Future) -> _payload.Dep:
            if f.client is not self:
                raise ValueError(
                    f"Future {f.key!r} belongs to another client ({f.client.address}); "
                    "gather it and pass the value instead"
                )
            i = deps.get(f.key)
            if i is None:
                i = deps[f.key] = len(deps)
            return _payload.Dep(i)

        def one(a):
            t = type(a)
            if isinstance(a, Future):
                return dep(a)
            if t is list or t is tuple:
                if any(isinstance(x, Future) for x in a):
                    return t(dep(x) if isinstance(x, Future) else x for x in a)
            elif t is dict:
                if any(isinstance(x, Future) for x in a.values()):
                    return {k: dep(v) if isinstance(v, Future) else v for k, v in a.items()}
            return a

        new_args = tuple(one(a) for a in args)
        new_kwargs = {k: one(v) for k, v in kwargs.items()}
        return list(deps), new_args, new_kwargs

    def submit(
        self,
        func,
        *args,
        key: str | None = None,
        resources: dict[str, float] | None = None,
        retries: int | None = None,
        priority: int = 0,
        **kwargs,
    ) -> Future:
        """Runs ``func(*args, **kwargs)`` on the cluster. Futures among the arguments (top
        level, or directly inside a list, tuple or dict) are replaced by their values.

        As in ``distributed``: ``resources`` (e.g. ``{"highmem": 1}``) runs it only on a
        worker offering at least that much (``shoal worker --resources``; a request no
        worker group offers is refused at submission); ``retries`` is how many times it may
        re-run after losing its worker (``0``: never; ``None``: the scheduler default);
        a higher ``priority`` runs before lower ones."""
        if not callable(func):
            raise TypeError(f"submit() needs a callable, not {type(func).__name__}")
        options = _task_options(resources, retries, priority)
        key = key or f"{_funcname(func)}-{uuid.uuid4().hex}"
        deps, args, kwargs = self._deps_of(args, kwargs)
        code = _payload.dumps_code(func)
        shared = _payload.blob_id(code)
        payload = _wire.python_payload(_payload.dumps(("call", args, kwargs)), shared)
        task = _wire.task(key, payload, existing_deps=deps, wanted=True, **options)
        return self._submit([key], [task], [key], {0: [_wire.blob(shared, code)]})[0]

    def map(
        self,
        func,
        *iterables,
        key_prefix: str | None = None,
        resources: dict[str, float] | None = None,
        retries: int | None = None,
        priority: int = 0,
        **kwargs,
    ) -> list[Future]:
        """Runs ``func`` on each item (or each tuple of items of several iterables) in one
        submission; ``kwargs`` go to every call. Returns one Future per item, in order.
        ``resources``, ``retries`` and ``priority`` apply to every task, as in ``submit``."""
        if not callable(func):
            raise TypeError(f"map() needs a callable, not {type(func).__name__}")
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        options = _task_options(resources, retries, priority)
        with _no_gc():
            return self._map(func, iterables, key_prefix, kwargs, options)

    def _map(self, func, iterables, key_prefix, kwargs, options) -> list[Future]:
        items = list(zip(*iterables))
        if not items:
            return []
        base = f"{key_prefix or _funcname(func)}-{uuid.uuid4().hex}"
        keys = [f"{base}-{i}" for i in range(len(items))]
        code = _payload.dumps_code(func)
        shared = _payload.blob_id(code)
        has_futures = any(
            isinstance(a, Future)
            or (type(a) in (list, tuple) and any(isinstance(x, Future) for x in a))
            or (type(a) is dict and any(isinstance(x, Future) for x in a.values()))
            for item in items for a in item
        ) or any(isinstance(v, Future) for v in kwargs.values())
        if has_futures or options:
            tasks = []
            for k, item in zip(keys, items):
                deps, args, kw = self._deps_of(item, kwargs)
                payload = _wire.python_payload(_payload.dumps(("call", args, kw)), shared)
                tasks.append(_wire.task(k, payload, existing_deps=deps, wanted=True, **options))
        else:
            try:
                pickled = [pickle.dumps(("call", item, kwargs), protocol=5) for item in items]
            except Exception:  # noqa: BLE001 - lambdas and __main__ classes need cloudpickle
                pickled = [_payload.dumps(("call", item, kwargs)) for item in items]
            tasks = _wire.map_tasks(keys, pickled, shared)
        return self._submit(keys, tasks, keys, {0: [_wire.blob(shared, code)]})

    def scatter(self, data):
        """Sends data to the cluster: a Future per value (a list or tuple gives a list, a
        dict a dict with the same keys). Values run as builtin constant tasks."""
        if isinstance(data, dict):
            names = list(data)
            values = list(data.values())
        elif isinstance(data, (list, tuple)):
            names, values = None, list(data)
        else:
            names, values = None, [data]
        keys = [f"{type(v).__name__}-{uuid.uuid4().hex}" for v in values]
        tasks = [
            _wire.task(k, _wire.constant_payload(_payload.dumps(v)), wanted=True)
            for k, v in zip(keys, values)
        ]
        futures = self._submit(keys, tasks, keys) if keys else []
        if names is not None:
            return dict(zip(names, futures))
        if isinstance(data, (list, tuple)):
            return futures
        return futures[0]

    def cancel(self, futures) -> None:
        """Cancels unfinished tasks (those no other client wants): their Futures fail with
        ``shoal.CancelledError``; finished ones stop being held."""
        fs = [futures] if isinstance(futures, Future) else list(futures)
        keys = list(dict.fromkeys(f.key for f in fs))
        if not keys:
            return
        self._check_open()
        with self._submit_lock:
            try:
                for i in range(0, len(keys), _KEYS_PER_CALL):
                    params = client_pb2.KeysParams(session_id=self.session_id, keys=keys[i:i + _KEYS_PER_CALL])
                    self._stub.Cancel(params, metadata=self._metadata, timeout=60)
            except grpc.RpcError as e:
                raise self._error("cancel", e) from None
            fired: list = []
            with self._lock:
                for k in keys:
                    st = self._states.get(k)
                    if st is None:
                        continue
                    if st.status == "pending":
                        error = common_pb2.TaskError(kind="Cancelled", message="cancelled by the client")
                        self._settle(k, "cancelled", error, fired)
                    elif st.status == "finished":
                        st.status = "cancelled"
                        st.error = common_pb2.TaskError(
                            kind="Cancelled", message="cancelled by the client after it finished; its result was released"
                        )
        _fire(fired)

    # ---- waiting and results ---------------------------------------------------------

    def _status(self, key: str) -> str:
        st = self._states.get(key)
        return st.status if st is not None else "released"

    def _wait(self, keys, timeout: float | None, return_when: str) -> bool:
        """Waits until ``return_when`` holds for these keys; False on timeout."""
        with self._lock:
            pending: list[_KeyState] = []
            unique = 0
            failed = False
            for k in dict.fromkeys(keys):
                unique += 1
                st = self._states.get(k)
                if st is None:
                    raise KeyError(f"this client holds no key {k!r} (released)")
                if st.status == "pending":
                    pending.append(st)
                elif st.status != "finished":
                    failed = True
            if not pending:
                return True
            if return_when == FIRST_COMPLETED and len(pending) < unique:
                return True
            if return_when == FIRST_EXCEPTION and failed:
                return True
            waiter = _Waiter(1 if return_when == FIRST_COMPLETED else len(pending), return_when == FIRST_EXCEPTION)
            for st in pending:
                if st.waiters is None:
                    st.waiters = [waiter]
                else:
                    st.waiters.append(waiter)
        if waiter.event.wait(timeout):
            return True
        with self._lock:
            for st in pending:
                if st.waiters and waiter in st.waiters:
                    st.waiters.remove(waiter)
            return waiter.event.is_set()

    def _exception(self, key: str) -> BaseException | None:
        st = self._states.get(key)
        if st is None:
            raise KeyError(f"this client holds no key {key!r} (released)")
        if st.status in ("finished", "pending"):
            return None
        if isinstance(st.error, BaseException):
            return st.error
        if st.error is None:  # pragma: no cover - settled states always carry an error
            return CancelledError(key, "Cancelled", "cancelled")
        return rebuild(key, st.error)

    def _add_callback(self, future: Future, fn) -> None:
        with self._lock:
            st = self._states.get(future.key)
            if st is not None and st.status == "pending":
                if st.callbacks is None:
                    st.callbacks = [(future, fn)]
                else:
                    st.callbacks.append((future, fn))
                return
        _fire([(future, fn)])

    def gather(self, futures, timeout: float | None = None):
        """Waits for futures and returns their values in the same structure (a Future, or
        lists, tuples and dicts of them; other values pass through). Raises the first
        failed task's exception, with its original type."""
        keys: list[str] = []
        flat = type(futures) is list and all(type(f) is Future and f.client is self for f in futures)
        if flat:
            keys = [f.key for f in futures]
        else:
            _collect(futures, keys, self)
        if not keys:
            return futures
        unique = list(dict.fromkeys(keys))
        if not self._wait(unique, timeout, FIRST_EXCEPTION):
            pending = [k for k in unique if self._status(k) == "pending"]
            raise TimeoutError(
                f"{len(pending)} of {len(unique)} tasks did not finish within {timeout} s "
                f"(first: {pending[0]!r})"
            )
        for k in unique:
            if self._status(k) != "finished":
                exc = self._exception(k)
                if exc is not None:
                    raise exc
        values = self._fetch(unique)
        if flat:
            return [values[k] for k in keys]
        return _rebuild(futures, values)

    def _fetch(self, keys: list[str]) -> dict[str, Any]:
        self._check_open()
        out: dict[str, Any] = {}
        for i in range(0, len(keys), _KEYS_PER_CALL):
            batch = keys[i:i + _KEYS_PER_CALL]
            parts = self._gather_batch(batch)
            missing = [k for k in batch if k not in parts]
            if missing:
                raise ShoalError(
                    f"the scheduler at {self.address} sent no value for {len(missing)} keys "
                    f"(first: {missing[0]!r}); gather them again"
                )
            for k, data in parts.items():
                if isinstance(data, _InFile):
                    try:
                        out[k] = _objects.load_file(data.path, writable=True)[0]
                        continue
                    except OSError:  # not this machine's file after all, or moved: stream it
                        data = self._gather_batch([k], local_files=False)[k]
                try:
                    out[k] = _payload.loads(data, writable=True)
                except Exception as e:
                    raise ShoalError(
                        f"cannot unpickle the result of task {k!r} ({type(e).__name__}: {e}); "
                        "the client needs the packages (and versions) the workers used"
                    ) from e
        return out

    def _gather_batch(self, batch: list[str], local_files: bool | None = None) -> dict[str, Any]:
        """One Gather call, retried for a few seconds while a finished key is missing (a
        lost worker's results are being recomputed) or a worker is unreachable. A value may
        come as the path of a worker's file (``_InFile``) when the client is on its machine."""
        if local_files is None:
            local_files = self._local_files
        params = client_pb2.GatherParams(session_id=self.session_id, keys=batch, local_files=local_files)
        for delay in _GATHER_RETRIES:
            parts: dict[str, Any] = {}
            try:
                for chunk in self._stub.Gather(params, metadata=self._metadata):
                    for v in chunk.values:
                        if v.path:
                            parts[v.key] = _InFile(v.path)
                            continue
                        if v.offset == 0:
                            if v.total_size <= len(v.data):
                                parts[v.key] = v.data
                                continue
                            parts[v.key] = bytearray(v.total_size)
                        parts[v.key][v.offset:v.offset + len(v.data)] = v.data
                return parts
            except grpc.RpcError as e:
                retry = e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
                if retry and delay is not None and all(self._status(k) == "finished" for k in batch):
                    time.sleep(delay)
                    continue
                err = self._error("gather", e)
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    err.add_note("the results were lost with a worker or released; resubmit the tasks")
                raise err from None
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- Dask ------------------------------------------------------------------------

    def get(self, dsk, keys, **kwargs):
        """The Dask scheduler hook: ``dask.compute(x, scheduler=client)`` or
        ``dask.config.set(scheduler=client)``. Runs the graph, returns results shaped
        like ``keys`` and releases them."""
        from shoal import dask_hook

        return dask_hook.get(self, dsk, keys, **kwargs)

    def compute(self, collections, optimize_graph: bool = True, progress: bool = False, **kwargs):
        """Starts computing Dask collections; returns a Future of each finalized result
        (a list for a list). ``progress=True`` shows a progress bar."""
        from shoal import dask_hook

        return dask_hook.compute(self, collections, optimize_graph=optimize_graph, progress=progress)

    def persist(self, collections, optimize_graph: bool = True, **kwargs):
        """Computes Dask collections and returns equivalent collections backed by results
        held on the cluster (released when the returned collections are dropped)."""
        from shoal import dask_hook

        return dask_hook.persist(self, collections, optimize_graph=optimize_graph)


class _InFile:
    """A gathered value that is in a worker's file on this machine."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _task_options(resources, retries, priority) -> dict:
    """The ``_wire.task`` keywords of the per-task options, checked (only those given).
    Shoal runs lower priorities first, Dask higher ones: the sign flips here."""
    options: dict = {}
    if resources:
        if not isinstance(resources, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and v >= 0 for k, v in resources.items()
        ):
            raise TypeError(f"resources must map names to non-negative numbers, e.g. {{'highmem': 1}}; got {resources!r}")
        options["resources"] = {k: float(v) for k, v in resources.items()}
    if retries is not None:
        if not isinstance(retries, int) or retries < 0:
            raise TypeError(f"retries must be a non-negative int or None; got {retries!r}")
        options["max_retries"] = retries
    if priority:
        options["priority"] = -int(priority)
    return options


@contextlib.contextmanager
def _no_gc():
    """Pauses the cyclic garbage collector while building many small objects (Futures,
    key states, encoded tasks): its passes over a large heap would otherwise dominate."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fire(fired: list) -> None:
    for future, fn in fired:
        try:
            fn(future)
        except Exception:  # a failing callback must not stop the others
            log.exception("shoal: done callback %r of %r failed", fn, future)


def _collect(x, keys: list, client: Client) -> None:
    if isinstance(x, Future):
        if x.client is not client:
            raise ValueError(f"Future {x.key!r} belongs to another client ({x.client.address})")
        keys.append(x.key)
    elif type(x) in (list, tuple, set, frozenset):
        for y in x:
            _collect(y, keys, client)
    elif type(x) is dict:
        for y in x.values():
            _collect(y, keys, client)


def _rebuild(x, values: dict):
    if isinstance(x, Future):
        return values[x.key]
    t = type(x)
    if t in (list, tuple, set, frozenset):
        return t(_rebuild(y, values) for y in x)
    if t is dict:
        return {k: _rebuild(v, values) for k, v in x.items()}
    return x


# ---- process-wide state --------------------------------------------------------------

_open_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for c in list(_open_clients):
        try:
            c.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


def _use_task_shuffle() -> bool:
    """Dask picks its single-machine ``disk`` shuffle unless told otherwise: while a Shoal
    client is open, an unset ``dataframe.shuffle.method`` means ``tasks``. Returns whether
    this call set it."""
    try:
        import dask.config
    except ImportError:
        return False
    if dask.config.get("dataframe.shuffle.method", None) is None:
        dask.config.set({"dataframe.shuffle.method": "tasks"})
        return True
    return False


def _restore_shuffle(was_set: bool) -> None:
    """Undoes ``_use_task_shuffle`` when the last open client closes."""
    if not was_set:
        return
    for other in list(_open_clients):
        other._dask_config = True  # the setting stays while any client is open
        return
    import dask.config

    if dask.config.get("dataframe.shuffle.method", None) == "tasks":
        dask.config.set({"dataframe.shuffle.method": None})
