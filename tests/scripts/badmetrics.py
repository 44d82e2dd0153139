"""Logs values that are not plain numbers; the run must still complete."""
import math

from kernel_lib.tracking import Run

run = Run.get_context()
run.log("nan_metric", math.nan)
run.log("inf_metric", math.inf)
run.log("text_metric", "hello")
run.log("huge_text", "x" * 100_000)
run.log("dict_metric", {"a": 1})
run.log("", 1.0)
run.log("ok", 3.5)
print("still alive", flush=True)
