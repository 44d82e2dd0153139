"""WebSocket per run: status, log lines and metrics, resumable from offsets and a cursor.

Query: ``cursor`` (last metric id seen) and ``logs`` (``name:offset,name:offset`` for log files
already read); ``metrics=0`` and ``output=0`` leave out metric and log messages (a client that
only waits for the end gets status messages and "end"). Each message says where it starts and
ends, so a client that reconnects with the offsets it holds gets every line and every point
exactly once. Messages:
``{"type": "status", "run": {...}}``, ``{"type": "log", "name", "offset", "next_offset", "text"}``,
``{"type": "metrics", "items": [...], "cursor"}``, and ``{"type": "end", "status"}`` once the run
has finished and everything has been sent.
"""

from __future__ import annotations

import asyncio

from tornado import web

from ..contract import TERMINAL_STATES
from ..errors import InvalidRequest, TrainError
from ..runs import history
from ..runs.history import read_log_chunk
from .base import flag_value
from .stream_logs import StreamLogs
from .ws import TrainWebSocket

LOG_CHUNK = 256 * 1024
METRICS_PAGE = 5000  # points a message
IDLE_RECHECK_S = 1.0


def parse_offsets(raw: str) -> dict[str, int]:
    offsets = {}
    for part in filter(None, (raw or "").split(",")):
        name, _, off = part.rpartition(":")
        try:
            offsets[name] = int(off)
        except ValueError:
            raise InvalidRequest(f"logs={raw!r}: give name:offset pairs separated by commas.") from None
    return offsets


class RunStreamHandler(TrainWebSocket):
    def check_query(self, run_id):
        try:
            self.manager.get_run(run_id)
            self.offsets = parse_offsets(self.get_query_argument("logs", ""))
            self.cursor = int(self.get_query_argument("cursor", "0") or 0)
            self.want_metrics = flag_value(self.get_query_argument("metrics", "1"), "metrics")
            self.want_output = flag_value(self.get_query_argument("output", "1"), "output")
        except (TrainError, ValueError) as exc:
            raise web.HTTPError(404 if getattr(exc, "status", 400) == 404 else 400, str(exc)) from None

    def open(self, run_id):
        self.run_id = run_id
        self.logs = StreamLogs(self.manager.run_dir(run_id), run_id)
        super().open(run_id)

    def subscribe(self):
        return self.manager.tailer.subscribe(self.run_id)

    def unsubscribe(self):
        self.manager.tailer.unsubscribe(self.run_id, self.wake)

    async def pump(self):
        """Logs and metrics as they come; a final status only once everything before it has
        been ingested and sent, so a client that sees Completed already has the last points."""
        last = None
        while True:
            self.wake.clear()
            # read before the logs and metrics: if the tailer was done then, they are complete
            caught_up = self.run_id not in self.manager.tailer.active
            run = self.manager.get_run(self.run_id)
            terminal = run["status"] in TERMINAL_STATES
            sig = (run["status"], len(run["phases"]))
            sent = False
            if sig != last and not terminal:  # a new phase: before the lines written in it
                last, sent = sig, True
                await self.send({"type": "status", "run": run})
            if self.want_output:
                sent |= await self.send_logs(terminal)
            if self.want_metrics:
                sent |= await self.send_metrics()
            if sig != last and terminal and caught_up:  # the end: after everything before it
                last, sent = sig, True
                await self.send({"type": "status", "run": run})
            if terminal and caught_up and not sent:
                await self.send({"type": "end", "status": run["status"]})
                self.close()
                return
            if not sent:
                await self.wait_for_wake(0.05 if terminal else IDLE_RECHECK_S)

    async def send_logs(self, final: bool) -> bool:
        """New whole lines of every ``*.txt`` log, at most LOG_CHUNK bytes a log a pass, read
        under the containment rule (paths.Tree: a link out of the run is never read). ``logs/``
        is listed again only when it changed (stream_logs.StreamLogs)."""
        sizes = self.logs.sizes(final)
        if sizes is None:  # the run's folder is gone or was replaced by a link: nothing to send
            return False
        rd = self.logs.rd
        sent = False
        for name, size in sizes:
            off = self.offsets.get(name, 0)
            if size <= off:
                continue
            try:
                with history.open_log(rd, self.run_id, name) as f:
                    data, nxt, _size = read_log_chunk(f, off, LOG_CHUNK, final)
            except TrainError:
                continue  # replaced by a link or removed since it was listed
            if nxt > off:
                self.offsets[name] = nxt
                await self.send({"type": "log", "name": name, "offset": off, "next_offset": nxt,
                                 "text": data.decode("utf-8", "replace")})
                await asyncio.sleep(0)  # a flood of output never keeps REST waiting
                sent = True
        return sent

    async def send_metrics(self) -> bool:
        page = self.manager.metrics(self.run_id, self.cursor, METRICS_PAGE)
        if not page["items"]:
            return False
        self.cursor = page["cursor"]
        await self.send({"type": "metrics", "items": page["items"], "cursor": self.cursor})
        return True
