"""The alert rules and the Grafana dashboard (charts/shoal-operator/files/) query only metrics a
real scheduler and worker expose, and those processes' metric labels stay bounded. The
operator's names are checked on the test bed (e2e/tests/test_monitoring.py)."""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from procs import ProcessCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "monitoring"))
import metric_names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(address: str, timeout: float = 20) -> str:
    """The /metrics page at `address`, once it answers (or fail naming it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
        except (urllib.error.URLError, ConnectionError) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"no /metrics at {address} within {timeout} s: {e}") from e
            time.sleep(0.05)


def pages() -> dict[str, str]:
    """The /metrics pages of a scheduler and a worker registered with it."""
    with ProcessCluster() as cluster:
        line = cluster.scheduler.stdout.readline().strip()
        assert line.startswith("SHOAL_SCHEDULER_HTTP="), line
        worker = f"127.0.0.1:{free_port()}"
        cluster.add_worker("w0", "--metrics-listen", worker, "--python", "none")
        with cluster.connect(workers=1):
            return {"scheduler": scrape(line.split("=", 1)[1]), "worker": scrape(worker)}


def test_queried_runtime_metrics_exist_and_carry_bounded_labels():
    """Every scheduler or worker metric the rules and the dashboard query is on that process's
    /metrics page, and no runtime metric has a label beyond its static categories."""
    assert metric_names.live_problems(pages()) == []
