"""Tests of the metric-name parser and the static checks (monitoring/metric_names.py,
monitoring/check.py): names are found in real query shapes and nothing else is taken for
one; a page's declared families count; the checks catch what they are for."""

from __future__ import annotations

import check
import metric_names


def test_promql_names_skip_labels_functions_keywords_and_durations():
    """Only selected metrics count: not label names or values, functions, grouping, offsets, numbers."""
    expr = (
        'histogram_quantile(0.99, sum by (le, cluster) (rate(a_bucket{job="b_total", x=~"$ns"}[$__rate_interval])))'
        " / on (cluster) group_left c_count or (d unless d offset 10m) > 0"
    )
    assert metric_names.promql_names(expr) == {"a_bucket", "c_count", "d"}


def test_grafana_label_values_reads_the_metric_not_the_label():
    """A variable's `label_values(metric{...}, label)` names the metric only."""
    assert metric_names.grafana_query_names('label_values(x_workers{namespace=~"$namespace"}, cluster)') == {"x_workers"}
    assert metric_names.grafana_query_names("label_values(x_workers, namespace)") == {"x_workers"}


def test_exposed_counts_families_without_samples():
    """A counter or histogram declared by `# TYPE` with no sample yet still offers its sample names."""
    page = (
        "# TYPE kills counter\n# TYPE lost_total counter\n# TYPE took histogram\n"
        '# TYPE tasks gauge\ntasks{state="ready"} 3\n# EOF\n'
    )
    assert metric_names.exposed(page) == {"kills_total", "lost_total", "took_bucket", "took_sum", "took_count", "tasks"}
    assert metric_names.labels(page) == {"tasks": {"state"}}


def test_live_problems_name_a_missing_metric_and_an_unbounded_label():
    """A worker page lacking a queried worker metric, or labelling one by pod, is reported."""
    page = '# TYPE shoal_worker_paused gauge\nshoal_worker_paused{pod="w-1"} 0\n'
    problems = metric_names.live_problems({"worker": page})
    assert any("does not expose shoal_worker_running_tasks" in p for p in problems), problems
    assert any("shoal_worker_paused has labels ['pod']" in p for p in problems), problems


def test_checks_catch_an_untested_alert_and_a_panel_off_the_datasource_variable():
    """An alert without promtool cases and a panel on a fixed data source are reported."""
    rules = {"groups": [{"rules": [{"alert": "A", "expr": "up == 0", "labels": {}, "annotations": {}}]}]}
    problems = check.rule_problems(rules, {"tests": []})
    assert any("severity" in p for p in problems) and any("fire" in p for p in problems)
    board = {"uid": "u", "title": "t", "schemaVersion": 39, "templating": {"list": []},
             "panels": [{"id": 1, "type": "timeseries", "title": "p", "datasource": {"uid": "prom"}, "targets": []}]}
    problems = check.dashboard_problems(board)
    assert any("datasource` variable" in p for p in problems)
    assert any("'p' does not use" in p for p in problems) and any("without expr" in p for p in problems)


def test_the_shipped_rules_and_dashboard_pass():
    """The files the chart ships pass every static check."""
    assert check.main() == 0
