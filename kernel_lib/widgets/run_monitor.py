"""RunMonitor: a live view of one run in a notebook (anywidget; JupyterLab 4 and Notebook 7).

The browser side streams from the run's WebSocket on the page's own Jupyter server when that
server owns the workspace, so it keeps updating while the kernel is busy in another cell (the
ipykernel 7 limit on widget updates from background threads does not apply) and after the
kernel is gone. When the page's server is not the owner, the front end asks the kernel to
forward the stream over the widget's comm from a daemon thread.

For viewers without widgets, the display also carries a static HTML summary.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import anywidget
import traitlets

HERE = Path(__file__).parent


def esm(name: str, *shared: str) -> str:
    """A monitor's front end: common.js (what the monitors share), the ``shared`` files (e.g.
    chart.js, the chart the JupyterLab panel imports too) and then its own file, as one module's
    text (an anywidget _esm is one module loaded from text; it cannot import a sibling file)."""
    return "\n".join((HERE / n).read_text(encoding="utf-8") for n in ("common.js", *shared, name))


def css(*names: str) -> str:
    """Style sheets as one text (chart.css is shared with the JupyterLab panel)."""
    return "\n".join((HERE / n).read_text(encoding="utf-8") for n in names)


class RunMonitor(anywidget.AnyWidget):
    _esm = esm("run_monitor.js", "chart.js")
    _css = css("chart.css", "run_monitor.css")

    run_id = traitlets.Unicode().tag(sync=True)
    experiment = traitlets.Unicode().tag(sync=True)
    workspace = traitlets.Unicode().tag(sync=True)
    status = traitlets.Unicode().tag(sync=True)

    def __init__(self, run, **kwargs):
        super().__init__(run_id=run.id, experiment=run.experiment.name,
                         workspace=str(run.workspace.client.ws.path), status=run.status, **kwargs)
        self.run = run
        self._thread: threading.Thread | None = None
        self.on_msg(self._on_front_end_msg)

    def _on_front_end_msg(self, _widget, content, _buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stream_through_kernel" and self._thread is None:
            self._thread = threading.Thread(target=self._forward, name=f"run-monitor-{self.run_id}",
                                            daemon=True)
            self._thread.start()
        elif kind == "cancel":
            self.run.cancel()

    def _forward(self) -> None:
        """Forward the run's stream to the front end (used when it cannot reach the server)."""
        try:
            for msg in self.run.workspace.client.stream(self.run_id):
                if msg["type"] == "status":
                    self.status = msg["run"]["status"]
                self.send({"type": "stream", "msg": msg})
            models = [m for m in self.run.workspace.client.get("/models")["models"]
                      if m.get("run_id") == self.run_id]
            self.send({"type": "links", "files": self.run.get_file_names(), "models": models})
        except Exception as exc:  # the widget must never take the kernel down
            self.send({"type": "stream", "msg": {"type": "log", "name": "monitor.txt", "offset": 0,
                                                 "next_offset": 0, "text": f"monitor stopped: {exc}\n"}})

    def _repr_mimebundle_(self, **kwargs):
        data, metadata = super()._repr_mimebundle_(**kwargs)
        data["text/html"] = summary_html(self.run)
        return data, metadata


def summary_html(run) -> str:
    """A static summary of a run (for saved notebooks viewed without widgets)."""
    d = run._data
    metrics = {}
    try:  # the latest value of each metric from the server's summaries, not every point
        for s in sorted(run.get_metric_series(points=0), key=lambda s: s["rank"], reverse=True):
            if s["last"] is not None:
                metrics[s["name"]] = s["last"]["value"]  # rank 0 last, so it wins
    except Exception:
        pass
    took = (d.get("ended_at") or time.time()) - d["created_at"]
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in sorted(metrics.items()))
    err = f"<pre>{html.escape(d['error'])}</pre>" if d.get("error") else ""
    return (f"<div class='jupyter-train-run'><b>{html.escape(d['experiment'])}</b> / "
            f"<code>{html.escape(d['id'])}</code>: <b>{html.escape(d['status'])}</b> "
            f"({took:.1f} s){err}<table>{rows}</table></div>")


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
