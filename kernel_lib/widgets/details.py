"""Which live view a run gets: ``monitor_for(run)`` (a Run's _repr_mimebundle_) and Azure ML's
``RunDetails(run).show()``."""

from __future__ import annotations

from .run_monitor import RunMonitor
from .sweep_monitor import SweepMonitor, is_sweep


def monitor_for(run):
    """The live view of ``run``: a SweepMonitor for a sweep's parent (a HyperDriveRun), else a
    RunMonitor."""
    return SweepMonitor(run) if is_sweep(run) else RunMonitor(run)


class RunDetails:
    """Azure ML's ``RunDetails(run).show()`` (azureml.widgets): shows the live run monitor, or
    the sweep monitor for a HyperDriveRun."""

    def __init__(self, run_instance):
        self.run = run_instance

    def get_widget(self):
        return monitor_for(self.run)

    def show(self):
        from IPython.display import display

        monitor = self.get_widget()
        display(monitor)
        return monitor
