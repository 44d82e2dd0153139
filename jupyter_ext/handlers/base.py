"""The base handler: auth, the RunManager, JSON in and out, one error translation."""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..errors import InvalidRequest, TrainError, WorkspaceLocked

AUTH_RESOURCE = "train"


class TrainHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    async def prepare(self):
        manager = self.settings.get("train_manager")
        if manager is not None:
            manager.ensure_started()
        await super().prepare()

    @property
    def manager(self):
        manager = self.settings.get("train_manager")
        if manager is None:
            raise WorkspaceLocked(self.settings.get("train_unavailable")
                                  or "The jupyter-train workspace is not available on this server.")
        return manager

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise InvalidRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return body

    def int_arg(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequest(f"Query argument {name}={raw!r} must be an integer.") from None
        if value < minimum:
            raise InvalidRequest(f"Query argument {name} must be at least {minimum}.")
        return value

    def send_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, allow_nan=False))

    # One translation of errors: {"error_code", "message"} with the error's HTTP status.
    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, TrainError):
            self.set_status(exc.status)
            body = exc.to_dict()
        elif isinstance(exc, web.HTTPError):
            body = {"error_code": f"http_{status_code}",
                    "message": exc.log_message or self._reason}
        else:
            body = {"error_code": "internal_error",
                    "message": "The server hit an unexpected error; the details are in the server log."}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, TrainError):
            self.log.info("jupyter-train: %s: %s", value.code, value.message)
            return
        super().log_exception(typ, value, tb)
