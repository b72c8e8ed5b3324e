"""``performance_report``: what ran inside a ``with`` block, written as one standalone HTML
file (task stream, time and result bytes per function, the worker timeline and transfers
between workers), like Dask's ``performance_report``. The scheduler renders it from the
task stream it keeps (the last 100,000 tasks); ``Client.get_task_stream`` gives the same
records as data.
"""

from __future__ import annotations

import time
from types import TracebackType

from shoal.errors import ShoalError


class performance_report:
    """Writes ``filename`` when the block ends, for ``client`` (default: the only open
    Client). The file opens offline: its scripts and data are inline."""

    def __init__(self, filename: str = "shoal-report.html", client=None, title: str | None = None) -> None:
        self.filename = filename
        self.client = client
        self.title = title or f"Shoal performance report: {filename}"
        self.start: float | None = None

    def __enter__(self) -> performance_report:
        if self.client is None:
            from shoal.client import _open_clients

            clients = list(_open_clients)
            if len(clients) != 1:
                raise ShoalError(
                    f"performance_report needs a client: {len(clients)} are open; "
                    "pass performance_report(filename, client=client)"
                )
            self.client = clients[0]
        self.start = time.time()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        html = self.client.performance_report_html(self.start, self.title)
        with open(self.filename, "w", encoding="utf-8") as f:
            f.write(html)
