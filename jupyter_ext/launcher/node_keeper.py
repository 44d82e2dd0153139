"""``python -m jupyter_ext.launcher.node_keeper ROOT GRACE_S LIFELINE_FD STATE_FILE -- COMMAND...``:
runs a Ray node's command so that it cannot outlive its agent.

The agent is an actor. Ray ends its worker process when the supervisor (its owner) dies, on
``ray.kill``, or when the agent crashes, and none of those lets the agent clean up; an exiting
worker also SIGKILLs its direct children. So the keeper forks once and lives on as a grandchild
(its parent exits at once), holding the read end of a pipe whose write end only the agent holds:
end of file on it means the agent is gone. Then, or on SIGTERM (the agent's own stop), it stops
the command's process group (SIGTERM, SIGKILL after GRACE_S) and every rank that recorded its
pid under ROOT (torchrun starts its workers in sessions of their own).

It is the node's process boundary, as the supervisor is the run's: a child subreaper, so what
the command starts in sessions of its own or as double-forked daemons stays its descendant; when
the command ends, and when it is stopped, every descendant left is ended (SIGTERM, SIGKILL after
GRACE_S) and named in the node's log, before the command's status is written.

STATE_FILE (JSON, replaced whole) says ``{"keeper": pid, "command": pid}`` once the command
runs, and adds ``"code"``, the command's status (128 + N for a signal N), when it is over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from .procs import become_subreaper, end_run_processes, kill_ranks, start_reaper
from .rundir import RunDir


def write_state(path: str, state: dict) -> None:
    tmp = f"{path}.part"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def read_state(path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 6 or argv[4] != "--":
        print("usage: python -m jupyter_ext.launcher.node_keeper ROOT GRACE_S LIFELINE_FD STATE_FILE -- "
              "COMMAND...", file=sys.stderr)
        return 2
    root, grace, lifeline, state_file, command = argv[0], float(argv[1]), int(argv[2]), argv[3], argv[5:]
    if os.fork() > 0:
        os._exit(0)  # the agent's child exits now; the keeper is nobody's child Ray would kill
    child = None
    if become_subreaper():  # after the fork: the command's orphans come back to the keeper
        start_reaper(lambda: {child.pid} if child else set())
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("stop"))

    def watch() -> None:
        while os.read(lifeline, 4096):
            pass
        stopping.append("agent gone")

    child = subprocess.Popen(command, start_new_session=True)
    write_state(state_file, {"keeper": os.getpid(), "command": child.pid})
    threading.Thread(target=watch, daemon=True).start()
    while child.poll() is None and not stopping:
        time.sleep(0.1)
    # ended, or told to stop: end everything the command started, however it detached
    end_run_processes(None, grace, groups=[child.pid], descendants=True, keep=[child.pid],
                      say=lambda text: print(f"node keeper: {text}", flush=True))
    code = child.wait()
    code = code if code >= 0 else 128 - code
    if stopping:
        kill_ranks(RunDir(root))
    write_state(state_file, {"keeper": os.getpid(), "command": child.pid, "code": code})
    return code


if __name__ == "__main__":
    sys.exit(main())
