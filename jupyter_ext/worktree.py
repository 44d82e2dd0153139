"""Working copies of a snapshot: a copy-on-write clone where the filesystem has one, a kernel
copy otherwise, never a hard link (a script writing to its working copy would write through into
the store and into every other run's copy).

* ``Copier.copy(src, dst, mode)`` clones one file (the FICLONE ioctl: XFS with reflink=1, btrfs,
  bcachefs, OCFS2; no data written) and falls back, for the rest of the tree once the filesystem
  has said no, to ``copy_file_range`` (in the kernel, no bytes through Python), then
  ``sendfile``, then read/write. A file under CLONE_MIN bytes is copied with one read and one
  write: for a few KB a clone saves nothing, and costs more where the file was just written
  (XFS writes a file's dirty pages back before it clones it).
* ``lay_out(entries, object_path, dest)`` makes a whole tree: every directory first (parents
  before children, one ``mkdir`` each), then one open/clone-or-copy/close per file.
* Spares: a finished working copy of a snapshot kept in the store, handed to the next run of that
  snapshot with one ``rename`` (a resubmit then lays out nothing at all); a new one is built once
  the run is over, by a process of its own at the lowest CPU priority. See ``SpareShelf``.

Standard library only: the supervisor imports this and must start fast.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h
# Errors that mean "this filesystem (or this pair of files) cannot clone": copy instead.
NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM,
            errno.EBADF}
NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}
# NOFOLLOW: a link swapped in is not read through; NONBLOCK: nor does a FIFO swapped in hang us
OPEN_SRC = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
OPEN_DST = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
CHUNK = 1 << 20
CLONE_MIN = 64 << 10


class TooBig(Exception):
    """A copy (not a clone) went past the byte budget it was given."""


def _umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def copy_fd(src: int, dst: int) -> int:
    """Copy all of ``src`` (from its offset) to ``dst`` in the kernel where it can; bytes copied."""
    done = 0
    for kernel_copy in (_copy_file_range, _sendfile):
        try:
            while n := kernel_copy(src, dst):
                done += n
            return done
        except OSError as exc:
            if exc.errno not in NO_KERNEL_COPY:
                raise
    while chunk := os.read(src, CHUNK):
        _write_all(dst, chunk)
        done += len(chunk)
    return done


def _copy_file_range(src: int, dst: int) -> int:
    return os.copy_file_range(src, dst, CHUNK * 64)


def _sendfile(src: int, dst: int) -> int:
    return os.sendfile(dst, src, None, CHUNK * 64)


class Copier:
    """Clones or copies files, remembering whether this filesystem clones at all."""

    def __init__(self, clone: bool = True, max_copy_bytes: int | None = None, clone_min: int = CLONE_MIN):
        self.try_clone = clone and hasattr(fcntl, "ioctl")
        self.max_copy_bytes = max_copy_bytes
        self.clone_min = clone_min
        self.cloned = 0
        self.copied = 0
        self.copied_bytes = 0
        self.umask = _umask()

    @property
    def method(self) -> str:
        return "clone" if self.cloned else "copy" if self.copied else "none"

    def copy(self, src: str, dst: str, mode: int) -> None:
        sfd = os.open(src, OPEN_SRC)
        try:
            dfd = os.open(dst, OPEN_DST, mode & 0o7777)
            try:
                self._fill(sfd, dfd)
                if mode & self.umask & 0o7777:
                    os.fchmod(dfd, mode & 0o7777)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def _fill(self, sfd: int, dfd: int) -> None:
        head = os.read(sfd, self.clone_min) if self.clone_min else b""
        if self.clone_min and len(head) < self.clone_min:
            _write_all(dfd, head)  # the whole (small) file
            self._copied(len(head))
        elif self.try_clone and self._clone(sfd, dfd):  # FICLONE takes the whole file, offsets aside
            self.cloned += 1
        else:
            _write_all(dfd, head)
            self._copied(len(head) + copy_fd(sfd, dfd))

    def _clone(self, sfd: int, dfd: int) -> bool:
        try:
            fcntl.ioctl(dfd, FICLONE, sfd)
        except OSError as exc:
            if exc.errno in NO_CLONE:
                self.try_clone = False  # the filesystem said no: do not ask for every file
                return False
            raise
        return True

    def _copied(self, n: int) -> None:
        self.copied += 1
        self.copied_bytes += n
        if self.max_copy_bytes is not None and self.copied_bytes > self.max_copy_bytes:
            raise TooBig(self.copied_bytes)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def clone_file(src: str, dst: str, mode: int = 0o644) -> str:
    """Clone ``src`` to a new file ``dst`` (or copy it where the filesystem cannot clone);
    returns "clone" or "copy"."""
    c = Copier(clone_min=0)
    c.copy(src, dst, mode)
    return c.method


def safe_rel(rel: str) -> bool:
    """Whether a manifest path stays inside the tree it is laid out in."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and "\0" not in rel and \
        all(p not in ("", ".", "..") for p in parts)


@dataclass
class Layout:
    files: int | None  # None for a spare: it was handed over, not counted
    method: str  # "clone" (some files cloned), "copy", "spare" (a finished copy handed over), "none"
    cloned: int = 0


def lay_out(entries: list, object_path, dest: str | os.PathLike, copier: Copier | None = None) -> Layout:
    """Create ``dest`` (which must not exist) holding ``entries`` ([rel, digest, mode], as in a
    manifest), each file cloned or copied from ``object_path(digest)``."""
    dest = str(dest)
    copier = copier or Copier()
    dirs: set[str] = set()
    for rel, _, _ in entries:
        if not safe_rel(rel):
            raise OSError(errno.EINVAL, f"the snapshot's path {rel!r} would leave the working copy")
        parent = rel.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    os.mkdir(dest)
    for d in sorted(dirs):  # "a" sorts before "a/b": parents first
        os.mkdir(f"{dest}/{d}")
    for rel, digest, mode in entries:
        copier.copy(str(object_path(digest)), f"{dest}/{rel}", mode)
    return Layout(len(entries), copier.method, copier.cloned)


def remove_tree(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)


class SpareShelf:
    """Finished working copies of recent snapshots, one per snapshot, in ``root``.

    ``take(snap_id, dest)`` renames the spare to ``dest`` (atomic: of two runs asking at once,
    one gets it and the other lays out its own). ``restock(snap_id, build)`` makes a new one under
    a lock that one builder at a time holds (the others skip: the 100th concurrent run of a
    snapshot does not build the 100th spare); a builder killed half-way leaves a ``.partial``
    folder that the next lock holder removes. At most ``keep`` spares stay, oldest built dropped.
    """

    def __init__(self, root: str | os.PathLike, keep: int = 4):
        self.root = Path(root)
        self.keep = keep

    def take(self, snap_id: str, dest: str | os.PathLike) -> bool:
        try:
            os.rename(self.root / snap_id, dest)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                return False
            raise

    def usable_for(self, run_dir: str | os.PathLike) -> bool:
        """A spare can be handed over only by a rename: the same filesystem as the run."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return os.stat(self.root).st_dev == os.stat(run_dir).st_dev
        except OSError:
            return False

    def lock(self):
        """The builders' lock (an open file holding an exclusive flock), or None while another
        builder holds it. A child process that inherits the file holds the lock with it."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = open(self.root / ".lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return None
        return lock

    def restock(self, snap_id: str, build, lock=None) -> bool:
        """Build a spare of ``snap_id`` with ``build(partial_dir)`` unless one is there or another
        builder holds the lock (``lock``: already taken by the caller); True when a new spare was
        put on the shelf."""
        lock = lock or self.lock()
        if lock is None:
            return False  # someone else is building; this run's snapshot may miss its spare
        with lock:
            for stale in self.root.glob("*.partial"):
                remove_tree(stale)  # only the lock holder builds: these are a dead builder's
            if (self.root / snap_id).exists():
                return False
            partial = self.root / f"{snap_id}.partial"
            try:
                build(partial)
                os.rename(partial, self.root / snap_id)
            except (OSError, TooBig):
                remove_tree(partial)
                return False
            self._prune()
            return True

    def _prune(self) -> None:
        spares = []
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and not entry.name.endswith(".partial"):
                spares.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
        for _, path in sorted(spares, reverse=True)[self.keep:]:
            # Rename first so a run cannot take a half-deleted spare.
            doomed = f"{path}.partial"
            try:
                os.rename(path, doomed)
            except OSError:
                continue
            remove_tree(doomed)
