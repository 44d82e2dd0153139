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
from ..errors import TrainError
from ..launcher.finalize import finalize_outputs
from ..launcher.procs import is_alive, note_to
from ..launcher.rundir import RunDir
from ..launcher.spec import RunSpec, RunState
from ..paths import Tree
from .ingest import parse_metric_lines, rank_of, read_metric_batch
from .watch import Changes, open_watch

log = logging.getLogger("jupyter_ext")
ORPHAN_GRACE_S = 30.0
NO_EVENTS_POLL_S = 0.05  # the pace of passes where file events are unavailable or cover less
QUEUE_POLL_S = 0.05  # while a target has runs waiting for nodes: its tick() finishes scale-ups
MIN_GAP_S = 0.005  # between two passes that file events asked for: a writer's bursts coalesce
STOP_WAIT_S = 5.0  # stop() waits this long for the pass thread to finish its pass
INGEST_SLICE_S = 0.25  # at most this long on one run's metrics per pass; the next pass goes on


class _Active:
    def __init__(self, offsets: dict[str, int], drain_only: bool = False):
        self.metric_offsets = offsets
        self.drain_only = drain_only  # a run that had ended before: only its unread metrics left
        self.log_sizes: dict[str, int] = {}
        self.supervisor: dict | None = None  # supervisor.json once its process groups are known
        self.rd: RunDir | None = None  # its directory (made once: a pass builds no paths)
        self.events_path = ""
        self.run: dict | None = None  # the row as the last fold left it ...
        self.events_size = -1  # ... when events.jsonl had this size
        self.metric_names: list[str] = []  # the rank files in metrics/ ...
        self.metrics_mtime = -1  # ... when the folder had this mtime (ns)


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
        self.active: dict[str, _Active] = {}
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
            self._reattach_nodes(run)
        for run in runs:
            if run["status"] in _TERMINAL and run["id"] not in self.active:
                offsets = store.tail_offsets(run["id"])
                if self._unread_metrics(run["id"], offsets):
                    self.active[run["id"]] = _Active(offsets, drain_only=True)
                    self.backlog.add(run["id"])

    def _unread_metrics(self, run_id: str, offsets: dict[str, int]) -> bool:
        mdir = self.m.run_dir(run_id).metrics
        for name in self._metric_files(self.m.run_dir(run_id)):
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

    def _fold_if_grown(self, run_id: str, state: _Active) -> tuple[dict | None, bool]:
        """``_fold_events``, skipped while events.jsonl has the size it had at the last fold: a
        pass for new metric lines (most passes) reads no row and no events file. Whoever else
        folds (sync, the orphan path) moves the row's offset on, so the next pass here, finding
        a size other than the one it saw, reads the row again."""
        if state.rd is None:
            state.rd = self.m.run_dir(run_id)
            state.events_path = os.fspath(state.rd.events_path)
        try:
            size = os.stat(state.events_path).st_size
        except OSError:
            size = -2
        if state.run is not None and size == state.events_size:
            return state.run, False
        run, changed = self._fold_events(run_id)
        if run is not None:
            state.run, state.events_size = run, run["events_offset"]
        return run, changed

    def _follow(self, run_id: str) -> bool:
        """One pass over a run: events, then metrics, then logs. A finished run stays followed
        until every metrics file was read to its end after its final event was folded: then
        every line a rank wrote is in the store (the stream's "caught up" is "not active")."""
        with self._lock:
            state = self.active.get(run_id)
            if state is None:
                return False
            run, changed = self._fold_if_grown(run_id, state)
        status = RunState(run["status"])
        # Only this thread ingests, so the lock is not held while it does (sync() on the event
        # loop would wait for it). The fold above came first: a final status read there means
        # the ranks had stopped writing before the reads below.
        ingested, drained = self._ingest_metrics(run_id, state, final=status.is_terminal())
        changed |= ingested
        with self._lock:
            changed |= self._check_logs(run_id, state)
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

    def _ingest_metrics(self, run_id: str, state: _Active, final: bool = False) -> tuple[bool, bool]:
        """Read each metrics file on in bounded batches (one transaction each: rows and offset
        together), batch after batch while there is more, for at most INGEST_SLICE_S. With
        ``final`` (the run has ended) a trailing partial line is read as well. Returns
        (anything ingested, every file read to its end); a file left behind goes in backlog."""
        rd = state.rd or self.m.run_dir(run_id)
        names = self._rank_files(rd, state, rescan=final)
        changed, behind = False, False
        deadline = time.monotonic() + INGEST_SLICE_S
        for name in names:
            at_end = False
            while not at_end and time.monotonic() < deadline:
                off = state.metric_offsets.get(name, 0)
                try:  # read under the containment rule: a rank file swapped for a link is not read
                    with Tree(rd.path, within=("metrics",), what=f"run {run_id}") as tree, \
                            tree.open(f"metrics/{name}") as f:
                        data, new_off, at_end = read_metric_batch(f, off, final=final)
                except TrainError as exc:  # gone, or a link out of the run: nothing to read there
                    log.warning("jupyter-train: run %s: metrics/%s not read: %s", run_id, name, exc)
                    at_end = True
                    break
                if new_off == off:
                    break
                rows, tags, problems = parse_metric_lines(data)
                for p in problems:
                    log.warning("jupyter-train: run %s: %s", run_id, p)
                if problems.more:
                    log.warning("jupyter-train: run %s: %d more bad metric lines in metrics/%s",
                                run_id, problems.more, name)
                self.m.store.ingest_metrics(run_id, name, rank_of(name), rows, tags, new_off)
                state.metric_offsets[name] = new_off
                changed = True
            behind |= not at_end
        if behind:
            self.backlog.add(run_id)
        else:
            self.backlog.discard(run_id)
        return changed, not behind

    def _rank_files(self, rd: RunDir, state: _Active, rescan: bool) -> list[str]:
        """``_metric_files``, listed again only when metrics/ changed (its mtime), on a full
        pass, or with ``rescan`` (the run has ended: every file is read to its end). A file
        made in the same clock tick as the last listing is found by the next full pass."""
        try:
            mtime = os.stat(rd.metrics, follow_symlinks=False).st_mtime_ns
        except OSError:
            mtime = -2
        if rescan or self._full or mtime != state.metrics_mtime:
            state.metric_names, state.metrics_mtime = self._metric_files(rd), mtime
        return state.metric_names

    @staticmethod
    def _metric_files(rd) -> list[str]:
        """The rank files in a run's metrics/ (regular files; links are never read)."""
        if os.path.islink(rd.metrics):
            return []
        try:
            return sorted(e.name for e in os.scandir(rd.metrics)
                          if e.name.endswith(contract.METRICS_SUFFIX) and e.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _check_logs(self, run_id: str, state: _Active) -> bool:
        changed = False
        try:
            entries = list(os.scandir((state.rd or self.m.run_dir(run_id)).logs))
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
