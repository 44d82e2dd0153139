"""Reading what a run writes: event lines, metric lines and log chunks, in bounded batches."""

from __future__ import annotations

import json
import math
import os


MAX_BATCH_BYTES = 1 << 20
MAX_TEXT = 4096


def read_complete_lines(path, offset: int, max_bytes: int = MAX_BATCH_BYTES,
                        final: bool = False) -> tuple[bytes, int]:
    """Bytes of whole lines from ``offset`` (at most ``max_bytes`` unless a single line is
    longer), and the offset after them. With ``final`` a trailing partial line is included."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
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


def parse_metric_lines(data: bytes, rank: int) -> tuple[list[tuple], dict, list[str]]:
    """Metric records -> (rows, tags, problems). A bad line is reported, never fatal."""
    rows, tags, problems = [], {}, []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            kind, name = rec["k"], rec["n"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"unreadable metric line skipped: {raw[:120]!r}")
            continue
        if kind == "t":
            tags[str(name)[:255]] = str(rec.get("v", ""))[:MAX_TEXT]
            continue
        if not isinstance(name, str) or not name or len(name) > 255:
            problems.append(f"metric with an invalid name skipped: {str(name)[:80]!r}")
            continue
        value, text = rec.get("v"), None
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, (int, float)) and not rec.get("nonfinite"):
            if isinstance(value, int) and abs(value) > 2**63 - 1:
                value = float(value)
            if isinstance(value, float) and not math.isfinite(value):
                value, text = None, repr(value)
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                problems.append(f"metric {name!r}: text of {len(value)} characters refused "
                                f"(limit {MAX_TEXT})")
                continue
            value, text = None, value
        else:
            problems.append(f"metric {name!r}: value of type {type(value).__name__} refused")
            continue
        step = rec.get("s")
        rows.append((rank, name, step if isinstance(step, int) else None, value, text, rec.get("t")))
    return rows, tags, problems


def rank_of(file_name: str) -> int:
    stem = os.path.splitext(file_name)[0]
    try:
        return int(stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 0
