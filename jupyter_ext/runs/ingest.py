"""Reading what a run writes: event lines, metric lines and log chunks, in bounded batches."""

from __future__ import annotations

import json
import json.scanner
import math
import os
import re

from ..contract import (KIND, MAX_INT, MAX_LINE_BYTES, MAX_NAME, MAX_TEXT, METRIC, NAME, NONFINITE,
                        PARAM, STEP, TAG, TIME, VALUE)

PARAMS = ("params",)  # the key of the PARAM records' {name: value} in a batch's tags dict

MAX_BATCH_BYTES = 1 << 20
# one transaction's worth (the tailer reads many back to back); a longer line is cut
METRIC_BATCH_BYTES = MAX_LINE_BYTES


def read_complete_lines(path, offset: int, max_bytes: int = MAX_BATCH_BYTES,
                        final: bool = False) -> tuple[bytes, int]:
    """Bytes of whole lines from ``offset`` (at most ``max_bytes`` unless a single line is
    longer), and the offset after them. With ``final`` a trailing partial line is included.
    ``path`` may be a binary file already open (paths.Tree.open), which is left open."""
    try:
        if hasattr(path, "read"):
            data = _read_at(path, offset, max_bytes)
        else:
            with open(path, "rb") as f:
                data = _read_at(f, offset, max_bytes)
    except FileNotFoundError:
        return b"", offset
    if not data:
        return b"", offset
    end = data.rfind(b"\n") + 1
    if end == 0:
        if final or len(data) == max_bytes:
            end = len(data)  # a partial tail of a finished file, or one very long line: cut it
        else:
            return b"", offset
    elif final and len(data) < max_bytes:
        end = len(data)
    return data[:end], offset + end


def _read_at(f, offset: int, size: int) -> bytes:
    """``size`` bytes of ``f`` from ``offset``; nothing past its end (seeking there can fail:
    EINVAL past the file system's largest file, 16 TiB on ext4)."""
    try:
        if offset >= os.fstat(f.fileno()).st_size:
            return b""
    except (AttributeError, OSError):  # not a real file: seek as asked
        pass
    f.seek(offset)
    return f.read(size)


def read_metric_batch(path, offset: int, max_bytes: int = METRIC_BATCH_BYTES,
                      final: bool = False) -> tuple[bytes, int, bool]:
    """Whole lines from ``offset`` (at most ``max_bytes``), the offset after them, and whether
    that is the end of the file as it stands (with ``final``, a trailing partial line is read
    too: the writer is gone, so it is as complete as it will ever be)."""
    if hasattr(path, "read"):  # opened already (paths.Tree.open); left open
        data = _read_at(path, offset, max_bytes)
    else:
        try:
            with open(path, "rb") as f:
                data = _read_at(f, offset, max_bytes)
        except FileNotFoundError:
            return b"", offset, True
    short = len(data) < max_bytes
    end = data.rfind(b"\n") + 1
    if (final and short) or (end == 0 and not short):
        end = len(data)  # the partial tail of a finished file, or one line longer than a batch
    return data[:end], offset + end, short


_scan = json.scanner.make_scanner(json.JSONDecoder())
INT64 = MAX_INT
MAX_PROBLEMS = 20  # problems a batch keeps the text of (a flood of garbage is counted, not kept)


class Problems(list):
    """What was wrong with a batch: the first MAX_PROBLEMS messages, and how many more."""

    def __init__(self):
        super().__init__()
        self.more = 0

    def append(self, problem: str) -> None:
        if len(self) < MAX_PROBLEMS:
            super().append(problem)
        else:
            self.more += 1


def parse_metric_lines(data: bytes) -> tuple[list[tuple], dict, Problems]:
    """Metric records, one JSON object a line -> (rows, tags, problems); rows are
    (name, step, value, text, ts). A bad line is reported, never fatal, and never takes a good
    one with it. A batch of well-formed lines is decoded in one call (as a JSON array: the C
    decoder's own loop); one with anything odd in it goes line by line (the C scanner run along
    the text), exactly as ``json.loads`` of each line would."""
    rows, tags, problems = [], {}, Problems()
    if _parse_batch(data, rows, tags, problems):
        return rows, tags, problems
    text = data.decode("utf-8", "replace")
    rows, tags, problems = [], {}, Problems()
    lines = _parse_text(text, rows, tags, problems, strict=False)
    if lines != text.count("\n") + (not text.endswith("\n")):  # a value ran across lines
        rows, tags, problems = [], {}, Problems()
        _parse_text(text, rows, tags, problems, strict=True)
    return rows, tags, problems


_TWO_OBJECTS = re.compile(rb"\}\s*,\s*\{")


def _parse_batch(data: bytes, rows: list, tags: dict, problems: list) -> bool:
    """The lines joined into one JSON array and decoded at once; False (and nothing kept) when
    that could differ from decoding each line: it is used only when the array has exactly one
    object a line, and no line can hold two (``},{`` appears nowhere, not even in a string)."""
    if _TWO_OBJECTS.search(data):
        return False
    try:
        records = json.loads(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):  # a bad line (or bad UTF-8): the line-by-line path
        return False
    if len(records) != data.count(b"\n") + (not data.endswith(b"\n")):
        return False  # an object ran across lines, or a blank line
    append = rows.append
    for rec in records:
        row = _plain_point(rec)
        if row is not None:
            append(row)
            continue
        if type(rec) is not dict:  # a line that is not an object: reported with its text
            rows.clear(), tags.clear(), problems.clear()
            return False
        _parse_record(rec, rows, tags, problems, None)
    return True


def _plain_point(rec) -> tuple | None:
    """The row of a record in the five fields kernel_lib.tracking writes for a finite number
    (checked in place: the fast path), else None (the full check decides)."""
    try:
        if rec[KIND] == METRIC and len(rec) == 5:
            name, v, s, t = rec[NAME], rec[VALUE], rec[STEP], rec[TIME]
            tv = type(v)
            if type(name) is str and 0 < len(name) <= MAX_NAME and (
                    (tv is float and v - v == 0.0) or (tv is int and -INT64 <= v <= INT64)) and (
                    (type(t) is float and t - t == 0.0) or t is None) and (
                    (type(s) is int and -INT64 <= s <= INT64) or s is None):
                return (name, s, v, None, t)
    except (KeyError, TypeError, IndexError):
        pass
    return None


def _parse_text(text: str, rows: list, tags: dict, problems: list, strict: bool) -> int:
    """Parse ``text`` into rows; returns how many lines that took. Unless ``strict``, a value is
    not checked for running across a newline (JSON allows it): the caller compares the count
    with the lines there are and parses again, strictly, when they differ."""
    append, find, scan, idx, lines = rows.append, text.find, _scan, 0, 0
    n = len(text)
    while idx < n:
        lines += 1
        try:
            rec, end = scan(text, idx)
            if text[end] != "\n" or (strict and find("\n", idx, end) >= 0):
                raise ValueError
        except (StopIteration, ValueError, RecursionError, IndexError):
            # leading blanks, a trailing CR, garbage, the last line without a newline: by line
            nl = find("\n", idx)
            stop = n if nl < 0 else nl
            _parse_line(text[idx:stop], rows, tags, problems)
            idx = stop + 1
            continue
        row = _plain_point(rec)
        if row is not None:
            append(row)
            idx = end + 1
            continue
        _parse_record(rec, rows, tags, problems, text[idx:end])
        idx = end + 1
    return lines


def _parse_line(line: str, rows: list, tags: dict, problems: list) -> None:
    if not line.strip():
        return
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        problems.append(f"unreadable metric line skipped: {line[:120]!r}")
        return
    _parse_record(rec, rows, tags, problems, line)


def _parse_record(rec, rows: list, tags: dict, problems: list, line: str | None) -> None:
    """One decoded record, checked field by field (the slow path); ``line``: its text, for the
    message (None: the record shown again as JSON)."""
    try:
        kind, name = rec[KIND], rec[NAME]
    except (KeyError, TypeError, IndexError):
        shown = line if line is not None else json.dumps(rec)
        problems.append(f"unreadable metric line skipped: {shown[:120]!r}")
        return
    if kind == TAG:
        tags[str(name)[:MAX_NAME]] = str(rec.get(VALUE, ""))[:MAX_TEXT]
        return
    if kind == PARAM:  # kept apart from the tags under a key no tag name can be (not a str)
        tags.setdefault(PARAMS, {})[str(name)[:MAX_NAME]] = str(rec.get(VALUE, ""))[:MAX_TEXT]
        return
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        problems.append(f"metric with an invalid name skipped: {str(name)[:80]!r}")
        return
    value, text = _value_of(name, rec, problems)
    if value is None and text is None:
        return
    step = rec.get(STEP)
    step = step if isinstance(step, int) and not isinstance(step, bool) and -INT64 <= step <= INT64 else None
    rows.append((name, step, value, text, _timestamp(rec.get(TIME))))


def _value_of(name: str, rec: dict, problems: list) -> tuple[float | int | None, str | None]:
    value = rec.get(VALUE)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)) and not rec.get(NONFINITE):
        try:
            value = float(value) if isinstance(value, int) and abs(value) > INT64 else value
        except OverflowError:
            problems.append(f"metric {name!r}: a number too large to store refused")
            return None, None
        if isinstance(value, float) and not math.isfinite(value):
            return None, repr(value)
        return value, None
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            problems.append(f"metric {name!r}: text of {len(value)} characters refused (limit {MAX_TEXT})")
            return None, None
        return None, value
    problems.append(f"metric {name!r}: value of type {type(value).__name__} refused")
    return None, None


def _timestamp(t) -> float | None:
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return None
    try:
        t = float(t)
    except OverflowError:
        return None
    return t if math.isfinite(t) else None


def rank_of(file_name: str) -> int:
    stem = os.path.splitext(file_name)[0]
    try:
        return int(stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 0
