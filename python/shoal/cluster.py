"""``shoal.LocalCluster``: a scheduler and workers on this machine, for notebooks and tests.

Runs ``shoal local --workers N --cores C`` as a child process on free ports, reads the
address and token from its banner, and stops it (SIGTERM by PID, then SIGKILL) on
``close()``, at exit of the ``with`` block, or when the interpreter exits. The workers run
Python tasks with this interpreter (``SHOAL_PYTHON``, unless already set).

The binary is ``$SHOAL_BIN``, else the one installed with this package (the wheel's
``shoal`` script, in this interpreter's scripts directory), else ``shoal`` on ``PATH``, else
``target/release/shoal`` of the source checkout this package lives in (editable installs).
A cluster not closed is stopped when it is garbage collected or the interpreter exits
(``weakref.finalize``).

Not here: remote clusters (connect a ``Client`` to their address), worker processes
themselves (``shoal local`` starts and stops them).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import weakref

from shoal.errors import ShoalError

_SCHEDULER = "  scheduler: "
_METRICS = "  metrics:   "
_DASHBOARD = "  dashboard: "
_TOKEN = "  token:     "


def find_binary() -> str:
    """The ``shoal`` executable to run, or a ShoalError saying how to provide one."""
    env = os.environ.get("SHOAL_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise ShoalError(f"SHOAL_BIN={env!r} is not an executable file")
        return env
    installed = _installed_binaries()
    for path in installed:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    found = shutil.which("shoal")
    if found:
        return found
    checkout = pathlib.Path(__file__).resolve().parents[2] / "target" / "release" / "shoal"
    if os.access(checkout, os.X_OK):
        return str(checkout)
    raise ShoalError(
        "cannot find the shoal binary: install the shoal wheel (`make wheel`, then `pip install "
        "dist/shoal-*.whl`), set SHOAL_BIN, put `shoal` on PATH, or build it with "
        f"`cargo build --release` (looked in {', '.join(installed)}, on PATH and at {checkout})"
    )


def _installed_binaries() -> list[str]:
    """Where ``pip install`` of the wheel puts its ``shoal`` script, most likely first.

    This interpreter's scripts directory (a venv's ``bin/``, even when it is not on
    ``PATH``), the user scheme's (``pip install --user``), and ``bin/`` beside the package
    folder (``pip install --target``).
    """
    schemes = [sysconfig.get_path("scripts")]
    try:
        schemes.append(sysconfig.get_path("scripts", sysconfig.get_preferred_scheme("user")))
    except KeyError:  # pragma: no cover - no user scheme on this platform
        pass
    schemes.append(str(pathlib.Path(__file__).resolve().parents[1] / "bin"))
    name = "shoal.exe" if os.name == "nt" else "shoal"
    return list(dict.fromkeys(os.path.join(d, name) for d in schemes if d))


class LocalCluster:
    """A scheduler and ``n_workers`` workers of ``cores`` cores each, on this machine.

    The default is one worker with one executor per core (``cores``: the machine's cores,
    divided between the workers): its executors share one shared-memory store, so no value
    is copied between workers (measured against 2 workers x 1 core in the README)."""

    def __init__(
        self, n_workers: int = 1, cores: int | None = None, timeout: float = 60.0, binary: str | None = None
    ) -> None:
        if cores is None:
            cores = max(1, len(os.sched_getaffinity(0)) // max(1, n_workers))
        if n_workers < 1 or cores < 1:
            raise ValueError(f"n_workers and cores must be at least 1 (got {n_workers}, {cores})")
        self.n_workers = n_workers
        self.cores = cores
        self.address: str | None = None
        self.token: str | None = None
        self.dashboard_link: str | None = None
        self.binary = binary or find_binary()
        self._log = tempfile.NamedTemporaryFile(prefix="shoal-local-", suffix=".log", delete=False)
        env = dict(os.environ)
        env.setdefault("SHOAL_PYTHON", sys.executable)
        args = [
            self.binary, "local", "--workers", str(n_workers), "--cores", str(cores),
            "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        ]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, bufsize=1,
        )
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._log.name)
        try:
            self._read_banner(timeout)
        except BaseException:
            self.close()
            raise
        # Keep draining stdout so the child never blocks on a full pipe.
        threading.Thread(target=_drain, args=(self._proc.stdout,), name="shoal-local-stdout", daemon=True).start()

    def _read_banner(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        result: dict[str, str] = {}

        def read() -> None:
            for line in self._proc.stdout:
                line = line.rstrip("\n")
                for prefix, name in (
                    (_SCHEDULER, "address"), (_METRICS, "metrics"), (_DASHBOARD, "dashboard"), (_TOKEN, "token"),
                ):
                    if line.startswith(prefix):
                        result[name] = line[len(prefix):].strip()
                if "token" in result:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if "token" not in result or "address" not in result:
            try:
                code = self._proc.wait(0.5 if not reader.is_alive() else 0)
            except subprocess.TimeoutExpired:
                code = None
            state = f"exited with code {code}" if code is not None else f"printed no address within {timeout} s"
            raise ShoalError(
                f"`{self.binary} local` {state}; its log ({self._log.name}) ends with:\n{self.logs(20)}"
            )
        self.address = result["address"]
        self.token = result["token"]
        #: The dashboard page, with the token: opening it logs the browser in.
        self.dashboard_link = result.get("dashboard") or None
        self.metrics_link = result.get("metrics") or None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def logs(self, lines: int = 50) -> str:
        """The last lines the scheduler and workers logged."""
        try:
            with open(self._log.name, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def get_client(self, **kwargs):
        """A new Client of this cluster."""
        from shoal.client import Client

        return Client(self, **kwargs)

    def close(self, timeout: float = 10.0) -> None:
        """Stops the cluster: SIGTERM (the scheduler stops its workers), then SIGKILL."""
        self._finalizer.detach()
        _stop(self._proc, self._log.name, timeout)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._proc.poll() is None else "stopped"
        return f"<shoal.LocalCluster: {self.address}, {self.n_workers} workers x {self.cores} cores, {state}>"


def _drain(stream) -> None:
    try:
        for _ in stream:
            pass
    except (OSError, ValueError):
        pass


def _stop(proc: subprocess.Popen, log_path: str, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            pass
    try:
        os.unlink(log_path)
    except OSError:
        pass

