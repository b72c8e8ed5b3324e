// Draws a performance report from SHOAL_REPORT (inlined by the scheduler): tasks as
// [key, prefix, worker, start_ms, stop_ms, nbytes, ok], transfers as
// [from, to, start_ms, stop_ms, bytes, objects].
"use strict";
(() => {
  const { tasks, transfers, dropped } = SHOAL_REPORT;
  const esc = ShoalCharts.escape;
  const $ = id => document.getElementById(id);
  const t0 = Math.min(...tasks.map(t => t[3]), Infinity);
  const t1 = Math.max(...tasks.map(t => t[4]), -Infinity);
  const workers = [...new Set(tasks.map(t => t[2]))].sort();
  const seconds = ms => (ms / 1000).toFixed(3) + " s";
  $("summary").textContent = tasks.length
    ? `${tasks.length} tasks on ${workers.length} workers over ${seconds(t1 - t0)}` +
      (dropped ? ` (${dropped} older tasks of this window were no longer kept)` : "")
    : "No task ran inside the report's block.";

  if (tasks.length) {
    const stream = ShoalCharts.timeline($("stream"), Math.max(120, 28 * workers.length + 40));
    stream.set(workers, tasks.map(t => [t[2], t[1], t[3], t[4], 1, t[6]]), t0, Math.max(t1, t0 + 1));
  }

  const byPrefix = new Map();
  for (const [, prefix, , start, stop, nbytes, ok] of tasks) {
    const p = byPrefix.get(prefix) || { n: 0, failed: 0, ms: 0, bytes: 0, max: 0 };
    p.n++; if (!ok) p.failed++;
    p.ms += stop - start; p.bytes += nbytes; p.max = Math.max(p.max, nbytes);
    byPrefix.set(prefix, p);
  }
  $("functions").tBodies[0].innerHTML = [...byPrefix].sort((a, b) => b[1].ms - a[1].ms).map(([name, p]) =>
    `<tr data-prefix="${esc(name)}"><td><span class="k" style="background:${ShoalCharts.color(name)}"></span>${esc(name)}</td><td>${p.n}</td><td>${p.failed}</td>
     <td>${seconds(p.ms)}</td><td>${seconds(p.ms / p.n)}</td><td>${ShoalCharts.bytes(p.bytes)}</td><td>${ShoalCharts.bytes(p.max)}</td></tr>`).join("");

  if (tasks.length) {
    const points = 200, step = Math.max(1, (t1 - t0) / points);
    const xs = Array.from({ length: points + 1 }, (_, i) => t0 + i * step);
    const series = workers.map(w => {
      const mine = tasks.filter(t => t[2] === w);
      return xs.map(x => mine.filter(t => t[3] <= x && t[4] >= x).length);
    });
    ShoalCharts.lines($("timeline"), workers, 200, true).set([xs, ...series]);
  }

  const pairs = new Map();
  for (const [from, to, start, stop, bytes, objects] of transfers) {
    const k = from + "\u0000" + to;
    const p = pairs.get(k) || { from, to, n: 0, objects: 0, bytes: 0, ms: 0 };
    p.n++; p.objects += objects; p.bytes += bytes; p.ms += stop - start;
    pairs.set(k, p);
  }
  $("transfers").tBodies[0].innerHTML = pairs.size ? [...pairs.values()].map(p =>
    `<tr><td>${esc(p.from)}</td><td>${esc(p.to)}</td><td>${p.n}</td><td>${p.objects}</td><td>${ShoalCharts.bytes(p.bytes)}</td><td>${seconds(p.ms)}</td></tr>`).join("")
    : `<tr><td colspan="6" class="empty">No data moved between workers.</td></tr>`;
})();
