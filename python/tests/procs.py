"""A Shoal cluster of separate processes for fault tests: one ``shoal scheduler`` and
``shoal worker`` processes on 127.0.0.1 that a test can kill by PID. Everything started is
stopped by PID when the cluster closes."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

TOKEN = "python-fault-tests"


def shoal_binary() -> str:
    env = os.environ.get("SHOAL_BIN")
    if env:
        return env
    repo = pathlib.Path(__file__).resolve().parents[2]
    built = repo / "target" / "release" / "shoal"
    if built.exists():
        return str(built)
    found = shutil.which("shoal")
    if found:
        return found
    raise RuntimeError("no shoal binary: run `cargo build --release -p shoal` or set SHOAL_BIN")


class ProcessCluster:
    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="shoal-faults-")
        # Executors import test modules (functions are pickled by reference to them).
        path = os.pathsep.join(filter(None, [str(pathlib.Path(__file__).parent), os.environ.get("PYTHONPATH")]))
        self.env = dict(os.environ, SHOAL_TOKEN=TOKEN, SHOAL_LOG="info", PYTHONPATH=path)
        self.scheduler_log = open(os.path.join(self.dir.name, "scheduler.log"), "w")
        self.scheduler = subprocess.Popen(
            [shoal_binary(), "scheduler", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self.scheduler_log,
            text=True,
            env=self.env,
        )
        line = self.scheduler.stdout.readline().strip()
        if not line.startswith("SHOAL_SCHEDULER_ADDRESS="):
            self.close()
            raise RuntimeError(f"scheduler did not start: {line!r}\n{self.log('scheduler')}")
        self.address = line.split("=", 1)[1]
        self.workers: dict[str, subprocess.Popen] = {}

    def add_worker(self, name: str, *extra: str) -> subprocess.Popen:
        log = open(os.path.join(self.dir.name, f"{name}.log"), "w")
        proc = subprocess.Popen(
            [shoal_binary(), "worker", "--scheduler", self.address, "--name", name, "--cores", "1",
             "--spill-dir", os.path.join(self.dir.name, f"spill-{name}"), *extra],
            stderr=log,
            env=self.env,
        )
        self.workers[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        proc = self.workers[name]
        proc.kill()
        proc.wait()

    def log(self, name: str) -> str:
        path = os.path.join(self.dir.name, f"{name}.log")
        return open(path).read() if os.path.exists(path) else ""

    def connect(self, workers: int):
        """A client of this cluster, once ``workers`` workers have registered."""
        import shoal

        client = shoal.Client(self.address, token=TOKEN)
        self.wait_for_workers(client, workers)
        return client

    def wait_for_workers(self, client, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(client.cluster_info().workers) >= n:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{n} workers did not register\n{self.log('scheduler')}")

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.scheduler_log.close()
        self.dir.cleanup()

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
