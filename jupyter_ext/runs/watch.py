"""File events for the tailer: which followed runs wrote something, the moment they do.

Linux inotify through ctypes: one non-blocking descriptor that the tailer's thread sleeps on
(poll) until the kernel has something on it, so a run that writes nothing costs nothing (no timer,
no event-loop wake-up).
``watchfiles`` was the other candidate; its ``watch()`` sleeps ``step_ms`` between looks at what
the Rust side collected and wants two quiet steps before it yields, which is a poll again
(latency against wake-ups), and it watches trees whole, where a run's ``wd/`` may hold
thousands of files the tailer never reads.

What is watched (each directory on its own, never a link): the runs root (runs appearing), and
for each followed run its directory (``events.jsonl``, ``supervisor.json``, ``logs/`` or
``metrics/`` appearing), ``metrics/`` (rank files appear as ranks start), ``logs/`` and every
directory under it (``logs/user/...``), added as they appear. Files that other hosts append to
on a network filesystem raise no event here; the tailer's fallback poll reads those.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
import time

log = logging.getLogger("jupyter_ext")

IN_MODIFY = 0x00000002
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

_DIR_FLAGS = IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_DELETE_SELF | IN_MOVE_SELF
ROOT_MASK = IN_CREATE | IN_MOVED_TO | _DIR_FLAGS  # runs/: directories appearing
RUN_MASK = IN_MODIFY | IN_CREATE | IN_MOVED_TO | _DIR_FLAGS  # a run's own directories
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
MAX_DIRS_PER_RUN = 64  # logs/ trees deeper or wider than this are read by the fallback poll
PENDING_S = 120.0  # a run directory that appeared is watched this long before it must be active


class Inotify:
    """One inotify descriptor (non-blocking, close-on-exec) and its watches."""

    def __init__(self):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm_watch = libc.inotify_rm_watch
        self._rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")

    def add(self, path: str, mask: int) -> int:
        wd = self._add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return wd

    def remove(self, wd: int) -> None:
        self._rm_watch(self.fd, wd)  # EINVAL when the kernel already dropped it: nothing to do

    def read(self, max_reads: int = 16) -> list[tuple[int, int, str]]:
        """Pending events as (wd, mask, name), at most ``max_reads`` buffers of them (a flood
        waits for the next call); [] when there is none."""
        events = []
        for _ in range(max_reads):
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                break
            pos = 0
            while pos + _EVENT.size <= len(buf):
                wd, mask, _cookie, size = _EVENT.unpack_from(buf, pos)
                raw = buf[pos + _EVENT.size:pos + _EVENT.size + size].rstrip(b"\0")
                events.append((wd, mask, os.fsdecode(raw)))
                pos += _EVENT.size + size
        return events

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Changes:
    """What one read of the events says: runs that need a pass (events, metrics, their own
    directory changed), runs whose logs changed (no pass: log readers read the files themselves,
    they only need waking), and whether the kernel's queue overflowed (then every followed run
    must be looked at)."""

    def __init__(self):
        self.runs: set[str] = set()
        self.logs: set[str] = set()
        self.overflow = False

    def __bool__(self) -> bool:
        return bool(self.runs or self.logs or self.overflow)


class RunWatch:
    """The watches of the runs root and of each followed run, and what their events mean."""

    def __init__(self, runs_root: os.PathLike):
        self.root = os.fspath(runs_root)
        self.ino = Inotify()
        self.fd = self.ino.fd
        self.where: dict[int, tuple[str | None, str]] = {}  # wd -> (run id, dir inside the run)
        self.run_wds: dict[str, set[int]] = {}
        self.appeared: dict[str, float] = {}  # run id -> when its directory appeared (monotonic)
        self.root_lost = False  # the runs directory itself went away
        self.partial: set[str] = set()  # followed runs with a directory that could not be watched
        self.pending = Changes()  # what follow() found already written, for the next pass
        try:
            self.where[self.ino.add(self.root, ROOT_MASK)] = (None, "")
        except OSError:
            self.ino.close()
            raise

    # -- which runs -----------------------------------------------------------------------
    def followed(self) -> set[str]:
        return set(self.run_wds)

    def follow(self, run_id: str) -> None:
        """Watch a run's directories; what was written before the watches existed is reported
        as a change, so nothing written in between waits for the fallback poll."""
        if run_id in self.run_wds:
            return
        self.run_wds[run_id] = set()
        if not self._watch(run_id, ""):
            return  # gone (deleted) or not a directory: nothing to follow
        self._watch(run_id, "metrics")
        self._watch_tree(run_id, "logs")
        self.pending.runs.add(run_id)
        self.pending.logs.add(run_id)

    def unfollow(self, run_id: str) -> None:
        for wd in self.run_wds.pop(run_id, ()):
            self.where.pop(wd, None)
            self.ino.remove(wd)
        self.appeared.pop(run_id, None)
        self.partial.discard(run_id)

    @property
    def degraded(self) -> bool:
        """Events cover less than they should (the tailer polls faster while this holds)."""
        return self.root_lost or bool(self.partial)

    def keep(self, active: set[str]) -> None:
        """Follow every active run; stop following the others once they are no longer new."""
        for run_id in active - self.run_wds.keys():
            self.follow(run_id)
        now = time.monotonic()
        for run_id in self.run_wds.keys() - active:
            if now - self.appeared.get(run_id, float("-inf")) > PENDING_S:
                self.unfollow(run_id)

    # -- watches --------------------------------------------------------------------------
    def _watch(self, run_id: str, rel: str) -> bool:
        wds = self.run_wds.get(run_id)
        if wds is None:
            return False
        if rel and len(wds) >= MAX_DIRS_PER_RUN:
            self._degrade(run_id, f"run {run_id} has more than {MAX_DIRS_PER_RUN} log directories")
            return False
        path = os.path.join(self.root, run_id, rel) if rel else os.path.join(self.root, run_id)
        try:
            wd = self.ino.add(path, RUN_MASK)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                self._degrade(run_id, f"the inotify watch limit is reached ({exc.strerror}); raise "
                              "fs.inotify.max_user_watches")
            return False  # ENOENT / ENOTDIR / ELOOP: not there (yet), or a link we never follow
        self.where[wd] = (run_id, rel)
        wds.add(wd)
        return True

    def _watch_tree(self, run_id: str, rel: str) -> None:
        """``rel`` and every directory under it (links are never followed)."""
        if not self._watch(run_id, rel):
            return
        try:
            entries = list(os.scandir(os.path.join(self.root, run_id, rel)))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                self._watch_tree(run_id, os.path.join(rel, e.name))

    def _degrade(self, run_id: str | None, why: str) -> None:
        """Some directory is not watched: the tailer polls faster until ``run_id`` is no longer
        followed (for the runs directory itself, None: until the server restarts)."""
        if not self.degraded:
            log.warning("jupyter-train: file events cover less than they should (%s); the tailer "
                        "polls more often while it lasts", why)
        if run_id is None:
            self.root_lost = True
        else:
            self.partial.add(run_id)

    # -- events ---------------------------------------------------------------------------
    def read(self) -> Changes:
        """Fold pending events into what changed; watches new directories as they appear."""
        out, self.pending = self.pending, Changes()
        for wd, mask, name in self.ino.read():
            if mask & IN_Q_OVERFLOW:
                out.overflow = True
                continue
            place = self.where.get(wd)
            if place is None:
                continue  # a watch removed a moment ago
            if mask & IN_IGNORED:  # its directory was deleted or moved away
                self._forget(wd, place)
                continue
            run_id, rel = place
            appeared = bool(mask & (IN_CREATE | IN_MOVED_TO)) and bool(mask & IN_ISDIR)
            if run_id is None:
                if appeared:
                    self.appeared[name] = time.monotonic()
                    self.follow(name)
                    out.runs.add(name)
            elif rel.startswith("logs") or (rel == "" and name == "logs"):
                if appeared:
                    self._watch_tree(run_id, os.path.join(rel, name))
                out.logs.add(run_id)
            else:
                if rel == "" and appeared and name == "metrics":
                    self._watch(run_id, "metrics")
                out.runs.add(run_id)
        return out

    def _forget(self, wd: int, place: tuple[str | None, str]) -> None:
        self.where.pop(wd, None)
        run_id, rel = place
        if run_id is None:
            self._degrade(None, f"the runs directory {self.root} went away")
        elif run_id in self.run_wds:
            self.run_wds[run_id].discard(wd)

    def close(self) -> None:
        self.ino.close()
        self.where.clear()
        self.run_wds.clear()


def open_watch(runs_root: os.PathLike) -> RunWatch | None:
    """A RunWatch, or None where file events are not available (not Linux, no inotify, the
    instance limit reached): the tailer then polls, as it did before."""
    try:
        return RunWatch(runs_root)
    except (OSError, AttributeError) as exc:  # AttributeError: a libc without inotify
        log.warning("jupyter-train: no file events (%s); the tailer polls for changes instead", exc)
        return None
