"""Progress bars: the text bar counts finished futures; compute(progress=True) tracks a graph."""

from __future__ import annotations

import io
import time

import dask
import pytest

import shoal


def slow(seconds):
    time.sleep(seconds)
    return seconds


def test_text_bar_counts_futures_until_done(client):
    """progress() blocks until the futures are done and ends the line at 100%."""
    futures = client.map(slow, [0.05] * 4)
    out = io.StringIO()
    shoal.progress(futures, notebook=False, stream=out, interval=0.02)
    assert all(f.done() for f in futures)
    text = out.getvalue()
    assert "\r[" in text and text.rstrip().endswith("s")
    assert "100% | 4/4 tasks" in text and text.endswith("\n")


def test_text_bar_reports_failures(client):
    """Failed futures count as done and are shown as failed."""
    futures = [client.submit(slow, "not a number"), client.submit(slow, 0.01)]
    out = io.StringIO()
    shoal.progress(futures, notebook=False, stream=out, interval=0.02)
    assert "2/2 tasks | 1 failed" in out.getvalue()


def test_compute_with_progress_returns_at_once(client, capsys):
    """compute(progress=True) returns a Future immediately; the bar ends on stderr."""
    parts = [dask.delayed(slow)(0.05) for _ in range(6)]
    future = client.compute(dask.delayed(sum)(parts), progress=True)
    assert isinstance(future, shoal.Future)
    assert future.result() == pytest.approx(0.3)
    err = ""
    deadline = time.monotonic() + 30  # the bar thread ends shortly after the result
    while "7/7 tasks" not in err and time.monotonic() < deadline:
        time.sleep(0.02)
        err += capsys.readouterr().err
    assert "100%" in err and "7/7 tasks" in err
