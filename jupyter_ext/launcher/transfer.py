"""Files between this host and a node that does not share its filesystem (a Docker engine on
another machine, a Ray node): a tar of folders going out (the working copies), new whole lines
of logs and metrics coming back as they are written, and at the end a tar of what the run left
(error files, outputs, user logs).

Extraction never writes outside its destination: members with an absolute path or '..', links
and devices are skipped; each file is written beside its target and renamed over it, so a
reader never sees half a file. Standard library only (it runs on the nodes too)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

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


def _safe(member: tarfile.TarInfo) -> bool:
    parts = member.name.split("/")
    return not member.name.startswith("/") and ".." not in parts and (member.isfile() or member.isdir())


def unpack(data: bytes, dest: Path, *, only_changed: bool = False) -> int:
    """Extract ``data`` (a tar) under ``dest``; returns how many files were written. With
    ``only_changed``, a file already there with the same size is left alone."""
    written = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if not _safe(member):
                continue
            target = dest / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if only_changed and target.is_file() and target.stat().st_size == member.size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            with tar.extractfile(member) as src, open(tmp, "wb") as out:
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
    for sub in subdirs:
        folder = root / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            rel = f"{sub}/{path.name}"
            try:
                if not path.is_file() or path.stat().st_size <= offsets.get(rel, 0):
                    continue
                with open(path, "rb") as f:
                    f.seek(offsets.get(rel, 0))
                    data = f.read(CHUNK_LIMIT)
            except OSError:
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
