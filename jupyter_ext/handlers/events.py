"""WebSocket of the whole workspace: every run's changes, for the sidebar (no polling).

First ``{"type": "runs", "runs": [...]}`` (the most recent runs), then ``{"type": "run",
"run": {...}}`` whenever a run is created or its status, phases, tags or primary metric change
(at most every MIN_SCAN_INTERVAL_S).
"""

from __future__ import annotations

import asyncio
import json

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web, websocket

from .base import AUTH_RESOURCE
from .validate import ContractChecked

RECENT = 200
IDLE_RECHECK_S = 5.0


MIN_SCAN_INTERVAL_S = 0.2  # metrics wake the pump often; rescan at most this often


def _signature(run: dict) -> tuple:
    return (run["status"], len(run["phases"]), json.dumps(run["tags"], sort_keys=True),
            json.dumps(run.get("primary_metric")))


class WorkspaceEventsHandler(ContractChecked, JupyterHandler, websocket.WebSocketHandler):
    auth_resource = AUTH_RESOURCE

    @ws_authenticated
    async def get(self):
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read",
                                                                   AUTH_RESOURCE))
        if not allowed:
            raise web.HTTPError(403)
        self.manager = self.settings.get("train_manager")
        if self.manager is None:
            raise web.HTTPError(503, "jupyter-train is not available on this server")
        self.manager.ensure_started()
        await super().get()

    def open(self):
        self.wake = asyncio.Event()
        self.manager.tailer.watchers.add(self.wake)
        self.task = asyncio.ensure_future(self.pump())

    def on_close(self):
        self.manager.tailer.watchers.discard(self.wake)
        self.task.cancel()

    def on_message(self, message):
        pass

    async def pump(self):
        try:
            runs = self.manager.list_runs(limit=RECENT)
            seen = {r["id"]: _signature(r) for r in runs}
            await self.write_message(json.dumps({"type": "runs", "runs": runs}))
            last_scan = 0.0
            while True:
                try:
                    await asyncio.wait_for(self.wake.wait(), IDLE_RECHECK_S)
                except asyncio.TimeoutError:
                    pass
                loop = asyncio.get_running_loop()
                wait = last_scan + MIN_SCAN_INTERVAL_S - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                last_scan = loop.time()
                self.wake.clear()
                for run in reversed(self.manager.list_runs(limit=RECENT)):
                    sig = _signature(run)
                    if seen.get(run["id"]) != sig:
                        seen[run["id"]] = sig
                        await self.write_message(json.dumps({"type": "run", "run": run}))
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            return
