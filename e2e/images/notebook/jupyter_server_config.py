# The notebook image's Jupyter server settings (/etc/jupyter/jupyter_server_config.py).
# jupyter-server-proxy proxies only to hosts it allows: here localhost and Shoal scheduler
# Services (`<cluster>-scheduler.<namespace>.svc[.cluster.local]`), so a cluster's dashboard
# opens through the Hub at /user/<name>/proxy/<cluster>-scheduler.<namespace>.svc:8787/status.
import re

_SCHEDULER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-scheduler\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.svc(\.cluster\.local)?$")


def _allowed(handler, host: str) -> bool:
    return host in ("localhost", "127.0.0.1") or bool(_SCHEDULER.match(host))


c.ServerProxy.host_allowlist = _allowed  # noqa: F821 (`c` is the config traitlets gives)
