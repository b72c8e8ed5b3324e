"""Metric names in Shoal's monitoring files and in a live /metrics page: the one parser the
static check (monitoring/check.py) and the live tests (python/tests/test_monitoring.py,
e2e/tests/test_monitoring.py) share.

- `referenced()`: every metric name the alert rules' and the Grafana dashboard's queries name.
- `known()`: monitoring/known-metrics.txt, name -> what exposes it.
- `exposed(text)`: the sample names a Prometheus text page offers, counting families
  declared by a `# TYPE` line that have no sample yet.
- `live_problems(pages)`: what is wrong with real processes' pages: a queried metric of
  theirs missing, or a label beyond their static categories (BOUNDED_LABELS).

Names are read from PromQL by dropping what is not one: strings, label matchers, ranges,
grouping clauses, numbers and durations, keywords and function names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "charts" / "shoal-operator" / "files" / "shoal-rules.yaml"
DASHBOARD = REPO / "charts" / "shoal-operator" / "files" / "shoal-dashboard.json"
KNOWN = Path(__file__).resolve().parent / "known-metrics.txt"

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*?)(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*)?\)\s*$", re.S)
# The labels each process's metrics may carry: namespace, cluster, group and static
# categories, never a pod, task or worker name or an error text.
BOUNDED_LABELS = {
    "operator": {"namespace", "cluster", "group", "category", "direction", "outcome"},
    "scheduler": {"state"},
    "worker": set(),
}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def promql_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r"\$\{?\w+\}?", "", _STRING.sub('""', expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        token = match.group()
        rest = text[match.end():].lstrip()
        if token[0].isdigit() or token in KEYWORDS or rest.startswith("("):
            continue
        names.add(token)
    return names


def grafana_query_names(query: str) -> set[str]:
    """The metric names of a Grafana query: PromQL, or a variable's `label_values(expr, label)`."""
    found = _LABEL_VALUES.match(query)
    return promql_names(found.group(1)) if found else promql_names(query)


def rule_queries(rules: dict) -> list[str]:
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every panel target's `expr` (rows' nested panels too) and every query variable's query."""
    queries = []

    def panels(items: list[dict]) -> None:
        for panel in items:
            queries.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            panels(panel.get("panels", []))

    panels(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            queries.append(query.get("query", "") if isinstance(query, dict) else query or "")
    return queries


def referenced(rules: Path = RULES, dashboard: Path = DASHBOARD) -> set[str]:
    """Every metric name the alert rules and the dashboard query."""
    names = set()
    for expr in rule_queries(yaml.safe_load(rules.read_text())):
        names |= promql_names(expr)
    for query in dashboard_queries(json.loads(dashboard.read_text())):
        names |= grafana_query_names(query)
    return names


def known(path: Path = KNOWN) -> dict[str, str]:
    """known-metrics.txt: metric name -> what exposes it (operator, scheduler, worker, prometheus)."""
    table = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, source = line.split()
            table[name] = source
    return table


def exposed(text: str) -> set[str]:
    """The sample names of a Prometheus/OpenMetrics text page, with those of families
    declared by `# TYPE` (a counter `x` offers `x_total`; a histogram `_bucket`, `_sum`, `_count`)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            if kind == "counter" and family.endswith("_total"):
                names.add(family)  # the classic text format names a counter with its suffix
            else:
                names |= {family + suffix for suffix in _SUFFIXES.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def labels(text: str) -> dict[str, set[str]]:
    """Label names used by each sample name of a text page (`le` and `quantile` left out)."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            keys = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', rest.split("}", 1)[0])) if rest else set()
            found.setdefault(name.split()[0], set()).update(keys - {"le", "quantile"})
    return found


def live_problems(pages: dict[str, str]) -> list[str]:
    """Problems of real /metrics pages by what served them (operator, scheduler, worker):
    a metric the rules or the dashboard query that the page lacks, or an unbounded label."""
    table = known()
    queried = referenced()
    problems = [f"queried but not in known-metrics.txt: {name}" for name in sorted(queried - set(table))]
    for source, page in pages.items():
        missing = {name for name in queried if table.get(name) == source} - exposed(page)
        problems += [f"the {source} does not expose {name} (renamed? update the rules or dashboard)" for name in sorted(missing)]
        allowed = BOUNDED_LABELS[source]
        for name, keys in sorted(labels(page).items()):
            if keys - allowed:
                problems.append(f"{source} metric {name} has labels {sorted(keys - allowed)} beyond {sorted(allowed)}")
    return problems
