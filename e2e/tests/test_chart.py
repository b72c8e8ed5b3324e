"""The operator's Helm chart: lint, least-privilege RBAC, pinned images, and manifests the
real API server accepts (server-side dry run)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "shoal-operator"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = os.environ.get("SHOAL_E2E_HELM")
    if not binary:
        raise pytest.UsageError("SHOAL_E2E_HELM is not set; run the tests through `make e2e-control-plane`")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
    return proc


def render(*sets: str, namespace: str = "shoal-system") -> list[dict]:
    args = ["template", "shoal", str(CHART), "-n", namespace, "--kube-version", "1.34.4"]
    for value in sets:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_chart_lints():
    """`helm lint` passes with the default values."""
    assert "0 chart(s) failed" in helm("lint", str(CHART)).stdout


def test_rbac_is_least_privilege():
    """No wildcard rights; Secrets can be read and created by name but never listed or watched."""
    docs = render()
    rules = [rule for kind in ("ClusterRole", "Role") for role in by_kind(docs, kind) for rule in role["rules"]]
    assert rules
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
    secret_verbs = {v for r in rules if "secrets" in r["resources"] for v in r["verbs"]}
    assert secret_verbs == {"get", "create", "patch"}
    lease_roles = [r for r in by_kind(docs, "Role") if any("leases" in rule["resources"] for rule in r["rules"])]
    assert [r["metadata"]["namespace"] for r in lease_roles] == ["shoal-system"]


def test_watch_namespace_gives_a_role_not_a_cluster_role():
    """Watching one namespace grants rights in that namespace only."""
    docs = render("watchNamespace=team-a")
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    assert "team-a" in [r["metadata"].get("namespace") for r in by_kind(docs, "Role")]
    env = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "SHOAL_OPERATOR_WATCH_NAMESPACE", "value": "team-a"} in env


def test_operator_pod_is_non_root_and_pinned():
    """The operator runs non-root, read-only, without capabilities, from the chart's version tag."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pod = by_kind(render(), "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["image"] == f"shoal.dev/shoal-operator:{chart['appVersion']}"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_latest_tag_is_refused():
    """`image.tag=latest` fails to render with the reason."""
    proc = helm("template", "shoal", str(CHART), "--kube-version", "1.34.4", "--set", "image.tag=latest", check=False)
    assert proc.returncode != 0
    assert "not latest" in proc.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicas=0", "replicas"),
        ("logFormat=xml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("watchNamespace=Team_A", "watchNamespace"),
        ("netwrokPolicy.enabled=false", "netwrokPolicy"),
        ("replicas=2,leaderElection.enabled=false", "leaderElection"),
    ],
)
def test_bad_values_are_refused_naming_the_value(setting, message):
    """values.schema.json refuses a bad value at render/install time, naming the value."""
    proc = helm("template", "shoal", str(CHART), "--kube-version", "1.34.4", "--set", setting, check=False)
    assert proc.returncode != 0, f"{setting} rendered"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


def test_notebook_user_role_is_optional_and_bound_per_namespace():
    """notebookUsers.create renders the notebook Role (no Secret listing) and its binding in
    every namespace asked for."""
    assert not [r for r in by_kind(render(), "Role") if r["metadata"]["name"].endswith("-notebook-user")]
    docs = render("notebookUsers.create=true", "notebookUsers.namespaces={team-a,team-b}",
                  "notebookUsers.serviceAccounts={jupyter}")
    roles = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-notebook-user")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    secret_verbs = {v for rule in roles[0]["rules"] if "secrets" in rule["resources"] for v in rule["verbs"]}
    assert secret_verbs == {"get"}
    bindings = [b for b in by_kind(docs, "RoleBinding") if b["metadata"]["name"].endswith("-notebook-user")]
    assert [(b["metadata"]["namespace"], b["subjects"][0]["name"]) for b in bindings] == [
        ("team-a", "jupyter"), ("team-b", "jupyter")]


def test_service_monitor_is_optional():
    """The ServiceMonitor renders only when asked for."""
    assert not by_kind(render(), "ServiceMonitor")
    monitors = by_kind(render("metrics.serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitors[0]["spec"]["endpoints"][0]["port"] == "metrics"
    # The OOM-kill series keep their cluster's namespace (not renamed exported_namespace).
    assert monitors[0]["spec"]["endpoints"][0]["honorLabels"] is True


MONITORING = [f"monitoring.{part}.enabled=true" for part in ("podMonitor", "prometheusRule", "grafanaDashboard")]


def dashboards(docs: list[dict]) -> list[dict]:
    return [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]


def test_monitoring_objects_are_optional():
    """Without asking, no PodMonitor, PrometheusRule or dashboard ConfigMap is rendered."""
    docs = render()
    assert not by_kind(docs, "PodMonitor") and not by_kind(docs, "PrometheusRule") and not dashboards(docs)


def test_rules_and_dashboard_are_the_chart_files_verbatim():
    """The PrometheusRule's groups and the dashboard ConfigMap's JSON are files/ unchanged
    (the files promtool and monitoring/check.py test)."""
    docs = render(*MONITORING, "monitoring.grafanaDashboard.namespace=grafana")
    rule = by_kind(docs, "PrometheusRule")[0]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "shoal-rules.yaml").read_text())
    (board,) = dashboards(docs)
    assert board["metadata"]["namespace"] == "grafana"
    assert json.loads(board["data"]["shoal.json"]) == json.loads((CHART / "files" / "shoal-dashboard.json").read_text())


def test_pod_monitor_covers_the_watched_namespaces_and_labels_jobs():
    """The PodMonitor looks in every namespace, or only the watched one, and names the job
    shoal-scheduler / shoal-worker from the pod's component (the rules select on it)."""
    spec = by_kind(render(*MONITORING), "PodMonitor")[0]["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    endpoint = spec["podMetricsEndpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    job = next(r for r in endpoint["relabelings"] if r["targetLabel"] == "job")
    assert job["replacement"] == "shoal-$1"
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"job", "cluster", "group"}
    watched = by_kind(render(*MONITORING, "watchNamespace=team-a"), "PodMonitor")[0]["spec"]
    assert watched["namespaceSelector"] == {"matchNames": ["team-a"]}


def test_api_server_accepts_the_rendered_chart(kubectl):
    """Every rendered object passes the real API server's validation (server-side dry run)."""
    docs = render(namespace=kubectl.namespace)
    manifest = yaml.safe_dump_all(docs)
    out = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=manifest).stdout
    assert "deployment.apps/shoal-shoal-operator created (server dry run)" in out, out
