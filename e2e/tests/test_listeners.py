"""Every test-bed daemon listens on loopback or the test bridge only."""

from __future__ import annotations

import re
import subprocess

from conftest import RUN_DIR

NODE_IP = "10.213.0.1"
ALLOWED = {"127.0.0.1", "::1", NODE_IP}


def daemon_pids() -> dict[int, str]:
    pids = {}
    for pidfile in (RUN_DIR / "pids").glob("*.pid"):
        pids[int(pidfile.read_text().strip())] = pidfile.stem
    return pids


def test_daemons_listen_on_loopback_or_the_bridge_only():
    """No daemon of the test bed binds a wildcard or an outside address (TCP or UDP)."""
    pids = daemon_pids()
    assert "kube-apiserver" in pids.values(), f"no test bed is running (pid files in {RUN_DIR / 'pids'})"
    out = subprocess.run(["ss", "-H", "-l", "-n", "-p", "-t", "-u"], capture_output=True, text=True, check=True).stdout
    seen, wrong = set(), []
    for line in out.splitlines():
        fields = line.split()
        local = fields[4]
        address = local.rsplit(":", 1)[0].strip("[]").split("%")[0]
        for pid in (int(p) for p in re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                seen.add(pids[pid])
                if address not in ALLOWED:
                    wrong.append(f"{pids[pid]} listens on {local}")
    assert not wrong, wrong
    assert {"etcd", "kube-apiserver", "kube-controller-manager"} <= seen
