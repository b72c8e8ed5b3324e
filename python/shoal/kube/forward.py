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

import kr8s.asyncio
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
            self._make = lambda remote, local: PortForward(pod, remote, local_port=local, address="127.0.0.1")
        tasks = [asyncio.create_task(self._supervise(remote, local)) for remote, local in self.ports.items()]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_loop_error(self, loop, context: dict) -> None:
        """A connection whose tunnel failed (kr8s lets the error escape its connection
        handler) is one line at INFO, not a traceback: the next connection opens a new one."""
        error = context.get("exception")
        if context.get("message", "").startswith("Unhandled exception in client_connected_cb"):
            self.last_error = error
            log.info("shoal: a port-forward connection to %s/%s ended: %s", self.namespace, self.pod, _describe(error))
            return
        loop.default_exception_handler(context)

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


def _describe(error: BaseException | None) -> str:
    """The innermost errors of an exception group, or the error, in one line."""
    if error is None:
        return "closed"
    inner = getattr(error, "exceptions", None)
    if inner:
        return "; ".join(_describe(e) for e in inner)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
