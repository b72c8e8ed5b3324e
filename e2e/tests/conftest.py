"""Fixtures for the test-bed tests: a kubectl bound to the running test bed.

The test bed is started by `make e2e-up` / `make e2e` (see e2e/scripts/up.sh); these tests
never start or stop it, they only need KUBECONFIG and SHOAL_E2E_BIN (the built binaries).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E_HOME = Path(os.environ.get("SHOAL_E2E_HOME", Path.home() / ".cache" / "shoal-e2e"))
RUN_DIR = E2E_HOME / "run"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "node: needs the full test bed (a kubelet that runs pods)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Node tests on a control-plane-only test bed are an error, never a silent skip."""
    mode = (RUN_DIR / "mode").read_text().strip() if (RUN_DIR / "mode").exists() else None
    if mode != "full":
        selected = [item for item in items if item.get_closest_marker("node") is None]
        if len(selected) != len(items) and not config.getoption("-m"):
            raise pytest.UsageError(
                f"node tests need the full test bed but it is {mode!r}; "
                "run `make e2e`, or select the control-plane tests with -m 'not node'"
            )


class Kubectl:
    """Runs the test bed's own kubectl; every failure names the command and its stderr."""

    def __init__(self, binary: str, kubeconfig: str, namespace: str) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply(self, manifest: str, *extra: str) -> str:
        return self.run("apply", "-f", "-", *extra, stdin=manifest).stdout

    def get(self, kind: str, name: str) -> dict:
        return json.loads(self.run("get", kind, name, "-o", "json", "--show-managed-fields").stdout)

    def exists(self, kind: str, name: str) -> bool:
        return self.run("get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip() != ""

    def wait_until(self, what: str, predicate, timeout: float = 90.0):
        """Poll `predicate` until it returns a truthy value; fail naming `what`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG")
    if not path or not Path(path).exists():
        raise pytest.UsageError("KUBECONFIG is not set; run `make e2e-up` and eval its last line")
    return path


@pytest.fixture(scope="session")
def kubectl_binary() -> str:
    binary = os.environ.get("SHOAL_E2E_KUBECTL")
    if not binary:
        raise pytest.UsageError("SHOAL_E2E_KUBECTL is not set; run the tests through `make e2e`")
    return binary


@pytest.fixture()
def kubectl(kubeconfig: str, kubectl_binary: str):
    """A kubectl working in a fresh namespace, deleted after the test."""
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    admin = Kubectl(kubectl_binary, kubeconfig, "default")
    admin.run("create", "namespace", namespace)
    scoped = Kubectl(kubectl_binary, kubeconfig, namespace)
    scoped.wait_until(
        f"the default service account in {namespace}",
        lambda: scoped.exists("serviceaccount", "default"),
    )
    yield scoped
    admin.run("delete", "namespace", namespace, "--wait=false", check=False)


def install_chart(kubectl, tmp_path, *sets: str):
    """Installs the chart watching the test's namespace (extra `--set` values given); returns
    the uninstall function."""
    helm = os.environ.get("SHOAL_E2E_HELM")
    if not helm:
        raise pytest.UsageError("SHOAL_E2E_HELM is not set; run the tests through `make e2e`")
    env = {**os.environ, "KUBECONFIG": kubectl.kubeconfig, "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "g"), "HELM_DATA_HOME": str(tmp_path / "d")}
    release = ["--namespace", kubectl.namespace]
    values = [arg for value in (f"watchNamespace={kubectl.namespace}", "image.pullPolicy=Never", *sets)
              for arg in ("--set", value)]
    install = subprocess.run(
        [helm, "install", "shoal", str(REPO / "charts" / "shoal-operator"), *release, *values,
         "--wait", "--timeout", "120s"],
        env=env, capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr + kubectl.run("get", "pods", "-o", "wide").stdout
    return lambda: subprocess.run([helm, "uninstall", "shoal", *release, "--wait"], env=env, capture_output=True)


@pytest.fixture()
def operator(kubectl, tmp_path):
    """The chart installed (watching the test's namespace), uninstalled afterwards."""
    uninstall = install_chart(kubectl, tmp_path)
    yield
    uninstall()
