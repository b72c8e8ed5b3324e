"""The display of a cluster's start, tqdm's way: one line on stderr redrawn with carriage
returns in a terminal (``ShoalCluster c: Running | scheduler ready | workers 2/2 | 14.2 s``,
ended with a newline), an HTML line updated in place in Jupyter, nothing when stderr is
not a terminal (a log file or CI) unless asked for.

Not here: what the line says (``spec.progress_line``).
"""

from __future__ import annotations

import html
import sys
import time

from shoal.progress import _in_notebook


class StartDisplay:
    """Shows ``update(text)`` calls until ``finish(text)``. ``enabled`` None: in Jupyter
    or when the stream is a terminal."""

    def __init__(self, title: str, enabled: bool | None = None, stream=None) -> None:
        self.title = title
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self._handle = None
        self._width = 0
        notebook = _in_notebook()
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = notebook or bool(isatty and isatty())
        self.enabled = enabled
        self.notebook = notebook and enabled

    def _line(self, text: str) -> str:
        return f"{self.title}: {text} | {time.monotonic() - self.start:.1f} s"

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        line = self._line(text)
        if self.notebook:
            self._show(line)
            return
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()

    def finish(self, text: str) -> None:
        if not self.enabled:
            return
        self.update(text)
        if not self.notebook:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, line: str) -> None:
        from IPython.display import HTML, display

        body = HTML(f"<code>{html.escape(line)}</code>")
        if self._handle is None:
            self._handle = display(body, display_id=True)
        else:
            self._handle.update(body)
