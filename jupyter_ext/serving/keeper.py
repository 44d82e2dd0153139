"""The rank of a service's run: starts the scoring process and keeps it up.

``python -m jupyter_ext.launcher.rank_entry <script>`` runs a two-line script that calls
``main()`` (so the service's run is an ordinary run: its supervisor, logs, cancel and process
boundary). ``main`` starts ``python -m jupyter_ext.serving.host FD`` and waits for the host to
write "ready PORT" on FD (init() done, the port bound):

- a host that ends before it was ever ready (its init() raised, the port was taken) fails the
  run, naming why; its traceback is in the log above;
- one that ends after it was ready (a crash in the process: a segfault, ``os._exit``, the OOM
  killer) is started again after 1, 2, 4 ... 30 s (back to 1 s after a minute up), and STATUS
  counts the restarts;
- SIGTERM (the run canceled: the service deleted) stops the host and ends the keeper, and so
  does the run directory going away (a deleted workspace: nobody could reach the service).

Standard library only.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

from .. import contract
from . import CONFIG, FAILED, HEALTHY, STATUS, TRANSITIONING, UNHEALTHY

BACKOFF_S = (1, 2, 4, 8, 16, 30)
STABLE_S = 60.0  # up this long: the next crash starts the backoff over
READY_TIMEOUT_S = 3600.0  # init() may load a big model; the run's own cancel ends a wait
WATCH_S = 2.0  # how often a serving keeper checks that its run directory is still there


class InitFailed(RuntimeError):
    pass


def write_status(run_dir: str, **status) -> None:
    path = os.path.join(run_dir, STATUS)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({**status, "updated_at": time.time()}, f)
    os.replace(tmp, path)


def say(text: str) -> None:
    print(f"[service] {text}", flush=True)


def wait_ready(child: subprocess.Popen, fd: int) -> int | None:
    """The port the host says it serves on, or None if it ended first."""
    buf = b""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 256)
            if not chunk:  # the host closed it: it ended, or is ending
                return None
            buf += chunk
            if b"\n" in buf:
                line = buf.split(b"\n", 1)[0].decode()
                if line.startswith("ready "):
                    return int(line.split()[1])
        elif child.poll() is not None:
            return None
    return None


def wait_while_wanted(child: subprocess.Popen, run_dir: str) -> int | None:
    """The host's exit code; None when the run directory went away under it (the workspace
    deleted): then the host is stopped, for nobody can reach, see or delete the service."""
    while True:
        try:
            return child.wait(timeout=WATCH_S)
        except subprocess.TimeoutExpired:
            if not os.path.exists(os.path.join(run_dir, CONFIG)):
                child.terminate()
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
                return None


def main() -> int:
    run_dir = os.environ[contract.ENV_RUN_DIR]
    state = {"child": None, "stopping": False}

    def on_term(signum, _frame):
        state["stopping"] = True
        child = state["child"]
        if child is not None and child.poll() is None:
            child.terminate()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    restarts, streak, ever_ready, last = 0, 0, False, None
    while True:
        write_status(run_dir, state=UNHEALTHY if restarts else TRANSITIONING, restarts=restarts,
                     last_exit=last, pid=None, port=None)
        r, w = os.pipe()
        child = subprocess.Popen([sys.executable, "-m", "jupyter_ext.serving.host", str(w)], pass_fds=(w,))
        state["child"] = child
        os.close(w)
        try:
            port = wait_ready(child, r)
        finally:
            os.close(r)
        up_s = 0.0
        if port is None:
            code = child.wait()
            if not ever_ready:
                # the same words in the status file as in the run's error: a client that reads
                # the service between the two sees one message, not a vaguer first one
                why = (f"The scoring process ended (exit code {code}) before it served: its init() raised "
                       "or its port was taken.")
                write_status(run_dir, state=FAILED, restarts=restarts, last_exit=code, pid=None, port=None,
                             error=f"{why} See the service's log.")
                raise InitFailed(f"{why} The log above has its traceback.")
        else:
            ever_ready = True
            ready_at = time.time()
            write_status(run_dir, state=HEALTHY, restarts=restarts, last_exit=last, pid=child.pid,
                         port=port, ready_at=ready_at)
            say(f"serving on port {port} (pid {child.pid})")
            code = wait_while_wanted(child, run_dir)
            up_s = time.time() - ready_at
        if state["stopping"]:
            return 0
        if code is None:
            say(f"the run directory {run_dir} is gone: the service stops")
            return 1
        if up_s >= STABLE_S:
            streak = 0
        wait = BACKOFF_S[min(streak, len(BACKOFF_S) - 1)]
        streak += 1
        restarts += 1
        last = code
        say(f"the scoring process ended with exit code {code}; starting it again in {wait} s "
            f"(restart {restarts})")
        write_status(run_dir, state=UNHEALTHY, restarts=restarts, last_exit=code, pid=None, port=None,
                     next_start_at=time.time() + wait)
        time.sleep(wait)
