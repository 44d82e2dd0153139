"""Deployed services (Azure ML web services): name -> the run that serves it, its config, its keys."""

from __future__ import annotations

import json

SERVICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY, run_id TEXT NOT NULL, created_at REAL NOT NULL,
    config TEXT NOT NULL, keys TEXT NOT NULL DEFAULT '{}');
"""


class ServicesMixin:
    def _open_services(self) -> None:
        self.db.executescript(SERVICES_SCHEMA)

    def insert_service(self, name: str, run_id: str, created_at: float, config: dict, keys: dict) -> None:
        with self._lock:
            self.db.execute("INSERT INTO services VALUES (?, ?, ?, ?, ?)",
                            (name, run_id, created_at, json.dumps(config), json.dumps(keys)))

    def get_service(self, name: str) -> dict | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM services WHERE name = ?", (name,)).fetchone()
        return _service(row) if row else None

    def list_services(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM services ORDER BY name").fetchall()
        return [_service(r) for r in rows]

    def set_service_keys(self, name: str, keys: dict) -> None:
        with self._lock:
            self.db.execute("UPDATE services SET keys = ? WHERE name = ?", (json.dumps(keys), name))

    def delete_service(self, name: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM services WHERE name = ?", (name,))


def _service(row) -> dict:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    d["keys"] = json.loads(d["keys"])
    return d
