"""Prints, then waits for files the test creates: the tailer's file-event tests drive it.

    wait_release.py RELEASE_DIR [--new-files]

After RELEASE_DIR/go appears it logs a metric and prints a line; with --new-files it also starts
a second rank's metrics file and a log file in a new nested folder of the run's logs/. It ends
when RELEASE_DIR/end appears (or after 60 s, so that it never outlives a failed test).
"""
import os
import sys
import time

from kernel_lib.tracking import Run

release = sys.argv[1]
run = Run.get_context()
print("started", flush=True)


def wait(name):
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(release, name)) and time.monotonic() < deadline:
        time.sleep(0.02)


wait("go")
run.log("after_go", 1.0)
run.flush()
print("released", time.time(), flush=True)
if "--new-files" in sys.argv:
    Run(run.id, os.environ["JUPYTER_TRAIN_METRICS_DIR"], rank=1).log("late_rank", 2.0)
    nested = os.path.join(os.environ["JUPYTER_TRAIN_RUN_DIR"], "logs", "agent", "node1")
    os.makedirs(nested, exist_ok=True)
    with open(os.path.join(nested, "extra.txt"), "a") as f:
        f.write("late log line\n")
wait("end")
