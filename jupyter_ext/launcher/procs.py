"""Process helpers shared by the supervisor and the server: liveness that survives pid reuse,
and process-group termination that escalates SIGTERM -> SIGKILL."""

from __future__ import annotations

import os
import signal
import time


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone.
    Stored beside a pid so that a recycled pid is never mistaken for our process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parens; fields after the last ')' are fixed.
    fields = data[data.rfind(b")") + 2 :].split()
    if fields and fields[0] == b"Z":
        return None  # a zombie has finished
    return int(fields[19])


def is_alive(pid: int | None, started: int | None = None) -> bool:
    if not pid:
        return False
    st = start_time(pid)
    if st is None:
        return False
    return started is None or st == started


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_groups(pgids, grace_s: float = 2.0, poll_s: float = 0.05) -> None:
    """SIGTERM every group, wait up to ``grace_s`` for them to go, then SIGKILL what is left."""
    pgids = [p for p in pgids if p]
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not any(group_alive(p) for p in pgids):
            return
        time.sleep(poll_s)
    for pgid in pgids:
        signal_group(pgid, signal.SIGKILL)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_ranks(rd) -> None:
    """SIGKILL every training process that recorded its pid (rank_entry) and is still alive."""
    import json

    pid_dir = rd.path / "pids"
    if not pid_dir.is_dir():
        return
    for f in pid_dir.glob("rank_*.json"):
        try:
            pid = json.loads(f.read_text())["pid"]
        except (ValueError, KeyError, OSError):
            continue
        if is_alive(pid) and _environ_run_dir(pid) == str(rd.path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _environ_run_dir(pid: int) -> str | None:
    """The JUPYTER_TRAIN_RUN_DIR of ``pid``: proof that a recorded pid is still that rank."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"JUPYTER_TRAIN_RUN_DIR="):
                    return item.split(b"=", 1)[1].decode()
    except OSError:
        return None
    return None
