// Charts shared by the live dashboard and the performance report, drawn with uPlot:
// a task-stream timeline (one lane per worker, one bar per run of tasks of a prefix)
// and line charts. Times are Unix milliseconds in, seconds on uPlot's time axis.
"use strict";
const ShoalCharts = (() => {
  const colors = new Map();
  // A stable colour per task prefix (erred runs are red).
  function color(name) {
    if (!colors.has(name)) {
      let h = 0;
      for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
      colors.set(name, `hsl(${h % 360}, 60%, 50%)`);
    }
    return colors.get(name);
  }

  function width(el) {
    return Math.max(300, el.clientWidth || el.parentElement.clientWidth || 600);
  }

  // bars: [[worker, prefix, start_ms, stop_ms, count, ok], ...]
  function timeline(el, height) {
    let lanes = [];
    let bars = [];
    const opts = {
      width: width(el), height,
      scales: { x: { time: true }, y: { auto: false, range: () => [0, Math.max(1, lanes.length)] } },
      axes: [{}, {
        splits: () => lanes.map((_, i) => i + 0.5),
        values: () => lanes, size: 140,
      }],
      series: [{}, { label: "tasks", stroke: "transparent", points: { show: false } }],
      legend: { show: false },
      cursor: { y: false, points: { show: false } },
      hooks: {
        draw: [u => {
          const ctx = u.ctx;
          ctx.save();
          ctx.beginPath();
          ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
          ctx.clip();
          const laneOf = new Map(lanes.map((n, i) => [n, i]));
          const h = u.bbox.height / Math.max(1, lanes.length);
          for (const [worker, prefix, start, stop, , ok] of bars) {
            const lane = laneOf.get(worker);
            if (lane === undefined) continue;
            const x0 = u.valToPos(start / 1000, "x", true);
            const x1 = u.valToPos(stop / 1000, "x", true);
            const y = u.valToPos(lane + 1, "y", true);
            ctx.fillStyle = ok ? color(prefix) : "#e53935";
            ctx.fillRect(x0, y + h * 0.1, Math.max(1, x1 - x0), h * 0.8);
          }
          ctx.restore();
        }],
      },
    };
    const plot = new uPlot(opts, [[0, 1], [null, null]], el);
    return {
      plot,
      set(newLanes, newBars, fromMs, toMs) {
        lanes = newLanes;
        bars = newBars;
        // A transparent series spanning the lanes keeps the y scale defined.
        plot.setData([[fromMs / 1000, toMs / 1000], [0, Math.max(1, lanes.length)]], false);
        plot.setScale("x", { min: fromMs / 1000, max: toMs / 1000 });
      },
      resize() { plot.setSize({ width: width(el), height }); },
    };
  }

  // names: series labels; data: [xs (ms), ys1, ys2, ...]
  function lines(el, names, height, stepped) {
    const palette = ["#1e88e5", "#ef6c00", "#2e7d32", "#8e24aa", "#e53935"];
    const opts = {
      width: width(el), height,
      scales: { x: { time: true } },
      series: [{}, ...names.map((label, i) => ({
        label, stroke: palette[i % palette.length], width: 2,
        paths: stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      }))],
    };
    const plot = new uPlot(opts, [[], ...names.map(() => [])], el);
    return {
      plot,
      set(data) { plot.setData([data[0].map(t => t / 1000), ...data.slice(1)]); },
      resize() { plot.setSize({ width: width(el), height }); },
    };
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function escape(s) {
    return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  return { color, timeline, lines, bytes, escape };
})();
