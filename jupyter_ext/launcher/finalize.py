"""What happens after the processes exit: outputs and user logs into run history, and the
one-line reason for a failure. Used by the supervisor, and by the server when it finds that a
supervisor died before it could finalize."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .rundir import RunDir

TAIL_BYTES = 64 * 1024


def _merge_move(src: Path, dst: Path) -> None:
    """Move everything under ``src`` into ``dst``, keeping what is already in ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir():
            _merge_move(Path(entry.path), target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry.path, target)


def finalize_outputs(rd: RunDir) -> None:
    """./outputs of each node's working copy -> outputs/, ./logs -> logs/user/ (Azure ML's
    convention). Node 0 goes last, so its files win where nodes wrote the same name."""
    wds = sorted(rd.path.glob("wd_node*"), reverse=True) + [rd.wd]
    for wd in wds:
        for name, dest in (("outputs", rd.outputs), ("logs", rd.logs / "user")):
            src = wd / name
            if src.is_dir() and not src.is_symlink():
                _merge_move(src, dest)


def first_rank_error(rd: RunDir) -> dict | None:
    """The error file of the rank that failed first (rank_entry writes one per failed rank)."""
    import json

    errors = []
    for f in (rd.path / "errors").glob("rank_*.json"):
        try:
            errors.append(json.loads(f.read_text()))
        except (ValueError, OSError):
            continue
    return min(errors, key=lambda e: e["ts"]) if errors else None


def failure_summary(log_path: Path, log_name: str, code: int) -> str:
    """'<log> exited with code N: <last line of the traceback>'."""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    last = last_error_line(log_path)
    detail = f": {last}" if last else ""
    return f"The script ({log_name}) {how}{detail}. See logs/{log_name}.txt for the full output."


def last_error_line(log_path: Path) -> str:
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
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
