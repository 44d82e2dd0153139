// jupyter-train sweep monitor (anywidget ESM; no build step, nothing fetched from a CDN).
//
// A hyperparameter sweep's parent run and its children: the best so far, who a policy stopped
// and why, the children sorted by the primary metric (a column per hyperparameter), a
// parallel-coordinates chart and each child's primary metric over time.
//
// Data comes from the REST API of the Jupyter server that serves this page when that server owns
// the workspace (polled every `poll_s` seconds); otherwise the kernel polls the same endpoints
// (SweepFeed in sweep_monitor.py) and forwards what it reads. Either way `handle(msg)` is the
// one place messages are applied, and polling stops once the sweep is in a final state.

const NS = "http://www.w3.org/2000/svg";
const NOT_STARTED = new Set(["NotStarted", "Preparing", "Queued", "Starting"]);
const SETTLE_POLLS = 10; // polls after the parent ended, at most, for children still ending
const SERIES_POINTS = 200;
const PARALLEL_READS = 6;
// Poor -> good: the color of a child's lines and swatch by its best primary metric.
const RAMP = [[244, 162, 97], [233, 196, 106], [42, 157, 143], [38, 70, 83]];
const NO_METRIC = "#b0b0b0";

function s(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

async function getJson(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`${r.status} ${r.statusText}: ${url}`);
  return r.json();
}

const fmt = (v) => (typeof v === "number" ? String(Number(v.toPrecision(4))) : v == null ? "" : String(v));

// Best first by best_primary_metric, those without one last; ties keep the API's order
// (newest first), as sort_children in sweep_monitor.py.
function sortChildren(children, maximize) {
  const have = children.filter((c) => c.best_primary_metric != null);
  have.sort((a, b) => (maximize ? b.best_primary_metric - a.best_primary_metric : a.best_primary_metric - b.best_primary_metric));
  return have.concat(children.filter((c) => c.best_primary_metric == null));
}

function noteOf(c) {
  const reason = (c.properties || {}).cancel_reason;
  if ((c.status === "Canceled" || c.status === "CancelRequested") && reason) return `stopped: ${reason}`;
  return c.error ? c.error.split("\n")[0] : "";
}

const hyper = (c) => (c.properties || {}).hyperparameters || {};

// One vertical axis of the parallel-coordinates chart: numbers on a linear scale, anything else
// (text, booleans, mixed) as evenly spaced categories. `at(v)` is 0 (bottom) .. 1 (top).
function makeAxis(name, values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.length && present.every((v) => typeof v === "number")) {
    let lo = Math.min(...present), hi = Math.max(...present);
    const flat = hi === lo;
    return { name, ticks: flat ? [[0.5, lo]] : [[0, lo], [1, hi]],
             at: (v) => (typeof v !== "number" ? null : flat ? 0.5 : (v - lo) / (hi - lo)) };
  }
  const cats = [...new Set(present.map(String))].sort();
  const pos = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  return { name, ticks: cats.map((c, i) => [pos(i), c]),
           at: (v) => (v == null ? null : pos(cats.indexOf(String(v)))) };
}

function colorOf(value, lo, hi, maximize) {
  if (value == null) return NO_METRIC;
  let t = hi === lo ? 1 : (value - lo) / (hi - lo);
  if (!maximize) t = 1 - t;
  const x = t * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(x)), f = x - i;
  const c = RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * f));
  return `rgb(${c.join(",")})`;
}

function drawParallel(svg, rows, names, metric, colors, bestId) {
  const W = 600, H = 240, L = 48, R = 48, T = 34, B = 34;
  svg.replaceChildren();
  if (!rows.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "jt-sw-tick" }, "no children yet"));
    return;
  }
  const axes = names.map((n) => makeAxis(n, rows.map((c) => hyper(c)[n])));
  axes.push(makeAxis(metric, rows.map((c) => c.best_primary_metric)));
  const xs = axes.map((_, i) => (axes.length === 1 ? W / 2 : L + (i * (W - L - R)) / (axes.length - 1)));
  const y = (t) => T + (1 - t) * (H - T - B);
  const NONE_Y = H - B + 14; // where a child without the metric (yet) meets the metric axis
  axes.forEach((a, i) => {
    svg.append(s("line", { x1: xs[i], x2: xs[i], y1: T, y2: H - B, class: "jt-sw-axis" }));
    svg.append(s("text", { x: xs[i], y: 14, "text-anchor": "middle", class: "jt-sw-axis-name" }, a.name));
    for (const [t, label] of a.ticks) {
      svg.append(s("text", { x: xs[i] + 4, y: y(t) + 3, class: "jt-sw-tick" }, fmt(label)));
    }
  });
  if (rows.some((c) => c.best_primary_metric == null)) {
    svg.append(s("text", { x: xs[xs.length - 1] + 4, y: NONE_Y + 3, class: "jt-sw-tick" }, "none yet"));
  }
  // the best last, so it is drawn on top
  for (const c of [...rows].reverse()) {
    const pts = axes.map((a, i) => {
      const t = i === axes.length - 1 ? a.at(c.best_primary_metric) : a.at(hyper(c)[a.name]);
      return `${xs[i].toFixed(1)},${(t === null ? NONE_Y : y(t)).toFixed(1)}`;
    });
    const line = s("polyline", { points: pts.join(" "), stroke: colors[c.id], "data-run-id": c.id,
      class: "jt-sw-line" + (c.id === bestId ? " jt-sw-best-line" : "") + (noteOf(c).startsWith("stopped") ? " jt-sw-stopped" : "") });
    line.append(s("title", {}, `${c.id} (${c.status}): ${Object.entries(hyper(c)).map(([k, v]) => `${k}=${fmt(v)}`).join(" ")} ${metric}=${fmt(c.best_primary_metric)}`));
    svg.append(line);
  }
}

// Each child's primary metric over its steps: the chart of chart.js (put in front of this file by
// sweep_monitor.py), a line per child in its value-ramp colour, the best one thicker.
function drawSeries(box, view, rows, series, metric, colors, bestId) {
  const lines = [];
  rows.forEach((c, i) => {
    if (!(series[c.id] || []).length) return;
    lines.push({ label: `#${i + 1}`, points: series[c.id], color: colors[c.id], id: c.id,
      className: "jt-sw-line" + (c.id === bestId ? " jt-sw-best-line" : "") + (noteOf(c).startsWith("stopped") ? " jt-sw-stopped" : "") });
  });
  lines.reverse(); // the best (first row) drawn last, on top
  const draw = () => box.replaceChildren(renderChart(lines, { metric, title: `${metric} of every child`, width: 600, height: 240, onChange: draw }, view));
  draw();
}

function describe(cfg) {
  const p = cfg.policy;
  const opts = p ? Object.entries(p).filter(([k]) => k !== "name").map(([k, v]) => `${k} ${v}`) : [];
  const policy = !p ? "no early termination" : opts.length ? `${p.name} (${opts.join(", ")})` : p.name;
  const conc = cfg.max_concurrent_runs ? `, ${cfg.max_concurrent_runs} at once` : "";
  return `${cfg.sampling || "random"} sampling · ${policy} · ${cfg.primary_metric_goal} ${cfg.primary_metric_name} · at most ${cfg.max_total_runs} children${conc}`;
}

function render({ model, el }) {
  const runId = model.get("run_id");
  const state = { run: null, children: [], series: {}, finished: new Set(), base: null, ended: false,
                  closed: false, timer: null, afterEnd: 0, updates: 0, statuses: [], hover: null };

  const root = h("div", { class: "jt-sweep", "data-testid": "jp-train-sweep-monitor", "data-run-id": runId });
  const badge = h("span", { class: "jt-sw-status", "data-testid": "jp-train-sweep-monitor-status" }, "…");
  const source = h("span", { class: "jt-sw-muted" });
  const cancel = h("button", { class: "jt-sw-cancel", "data-testid": "jp-train-sweep-monitor-cancel" }, "Cancel sweep");
  const config = h("div", { class: "jt-sw-muted" });
  const counts = h("div", { class: "jt-sw-counts", "data-testid": "jp-train-sweep-monitor-counts" });
  const best = h("div", { class: "jt-sw-bestbox", "data-testid": "jp-train-sweep-monitor-best" });
  const error = h("pre", { class: "jt-sw-error", hidden: "", "data-testid": "jp-train-sweep-monitor-error" });
  const table = h("table", { class: "jt-sw-table", "data-testid": "jp-train-sweep-monitor-children" });
  const parallel = s("svg", { viewBox: "0 0 600 240", class: "jt-sw-chart", "data-testid": "jp-train-sweep-monitor-parallel" });
  const over = h("div", { class: "jt-sw-metric", "data-testid": "jp-train-sweep-monitor-metric" });
  const overView = defaultView();
  const titleP = h("div", { class: "jt-sw-charttitle" }, "Hyperparameters and the best primary metric");
  const titleM = h("div", { class: "jt-sw-charttitle" }, "Primary metric over time");

  root.append(
    h("div", { class: "jt-sw-head" }, h("b", {}, `${model.get("experiment")} / `), h("code", {}, runId), " sweep ",
      badge, h("span", { class: "jt-sw-spacer" }), source, cancel),
    config, counts, best, error,
    h("div", { class: "jt-sw-tablewrap" }, table),
    h("div", { class: "jt-sw-charts" }, h("div", {}, titleP, parallel), h("div", {}, titleM, over)),
  );
  el.append(root);

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    if (state.base) {
      await fetch(`${state.base}train/api/runs/${runId}/cancel`, {
        method: "POST", credentials: "same-origin", headers: { "X-XSRFToken": xsrf() } });
      poll();
    } else {
      model.send({ type: "cancel" });
    }
  });

  // Hovering a row (or a line) picks out that child's lines in both charts.
  function highlight(id) {
    state.hover = id;
    root.classList.toggle("jt-sw-hovering", id !== null);
    for (const node of root.querySelectorAll("[data-run-id].jt-sw-hl")) node.classList.remove("jt-sw-hl");
    if (id !== null) for (const node of root.querySelectorAll(`[data-run-id="${CSS.escape(id)}"]`)) node.classList.add("jt-sw-hl");
  }
  root.addEventListener("mouseover", (ev) => {
    const hit = ev.target.closest("tr[data-run-id], polyline[data-run-id], path[data-run-id]");
    highlight(hit ? hit.getAttribute("data-run-id") : null);
  });
  root.addEventListener("mouseleave", () => highlight(null));

  function renderAll() {
    const run = state.run;
    if (!run) return;
    const cfg = run.properties.sweep;
    const maximize = cfg.primary_metric_goal === "maximize";
    const metric = cfg.primary_metric_name;
    badge.textContent = run.status;
    badge.dataset.status = run.status;
    cancel.hidden = TERMINAL.has(run.status);
    config.textContent = describe(cfg);
    if (run.status === "Failed" && run.error) { error.hidden = false; error.textContent = run.error; }

    const rows = sortChildren(state.children, maximize);
    const byStatus = {};
    for (const c of rows) byStatus[c.status] = (byStatus[c.status] || 0) + 1;
    const stopped = rows.filter((c) => noteOf(c).startsWith("stopped")).length;
    counts.textContent = [`${rows.length} of ${cfg.max_total_runs} children`,
      ...Object.entries(byStatus).sort().map(([k, n]) => `${n} ${k}`),
      ...(stopped ? [`${stopped} stopped by the policy`] : [])].join(" · ");

    const values = rows.map((c) => c.best_primary_metric).filter((v) => v != null);
    const lo = Math.min(...values), hi = Math.max(...values);
    const colors = Object.fromEntries(rows.map((c) => [c.id, colorOf(c.best_primary_metric, lo, hi, maximize)]));
    const top = rows.length && rows[0].best_primary_metric != null ? rows[0] : null;
    best.replaceChildren();
    if (top) {
      best.setAttribute("data-run-id", top.id);
      best.append(h("span", {}, `Best ${TERMINAL.has(run.status) ? "" : "so far "}`), h("b", {}, `${metric} ${fmt(top.best_primary_metric)}`),
        ": ", h("code", {}, top.id), ` (${Object.entries(hyper(top)).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}), ${top.status}`);
    } else {
      best.removeAttribute("data-run-id");
      best.textContent = `No child has logged ${metric} yet.`;
    }

    const names = [...new Set(rows.flatMap((c) => Object.keys(hyper(c))))].sort();
    const now = Date.now() / 1000;
    table.replaceChildren(h("thead", {}, h("tr", {}, ...["#", "Run", "Status", ...names,
      `${metric} ${maximize ? "↑" : "↓"}`, "Duration", "Note"].map((t) => h("th", {}, t)))));
    const body = h("tbody");
    rows.forEach((c, i) => {
      const started = c.started_at || null;
      const took = started ? fmtSecs(Math.max(0, (c.ended_at || now) - started)) : "";
      const tr = h("tr", { "data-run-id": c.id, "data-status": c.status, class: c === top ? "jt-sw-best" : "" },
        h("td", {}, h("span", { class: "jt-sw-swatch", style: `background:${colors[c.id]}` }), ` ${i + 1}`),
        h("td", {}, h("code", {}, c.id)),
        h("td", {}, h("span", { class: "jt-sw-status", "data-status": c.status }, c.status)),
        ...names.map((n) => h("td", { class: "jt-sw-num", "data-hyperparameter": n }, fmt(hyper(c)[n]))),
        h("td", { class: "jt-sw-num", "data-testid": "jp-train-sweep-monitor-value" }, fmt(c.best_primary_metric)),
        h("td", { class: "jt-sw-num" }, took),
        h("td", { class: "jt-sw-note", "data-testid": "jp-train-sweep-monitor-reason" }, noteOf(c)));
      body.append(tr);
    });
    table.append(body);

    drawParallel(parallel, rows, names, metric, colors, top && top.id);
    drawSeries(over, overView, rows, state.series, metric, colors, top && top.id);
    if (state.hover) highlight(state.hover);
  }

  function handle(msg) {
    if (msg.type === "sweep") {
      state.run = msg.run;
      state.children = msg.children;
      Object.assign(state.series, msg.series);
      state.updates += 1;
      if (state.statuses[state.statuses.length - 1] !== msg.run.status) state.statuses.push(msg.run.status);
      root.dataset.updates = String(state.updates);
      root.dataset.statuses = state.statuses.join(" ");
      renderAll();
    } else if (msg.type === "end") {
      state.ended = true;
      root.dataset.ended = "1";
    } else if (msg.type === "error") {
      source.textContent = msg.message;
    }
  }

  // What SweepFeed.poll does in the kernel: the parent, its children, and the metric series of
  // each child that has started (read once more after it ended, then never again).
  async function read() {
    const api = `${state.base}train/api`;
    const run = await getJson(`${api}/runs/${runId}`);
    const children = (await getJson(`${api}/runs?parent=${encodeURIComponent(runId)}&limit=10000`)).runs;
    const metric = run.properties.sweep.primary_metric_name;
    const series = {};
    const todo = children.filter((c) => !state.finished.has(c.id) && !NOT_STARTED.has(c.status));
    const q = new URLSearchParams({ name: metric, rank: "0", points: String(SERIES_POINTS) });
    for (let i = 0; i < todo.length; i += PARALLEL_READS) { // a few requests at a time
      await Promise.all(todo.slice(i, i + PARALLEL_READS).map(async (c) => {
        const found = (await getJson(`${api}/runs/${encodeURIComponent(c.id)}/metrics/series?${q}`)).series;
        series[c.id] = found.length ? found[0].points : [];
      }));
    }
    // only now: a poll that fails half-way reads them all again next time
    for (const c of todo) if (TERMINAL.has(c.status)) state.finished.add(c.id);
    let done = false;
    if (TERMINAL.has(run.status)) {
      state.afterEnd += 1;
      done = children.every((c) => TERMINAL.has(c.status)) || state.afterEnd >= SETTLE_POLLS;
    }
    return [{ type: "sweep", run, children, series }, done];
  }

  async function poll() {
    clearTimeout(state.timer);
    if (state.closed || state.ended) return;
    try {
      const [msg, done] = await read();
      if (state.closed) return;
      handle(msg);
      source.textContent = "live from the server";
      if (done) { handle({ type: "end" }); return; }
    } catch (e) {
      source.textContent = `retrying: ${e.message || e}`;
    }
    state.timer = setTimeout(poll, (model.get("poll_s") || 2) * 1000);
  }

  const ticker = setInterval(() => { if (state.run && !TERMINAL.has(state.run.status)) renderAll(); }, 5000);
  model.on("msg:custom", (msg) => handle(msg));

  (async () => {
    state.base = await sameServer(model.get("workspace"));
    if (state.base) {
      poll();
    } else {
      source.textContent = "live through the kernel";
      model.send({ type: "poll_through_kernel" });
    }
  })();

  return () => {
    state.closed = true;
    clearTimeout(state.timer);
    clearInterval(ticker);
  };
}

export default { render };
