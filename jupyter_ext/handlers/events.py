"""WebSocket of the whole workspace: every run's changes, for the sidebar (no polling).

First ``{"type": "runs", "runs": [...]}`` (the most recent top-level runs, and the children of
the sweeps among them, each with its ``parent_id``), then ``{"type": "run", "run": {...}}``
whenever one is created or its status, phases, tags or primary metric change (at most every
MIN_SCAN_INTERVAL_S).
"""

from __future__ import annotations

import asyncio
import json

from .ws import TrainWebSocket

RECENT = 200
MAX_CHILDREN = 1000  # of one sweep, in the feed
IDLE_RECHECK_S = 5.0
MIN_SCAN_INTERVAL_S = 0.2  # metrics wake the pump often; rescan at most this often


def _signature(run: dict) -> tuple:
    return (run["status"], len(run["phases"]), json.dumps(run["tags"], sort_keys=True),
            json.dumps(run.get("primary_metric")))


class WorkspaceEventsHandler(TrainWebSocket):
    def subscribe(self):
        wake = asyncio.Event()
        self.manager.tailer.watchers.add(wake)
        return wake

    def unsubscribe(self):
        self.manager.tailer.watchers.discard(self.wake)

    def recent(self) -> list[dict]:
        runs = self.manager.list_runs(limit=RECENT)
        children = []
        for run in runs:
            if run.get("properties", {}).get("sweep"):
                children += self.manager.list_runs(parent=run["id"], limit=MAX_CHILDREN)
        return runs + children

    async def pump(self):
        runs = self.recent()
        seen = {r["id"]: _signature(r) for r in runs}
        await self.write_message(json.dumps({"type": "runs", "runs": runs}))
        last_scan = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await self.wait_for_wake(IDLE_RECHECK_S)
            wait = last_scan + MIN_SCAN_INTERVAL_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last_scan = loop.time()
            self.wake.clear()
            for run in reversed(self.recent()):
                sig = _signature(run)
                if seen.get(run["id"]) != sig:
                    seen[run["id"]] = sig
                    await self.write_message(json.dumps({"type": "run", "run": run}))
