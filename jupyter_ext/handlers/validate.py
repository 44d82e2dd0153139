"""Every request under /train/api checked against openapi.yaml before a handler acts on it, and
every error answered as ``{"error_code", "message"}``: the mixin the REST and the WebSocket
handlers share, and the catch-all route for paths with no endpoint.

Order: Jupyter's auth first (an unauthenticated request gets its 403 whatever it holds), then
the operation (404 for no endpoint, 405 for a method the endpoint lacks), then its path and query
parameters and JSON body (jupyter_ext/schema.py), then the handler.
"""

from __future__ import annotations

import json

from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import InvalidRequest, MethodNotAllowed, NotFound, TrainError
from ..schema import api_spec

API_PATH = "train/api"
HTTP_CODES = {400: "invalid_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              413: "too_large", 503: "unavailable"}


class ContractChecked:
    """Mixin for handlers under /train/api; the route gives ``spec_path``, its openapi.yaml path
    (None: the catch-all)."""

    spec_path: str | None = None
    checked_body = None  # the JSON body, checked, when the operation takes one

    def initialize(self, spec_path: str | None = None, **kwargs):
        self.spec_path = spec_path
        super().initialize(**kwargs)

    async def prepare(self):
        await super().prepare()
        if self._finished or self.request.method == "OPTIONS":
            return  # answered already, or a CORS preflight
        if self.current_user is None:
            if self.request.method not in api_spec().methods(self.spec_path or ""):
                raise web.HTTPError(403)  # no endpoint or method to speak of before auth
            return  # the method's own auth decorator answers 403
        self.check_request()

    def check_request(self) -> None:
        api, method = api_spec(), self.request.method
        methods = api.methods(self.spec_path) if self.spec_path else []
        if not methods:
            raise NotFound(f"No endpoint {method} {self.api_path()} in jupyter-train's API. See "
                           "jupyter_ext/openapi.yaml for the endpoints and their methods.")
        if method not in methods:
            raise MethodNotAllowed(f"{self.spec_path} does not take {method}; it takes "
                                   f"{', '.join(methods)} (see jupyter_ext/openapi.yaml).", allow=methods)
        if api.is_websocket(self.spec_path, method) and \
                self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise InvalidRequest(f"{self.spec_path} is a WebSocket: connect to it with a WebSocket "
                                 "client (ws:// or wss://), not a plain HTTP request.")
        _, _, self.checked_body = api.check_request(self.spec_path, method, self.path_kwargs,
                                                    self.request.query_arguments, self.request.body)

    def api_path(self) -> str:
        prefix = url_path_join(self.base_url, API_PATH)
        path = self.request.path
        return path[len(prefix):] or "/" if path.startswith(prefix) else path

    # One translation of errors: {"error_code", "message"} with the error's HTTP status.
    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, TrainError):
            self.set_status(exc.status)
            body = exc.to_dict()
            if isinstance(exc, MethodNotAllowed):
                self.set_header("Allow", ", ".join(exc.details["allow"]))
        elif isinstance(exc, web.HTTPError):
            body = {"error_code": HTTP_CODES.get(status_code, f"http_{status_code}"),
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
