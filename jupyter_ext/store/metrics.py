"""Metrics in the SQLite store: a summary row per series, points in chunks, tail offsets.

A series is (run, rank, name). ``metric_series`` holds its count, first and last cursor and
latest values, kept at ingest, so a run's primary metric and latest values never scan points.
``metric_chunks`` holds the points (metric_chunks.py). Points get cursors (``id``) from one
counter for the workspace, in the order they were ingested, so ``cursor`` paging and the
WebSocket's resume work across every series of a run. Rows, summaries, tags and the file offset
they came from commit in one transaction: a server killed at any point re-reads from exactly
where the committed points end.

Workspaces from before chunks kept one row per point in ``metrics``; ``_migrate_point_rows``
moves those into chunks (same cursors) when the store opens.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import OrderedDict
from itertools import islice
from operator import itemgetter

from ..contract import is_bookkeeping_metric, is_system_metric
from .metric_chunks import (CHUNK_COLUMNS, SUMMARY_COLUMNS, SeriesState, downsample,
                            pack_chunks, unpack_columns, unpack_points)

METRICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS metric_series (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, rank INTEGER NOT NULL, name TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0, numeric INTEGER NOT NULL DEFAULT 0,
    first_id INTEGER, last_id INTEGER, first_numeric_id INTEGER,
    last_value REAL, last_text TEXT, last_step INTEGER, last_numeric REAL, last_numeric_step INTEGER,
    UNIQUE (run_id, rank, name));
CREATE TABLE IF NOT EXISTS metric_chunks (
    series INTEGER NOT NULL, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL,
    n INTEGER NOT NULL, numeric INTEGER NOT NULL, seq0 INTEGER NOT NULL,
    x_first INTEGER, x_last INTEGER, x_sorted INTEGER,
    vmin REAL, vmin_x INTEGER, vmax REAL, vmax_x INTEGER,
    ids BLOB NOT NULL, steps BLOB NOT NULL, vals BLOB NOT NULL, ts BLOB NOT NULL, texts TEXT);
CREATE INDEX IF NOT EXISTS metric_chunks_by_series ON metric_chunks (series, last_id);
CREATE TABLE IF NOT EXISTS tail_offsets (
    run_id TEXT NOT NULL, file TEXT NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (run_id, file));
"""

_INSERT_CHUNK = (f"INSERT INTO metric_chunks ({','.join(CHUNK_COLUMNS)}) "
                 f"VALUES ({','.join('?' * len(CHUNK_COLUMNS))})")
_UPDATE_FIELDS = ("count", "numeric", "first_id", "last_id", "first_numeric_id", "last_value",
                  "last_text", "last_step", "last_numeric", "last_numeric_step")
_UPDATE_SERIES = f"UPDATE metric_series SET {', '.join(f'{f} = ?' for f in _UPDATE_FIELDS)} WHERE id = ?"
SERIES_CACHE_RUNS = 256  # runs whose series states ingest keeps in memory
VIEW_CACHE = 64  # downsampled views kept (keyed by series and its count: new points miss)
CHUNKS_PER_QUERY = 16
METRIC_FIELDS = ("id", "rank", "name", "step", "value", "ts")


class MetricsMixin:
    """The metric half of SQLiteStore (self.db, self._lock, self._tx come from it)."""

    def _open_metrics(self) -> None:
        self.db.executescript(METRICS_SCHEMA)
        self._series_states: OrderedDict[str, dict] = OrderedDict()
        self._primary_series: dict[str, str] = {}  # run -> its primary series, once chosen
        self._views: OrderedDict[tuple, tuple] = OrderedDict()
        self._migrate_point_rows()
        last = self.db.execute("SELECT MAX(last_id) FROM metric_series").fetchone()[0]
        self._next_point_id = (last or 0) + 1

    # -- ingest -------------------------------------------------------------------------------
    def tail_offsets(self, run_id: str) -> dict[str, int]:
        with self._lock:
            rows = self.db.execute("SELECT file, offset FROM tail_offsets WHERE run_id = ?", (run_id,))
            return {r["file"]: r["offset"] for r in rows}

    def ingest_metrics(self, run_id: str, file: str, rank: int, rows: list[tuple], tags: dict,
                       new_offset: int, params: dict | None = None) -> None:
        """rows: (name, step, value, text, ts) of rank ``rank``, in the order they were written.
        Points, series summaries, tags, parameters (into properties["params"]) and the file's
        offset commit together."""
        with self._lock:
            with self._tx():
                done = self._store_points(run_id, rank, rows, range(self._next_point_id,
                                                                    self._next_point_id + len(rows)))
                if tags:
                    self._merge_tags(run_id, tags)
                if params:
                    self._merge_params(run_id, params)
                self.db.execute(
                    "INSERT INTO tail_offsets VALUES (?, ?, ?) "
                    "ON CONFLICT (run_id, file) DO UPDATE SET offset = excluded.offset",
                    (run_id, file, new_offset))
            done()
            self._next_point_id += len(rows)

    def _store_points(self, run_id: str, rank: int, rows: list[tuple], ids):
        """Insert chunks and update summaries (inside the caller's transaction); returns what
        to run once it committed (the in-memory series states move only then)."""
        if not rows:
            return lambda: None
        states = self._states(run_id)
        names = {r[0] for r in rows}
        if len(names) == 1:
            groups = {rows[0][0]: list(range(len(rows)))}
        else:
            groups = {n: [] for n in names}
            for i, r in enumerate(rows):
                groups[r[0]].append(i)
        chunks, updates, created = [], [], {}
        for name, positions in groups.items():
            state = states.get((rank, name))
            if state is None:
                cur = self.db.execute("INSERT INTO metric_series (run_id, rank, name) VALUES (?, ?, ?)",
                                      (run_id, rank, name))
                state = created[(rank, name)] = SeriesState(cur.lastrowid)
            packed, update = pack_chunks(state, rows, positions, ids)
            chunks += packed
            updates.append((state, update))
        self.db.executemany(_INSERT_CHUNK, chunks)
        self.db.executemany(_UPDATE_SERIES, [(*(u[f] for f in _UPDATE_FIELDS), s.id) for s, u in updates])

        def commit():
            states.update(created)
            for state, update in updates:
                state.count, state.numeric = update["count"], update["numeric"]
                state.first_id, state.first_numeric_id = update["first_id"], update["first_numeric_id"]
        return commit

    def _states(self, run_id: str) -> dict:
        states = self._series_states.get(run_id)
        if states is None:
            states = {(r["rank"], r["name"]): SeriesState(r["id"], r["count"], r["numeric"], r["first_id"],
                                                          r["first_numeric_id"])
                      for r in self.db.execute("SELECT * FROM metric_series WHERE run_id = ?", (run_id,))}
            self._series_states[run_id] = states
            while len(self._series_states) > SERIES_CACHE_RUNS:
                self._series_states.popitem(last=False)
        self._series_states.move_to_end(run_id)
        return states

    # -- reading points -------------------------------------------------------------------------
    def metrics_since(self, run_id: str, cursor: int = 0, limit: int = 1000, name: str | None = None,
                      rank: int | None = None) -> list[dict]:
        """Points after ``cursor`` in cursor order (of one series when name/rank say so)."""
        return [{"id": i, "rank": r, "name": n, "step": s, "value": v, "ts": t}
                for i, r, n, s, v, t in self.metric_rows(run_id, cursor, limit, name, rank)]

    def metric_rows(self, run_id: str, cursor: int = 0, limit: int = 1000, name: str | None = None,
                    rank: int | None = None) -> list[tuple]:
        """(id, rank, name, step, value, ts) of the points after ``cursor``, in cursor order."""
        with self._lock:
            series = self._series_rows(run_id, name, rank, "id, rank, name", after=cursor)
            streams = [self._points(s["id"], s["rank"], s["name"], cursor) for s in series]
            if not streams:
                return []
            merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=itemgetter(0))
            return list(islice(merged, limit))

    def metric_columns(self, run_id: str, cursor: int = 0, limit: int = 1000, name: str | None = None,
                       rank: int | None = None) -> dict[str, list]:
        """The points after ``cursor`` as a list per field (id, rank, name, step, value, ts).
        One series (the common case: get_metrics(name), a run logging one metric) goes from the
        chunks' arrays to lists without a Python object per point on the way."""
        with self._lock:
            series = self._series_rows(run_id, name, rank, "id, rank, name", after=cursor)
            if len(series) != 1:
                rows = self.metric_rows(run_id, cursor, limit, name, rank)
                return dict(zip(METRIC_FIELDS, map(list, zip(*rows)))) if rows else \
                    {f: [] for f in METRIC_FIELDS}
            cols = {f: [] for f in METRIC_FIELDS}
            ids, steps, values, ts = cols["id"], cols["step"], cols["value"], cols["ts"]
            after = cursor
            while len(ids) < limit:
                chunks = self.db.execute(
                    "SELECT last_id, ids, steps, vals, ts, texts FROM metric_chunks WHERE series = ? "
                    "AND last_id > ? ORDER BY last_id LIMIT ?", (series[0]["id"], after, CHUNKS_PER_QUERY)).fetchall()
                for chunk in chunks:
                    c_ids, c_steps, c_values, c_ts = unpack_columns(chunk)
                    skip = bisect_right(c_ids, cursor) if c_ids[0] <= cursor else 0
                    ids += c_ids[skip:]
                    steps += c_steps[skip:]
                    values += c_values[skip:]
                    ts += c_ts[skip:]
                if len(chunks) < CHUNKS_PER_QUERY:
                    break
                after = chunks[-1]["last_id"]
            for f in ("id", "step", "value", "ts"):
                del cols[f][limit:]
            cols["rank"] = [series[0]["rank"]] * len(ids)
            cols["name"] = [series[0]["name"]] * len(ids)
            return {f: cols[f] for f in METRIC_FIELDS}

    def _series_rows(self, run_id, name, rank, columns: str, after: int | None = None) -> list:
        sql, args = f"SELECT {columns} FROM metric_series WHERE run_id = ?", [run_id]
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        if rank is not None:
            sql += " AND rank = ?"
            args.append(rank)
        if after is not None:
            sql += " AND last_id > ?"
            args.append(after)
        return self.db.execute(sql + " ORDER BY first_id", args).fetchall()

    def _points(self, series_id: int, rank: int, name: str, cursor: int):
        """(id, rank, name, step, value, ts) of one series after ``cursor``, a few chunks at a time."""
        after = cursor
        while True:
            chunks = self.db.execute(
                "SELECT last_id, ids, steps, vals, ts, texts FROM metric_chunks WHERE series = ? AND "
                "last_id > ? ORDER BY last_id LIMIT ?", (series_id, after, CHUNKS_PER_QUERY)).fetchall()
            for chunk in chunks:
                points = unpack_points(chunk, rank, name)
                if points[0][0] <= cursor:
                    points = [p for p in points if p[0] > cursor]
                yield from points
            if len(chunks) < CHUNKS_PER_QUERY:
                return
            after = chunks[-1]["last_id"]

    # -- summaries and downsampled views ------------------------------------------------------------
    def metric_view(self, run_id: str, points: int, name: str | None = None,
                    rank: int | None = None, times: bool = False) -> dict:
        """Each series of the run (or the one named): its summary and at most about ``points``
        [x, value] pairs (min and max per bucket of x; every point when it has no more), with
        ``times`` [x, value, time] triples; and the cursor this view is complete up to (stream
        from it for what comes next)."""
        with self._lock:
            last = self.db.execute("SELECT MAX(last_id) FROM metric_series WHERE run_id = ?",
                                   (run_id,)).fetchone()[0]
            out = []
            for s in self._series_rows(run_id, name, rank, "*"):
                xy, cut = self._series_view(s["id"], s["count"], s["numeric"], points, times) \
                    if points else ([], False)
                value = s["last_text"] if s["last_text"] is not None else s["last_value"]
                out.append({"name": s["name"], "rank": s["rank"], "count": s["count"],
                            "numeric": s["numeric"], "downsampled": cut, "points": xy,
                            "last": {"value": value, "step": s["last_step"]} if s["count"] else None})
            return {"series": out, "cursor": last or 0}

    def _series_view(self, series_id: int, count: int, numeric: int, points: int,
                     times: bool = False) -> tuple[list, bool]:
        key = (series_id, count, points, times)
        hit = self._views.get(key)
        if hit is not None:
            self._views.move_to_end(key)
            return hit
        summaries = self.db.execute(f"SELECT {','.join(SUMMARY_COLUMNS)} FROM metric_chunks "
                                    "WHERE series = ? ORDER BY last_id", (series_id,)).fetchall()

        def load_all():
            return self.db.execute(f"SELECT n, numeric, seq0, steps, vals{', ts' if times else ''} "
                                   "FROM metric_chunks WHERE series = ? AND numeric > 0 "
                                   "ORDER BY last_id", (series_id,))

        view = downsample(summaries, numeric, points, load_all, times)
        self._views[key] = view
        while len(self._views) > VIEW_CACHE:
            self._views.popitem(last=False)
        return view

    def metric_extreme(self, run_id: str, name: str, maximize: bool, rank: int = 0) -> float | None:
        """The largest (``maximize``) or smallest number a series holds, from the chunks' own
        bounds: no point is read. None where it holds no number."""
        agg = "MAX(c.vmax)" if maximize else "MIN(c.vmin)"
        with self._lock:
            row = self.db.execute(
                f"SELECT {agg} FROM metric_chunks c JOIN metric_series s ON c.series = s.id "
                "WHERE s.run_id = ? AND s.rank = ? AND s.name = ? AND c.numeric > 0",
                (run_id, rank, name)).fetchone()
        return row[0]

    def _add_primaries(self, runs: list[dict]) -> list[dict]:
        """Set each run's ``primary_metric`` {name, value, step}: the latest rank-0 value of the
        metric named by its ``primary_metric`` tag, else of its first series (a metric logged
        more than once, like a loss per epoch), else of the first number it logged; or None. A
        system metric (contract.SYSTEM_PREFIX: a node's figures, not the script's) is never picked
        unless the tag names it, and a bookkeeping one (contract.BOOKKEEPING_METRICS: lr, epoch
        ...) only when the run logged nothing else."""
        by_run: dict[str, list] = {}
        ids = [r["id"] for r in runs]
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for row in self.db.execute(
                    "SELECT run_id, name, numeric, first_numeric_id, last_numeric, last_numeric_step "
                    f"FROM metric_series WHERE run_id IN ({','.join('?' * len(part))}) AND rank = 0 "
                    "AND numeric > 0", part):
                by_run.setdefault(row["run_id"], []).append(row)
        for run in runs:
            rows = by_run.get(run["id"], [])
            name = run["tags"].get("primary_metric") or self._primary_series.get(run["id"])
            logged = [r for r in rows if not is_system_metric(r["name"])]  # not a node's figures
            if not name and logged:
                own = [r for r in logged if not is_bookkeeping_metric(r["name"])]
                series = [r for r in own if r["numeric"] > 1] or (
                    [] if own else [r for r in logged if r["numeric"] > 1])
                name = min(series or own or logged, key=itemgetter("first_numeric_id"))["name"]
                if series:
                    self._primary_series[run["id"]] = name  # stable from now on
            row = next((r for r in rows if r["name"] == name), None)
            run["primary_metric"] = ({"name": name, "value": row["last_numeric"],
                                      "step": row["last_numeric_step"]} if row else None)
        return runs

    # -- migration ----------------------------------------------------------------------------
    def _migrate_point_rows(self) -> None:
        """Move a workspace's old one-row-per-point ``metrics`` table into chunks (same cursors)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(metrics)")}
        if "run_id" not in have:
            return
        with self._tx():
            runs = [r[0] for r in self.db.execute("SELECT DISTINCT run_id FROM metrics")]
            for run_id in runs:
                by_rank: dict[int, tuple[list, list]] = {}
                for r in self.db.execute("SELECT id, rank, name, step, value, text, ts FROM metrics "
                                         "WHERE run_id = ? ORDER BY id", (run_id,)):
                    rows, ids = by_rank.setdefault(r["rank"], ([], []))
                    rows.append(_old_row(r))
                    ids.append(r["id"])
                for rank, (rows, ids) in by_rank.items():
                    self._store_points(run_id, rank, rows, ids)()
            self.db.execute("DROP TABLE metrics")


def _old_row(r) -> tuple:
    """(name, step, value, text, ts) of an old point row, with what the arrays cannot hold
    (a step that is not an integer, a timestamp that is not a number) left out."""
    value, text = r["value"], r["text"]
    if not isinstance(value, (int, float)) or value != value:
        value, text = None, text if text is not None else str(value)
    step = r["step"] if isinstance(r["step"], int) else None
    ts = r["ts"] if isinstance(r["ts"], (int, float)) else None
    return r["name"], step, float(value) if value is not None else None, text, ts
