"""Metric points in chunks: up to CHUNK_POINTS points of one series (run, rank, name) from one
ingest batch in one row, as packed arrays, with the chunk's min and max and where they lie.

A row per chunk instead of a row per point keeps ingest at hundreds of thousands of points a
second (SQLite's cost is per row), and the chunk summaries are the rollup a chart of millions
of points is drawn from. Pure functions here (no SQL): packing, unpacking, downsampling.

Arrays (native byte order, as written by this machine): ids ``q`` (the points' cursors), steps
``q`` (NO_STEP for a point logged without one), values ``d`` (NaN for a text point: numbers are
always finite here, non-finite ones are stored as text) and ts ``d`` (NaN for none). Text
values are a JSON list of ``[position, text]``. The x of a point (what charts use) is its step,
or, without one, its position in the series (``seq0`` is the series' count before the chunk).
"""

from __future__ import annotations

import json
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from itertools import repeat

CHUNK_POINTS = 256
NO_STEP = -(2**63)
_NAN = float("nan")

# Columns of metric_chunks, summary first (read without touching the arrays), arrays last.
CHUNK_COLUMNS = ("series", "first_id", "last_id", "n", "numeric", "seq0", "x_first", "x_last",
                 "x_sorted", "vmin", "vmin_x", "vmax", "vmax_x", "ids", "steps", "vals", "ts", "texts")
SUMMARY_COLUMNS = CHUNK_COLUMNS[:13]


@dataclass
class SeriesState:
    """What ingest keeps of a series between batches (mirrors its metric_series row)."""
    id: int
    count: int = 0
    numeric: int = 0
    first_id: int | None = None
    first_numeric_id: int | None = None


def pack_chunks(series: SeriesState, rows: list, positions: list[int], ids) -> tuple[list, dict]:
    """Chunk rows for the points ``rows[p]`` (p in ``positions``, in order) of one series, whose
    cursors are ``ids[p]``; and the series' summary update. rows: (name, step, value, text, ts)."""
    chunks, seq = [], series.count
    last_num = None
    first_num_id = series.first_numeric_id
    numeric_total = 0
    for k in range(0, len(positions), CHUNK_POINTS):
        part = positions[k:k + CHUNK_POINTS]
        pts = [rows[p] for p in part]
        chunk, num, last = _pack_one(series.id, pts, [ids[p] for p in part], seq)
        chunks.append(chunk)
        numeric_total += num
        if num:
            last_num = last
            if first_num_id is None:
                first_num_id = next(ids[p] for p in part if rows[p][2] is not None)
        seq += len(part)
    tail = rows[positions[-1]]
    update = {"count": seq, "numeric": series.numeric + numeric_total,
              "first_id": series.first_id if series.first_id is not None else ids[positions[0]],
              "last_id": ids[positions[-1]], "first_numeric_id": first_num_id,
              "last_value": tail[2], "last_text": tail[3], "last_step": tail[1],
              "last_numeric": last_num[2] if last_num else None,
              "last_numeric_step": last_num[1] if last_num else None}
    return chunks, update


def _pack_one(series_id: int, pts: list, ids: list[int], seq0: int) -> tuple[tuple, int, tuple | None]:
    steps = [p[1] for p in pts]
    vals = [p[2] for p in pts]
    ts = [p[4] for p in pts]
    texts = None
    if None in vals:
        texts = [[i, p[3]] for i, p in enumerate(pts) if p[2] is None]
        vals = [_NAN if v is None else v for v in vals]
    if None in ts:
        ts = [_NAN if t is None else t for t in ts]
    has_no_step = None in steps
    xs = [seq0 + i if s is None else s for i, s in enumerate(steps)] if has_no_step else steps
    if has_no_step:
        steps = [NO_STEP if s is None else s for s in steps]
    num_x, num_v = (xs, vals) if texts is None else _numeric_only(xs, vals)
    numeric = len(num_v)
    last = None
    if numeric:
        lo, hi = min(num_v), max(num_v)
        summary = (num_x[0], num_x[-1], int(num_x == sorted(num_x)),
                   lo, num_x[num_v.index(lo)], hi, num_x[num_v.index(hi)])
        last_pos = len(pts) - 1 if texts is None else max(i for i, v in enumerate(vals) if v == v)
        last = pts[last_pos]
    else:
        summary = (None, None, 1, None, None, None, None)
    row = (series_id, ids[0], ids[-1], len(pts), numeric, seq0, *summary,
           array("q", ids).tobytes(), array("q", steps).tobytes(), array("d", vals).tobytes(),
           array("d", ts).tobytes(), json.dumps(texts) if texts else None)
    return row, numeric, last


def _numeric_only(xs: list, vals: list) -> tuple[list, list]:
    keep = [i for i, v in enumerate(vals) if v == v]
    return [xs[i] for i in keep], [vals[i] for i in keep]


def unpack_columns(chunk) -> tuple[list, list, list, list]:
    """(ids, steps, values, ts) of a chunk row as lists: None for a missing step or time, the
    text of a text point as its value."""
    ids, steps, vals, ts = array("q"), array("q"), array("d"), array("d")
    ids.frombytes(chunk["ids"])
    steps.frombytes(chunk["steps"])
    vals.frombytes(chunk["vals"])
    ts.frombytes(chunk["ts"])
    vals_l: list = vals.tolist()
    if chunk["texts"]:
        for pos, text in json.loads(chunk["texts"]):
            vals_l[pos] = text
    steps_l: list = steps.tolist()
    if NO_STEP in steps_l:
        steps_l = [None if s == NO_STEP else s for s in steps_l]
    ts_l: list = ts.tolist()
    if any(t != t for t in ts_l):
        ts_l = [None if t != t else t for t in ts_l]
    return ids.tolist(), steps_l, vals_l, ts_l


def unpack_points(chunk, rank: int, name: str) -> list[tuple]:
    """(id, rank, name, step, value, ts) of every point of a chunk row."""
    ids, steps, vals, ts = unpack_columns(chunk)
    n = len(ids)
    return list(zip(ids, repeat(rank, n), repeat(name, n), steps, vals, ts))


def numeric_xy(chunk) -> tuple[array, array]:
    """(x, value) arrays of a chunk's numeric points."""
    steps, vals = array("q"), array("d")
    steps.frombytes(chunk["steps"])
    vals.frombytes(chunk["vals"])
    if chunk["numeric"] == chunk["n"] and NO_STEP not in steps:
        return steps, vals
    xs, vs = array("q"), array("d")
    for i, (s, v) in enumerate(zip(steps, vals)):
        if v == v:
            xs.append(chunk["seq0"] + i if s == NO_STEP else s)
            vs.append(v)
    return xs, vs


def numeric_ts(chunk) -> array:
    """The times (``d``, NaN for none) of a chunk's numeric points, in numeric_xy's order."""
    ts = array("d")
    ts.frombytes(chunk["ts"])
    if chunk["numeric"] == chunk["n"]:
        return ts
    vals = array("d")
    vals.frombytes(chunk["vals"])
    return array("d", (t for t, v in zip(ts, vals) if v == v))


# -- downsampling -------------------------------------------------------------------------------
EXACT_MAX_POINTS = 2_000_000  # above this a series is drawn from its chunk summaries


def downsample(chunks: list, numeric: int, points: int, load_all,
               times: bool = False) -> tuple[list[list], bool]:
    """[[x, value], ...] in x order: every numeric point when there are at most ``points``,
    else the min and max of each of ``points // 2`` buckets of x (so the series' global min and
    max are always in), with the first and last points. ``chunks``: summary rows in order;
    ``load_all()`` -> the same rows with their arrays, in the same order, one at a time (only
    read when the series is small enough to be bucketed point by point). With ``times`` each
    point is [x, value, time] (time None where it was logged without one; a series drawn from
    its chunk summaries, over EXACT_MAX_POINTS, has none). Returns (points, downsampled)."""
    chunks = [c for c in chunks if c["numeric"]]
    if not chunks:
        return [], False
    if numeric > EXACT_MAX_POINTS and len(chunks) >= points:
        pts = _from_summaries(chunks, max(1, points // 2))
        return ([[x, v, None] for x, v in pts] if times else pts), True
    xs, vs, ts = array("q"), array("d"), array("d")
    for row in load_all():
        cx, cv = numeric_xy(row)
        xs.extend(cx)
        vs.extend(cv)
        if times:
            ts.extend(numeric_ts(row))
    if not all(c["x_sorted"] for c in chunks) or \
            any(a["x_last"] > b["x_first"] for a, b in zip(chunks, chunks[1:])):
        order = sorted(range(len(xs)), key=xs.__getitem__)
        xs, vs = array("q", (xs[i] for i in order)), array("d", (vs[i] for i in order))
        if times:
            ts = array("d", (ts[i] for i in order))
    if len(xs) <= points:
        keep = range(len(xs))
        cut = False
    else:
        keep = _buckets(xs, vs, max(1, points // 2))
        cut = True
    if times:
        return [[xs[k], vs[k], ts[k] if ts[k] == ts[k] else None] for k in keep], cut
    return [[xs[k], vs[k]] for k in keep], cut


def _buckets(xs: array, vs: array, buckets: int) -> list[int]:
    """Positions of the points a bucketed view keeps: the first and last, and the min and max
    of each bucket, in x order, each once."""
    x0, span = xs[0], xs[-1] - xs[0] + 1
    edges = [bisect_left(xs, x0 + span * b // buckets) for b in range(buckets)] + [len(xs)]
    out = [0]
    for i, j in zip(edges, edges[1:]):
        if j <= i:
            continue
        part = vs[i:j]
        lo, hi = min(part), max(part)
        a, b = i + part.index(lo), i + part.index(hi)
        out.extend(sorted({a, b}))
    out.append(len(xs) - 1)
    return _dedupe_positions(out, xs, vs)


def _from_summaries(chunks: list, buckets: int) -> list[list]:
    x0 = min(min(c["x_first"], c["vmin_x"], c["vmax_x"]) for c in chunks)
    span = max(max(c["x_last"], c["vmin_x"], c["vmax_x"]) for c in chunks) - x0 + 1
    lows: dict[int, tuple] = {}
    highs: dict[int, tuple] = {}
    for c in chunks:
        b = (c["vmin_x"] - x0) * buckets // span
        if b not in lows or c["vmin"] < lows[b][1]:
            lows[b] = (c["vmin_x"], c["vmin"])
        b = (c["vmax_x"] - x0) * buckets // span
        if b not in highs or c["vmax"] > highs[b][1]:
            highs[b] = (c["vmax_x"], c["vmax"])
    pts = sorted(set(lows.values()) | set(highs.values()))
    return [[x, v] for x, v in pts]


def _dedupe_positions(keep: list[int], xs: array, vs: array) -> list[int]:
    """``keep`` less each position whose point is the same (x, value) as the one before it."""
    out: list[int] = []
    for k in keep:
        if not out or (xs[out[-1]], vs[out[-1]]) != (xs[k], vs[k]):
            out.append(k)
    return out
