"""Paths that cannot escape their directory, and the one rule for reading inside a run or a model.

``Tree(root)`` is how every reader of a run's history or a model version's files opens and lists
them: REST files and logs, the WebSocket stream, downloads, model registration, finalize's
report, the copies from remote nodes. Its rule:

- a path is resolved one component at a time, each opened with ``O_NOFOLLOW`` relative to the
  directory opened before it (``openat``), so what is read is what was checked: no name is looked
  up twice, and a folder swapped for a link during a walk fails to open instead of leading out;
- a link is followed only while it stays inside ``root`` (and, with ``within``, inside those
  top-level folders, e.g. a run's ``outputs/`` and ``logs/``); ``..`` never climbs above it;
  a link that leads out, loops or is broken is never followed: reads refuse it (PathEscapes,
  403) and listings leave it out and name it in ``skipped``, with the reason;
- only regular files are read: a FIFO (which would block a reader), a socket or a device is
  skipped like a link out (opened with ``O_NONBLOCK`` so opening one never blocks).

Hard links are not refused: a script can hard-link only files on the same mount that it may
already read (Linux's fs.protected_hardlinks), and the model store itself is made of hard links.
Standard library only: it runs on remote nodes too (launcher/transfer.py)."""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, NotFound, PathEscapes

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")  # \Z: no trailing newline
RUN_HISTORY = ("outputs", "logs")  # what of a run directory may be read: its history
MAX_LINKS = 40  # links followed while resolving one path (the kernel's own limit)
MAX_LISTED = 200_000  # entries a listing visits before it stops (links can fan out)
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_DIR = _NOFOLLOW | os.O_DIRECTORY
_LINK_ERRNOS = (errno.ELOOP, errno.EMLINK)  # O_NOFOLLOW on a link: ELOOP (Linux), EMLINK (BSD)


def check_name(kind: str, value) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidRequest(
            f"{kind} name {value!r} is not valid: use 1-255 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit.")
    return value


def check_relative(rel, what: str = "the run") -> list[str]:
    """The components of a path given relative to ``what``; bad ones are refused."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise InvalidRequest(f"Give a file path relative to {what}, e.g. 'outputs/model.pt'.")
    if rel.startswith("/"):
        raise PathEscapes(f"{rel!r} is an absolute path; give a path relative to {what}.")
    return rel.split("/")


def safe_join(base: str | os.PathLike, rel: str) -> Path:
    """``base/rel`` if it stays inside ``base`` (after resolving links), else PathEscapes. For a
    name that is only joined, not read (reading goes through ``Tree``)."""
    check_relative(rel)
    root = os.path.realpath(base)
    full = os.path.realpath(os.path.join(root, rel))
    if full != root and not full.startswith(root + os.sep):
        raise PathEscapes(f"{rel!r} leads outside the run directory; give a path inside it.")
    return Path(full)


class _Refused(Exception):
    """A path (or a link on it) that the rule does not let a reader follow."""

    def __init__(self, reason: str, missing: bool = False):
        super().__init__(reason)
        self.reason, self.missing = reason, missing


@dataclass
class Listing:
    files: list[tuple[str, int]] = field(default_factory=list)  # (path relative to root, size)
    skipped: list[dict] = field(default_factory=list)  # {"name", "reason"}: what was left out


class Tree:
    """Read-only access to the files under ``root``. ``within``: top-level folders a path (after
    its links) must stay in; ``what`` names the root in messages ("the run", "model m:1")."""

    def __init__(self, root: str | os.PathLike, *, within: tuple[str, ...] = (), what: str = "the run",
                 follow_root: bool = False):
        self.root, self.within, self.what = str(root), tuple(within), what
        try:
            if follow_root:
                self.fd = os.open(self.root, _DIR & ~os.O_NOFOLLOW)
            else:  # the root's own last component is never a link someone swapped in
                parent = os.open(os.path.dirname(self.root) or ".", _DIR & ~os.O_NOFOLLOW)
                try:
                    self.fd = os.open(os.path.basename(self.root), _DIR, dir_fd=parent)
                finally:
                    os.close(parent)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise PathEscapes(f"The folder of {what} has been replaced by a link; nothing is "
                                  "read from it.") from None
            raise NotFound(f"The folder of {what} is not there ({exc.strerror}).") from None
        self.real = os.path.realpath(self.root)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Tree":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- resolving ------------------------------------------------------------------------
    def _inside(self, target: str) -> list[str] | None:
        """An absolute link target as components below the root, or None if it is outside."""
        norm = os.path.normpath(target)
        for base in dict.fromkeys((self.real, os.path.normpath(self.root))):
            if norm == base:
                return []
            if norm.startswith(base.rstrip("/") + "/"):
                return norm[len(base.rstrip("/")) + 1:].split("/")
        return None

    def _resolve(self, parts: list[str], lexical: str) -> tuple[int, list[str]]:
        """An fd of ``root/parts`` (its last component opened without following it, any kind)
        and the components it resolved to, following links only inside the root."""
        stack, names, todo, links = [], [], list(reversed(parts)), 0
        try:
            while todo:
                part = todo.pop()
                if part in ("", "."):
                    continue
                if part == "..":
                    if not names:
                        raise _Refused(f"{lexical!r} leads outside {self.what}")
                    os.close(stack.pop())
                    names.pop()
                    continue
                here = stack[-1] if stack else self.fd
                last = not todo
                try:
                    fd = os.open(part, _NOFOLLOW if last else _DIR, dir_fd=here)
                except OSError as exc:
                    target = self._link_target(exc, part, here, lexical)
                    links += 1
                    if links > MAX_LINKS:
                        raise _Refused(f"{lexical!r} goes through more than {MAX_LINKS} links") from None
                    if target.startswith("/"):
                        inside = self._inside(target)
                        if inside is None:
                            how = "is a link" if last else "goes through a link"
                            raise _Refused(f"{lexical!r} {how} to {target}, outside {self.what}") from None
                        while stack:
                            os.close(stack.pop())
                        names, todo = [], todo + list(reversed(inside))
                    else:
                        todo.extend(reversed(target.split("/")))
                    continue
                names.append(part)
                if last:
                    return fd, names
                stack.append(fd)
            return os.dup(stack[-1] if stack else self.fd), names
        finally:
            for fd in stack:
                os.close(fd)

    @staticmethod
    def _link_target(exc: OSError, part: str, here: int, lexical: str) -> str:
        """The target of the link ``part`` that ``open`` refused with ``exc``; _Refused if it is
        no link (O_DIRECTORY | O_NOFOLLOW on a link answers ENOTDIR on Linux, ELOOP elsewhere)."""
        if exc.errno == errno.ENOENT:
            raise _Refused(f"{lexical!r} does not exist", missing=True) from None
        if exc.errno not in _LINK_ERRNOS + (errno.ENOTDIR,):
            raise _Refused(f"{lexical!r} cannot be read ({exc.strerror})", missing=True) from None
        try:
            return os.readlink(part, dir_fd=here)
        except OSError:  # not a link (a file where a folder was named), or changed since
            raise _Refused(f"{lexical!r}: {part!r} is not a folder", missing=True) from None

    def _check_within(self, names: list[str], lexical: str) -> None:
        if self.within and (not names or names[0] not in self.within):
            where = " and ".join(f"{w}/" for w in self.within)
            raise _Refused(f"{lexical!r} leads outside {self.what}'s {where}")

    # -- reading --------------------------------------------------------------------------
    def open(self, rel: str):
        """``rel`` opened for reading (a binary file object), under the rule. Raises
        InvalidRequest (a bad name, or one outside ``within``), PathEscapes (a link out, '..'),
        NotFound (nothing there, or a folder)."""
        parts = self._lexical(rel)
        try:
            fd, names = self._resolve(parts, rel)
        except _Refused as exc:
            raise (NotFound if exc.missing else PathEscapes)(self._message(exc.reason)) from None
        try:
            self._check_within(names, rel)
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise _Refused(f"{rel!r} is a folder", missing=True)
            if not stat.S_ISREG(mode):
                raise _Refused(f"{rel!r} is not a regular file (a FIFO, socket or device)")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except _Refused as exc:
            os.close(fd)
            raise (NotFound if exc.missing else PathEscapes)(self._message(exc.reason)) from None
        except BaseException:
            os.close(fd)
            raise

    def _lexical(self, rel: str) -> list[str]:
        """The components of ``rel``, refused when bad or, with ``within``, not in one of them."""
        parts = check_relative(rel, self.what)
        if self.within and parts[0] not in self.within:
            raise InvalidRequest(f"{rel!r} is not in {self.what}'s history; files live under "
                                 + " and ".join(f"{w}/" for w in self.within) + ".")
        return parts

    def is_dir(self, rel: str) -> bool:
        """Whether ``rel`` ("" for the root, where there is no ``within``) is a folder (else a
        regular file), under the same rule and with the same errors as ``open``."""
        if not rel and not self.within:
            return True
        try:
            fd, names = self._resolve(self._lexical(rel), rel)
        except _Refused as exc:
            raise (NotFound if exc.missing else PathEscapes)(self._message(exc.reason)) from None
        try:
            mode = os.fstat(fd).st_mode
        finally:
            os.close(fd)
        if stat.S_ISDIR(mode):
            try:
                self._check_within(names, rel)
            except _Refused as exc:
                raise PathEscapes(self._message(exc.reason)) from None
            return True
        self.open(rel).close()  # the checks of a file, in one place
        return False

    def _message(self, reason: str) -> str:
        return (f"{reason}; links are followed only while they stay inside {self.what}, and only "
                "regular files are read.")

    # -- listing --------------------------------------------------------------------------
    def list(self, top: str = "") -> Listing:
        """Regular files under ``top`` (recursively, through links that stay inside), and what
        was skipped. A missing ``top`` lists nothing."""
        out = Listing()
        parts = self._lexical(top) if top or self.within else []
        try:
            fd, names = self._resolve(parts, top) if parts else (os.dup(self.fd), [])
        except _Refused as exc:
            if not exc.missing:
                out.skipped.append({"name": top, "reason": exc.reason})
            return out
        try:
            if parts:
                self._check_within(names, top)
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                self._scan(fd, top, {(st.st_dev, st.st_ino)}, out, [MAX_LISTED])
        except _Refused as exc:
            out.skipped.append({"name": top, "reason": exc.reason})
        finally:
            os.close(fd)
        return out

    def _scan(self, dir_fd: int, prefix: str, ancestors: set, out: Listing, budget: list) -> None:
        try:
            with os.scandir(dir_fd) as it:
                entries = sorted(e.name for e in it)
        except OSError:
            return
        for entry in entries:
            rel = f"{prefix}/{entry}" if prefix else entry
            budget[0] -= 1
            if budget[0] < 0:
                if budget[0] == -1:
                    out.skipped.append({"name": prefix, "reason": f"the listing stopped after {MAX_LISTED} entries"})
                return
            try:
                st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue  # gone since
            if stat.S_ISREG(st.st_mode):
                out.files.append((rel, st.st_size))
            elif stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(entry, _DIR, dir_fd=dir_fd)  # a link swapped in since fails here
                except OSError:
                    continue
                self._descend(sub, rel, ancestors, out, budget)
            elif stat.S_ISLNK(st.st_mode):
                self._follow(rel, ancestors, out, budget)
            else:
                out.skipped.append({"name": rel, "reason": "not a regular file (a FIFO, socket or device)"})

    def _descend(self, fd: int, rel: str, ancestors: set, out: Listing, budget: list) -> None:
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                out.skipped.append({"name": rel, "reason": "a link to a folder that contains it"})
                return
            self._scan(fd, rel, ancestors | {key}, out, budget)
        finally:
            os.close(fd)

    def _follow(self, rel: str, ancestors: set, out: Listing, budget: list) -> None:
        """A link met in a listing: listed through, or skipped with the reason."""
        try:
            fd, names = self._resolve(rel.split("/"), rel)
        except _Refused as exc:
            out.skipped.append({"name": rel, "reason": exc.reason})
            return
        try:
            self._check_within(names, rel)
            st = os.fstat(fd)
        except _Refused as exc:
            os.close(fd)
            out.skipped.append({"name": rel, "reason": exc.reason})
            return
        if stat.S_ISDIR(st.st_mode):
            self._descend(fd, rel, ancestors, out, budget)
            return
        os.close(fd)
        if stat.S_ISREG(st.st_mode):
            out.files.append((rel, st.st_size))
        else:
            out.skipped.append({"name": rel, "reason": "a link to something that is not a regular file"})
