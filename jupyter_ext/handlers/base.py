"""The base handler: auth, the RunManager, JSON in and out, one error translation.

Every request is checked against jupyter_ext/openapi.yaml before its method runs
(validate.ContractChecked, which also writes every error as {"error_code", "message"})."""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from ..errors import InvalidRequest, NotFound, WorkspaceLocked
from ..schema import parse_json_body
from .validate import ContractChecked

AUTH_RESOURCE = "train"


class TrainHandler(ContractChecked, ExtensionHandlerMixin, APIHandler):
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
        """The request's JSON object, as checked against openapi.yaml in prepare()."""
        body = self.checked_body if self.checked_body is not None else parse_json_body(self.request.body)
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return body

    def bool_arg(self, name: str, default: bool) -> bool:
        raw = self.get_query_argument(name, None)
        return default if raw is None else flag_value(raw, name)

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


class NoEndpointHandler(TrainHandler):
    """Whatever no route under /train/api matches, with any method: a JSON 404. A GET of a known
    path with a trailing slash is redirected without it, as Jupyter does."""

    def check_request(self) -> None:
        path = self.request.path
        if path.endswith("/") and self.request.method in ("GET", "HEAD"):
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(path.rstrip("/") + query)
            return
        hint = " (drop the trailing '/')" if path.endswith("/") else ""
        raise NotFound(f"No endpoint {self.request.method} {self.api_path()}{hint} in jupyter-train's API. "
                       "See jupyter_ext/openapi.yaml for the endpoints and their methods.")


def flag_value(raw: str, name: str) -> bool:
    """A query flag: 1/true or 0/false, else a clear error."""
    if raw not in ("0", "1", "true", "false"):
        raise InvalidRequest(f"{name}={raw!r}: give 1 (yes) or 0 (no).")
    return raw in ("1", "true")
