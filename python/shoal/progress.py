"""Progress bars of finished/total tasks: on stderr in a terminal (one line redrawn with
carriage returns), as an ipywidgets bar in Jupyter (a text line when ipywidgets is not
installed).

``progress(futures)`` counts the given futures (or the futures behind persisted
collections) and blocks until they are done in a terminal; in Jupyter it returns at once
and the widget updates itself. ``Client.compute(..., progress=True)`` tracks a whole
submitted graph without blocking: the scheduler only reports the keys a client wants, so
that bar counts the cluster's finished tasks since the submission (other clients' tasks
included) and snaps to done when the result is ready.

Not here: anything that changes what runs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from shoal.futures import Future


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _TextBar:
    """One line, redrawn with ``\\r``: ``[#####     ] 50% | 3/6 tasks | 1.2 s``."""

    def __init__(self, stream=None, width: int = 40) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()

    def update(self, done: int, total: int, errors: int = 0) -> None:
        frac = done / total if total else 1.0
        filled = int(round(self.width * frac))
        bar = "#" * filled + " " * (self.width - filled)
        extra = f" | {errors} failed" if errors else ""
        elapsed = time.monotonic() - self.start
        self.stream.write(f"\r[{bar}] {frac:4.0%} | {done}/{total} tasks{extra} | {elapsed:.1f} s")
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class _WidgetBar:
    def __init__(self) -> None:
        import ipywidgets
        from IPython.display import display

        self.start = time.monotonic()
        self.bar = ipywidgets.IntProgress(min=0, max=1, value=0, bar_style="info")
        self.label = ipywidgets.HTML("")
        self.box = ipywidgets.HBox([self.bar, self.label])
        display(self.box)

    def update(self, done: int, total: int, errors: int = 0) -> None:
        self.bar.max = max(total, 1)
        self.bar.value = done
        extra = f", {errors} failed" if errors else ""
        self.label.value = f"{done}/{total} tasks{extra} ({time.monotonic() - self.start:.1f} s)"
        if errors:
            self.bar.bar_style = "danger"

    def finish(self) -> None:
        if self.bar.bar_style != "danger":
            self.bar.bar_style = "success"


def _make_bar(notebook: bool | None, stream=None):
    if notebook is None:
        notebook = _in_notebook()
    if notebook:
        try:
            return _WidgetBar()
        except ImportError:
            return _TextBar(stream or sys.stdout)
    return _TextBar(stream)


def _run(bar, count: Callable[[], tuple[int, int, int]], interval: float) -> None:
    while True:
        done, total, errors = count()
        bar.update(done, total, errors)
        if done >= total:
            break
        time.sleep(interval)
    bar.finish()


def _futures_in(objs) -> list[Future]:
    out: list[Future] = []

    def walk(x) -> None:
        if isinstance(x, Future):
            out.append(x)
        elif isinstance(x, (list, tuple, set, frozenset)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)
        elif hasattr(x, "__dask_graph__"):  # a persisted collection holds Futures
            graph = x.__dask_graph__()
            if graph is not None:
                for v in dict(graph).values():
                    if isinstance(v, Future):
                        out.append(v)

    walk(objs)
    return out


def progress(*futures, notebook: bool | None = None, interval: float = 0.1, stream=None):
    """Shows finished/total of these futures (or persisted collections): blocks until
    they are all done in a terminal; in Jupyter returns the widget bar at once."""
    fs = list({id(f): f for f in _futures_in(futures)}.values())
    if not fs:
        raise ValueError("progress() needs shoal Futures or collections persisted on a shoal Client")

    def count() -> tuple[int, int, int]:
        statuses = [f.status for f in fs]
        errors = sum(1 for s in statuses if s in ("error", "cancelled"))
        return len(statuses) - statuses.count("pending"), len(statuses), errors

    bar = _make_bar(notebook, stream)
    if isinstance(bar, _WidgetBar):
        threading.Thread(target=_run, args=(bar, count, interval), daemon=True).start()
        return bar
    _run(bar, count, interval)
    return None


def track_graph(client, futures: list[Future], total: int, notebook: bool | None = None, interval: float = 0.25):
    """Non-blocking bar for a graph of ``total`` tasks whose results are ``futures``:
    counts the cluster's finished tasks since now, until the futures are done."""
    try:
        baseline = client.cluster_info().tasks.finished_total
    except Exception:  # noqa: BLE001 - no counts: the bar only shows the end
        baseline = None

    def count() -> tuple[int, int, int]:
        statuses = [f.status for f in futures]
        if "pending" not in statuses:
            errors = sum(1 for s in statuses if s != "finished")
            return total, total, errors
        done = 0
        if baseline is not None:
            try:
                done = client.cluster_info().tasks.finished_total - baseline
            except Exception:  # noqa: BLE001 - closed client: stop counting
                return total, total, 0
        return max(0, min(total - 1, done)), total, 0

    bar = _make_bar(notebook)
    threading.Thread(target=_run, args=(bar, count, interval), name="shoal-progress", daemon=True).start()
    return bar
