"""Files between this host and a node that does not share its filesystem (a Docker engine on
another machine, a Ray node): a tar of folders going out (the working copies), new whole lines
of logs and metrics coming back as they are written, and at the end a tar of what the run left
(error files, outputs, user logs).

Extraction never writes outside its destination: members with an absolute path or '..', links
(symbolic or hard) and devices are skipped, and nothing is written through a link already
there; each file is written beside its target and renamed over it, so a reader never sees half a
file. Files are read on a node under the containment rule (paths.Tree): a link that leads out
of the node's run folder is never followed. Standard library only (it runs on the nodes too)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from ..errors import TrainError
from ..paths import Tree

SKIP = frozenset({"__pycache__", "labextension", "node_modules"})
CHUNK_LIMIT = 4 * 1024 * 1024  # per file and pass: a burst of output comes over several passes


def pack(base: Path, names, *, empty_dirs=(), extra: dict | None = None) -> bytes:
    """A tar of ``base/name`` for each of ``names`` that exists, ``empty_dirs`` as empty
    folders, and ``extra`` {host folder: name in the archive}: packages, whose build output and
    caches (SKIP) are left out."""
    def keep(info: tarfile.TarInfo):
        return None if set(info.name.split("/")) & SKIP else info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            if (base / name).exists():
                tar.add(base / name, arcname=name)
        for name in empty_dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for host, name in (extra or {}).items():
            tar.add(host, arcname=name, filter=keep)
    return buf.getvalue()


def _safe(member: tarfile.TarInfo, dest: Path) -> bool:
    """A plain file or folder whose name stays under ``dest``, through no link already there."""
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts or "\x00" in member.name:
        return False
    if not (member.isfile() or member.isdir()):
        return False  # links (symbolic and hard), devices, FIFOs
    real = os.path.realpath(dest)
    inside = os.path.realpath(os.path.join(real, os.path.dirname(member.name)))
    return inside == real or inside.startswith(real + os.sep)


def unpack(data: bytes, dest: Path, *, only_changed: bool = False) -> int:
    """Extract ``data`` (a tar) under ``dest``; returns how many files were written. With
    ``only_changed``, a file already there with the same size is left alone."""
    written = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if not _safe(member, dest):
                continue
            target = dest / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.is_dir():
                continue  # a file never replaces a folder
            if only_changed and target.is_file() and target.stat().st_size == member.size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with tar.extractfile(member) as src, open(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.chmod(tmp, member.mode & 0o777 or 0o644)
            os.replace(tmp, target)
            written += 1
    return written


def read_new(root: Path, subdirs, offsets: dict, *, final: bool = False) -> dict[str, bytes]:
    """What files under ``root/<subdir>`` gained past ``offsets`` {relative path: bytes already
    sent}: whole lines only, unless ``final`` (the writer has exited). The caller updates the
    offsets with what it received."""
    out = {}
    try:
        tree = Tree(root, within=tuple(subdirs), what="the node's run folder")
    except TrainError:
        return out
    with tree:
        for sub in subdirs:
            for rel, size in tree.list(sub).files:  # never through a link out (paths.Tree)
                if rel.count("/") != 1 or size <= offsets.get(rel, 0):
                    continue  # the top level only; subfolders come with the final files
                try:
                    with tree.open(rel) as f:
                        f.seek(offsets.get(rel, 0))
                        data = f.read(CHUNK_LIMIT)
                except (OSError, TrainError):
                    continue
                if not final and len(data) < CHUNK_LIMIT:
                    data = data[:data.rfind(b"\n") + 1]  # a line still being written waits
                if data:
                    out[rel] = data
    return out


def append_new(dest: Path, chunks: dict, offsets: dict) -> None:
    """Append chunks from ``read_new`` to the same relative paths under ``dest``."""
    for rel, data in chunks.items():
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts:
            continue
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(data)
        offsets[rel] = offsets.get(rel, 0) + len(data)
