"""The tailer: follows what active runs write and folds it into the store.

A pass reads new event lines (-> run status), new metric lines (-> metrics rows, with the file
offset committed in the same transaction), notices grown log files, reaps supervisors this server
started and detects supervisors that died without finishing. Then it wakes the subscribers of
every run that changed; each subscriber reads from its own offsets, so a slow or reconnecting
client never loses or duplicates anything.

Passes are driven by file events (``watch.py``, inotify): a write to a run's events, metrics or
logs wakes a pass over that run within a millisecond or two, and a run that writes nothing costs
nothing. Every ``poll_interval`` seconds (the fallback, 1 s by default) a pass looks at every
active run whatever the events said: supervisor liveness, orphans, files written where no event
is raised (another host on a network filesystem). Where file events are not available the
tailer polls every ``NO_EVENTS_POLL_S`` instead; with ``file_events`` off, every poll_interval.
Passes run in the tailer's own thread, which comes back to the event loop only when it has news
for it (a change someone subscribed to, a finished run, a target to tick), so a run that logs
while nobody watches costs the server no event-loop wake-ups at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .. import contract
from ..launcher.finalize import finalize_outputs
from ..launcher.procs import is_alive, note_to
from ..launcher.rundir import RunDir
from ..launcher.spec import RunSpec, RunState
from .followed import Followed, metric_files
from .watch import Changes, open_watch

log = logging.getLogger("jupyter_ext")
ORPHAN_GRACE_S = 30.0
NO_EVENTS_POLL_S = 0.05  # the pace of passes where file events are unavailable or cover less
QUEUE_POLL_S = 0.05  # while a target has runs waiting for nodes: its tick() finishes scale-ups
MIN_GAP_S = 0.005  # between two passes that file events asked for: a writer's bursts coalesce
STOP_WAIT_S = 5.0  # stop() waits this long for the pass thread to finish its pass


class TailerHost(Protocol):
    """All the tailer asks of the run manager."""

    store: Any  # store.SQLiteStore
    ws: Any  # workspace.WorkspaceDir

    def run_dir(self, run_id: str) -> RunDir: ...
    def has_queued(self) -> bool: ...  # runs wait for nodes (the tailer ticks the targets)
    def tick_targets(self) -> None: ...
    def reattach(self, run: dict) -> None: ...  # a server restart: the run's nodes or queue place
    def reap_orphan(self, run: dict, rd: RunDir, say) -> None: ...  # its supervisor is gone
    def run_finished(self, run_id: str) -> None: ...  # free its nodes (on the event loop)


class Tailer:
    def __init__(self, manager: TailerHost, poll_interval: float):
        self.m = manager
        self.poll_interval = poll_interval  # the fallback: a full pass at least this often
        self.children = {}  # run_id -> Popen of a supervisor this server started
        self.active: dict[str, Followed] = {}
        self.subscribers: dict[str, set[asyncio.Event]] = {}
        self.watchers: set[asyncio.Event] = set()  # woken when any run changes (workspace feed)
        self._lock = threading.RLock()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.finished: list[str] = []  # runs that reached a final state, for the event loop
        self.file_events = True  # False: no inotify, a pass every poll_interval (TrainApp.file_events)
        self._watch = None  # RunWatch (file events); the pass thread's while it runs
        self._watch_lock = threading.Lock()  # who closes the watch: the loop or the pass thread
        self._in_thread = False  # the pass thread is running (_passes)
        self._poke_fds: tuple[int, int] | None = None  # a pipe that wakes the pass thread
        self._again: set[str] = set()  # runs the last pass left behind and moved on: at once
        self._next_full = 0.0  # monotonic time of the next pass over every active run
        self._last_pass = 0.0
        # Runs whose metrics files had more to read after the last pass (a run logging faster
        # than one slice, or one that ended with unread lines): the loop should pass again at
        # once, without waiting for a file event or its poll interval.
        self.backlog: set[str] = set()
        self._full = True  # the pass under way looks at every active run

    # -- lifecycle ------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Rebuild rows for run directories the database lacks, then follow every unfinished run
        and every finished one whose metrics files hold lines not yet ingested (a server that
        stopped before it read them all)."""
        store = self.m.store
        runs = store.list_runs(limit=10**9)
        known = {r["id"] for r in runs}
        if self.m.ws.runs.is_dir():
            for d in sorted(self.m.ws.runs.iterdir()):
                if d.name not in known and (d / "spec.json").is_file():
                    self._restore_row(d)
        for run in sorted(store.list_runs(limit=10**9, active_only=True), key=lambda r: r["created_at"]):
            self.sync(run["id"])
            if self.m.run_dir(run["id"]).last_state() == RunState.PREPARING:
                self.m.resume_preparing(self.m.store.get_run(run["id"]))  # its task went with the server
                continue
            self._reattach_nodes(run)
        for run in runs:
            if run["status"] in _TERMINAL and run["id"] not in self.active:
                offsets = store.tail_offsets(run["id"])
                if self._unread_metrics(run["id"], offsets):
                    self.active[run["id"]] = Followed(self.m.run_dir(run["id"]), offsets, drain_only=True)
                    self.backlog.add(run["id"])

    def _unread_metrics(self, run_id: str, offsets: dict[str, int]) -> bool:
        mdir = self.m.run_dir(run_id).metrics
        for name in metric_files(self.m.run_dir(run_id)):
            try:
                if os.stat(mdir / name, follow_symlinks=False).st_size > offsets.get(name, 0):
                    return True
            except OSError:
                continue
        return False

    def _reattach_nodes(self, run: dict) -> None:
        """A running run keeps the nodes it holds; a queued one goes back in its queue."""
        run = self.m.store.get_run(run["id"])
        if not RunState(run["status"]).is_terminal():
            self.m.reattach(run)

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
        """Stop following: the pass thread is woken and finishes its pass before the store closes."""
        self._stopping = True
        self._poke()
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_S)
            except asyncio.TimeoutError:
                self._task.cancel()
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        """Passes run in the tailer's thread (``_passes``), which comes back to the event loop
        only with news for it: changes someone subscribed to, finished runs, a target tick, the
        fallback pass."""
        self._open_watch()
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                try:
                    changed, logs = await loop.run_in_executor(self._executor, self._passes)
                except Exception:  # keep following; the traceback goes to the log
                    log.exception("jupyter-train: tailer tick failed")
                    changed, logs = set(), set()
                    await asyncio.sleep(self._fallback_s())
                for run_id in changed | logs:
                    for ev in self.subscribers.get(run_id, ()):
                        ev.set()
                if changed:  # the workspace feed shows runs, not their logs
                    self.wake_watchers()
                self.drain_finished()
                self.m.tick_targets()
        finally:
            self._stopping = True
            self._poke()
            self._release_watch(in_thread=False)
            self._executor.shutdown(wait=False)

    # -- the pass thread ------------------------------------------------------------------
    def _passes(self) -> tuple[set[str], set[str]]:
        """Pass after pass, each when file events name runs that wrote (all active runs every
        poll_interval; at once while ingestion is behind), until the event loop has work.
        Returns the runs that changed and the runs whose logs grew (those need no pass)."""
        with self._watch_lock:
            self._in_thread = True
        news: set[str] = set()
        logs: set[str] = set()
        try:
            while not self._stopping:
                changes = self._wait_for_files()
                now = time.monotonic()
                full = now >= self._next_full or changes.overflow
                if full:
                    self._next_full = now + self._fallback_s()
                self._last_pass = now
                run_ids = None if full else changes.runs | self._again
                changed = self.tick(run_ids) if run_ids is None or run_ids else set()
                self._again = self.backlog & changed  # more to read, and this pass moved on
                news |= changed
                logs |= changes.logs
                if self._watch is not None:
                    self._watch.keep(set(self.active))
                if full or self._loop_has_work(news, logs):
                    break
        finally:
            self._release_watch(in_thread=True)
        return news, logs

    def _wait_for_files(self) -> Changes:
        """Until a file event, a poke, the next full pass or (while runs wait for nodes) a target
        tick; no wait while the last pass left work behind."""
        pending = self._again or (self._watch is not None and self._watch.pending)
        timeout = 0.0 if pending else max(0.0, self._next_full - time.monotonic())
        if self.m.has_queued():
            timeout = min(timeout, QUEUE_POLL_S)
        poller = select.poll()
        poller.register(self._poke_fds[0], select.POLLIN)
        if self._watch is not None:
            poller.register(self._watch.fd, select.POLLIN)
        poller.poll(timeout * 1000)
        gap = self._last_pass + MIN_GAP_S - time.monotonic()
        if gap > 0 and not pending and not self._stopping:
            time.sleep(gap)  # woken right after a pass: a busy writer's next events coalesce
        _drain(self._poke_fds[0])
        if self._watch is None:
            return Changes()
        try:
            changes = self._watch.read()
        except OSError as exc:
            log.warning("jupyter-train: file events stopped (%s); the tailer polls instead", exc)
            self._watch.close()
            self._watch = None
            return Changes()
        self._next_full = min(self._next_full, self._last_pass + self._fallback_s())  # degraded
        return changes

    def _loop_has_work(self, news: set[str], logs: set[str]) -> bool:
        return bool(self._stopping or self.finished or (news and self.watchers)
                    or any(r in self.subscribers for r in news | logs)
                    or self.m.has_queued())

    def _fallback_s(self) -> float:
        if not self.file_events:
            return self.poll_interval  # the operator's choice: every pass is a poll
        if self._watch is None or self._watch.degraded:
            return min(self.poll_interval, NO_EVENTS_POLL_S)
        return self.poll_interval

    # -- file events ----------------------------------------------------------------------
    def _open_watch(self) -> None:
        # a thread of its own: it never waits behind snapshot copies, nor holds up theirs
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="jupyter-train-tailer")
        self._poke_fds = os.pipe()  # (os.pipe2 is Linux-only; these are close-on-exec already)
        for fd in self._poke_fds:
            os.set_blocking(fd, False)
        self._watch = open_watch(self.m.ws.runs) if self.file_events else None
        if self._watch is not None:
            self._watch.keep(set(self.active))

    def _poke(self) -> None:
        """Wake the pass thread (to stop)."""
        try:
            os.write(self._poke_fds[1], b"!")
        except (OSError, TypeError):  # not opened, closed, or full: it is awake anyway
            pass

    def _release_watch(self, in_thread: bool) -> None:
        """Close the watch and the poke pipe once stopping, by whoever is last: the event loop,
        or the pass thread when it was still running then (its descriptors stay valid)."""
        with self._watch_lock:
            if in_thread:
                self._in_thread = False
            if not self._stopping or self._in_thread or self._poke_fds is None:
                return
            watch, self._watch = self._watch, None
            if watch is not None:
                watch.close()
            for fd in self._poke_fds:
                os.close(fd)
            self._poke_fds = None

    def drain_finished(self) -> None:
        with self._lock:
            done, self.finished = self.finished, []
        for run_id in done:
            self.m.run_finished(run_id)

    # -- subscriptions --------------------------------------------------------------------
    def subscribe(self, run_id: str, ev: asyncio.Event | None = None) -> asyncio.Event:
        """An event set whenever ``run_id`` changes (``ev``: one shared by many runs, a sweep's)."""
        ev = ev or asyncio.Event()
        self.subscribers.setdefault(run_id, set()).add(ev)
        return ev

    def unsubscribe(self, run_id: str, ev: asyncio.Event) -> None:
        subs = self.subscribers.get(run_id)
        if subs:
            subs.discard(ev)
            if not subs:
                del self.subscribers[run_id]

    # -- one pass -------------------------------------------------------------------------
    def tick(self, run_ids: set[str] | None = None) -> set[str]:
        """One pass over ``run_ids`` (every active run when None); the runs that changed."""
        changed = set()
        self._full = run_ids is None
        for run_id in list(self.active) if run_ids is None else [r for r in run_ids if r in self.active]:
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
                self.active[run_id] = Followed(self.m.run_dir(run_id), self.m.store.tail_offsets(run_id))
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
        """One pass over a run: events, then metrics, then logs. A finished run stays followed
        until every metrics file was read to its end after its final event was folded: then
        every line a rank wrote is in the store (the stream's "caught up" is "not active")."""
        with self._lock:
            state = self.active.get(run_id)
            if state is None:
                return False
            run, changed = state.fold_if_grown(lambda: self._fold_events(run_id))
        status = RunState(run["status"])
        # Only this thread ingests, so the lock is not held while it does (sync() on the event
        # loop would wait for it). The fold above came first: a final status read there means
        # the ranks had stopped writing before the reads below.
        ingested, drained = state.ingest_metrics(self.m.store, final=status.is_terminal(), full=self._full)
        if drained:
            self.backlog.discard(run_id)
        else:
            self.backlog.add(run_id)  # more to read: the next pass goes on at once
        changed |= ingested
        with self._lock:
            changed |= state.check_logs()
            if not status.is_terminal():
                if self._supervisor_lost(run_id, run):
                    self._finish_orphan(run_id, run)
                    return True
                return changed
            if not drained:
                return changed  # the next pass reads on (self.backlog has it)
            popen = self.children.pop(run_id, None)
            if popen is not None:
                popen.wait()
            del self.active[run_id]
            if not state.drain_only:
                self.finished.append(run_id)
            return True

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
        self.m.reap_orphan(run, rd, note_to(rd.logs / "supervisor.txt"))
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
        # It stays followed: the next pass sees the final status, reads every metrics file to
        # its end and only then lets it go (and reports it finished).
        self.backlog.add(run_id)


_TERMINAL = contract.TERMINAL_STATES


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
