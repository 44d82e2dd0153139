"""Run: one execution of a script, with its status history, logs, metrics, files and models."""

from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import quote

from jupyter_ext import contract

from .client import TrainError

TERMINAL = (contract.COMPLETED, contract.FAILED, contract.CANCELED)
METRICS_PAGE = 100_000  # points a request (the server's largest page)


class RunFailed(TrainError):
    """wait_for_completion(raise_on_error=True) on a run that Failed."""


class Run:
    def __init__(self, experiment, run_id: str, _data: dict | None = None):
        self.experiment = experiment
        self.workspace = experiment.workspace
        self.id = run_id
        self._data = _data if _data is not None else self.workspace.client.get(f"/runs/{run_id}")

    @classmethod
    def _from_data(cls, workspace, data: dict) -> "Run":
        from .experiment import Experiment

        if cls is Run and (data.get("properties") or {}).get("sweep"):
            from .hyperdrive import HyperDriveRun
            cls = HyperDriveRun  # a sweep's parent, however it was found
        return cls(Experiment(workspace, data["experiment"]), data["id"], _data=data)

    def __repr__(self):
        return f"Run(id={self.id!r}, experiment={self.experiment.name!r}, status={self.status!r})"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """In a notebook a Run shows as a live RunMonitor, a sweep's parent as a SweepMonitor
        (each with a static HTML fallback)."""
        from .widgets import monitor_for

        return monitor_for(self)._repr_mimebundle_()

    # -- details --------------------------------------------------------------------------
    def refresh(self) -> "Run":
        self._data = self.workspace.client.get(f"/runs/{self.id}")
        return self

    @property
    def status(self) -> str:
        return self._data["status"]

    def get_status(self) -> str:
        return self.refresh().status

    def get_details(self) -> dict:
        """The run as the server has it, plus Azure ML's names: runId, target and
        runDefinition {script, arguments, target}."""
        d = dict(self.refresh()._data)
        d.setdefault("runId", d["id"])
        d.setdefault("target", d["compute_target"])
        d.setdefault("runDefinition", {"script": d["script"], "arguments": list(d["arguments"]),
                                       "target": d["compute_target"]})
        return d

    @property
    def error(self) -> str | None:
        return self._data.get("error")

    def get_tags(self) -> dict:
        return dict(self.refresh()._data["tags"])

    def tag(self, key: str, value=None) -> None:
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: dict) -> None:
        self._data = self.workspace.client.request("PATCH", f"/runs/{self.id}",
                                                   {"tags": {k: str(v) for k, v in tags.items()}})

    def cancel(self) -> None:
        self._data = self.workspace.client.post(f"/runs/{self.id}/cancel")

    # -- waiting and logs -----------------------------------------------------------------
    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True) -> dict:
        """Block until the run finishes; with show_output, stream its output as it is written."""
        if show_output:
            print(f"RunId: {self.id}\nExperiment: {self.experiment.name}\n", flush=True)
        status = None
        # Waiting needs status messages only; with show_output the log lines as well. Metric
        # points are never asked for here (get_metrics() pages them when wanted).
        for msg in self.workspace.client.stream(self.id, metrics=False, output=show_output):
            if msg["type"] == "status":
                self._data = msg["run"]
                if show_output and msg["run"]["status"] != status:
                    status = msg["run"]["status"]
                    print(f"[{time.strftime('%H:%M:%S')}] {status}", flush=True)
            elif msg["type"] == "log" and show_output and _is_rank_log(msg["name"]):
                sys.stdout.write(msg["text"])
                sys.stdout.flush()
        self.refresh()
        if show_output:
            self._print_summary()
        if self.status == contract.FAILED and raise_on_error:
            raise RunFailed(f"Run {self.id} failed: {self.error}", "run_failed")
        return self.get_details()

    def _print_summary(self) -> None:
        d = self._data
        took = (d["ended_at"] or time.time()) - d["created_at"]
        print(f"\nExecution Summary\n=================\nRunId: {self.id}\nStatus: {d['status']}"
              f"\nDuration: {took:.1f} s", flush=True)
        if d.get("error"):
            print(f"Error: {d['error']}", flush=True)

    def get_logs(self) -> list[dict]:
        return self.workspace.client.get(f"/runs/{self.id}/logs")["logs"]

    def get_log(self, name: str = "rank_0.txt") -> str:
        chunks, offset = [], 0
        while True:
            page = self.workspace.client.get(f"/runs/{self.id}/logs/{quote(name)}", offset=offset)
            chunks.append(page["text"])
            if page["next_offset"] == offset:
                return "".join(chunks)
            offset = page["next_offset"]

    # -- metrics --------------------------------------------------------------------------
    def _metric_columns(self, name: str | None = None) -> dict[str, list]:
        """Every point (of ``name``) as lists per field, in the order they were logged: pages
        of 100,000 in the server's column layout (a million points in a few seconds)."""
        cols: dict[str, list] = {k: [] for k in ("id", "rank", "name", "step", "value", "ts")}
        cursor = 0
        while True:
            page = self.workspace.client.get(f"/runs/{self.id}/metrics", cursor=cursor, name=name,
                                             limit=METRICS_PAGE, format="columns")
            if not page["columns"]["id"]:  # (a server may cap pages below what was asked)
                return cols
            for key, values in page["columns"].items():
                cols[key] += values
            cursor = page["cursor"]

    def get_metrics_history(self, name: str | None = None) -> list[dict]:
        """Every point (of the metric ``name``), in the order they were logged:
        [{id, rank, name, step, value, ts}]."""
        cols = self._metric_columns(name)
        keys = list(cols)
        return [dict(zip(keys, row)) for row in zip(*cols.values())]

    def get_metrics(self, name: str | None = None) -> dict:
        """{name: value} for a metric logged once, {name: [values...]} for one logged more often
        (ordered by step), as Azure ML's Run.get_metrics does. The nodes' system metrics
        (``system/...``, one series a node) are left out unless ``name`` asks for one:
        get_metric_series() has them apart by node."""
        cols = self._metric_columns(name)
        by_name: dict[str, list[int]] = {}
        for i, n in enumerate(cols["name"]):
            if name is None and contract.is_system_metric(n):
                continue
            by_name.setdefault(n, []).append(i)
        steps, values, ids = cols["step"], cols["value"], cols["id"]
        out = {}
        for key, idx in sorted(by_name.items()):
            s = [steps[i] for i in idx]
            if None in s or any(a > b for a, b in zip(s, s[1:])):  # else already in step order
                idx.sort(key=lambda i: (steps[i] or 0, ids[i]))
            out[key] = _table(values[idx[0]]) if len(idx) == 1 else [values[i] for i in idx]
        return out

    def get_metric_series(self, name: str | None = None, points: int = 1000) -> list[dict]:
        """Each metric series downsampled for a chart: [{name, rank, count, downsampled,
        points: [[step, value], ...], last}] (min and max per bucket of steps)."""
        return self.workspace.client.get(f"/runs/{self.id}/metrics/series", name=name,
                                         points=points)["series"]

    # -- files ----------------------------------------------------------------------------
    def get_file_names(self) -> list[str]:
        return self.workspace.client.get(f"/runs/{self.id}/files")["files"]

    def download_file(self, name: str, output_file_path: str | None = None) -> str:
        data = self.workspace.client.request("GET", f"/runs/{self.id}/files/{quote(name)}", raw=True)
        target = output_file_path or os.path.basename(name)
        if os.path.isdir(target):
            target = os.path.join(target, os.path.basename(name))
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        return target

    def download_files(self, prefix: str = "outputs", output_directory: str = ".") -> list[str]:
        return [self.download_file(n, os.path.join(output_directory, n))
                for n in self.get_file_names() if n.startswith(prefix)]

    # -- models ---------------------------------------------------------------------------
    def register_model(self, model_name: str, model_path: str, tags: dict | None = None,
                       properties: dict | None = None, description: str | None = None,
                       model_framework: str | None = None, model_framework_version: str | None = None,
                       **_azure_only):
        """Register a file or folder of this run (e.g. outputs/model.pt) as a new version of
        ``model_name``; the version records this run and its experiment."""
        from .model import Model

        data = self.workspace.client.post("/models", {
            "name": model_name, "run_id": self.id, "path": model_path, "tags": tags or {},
            "properties": properties or {}, "description": description,
            "model_framework": model_framework, "model_framework_version": model_framework_version})
        return Model(self.workspace, _data=data)


def _table(value):
    """A confusion matrix or accuracy table (logged as its JSON text) as the dict it was, as
    Azure ML's get_metrics answers it; any other value as it is."""
    if isinstance(value, str) and value.startswith('{"schema_type":'):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def _is_rank_log(name: str) -> bool:
    """show_output streams the environment build (prepare.txt) and rank 0 (the driver, as in
    Azure ML); get_log('rank_N.txt') has the rest."""
    return name in ("rank_0.txt", "prepare.txt")
