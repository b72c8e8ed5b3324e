"""Monitoring on the full test node: the alert rules and the Grafana dashboard query only
metrics the real operator, scheduler and worker pods expose, with bounded labels; and the
chart's PodMonitor would find those pods and label them as the rules expect (job, cluster,
group from the pods' own labels, the `http` port). Prometheus itself is not run: the
rules are unit-tested by promtool (`make monitoring-test`)."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest
from bed import cluster_manifest, connect, operator_pod, pod_ip, ready, workers
from test_chart import MONITORING, by_kind, render

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "monitoring"))
import metric_names

pytestmark = pytest.mark.node

OPERATOR_PORT = 8080
SCHEDULER_PORT = 8787
WORKER_PORT = 8788


def page(ip: str, port: int) -> str:
    return urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=10).read().decode()


def components(kubectl, cluster: str) -> dict[str, dict]:
    """The cluster's pods by component (scheduler, worker: one of each kept)."""
    items = json.loads(kubectl.run("get", "pods", "-l", f"shoal.dev/cluster={cluster}", "-o", "json").stdout)["items"]
    return {p["metadata"]["labels"].get("app.kubernetes.io/component", ""): p for p in items}


def test_queried_metrics_exist_on_the_operator_scheduler_and_worker_pods(kubectl, operator):
    """Every metric the rules and the dashboard query is on the /metrics page of the process
    that exposes it (operator, scheduler or worker pod), and their labels stay bounded."""
    kubectl.apply(cluster_manifest("watched", "    replicas: 1"))
    with connect(kubectl, "watched"):
        worker = next(iter(kubectl.wait_until(
            "a ready worker pod of watched", lambda: ready(workers(kubectl, "watched")), timeout=180
        )))
        pages = {
            "operator": page(pod_ip(kubectl, operator_pod(kubectl)), OPERATOR_PORT),
            "scheduler": page(pod_ip(kubectl, "watched-scheduler"), SCHEDULER_PORT),
            "worker": page(pod_ip(kubectl, worker), WORKER_PORT),
        }
    assert metric_names.live_problems(pages) == []


def test_pod_monitor_selects_the_cluster_pods_and_labels_them_as_the_rules_expect(kubectl, operator):
    """The PodMonitor's selector matches the scheduler and worker pods the operator made, its
    port is theirs, and its relabelings give job shoal-scheduler / shoal-worker (the rules'
    job), cluster and, on workers, group from labels the pods carry."""
    kubectl.apply(cluster_manifest("labelled", "    replicas: 1"))
    made = kubectl.wait_until(
        "the scheduler and a worker pod of labelled",
        lambda: (by_component := components(kubectl, "labelled")).keys() >= {"scheduler", "worker"} and by_component,
        timeout=120,
    )
    spec = by_kind(render(*MONITORING, f"watchNamespace={kubectl.namespace}"), "PodMonitor")[0]["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [kubectl.namespace]}
    endpoint = spec["podMetricsEndpoints"][0]
    # The rules select schedulers by the job this PodMonitor gives them.
    assert 'job="shoal-scheduler"' in metric_names.RULES.read_text()
    for component in ("scheduler", "worker"):
        pod = made[component]
        pod_labels = pod["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items(), pod_labels
        for expression in spec["selector"]["matchExpressions"]:
            assert pod_labels.get(expression["key"]) in expression["values"], expression
        ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert endpoint["port"] in ports, ports
        # Prometheus's pod label meta names: every character outside [a-zA-Z0-9_] becomes `_`.
        meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in pod_labels.items()}
        target = {r["targetLabel"]: r.get("replacement", "$1").replace("$1", meta.get(r["sourceLabels"][0], ""))
                  for r in endpoint["relabelings"]}
        assert target["job"] == f"shoal-{component}"
        assert target["cluster"] == "labelled"
        assert target["group"] == ("default" if component == "worker" else "")
