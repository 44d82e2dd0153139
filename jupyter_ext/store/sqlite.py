"""SQLite store: experiments, runs (derived from their event logs), metrics, tail offsets, models,
services.

Metric points and the byte offset of the file they came from are written in one transaction
(metrics.py), so a server killed at any point re-reads from exactly where the committed points
end: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Iterable

from .. import contract
from .metrics import MetricsMixin
from .datasets import DatasetsMixin
from .services import ServicesMixin

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL,
    compute_target TEXT, script TEXT, arguments TEXT, tags TEXT NOT NULL DEFAULT '{}',
    properties TEXT NOT NULL DEFAULT '{}', error TEXT, snapshot_id TEXT, run_dir TEXT,
    phases TEXT NOT NULL DEFAULT '[]', events_offset INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, created_at);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS computes (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS environments (
    name TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT, path TEXT NOT NULL,
    source_path TEXT, tags TEXT NOT NULL DEFAULT '{}', properties TEXT NOT NULL DEFAULT '{}',
    description TEXT, created_at REAL NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS model_files (
    name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, digest TEXT NOT NULL,
    size INTEGER NOT NULL, PRIMARY KEY (name, version, path));
CREATE INDEX IF NOT EXISTS model_files_by_digest ON model_files (digest);
CREATE TABLE IF NOT EXISTS model_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
"""

# Columns added after the first release, with their types: added to older databases on open.
# (The metrics tables changed layout too: MetricsMixin._migrate_point_rows moves old rows.)
MIGRATIONS = {"runs": [("parent_id", "TEXT")],
              "models": [("experiment", "TEXT"), ("framework", "TEXT"), ("framework_version", "TEXT"),
                         ("checksum", "TEXT"), ("size", "INTEGER")]}

RUN_JSON_COLUMNS = ("arguments", "tags", "properties", "phases")


class SQLiteStore(MetricsMixin, ServicesMixin, DatasetsMixin):
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        for table, columns in MIGRATIONS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for col, kind in columns:
                if col not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
        self.db.execute("CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_id, created_at)")
        self._open_metrics()
        self._open_services()
        self._open_datasets()

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _tx(self):
        return _Tx(self)

    # -- experiments ----------------------------------------------------------------------
    def ensure_experiment(self, name: str) -> None:
        with self._lock:
            self.db.execute("INSERT OR IGNORE INTO experiments VALUES (?, ?)", (name, time.time()))

    def list_experiments(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute(
                "SELECT e.name, e.created_at, COUNT(r.id) AS runs, MAX(r.created_at) AS last_run "
                "FROM experiments e LEFT JOIN runs r ON r.experiment = e.name "
                "GROUP BY e.name ORDER BY e.name").fetchall()
        return [dict(r) for r in rows]

    # -- runs -----------------------------------------------------------------------------
    def insert_run(self, run: dict) -> None:
        cols = ["id", "experiment", "status", "created_at", "compute_target", "script",
                "arguments", "tags", "properties", "snapshot_id", "run_dir", "parent_id"]
        vals = [json.dumps(run.get(c, {} if c in ("tags", "properties") else [])) if c in RUN_JSON_COLUMNS
                else run.get(c) for c in cols]
        with self._lock:
            self.ensure_experiment(run["experiment"])
            self.db.execute(f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals)

    def get_run(self, run_id: str) -> dict | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            return self._add_primaries([_run_dict(row)])[0] if row else None

    def list_runs(self, experiment: str | None = None, status: str | None = None,
                  limit: int = 100, active_only: bool = False, parent: str | None = None,
                  top_level: bool = False) -> list[dict]:
        """Runs, newest first: of one ``experiment``, in one ``status``, the children of
        ``parent`` (a sweep), or with ``top_level`` only runs that are nobody's child."""
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if parent:
            sql += " AND parent_id = ?"
            args.append(parent)
        elif top_level:
            sql += " AND parent_id IS NULL"
        if experiment:
            sql += " AND experiment = ?"
            args.append(experiment)
        if status:
            sql += " AND status = ?"
            args.append(status)
        if active_only:
            sql += f" AND status NOT IN ({','.join('?' * 3)})"
            args += sorted(contract.TERMINAL_STATES)
        sql += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self.db.execute(sql, args).fetchall()
            return self._add_primaries([_run_dict(r) for r in rows])

    def apply_events(self, run_id: str, events: Iterable[dict], new_offset: int) -> dict | None:
        """Fold events into the run row; the offset moves in the same transaction."""
        with self._lock, self._tx():
            row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            run = _run_dict(row)
            for ev in events:
                _fold_event(run, ev)
            self.db.execute(
                "UPDATE runs SET status=?, started_at=?, ended_at=?, error=?, phases=?, "
                "properties=?, events_offset=? WHERE id=?",
                (run["status"], run["started_at"], run["ended_at"], run["error"],
                 json.dumps(run["phases"]), json.dumps(run["properties"]), new_offset, run_id))
            run["events_offset"] = new_offset
            return run

    def update_tags(self, run_id: str, tags: dict) -> dict:
        with self._lock, self._tx():
            return self._merge_tags(run_id, tags)

    def _merge_tags(self, run_id: str, tags: dict) -> dict:
        """Merge ``tags`` into the run's (inside the caller's transaction)."""
        row = self.db.execute("SELECT tags FROM runs WHERE id = ?", (run_id,)).fetchone()
        merged = {**json.loads(row["tags"]), **tags}
        self.db.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(merged), run_id))
        return merged

    def _merge_params(self, run_id: str, params: dict) -> None:
        """Merge ``params`` into the run's properties["params"] (inside the caller's transaction)."""
        row = self.db.execute("SELECT properties FROM runs WHERE id = ?", (run_id,)).fetchone()
        props = json.loads(row["properties"])
        props["params"] = {**props.get("params", {}), **params}
        self.db.execute("UPDATE runs SET properties = ? WHERE id = ?", (json.dumps(props), run_id))

    # -- compute targets ------------------------------------------------------------------
    def save_compute(self, name: str, kind: str, config: dict) -> None:
        with self._lock:
            self.db.execute("INSERT INTO computes VALUES (?, ?, ?, ?)",
                            (name, kind, json.dumps(config), time.time()))

    def delete_compute(self, name: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM computes WHERE name = ?", (name,))

    def list_computes(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM computes ORDER BY created_at").fetchall()
        return [{**dict(r), "config": json.loads(r["config"])} for r in rows]

    # -- environments ---------------------------------------------------------------------
    def register_environment(self, name: str, spec: dict) -> int:
        with self._lock, self._tx():
            row = self.db.execute("SELECT MAX(version) FROM environments WHERE name = ?", (name,)).fetchone()
            version = (row[0] or 0) + 1
            self.db.execute("INSERT INTO environments VALUES (?, ?, ?, ?)",
                            (name, version, json.dumps({**spec, "version": version}), time.time()))
        return version

    def get_environment(self, name: str, version: int | None = None) -> dict | None:
        with self._lock:
            if version is None:
                row = self.db.execute("SELECT spec FROM environments WHERE name = ? ORDER BY version DESC "
                                      "LIMIT 1", (name,)).fetchone()
            else:
                row = self.db.execute("SELECT spec FROM environments WHERE name = ? AND version = ?",
                                      (name, version)).fetchone()
        return json.loads(row[0]) if row else None

    def list_environments(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT spec FROM environments ORDER BY name, version").fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- models ---------------------------------------------------------------------------
    def insert_model(self, model: dict, files: list[list]) -> int:
        """Record a new version of ``model['name']`` with its files ([path, digest, size]);
        returns its version. Numbers only go up: a deleted version's number is never reused."""
        name = model["name"]
        with self._lock, self._tx():
            row = self.db.execute("SELECT last_version FROM model_names WHERE name = ?", (name,)).fetchone()
            if row is None:
                row = self.db.execute("SELECT MAX(version) FROM models WHERE name = ?", (name,)).fetchone()
            version = (row[0] or 0) + 1
            self.db.execute("INSERT INTO model_names VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                            "last_version = excluded.last_version", (name, version))
            self.db.execute(
                "INSERT INTO models (name, version, run_id, path, source_path, tags, properties, "
                "description, created_at, experiment, framework, framework_version, checksum, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, model.get("run_id"), model["path"], model.get("source_path"),
                 json.dumps(model.get("tags") or {}), json.dumps(model.get("properties") or {}),
                 model.get("description"), model["created_at"], model.get("experiment"),
                 model.get("framework"), model.get("framework_version"), model.get("checksum"),
                 model.get("size")))
            self.db.executemany("INSERT INTO model_files VALUES (?, ?, ?, ?, ?)",
                                [(name, version, rel, digest, size) for rel, digest, size in files])
        return version

    def delete_model(self, name: str, version: int) -> list[str]:
        """Forget a version; returns the digests of its files that no other version uses."""
        with self._lock, self._tx():
            digests = [r[0] for r in self.db.execute(
                "SELECT DISTINCT digest FROM model_files WHERE name = ? AND version = ?", (name, version))]
            self.db.execute("DELETE FROM model_files WHERE name = ? AND version = ?", (name, version))
            self.db.execute("DELETE FROM models WHERE name = ? AND version = ?", (name, version))
            return [d for d in digests if self.db.execute(
                "SELECT 1 FROM model_files WHERE digest = ? LIMIT 1", (d,)).fetchone() is None]

    def update_model(self, name: str, version: int, tags: dict, properties: dict,
                     description: str | None) -> None:
        with self._lock:
            self.db.execute("UPDATE models SET tags = ?, properties = ?, description = ? "
                            "WHERE name = ? AND version = ?",
                            (json.dumps(tags), json.dumps(properties), description, name, version))

    def model_file_digests(self, name: str, version: int) -> dict[str, str]:
        with self._lock:
            return {r[0]: r[1] for r in self.db.execute(
                "SELECT path, digest FROM model_files WHERE name = ? AND version = ?", (name, version))}

    def get_model(self, name: str, version: int | None = None) -> dict | None:
        with self._lock:
            if version is None:
                row = self.db.execute("SELECT * FROM models WHERE name = ? ORDER BY version DESC "
                                      "LIMIT 1", (name,)).fetchone()
            else:
                row = self.db.execute("SELECT * FROM models WHERE name = ? AND version = ?",
                                      (name, version)).fetchone()
        return _model_dict(row) if row else None

    def list_models(self, name: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM models", []
        if name:
            sql += " WHERE name = ?"
            args.append(name)
        with self._lock:
            rows = self.db.execute(sql + " ORDER BY name, version", args).fetchall()
        return [_model_dict(r) for r in rows]


class _Tx:
    def __init__(self, store: SQLiteStore):
        self.db = store.db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _fold_event(run: dict, ev: dict) -> None:
    state = ev["state"]
    run["phases"].append({"state": state, "ts": ev["ts"], "message": ev.get("message", "")})
    if contract.is_terminal(run["status"]):
        return  # a late event (e.g. a second cancel) never reopens a finished run
    if state == contract.CANCEL_REQUESTED:
        run["properties"]["cancel_requested_at"] = ev["ts"]
        if ev.get("message"):  # who asked and why, e.g. an early termination policy
            run["properties"].setdefault("cancel_reason", ev["message"])
        run["status"] = state
        return
    if state == contract.RUNNING:
        run["started_at"] = ev["ts"]
    if state in contract.TERMINAL_STATES:
        run["ended_at"] = ev["ts"]
        if state == contract.FAILED:
            run["error"] = ev.get("message", "The run failed.")
        for key in ("exit_codes", "failed_rank"):
            if key in ev:
                run["properties"][key] = ev[key]
    if run["status"] == contract.CANCEL_REQUESTED and not contract.is_terminal(state):
        return  # stay CancelRequested until the run actually stops
    run["status"] = state


def _run_dict(row) -> dict:
    d = dict(row)
    for c in RUN_JSON_COLUMNS:
        d[c] = json.loads(d[c]) if d.get(c) else ({} if c in ("tags", "properties") else [])
    return d


def _model_dict(row) -> dict:
    d = dict(row)
    d["tags"] = json.loads(d["tags"])
    d["properties"] = json.loads(d["properties"])
    return d
