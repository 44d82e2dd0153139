"""A run's history (``outputs/`` and ``logs/``) as readers see it: listings that leave out what
the containment rule refuses and say so, and files opened under that rule (paths.Tree). The
RunManager, the REST handlers and the WebSocket stream all read a run's files through here."""

from __future__ import annotations

import os

from ..errors import NotFound
from ..launcher.rundir import RunDir
from ..paths import RUN_HISTORY, Tree, check_relative
from .ingest import read_complete_lines


def run_tree(rd: RunDir, run_id: str) -> Tree:
    return Tree(rd.path, within=RUN_HISTORY, what=f"run {run_id}")


def file_listing(rd: RunDir, run_id: str) -> dict:
    """``{"files": ["outputs/...", "logs/..."], "sizes": {name: bytes}, "skipped": [{"name",
    "reason"}]}`` (``files`` stays a list of names, as Azure ML's get_file_names())."""
    files, sizes, skipped = [], {}, []
    with run_tree(rd, run_id) as tree:
        for top in RUN_HISTORY:
            listing = tree.list(top)
            files += [name for name, _size in listing.files]
            sizes.update(listing.files)
            skipped += listing.skipped
    return {"files": files, "sizes": sizes, "skipped": skipped}


def log_listing(rd: RunDir, run_id: str) -> dict:
    """``{"logs": [{"name", "size"}], "skipped": [...]}`` with names relative to ``logs/``."""
    with run_tree(rd, run_id) as tree:
        listing = tree.list("logs")
    cut = len("logs/")
    return {"logs": [{"name": name[cut:], "size": size} for name, size in listing.files],
            "skipped": [{**s, "name": s["name"][cut:] or s["name"]} for s in listing.skipped]}


def open_file(rd: RunDir, run_id: str, name: str):
    """``name`` (outputs/... or logs/...) opened for reading, or a clear error."""
    with run_tree(rd, run_id) as tree:
        try:
            return tree.open(name)
        except NotFound:
            raise NotFound(f"Run {run_id} has no file {name!r}. See GET "
                           f"/train/api/runs/{run_id}/files for what it has.") from None


def open_log(rd: RunDir, run_id: str, name: str):
    """The log ``name`` (relative to logs/) opened for reading, or a clear error."""
    check_relative(name, f"the logs of run {run_id}")
    with run_tree(rd, run_id) as tree:
        try:
            return tree.open("logs/" + name)
        except NotFound:
            raise NotFound(f"Run {run_id} has no log {name!r} (yet). List its logs with "
                           f"GET /train/api/runs/{run_id}/logs.") from None


def whole_chars(data: bytes, at_end: bool) -> bytes:
    """``data`` less a UTF-8 character cut in two at its end (a line longer than a chunk is
    cut; the next chunk starts with the whole character), unless the file ends there."""
    if at_end or data.endswith(b"\n"):
        return data
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data  # ASCII: nothing cut
        if byte >= 0xF5 or 0xC0 <= byte < 0xC2:
            return data  # never a lead byte: not UTF-8 there
        if byte >= 0xC2:  # the lead byte of the last character: is the character whole?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need or back == len(data) else data[:-back]
    return data  # not UTF-8 there: bytes stay as they are


def read_log_chunk(f, offset: int, limit: int, final: bool) -> tuple[bytes, int, int]:
    """(bytes, next offset, file size) of whole lines of the open log ``f`` from ``offset``."""
    data, next_offset = read_complete_lines(f, offset, limit, final=final)
    size = max(os.fstat(f.fileno()).st_size, next_offset)
    cut = whole_chars(data, final and next_offset >= size)
    return cut, next_offset - (len(data) - len(cut)), size
