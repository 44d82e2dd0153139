"""Process helpers shared by the supervisor, the node keepers and the server: liveness that
survives pid reuse, process-group termination that escalates SIGTERM -> SIGKILL, and the run's
process boundary (``become_subreaper`` + ``end_run_processes``): every process a run started,
however it detached, is found and ended. Standard library only (the supervisor starts fast)."""

from __future__ import annotations

import os
import signal
import sys
import time

from .. import contract


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
                if item.startswith(RUN_DIR_VAR):
                    return item.split(b"=", 1)[1].decode()
    except OSError:
        return None
    return None


# -- the run's process boundary ------------------------------------------------------------------
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
KILL_ROUNDS_S = 5.0  # SIGKILL rounds stop after this long (a fork bomb), reported as survivors
RUN_DIR_VAR = (contract.ENV_RUN_DIR + "=").encode()


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux): a child that calls
    setsid() or double-forks into a daemon is reparented to us, not to init, so it can still be
    found among our descendants. False where the platform does not allow it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def process_table() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (state, ppid, pgid, start time) of every process this one can see in /proc."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        try:
            table[int(name)] = (fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))
        except (IndexError, ValueError):
            continue
    return table


def _descendants(root: int, table) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (_state, ppid, _pgid, _st) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _ancestors(pid: int, table) -> set[int]:
    found = set()
    while pid in table and pid not in found and pid > 1:
        found.add(pid)
        pid = table[pid][1]
    return found


def _has_run_dir(pid: int, run_dir: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return RUN_DIR_VAR + run_dir in f.read().split(b"\0")
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = f.read().replace(b"\0", b" ").decode(errors="replace").strip().replace("\n", "\\n")
    except OSError:
        return "?"
    return text if len(text) <= 300 else text[:300] + "..."


class _RunProcesses:
    """Finds the live processes of one run: this process's descendants (``descendants``: when it is
    their subreaper), the members of ``groups``, and every process whose environment names
    ``run_dir`` (JUPYTER_TRAIN_RUN_DIR, set for every job process; what the server has to go on
    when the supervisor is gone). Never this process or its ancestors."""

    def __init__(self, run_dir, groups, descendants: bool):
        self.run_dir = os.fsencode(str(run_dir)) if run_dir else None
        self.groups, self.descendants = set(groups), descendants
        self.marked: dict[tuple[int, int], bool] = {}  # (pid, start time) -> environment names the run
        self.table: dict = {}

    def find(self) -> dict[int, int]:
        """pid -> start time of the run's live processes."""
        self.table = table = process_table()
        me = os.getpid()
        spare = _ancestors(me, table) | {me}
        mine = _descendants(me, table) if self.descendants else set()
        found = {}
        for pid, (state, _ppid, pgid, started) in table.items():
            if state in ("Z", "X") or pid in spare:
                continue
            if pid in mine or pgid in self.groups or self._marked(pid, started):
                found[pid] = started
        return found

    def _marked(self, pid: int, started: int) -> bool:
        if self.run_dir is None:
            return False
        key = (pid, started)
        if key not in self.marked:
            self.marked[key] = _has_run_dir(pid, self.run_dir)
        return self.marked[key]

    def reap(self, keep) -> None:
        """As their subreaper (``descendants``), collect our zombie children, except ``keep``
        (whose Popen collects them). Never otherwise: a server's other children (kernels,
        supervisors) are collected by the code that started them."""
        if not self.descendants:
            return
        me = os.getpid()
        for pid, (state, ppid, _pgid, _st) in self.table.items():
            if state == "Z" and ppid == me and pid not in keep:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def _zombie_children() -> set[int]:
    """Our children that have exited and wait to be collected (a few reads, not a /proc scan)."""
    me = os.getpid()
    children: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children", "rb") as f:
                children.update(int(x) for x in f.read().split())
    except OSError:  # a kernel without /proc/.../children
        return {pid for pid, (state, ppid, _g, _s) in process_table().items() if state == "Z" and ppid == me}
    zombies = set()
    for pid in children:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if data[data.rfind(b")") + 2:][:1] == b"Z":
            zombies.add(pid)
    return zombies


def start_reaper(keep, interval_s: float = 2.0):
    """A subreaper inherits every orphan of its tree, and their zombies until it collects them: a
    daemon thread collects, every ``interval_s``, our zombie children that were already zombies
    on its previous pass (no Popen claimed them meanwhile) and are not in ``keep()`` (the pids
    our Popen objects wait for), so a long run that spawns many short-lived daemons never fills
    the pid table."""
    import threading

    def loop() -> None:
        seen: set[int] = set()
        while True:
            time.sleep(interval_s)
            zombies = _zombie_children() - set(keep())
            for pid in zombies & seen:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            seen = zombies - seen

    t = threading.Thread(target=loop, name="orphan-reaper", daemon=True)
    t.start()
    return t


def _send(pid: int, started: int, sig: int) -> bool:
    """``sig`` to ``pid`` if it is still the process that started at ``started``."""
    if start_time(pid) != started:
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def end_run_processes(run_dir=None, grace_s: float = 2.0, *, groups=(), descendants: bool = False,
                      keep=(), say=None, poll_s: float = 0.05) -> list[dict]:
    """End every process of a run (see _RunProcesses): SIGTERM to all of them at once, up to
    ``grace_s`` for them to go, then SIGKILL, repeated until none is found (killing a parent hands
    its children to their subreaper, or to init, where the next round finds them); with
    ``descendants`` our zombies are reaped, except ``keep`` (pids a Popen waits for). Returns one
    record per process signalled other than ``keep``: pid, cmdline, and the signal that ended
    it; ``say`` gets a report naming them, if any."""
    if not os.path.isdir("/proc/self/task"):  # no /proc to search (macOS): the groups, as before
        terminate_groups(groups, grace_s)
        return []
    procs = _RunProcesses(run_dir, [g for g in groups if g], descendants)
    keep = set(keep)
    records: dict[int, dict] = {}

    def signal_all(sig: int, found: dict[int, int]) -> None:
        for pid, started in found.items():
            if sig == signal.SIGTERM and pid in records:
                continue  # once is enough
            line = records[pid]["cmdline"] if pid in records else cmdline(pid)  # before it is gone
            if _send(pid, started, sig):
                entry = records.setdefault(pid, {"pid": pid, "cmdline": line, "keep": pid in keep})
                entry["signal"] = signal.Signals(sig).name

    found = procs.find()
    signal_all(signal.SIGTERM, found)
    deadline = time.monotonic() + grace_s
    while found and time.monotonic() < deadline:
        time.sleep(poll_s)
        procs.reap(keep)
        found = procs.find()
        signal_all(signal.SIGTERM, found)  # the ones that appeared since
    deadline = time.monotonic() + KILL_ROUNDS_S
    while found:
        signal_all(signal.SIGKILL, found)
        time.sleep(0.01)
        procs.reap(keep)
        found = procs.find()
        if time.monotonic() > deadline:
            break
    procs.reap(keep)
    ended = [{k: r[k] for k in ("pid", "cmdline", "signal")} for r in records.values() if not r["keep"]]
    if say is not None and (ended or found):
        say(kill_report(ended, grace_s, survivors=found))
    return ended


def kill_report(records: list[dict], grace_s: float, survivors=()) -> str:
    lines = [f"killed {len(records)} process(es) of the run besides its nodes' own commands (SIGTERM; "
             f"SIGKILL where that had not ended it within {grace_s:g} s):"]
    lines += [f"  pid {r['pid']} ({r['signal']}): {r['cmdline']}" for r in records]
    if survivors:
        lines.append(f"  still alive after {KILL_ROUNDS_S:g} s of SIGKILL: pids {sorted(survivors)}")
    return "\n".join(lines)


def note_to(path):
    """A ``say`` for end_run_processes that appends to the log file ``path`` (time-stamped)."""
    def say(text: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    return say
