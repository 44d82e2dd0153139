from .run_monitor import RunMonitor, summary_html

__all__ = ["RunMonitor", "summary_html"]
