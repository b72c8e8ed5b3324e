"""What watching the dashboard costs at scale: `shoal bench` runs a 1M-task builtin graph
on 200 worker processes (1 core each) while 3 viewers hold the live stream open and a real
Chromium page (Debian's, through Playwright) shows the dashboard; the same graph also runs
unwatched. Printed: each update's size, the scheduler's time on the dashboard against its
whole CPU time, the page's render time per update and how late its main thread answered
(responsiveness), and both runs' throughput. Nothing is asserted on time.

    SHOAL_BIN=target/release/shoal python3 bench/dashboard_load.py [--workers 200] [--tasks 1000000]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python" / "tests"))
from browser import chromium  # the tests' Chromium launcher


def run(binary: str, workers: int, tasks: int, viewers: int, on_link=None) -> dict[str, str]:
    args = [binary, "bench", "--workers", str(workers), "--cores", "1", "--graph", "tree",
            "--tasks", str(tasks), "--dashboard-viewers", str(viewers)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, SHOAL_LOG="warn"))
    figures: dict[str, str] = {}

    def read_stderr() -> None:
        for line in proc.stderr:
            if line.startswith("dashboard: http") and on_link:
                on_link(line.split(" ", 1)[1].strip())
            if line.startswith(("graph:", "dashboard: ", "submitted", "result")):
                print("   ", line.rstrip())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    for line in proc.stdout:
        figures.update(re.findall(r"(\w+)=(\S+)", line))
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(args)} failed with exit code {proc.returncode}")
    reader.join(5)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    opts = parser.parse_args()
    binary = os.environ.get("SHOAL_BIN", "target/release/shoal")

    print(f"== unwatched: {opts.tasks} tasks on {opts.workers} workers")
    plain = run(binary, opts.workers, opts.tasks, 0)

    print(f"== watched: 3 stream viewers and a Chromium page, {opts.tasks} tasks on {opts.workers} workers")
    page_stats: dict[str, float] = {}
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        link: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            while not link and not stop.is_set():
                time.sleep(0.05)
            if not link:
                return
            page.goto(link[0])
            lags = []
            while not stop.is_set():
                asked = time.monotonic()
                page.evaluate("1")  # answered by the page's main thread
                lags.append((time.monotonic() - asked) * 1000)
                time.sleep(0.2)
            live = page.evaluate("window.shoalDashboard.live")
            lags.sort()
            page_stats.update(updates=live["updates"], render_max_ms=live["renderMaxMs"],
                              answer_median_ms=lags[len(lags) // 2] if lags else 0,
                              answer_max_ms=lags[-1] if lags else 0)

        # Playwright's sync API stays on the thread that made it: watch on this thread while
        # the bench runs beside it.
        result: dict[str, dict[str, str]] = {}
        runner = threading.Thread(target=lambda: result.update(
            watched=run(binary, opts.workers, opts.tasks, 3, on_link=link.append)))
        runner.start()
        threading.Thread(target=lambda: (runner.join(), stop.set()), daemon=True).start()
        watch()
        runner.join()
    watched = result["watched"]
    print(f"    page: {page_stats.get('updates', 0)} updates applied, render at most "
          f"{page_stats.get('render_max_ms', 0):.1f} ms; main thread answered in "
          f"{page_stats.get('answer_median_ms', 0):.1f} ms median, {page_stats.get('answer_max_ms', 0):.1f} ms at most")
    share = 100 * float(watched["dashboard_cpu_s"]) / max(float(watched["scheduler_cpu_s"]), 1e-9)
    print(f"unwatched_tasks_per_s={plain['tasks_per_s']} watched_tasks_per_s={watched['tasks_per_s']} "
          f"update_bytes_median={watched['update_bytes_median']} update_bytes_max={watched['update_bytes_max']} "
          f"dashboard_cpu_share_pct={share:.2f} page_render_max_ms={page_stats.get('render_max_ms', 0):.1f}")


if __name__ == "__main__":
    main()
