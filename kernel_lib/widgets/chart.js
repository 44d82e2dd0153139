// jupyter-train metric charts: the ONE chart used by the notebook run monitor (anywidget; this
// file's text is put in front of run_monitor.js, see esm() in run_monitor.py) and by the
// JupyterLab extension (labextension/src/chart.ts imports this file). Plain ES module, no
// dependency, no build step: SVG whose every label is DOM text (tests can check it is readable),
// coloured from JupyterLab CSS variables with fallbacks (light and dark themes).
//
// A ChartGroup is a toolbar (smoothing, log y, x by step or wall time, reset zoom) shared by
// sections of small multiples: one chart per metric with its own y axis, one line per rank or
// node. renderChart draws one chart from series [{label, points: [[step, value, ts?], ...]}].

const SVG_NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#3b82c4", "#e8772e", "#3a9e4f", "#d64550", "#8e6cc9", "#a6794f", "#d264b6", "#1ba3b8"];
export const CHART_FONT_PX = 11;
const CHAR_PX = 0.62 * CHART_FONT_PX; // width of a digit, estimated (jsdom cannot measure)

export function seriesColor(i) {
  if (typeof i === "string") return i; // a colour of the caller's (e.g. a sweep's value ramp)
  const k = ((i % PALETTE.length) + PALETTE.length) % PALETTE.length;
  return `var(--jp-train-series-${k}, ${PALETTE[k]})`;
}

// ---- numbers --------------------------------------------------------------------------------

/** About `count` round tick values inside [lo, hi] (1, 2, 2.5, 5 × 10^k apart). */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo) || !isFinite(lo) || !isFinite(hi)) return { step: 1, values: isFinite(lo) ? [lo] : [] };
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999) || 10 * mag;
  const values = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    values.push(Number(v.toPrecision(12)));
  }
  return { step, values };
}

/** Integer-only ticks (steps): no 2.5 steps below 10 and no fractions. */
export function stepTicks(lo, hi, count = 5) {
  const t = niceTicks(lo, hi, count);
  if (t.step >= 1 && Number.isInteger(t.step)) return t;
  const step = Math.max(1, Math.ceil(t.step));
  const values = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) values.push(v);
  return { step, values };
}

/** Powers of ten inside [lo, hi] (lo > 0), with 2 and 5 multiples when there are few. */
export function logTicks(lo, hi) {
  const out = [];
  const e0 = Math.floor(Math.log10(lo)), e1 = Math.ceil(Math.log10(hi));
  const mult = e1 - e0 <= 2 ? [1, 2, 5] : [1];
  for (let e = e0; e <= e1; e++) {
    for (const m of mult) {
      const v = Number((m * Math.pow(10, e)).toPrecision(12));
      if (v >= lo * 0.9999 && v <= hi * 1.0001) out.push(v);
    }
  }
  if (out.length < 2) return niceTicks(lo, hi, 4).values.filter((v) => v > 0);
  const stride = Math.ceil(out.length / 6);
  return out.filter((_, i) => i % stride === 0);
}

function decimalsFor(step) {
  if (!(step > 0)) return 0;
  let d = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  while (d < 12 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6 * 10 ** d * step) d++;
  return d;
}

function trimZeros(s) {
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** A tick label as short as the tick spacing allows: 0.25, 7.3e-4, 1.2k, 3M. */
export function formatTick(v, step) {
  const a = Math.abs(v);
  if (a < Math.abs(step) * 1e-6 || a === 0) return "0";
  if (a >= 1e4 || (a >= 1e3 && step >= 100)) {
    const [div, suf] = a >= 1e9 ? [1e9, "G"] : a >= 1e6 ? [1e6, "M"] : [1e3, "k"];
    return trimZeros((v / div).toFixed(Math.min(3, decimalsFor(step / div)))) + suf;
  }
  if (step < 1e-3 && a < 1e-2) {
    const e = Math.floor(Math.log10(a) + 1e-9);
    const d = Math.min(3, decimalsFor(step / 10 ** e));
    return `${trimZeros((v / 10 ** e).toFixed(d))}e${e}`;
  }
  return v.toFixed(Math.min(10, decimalsFor(step)));
}

/** A value in a read-out: 4 significant digits, exponent when tiny or huge. */
export function formatNumber(v) {
  if (typeof v !== "number" || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return trimZeros(v.toExponential(2).replace(/e\+?/, "e").replace(/\.?0+e/, "e"));
  return String(Number(v.toPrecision(4)));
}

/** TensorBoard's smoothing: an exponential moving average, debiased so it starts at the data. */
export function smooth(points, weight) {
  if (!(weight > 0)) return points;
  let last = 0, n = 0;
  return points.map((p) => {
    last = last * weight + (1 - weight) * p[1];
    n++;
    return [p[0], last / (1 - Math.pow(weight, n))];
  });
}

// ---- names ----------------------------------------------------------------------------------

const UNITS = { percent: "%", percentage: "%", pct: "%", mb: "MB", megabytes: "MB", mib: "MiB", gb: "GB",
  gigabytes: "GB", gib: "GiB", kb: "KB", kilobytes: "KB", bytes: "bytes", w: "W", watts: "W", c: "°C",
  celsius: "°C", mhz: "MHz", s: "s", seconds: "s", ms: "ms", mbps: "MB/s" };
const WORDS = { cpu: "CPU", gpu: "GPU", util: "utilization", mem: "memory", net: "network", io: "I/O",
  rx: "received", tx: "sent", temp: "temperature", rss: "RSS", vram: "VRAM" };

/** Whether a metric is a system metric (recorded per node by the supervisor). */
export function isSystemMetric(name) {
  return typeof name === "string" && name.startsWith("system/");
}

/** "system/gpu_0_memory_mb" -> "GPU 0 memory (MB)"; "system/cpu_percent" -> "CPU utilization (%)". */
export function metricTitle(name) {
  if (!isSystemMetric(name)) return name;
  const words = name.slice("system/".length).split(/[_/.\s-]+/).filter(Boolean);
  let unit = "";
  const lower = words.map((w) => w.toLowerCase());
  const perSecond = lower.length > 3 && lower[lower.length - 2] === "per" && ["second", "s", "sec"].includes(lower[lower.length - 1]);
  if (perSecond) { words.splice(-2); lower.splice(-2); }
  const last = lower[lower.length - 1] || "";
  if (words.length > 1 && UNITS[last]) {
    unit = UNITS[last] + (perSecond ? "/s" : "");
    words.pop();
  } else if (perSecond) {
    words.push("per", "second");
  }
  if (unit === "%" && words.length && ["cpu", "gpu"].includes(words[words.length - 1].toLowerCase())) words.push("util");
  if (unit === "%" && words.length > 1 && /^\d+$/.test(words[words.length - 1]) && words[0].toLowerCase() === "gpu") words.push("util");
  let text = words.map((w) => WORDS[w.toLowerCase()] || w).join(" ");
  text = text.charAt(0).toUpperCase() + text.slice(1);
  return unit ? `${text} (${unit})` : text;
}

/** Label of one line: "rank N" (or "node N" for system metrics, whose rank is the node index). */
export function lineLabel(name, rank) {
  return `${isSystemMetric(name) ? "node" : "rank"} ${rank}`;
}

// ---- DOM ------------------------------------------------------------------------------------

function svgEl(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function htmlEl(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c);
  return node;
}

/** The view state a group shares: smoothing, log y, x mode, zoom and hidden lines. */
export function defaultView() {
  return { smoothing: 0, log: false, x: "step", zoom: null, hidden: new Set(), t0: null };
}

function timeUnit(spanSeconds) {
  if (spanSeconds > 3 * 3600) return { div: 3600, name: "h" };
  if (spanSeconds > 180) return { div: 60, name: "min" };
  return { div: 1, name: "s" };
}

/** The points of a series on the current x axis: step, or seconds/minutes since t0 (needs ts). */
export function xPoints(points, view, unit) {
  if (view.x !== "time") return points.filter((p) => isFinite(p[1]));
  const out = [];
  for (const p of points) if (typeof p[2] === "number" && isFinite(p[1])) out.push([(p[2] - view.t0) / unit.div, p[1]]);
  return out;
}

/** Earliest timestamp in `series` (the run's first point), or null. */
export function firstTs(series) {
  let t = Infinity;
  for (const s of series) for (const p of s.points) if (typeof p[2] === "number" && p[2] < t) t = p[2];
  return t === Infinity ? null : t;
}

function maxTs(series) {
  let t = -Infinity;
  for (const s of series) for (const p of s.points) if (typeof p[2] === "number" && p[2] > t) t = p[2];
  return t;
}

function niceBounds(lo, hi) {
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

/**
 * One chart: a figure (data-testid=jp-train-chart, data-metric, data-series, data-points) with a
 * title, the SVG (gridlines and round ticks on both axes, axis labels, raw line faint under the
 * smoothed one), a legend whose items toggle lines, a hover read-out and drag-to-zoom.
 * options: {title, metric, width, height, xLabel, onChange}; view: see defaultView().
 */
export function renderChart(series, options = {}, view = defaultView()) {
  const metric = options.metric ?? options.title ?? "";
  const title = options.title ?? metricTitle(metric);
  const width = Math.max(240, Math.round(options.width || 420));
  const height = Math.max(140, Math.round(options.height || 220));
  const onChange = options.onChange || (() => {});
  const figure = htmlEl("figure", { class: "jp-train-chart", "data-testid": "jp-train-chart" });
  figure.dataset.metric = metric;
  figure.dataset.series = String(series.length);
  figure.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  figure.appendChild(htmlEl("figcaption", { class: "jp-train-chart-title" }, title));
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${title} chart`, class: "jp-train-chart-svg" });
  figure.appendChild(svg);

  const colorOf = (s, i) => (s.color !== undefined && s.color !== null ? s.color : i);
  const key = (s) => `${metric}\u0000${s.label}`;
  const t0 = view.t0 ?? firstTs(series);
  const unit = timeUnit(t0 === null ? 0 : maxTs(series) - t0);
  const v = { ...view, t0 };
  const lines = series.map((s, i) => {
    const raw = xPoints(s.points, v, unit);
    return { s, i, raw, smooth: smooth(raw, view.smoothing), hidden: view.hidden.has(key(s)) };
  });
  const visible = lines.filter((l) => !l.hidden);
  const inZoom = (x) => !view.zoom || (x >= view.zoom[0] && x <= view.zoom[1]);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity, allPositive = true;
  for (const l of visible) {
    for (const [x, y] of l.raw) {
      if (!inZoom(x)) continue;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      if (!(y > 0)) allPositive = false;
    }
  }
  const xLabel = view.x === "time" ? `wall time (${unit.name})` : (options.xLabel || "step");
  if (x0 === Infinity) {
    const empty = svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "jp-train-chart-empty" }, svg);
    const anyPoints = series.some((s) => s.points.length);
    empty.textContent = !anyPoints ? "Waiting for the first point…"
      : view.x === "time" && !lines.some((l) => l.raw.length) ? "No timestamps for these points"
      : visible.length ? "No points in the zoomed range" : "Every line is hidden";
    figure.dataset.empty = "true";
  }
  if (view.zoom) [x0, x1] = view.zoom;
  const log = view.log && allPositive && x0 !== Infinity;
  figure.dataset.log = String(log);
  if (view.log && !log && x0 !== Infinity) figure.dataset.logRefused = "values ≤ 0";
  if (x0 !== Infinity) {
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    let ylo, yhi, yTickValues, yStep;
    if (log) {
      ylo = Math.log10(y0); yhi = Math.log10(y1);
      if (ylo === yhi) { ylo -= 0.5; yhi += 0.5; }
      const pad = (yhi - ylo) * 0.05; ylo -= pad; yhi += pad;
      yTickValues = logTicks(10 ** ylo, 10 ** yhi);
    } else {
      [ylo, yhi] = niceBounds(y0, y1);
      const t = niceTicks(ylo, yhi, Math.max(2, Math.floor((height - 60) / 36)));
      yTickValues = t.values; yStep = t.step;
    }
    const yLabels = yTickValues.map((t) => (log ? formatNumber(t) : formatTick(t, yStep)));
    const widest = Math.max(1, ...yLabels.map((s) => s.length));
    const m = { top: 8, right: 14, bottom: 36, left: Math.ceil(widest * CHAR_PX) + 24 };
    const pw = width - m.left - m.right, ph = height - m.top - m.bottom;
    const sx = (x) => m.left + ((x - x0) / (x1 - x0)) * pw;
    const ty = (y) => (log ? Math.log10(y) : y);
    const sy = (y) => m.top + ph - ((ty(y) - ylo) / (yhi - ylo)) * ph;
    const grid = svgEl("g", { class: "jp-train-chart-grid" }, svg);
    const labels = svgEl("g", { class: "jp-train-chart-labels" }, svg);
    yTickValues.forEach((t, j) => {
      const y = sy(t);
      svgEl("line", { x1: m.left, x2: m.left + pw, y1: y, y2: y }, grid);
      const text = svgEl("text", { x: m.left - 5, y: y + 4, "text-anchor": "end", class: "jp-train-chart-tick", "data-axis": "y" }, labels);
      text.textContent = yLabels[j];
    });
    const maxXLabels = Math.max(2, Math.floor(pw / 64));
    const xt = view.x === "step" ? stepTicks(x0, x1, Math.min(6, maxXLabels)) : niceTicks(x0, x1, Math.min(6, maxXLabels));
    for (const t of xt.values) {
      if (t < x0 - 1e-9 || t > x1 + 1e-9) continue;
      const x = sx(t);
      svgEl("line", { x1: x, x2: x, y1: m.top, y2: m.top + ph }, grid);
      const label = formatTick(t, xt.step);
      const half = (label.length * CHAR_PX) / 2;
      const anchor = x + half > width - 2 ? "end" : x - half < 2 ? "start" : "middle";
      const text = svgEl("text", { x, y: m.top + ph + 14, "text-anchor": anchor, class: "jp-train-chart-tick", "data-axis": "x" }, labels);
      text.textContent = label;
    }
    svgEl("path", { d: `M${m.left},${m.top}V${m.top + ph}H${m.left + pw}`, class: "jp-train-chart-axis", fill: "none" }, svg);
    const xl = svgEl("text", { x: m.left + pw / 2, y: height - 4, "text-anchor": "middle", class: "jp-train-chart-axis-label", "data-axis": "x" }, labels);
    xl.textContent = xLabel;

    const clipId = `jp-train-clip-${Math.random().toString(36).slice(2)}`;
    const clip = svgEl("clipPath", { id: clipId }, svgEl("defs", {}, svg));
    svgEl("rect", { x: m.left, y: m.top - 2, width: pw, height: ph + 4 }, clip);
    const plot = svgEl("g", { "clip-path": `url(#${clipId})` }, svg);
    const path = (pts) => {
      let d = "";
      let prevIn = false;
      pts.forEach((p, j) => {
        const keep = inZoom(p[0]) || (pts[j + 1] && inZoom(pts[j + 1][0])) || (pts[j - 1] && inZoom(pts[j - 1][0]));
        if (!keep) { prevIn = false; return; }
        d += `${prevIn ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`;
        prevIn = true;
      });
      return d;
    };
    for (const l of visible) {
      const color = seriesColor(colorOf(l.s, l.i));
      const cls = "jp-train-series" + (l.s.className ? ` ${l.s.className}` : "");
      const attrs = { class: cls, "data-series": l.s.label, fill: "none", style: `stroke: ${color}`, "data-points": l.raw.length };
      if (l.s.id) attrs["data-run-id"] = l.s.id;
      const pts = l.raw.filter((p) => !log || p[1] > 0);
      if (pts.length === 1) {
        svgEl("circle", { cx: sx(pts[0][0]), cy: sy(pts[0][1]), r: 3, class: "jp-train-series", "data-series": l.s.label, style: `fill: ${color}` }, plot);
        continue;
      }
      if (view.smoothing > 0) {
        const raw = { ...attrs, d: path(pts), class: `${cls} jp-train-series-raw` };
        delete raw["data-run-id"];
        svgEl("path", raw, plot);
        svgEl("path", { ...attrs, d: path(smooth(pts, view.smoothing)), "data-smoothed": "true" }, plot);
      } else {
        svgEl("path", { ...attrs, d: path(pts) }, plot);
      }
    }
    addHover(figure, svg, { m, pw, ph, sx, x0, x1, width, visible, view, xLabel, colorOf, onChange, sy });
  }
  if (series.length > 1 || (series[0] && series[0].label !== title && series[0].label !== metric)) {
    const legend = htmlEl("div", { class: "jp-train-chart-legend", "data-testid": "jp-train-chart-legend" });
    lines.forEach((l) => {
      const item = htmlEl("button", { class: "jp-train-chart-legend-item", type: "button", "data-series": l.s.label,
        "aria-pressed": String(!l.hidden), title: l.hidden ? "Show this line" : "Hide this line" },
      htmlEl("span", { class: "jp-train-series-key", style: `background: ${seriesColor(colorOf(l.s, l.i))}` }), l.s.label);
      item.addEventListener("click", () => {
        if (view.hidden.has(key(l.s))) view.hidden.delete(key(l.s)); else view.hidden.add(key(l.s));
        onChange("hidden");
      });
      legend.appendChild(item);
    });
    figure.appendChild(legend);
  }
  return figure;
}

function addHover(figure, svg, g) {
  const { m, pw, ph, sx, x0, x1, width, visible, view, xLabel } = g;
  const rule = svgEl("line", { y1: m.top, y2: m.top + ph, class: "jp-train-chart-rule", visibility: "hidden" }, svg);
  const band = svgEl("rect", { y: m.top, height: ph, class: "jp-train-chart-zoomband", visibility: "hidden" }, svg);
  const readout = htmlEl("div", { class: "jp-train-chart-readout", "data-testid": "jp-train-chart-readout" });
  readout.hidden = true;
  figure.appendChild(readout);
  const xs = Array.from(new Set(visible.flatMap((l) => l.raw.map((p) => p[0])))).sort((a, b) => a - b);
  const toX = (ev) => {
    const rect = svg.getBoundingClientRect();
    const px = rect.width ? ((ev.clientX - rect.left) / rect.width) * width : 0;
    return x0 + ((px - m.left) / pw) * (x1 - x0);
  };
  let dragFrom = null;
  svg.addEventListener("mousedown", (ev) => { dragFrom = toX(ev); ev.preventDefault(); });
  svg.addEventListener("mousemove", (ev) => {
    const x = toX(ev);
    if (dragFrom !== null) {
      const a = sx(Math.max(x0, Math.min(dragFrom, x))), b = sx(Math.min(x1, Math.max(dragFrom, x)));
      band.setAttribute("x", String(a)); band.setAttribute("width", String(Math.max(0, b - a)));
      band.setAttribute("visibility", "visible");
    }
    if (!xs.length) return;
    let lo = 0, hi = xs.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] < x) lo = mid; else hi = mid; }
    const best = Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? xs[lo] : xs[hi];
    rule.setAttribute("x1", String(sx(best))); rule.setAttribute("x2", String(sx(best)));
    rule.setAttribute("visibility", "visible");
    readout.replaceChildren(htmlEl("span", { class: "jp-train-chart-readout-x" }, `${xLabel} ${formatNumber(best)}`));
    for (const l of visible) {
      const j = nearestIndex(l.raw, best);
      if (j < 0 || l.raw[j][0] !== best) continue;
      const item = htmlEl("span", { class: "jp-train-chart-readout-item", "data-series": l.s.label },
        htmlEl("span", { class: "jp-train-series-key", style: `background: ${seriesColor(g.colorOf(l.s, l.i))}` }),
        view.smoothing > 0 ? `${l.s.label}: ${formatNumber(l.smooth[j][1])} (raw ${formatNumber(l.raw[j][1])})`
          : `${l.s.label}: ${formatNumber(l.raw[j][1])}`);
      readout.append(" ", item);
    }
    readout.hidden = false;
  });
  const endDrag = (ev) => {
    if (dragFrom === null) return;
    const a = dragFrom, b = toX(ev);
    dragFrom = null;
    band.setAttribute("visibility", "hidden");
    if (Math.abs(sx(b) - sx(a)) >= 5) {
      view.zoom = [Math.max(x0, Math.min(a, b)), Math.min(x1, Math.max(a, b))];
      g.onChange("zoom");
    }
  };
  svg.addEventListener("mouseup", endDrag);
  svg.addEventListener("mouseleave", (ev) => {
    endDrag(ev);
    rule.setAttribute("visibility", "hidden");
    readout.hidden = true;
  });
  svg.addEventListener("dblclick", () => { if (view.zoom) { view.zoom = null; g.onChange("zoom"); } });
}

function nearestIndex(points, x) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (points[mid][0] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

/**
 * Charts of one view: a toolbar (data-testid=jp-train-chart-toolbar) whose controls apply to
 * every chart below it, and sections of small multiples (one chart per metric). Call
 * setSections([{id, title, charts: [{metric, title?, series}]}]) whenever the data changes.
 */
export class ChartGroup {
  constructor(options = {}) {
    this.options = options;
    this.view = defaultView();
    this.sections = [];
    this.element = htmlEl("div", { class: "jp-train-chartgroup", "data-testid": "jp-train-chartgroup" });
    this.toolbar = this._toolbar();
    this.body = htmlEl("div", { class: "jp-train-chartgroup-body" });
    this.element.append(this.toolbar, this.body);
  }

  setSections(sections) {
    this.sections = sections;
    this.render();
  }

  render() {
    const all = this.sections.flatMap((s) => s.charts.flatMap((c) => c.series));
    this.view.t0 = firstTs(all);
    const cw = this.body.clientWidth || this.element.clientWidth || this.options.width || 0;
    const minW = this.options.minWidth || 360, gap = 12;
    const cols = cw ? Math.max(1, Math.floor((cw + gap) / (minW + gap))) : 1;
    const width = cw ? Math.floor((cw - gap * (cols - 1)) / cols) - 14 : (this.options.chartWidth || 420);
    const refused = [];
    const onChange = () => this.render();
    const parts = this.sections.filter((s) => s.charts.length || s.empty).map((s) => {
      const grid = htmlEl("div", { class: "jp-train-charts-grid" });
      for (const c of s.charts) {
        const fig = renderChart(c.series, { metric: c.metric, title: c.title ?? metricTitle(c.metric), width,
          height: this.options.chartHeight || 220, xLabel: this.options.xLabel, onChange }, this.view);
        if (fig.dataset.logRefused) refused.push(c.title ?? metricTitle(c.metric));
        grid.appendChild(fig);
      }
      if (!s.charts.length) {
        grid.appendChild(renderChart([], { metric: "", title: s.empty, width, height: 120 }, this.view));
      }
      const sec = htmlEl("section", { class: "jp-train-chart-section", "data-section": s.id, "data-testid": `jp-train-chart-section-${s.id}` });
      if (s.title) sec.appendChild(htmlEl("h3", { class: "jp-train-chart-section-title" }, s.title));
      sec.appendChild(grid);
      return sec;
    });
    this.body.replaceChildren(...parts);
    this._note.textContent = this.view.log && refused.length ? `Linear for ${refused.join(", ")}: log scale needs every value > 0.` : "";
    this._reset.disabled = !this.view.zoom;
    this._x.value = this.view.x;
  }

  _toolbar() {
    const bar = htmlEl("div", { class: "jp-train-chart-toolbar", "data-testid": "jp-train-chart-toolbar" });
    const slider = htmlEl("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", "data-testid": "jp-train-chart-smoothing", "aria-label": "Smoothing" });
    const value = htmlEl("span", { class: "jp-train-chart-smoothing-value" }, "0");
    slider.addEventListener("input", () => {
      this.view.smoothing = Number(slider.value);
      value.textContent = slider.value;
      this.render();
    });
    const log = htmlEl("input", { type: "checkbox", "data-testid": "jp-train-chart-log" });
    log.addEventListener("change", () => { this.view.log = log.checked; this.render(); });
    this._x = htmlEl("select", { "data-testid": "jp-train-chart-x", "aria-label": "X axis" },
      htmlEl("option", { value: "step" }, "step"), htmlEl("option", { value: "time" }, "wall time"));
    this._x.addEventListener("change", () => { this.view.x = this._x.value; this.view.zoom = null; this.render(); });
    this._reset = htmlEl("button", { type: "button", "data-testid": "jp-train-chart-reset", title: "Reset zoom (or double-click a chart)" }, "Reset zoom");
    this._reset.addEventListener("click", () => { this.view.zoom = null; this.render(); });
    this._note = htmlEl("span", { class: "jp-train-chart-note", "data-testid": "jp-train-chart-note" });
    bar.append(htmlEl("label", {}, "Smoothing ", slider, value), htmlEl("label", {}, log, " log y"),
      htmlEl("label", {}, "x ", this._x), this._reset, this._note);
    return bar;
  }
}

/**
 * Sections for a run's metrics: [{id: "metrics"}, {id: "system", title: "System"}], one chart
 * per metric, one line per rank ("rank N") or node ("node N"). `get(name)` -> [[rank, points]].
 * A metric with a single line keeps its own colour across charts (its index in `names`).
 */
export function runSections(names, get) {
  const charts = { metrics: [], system: [] };
  names.forEach((name, idx) => {
    const byRank = get(name);
    const sys = isSystemMetric(name);
    const series = byRank.map(([rank, points]) => ({
      label: sys || byRank.length > 1 ? lineLabel(name, rank) : name,
      points, color: byRank.length > 1 || sys ? rank : idx,
    }));
    charts[sys ? "system" : "metrics"].push({ metric: name, title: metricTitle(name), series });
  });
  return [{ id: "metrics", title: "", charts: charts.metrics }, { id: "system", title: "System", charts: charts.system }];
}
