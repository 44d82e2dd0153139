"""The on-disk layout of one run, and its append-only event log.

Both the server and the per-run supervisor write events; each event is one JSON line written
with a single ``write`` on an ``O_APPEND`` descriptor, so lines from the two never interleave.
The database row of a run is derived from these events, which is what lets a restarted server
rebuild its state from disk.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .spec import RunState

SPEC = "spec.json"
EVENTS = "events.jsonl"
SUPERVISOR = "supervisor.json"


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- layout ---------------------------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.path / SPEC

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS

    @property
    def supervisor_path(self) -> Path:
        return self.path / SUPERVISOR

    @property
    def wd(self) -> Path:
        return self.path / "wd"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics"

    @property
    def outputs(self) -> Path:
        return self.path / "outputs"

    def create(self) -> None:
        for d in (self.path, self.logs, self.metrics, self.outputs):
            d.mkdir(parents=True, exist_ok=True)

    # -- events ---------------------------------------------------------------------------
    def append_event(self, state: RunState, by: str, message: str = "", **extra) -> dict:
        event = {"state": state.value, "ts": time.time(), "by": by}
        if message:
            event["message"] = message
        event.update(extra)
        line = (json.dumps(event, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return event

    def read_events(self, offset: int = 0) -> tuple[list[dict], int]:
        """Complete event lines from byte ``offset``; returns them and the offset after them."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        events = []
        for raw in data[:end].splitlines():
            if raw.strip():
                try:
                    events.append(json.loads(raw))
                except ValueError:
                    continue  # a torn line cannot happen with O_APPEND; skip garbage defensively
        return events, offset + end

    def last_state(self) -> RunState | None:
        events, _ = self.read_events()
        return RunState(events[-1]["state"]) if events else None

    # -- supervisor bookkeeping -----------------------------------------------------------
    def write_supervisor_info(self, info: dict) -> None:
        tmp = self.supervisor_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, self.supervisor_path)

    def read_supervisor_info(self) -> dict | None:
        try:
            return json.loads(self.supervisor_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
