"""The dashboard in a real browser (Debian's Chromium through Playwright): loaded
directly and under a JupyterHub-style path prefix through configurable-http-proxy, its
progress moving with a running graph, recovering by itself when the proxy drops and comes
back, and a performance report of a known graph opening in the same browser. Screenshots
of every panel go under ``test-output/dashboard/`` (``SHOAL_TEST_OUTPUT``)."""

from __future__ import annotations

import os
import time

from browser import OUTPUT, Proxy, chromium
from conftest import local_cluster

import shoal

PANELS = ["progress", "stream", "workers", "size", "graph", "errors"]


def gated(i: int, gate: str) -> int:
    """Waits for the gate file (at most 120 s), then takes 50 ms."""
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)
    return i


def broken(x: int) -> int:
    raise ValueError(f"bad input {x}")


def done_count(page, prefix: str) -> int:
    text = page.evaluate(
        """p => { const el = document.querySelector(`.prefix[data-prefix="${p}"] .done-count`);
                  return el ? el.textContent : "0"; }""",
        prefix,
    )
    return int(text)


def wait_for(what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def connection(page) -> str:
    return page.evaluate("window.shoalDashboard.live.connection")


def screenshots(page, folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "page.png"), full_page=True)
    for panel in PANELS:
        page.locator(f"#panel-{panel}").screenshot(path=str(folder / f"{panel}.png"))


def test_dashboard_live_direct_and_behind_a_dropping_proxy(tmp_path):
    """Progress moves live on the page loaded directly and under a path prefix; when the
    proxy goes away and comes back the page recovers without a reload; the performance
    report of the graph shows its task stream and its functions."""
    out = OUTPUT / "dashboard"
    gates = [str(tmp_path / f"gate-{i}") for i in range(3)]
    report = out / "performance-report.html"
    out.mkdir(parents=True, exist_ok=True)
    with local_cluster(n_workers=2, cores=1) as cluster, cluster.get_client() as client, chromium() as browser:
        http = cluster.dashboard_link.split("/status")[0]
        with shoal.performance_report(str(report), client=client):
            failing = client.submit(broken, 7, key="broken-7")
            futures = [client.submit(gated, i, gates[i // 20], key=f"gated-{i}") for i in range(60)]

            direct = browser.new_page(viewport={"width": 1280, "height": 1000})
            direct.goto(cluster.dashboard_link)
            assert direct.url == f"{http}/status", "the token link redirects to the page, dropping the token"
            wait_for("the direct page to go live", lambda: connection(direct) == "live")
            open(gates[0], "w").close()
            wait_for("20 gated tasks done on the direct page", lambda: done_count(direct, "gated") >= 20)
            wait_for("the error panel", lambda: "broken-7" in direct.inner_text("#panel-errors"))
            wait_for("task-stream bars", lambda: direct.evaluate("window.shoalDashboard.state.bars.length") > 0)
            screenshots(direct, out / "direct")
            direct.close()

            proxy = Proxy("/user/alice/proxy/8787", http)
            proxy.start()
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 1000})
                page = context.new_page()
                token = cluster.dashboard_link.split("token=")[1]
                page.goto(proxy.url(f"status?token={token}"))
                assert page.url == proxy.url("status")
                wait_for("the proxied page to go live", lambda: connection(page) == "live")
                before = done_count(page, "gated")
                open(gates[1], "w").close()
                wait_for("progress to move through the proxy", lambda: done_count(page, "gated") >= 40)
                assert before <= 20

                proxy.stop()
                wait_for("the page to notice the proxy went away", lambda: connection(page) != "live")
                proxy.start()
                open(gates[2], "w").close()
                wait_for("the page to recover by itself", lambda: connection(page) == "live", timeout=90)
                wait_for("progress after the recovery", lambda: done_count(page, "gated") >= 60)
                assert page.evaluate("window.shoalDashboard.live.reconnects") >= 1
                assert page.url == proxy.url("status"), "recovered without a reload"
                screenshots(page, out / "proxied")
                context.close()
            finally:
                proxy.stop()
            assert [f.result() for f in futures] == list(range(60))
            try:
                failing.result()
            except Exception:  # noqa: BLE001 - the failure itself is the point
                pass

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(report.as_uri())
        rows = page.locator('#functions tr[data-prefix="gated"] td').all_inner_texts()
        assert rows[1] == "60", rows
        assert page.locator("#stream canvas").count() == 1
        assert "61 tasks" in page.inner_text("#summary")
        page.screenshot(path=str(out / "performance-report.png"), full_page=True)
