"""How a KubeCluster is shown: its dashboard link (JupyterHub proxy path, port-forward or
Service URL), its figures (workers, cores, memory from the spec and status), and its text
and HTML reprs. Pure: the environment and the cluster object are passed in.

The link carries the cluster's token (``?token=``): the dashboard then sets a cookie
scoped to the path it was opened under and redirects to itself (relative), so the link
works when clicked, behind jupyter-server-proxy too.

Not here: finding the forwarded port (``forward.py``), reading the cluster (``api.py``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from shoal.kube.spec import DASHBOARD_PORT, service_host

_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def dashboard_link(
    cluster: str,
    namespace: str,
    token: str | None,
    *,
    env: Mapping[str, str],
    forwarded_port: int | None = None,
) -> str:
    """The dashboard page of the cluster for whoever runs this client.

    - through a port-forward (``forwarded_port``): ``http://127.0.0.1:<port>/status``;
    - under JupyterHub (``JUPYTERHUB_SERVICE_PREFIX``): the jupyter-server-proxy path
      ``{prefix}proxy/<c>-scheduler.<ns>.svc:8787/status``, absolute when
      ``JUPYTERHUB_PUBLIC_URL`` (or ``JUPYTERHUB_PUBLIC_HUB_URL``) names the public host,
      else relative to the Hub's host (as Dask's link is);
    - otherwise (in a pod): the Service URL ``http://<c>-scheduler.<ns>.svc:8787/status``.
    """
    query = f"?token={quote(token, safe='')}" if token else ""
    if forwarded_port is not None:
        return f"http://127.0.0.1:{forwarded_port}/status{query}"
    target = f"{service_host(cluster, namespace)}:{DASHBOARD_PORT}"
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        if not prefix.endswith("/"):
            prefix += "/"
        if not prefix.startswith("/"):
            prefix = "/" + prefix
        path = f"{prefix}proxy/{target}/status{query}"
        for var in ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_PUBLIC_HUB_URL"):
            parts = urlsplit(env.get(var) or "")
            if parts.scheme in ("http", "https") and parts.netloc:
                return f"{parts.scheme}://{parts.netloc}{path}"
        return path
    return f"http://{target}/status{query}"


def parse_quantity(text: str | int | float | None) -> float | None:
    """A Kubernetes quantity (``1Gi``, ``500m``, ``2``) as a number; None if unreadable."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = _QUANTITY.match(str(text).strip())
    if not m or m.group(2) not in _SUFFIX:
        return None
    return float(m.group(1)) * _SUFFIX[m.group(2)]


@dataclass(frozen=True)
class Figures:
    """What a cluster has now: workers ready and wanted, their cores and memory limit
    (memory None when the workers have no limit), and the autoscaling bounds if on."""

    phase: str
    version: str
    ready: int
    wanted: int
    cores: int
    memory: float | None
    adapt: tuple[int, int] | None


def figures(cluster: dict) -> Figures:
    """The figures of a ShoalCluster object. Cores per worker follow the operator: the
    pool's ``cores``, else its CPU limit rounded up, else 1."""
    spec = cluster.get("spec") or {}
    status = cluster.get("status") or {}
    workers = spec.get("workers") or {}
    resources = workers.get("resources") or {}
    limits = resources.get("limits") or {}
    per_cores = workers.get("cores")
    if not per_cores:
        cpu = parse_quantity(limits.get("cpu"))
        per_cores = max(1, math.ceil(cpu)) if cpu else 1
    memory = parse_quantity(limits.get("memory"))
    ready = int(status.get("readyWorkers") or 0)
    auto = workers.get("autoscaling") or {}
    adapt = (int(workers.get("minReplicas", 0)), int(workers.get("maxReplicas", 0))) if auto.get("enabled") else None
    return Figures(
        phase=status.get("phase") or "Pending",
        version=status.get("version") or spec.get("version") or "?",
        ready=ready,
        wanted=int(status.get("desiredWorkers", workers.get("replicas", 0)) or 0),
        cores=ready * int(per_cores),
        memory=ready * memory if memory is not None else None,
        adapt=adapt,
    )


def format_bytes(n: float | None) -> str:
    if n is None:
        return "no limit"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def text_repr(name: str, namespace: str, fig: Figures | None, link: str | None, state: str = "") -> str:
    """``<shoal.KubeCluster 'c' in 'ns': Running, 2/2 workers, 2 cores, 2.0 GiB, dashboard ...>``."""
    if fig is None:
        return f"<shoal.KubeCluster {name!r} in {namespace!r}: {state or 'unknown'}>"
    adapt = f" (adapt {fig.adapt[0]}-{fig.adapt[1]})" if fig.adapt else ""
    parts = [
        fig.phase if not state else f"{fig.phase}, {state}",
        f"{fig.ready}/{fig.wanted} workers{adapt}",
        f"{fig.cores} cores",
        format_bytes(fig.memory),
    ]
    if link:
        parts.append(f"dashboard {link}")
    return f"<shoal.KubeCluster {name!r} in {namespace!r}: {', '.join(parts)}>"


def html_repr(name: str, namespace: str, fig: Figures | None, link: str | None, state: str = "") -> str:
    """A small table for Jupyter: name, namespace, phase, version, workers, cores, memory
    and the dashboard link (opens in a new tab)."""
    e = html.escape
    rows = [("Namespace", e(namespace))]
    if fig is not None:
        adapt = f" (adapting {fig.adapt[0]}&ndash;{fig.adapt[1]})" if fig.adapt else ""
        rows += [
            ("Phase", e(fig.phase + (f", {state}" if state else ""))),
            ("Version", e(fig.version)),
            ("Workers", f"{fig.ready} ready of {fig.wanted}{adapt}"),
            ("Cores", str(fig.cores)),
            ("Memory", e(format_bytes(fig.memory))),
        ]
    else:
        rows.append(("State", e(state or "unknown")))
    if link:
        rows.append(("Dashboard", f'<a href="{e(link)}" target="_blank" rel="noopener">{e(link.split("?")[0])}</a>'))
    body = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{k}</th><td style="text-align:left">{v}</td></tr>'
        for k, v in rows
    )
    return (
        '<div class="shoal-kubecluster">'
        f"<strong>shoal.KubeCluster</strong> <code>{e(name)}</code>"
        f"<table>{body}</table></div>"
    )
