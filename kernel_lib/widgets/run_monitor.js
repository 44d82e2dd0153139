// jupyter-train run monitor (anywidget ESM; no build step, nothing fetched from a CDN).
//
// Data comes from the run's WebSocket on the Jupyter server that serves this page, when that
// server owns the run's workspace: updates then flow while the kernel is busy in another cell,
// or even dead. Otherwise the kernel forwards the same stream messages over the widget's comm.
// Either way, `handle(msg)` is the one place messages are applied.

const MAX_LOG_LINES = 5000;
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
// Bookkeeping metrics that are not charted unless picked (they drive the progress bar).
const NOT_CHARTED = ["epoch", "lr", "momentum", "num_epochs", "epochs", "progress"];
const IMAGES_PREFIX = "outputs/images/";

function isImagePath(v) {
  return typeof v === "string" && v.startsWith(IMAGES_PREFIX) && !v.includes("/../") &&
    /\.(png|jpe?g|gif|svg|webp|bmp)$/i.test(v);
}

function lastTraceback(text) {
  const i = text.lastIndexOf("Traceback (most recent call last)");
  return i < 0 ? "" : text.slice(i).trim();
}

function progressOf(run, metrics) {
  const last = (name) => (metrics[name] && metrics[name].length ? metrics[name][metrics[name].length - 1][1] : null);
  const p = last("progress");
  if (typeof p === "number") return Math.max(0, Math.min(1, p));
  const epoch = last("epoch");
  if (typeof epoch !== "number") return null;
  let total = last("num_epochs") ?? last("epochs");
  const args = (run && run.arguments) || [];
  for (let i = 0; total == null && i < args.length - 1; i++) {
    if (args[i] === "--num_epochs" || args[i] === "--epochs") total = Number(args[i + 1]);
  }
  if (!total) return null;
  return Math.max(0, Math.min(1, (epoch + 1) / total));
}

function drawChart(svg, metrics, selected) {
  const W = 600, H = 220, L = 48, R = 10, T = 10, B = 24;
  svg.replaceChildren();
  const series = [...selected].filter((n) => metrics[n] && metrics[n].length);
  if (!series.length) {
    const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
    t.setAttribute("x", W / 2); t.setAttribute("y", H / 2); t.setAttribute("text-anchor", "middle");
    t.setAttribute("class", "jt-muted"); t.textContent = "no numeric metrics yet";
    svg.append(t);
    return;
  }
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const n of series) for (const [x, y] of metrics[n]) {
    xmin = Math.min(xmin, x); xmax = Math.max(xmax, x); ymin = Math.min(ymin, y); ymax = Math.max(ymax, y);
  }
  if (xmax === xmin) xmax = xmin + 1;
  if (ymax === ymin) { ymax += 0.5; ymin -= 0.5; }
  const sx = (x) => L + ((x - xmin) / (xmax - xmin)) * (W - L - R);
  const sy = (y) => T + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const axis = document.createElementNS(ns, "path");
  axis.setAttribute("d", `M${L},${T} V${H - B} H${W - R}`);
  axis.setAttribute("class", "jt-axis");
  svg.append(axis);
  for (const [y, label] of [[T + 4, ymax], [H - B, ymin]]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", L - 4); t.setAttribute("y", y); t.setAttribute("text-anchor", "end");
    t.setAttribute("class", "jt-tick"); t.textContent = Number(label.toPrecision(4));
    svg.append(t);
  }
  for (const [x, label] of [[L, xmin], [W - R, xmax]]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", H - 6); t.setAttribute("text-anchor", x === L ? "start" : "end");
    t.setAttribute("class", "jt-tick"); t.textContent = `step ${label}`;
    svg.append(t);
  }
  series.forEach((n, i) => {
    const pts = metrics[n];
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "));
    line.setAttribute("stroke", COLORS[i % COLORS.length]);
    line.setAttribute("class", "jt-line");
    line.setAttribute("data-metric", n);
    line.setAttribute("data-points", String(pts.length));
    svg.append(line);
    for (const [x, y] of pts.length <= 60 ? pts : []) {
      const c = document.createElementNS(ns, "circle");
      c.setAttribute("cx", sx(x)); c.setAttribute("cy", sy(y)); c.setAttribute("r", 2.5);
      c.setAttribute("fill", COLORS[i % COLORS.length]);
      svg.append(c);
    }
  });
}

function render({ model, el }) {
  const runId = model.get("run_id");
  const state = { run: null, metrics: {}, text: {}, logs: {}, selected: new Set(), rank: null, follow: true,
                  offsets: {}, cursor: 0, ended: false, base: null, ws: null, closed: false };

  const badge = h("span", { class: "jt-status", "data-testid": "jt-status" }, "…");
  const phases = h("div", { class: "jt-phases", "data-testid": "jt-phases" });
  const bar = h("div", { class: "jt-bar-fill" });
  const progress = h("div", { class: "jt-bar", hidden: "" }, bar);
  const error = h("pre", { class: "jt-error", hidden: "", "data-testid": "jt-error" });
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 600 220");
  svg.setAttribute("class", "jt-chart");
  svg.setAttribute("data-testid", "jt-chart");
  const picks = h("div", { class: "jt-picks" });
  const rankSel = h("select", { class: "jt-rank", "data-testid": "jt-rank" });
  const follow = h("input", { type: "checkbox", checked: "" });
  const pre = h("pre", { class: "jt-log", "data-testid": "jt-log" });
  const cancel = h("button", { class: "jt-cancel", "data-testid": "jt-cancel" }, "Cancel run");
  const links = h("div", { class: "jt-links", "data-testid": "jt-links" });
  const images = h("div", { class: "jt-images", "data-testid": "jt-images", hidden: "" });
  const shownImages = new Set();
  const source = h("span", { class: "jt-muted" });

  el.classList.add("jt-monitor");
  el.append(
    h("div", { class: "jt-head" }, h("b", {}, model.get("experiment") + " / "), h("code", {}, runId), " ", badge,
      h("span", { class: "jt-spacer" }), source, cancel),
    phases, progress, error,
    h("div", { class: "jt-row" }, svg, picks),
    images,
    h("div", { class: "jt-logbar" }, "Log ", rankSel, h("label", {}, follow, " follow")),
    pre, links,
  );

  follow.addEventListener("change", () => { state.follow = follow.checked; if (state.follow) pre.scrollTop = pre.scrollHeight; });
  rankSel.addEventListener("change", () => { state.rank = rankSel.value; showLog(); });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    if (state.base) {
      await fetch(`${state.base}train/api/runs/${runId}/cancel`, {
        method: "POST", credentials: "same-origin", headers: { "X-XSRFToken": xsrf() } });
    } else {
      model.send({ type: "cancel" });
    }
  });

  let chartPending = false;
  const redrawChart = () => {
    if (chartPending) return;
    chartPending = true;
    requestAnimationFrame(() => { chartPending = false; drawChart(svg, state.metrics, state.selected); updateProgress(); });
  };

  function updatePicks() {
    for (const n of Object.keys(state.metrics).sort()) {
      if (picks.querySelector(`[data-metric="${CSS.escape(n)}"]`)) continue;
      if (!NOT_CHARTED.includes(n) && !n.includes("@r")) state.selected.add(n);
      const box = h("input", { type: "checkbox", "data-metric": n });
      box.checked = state.selected.has(n);
      box.addEventListener("change", () => { box.checked ? state.selected.add(n) : state.selected.delete(n); redrawChart(); });
      picks.append(h("label", {}, box, " " + n));
    }
  }

  function updateProgress() {
    const p = progressOf(state.run, state.metrics);
    if (p === null) return;
    progress.hidden = false;
    bar.style.width = `${(p * 100).toFixed(1)}%`;
    bar.textContent = `${Math.round(p * 100)}%`;
  }

  function updateStatus() {
    const run = state.run;
    if (!run) return;
    badge.textContent = run.status;
    badge.dataset.status = run.status;
    const now = Date.now() / 1000;
    const ph = run.phases || [];
    phases.textContent = ph.map((p, i) => {
      const end = i + 1 < ph.length ? ph[i + 1].ts : (TERMINAL.has(run.status) ? p.ts : now);
      return TERMINAL.has(p.state) ? p.state : `${p.state} ${fmtSecs(Math.max(0, end - p.ts))}`;
    }).join(" · ");
    const done = TERMINAL.has(run.status);
    cancel.hidden = done;
    if (run.status === "Failed") {
      const rank = (run.properties && run.properties.failed_rank) || 0;
      const tb = lastTraceback(state.text[`rank_${rank}.txt`] || "");
      error.hidden = false;
      error.textContent = (run.error || "The run failed.") + (tb ? "\n\n" + tb : "");
    }
  }

  function showLog() {
    const name = state.rank;
    pre.textContent = name ? (state.logs[name] || []).join("\n") : "";
    if (state.follow) pre.scrollTop = pre.scrollHeight;
  }

  function handle(msg) {
    if (msg.type === "status") {
      state.run = msg.run;
      updateStatus();
      updateProgress();
    } else if (msg.type === "log") {
      if (state.offsets[msg.name] !== undefined && msg.offset < state.offsets[msg.name]) return; // seen
      state.offsets[msg.name] = msg.next_offset;
      state.text[msg.name] = ((state.text[msg.name] || "") + msg.text).slice(-200000);
      const lines = (state.logs[msg.name] || []).concat(msg.text.replace(/\n$/, "").split("\n"));
      state.logs[msg.name] = lines.slice(-MAX_LOG_LINES);
      if (![...rankSel.options].some((o) => o.value === msg.name)) {
        rankSel.append(h("option", { value: msg.name }, msg.name.replace(/\.txt$/, "")));
        if (!state.rank || (state.rank === "supervisor.txt" && msg.name.startsWith("rank_"))) {
          state.rank = msg.name; rankSel.value = msg.name;
        }
      }
      if (msg.name === state.rank) showLog();
      if (state.run && state.run.status === "Failed") updateStatus();
    } else if (msg.type === "metrics") {
      state.cursor = msg.cursor;
      for (const m of msg.items) {
        if (isImagePath(m.value)) showImage(m.value);
        if (typeof m.value !== "number") continue;
        // rank 0's series is "name"; other ranks' are "name@rN" (listed, not charted by default)
        const key = m.rank ? `${m.name}@r${m.rank}` : m.name;
        (state.metrics[key] = state.metrics[key] || []).push([m.step ?? state.metrics[key].length, m.value]);
      }
      updatePicks();
      redrawChart();
    } else if (msg.type === "end") {
      state.ended = true;
      updateStatus();
      showLinks();
    } else if (msg.type === "links") {
      renderLinks(msg.files, msg.models, null);
    }
  }

  // A logged image (run.log_image): its metric's text point is its path in the run's history.
  // Shown from this page's server; through the kernel only its name (the page cannot fetch it).
  function showImage(path) {
    if (shownImages.has(path)) return;
    shownImages.add(path);
    const name = path.slice(IMAGES_PREFIX.length);
    const src = state.base ? `${state.base}train/api/runs/${runId}/files/${path.split("/").map(encodeURIComponent).join("/")}` : null;
    images.append(h("figure", { class: "jt-image", "data-image": path },
      src ? h("img", { src, alt: name, loading: "lazy" }) : h("code", {}, path), h("figcaption", {}, name)));
    images.hidden = false;
  }

  function renderLinks(files, models, base) {
    links.replaceChildren();
    const outs = files.filter((f) => f.startsWith("outputs/"));
    if (outs.length) {
      links.append(h("span", {}, "Outputs: "));
      for (const f of outs) {
        links.append(base ? h("a", { href: `${base}train/api/runs/${runId}/files/${f}`, target: "_blank", download: "" }, f)
                          : h("code", {}, f), " ");
      }
    }
    if (models.length) {
      links.append(h("span", {}, " Models: "));
      for (const m of models) links.append(h("code", { "data-testid": "jt-model" }, `${m.name}:${m.version}`), " ");
    }
  }

  async function showLinks() {
    if (!state.base) return; // the kernel sends a "links" message instead
    try {
      const files = (await (await fetch(`${state.base}train/api/runs/${runId}/files`, { credentials: "same-origin" })).json()).files;
      const models = (await (await fetch(`${state.base}train/api/models`, { credentials: "same-origin" })).json()).models
        .filter((m) => m.run_id === runId);
      renderLinks(files, models, state.base);
    } catch (e) { /* links are a convenience */ }
  }

  function openSocket() {
    const q = new URLSearchParams({ cursor: String(state.cursor),
      logs: Object.entries(state.offsets).map(([k, v]) => `${k}:${v}`).join(",") });
    const url = new URL(`${state.base}train/api/runs/${runId}/stream?${q}`, location.href);
    url.protocol = url.protocol.replace("http", "ws");
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onmessage = (ev) => handle(JSON.parse(ev.data));
    ws.onclose = () => {
      if (!state.ended && !state.closed) setTimeout(openSocket, 1000); // resume from our offsets
    };
  }

  const ticker = setInterval(() => { if (state.run && !TERMINAL.has(state.run.status)) updateStatus(); }, 1000);
  model.on("msg:custom", (msg) => { if (msg.type === "stream") handle(msg.msg); else if (msg.type === "links") handle(msg); });

  (async () => {
    state.base = await sameServer(model.get("workspace"));
    if (state.base) {
      source.textContent = "live from the server";
      openSocket();
    } else {
      source.textContent = "live through the kernel";
      model.send({ type: "stream_through_kernel" });
    }
  })();

  return () => {
    state.closed = true;
    clearInterval(ticker);
    if (state.ws) state.ws.close();
  };
}

export default { render };
