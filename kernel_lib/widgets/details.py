"""Which live view a run gets: ``monitor_for(run)`` (a Run's _repr_mimebundle_) and Azure ML's
``RunDetails(run).show()``."""

from __future__ import annotations

import time

from .run_monitor import RunMonitor
from .sweep_monitor import SweepMonitor, is_sweep


def monitor_for(run):
    """The live view of ``run``: a SweepMonitor for a sweep's parent (a HyperDriveRun), else a
    RunMonitor."""
    return SweepMonitor(run) if is_sweep(run) else RunMonitor(run)


def latest_metrics(run) -> dict:
    """The latest value of each of the run's metrics (rank 0's where ranks differ), from the
    server's series summaries: no point is read."""
    metrics = {}
    try:
        for s in sorted(run.get_metric_series(points=0), key=lambda s: s["rank"], reverse=True):
            if s["last"] is not None:
                metrics[s["name"]] = s["last"]["value"]  # rank 0 last, so it wins
    except Exception:  # a summary is a convenience: never an error of its own
        pass
    return metrics


def summary_text(run) -> str:
    """A run in a few lines of text: where there is no notebook to show the monitor in."""
    run.refresh()
    d = run._data
    took = (d.get("ended_at") or time.time()) - d["created_at"]
    lines = [f"Run {d['id']} of experiment {d['experiment']}: {d['status']} ({took:.1f} s)"]
    if d.get("error"):
        lines.append(f"  error: {d['error']}")
    metrics = {k: v for k, v in latest_metrics(run).items() if not k.startswith("system/")}
    width = max((len(k) for k in metrics), default=0)
    lines += [f"  {k:<{width}}  {v:.6g}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
              for k, v in sorted(metrics.items())]
    if not metrics:
        lines.append("  (no metrics logged yet)")
    lines.append("Live charts and logs: show it in a notebook, or open the jupyter-train panel in "
                 "JupyterLab; run.wait_for_completion(show_output=True) streams the log here.")
    return "\n".join(lines)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class RunDetails:
    """Azure ML's ``RunDetails(run).show()`` (azureml.widgets): shows the live run monitor, or
    the sweep monitor for a HyperDriveRun, once. Like Azure's, ``show()`` returns None, so a
    cell ending with it does not show the monitor a second time. Outside a notebook it prints
    a text summary instead."""

    def __init__(self, run_instance):
        self.run = run_instance
        self.widget = None

    def get_widget(self):
        return monitor_for(self.run)

    def show(self) -> None:
        if not _in_notebook():
            print(summary_text(self.run))
            return None
        from IPython.display import display

        self.widget = self.get_widget()
        display(self.widget)
        return None
