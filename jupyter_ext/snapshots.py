"""Content-addressed source snapshots.

``SnapshotStore.take(source_dir)`` walks the folder under ``.amlignore`` (else ``.gitignore``)
rules, checks the size and file-count limits *before* anything is copied, and stores each file's
bytes once under its SHA-256. A stat cache (size, mtime, inode -> digest) means a resubmit of an
unchanged folder hashes nothing and copies nothing: it only walks and compares. A snapshot is a
manifest (path -> digest, mode); its id is the digest of the manifest.

A run's working copy is laid out by ``lay_out`` (see worktree.py): a finished spare copy handed
over by one rename where the store has one for the snapshot, else every file cloned (reflink)
or copied from the store, never hard-linked. As a run's supervisor exits it starts
``python -m jupyter_ext.snapshots restock ...`` (``start_restock``), which builds the next spare
(``spares/<snapshot id>``, at most SPARES_KEPT of them) at the lowest CPU priority.

Links in the source: one that resolves to a file inside the source folder is shipped as a copy
of that file; one that leads outside it (or to a folder, or nowhere) is left out and named in
``Snapshot.skipped_links``. Files are opened without following links, so a file swapped for a
link while the snapshot is taken is not read through it.

Ignore files are read in every directory, as git does; patterns are gitignore syntax (pathspec).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, NotFound, SnapshotTooLarge
from .worktree import OPEN_SRC, Copier, Layout, SpareShelf, lay_out

# A spare working copy that has to be copied (no reflink) is built only up to this size: it takes
# disk the user did not ask for, and it is built while other runs may be training.
SPARE_MAX_COPY_BYTES = 64 * 10**6
SPARES_KEPT = 4

ALWAYS_IGNORED = (".git", ".amlignore_cache")
IGNORE_FILES = (".amlignore", ".gitignore")
CHUNK = 1 << 20


@dataclass
class SourceFile:
    rel: str
    path: str
    size: int
    mtime_ns: int
    ino: int
    mode: int


@dataclass
class Snapshot:
    id: str
    files: int
    bytes: int
    new_files: int
    new_bytes: int
    skipped_links: list[str] = field(default_factory=list)  # links left out: they lead outside


def _ignore_spec(directory: str):
    import pathspec  # imported here: the supervisor materializes snapshots and must start fast

    for name in IGNORE_FILES:
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                return pathspec.PathSpec.from_lines("gitignore", f)
    return None


def walk_source(root: str, skipped_links: list[str] | None = None) -> list[SourceFile]:
    """Every file under ``root`` that the ignore rules keep, in a stable order; the links left
    out (they lead outside ``root``, to a folder, or nowhere) go into ``skipped_links``."""
    root = os.path.realpath(root)
    out: list[SourceFile] = []
    # A stack of (directory relative to root, spec) for the ignore files seen on the way down.
    def walk(rel_dir: str, specs: list):
        abs_dir = os.path.join(root, rel_dir)
        spec = _ignore_spec(abs_dir)
        if spec is not None:
            specs = specs + [(rel_dir, spec)]
        try:
            entries = sorted(os.scandir(abs_dir), key=lambda e: e.name)
        except PermissionError as exc:
            raise InvalidRequest(f"Cannot read {abs_dir}: {exc.strerror}. Fix its permissions or "
                                 "add it to .amlignore.") from None
        for e in entries:
            if e.name in ALWAYS_IGNORED:
                continue
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            is_dir = e.is_dir(follow_symlinks=False)
            if specs and _ignored(rel, is_dir, specs):
                continue
            if is_dir:
                walk(rel, specs)
            elif e.is_symlink():
                real = os.path.realpath(e.path)
                if not real.startswith(root + os.sep) or not os.path.isfile(real):
                    if skipped_links is not None:
                        skipped_links.append(rel)
                    continue  # a link that leads out of the source folder is not shipped
                st = os.stat(real)
                out.append(SourceFile(rel, real, st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
            elif e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                out.append(SourceFile(rel, e.path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
    walk("", [])
    return out


def _ignored(rel: str, is_dir: bool, specs) -> bool:
    for base, spec in specs:
        sub = rel[len(base) + 1 :] if base else rel
        if spec.match_file(sub + "/" if is_dir else sub):
            return True
    return False


def check_limits(files: list[SourceFile], max_bytes: int, max_files: int, source: str) -> None:
    total = sum(f.size for f in files)
    if total <= max_bytes and len(files) <= max_files:
        return
    biggest = sorted(files, key=lambda f: f.size, reverse=True)[:5]
    by_dir: dict[str, int] = {}
    for f in files:
        top = f.rel.split("/", 1)[0] if "/" in f.rel else "."
        by_dir[top] = by_dir.get(top, 0) + 1
    crowded = sorted(by_dir.items(), key=lambda kv: kv[1], reverse=True)[:5]
    raise SnapshotTooLarge(
        f"The source directory {source} holds {len(files)} files and {total / 1e6:.1f} MB; the "
        f"snapshot limit is {max_files} files and {max_bytes / 1e6:.0f} MB. Largest files: "
        + ", ".join(f"{f.rel} ({f.size / 1e6:.1f} MB)" for f in biggest)
        + ". Most files in: " + ", ".join(f"{d} ({n})" for d, n in crowded)
        + ". Add what the job does not need to .amlignore, or raise the limit "
        "(c.TrainApp.snapshot_max_mb / snapshot_max_files).",
        files=len(files), bytes=total,
        largest=[{"path": f.rel, "bytes": f.size} for f in biggest],
    )


class SnapshotStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.manifests = self.root / "manifests"
        self.statcache = self.root / "statcache"
        for d in (self.objects, self.manifests, self.statcache):
            d.mkdir(parents=True, exist_ok=True)
        self.spares = SpareShelf(self.root / "spares", keep=SPARES_KEPT)
        self.spare_max_copy_bytes = SPARE_MAX_COPY_BYTES

    def _object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def _cache_path(self, source: str) -> Path:
        return self.statcache / (hashlib.sha1(source.encode()).hexdigest() + ".json")

    def take(self, source_dir: str | None, max_bytes: int, max_files: int,
             extra_files: dict[str, bytes] | None = None) -> Snapshot:
        """Snapshot ``source_dir`` (may be None) plus ``extra_files`` (path -> bytes, e.g. a
        notebook cell saved as a script), which win over files of the same path."""
        extra = dict(extra_files or {})
        skipped: list[str] = []
        if source_dir is None:
            files, source = [], ""
        else:
            source = os.path.realpath(source_dir)
            if not os.path.isdir(source):
                raise InvalidRequest(f"The source directory {source_dir!r} does not exist or is not a "
                                     "directory. Pass an existing folder as source_directory.")
            files = [f for f in walk_source(source, skipped) if f.rel not in extra]
        virtual = [SourceFile(rel, "", len(data), 0, 0, 0o644) for rel, data in extra.items()]
        check_limits(files + virtual, max_bytes, max_files, source_dir or "(cell)")
        entries, new_files, new_bytes = self._take_files(source, files)
        for rel, data in extra.items():
            digest, stored = self._store_bytes(data)
            new_files += stored
            new_bytes += len(data) if stored else 0
            entries.append([rel, digest, 0o644])
        entries.sort()
        manifest = json.dumps({"files": entries}, separators=(",", ":"), sort_keys=True)
        snap_id = hashlib.sha256(manifest.encode()).hexdigest()[:32]
        mpath = self.manifests / f"{snap_id}.json"
        if not mpath.exists():
            _atomic_write(mpath, manifest)
        total = sum(f.size for f in files) + sum(len(d) for d in extra.values())
        return Snapshot(snap_id, len(entries), total, new_files, new_bytes, skipped)

    def _take_files(self, source: str, files: list[SourceFile]) -> tuple[list, int, int]:
        """Store what is new among ``files``, using and refreshing the stat cache."""
        if not files:
            return [], 0, 0
        cache_file = self._cache_path(source)
        try:
            cache = json.loads(cache_file.read_text())
        except (FileNotFoundError, ValueError):
            cache = {}
        new_cache, entries, new_files, new_bytes = {}, [], 0, 0
        for f in files:
            key = [f.size, f.mtime_ns, f.ino]
            hit = cache.get(f.rel)
            digest = hit[3] if hit and hit[:3] == key else None
            if digest is None or not self._object_path(digest).exists():
                digest, stored = self._store_file(f.path)
                if stored:
                    new_files += 1
                    new_bytes += f.size
            new_cache[f.rel] = key + [digest]
            entries.append([f.rel, digest, stat.S_IMODE(f.mode) & 0o755 | 0o600])
        if new_cache != cache:
            _atomic_write(cache_file, json.dumps(new_cache, separators=(",", ":")))
        return entries, new_files, new_bytes

    def _store_bytes(self, data: bytes) -> tuple[str, bool]:
        digest = hashlib.sha256(data).hexdigest()
        target = self._object_path(digest)
        if target.exists():
            return digest, False
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return digest, True

    def _store_file(self, path: str) -> tuple[str, bool]:
        """Hash ``path`` while copying it to a temp file; keep the copy only if it is new. (No
        clone here: XFS writes a just-edited file back before cloning it, and reading the clone
        to hash it misses the page cache that holds the source.)"""
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".tmp")
        try:
            with os.fdopen(fd, "wb") as dst, open(_open_source(path), "rb") as src:
                if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    raise InvalidRequest(f"{path} changed into something other than a file while "
                                         "the snapshot was taken; submit again.")
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
            digest = h.hexdigest()
            target = self._object_path(digest)
            if target.exists():
                return digest, False
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)
            tmp = None
            return digest, True
        finally:
            if tmp:
                os.unlink(tmp)

    def manifest(self, snap_id: str) -> list[list]:
        try:
            return json.loads((self.manifests / f"{snap_id}.json").read_text())["files"]
        except FileNotFoundError:
            raise InvalidRequest(f"Snapshot {snap_id} does not exist in this workspace.") from None

    def listing(self, snap_id: str) -> list[dict]:
        """The files of a snapshot: path and size, in path order."""
        out = []
        for rel, digest, _mode in self.manifest(snap_id):
            try:
                size = self._object_path(digest).stat().st_size
            except FileNotFoundError:
                size = None  # the object was removed from the store by hand
            out.append({"path": rel, "size": size})
        return out

    def open_file(self, snap_id: str, rel: str):
        """The stored bytes of the snapshot's file ``rel``, opened for reading. ``rel`` is looked
        up in the manifest, never joined to a path, so no name can reach outside the store."""
        for name, digest, _mode in self.manifest(snap_id):
            if name == rel:
                try:
                    return open(self._object_path(digest), "rb")
                except FileNotFoundError:
                    break
        raise NotFound(f"Snapshot {snap_id} has no file {rel!r}.")

    def materialize(self, snap_id: str, dest: str | os.PathLike) -> int:
        """Clone or copy the snapshot's files into ``dest`` (a fresh working copy the script may
        change; ``dest`` must not exist); the number of files."""
        return self.lay_out(snap_id, dest, use_spare=False).files

    def lay_out(self, snap_id: str, dest: str | os.PathLike, *, use_spare: bool = True) -> Layout:
        """A fresh working copy of ``snap_id`` at ``dest`` (which must not exist): the shelf's
        spare if it holds one (``files`` is then None: nothing was counted), else a clone or
        copy of every file."""
        if use_spare and self.spares.take(snap_id, dest):
            return Layout(None, "spare")
        return lay_out(self.manifest(snap_id), self._object_path, dest)

    def start_restock(self, snap_id: str, run_dir: str | os.PathLike) -> subprocess.Popen | None:
        """Start ``restock`` in a process of its own (its own session, lowest CPU priority) and
        return at once: the supervisor calls this as it exits, after the run's final state, so
        the spare costs the run nothing and the server, which reaps the supervisor, never waits.
        The builders' lock is taken here and handed to the child: of many runs ending at once,
        only one starts a builder."""
        if (self.spares.root / snap_id).exists() or not self.spares.usable_for(run_dir):
            return None
        lock = self.spares.lock()
        if lock is None:
            return None
        with lock:  # closing our copy leaves the lock with the child
            try:
                return subprocess.Popen(
                    [sys.executable, "-m", "jupyter_ext.snapshots", "restock", str(self.root), snap_id,
                     str(run_dir), str(lock.fileno())], pass_fds=(lock.fileno(),), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError:
                return None  # no spare: the next run lays out its own copy

    def restock(self, snap_id: str, run_dir: str | os.PathLike, lock=None) -> bool:
        """Put a spare working copy of ``snap_id`` on the shelf for its next run (where the shelf
        and ``run_dir`` share a filesystem, so that a rename can hand it over)."""
        if not self.spares.usable_for(run_dir):
            if lock is not None:
                lock.close()
            return False
        entries = self.manifest(snap_id)
        return self.spares.restock(snap_id, lambda partial: lay_out(
            entries, self._object_path, partial, Copier(max_copy_bytes=self.spare_max_copy_bytes)), lock)


def _open_source(path: str) -> int:
    """Open a source file without following a link (OPEN_SRC): a file swapped for a link while
    the snapshot is taken is not read through it."""
    try:
        return os.open(path, OPEN_SRC)
    except OSError as exc:
        raise InvalidRequest(f"Cannot read {path} ({exc.strerror}): it changed or went away while "
                             "the snapshot was taken. Submit again once it is in place.") from None


def _atomic_write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all. The temp file's name is unique: snapshots are taken
    on worker threads, and many submissions of the same files write the same manifest at once."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    """``python -m jupyter_ext.snapshots restock STORE SNAPSHOT_ID RUN_DIR [LOCK_FD]``: put a spare
    working copy of the snapshot on the store's shelf (LOCK_FD: the builders' lock, inherited
    from SnapshotStore.start_restock)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (4, 5) or argv[0] != "restock":
        print("usage: python -m jupyter_ext.snapshots restock STORE SNAPSHOT_ID RUN_DIR [LOCK_FD]",
              file=sys.stderr)
        return 2
    try:
        os.nice(19)
    except OSError:
        pass
    store, snap_id, run_dir = argv[1:4]
    lock = open(int(argv[4]), "a") if len(argv) == 5 else None
    try:
        return 0 if SnapshotStore(store).restock(snap_id, run_dir, lock) else 1
    except (OSError, InvalidRequest):
        return 1


if __name__ == "__main__":
    sys.exit(main())
