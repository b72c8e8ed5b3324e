"""Real parts for browser tests: Debian's Chromium driven by Playwright (no browser
download), and configurable-http-proxy (the proxy JupyterHub puts in front of notebook
servers) routing a path prefix to the dashboard with the prefix stripped, as
jupyter-server-proxy's ``/user/<name>/proxy/<port>/`` does. Both are started and stopped
by PID; a missing one fails loudly with how to install it (``make browser-deps``)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

CHROMIUM = os.environ.get("SHOAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
OUTPUT = pathlib.Path(os.environ.get("SHOAL_TEST_OUTPUT", pathlib.Path(__file__).resolve().parents[2] / "test-output"))


def chp_binary() -> str:
    found = os.environ.get("SHOAL_CHP") or shutil.which("configurable-http-proxy")
    if not found or not os.path.exists(found):
        raise RuntimeError("configurable-http-proxy not found: run `make browser-deps` or set SHOAL_CHP")
    return found


@contextlib.contextmanager
def chromium():
    """A Playwright browser on Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} not found: run `make browser-deps` (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """configurable-http-proxy on 127.0.0.1 with one route, restartable on the same port."""

    def __init__(self, prefix: str, target: str) -> None:
        self.prefix, self.target = prefix, target
        self.port, self.api_port = free_port(), free_port()
        self.token = "chp-test-token"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token)
        self.proc = subprocess.Popen(
            [chp_binary(), "--ip", "127.0.0.1", "--port", str(self.port), "--api-ip", "127.0.0.1",
             "--api-port", str(self.api_port), "--no-include-prefix", "--log-level", "warn"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{self.api_port}/api/routes{self.prefix}",
                    data=json.dumps({"target": self.target}).encode(), method="POST",
                    headers={"Authorization": f"token {self.token}"},
                )
                urllib.request.urlopen(request, timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"configurable-http-proxy did not start (exit {self.proc.poll()})") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}/{path}"
