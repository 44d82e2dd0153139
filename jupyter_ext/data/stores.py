"""Datastores: where a dataset's files are read from.

Three kinds, one small interface (``list``, ``open``, ``folder``):
- ``workspace``: the workspace's own ``datastores/<name>/`` folder (the default one,
  ``workspaceblobstore`` as in Azure ML, is always there); ``upload`` writes into it.
- ``local``: a folder on the server's machine (``Datastore.register_local``).
- ``fsspec``: any fsspec URL (``s3://bucket/prefix``, ``gcs://``, ``memory://``, ``file://``),
  with ``storage_options`` kept encrypted (data.credentials); fsspec and the protocol's package
  are imported only when such a store is used.

Folders are read through paths.Tree: a link that leads out of the store is never followed.
A path pattern is relative to the store: ``fowl/**`` (everything under fowl/), ``fowl/*.jpg``
(``*`` stays within one folder, ``**`` crosses them), ``table.csv``, or a folder's name."""

from __future__ import annotations

import os
import re
import shutil
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, NotFound
from ..paths import Tree, check_relative
from . import credentials

DEFAULT = "workspaceblobstore"
MAGIC = re.compile(r"[*?\[]")


def split_pattern(pattern: str) -> tuple[str, str | None]:
    """(base folder, glob below it or None): the folder holds every file the pattern can name."""
    parts = [p for p in pattern.strip("/").split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if MAGIC.search(part):
            return "/".join(parts[:i]), "/".join(parts[i:])
    return "/".join(parts), None


def glob_regex(glob: str) -> re.Pattern:
    """``glob`` (relative to a base) as a regex: ``**`` any depth, ``*`` and ``?`` within a
    folder, ``[...]`` a class."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def check_pattern(pattern) -> str:
    if not isinstance(pattern, str) or not pattern.strip("/ ") and pattern != "**":
        raise InvalidRequest("A dataset path must be a non-empty text relative to its datastore, "
                             "e.g. 'fowl/**' or 'table.csv'.")
    if "\x00" in pattern or pattern.startswith("/") or ".." in pattern.split("/"):
        raise InvalidRequest(f"Dataset path {pattern!r} must be relative to its datastore and stay "
                             "inside it (no leading '/', no '..').")
    return pattern


@dataclass
class Store:
    name: str
    kind: str
    root: str = ""  # workspace and local: the folder
    url: str = ""  # fsspec
    sealed: str = ""  # fsspec: storage_options, encrypted (credentials.seal)
    option_names: tuple = ()

    @property
    def what(self) -> str:
        return f"datastore {self.name!r}"

    def folder(self, rel: str = "") -> str | None:
        """The folder on this host that holds ``rel`` (None where the store is remote)."""
        if self.kind == "fsspec":
            return None
        return os.path.join(self.root, rel) if rel else self.root

    # -- listing and reading ----------------------------------------------------------------
    def list(self, pattern: str) -> list[tuple[str, int]]:
        """(path in the store, size) of every file ``pattern`` names, sorted; NotFound when
        the pattern names nothing."""
        base, glob = split_pattern(check_pattern(pattern))
        files = self._fs_list(base) if self.kind == "fsspec" else self._tree_list(base)
        if glob is not None:
            rx = glob_regex(glob)
            cut = len(base) + 1 if base else 0
            files = [(rel, size) for rel, size in files if rx.match(rel[cut:])]
        if not files:
            raise NotFound(f"{pattern!r} names no file in {self.what} ({self.location}). Upload the "
                           "files first (ds.upload), or check the path.")
        return sorted(files)

    @property
    def location(self) -> str:
        return self.url if self.kind == "fsspec" else self.root

    def _tree_list(self, base: str) -> list[tuple[str, int]]:
        try:
            with Tree(self.root, follow_root=True, what=self.what) as tree:
                if base and not tree.is_dir(base):
                    return [(base, os.stat(os.path.join(self.root, base)).st_size)]
                return list(tree.list(base).files)
        except NotFound:
            return []

    def open(self, rel: str):
        """A file of the store opened for reading (binary)."""
        if self.kind == "fsspec":
            fs, root = self._fs()
            try:
                return fs.open(f"{root}/{rel}", "rb")
            except FileNotFoundError:
                raise NotFound(f"{rel!r} is not in {self.what} ({self.url}).") from None
        tree = Tree(self.root, follow_root=True, what=self.what)
        try:
            return tree.open(rel)
        finally:
            tree.close()

    def stat(self, rel: str) -> os.stat_result | None:
        """A local file's stat (None where it is missing or the store is remote)."""
        if self.kind == "fsspec":
            return None
        try:
            return os.stat(os.path.join(self.root, *check_relative(rel, self.what)))
        except OSError:
            return None

    # -- fsspec ---------------------------------------------------------------------------
    def _fs(self):
        try:
            import fsspec
        except ImportError:
            raise InvalidRequest("Datastores with a URL need fsspec: pip install fsspec (and the "
                                 "protocol's package, e.g. s3fs for s3://).") from None
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **credentials.unseal(self.sealed, self.name))
        except (ImportError, ValueError) as exc:
            raise InvalidRequest(f"{self.what}: fsspec cannot open {self.url!r}: {exc}. Install the "
                                 "protocol's package (e.g. s3fs, gcsfs, adlfs).") from None
        return fs, root.rstrip("/")

    def _fs_list(self, base: str) -> list[tuple[str, int]]:
        fs, root = self._fs()
        top = f"{root}/{base}" if base else root
        try:
            found = fs.find(top, detail=True)
        except FileNotFoundError:
            return []
        if not found and fs.isfile(top):
            found = {top: fs.info(top)}
        out = []
        for path, info in found.items():
            if info.get("type", "file") != "file":
                continue
            rel = path.lstrip("/")[len(root.lstrip("/")):].lstrip("/")
            out.append((rel, int(info.get("size") or 0)))
        return out

    # -- writing (the workspace's own stores) --------------------------------------------------
    def write(self, rel: str, src: Path, overwrite: bool) -> bool:
        """Copy ``src`` to ``rel`` in the store (beside it, then renamed over it: a file some
        dataset version pinned keeps its bytes there). False when it exists and not ``overwrite``."""
        if self.kind != "workspace":
            raise InvalidRequest(f"{self.what} is a {self.kind} store: upload writes only to the "
                                 "workspace's own datastores. Copy the files there yourself.")
        dest = Path(self.root, *check_relative(rel, self.what))
        real_root = os.path.realpath(self.root)

        def check_inside() -> None:  # a link in the store's folders never leads a write out
            parent = os.path.realpath(dest.parent)
            if parent != real_root and not parent.startswith(real_root + os.sep):
                raise InvalidRequest(f"{rel!r} leads outside {self.what} (through a link).")
            if dest.is_symlink():
                raise InvalidRequest(f"{rel!r} in {self.what} is a link; nothing is written through it.")

        if dest.parent.exists():
            check_inside()
        if dest.exists() and not overwrite:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        check_inside()
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.upload")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
        return True

    # -- what the API shows ------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "default": self.name == DEFAULT,
                **({"path": self.root} if self.kind != "fsspec" else {"url": self.url}),
                "storage_options": {k: credentials.HIDDEN for k in self.option_names}}
