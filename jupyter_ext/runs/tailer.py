"""The tailer: follows what active runs write and folds it into the store.

Every ``poll_interval`` it reads new event lines (-> run status), new metric lines (-> metrics
rows, with the file offset committed in the same transaction), notices grown log files, reaps
supervisors this server started and detects supervisors that died without finishing. Then it
wakes the subscribers of every run that changed; each subscriber reads from its own offsets,
so a slow or reconnecting client never loses or duplicates anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time

from ..launcher.finalize import finalize_outputs
from ..launcher.procs import is_alive, kill_ranks, terminate_groups
from ..launcher.spec import RunSpec, RunState
from .ingest import parse_metric_lines, rank_of, read_complete_lines

log = logging.getLogger("jupyter_ext")
ORPHAN_GRACE_S = 30.0


class _Active:
    def __init__(self, offsets: dict[str, int]):
        self.metric_offsets = offsets
        self.log_sizes: dict[str, int] = {}
        self.supervisor: dict | None = None  # supervisor.json once its process groups are known


class Tailer:
    def __init__(self, manager, poll_interval: float):
        self.m = manager
        self.poll_interval = poll_interval
        self.children = {}  # run_id -> Popen of a supervisor this server started
        self.active: dict[str, _Active] = {}
        self.subscribers: dict[str, set[asyncio.Event]] = {}
        self.watchers: set[asyncio.Event] = set()  # woken when any run changes (workspace feed)
        self._lock = threading.RLock()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.finished: list[str] = []  # runs that reached a final state, for the event loop

    # -- lifecycle ------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Rebuild rows for run directories the database lacks, then follow every unfinished run."""
        store = self.m.store
        known = {r["id"] for r in store.list_runs(limit=10**9)}
        if self.m.ws.runs.is_dir():
            for d in sorted(self.m.ws.runs.iterdir()):
                if d.name not in known and (d / "spec.json").is_file():
                    self._restore_row(d)
        for run in sorted(store.list_runs(limit=10**9, active_only=True), key=lambda r: r["created_at"]):
            self.sync(run["id"])
            self._reattach_nodes(run)

    def _reattach_nodes(self, run: dict) -> None:
        """A running run keeps the nodes it holds; a queued one goes back in its queue."""
        target = self.m.targets.get(run["compute_target"])
        if target is None:
            return
        nodes_file = self.m.run_dir(run["id"]).path / "nodes.json"
        run = self.m.store.get_run(run["id"])
        if RunState(run["status"]).is_terminal():
            return
        if nodes_file.is_file():
            target.hold(run["id"], json.loads(nodes_file.read_text())["nodes"])
        elif run["status"] == RunState.QUEUED.value:
            target.queue.append(run["id"])

    def _restore_row(self, d) -> None:
        spec = RunSpec.load(d / "spec.json")
        self.m.store.insert_run({"id": spec.run_id, "experiment": spec.experiment,
                                 "status": RunState.NOT_STARTED.value, "created_at": spec.created_at,
                                 "compute_target": spec.compute_target, "script": spec.script,
                                 "arguments": spec.arguments, "tags": spec.tags,
                                 "snapshot_id": spec.snapshot_id, "run_dir": str(d)})
        log.info("jupyter-train: restored run %s from its directory", spec.run_id)

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                changed = await asyncio.to_thread(self.tick)
            except Exception:  # keep following the other runs; the traceback goes to the log
                log.exception("jupyter-train: tailer tick failed")
                changed = set()
            for run_id in changed:
                for ev in self.subscribers.get(run_id, ()):
                    ev.set()
            if changed:
                self.wake_watchers()
            self.drain_finished()
            self.m.tick_targets()
            await asyncio.sleep(self.poll_interval)

    def drain_finished(self) -> None:
        with self._lock:
            done, self.finished = self.finished, []
        for run_id in done:
            self.m.run_finished(run_id)

    # -- subscriptions --------------------------------------------------------------------
    def subscribe(self, run_id: str) -> asyncio.Event:
        ev = asyncio.Event()
        self.subscribers.setdefault(run_id, set()).add(ev)
        return ev

    def unsubscribe(self, run_id: str, ev: asyncio.Event) -> None:
        subs = self.subscribers.get(run_id)
        if subs:
            subs.discard(ev)
            if not subs:
                del self.subscribers[run_id]

    # -- one pass -------------------------------------------------------------------------
    def tick(self) -> set[str]:
        changed = set()
        for run_id in list(self.active):
            try:
                if self._follow(run_id):
                    changed.add(run_id)
            except Exception:
                log.exception("jupyter-train: following run %s failed", run_id)
        return changed

    def sync(self, run_id: str) -> dict:
        """Fold new events of one run now (used right after the server writes one)."""
        with self._lock:
            before = self.m.store.get_run(run_id)
            run = self._fold_events(run_id)[0]
            # Follow it if it was unfinished before this fold: a run that finished while no
            # server was up still has metrics to ingest, and the next pass does that.
            if before and before["status"] not in _TERMINAL and run_id not in self.active:
                self.active[run_id] = _Active(self.m.store.tail_offsets(run_id))
        if run is not None:
            for ev in self.subscribers.get(run_id, ()):
                ev.set()
            self.wake_watchers()
        return run

    def wake_watchers(self) -> None:
        for ev in self.watchers:
            ev.set()

    def _fold_events(self, run_id: str) -> tuple[dict | None, bool]:
        run = self.m.store.get_run(run_id)
        if run is None:
            return None, False
        events, offset = self.m.run_dir(run_id).read_events(run["events_offset"])
        if not events:
            return run, False
        return self.m.store.apply_events(run_id, events, offset), True

    def _follow(self, run_id: str) -> bool:
        with self._lock:
            state = self.active.get(run_id)
            if state is None:
                return False
            run, changed = self._fold_events(run_id)
            changed |= self._ingest_metrics(run_id, state)
            changed |= self._check_logs(run_id, state)
            status = RunState(run["status"])
            if not status.is_terminal():
                if self._supervisor_lost(run_id, run):
                    self._finish_orphan(run_id, run)
                    return True
                return changed
            popen = self.children.pop(run_id, None)
            if popen is not None:
                popen.wait()
            del self.active[run_id]  # metrics were ingested after the terminal event was read
            self.finished.append(run_id)
            return True

    def _ingest_metrics(self, run_id: str, state: _Active) -> bool:
        mdir = self.m.run_dir(run_id).metrics
        changed = False
        try:
            names = [e.name for e in os.scandir(mdir) if e.name.endswith(".jsonl")]
        except FileNotFoundError:
            return False
        for name in names:
            off = state.metric_offsets.get(name, 0)
            data, new_off = read_complete_lines(mdir / name, off)
            if new_off == off:
                continue
            rows, tags, problems = parse_metric_lines(data, rank_of(name))
            for p in problems:
                log.warning("jupyter-train: run %s: %s", run_id, p)
            self.m.store.ingest_metrics(run_id, name, rows, tags, new_off)
            state.metric_offsets[name] = new_off
            changed = True
        return changed

    def _check_logs(self, run_id: str, state: _Active) -> bool:
        changed = False
        try:
            entries = list(os.scandir(self.m.run_dir(run_id).logs))
        except FileNotFoundError:
            return False
        for e in entries:
            if e.is_file():
                size = e.stat().st_size
                if state.log_sizes.get(e.name) != size:
                    state.log_sizes[e.name] = size
                    changed = True
        return changed

    # -- supervisors that died --------------------------------------------------------------
    def _supervisor_lost(self, run_id: str, run: dict) -> bool:
        popen = self.children.get(run_id)
        if popen is not None:
            return popen.poll() is not None and self._fold_events(run_id)[0]["status"] not in _TERMINAL
        state = self.active[run_id]
        info = state.supervisor or self.m.run_dir(run_id).read_supervisor_info()
        if info and info.get("pgids"):
            state.supervisor = info  # final: no need to read the file on every pass
        if info is None:
            # Scheduled by a server that died before the supervisor wrote its pid file.
            queued = [p["ts"] for p in run["phases"] if p["state"] == RunState.QUEUED.value]
            return bool(queued) and time.time() - queued[-1] > ORPHAN_GRACE_S
        return not is_alive(info.get("pid"), info.get("start_time")) and \
            self._fold_events(run_id)[0]["status"] not in _TERMINAL

    def _finish_orphan(self, run_id: str, run: dict) -> None:
        rd = self.m.run_dir(run_id)
        info = rd.read_supervisor_info() or {}
        terminate_groups(info.get("pgids") or [], grace_s=2.0)
        stop_containers = getattr(self.m.targets.get(run.get("compute_target")), "stop_containers", None)
        if stop_containers is not None:
            stop_containers(run_id)  # a Docker target's nodes, found by label on the engine
        kill_ranks(rd)
        finalize_outputs(rd)
        # Read the log again: a cancel may have landed after ``run`` was folded (a SIGTERM that
        # reached the supervisor before its handler was set is how such a cancel ends).
        cancel_asked = any(e["state"] == RunState.CANCEL_REQUESTED.value for e in rd.read_events()[0])
        if cancel_asked:
            rd.append_event(RunState.CANCELED, "server", "Canceled (its supervisor had gone)")
        else:
            rd.append_event(RunState.FAILED, "server",
                            f"The run's supervisor (pid {info.get('pid')}) ended without recording a "
                            "result; the run's processes were stopped. Check logs/supervisor.txt.")
        self.children.pop(run_id, None)
        self._fold_events(run_id)
        self._ingest_metrics(run_id, self.active[run_id])
        del self.active[run_id]
        self.finished.append(run_id)


_TERMINAL = {s.value for s in RunState if s.is_terminal()}
