// jupyter-train run monitor (anywidget ESM; no build step, nothing fetched from a CDN).
//
// Data comes from the run's WebSocket on the Jupyter server that serves this page, when that
// server owns the run's workspace: updates then flow while the kernel is busy in another cell,
// or even dead. Otherwise the kernel forwards the same stream messages over the widget's comm.
// Either way, `handle(msg)` is the one place messages are applied.
//
// Charts: chart.js (the chart the JupyterLab panel draws too) is put in front of this file by
// run_monitor.py: one chart per metric with its own y axis, a line per rank; `system/...` metrics
// (per node) in a System section.
//
// The log pane shows the `prepare` log first, then follows rank_0 as soon as it appears, and the
// failing rank (run.properties.failed_rank) when the run fails, unless you picked a log yourself.
//
// Progress bar convention (first that applies):
//   1. a metric `progress` in [0, 1];
//   2. the last value of a metric `epoch` (0-based: epoch e done = (e + 1) / total) or `step`
//      (step / total) against a total from a metric `num_epochs` / `epochs` (for epoch) or
//      `total_steps` (for step), else from the script's arguments `--epochs` / `--num_epochs`
//      (epoch) or `--max_steps` / `--total_steps` (step), as `--epochs 12` or `--epochs=12`;
//   3. the script's own tqdm bar in rank 0's log: the last `k/N [` (else `NN%|`) of the last
//      tqdm update (tqdm separates updates with `\r`).

const MAX_LOG_LINES = 5000;
// Bookkeeping metrics that are not charted unless picked (they drive the progress bar).
const NOT_CHARTED = ["epoch", "step", "lr", "momentum", "num_epochs", "epochs", "total_steps", "progress"];
const IMAGES_PREFIX = "outputs/images/";
const TOTALS = { epoch: { metrics: ["num_epochs", "epochs"], args: ["--epochs", "--num_epochs"] },
                 step: { metrics: ["total_steps"], args: ["--max_steps", "--total_steps"] } };

function isImagePath(v) {
  return typeof v === "string" && v.startsWith(IMAGES_PREFIX) && !v.includes("/../") &&
    /\.(png|jpe?g|gif|svg|webp|bmp)$/i.test(v);
}

function lastTraceback(text) {
  const i = text.lastIndexOf("Traceback (most recent call last)");
  return i < 0 ? "" : text.slice(i).trim();
}

function argValue(args, names) {
  for (let i = 0; i < args.length; i++) {
    for (const n of names) {
      if (args[i] === n && i + 1 < args.length) return Number(args[i + 1]);
      if (typeof args[i] === "string" && args[i].startsWith(n + "=")) return Number(args[i].slice(n.length + 1));
    }
  }
  return null;
}

/** tqdm's last update in `text`: {done, total} from "k/N [", else {fraction} from "NN%|". */
function tqdmProgress(text) {
  const parts = text.slice(-20000).split(/[\r\n]/);
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i];
    if (!p.includes("|")) continue;
    const kn = p.match(/(\d+)\/(\d+) \[/);
    if (kn && Number(kn[2]) > 0) return { fraction: Number(kn[1]) / Number(kn[2]), label: `${kn[1]}/${kn[2]}` };
    const pct = p.match(/(\d{1,3})%\|/);
    if (pct) return { fraction: Number(pct[1]) / 100, label: `${pct[1]}%` };
  }
  return null;
}

/** {fraction, label, source} of the run's progress, or null (see the convention at the top). */
function progressOf(run, metrics, rank0Log) {
  const last = (name) => {
    const byRank = metrics[name];
    const pts = byRank && (byRank[0] || Object.values(byRank)[0]);
    return pts && pts.length ? pts[pts.length - 1][1] : null;
  };
  const clip = (x) => Math.max(0, Math.min(1, x));
  const p = last("progress");
  if (typeof p === "number") return { fraction: clip(p), label: "", source: "progress" };
  const args = (run && run.arguments) || [];
  for (const kind of ["epoch", "step"]) {
    const at = last(kind);
    if (typeof at !== "number") continue;
    let total = null;
    for (const m of TOTALS[kind].metrics) if (total == null && typeof last(m) === "number") total = last(m);
    if (total == null) total = argValue(args, TOTALS[kind].args);
    if (!total) continue;
    const done = kind === "epoch" ? at + 1 : at;
    return { fraction: clip(done / total), label: `${kind} ${kind === "epoch" ? at + 1 : at}/${total}`, source: kind };
  }
  const t = tqdmProgress(rank0Log || "");
  return t ? { fraction: clip(t.fraction), label: t.label, source: "tqdm" } : null;
}

function render({ model, el }) {
  const runId = model.get("run_id");
  const state = { run: null, metrics: {}, names: [], text: {}, logs: {}, selected: new Set(), rank: null, picked: false, follow: true,
                  offsets: {}, cursor: 0, ended: false, base: null, ws: null, closed: false };

  const badge = h("span", { class: "jt-status", "data-testid": "jt-status" }, "…");
  const phases = h("div", { class: "jt-phases", "data-testid": "jt-phases" });
  const bar = h("div", { class: "jt-bar-fill" });
  const barLabel = h("span", { class: "jt-bar-label" });
  const progress = h("div", { class: "jt-progress", hidden: "", "data-testid": "jt-progress" }, h("div", { class: "jt-bar" }, bar), barLabel);
  const error = h("pre", { class: "jt-error", hidden: "", "data-testid": "jt-error" });
  const group = new ChartGroup({ minWidth: 300, xLabel: "step" });
  group.element.classList.add("jt-chart");
  group.element.setAttribute("data-testid", "jt-chart");
  const picks = h("div", { class: "jt-picks", "data-testid": "jt-picks" });
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
    h("div", { class: "jt-row" }, group.element, picks),
    images,
    h("div", { class: "jt-logbar" }, "Log ", rankSel, h("label", {}, follow, " follow")),
    pre, links,
  );

  follow.addEventListener("change", () => { state.follow = follow.checked; if (state.follow) pre.scrollTop = pre.scrollHeight; });
  rankSel.addEventListener("change", () => { state.rank = rankSel.value; state.picked = true; showLog(); });
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
    requestAnimationFrame(() => { chartPending = false; drawCharts(); updateProgress(); });
  };

  function sections() {
    const byRank = (n) => Object.keys(state.metrics[n]).map(Number).sort((a, b) => a - b).map((r) => [r, state.metrics[n][r]]);
    return runSections(state.names, byRank);
  }

  function drawCharts() {
    const all = sections();
    const shown = all.map((sec) => ({ ...sec, charts: sec.charts.filter((c) => state.selected.has(c.metric)) }));
    if (!shown[0].charts.length && !shown[1].charts.length) shown[0].empty = "Metrics";
    group.setSections(shown);
    // each checkbox shows the colours of its metric's lines
    for (const sec of all) {
      for (const c of sec.charts) {
        const keys = picks.querySelector(`[data-metric="${CSS.escape(c.metric)}"]`)?.parentElement.querySelector(".jt-pick-keys");
        if (keys) keys.replaceChildren(...c.series.map((s) => h("span", { class: "jp-train-series-key", title: s.label, style: `background: ${seriesColor(s.color)}` })));
      }
    }
  }

  function updatePicks() {
    for (const n of state.names) {
      if (picks.querySelector(`[data-metric="${CSS.escape(n)}"]`)) continue;
      if (!NOT_CHARTED.includes(n)) state.selected.add(n);
      const box = h("input", { type: "checkbox", "data-metric": n });
      box.checked = state.selected.has(n);
      box.addEventListener("change", () => { box.checked ? state.selected.add(n) : state.selected.delete(n); redrawChart(); });
      picks.append(h("label", { title: n }, box, h("span", { class: "jt-pick-keys" }), " " + metricTitle(n)));
    }
  }

  function updateProgress() {
    const p = progressOf(state.run, state.metrics, state.text["rank_0.txt"]);
    if (p === null) return;
    progress.hidden = false;
    progress.dataset.source = p.source;
    bar.style.width = `${(p.fraction * 100).toFixed(1)}%`;
    bar.textContent = `${Math.round(p.fraction * 100)}%`;
    barLabel.textContent = p.label;
  }

  // The log pane follows rank 0, or the failing rank once the run failed, unless picked by hand.
  function followLog() {
    if (state.picked) return;
    const run = state.run;
    let want = null;
    if (run && run.status === "Failed") want = `rank_${(run.properties && run.properties.failed_rank) || 0}.txt`;
    if (!want || !state.logs[want]) want = state.logs["rank_0.txt"] ? "rank_0.txt" : null;
    if (want && want !== state.rank) {
      state.rank = want; rankSel.value = want; showLog();
    }
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
      followLog();
    } else if (msg.type === "log") {
      if (state.offsets[msg.name] !== undefined && msg.offset < state.offsets[msg.name]) return; // seen
      state.offsets[msg.name] = msg.next_offset;
      state.text[msg.name] = ((state.text[msg.name] || "") + msg.text).slice(-200000);
      // a tqdm bar rewrites its line with \r: show each line's last update
      const lines = (state.logs[msg.name] || []).concat(msg.text.replace(/\n$/, "").split("\n").map((l) => l.slice(l.lastIndexOf("\r") + 1)));
      state.logs[msg.name] = lines.slice(-MAX_LOG_LINES);
      if (![...rankSel.options].some((o) => o.value === msg.name)) {
        rankSel.append(h("option", { value: msg.name }, msg.name.replace(/\.txt$/, "")));
        if (!state.rank) {
          state.rank = msg.name; rankSel.value = msg.name;
        }
      }
      if (msg.name === state.rank) showLog();
      followLog();
      if (msg.name === "rank_0.txt") updateProgress();
      if (state.run && state.run.status === "Failed") updateStatus();
    } else if (msg.type === "metrics") {
      state.cursor = msg.cursor;
      for (const m of msg.items) {
        if (isImagePath(m.value)) showImage(m.value);
        if (typeof m.value !== "number") continue;
        if (!isFinite(m.value)) continue;
        // one series per metric and rank (for system/ metrics the rank is the node index)
        if (!state.metrics[m.name]) { state.metrics[m.name] = {}; state.names.push(m.name); }
        const byRank = state.metrics[m.name];
        const pts = (byRank[m.rank || 0] = byRank[m.rank || 0] || []);
        pts.push([m.step ?? pts.length, m.value, m.ts ?? null]);
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
