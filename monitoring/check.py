"""Static checks of Shoal's alert rules and Grafana dashboard (run by monitoring/test.sh):
the dashboard is JSON Grafana can import (a `${datasource}` variable every panel uses, the
namespace and cluster variables, unique panel ids, a query on every panel); every alert has
a severity, a summary and a description naming its namespace, and a promtool test that
expects it to fire and one that expects it not to; every metric queried is in
known-metrics.txt. Prints each problem and exits 1 if there is any."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import metric_names
import yaml

TESTS = Path(__file__).resolve().parent / "rules.test.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEVERITIES = {"info", "warning", "critical"}


def dashboard_problems(board: dict) -> list[str]:
    problems = [f"dashboard has no {key}" for key in ("uid", "title", "schemaVersion", "panels") if not board.get(key)]
    variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
    source = variables.get("datasource", {})
    if source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append("no `datasource` variable of type datasource (query: prometheus)")
    for name in ("namespace", "cluster"):
        var = variables.get(name, {})
        if var.get("type") != "query" or var.get("datasource") != DATASOURCE:
            problems.append(f"no `{name}` query variable on ${{datasource}}")
    ids: set[int] = set()
    for panel in board.get("panels", []):
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"panel id {panel.get('id')} ({title}) is used twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
            problems.append(f"panel {title!r} has no full gridPos")
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"panel {title!r} does not use ${{datasource}}")
        targets = panel.get("targets", [])
        if not targets or not all(t.get("expr") and t.get("refId") for t in targets):
            problems.append(f"panel {title!r} has a target without expr or refId")
        if any(t.get("datasource", DATASOURCE) != DATASOURCE for t in targets):
            problems.append(f"a target of panel {title!r} does not use ${{datasource}}")
    return problems


def rule_problems(rules: dict, tests: dict) -> list[str]:
    problems = []
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append(f"alert {name} has no severity label ({', '.join(sorted(SEVERITIES))})")
            notes = rule.get("annotations", {})
            for key in ("summary", "description"):
                if "{{ $labels.namespace }}" not in notes.get(key, ""):
                    problems.append(f"alert {name}: its {key} does not name {{{{ $labels.namespace }}}}")
            if name not in firing:
                problems.append(f"alert {name} has no promtool test expecting it to fire")
            if name not in quiet:
                problems.append(f"alert {name} has no promtool test expecting it not to fire")
    return problems


def name_problems() -> list[str]:
    unknown = metric_names.referenced() - set(metric_names.known())
    return [f"metric {name} is queried but not in known-metrics.txt" for name in sorted(unknown)]


def main() -> int:
    try:
        board = json.loads(metric_names.DASHBOARD.read_text())
    except json.JSONDecodeError as e:
        print(f"{metric_names.DASHBOARD}: not valid JSON: {e}")
        return 1
    rules = yaml.safe_load(metric_names.RULES.read_text())
    problems = dashboard_problems(board) + rule_problems(rules, yaml.safe_load(TESTS.read_text())) + name_problems()
    for problem in problems:
        print(problem)
    if problems:
        return 1
    panels = sum(1 for p in board["panels"] if p.get("type") != "row")
    alerts = sum(1 for g in rules["groups"] for r in g["rules"] if r.get("alert"))
    print(f"dashboard: {panels} panels; rules: {alerts} alerts; {len(metric_names.referenced())} metric names, all known")
    return 0


if __name__ == "__main__":
    sys.exit(main())
