"""``shoal.LocalCluster``: finding the binary, parsing the banner, stopping by PID."""

from __future__ import annotations

import os
import time

import pytest

import shoal
from shoal import cluster as cluster_mod


def test_banner_is_parsed(cluster):
    """Address, token and metrics link come from the `shoal local` banner."""
    host, port = cluster.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert cluster.token
    assert cluster.dashboard_link.startswith("http://127.0.0.1:") and "/status?token=" in cluster.dashboard_link


def test_workers_share_the_machines_memory(cluster):
    """Each of the local workers gets its share of the machine's memory as its limit, so
    that together they never claim more than the machine has."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with cluster.get_client() as client:
        limits = [w.memory_limit for w in client.cluster_info().workers]
    assert len(limits) == 2 and all(limits), limits
    assert sum(limits) <= physical, (limits, physical)


def test_close_stops_the_process(monkeypatch):
    """close() stops the `shoal local` process (SIGTERM by PID); a second close is harmless."""
    with shoal.LocalCluster(n_workers=1) as c:
        pid = c.pid
        with c.get_client() as client:
            assert len(client.cluster_info().workers) == 1
    assert c._proc.poll() is not None
    c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"shoal local (pid {pid}) still runs after close()")


def test_bad_shoal_bin_is_named(monkeypatch):
    """A SHOAL_BIN that is not executable is named in the error."""
    monkeypatch.setenv("SHOAL_BIN", "/nonexistent/shoal")
    with pytest.raises(shoal.ShoalError, match="SHOAL_BIN"):
        cluster_mod.find_binary()


def test_failed_start_shows_the_log(tmp_path):
    """A binary that exits before printing its banner fails with its exit code and log."""
    fake = tmp_path / "shoal"
    fake.write_text("#!/bin/sh\necho 'cannot bind: address in use' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(shoal.ShoalError, match="code 3") as info:
        shoal.LocalCluster(binary=str(fake), timeout=10)
    assert "address in use" in str(info.value)


def test_invalid_sizes_are_refused():
    """Zero workers or cores are refused before anything starts."""
    with pytest.raises(ValueError, match="at least 1"):
        shoal.LocalCluster(n_workers=0)
