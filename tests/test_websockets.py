"""The WebSocket base (jupyter_ext/handlers/ws.py): a socket is never left open hearing nothing.
The server's stop closes every socket (1001, going away) and a send loop that fails closes its
socket (1011) instead of leaving it silent."""

from __future__ import annotations

import json

from jupyter_ext.handlers.ws import GOING_AWAY, INTERNAL_ERROR, TrainWebSocket


async def test_close_all_closes_every_socket_going_away(jp_ws_fetch, api):
    run = await api.submit("count.py", ["--n", 1])
    events = await jp_ws_fetch("train", "api", "events")
    assert json.loads(await events.read_message())["type"] == "runs"
    stream = await jp_ws_fetch("train", "api", "runs", run["id"], "stream", params={"output": "0"})
    assert json.loads(await stream.read_message())["type"] == "status"
    TrainWebSocket.close_all()
    for ws in (events, stream):
        while await ws.read_message() is not None:
            pass
        assert ws.close_code == GOING_AWAY
    assert not TrainWebSocket._open


async def test_a_send_loop_that_fails_closes_its_socket(jp_ws_fetch, jp_serverapp, api, monkeypatch):
    manager = jp_serverapp.web_app.settings["train_manager"]

    def broken(*args, **kwargs):
        raise RuntimeError("the store is gone")

    monkeypatch.setattr(manager, "list_runs", broken)
    ws = await jp_ws_fetch("train", "api", "events")
    assert await ws.read_message() is None
    assert ws.close_code == INTERNAL_ERROR
