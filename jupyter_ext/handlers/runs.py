"""Runs, experiments and compute: thin handlers over the RunManager."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..contract import TERMINAL_STATES
from ..errors import InvalidRequest
from ..runs import SubmitRequest
from ..runs.history import read_log_chunk
from .base import TrainHandler

MAX_LOG_CHUNK = 1 << 20


class InfoHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        from .._version import __version__

        self.send_json({"version": __version__, "workspace": str(self.manager.ws.path),
                        "pid": os.getpid(), "contents_path": self._contents_path()})

    def _contents_path(self):
        """The workspace as a path of the Jupyter file browser, when it can show it (inside the
        server's root and not hidden); else None."""
        root = self.settings.get("server_root_dir") or self.contents_manager.root_dir
        try:
            rel = os.path.relpath(os.path.realpath(self.manager.ws.path), os.path.realpath(root))
        except (TypeError, ValueError):
            return None
        parts = rel.split(os.sep)
        if rel == "." or parts[0] == ".." or any(p.startswith(".") for p in parts):
            return None
        return "/".join(parts)


class RunsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        runs = self.manager.list_runs(experiment=self.get_query_argument("experiment", None),
                                      status=self.get_query_argument("status", None),
                                      limit=self.int_arg("limit", 100, 1),
                                      parent=self.get_query_argument("parent", None),
                                      include_children=self.get_query_argument("include_children", "false").lower() in ("true", "1"))
        self.send_json({"runs": runs})

    @web.authenticated
    @authorized
    async def post(self):
        run = await self.manager.submit(SubmitRequest.from_json(self.json_body()))
        self.send_json(run, status=201)


class SweepsHandler(TrainHandler):
    @web.authenticated
    @authorized
    async def post(self):
        self.send_json(await self.manager.sweeps.submit(self.json_body()), status=201)


class RunHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, run_id):
        self.send_json(self.manager.run_details(run_id))

    @web.authenticated
    @authorized
    def patch(self, run_id):
        self.send_json(self.manager.update_tags(run_id, self.json_body().get("tags")))


class CancelHandler(TrainHandler):
    @web.authenticated
    @authorized
    def post(self, run_id):
        self.send_json(self.manager.cancel(run_id))


class ResubmitHandler(TrainHandler):
    @web.authenticated
    @authorized
    async def post(self, run_id):
        self.send_json(await self.manager.resubmit(run_id), status=201)


class LogsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, run_id):
        self.send_json(self.manager.log_listing(run_id))


class LogHandler(TrainHandler):
    """A chunk of one log file: whole lines from a byte offset, and where to continue."""

    @web.authenticated
    @authorized
    def get(self, run_id, name):
        offset = self.int_arg("offset", 0)
        limit = min(self.int_arg("limit", 256 * 1024, 1), MAX_LOG_CHUNK)
        final = self.manager.get_run(run_id)["status"] in TERMINAL_STATES
        with self.manager.open_log(run_id, name) as f:
            data, next_offset, size = read_log_chunk(f, offset, limit, final)
        self.send_json({"name": name, "offset": offset, "next_offset": next_offset, "size": size,
                        "text": data.decode("utf-8", "replace"),
                        "eof": final and next_offset >= size})


class MetricsHandler(TrainHandler):
    """Every point after a cursor (of one metric and rank when asked). A page may hold 100,000
    points: it is read and encoded off the event loop."""

    @web.authenticated
    @authorized
    async def get(self, run_id):
        rank = self.get_query_argument("rank", None)
        layout = self.get_query_argument("format", "points")
        if layout not in ("points", "columns"):
            raise InvalidRequest(f"format={layout!r}: give points (a list of point objects, the "
                                 "default) or columns (a list per field).")
        args = (run_id, self.int_arg("cursor", 0), self.int_arg("limit", 1000, 1),
                self.get_query_argument("name", None), None if rank is None else self.int_arg("rank", 0))
        await self._send_from_thread(lambda: self.manager.metrics(*args, columns=layout == "columns"))

    async def _send_from_thread(self, answer) -> None:
        body = await asyncio.to_thread(lambda: json.dumps(answer(), allow_nan=False))
        self.set_header("Content-Type", "application/json")
        self.finish(body)


class MetricSeriesHandler(MetricsHandler):
    """The run's series downsampled for charts, with the cursor to stream on from."""

    @web.authenticated
    @authorized
    async def get(self, run_id):
        rank = self.get_query_argument("rank", None)
        args = (run_id, self.int_arg("points", 1000), self.get_query_argument("name", None),
                None if rank is None else self.int_arg("rank", 0), self.bool_arg("times", False))
        await self._send_from_thread(lambda: self.manager.metric_series(*args))


class FilesHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, run_id):
        self.send_json(self.manager.file_listing(run_id))


class FileHandler(TrainHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id, name):
        await self.send_file(self.manager.open_file(run_id, name), name)

    async def send_file(self, f, name: str) -> None:
        """The bytes of ``f`` (opened under paths.Tree's rule; closed here), as the file
        ``name``: exactly the size it had when opened, in 1 MiB chunks."""
        with f:
            size = os.fstat(f.fileno()).st_size
            base = name.rstrip("/").rsplit("/", 1)[-1]
            self.set_header("Content-Type", mimetypes.guess_type(base)[0] or "application/octet-stream")
            self.set_header("Content-Length", str(size))
            plain = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in base)
            self.set_header("Content-Disposition",
                            f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(base)}")
            left = size
            while left > 0 and (chunk := f.read(min(1 << 20, left))):
                left -= len(chunk)
                self.write(chunk)
                await self.flush()
        self.finish()


class SnapshotHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, run_id):
        self.send_json(self.manager.snapshot_listing(run_id))


class SnapshotFileHandler(FileHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id, name):
        await self.send_file(self.manager.open_snapshot_file(run_id, name), name)


class ExperimentsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"experiments": self.manager.store.list_experiments()})


class ComputeHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"computes": self.manager.computes.describe_all()})

    @web.authenticated
    @authorized
    def post(self):
        self.send_json(self.manager.computes.create(self.json_body()), status=201)


class OneComputeHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        self.send_json(self.manager.computes.describe(name))

    @web.authenticated
    @authorized
    def delete(self, name):
        self.manager.computes.delete(name)
        self.set_status(204)
        self.finish()


def bad_version(raw: str, what: str = "Model") -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(f"{what} version {raw!r} must be an integer.") from None
