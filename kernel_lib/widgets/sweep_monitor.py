"""SweepMonitor: a live view of a hyperparameter sweep (a HyperDriveRun) in a notebook.

It shows the children as they run, the best so far, which children a policy stopped and why, a
table of the children sorted by the primary metric (one column per hyperparameter), a
parallel-coordinates chart (one axis per hyperparameter plus the metric, one line per child) and
the primary metric of every child over time.

The data flow is the RunMonitor's: the browser side reads the REST API of the page's own Jupyter
server when that server owns the workspace (so it updates while the kernel is busy, or gone);
otherwise it asks the kernel to poll the same endpoints from a daemon thread and forward what it
reads over the widget's comm. Either way the front end applies one message kind, ``sweep``
(what ``SweepFeed.poll`` returns), and stops once the sweep is in a final state.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from urllib.parse import quote

import anywidget
import traitlets

from jupyter_ext import contract

from .run_monitor import css, esm

HERE = Path(__file__).parent
TERMINAL = frozenset(contract.TERMINAL_STATES)
NOT_STARTED = frozenset({contract.NOT_STARTED, contract.PREPARING, contract.QUEUED, contract.STARTING})  # no metrics yet
POLL_S = 2.0  # how often the monitor looks at a running sweep
SERIES_POINTS = 200  # points a child's metric line (downsampled on the server)
SETTLE_POLLS = 10  # polls after the parent ended, at most, for children still ending
MAX_CHILDREN = 10_000
MAX_ERRORS = 30  # consecutive failed polls before the kernel side gives up


def is_sweep(run) -> bool:
    return bool((run._data.get("properties") or {}).get("sweep"))


class SweepFeed:
    """Reads what the sweep monitor shows from the REST API, the way sweep_monitor.js does when it
    talks to the server itself: the parent (status, config), its children (status,
    hyperparameters, best_primary_metric, cancel_reason) and the primary-metric series of each
    child that has started. A child's series is read while it runs and once after it ended,
    never again. ``done`` turns true once the parent and its children are in a final state (or
    SETTLE_POLLS polls after the parent's end)."""

    def __init__(self, client, run_id: str, points: int = SERIES_POINTS):
        self.client, self.run_id, self.points = client, run_id, points
        self.finished_series: set[str] = set()
        self.polls_after_end = 0
        self.done = False

    def poll(self) -> dict:
        run = self.client.get(f"/runs/{quote(self.run_id)}")
        children = self.client.get("/runs", parent=self.run_id, limit=MAX_CHILDREN)["runs"]
        metric = run["properties"]["sweep"]["primary_metric_name"]
        todo = [c for c in children if c["id"] not in self.finished_series and c["status"] not in NOT_STARTED]
        series = {c["id"]: self.series(c["id"], metric) for c in todo}
        # only now: a poll that fails half-way reads them all again next time
        self.finished_series.update(c["id"] for c in todo if c["status"] in TERMINAL)
        if run["status"] in TERMINAL:
            self.polls_after_end += 1
            self.done = (all(c["status"] in TERMINAL for c in children)
                         or self.polls_after_end >= SETTLE_POLLS)
        return {"type": "sweep", "run": run, "children": children, "series": series}

    def series(self, run_id: str, metric: str) -> list[list]:
        """[[step, value], ...] of rank 0's ``metric`` (downsampled for a chart)."""
        found = self.client.get(f"/runs/{quote(run_id)}/metrics/series", name=metric, rank=0,
                                points=self.points)["series"]
        return found[0]["points"] if found else []


class SweepMonitor(anywidget.AnyWidget):
    _esm = esm("sweep_monitor.js", "chart.js")
    _css = css("chart.css", "sweep_monitor.css")

    run_id = traitlets.Unicode().tag(sync=True)
    experiment = traitlets.Unicode().tag(sync=True)
    workspace = traitlets.Unicode().tag(sync=True)
    status = traitlets.Unicode().tag(sync=True)
    poll_s = traitlets.Float(POLL_S).tag(sync=True)

    def __init__(self, run, **kwargs):
        super().__init__(run_id=run.id, experiment=run.experiment.name,
                         workspace=str(run.workspace.client.ws.path), status=run.status, **kwargs)
        self.run = run
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.on_msg(self._on_front_end_msg)

    def _on_front_end_msg(self, _widget, content, _buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "poll_through_kernel" and self._thread is None:
            self._thread = threading.Thread(target=self._forward, name=f"sweep-monitor-{self.run_id}",
                                            daemon=True)
            self._thread.start()
        elif kind == "cancel":
            self.run.cancel()

    def _forward(self) -> None:
        """Poll the sweep and forward what the feed reads (when the front end cannot reach the
        server itself); stop once the sweep is final."""
        feed = SweepFeed(self.run.workspace.client, self.run_id)
        errors = 0
        while not self._stop.is_set():
            try:
                msg = feed.poll()
                errors = 0
            except Exception as exc:  # the widget must never take the kernel down
                errors += 1
                self.send({"type": "error", "message": f"monitor: {exc}"})
                if errors >= MAX_ERRORS:
                    return
            else:
                self.status = msg["run"]["status"]
                self.send(msg)
                if feed.done:
                    self.send({"type": "end"})
                    return
            self._stop.wait(self.poll_s)

    def close(self):
        self._stop.set()
        super().close()

    def _repr_mimebundle_(self, **kwargs):
        data, metadata = super()._repr_mimebundle_(**kwargs)
        data["text/html"] = sweep_summary_html(self.run)
        return data, metadata


def sort_children(children: list[dict], maximize: bool) -> list[dict]:
    """Best first by best_primary_metric, those without one last; ties keep the API's order
    (newest first). sweep_monitor.js sorts the same way."""
    have = [c for c in children if c.get("best_primary_metric") is not None]
    have.sort(key=lambda c: c["best_primary_metric"], reverse=maximize)
    return have + [c for c in children if c.get("best_primary_metric") is None]


def sweep_summary_html(run) -> str:
    """A static summary of a sweep (for saved notebooks viewed without widgets): its status, the
    best child and the children sorted by the primary metric."""
    d = run._data
    cfg = d["properties"]["sweep"]
    metric = cfg["primary_metric_name"]
    try:
        children = run.workspace.client.get("/runs", parent=run.id, limit=MAX_CHILDREN)["runs"]
    except Exception:
        children = []
    rows = sort_children(children, cfg["primary_metric_goal"] == "maximize")
    names = sorted({k for c in rows for k in c["properties"].get("hyperparameters", {})})
    e = html.escape
    head = "".join(f"<th>{e(n)}</th>" for n in ["run", "status", *names, metric, "note"])
    body = ""
    for c in rows:
        hp = c["properties"].get("hyperparameters", {})
        cells = [c["id"], c["status"], *(_fmt(hp.get(n, "")) for n in names),
                 _fmt(c.get("best_primary_metric")), _note(c)]
        body += "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in cells) + "</tr>"
    best = (f"; best {e(metric)} {e(_fmt(rows[0]['best_primary_metric']))} "
            f"(<code>{e(rows[0]['id'])}</code>)") if rows and rows[0].get("best_primary_metric") is not None else ""
    return (f"<div class='jupyter-train-sweep'><b>{e(d['experiment'])}</b> / <code>{e(d['id'])}</code>: "
            f"<b>{e(d['status'])}</b>, {len(children)} of {cfg['max_total_runs']} children{best}"
            f"<table><tr>{head}</tr>{body}</table></div>")


def _note(child: dict) -> str:
    """Why a child ended the way it did: the policy's reason, or its error."""
    reason = child["properties"].get("cancel_reason")
    if child["status"] in (contract.CANCELED, contract.CANCEL_REQUESTED) and reason:
        return f"stopped: {reason}"
    return (child.get("error") or "").splitlines()[0] if child.get("error") else ""


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
