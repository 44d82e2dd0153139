"""Files of registered model versions, stored once per content.

Each file's bytes live once in ``models/.objects/<sha256>`` (read-only); a version's folder
``models/<name>/<version>/`` holds hard links to them, so it is an ordinary folder (downloads, the
file browser) while identical files across versions and models take their space once. Deleting a
version removes its folder and then every object no remaining version refers to (the registry
knows which). Where hard links
are impossible (another filesystem), the file is copied and dedup is lost for it, not the data.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass
class StoredVersion:
    files: list[list]  # [relative path, sha256, size]
    checksum: str  # sha256 over (path, sha256) of every file: equal for equal content
    size: int
    new_bytes: int  # bytes this version added to the store (0 when everything was there)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def version_checksum(files: list[list]) -> str:
    h = hashlib.sha256()
    for rel, digest, _size in sorted(files):
        h.update(f"{rel}\0{digest}\n".encode())
    return "sha256:" + h.hexdigest()


class ModelFiles:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = self.root / ".objects"
        self.objects.mkdir(parents=True, exist_ok=True)

    def _object(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def store(self, src: Path, dest: Path) -> StoredVersion:
        """Put ``src`` (a file or a folder) into the new version folder ``dest`` as ``dest/<name
        of src>``; ``dest`` must not exist. Built in a staging folder and moved in at the end, so
        a failure leaves nothing behind."""
        staging = self.root / f".staging-{secrets.token_hex(6)}"
        staging.mkdir(parents=True)
        try:
            if src.is_dir():
                pairs = [(p, Path(src.name) / p.relative_to(src)) for p in sorted(src.rglob("*"))
                         if p.is_file()]
                (staging / src.name).mkdir()
            else:
                pairs = [(src, Path(src.name))]
            files, size, new_bytes = [], 0, 0
            for path, rel in pairs:
                digest, n, added = self._put(path)
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(self._object(digest), target)
                except OSError:
                    shutil.copyfile(self._object(digest), target)
                files.append([rel.as_posix(), digest, n])
                size += n
                new_bytes += added
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return StoredVersion(files, version_checksum(files), size, new_bytes)

    def _put(self, path: Path) -> tuple[str, int, int]:
        """Store one file's bytes (once); returns (sha256, size, bytes newly stored)."""
        digest = _sha256(path)
        obj = self._object(digest)
        size = path.stat().st_size
        if obj.exists():
            return digest, size, 0
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.parent / f".{digest}.{secrets.token_hex(4)}.tmp"
        shutil.copyfile(path, tmp)
        if _sha256(tmp) != digest:  # the source changed while we read it
            tmp.unlink()
            raise OSError(f"{path} changed while it was being registered; register it again.")
        os.chmod(tmp, 0o444)
        os.replace(tmp, obj)
        return digest, size, size

    def remove(self, version_dir: Path, unused: list[str]) -> int:
        """Delete a version's folder and the objects of ``unused`` (digests no remaining version
        refers to: the caller knows from the registry); returns the bytes freed."""
        shutil.rmtree(version_dir, ignore_errors=True)
        freed = 0
        for digest in set(unused):
            obj = self._object(digest)
            try:
                freed += obj.stat().st_size
                obj.unlink()
            except FileNotFoundError:
                continue
        return freed
