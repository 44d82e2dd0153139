from .run_monitor import RunDetails, RunMonitor, summary_html

__all__ = ["RunDetails", "RunMonitor", "summary_html"]
