"""Files of registered model versions, stored once per content.

Each file's bytes live once in ``models/.objects/<sha256>`` (read-only); a version's folder
``models/<name>/<version>/`` holds hard links to them, so it is an ordinary folder (downloads, the
file browser) while identical files across versions and models take their space once. Deleting a
version removes its folder and then every object no remaining version refers to (the registry
knows which). Where hard links
are impossible (another filesystem), the file is copied and dedup is lost for it, not the data.
Sources are read through paths.Tree: a link that leads out of the registered folder (or out of the
run's outputs/ and logs/) is never followed; the version leaves it out and says so (``skipped``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, NotFound, PathEscapes
from .paths import Tree, check_relative

CHUNK = 1 << 20


@dataclass
class StoredVersion:
    files: list[list]  # [relative path, sha256, size]
    checksum: str  # sha256 over (path, sha256) of every file: equal for equal content
    size: int
    new_bytes: int  # bytes this version added to the store (0 when everything was there)
    skipped: list[dict] = field(default_factory=list)  # {"name", "reason"}: left out by the rule


def _sha256(src) -> tuple[str, int]:
    """(sha256, size) of a path or of an open binary file (read from where it stands)."""
    if not hasattr(src, "read"):
        with open(src, "rb") as f:
            return _sha256(f)
    h, size = hashlib.sha256(), 0
    while chunk := src.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def model_source(rel: str, run_tree: Tree | None = None) -> tuple[Tree, str, str]:
    """(tree, path in it, name in the version) of what to register: ``rel`` in a run's history
    (``run_tree``, whose rule keeps it to outputs/ and logs/), or a local absolute path (a folder
    is its own tree: links inside it are followed only while they stay inside it). Whoever gets
    the tree closes it; on an error it is closed here."""
    tree = run_tree
    try:
        if tree is not None:
            parts = [p for p in check_relative(rel, tree.what) if p not in ("", ".")]
            src_rel = "/".join(parts)
        elif os.path.isabs(rel) and "\x00" not in rel:
            real = os.path.realpath(rel)  # the path named is the user's choice, links and all
            is_dir = os.path.isdir(real)
            parts, src_rel = [os.path.basename(rel.rstrip("/"))], "" if is_dir else os.path.basename(real)
            tree = Tree(real if is_dir else os.path.dirname(real), follow_root=True, what=f"the folder {rel}")
        else:
            raise InvalidRequest("Give 'run_id' and a 'path' inside the run (e.g. outputs/model.pt), "
                                 "or an absolute 'path' to register a local file or folder.")
        tree.is_dir(src_rel)
    except NotFound:
        if tree is not None:
            tree.close()
        where = f" in {run_tree.what}" if run_tree is not None else ""
        raise NotFound(f"Nothing to register at {rel!r}{where}. Check the path with run.get_file_names().") from None
    except BaseException:
        if tree is not None:
            tree.close()
        raise
    return tree, src_rel, (parts[-1] if parts and parts[-1] not in ("", "..") else "model")


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

    def store(self, tree: Tree, rel: str, name: str, dest: Path) -> StoredVersion:
        """Put ``rel`` of ``tree`` (a file or a folder; "" for the tree's root) into the new
        version folder ``dest`` as ``dest/<name>``; ``dest`` must not exist. Every file is read
        under the tree's rule (links that lead out of it are skipped and named in ``skipped``).
        Built in a staging folder and moved in at the end, so a failure leaves nothing behind."""
        staging = self.root / f".staging-{secrets.token_hex(6)}"
        staging.mkdir(parents=True)
        try:
            pairs, skipped = self._sources(tree, rel, name)
            if not pairs or pairs[0][1] != Path(name):  # a folder: there even when empty
                (staging / name).mkdir()
            files, size, new_bytes = [], 0, 0
            for src_rel, rel_in_version in pairs:
                try:
                    with tree.open(src_rel) as f:
                        digest, n, added = self._put(f, src_rel)
                except (PathEscapes, NotFound) as exc:  # changed since it was listed
                    skipped.append({"name": rel_in_version.as_posix(), "reason": exc.message})
                    continue
                target = staging / rel_in_version
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(self._object(digest), target)
                except OSError:
                    shutil.copyfile(self._object(digest), target)
                files.append([rel_in_version.as_posix(), digest, n])
                size += n
                new_bytes += added
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return StoredVersion(files, version_checksum(files), size, new_bytes, skipped)

    @staticmethod
    def _sources(tree: Tree, rel: str, name: str) -> tuple[list[tuple[str, Path]], list[dict]]:
        """(path in the tree, path in the version) of every file to store, and what the tree's
        rule left out (named by its path in the version)."""
        if not tree.is_dir(rel):
            return [(rel, Path(name))], []
        listing = tree.list(rel)
        cut = len(rel) + 1 if rel else 0

        def in_version(n: str) -> Path:
            return Path(name) / n[cut:] if len(n) > cut else Path(name)

        skipped = [{"name": in_version(s["name"]).as_posix(), "reason": s["reason"]} for s in listing.skipped]
        return [(n, in_version(n)) for n, _size in listing.files], skipped

    def _put(self, f, what: str) -> tuple[str, int, int]:
        """Store one open file's bytes (once); returns (sha256, size, bytes newly stored)."""
        digest, size = _sha256(f)
        obj = self._object(digest)
        if obj.exists():
            return digest, size, 0
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.parent / f".{digest}.{secrets.token_hex(4)}.tmp"
        f.seek(0)
        with open(tmp, "wb") as out:
            shutil.copyfileobj(f, out, CHUNK)
        if _sha256(tmp)[0] != digest:  # the source changed while we read it
            tmp.unlink()
            raise OSError(f"{what} changed while it was being registered; register it again.")
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
