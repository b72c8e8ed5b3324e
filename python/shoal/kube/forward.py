"""A supervised port-forward from loopback ports on this machine to ports of a pod,
through the Kubernetes API server (kr8s's ``PortForward``: one WebSocket per TCP
connection).

It runs kr8s's asyncio API on an event loop of its own, in a daemon thread. Each forwarded
port keeps its local port for the whole life of the forward, so a client's address stays
valid:

- a dropped tunnel (the WebSocket of one connection: API server restart, idle cut, pod
  restarted) ends that one connection; the next connection opens a new tunnel, and kr8s
  retries opening it while the pod comes back;
- a listener that stopped (closed, or its socket aborted) is noticed within
  ``CHECK_EVERY`` seconds without connecting to it (``SO_ACCEPTCONN``), and started
  again on the same port, with backoff while that fails.

Not here: choosing what to forward (``cluster.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time

import anyio
import httpx_ws
import kr8s.asyncio
from kr8s import ConnectionClosedError
from kr8s.asyncio.objects import Pod
from kr8s.asyncio.portforward import PortForward

from shoal.kube.errors import KubeAPIError

log = logging.getLogger("shoal.kube")

#: Seconds between checks that every listener still accepts connections.
CHECK_EVERY = 0.5
#: Longest pause between attempts to start a listener again.
BACKOFF_MAX = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(server) -> bool:
    """Whether every socket of an asyncio server still accepts connections."""
    sockets = getattr(server, "sockets", None) or []
    if not sockets:
        return False
    try:
        return all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1 for s in sockets)
    except OSError:
        return False


#: Attempts to open one connection's tunnel, and the pause before the n-th retry.
TUNNEL_ATTEMPTS = 6
TUNNEL_PAUSE = 0.25


class BoundedPortForward(PortForward):
    """kr8s's PortForward whose tunnel opening is retried a bounded number of times with
    a growing pause (kr8s 0.20.15 retries at once and forever: its attempt counter never
    grows, so a missing pod or a 403 spins against the API server). A refusal is
    reported to ``on_failure`` (the forward keeps it for diagnosis); a 401/403 is not
    retried."""

    def __init__(self, *args, on_failure=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._on_failure = on_failure

    @contextlib.asynccontextmanager
    async def _connect_websocket(self):
        attempts = 0
        while True:
            pod = self.pod or await self._select_pod()
            self.pod = pod
            opened = pod.api.open_websocket(
                version=pod.version,
                url=f"{pod.endpoint}/{pod.name}/portforward",
                namespace=pod.namespace,
                params={"name": pod.name, "namespace": pod.namespace, "ports": f"{self.remote_port}"},
            )
            try:
                websocket = await opened.__aenter__()
            except httpx_ws.HTTPXWSException as e:
                attempts += 1
                if self._on_failure is not None:
                    self._on_failure(e)
                status = getattr(getattr(e, "response", None), "status_code", None)
                if attempts >= TUNNEL_ATTEMPTS or status in (401, 403):
                    raise ConnectionClosedError(f"cannot open a tunnel to pod {pod.name}: {e!r}") from e
                await anyio.sleep(TUNNEL_PAUSE * attempts)
                continue
            break
        try:
            yield websocket
        except BaseException as e:
            if not await opened.__aexit__(type(e), e, e.__traceback__):
                raise
        else:
            await opened.__aexit__(None, None, None)


class Forward:
    """Forwards ``127.0.0.1:<local>`` to ``<pod>:<remote>`` for each remote port, until
    :meth:`stop`. ``ports`` maps each remote port to its local one."""

    def __init__(self, namespace: str, pod: str, remote_ports: list[int], cluster: str = "", make=None) -> None:
        """``make(remote, local)`` builds one listener (an async context manager with
        ``servers``); default: kr8s's ``PortForward`` to the pod."""
        self._make = make
        self.namespace = namespace
        self.pod = pod
        self.cluster = cluster
        self.ports = {remote: free_port() for remote in remote_ports}
        #: How often a listener was started again, per remote port.
        self.restarts = dict.fromkeys(remote_ports, 0)
        self.last_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._up = {remote: threading.Event() for remote in remote_ports}
        self._forwards: dict = {}
        self._thread = threading.Thread(target=self._main, name=f"shoal-forward-{pod}", daemon=True)

    def start(self, timeout: float = 30.0) -> Forward:
        """Starts the forward; returns once every local port listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        for remote, up in self._up.items():
            if not up.wait(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise KubeAPIError(
                    f"could not open a port-forward to pod {self.pod} port {remote} within {timeout:.0f} s",
                    cluster=self.cluster, namespace=self.namespace, pod=self.pod,
                    cause=repr(self.last_error) if self.last_error else "the local listener did not start",
                    fix="check that the API server is reachable and that you may create pods/portforward",
                )
        return self

    def local_port(self, remote: int) -> int:
        return self.ports[remote]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Closes every listener and ends the thread (open connections end with it)."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def close_listeners(self) -> None:
        """Closes the listening sockets as if they had died (the supervisor starts them
        again on the same ports); open connections stay. For tests and diagnosis."""
        loop = self._loop
        if loop is None:
            return

        def close() -> None:
            for pf in self._forwards.values():
                for server in list(pf.servers):
                    server.close()

        loop.call_soon_threadsafe(close)

    # ---- the forward's own thread -----------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as e:  # noqa: BLE001 - reported through last_error and start()
            self.last_error = e
            log.warning("shoal: the port-forward to %s/%s ended: %r", self.namespace, self.pod, e)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._on_loop_error)
        self._stopping = asyncio.Event()
        if self._make is None:
            api = await kr8s.asyncio.api()
            pod = Pod({"metadata": {"name": self.pod, "namespace": self.namespace}}, api=api)
            self._make = lambda remote, local: BoundedPortForward(
                pod, remote, local_port=local, address="127.0.0.1", on_failure=self._tunnel_failed
            )
        tasks = [asyncio.create_task(self._supervise(remote, local)) for remote, local in self.ports.items()]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_loop_error(self, loop, context: dict) -> None:
        """A connection whose tunnel failed (kr8s lets the error escape its connection
        handler) is one line at INFO, not a traceback: the next connection opens a new one."""
        error = context.get("exception")
        if error is None:
            loop.default_exception_handler(context)
            return
        self.last_error = error
        log.info("shoal: a port-forward connection to %s/%s ended: %s", self.namespace, self.pod, _describe(error))

    def _tunnel_failed(self, error: BaseException) -> None:
        self.last_error = error
        log.debug("shoal: opening a tunnel to %s/%s failed: %r", self.namespace, self.pod, error)

    def refused_status(self) -> int | None:
        """The HTTP status with which the API server refused the last tunnel (403: no
        permission to port-forward), if that is how it failed."""
        for error in _leaves(self.last_error):
            response = getattr(error, "response", None)
            status = getattr(response, "status_code", None)
            if isinstance(status, int):
                return status
        return None

    async def _supervise(self, remote: int, local: int) -> None:
        """Keeps one listener up on ``local`` for as long as the forward runs. A listener
        that died is replaced at once; the old one finishes closing (and its open
        connections end) in the background."""
        assert self._stopping is not None
        failures = 0
        restarted = False
        generations: set[asyncio.Task] = set()
        try:
            while not self._stopping.is_set():
                pf = self._make(remote, local)
                self._forwards[remote] = pf
                died = asyncio.Event()
                task = asyncio.create_task(self._listen(pf, remote, died, again=restarted))
                generations.add(task)
                task.add_done_callback(generations.discard)
                stop = asyncio.create_task(self._stopping.wait())
                dead = asyncio.create_task(died.wait())
                await asyncio.wait({task, stop, dead}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                dead.cancel()
                if self._stopping.is_set():
                    break
                if task.done() and not died.is_set():
                    failures += 1  # it never listened
                    error = task.exception() if not task.cancelled() else None
                    self.last_error = error
                    log.debug("shoal: port-forward listener on 127.0.0.1:%s failed: %r", local, error)
                else:
                    failures = 0
                    restarted = True
                    log.warning(
                        "shoal: port-forward 127.0.0.1:%s -> %s:%s stopped listening; starting it again",
                        local, self.pod, remote,
                    )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), min(BACKOFF_MAX, 0.05 * 2**failures))
        finally:
            for task in list(generations):
                task.cancel()
            await asyncio.gather(*generations, return_exceptions=True)

    async def _listen(self, pf, remote: int, died: asyncio.Event, again: bool) -> None:
        """One listener's life: up until it stops accepting or the forward stops."""
        assert self._stopping is not None
        async with pf:
            self._up[remote].set()
            if again:
                self.restarts[remote] += 1
                log.info("shoal: port-forward 127.0.0.1:%s -> %s:%s listening again", self.ports[remote], self.pod, remote)
            while not self._stopping.is_set() and all(listening(s) for s in pf.servers):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), CHECK_EVERY)
            died.set()


def _leaves(error: BaseException | None) -> list[BaseException]:
    """The innermost exceptions of an exception group (and their causes), or [error]."""
    if error is None:
        return []
    inner = getattr(error, "exceptions", None)
    if inner:
        return [leaf for e in inner for leaf in _leaves(e)]
    return [error, *_leaves(error.__cause__ or error.__context__)]


def _describe(error: BaseException | None) -> str:
    """The innermost errors of an exception group, or the error, in one line."""
    if error is None:
        return "closed"
    inner = getattr(error, "exceptions", None)
    if inner:
        return "; ".join(_describe(e) for e in inner)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
