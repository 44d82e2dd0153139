"""Datastores, dataset versions (each an immutable list of files by content) and which runs
used which version."""

from __future__ import annotations

import json
import time

DATASETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS datastores (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, root TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '',
    sealed TEXT NOT NULL DEFAULT '', option_names TEXT NOT NULL DEFAULT '[]', created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, paths TEXT NOT NULL,
    base TEXT NOT NULL, datastore TEXT NOT NULL, description TEXT, tags TEXT NOT NULL DEFAULT '{}',
    tabular TEXT, checksum TEXT NOT NULL, files INTEGER NOT NULL, size INTEGER NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS dataset_files (
    name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, digest TEXT NOT NULL,
    size INTEGER NOT NULL, store_path TEXT NOT NULL, mtime_ns INTEGER,
    PRIMARY KEY (name, version, path));
CREATE TABLE IF NOT EXISTS run_datasets (
    run_id TEXT NOT NULL, input TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    mode TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (run_id, input));
CREATE INDEX IF NOT EXISTS run_datasets_by_version ON run_datasets (name, version);
"""


class DatasetsMixin:
    def _open_datasets(self) -> None:
        self.db.executescript(DATASETS_SCHEMA)

    # -- datastores -----------------------------------------------------------------------
    def save_datastore(self, row: dict) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO datastores VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row["name"], row["kind"], row.get("root", ""), row.get("url", ""), row.get("sealed", ""),
                 json.dumps(list(row.get("option_names", ()))), row.get("created_at") or time.time()))

    def get_datastore(self, name: str) -> dict | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM datastores WHERE name = ?", (name,)).fetchone()
        return _datastore(row) if row else None

    def list_datastores(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM datastores ORDER BY name").fetchall()
        return [_datastore(r) for r in rows]

    def delete_datastore(self, name: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM datastores WHERE name = ?", (name,))

    # -- dataset versions -----------------------------------------------------------------
    def insert_dataset(self, ds: dict, files: list[list]) -> int:
        """A new version of ``ds['name']`` with ``files`` ([path, digest, size, store path,
        mtime_ns]); returns its number."""
        name = ds["name"]
        with self._lock, self._tx():
            row = self.db.execute("SELECT MAX(version) FROM datasets WHERE name = ?", (name,)).fetchone()
            version = (row[0] or 0) + 1
            self.db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, ds["kind"], json.dumps(ds["paths"]), ds["base"], ds["datastore"],
                 ds.get("description"), json.dumps(ds.get("tags") or {}),
                 json.dumps(ds["tabular"]) if ds.get("tabular") else None, ds["checksum"],
                 len(files), sum(f[2] for f in files), ds.get("created_at") or time.time()))
            self.db.executemany("INSERT INTO dataset_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(name, version, *f) for f in files])
        return version

    def get_dataset(self, name: str, version: int | None = None) -> dict | None:
        with self._lock:
            if version is None:
                row = self.db.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1",
                                      (name,)).fetchone()
            else:
                row = self.db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?",
                                      (name, version)).fetchone()
        return _dataset(row) if row else None

    def list_datasets(self, name: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM datasets", ()
        if name is not None:
            sql, args = sql + " WHERE name = ?", (name,)
        with self._lock:
            rows = self.db.execute(sql + " ORDER BY name, version", args).fetchall()
        return [_dataset(r) for r in rows]

    def dataset_files(self, name: str, version: int) -> list[list]:
        """[path, digest, size, store path, mtime_ns] of every file of a version, by path."""
        with self._lock:
            rows = self.db.execute("SELECT path, digest, size, store_path, mtime_ns FROM dataset_files "
                                   "WHERE name = ? AND version = ? ORDER BY path", (name, version)).fetchall()
        return [list(r) for r in rows]

    # -- lineage --------------------------------------------------------------------------
    def record_run_datasets(self, run_id: str, inputs: list[dict]) -> None:
        with self._lock, self._tx():
            self.db.executemany("INSERT OR REPLACE INTO run_datasets VALUES (?, ?, ?, ?, ?, ?)",
                                [(run_id, i["name"], i["dataset"], i["version"], i["mode"], time.time())
                                 for i in inputs])

    def runs_of_dataset(self, name: str) -> dict[int, list[str]]:
        """{version: [run ids, oldest first]}."""
        with self._lock:
            rows = self.db.execute("SELECT version, run_id FROM run_datasets WHERE name = ? "
                                   "ORDER BY created_at", (name,)).fetchall()
        out: dict[int, list[str]] = {}
        for version, run_id in rows:
            out.setdefault(version, [])
            if run_id not in out[version]:
                out[version].append(run_id)
        return out


def _datastore(row) -> dict:
    d = dict(row)
    d["option_names"] = json.loads(d["option_names"])
    return d


def _dataset(row) -> dict:
    d = dict(row)
    d["paths"] = json.loads(d["paths"])
    d["tags"] = json.loads(d["tags"])
    d["tabular"] = json.loads(d["tabular"]) if d["tabular"] else None
    return d
