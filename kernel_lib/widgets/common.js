// What the run monitor and the sweep monitor share (anywidget ESM). Not a module of its own:
// each monitor's Python class puts this file's text in front of its own (an anywidget _esm is
// one module, loaded from text, so it cannot import a sibling file).

const TERMINAL = new Set(["Completed", "Failed", "Canceled"]);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function pageBaseUrl() {
  try {
    const cfg = JSON.parse(document.getElementById("jupyter-config-data").textContent);
    return cfg.baseUrl || "/";
  } catch (e) {
    return null;
  }
}

function xsrf() {
  const m = document.cookie.match("\\b_xsrf=([^;]*)\\b");
  return m ? decodeURIComponent(m[1]) : "";
}

async function sameServer(workspace) {
  // The page's server is usable if it serves /train/api for the workspace shown.
  const base = pageBaseUrl();
  if (base === null) return null;
  try {
    const r = await fetch(base + "train/api", { credentials: "same-origin" });
    if (!r.ok) return null;
    const info = await r.json();
    return info.workspace === workspace ? base : null;
  } catch (e) {
    return null;
  }
}

function fmtSecs(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
