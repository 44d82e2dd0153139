"""What happens after the processes exit: outputs and user logs into run history, and the
one-line reason for a failure. Used by the supervisor, and by the server when it finds that a
supervisor died before it could finalize."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import TrainError
from ..paths import RUN_HISTORY, Tree
from .rundir import RunDir

TAIL_BYTES = 64 * 1024


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open_dir(name: str, parent: int, create: bool = False) -> int | None:
    """A folder under the fd ``parent``, never through a link (None if it is a link or not
    there); with ``create``, a link or file in its place is replaced by a new folder."""
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    except OSError:  # a link (ELOOP, or ENOTDIR with O_DIRECTORY) or a file
        if not create:
            return None
        os.unlink(name, dir_fd=parent)
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except OSError:
        return None


def _merge_move(src: int, dst: int) -> None:
    """Move everything under the folder ``src`` into ``dst`` (both fds), keeping what is already
    in ``dst``. Links are moved as links, never followed: a folder swapped for a link leads
    nowhere, and what a link points at is judged by whoever reads it (paths.Tree)."""
    for name in sorted(os.listdir(src)):
        try:
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
        except FileNotFoundError:
            continue
        try:
            there = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if stat.S_ISDIR(st.st_mode) and there is not None and stat.S_ISDIR(there.st_mode):
            sub_src, sub_dst = _open_dir(name, src), _open_dir(name, dst)
            try:
                if sub_src is not None and sub_dst is not None:
                    _merge_move(sub_src, sub_dst)
                    continue
            finally:
                for fd in (sub_src, sub_dst):
                    if fd is not None:
                        os.close(fd)
        try:
            if there is not None and stat.S_ISDIR(there.st_mode):
                _remove_tree(name, dst)
            elif there is not None and stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=dst)  # a file or link is replaced by the folder
            os.replace(name, name, src_dir_fd=src, dst_dir_fd=dst)
        except OSError:
            continue  # changed under us (a swap): what is in the history stays as it was


def _remove_tree(name: str, parent: int) -> None:
    """rm -r of the folder ``name`` under the fd ``parent``, never following a link."""
    fd = _open_dir(name, parent)
    if fd is None:
        raise NotADirectoryError(name)
    try:
        for entry in os.listdir(fd):
            if stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                _remove_tree(entry, fd)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def finalize_outputs(rd: RunDir) -> None:
    """./outputs of each node's working copy -> outputs/, ./logs -> logs/user/ (Azure ML's
    convention). Node 0 goes last, so its files win where nodes wrote the same name. Then the
    links in the history that readers will not follow are named in logs/supervisor.txt."""
    wds = sorted(rd.path.glob("wd_node*"), reverse=True) + [rd.wd]
    root = os.open(rd.path, _DIR & ~os.O_NOFOLLOW)
    try:
        for wd in wds:
            wd_fd = _open_dir(wd.name, root)
            if wd_fd is None:
                continue
            try:
                for name, dest in (("outputs", ("outputs",)), ("logs", ("logs", "user"))):
                    _move_folder(wd_fd, name, root, dest)
            finally:
                os.close(wd_fd)
    finally:
        os.close(root)
    note_skipped(rd)


def _move_folder(wd_fd: int, name: str, root: int, dest: tuple[str, ...]) -> None:
    src = _open_dir(name, wd_fd)  # a working copy's outputs that is a link is left where it is
    if src is None:
        return
    fds = [src]
    try:
        parent = root
        for part in dest:
            parent = _open_dir(part, parent, create=True)
            if parent is None:
                return
            fds.append(parent)
        _merge_move(src, parent)
    finally:
        for fd in fds:
            os.close(fd)


def note_skipped(rd: RunDir) -> None:
    """One line in logs/supervisor.txt for each path of the history that readers leave out."""
    try:
        with Tree(rd.path, within=RUN_HISTORY) as tree:
            skipped = [s for top in RUN_HISTORY for s in tree.list(top).skipped]
        if not skipped:
            return
        lines = "".join(f"jupyter-train: {s['name']}: not served: {s['reason']} (links are followed only "
                        "inside the run's outputs/ and logs/)\n" for s in skipped)
        logs = os.open(rd.logs, _DIR)
        try:
            fd = os.open("supervisor.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                         0o644, dir_fd=logs)
        finally:
            os.close(logs)
        try:
            os.write(fd, lines.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except (OSError, TrainError):  # a note is not worth failing a run's finalize for
        pass


def first_rank_error(rd: RunDir) -> dict | None:
    """The error file of the rank that failed first (rank_entry writes one per failed rank),
    read under the containment rule: a link in errors/ is never followed out of the run."""
    import json

    errors = []
    try:
        with Tree(rd.path, within=("errors",)) as tree:
            for name, _size in tree.list("errors").files:
                if not (name.startswith("errors/rank_") and name.endswith(".json")):
                    continue
                try:
                    with tree.open(name) as f:
                        errors.append(json.loads(f.read(1 << 20)))
                except (ValueError, OSError, TrainError):
                    continue
    except TrainError:
        return None
    errors = [e for e in errors if isinstance(e, dict) and isinstance(e.get("ts"), (int, float))]
    return min(errors, key=lambda e: e["ts"]) if errors else None


def failure_summary(log_path: Path, log_name: str, code: int) -> str:
    """'<log> exited with code N: <last line of the traceback>'."""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    last = last_error_line(log_path)
    detail = f": {last}" if last else ""
    return f"The script ({log_name}) {how}{detail}. See logs/{log_name}.txt for the full output."


def last_error_line(log_path: Path) -> str:
    """The line that says why a script failed, from the end of its log (read under the
    containment rule: a log replaced by a link out of the run gives nothing)."""
    log_path = Path(log_path)
    try:
        with Tree(log_path.parent.parent, within=(log_path.parent.name,)) as tree, \
                tree.open(f"{log_path.parent.name}/{log_path.name}") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except (OSError, TrainError):
        return ""
    lines = [ln.rstrip() for ln in text.splitlines()]
    tb = max((i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")), default=None)
    if tb is not None:
        # The exception line is the first non-indented line after the traceback header.
        for ln in lines[tb + 1 :]:
            if ln and not ln.startswith((" ", "\t")):
                return ln[:500]
    for ln in reversed(lines):
        if ln.strip():
            return ln.strip()[:500]
    return ""
