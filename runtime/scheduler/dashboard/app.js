// The live dashboard: one Server-Sent Events stream of JSON deltas (relative URL, so any
// path prefix works) that reconnects by itself with backoff and, while it is down, falls
// back to polling the same deltas. The server aggregates: the page never gets per-task
// data, only per-prefix counts, workers and task-stream bars.
"use strict";
(() => {
  const MAX_BARS = 4000;
  const STREAM_WINDOW_MS = 60_000;
  const state = { cluster: {}, prefixes: new Map(), workers: new Map(), bars: [], samples: [], errors: [] };
  const live = { cursor: null, updates: 0, lastUpdate: 0, connection: "connecting", reconnects: 0, renderMs: 0, renderMaxMs: 0 };
  window.shoalDashboard = { state, live };

  const $ = id => document.getElementById(id);
  const esc = ShoalCharts.escape;

  function apply(d) {
    if (d.full) {
      state.prefixes.clear(); state.workers.clear();
      state.bars = []; state.samples = []; state.errors = [];
    }
    state.cluster = d.cluster;
    for (const p of d.prefixes) state.prefixes.set(p.name, p);
    for (const w of d.workers) state.workers.set(w.name, w);
    for (const name of d.workers_removed) state.workers.delete(name);
    state.bars.push(...d.bars);
    if (state.bars.length > MAX_BARS) state.bars.splice(0, state.bars.length - MAX_BARS);
    state.samples.push(...d.samples);
    if (state.samples.length > 3600) state.samples.splice(0, state.samples.length - 3600);
    state.errors.unshift(...d.errors.reverse());
    state.errors.length = Math.min(state.errors.length, 100);
    live.cursor = d.cursor;
    live.updates++;
    live.lastUpdate = Date.now();
    scheduleRender();
  }

  // ---- connection: SSE, with backoff and polling while it is down ---------------------
  let source = null, failures = 0, pollTimer = null, retryTimer = null;

  function setConnection(s, detail) {
    live.connection = s;
    const el = $("connection");
    el.dataset.state = s;
    el.textContent = detail || s;
  }

  function connect() {
    retryTimer = null;
    const url = "api/v1/dashboard/events" + (live.cursor ? "?since=" + encodeURIComponent(live.cursor) : "");
    source = new EventSource(url);
    source.onopen = () => { failures = 0; setConnection("live"); stopPolling(); };
    source.onmessage = e => apply(JSON.parse(e.data));
    source.onerror = () => {
      source.close();
      source = null;
      failures++;
      live.reconnects++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
      setConnection("reconnecting", `reconnecting in ${Math.round(delay / 1000)} s`);
      startPolling();
      retryTimer = setTimeout(connect, delay);
    };
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(poll, 2000);
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  async function poll() {
    try {
      const r = await fetch("api/v1/dashboard?since=" + encodeURIComponent(live.cursor || ""), { cache: "no-store" });
      if (r.status === 401) { setConnection("reconnecting", "logged out: reload to log in"); return; }
      if (!r.ok) return;
      for (const d of await r.json()) apply(d);
      if (!source || source.readyState !== EventSource.OPEN) setConnection("polling");
    } catch (_) { /* the proxy or scheduler is down: the next poll or reconnect retries */ }
  }

  // ---- rendering (at most once a frame) ------------------------------------------------
  let pending = false;
  function scheduleRender() {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); }
  }

  let stream = null, size = null;
  function render() {
    if (!live.updates) return;
    const started = performance.now();
    draw();
    live.renderMs = performance.now() - started;
    live.renderMaxMs = Math.max(live.renderMaxMs, live.renderMs);
  }

  function draw() {
    const c = state.cluster;
    $("cluster-name").textContent = c.name || "";
    $("summary").textContent = `${c.workers} workers · ${c.cores} cores · memory ${c.memory_used_mib} / ${c.memory_limit_mib} MiB · ${c.clients} clients · runtime ${c.version}`;
    renderProgress();
    renderWorkers();
    renderGraph(c.graph || {});
    renderErrors();
    if (!stream) stream = ShoalCharts.timeline($("stream"), 220);
    const lanes = [...new Set([...state.workers.keys(), ...state.bars.map(b => b[0])])].sort();
    const now = Date.now();
    stream.set(lanes, state.bars.filter(b => b[3] >= now - STREAM_WINDOW_MS), now - STREAM_WINDOW_MS, now);
    if (!size) size = ShoalCharts.lines($("size"), ["workers", "desired", "cores"], 180, true);
    const s = state.samples;
    size.set([s.map(x => x[0]), s.map(x => x[1]), s.map(x => x[3]), s.map(x => x[2])]);
    $("reason").textContent = c.reason ? `Autoscaler: wants ${c.desired} (${c.reason})` : "";
  }

  function renderProgress() {
    const rows = [...state.prefixes.values()]
      .map(p => ({ ...p, total: p.done + p.running + p.queued + p.erred }))
      .filter(p => p.total > 0)
      .sort((a, b) => a.name.localeCompare(b.name));
    $("progress").innerHTML = rows.length ? rows.map(p => {
      const pct = n => (100 * Math.max(0, n) / p.total).toFixed(2) + "%";
      return `<div class="prefix" data-prefix="${esc(p.name)}">
        <span class="name" title="${esc(p.name)}">${esc(p.name)}</span>
        <span class="bar"><span class="seg done" style="width:${pct(p.done - p.memory)}"></span><span class="seg memory" style="width:${pct(Math.min(p.memory, p.done))}"></span><span class="seg running" style="width:${pct(p.running)}"></span><span class="seg queued" style="width:${pct(p.queued)}"></span><span class="seg erred" style="width:${pct(p.erred)}"></span></span>
        <span class="counts"><span class="done-count">${p.done}</span> / ${p.total} done · ${p.running} running · ${p.queued} queued · ${p.erred} erred</span></div>`;
    }).join("") : `<p class="empty">No tasks yet.</p>`;
  }

  function renderWorkers() {
    const rows = [...state.workers.values()].sort((a, b) => a.name.localeCompare(b.name));
    $("workers").tBodies[0].innerHTML = rows.map(w => {
      const used = w.memory_limit_mib ? Math.min(100, 100 * w.memory_used_mib / w.memory_limit_mib) : 0;
      return `<tr><td>${esc(w.name)}</td><td>${esc(w.group)}</td><td class="state-${esc(w.state)}">${esc(w.state)}</td>
        <td>${w.cores}</td><td>${w.cpu.toFixed(1)}</td>
        <td><span class="mem"><span style="width:${used.toFixed(1)}%"></span></span>${w.memory_used_mib} / ${w.memory_limit_mib} MiB</td>
        <td>${w.spilled_mib} MiB</td><td>${w.running}</td><td>${w.assigned}</td></tr>`;
    }).join("");
  }

  function renderGraph(g) {
    const rows = [["tasks known", g.tasks], ["waiting", g.waiting], ["ready", g.ready], ["running", g.running],
      ["in memory", g.memory], ["released", g.released], ["erred", g.erred], ["finished (all time)", g.finished_total], ["prefixes", g.prefixes]];
    $("graph").tBodies[0].innerHTML = rows.map(([k, v]) => `<tr><th>${k}</th><td>${v ?? 0}</td></tr>`).join("");
  }

  function renderErrors() {
    if (!state.errors.length) return;
    $("errors").innerHTML = state.errors.map(e => `<div class="error"><code>${esc(e.key)}</code> on ${esc(e.worker)}: <b>${esc(e.kind)}</b> ${esc(e.message)}
      ${e.traceback ? `<details><summary>traceback</summary><pre>${esc(e.traceback)}</pre></details>` : ""}</div>`).join("");
  }

  window.addEventListener("resize", () => { stream && stream.resize(); size && size.resize(); });
  connect();
  setInterval(scheduleRender, 1000); // the task stream's window moves even without updates
})();
