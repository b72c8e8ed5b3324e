"""A real JupyterHub for the full tier: the Hub (jupyterhub + KubeSpawner) and the
configurable-http-proxy it starts, as host processes against the test node.

The proxy's public side and its API listen on 127.0.0.1; the Hub's API listens on the test
bridge's host address, the one address the spawned notebook pods reach. KubeSpawner uses
the test's kubeconfig and namespace and spawns the notebook image (pull policy Never). A
service token with admin scopes drives the REST API. `stop()` ends the Hub by PID (it stops
the servers and the proxy it started), then the proxy by the PID file if it is still there.

Not here: running code in a server (`Kernel`, below, does that over the kernel WebSocket).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import websocket

DEADLINE_SPAWN = 360.0


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://{node_ip}:{hub_port}"
c.JupyterHub.hub_connect_url = "http://{node_ip}:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {proxy_pid!r}
c.JupyterHub.pid_file = {hub_pid!r}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.services = [{{"name": "e2e", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "e2e",
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:users"],
    "services": ["e2e"],
}}]
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.image = {image!r}
c.KubeSpawner.image_pull_policy = "Never"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.service_account = {service_account!r}
c.KubeSpawner.start_timeout = {start_timeout}
c.KubeSpawner.http_timeout = {start_timeout}
c.KubeSpawner.cpu_guarantee = 0.05
c.KubeSpawner.mem_guarantee = "256M"
c.KubeSpawner.mem_limit = "1G"
"""


class Hub:
    """A running Hub; `api(method, path, ...)` calls its REST API as the admin service."""

    def __init__(self, workdir: Path, *, namespace: str, kubeconfig: str, image: str,
                 service_account: str, node_ip: str, chp: str) -> None:
        self.workdir = workdir
        self.token = secrets.token_hex(16)
        self.public_port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.public_port}"
        self.proxy_pid_file = workdir / "proxy.pid"
        self.log_path = workdir / "hub.log"
        config = CONFIG.format(
            public_port=self.public_port, node_ip=node_ip, hub_port=free_port(node_ip),
            proxy_api_port=free_port("127.0.0.1"), chp=chp, proxy_pid=str(self.proxy_pid_file),
            hub_pid=str(workdir / "hub.pid"), db=workdir / "hub.sqlite", cookie=str(workdir / "cookie"),
            token=self.token, namespace=namespace, image=image, service_account=service_account,
            start_timeout=int(DEADLINE_SPAWN) - 30,
        )
        (workdir / "jupyterhub_config.py").write_text(config)
        env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{Path(chp).parent}:{os.environ['PATH']}"}
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(workdir / "jupyterhub_config.py")],
            cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_up()

    def _wait_up(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the Hub exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the Hub did not answer at {self.url} within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def spawn(self, user: str) -> str:
        """Creates `user`, starts their server and waits until it is ready; returns a token of
        theirs (what their browser session would carry)."""
        created = self.api("POST", f"/users/{user}")
        assert created.status_code in (201, 409), created.text
        started = self.api("POST", f"/users/{user}/server")
        assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + DEADLINE_SPAWN
        model: dict = {}
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                break
            if not model.get("pending") and not server:
                raise AssertionError(f"the spawn of {user}'s server failed: {model}\n{self.log_tail()}")
            time.sleep(1)
        else:
            raise AssertionError(f"{user}'s server not ready within {DEADLINE_SPAWN}s: {model}\n{self.log_tail()}")
        token = self.api("POST", f"/users/{user}/tokens", json={"note": "e2e", "expires_in": 3600})
        assert token.status_code == 201, token.text
        return token.json()["token"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.proxy_pid_file.exists():
            try:
                os.kill(int(self.proxy_pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        self._log.close()


class Kernel:
    """One kernel of a user's Jupyter server, driven over its WebSocket (`execute` runs code
    and returns what it printed, failing with the traceback on an error)."""

    def __init__(self, hub: Hub, user: str, token: str) -> None:
        self.base = f"{hub.url}/user/{user}"
        self.headers = {"Authorization": f"token {token}"}
        made = requests.post(f"{self.base}/api/kernels", json={"name": "python3"}, headers=self.headers, timeout=60)
        assert made.status_code == 201, f"{made.status_code}: {made.text}"
        self.id = made.json()["id"]
        ws_url = self.base.replace("http://", "ws://") + f"/api/kernels/{self.id}/channels"
        self.ws = websocket.create_connection(
            ws_url, header=[f"{k}: {v}" for k, v in self.headers.items()], timeout=30, suppress_origin=True,
        )

    def execute(self, code: str, timeout: float = 300.0) -> str:
        msg_id = secrets.token_hex(8)
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "e2e",
                       "session": self.id, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        error = None
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply to the cell within {timeout}s; output so far:\n{''.join(out)}")
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                error = "\n".join(content.get("traceback", [])) or f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        if error:
            raise AssertionError(f"the cell failed:\n{error}\noutput:\n{''.join(out)}")
        return "".join(out)

    def close(self) -> None:
        self.ws.close()
