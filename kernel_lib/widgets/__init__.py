from .details import RunDetails, monitor_for
from .run_monitor import RunMonitor, summary_html
from .sweep_monitor import SweepMonitor, sweep_summary_html

__all__ = ["RunDetails", "RunMonitor", "SweepMonitor", "monitor_for", "summary_html", "sweep_summary_html"]
