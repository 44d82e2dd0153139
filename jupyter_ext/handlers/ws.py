"""The base of the WebSocket endpoints (/events, /runs/{run_id}/stream).

Before the upgrade, as every request under /train/api: Jupyter's auth (``@ws_authenticated``:
403 without the server's token), the "read" permission on the train resource (403), the
request checked against openapi.yaml (validate.ContractChecked), the RunManager (503 when this
server has none), then the endpoint's own query (``check_query``). Once open: a wake event the
tailer sets (``subscribe``/``unsubscribe``), one send loop (``pump``) that ends when the socket
closes, and ``close_all`` for the server's stop. Clients only listen: messages they send are
ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web, websocket

from .base import AUTH_RESOURCE
from .validate import ContractChecked

log = logging.getLogger("jupyter_ext")
GOING_AWAY = 1001  # the close code when the server stops (RFC 6455)
INTERNAL_ERROR = 1011  # the close code when the send loop failed (the traceback is in the log)


class TrainWebSocket(ContractChecked, JupyterHandler, websocket.WebSocketHandler):
    auth_resource = AUTH_RESOURCE
    _open: set["TrainWebSocket"] = set()  # every open socket of this process, for close_all

    @ws_authenticated
    async def get(self, *args, **kwargs):
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read",
                                                                   AUTH_RESOURCE))
        if not allowed:
            raise web.HTTPError(403)
        manager = self.settings.get("train_manager")
        if manager is None:
            raise web.HTTPError(503, "jupyter-train is not available on this server")
        self.manager = manager
        self.check_query(*args, **kwargs)
        manager.ensure_started()
        await super().get(*args, **kwargs)

    def check_query(self, *args, **kwargs) -> None:
        """Read the endpoint's path and query arguments before the upgrade (raise HTTPError)."""

    # -- what the tailer wakes ------------------------------------------------------------
    def subscribe(self) -> asyncio.Event:
        raise NotImplementedError

    def unsubscribe(self) -> None:
        raise NotImplementedError

    async def pump(self) -> None:
        """Send messages until there is nothing more to send (then close) or the socket closes."""
        raise NotImplementedError

    # -- the socket -------------------------------------------------------------------------
    def open(self, *args, **kwargs):
        self.wake = self.subscribe()
        TrainWebSocket._open.add(self)
        self.pump_task = asyncio.ensure_future(self._serve())

    def on_close(self):
        self._release()

    def _release(self) -> None:
        """Unsubscribe and end the send loop (once; at close, or when the server stops)."""
        if self not in TrainWebSocket._open:
            return
        TrainWebSocket._open.discard(self)
        self.unsubscribe()
        self.pump_task.cancel()

    def on_message(self, message):
        pass  # the streams are one-way; clients reconnect with what they hold to resume

    async def send(self, msg: dict) -> None:
        await self.write_message(json.dumps(msg, allow_nan=False))

    async def wait_for_wake(self, timeout: float) -> None:
        """Until the tailer wakes this socket, or ``timeout`` seconds (whichever comes first)."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _serve(self) -> None:
        try:
            await self.pump()
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            return
        except Exception:  # a socket that hears nothing more is closed, never left open
            log.exception("jupyter-train: the WebSocket %s failed", self.request.path)
            self.close(INTERNAL_ERROR, "The server hit an unexpected error; see its log.")

    @classmethod
    def close_all(cls, manager=None) -> None:
        """Close every open socket (of ``manager``'s server, when given), going away: the server
        is stopping. Clients reconnect with the offsets and the cursor they hold."""
        for sock in [s for s in cls._open if manager is None or s.manager is manager]:
            sock.close(GOING_AWAY, "The server is stopping.")
            sock._release()  # now: on_close waits for the client's answer
