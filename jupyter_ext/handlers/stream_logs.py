"""Which of a run's logs the stream has to look at, without listing ``logs/`` on every wake.

Listing ``logs/`` (recursively, under the containment rule: runs.history.log_listing) is what
finds a new log file, and a folder's mtime changes exactly when a name in it is added, removed
or renamed. So the listing is done again only when the mtime_ns of ``logs/`` or of a folder
below it changed since the last listing; between listings each known log costs one lstat (its
size says whether it grew). Listed every time instead, as before: while ``logs/`` holds a link
(it may lead to a folder inside the run whose changes no mtime here shows) or cannot be read
folder by folder, and while a folder changed in the last RACY_NS (a name added within the
granularity of the clock that stamps mtimes would leave it unchanged). And once at the first
final pass, and at least every RELIST_S whatever the mtimes say (a filesystem whose clock is
not this host's, e.g. NFS).
"""

from __future__ import annotations

import os
import stat
import time

from ..errors import TrainError
from ..runs import history

RACY_NS = 100_000_000  # a folder changed this recently (0.1 s) may change again unseen
RELIST_S = 1.0  # list again at least this often
MAX_FOLDERS = 256  # more folders under logs/ than this: list every time (no shortcut to keep)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def folder_mtimes(top: str) -> dict[str, int] | None:
    """``{relative folder: mtime_ns}`` of ``top`` and every folder below it, or None where a
    link or a folder that cannot be opened (or too many) leaves changes unseen. Opens folders
    only, never through a link."""
    out: dict[str, int] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        try:
            fd = os.open(os.path.join(top, rel) if rel else top, _DIR)
        except OSError:
            return None
        try:
            out[rel] = os.fstat(fd).st_mtime_ns
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        return None
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(f"{rel}/{entry.name}" if rel else entry.name)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(out) > MAX_FOLDERS:
            return None
    return out


class StreamLogs:
    """The ``*.txt`` logs of one run and their sizes, for one stream."""

    def __init__(self, rd, run_id: str):
        self.rd, self.run_id = rd, run_id
        self.top = str(rd.logs)
        self.names: list[str] = []  # the *.txt logs of the last listing
        self.folders: dict[str, int] | None = None  # their mtimes then; None: list next time
        self.listed_at = 0.0
        self.listed_final = False

    def sizes(self, final: bool) -> list[tuple[str, int]] | None:
        """``(name, size)`` of every ``*.txt`` log, names relative to ``logs/``; None when the
        run's folder cannot be listed (gone, or replaced by a link)."""
        if (final and not self.listed_final) or self._changed():
            self.listed_final = final
            return self._list()
        out = []
        for name in self.names:
            try:
                st = os.stat(os.path.join(self.top, name), follow_symlinks=False)
            except OSError:
                return self._list()  # removed since
            if not stat.S_ISREG(st.st_mode):
                return self._list()  # replaced by something else than a file
            out.append((name, st.st_size))
        return out

    def _changed(self) -> bool:
        if self.folders is None or time.monotonic() - self.listed_at >= RELIST_S:
            return True
        for rel, mtime in self.folders.items():
            try:
                st = os.stat(os.path.join(self.top, rel) if rel else self.top, follow_symlinks=False)
            except OSError:
                return True
            if st.st_mtime_ns != mtime or not stat.S_ISDIR(st.st_mode):
                return True
        return False

    def _list(self) -> list[tuple[str, int]] | None:
        now_ns = time.time_ns()
        folders = folder_mtimes(self.top)  # before the listing: a name added after it shows here
        self.listed_at = time.monotonic()
        try:
            listing = history.log_listing(self.rd, self.run_id)["logs"]
        except TrainError:
            self.folders = None
            return None
        logs = [(e["name"], e["size"]) for e in listing if e["name"].endswith(".txt")]
        self.names = [name for name, _size in logs]
        settled = folders is not None and all(m <= now_ns - RACY_NS for m in folders.values())
        self.folders = folders if settled else None
        return logs
