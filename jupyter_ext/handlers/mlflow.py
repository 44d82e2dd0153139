"""MLflow's tracking REST API under ``<base_url>train/mlflow`` (runs/mlflow_api.py holds the
logic; MLflow's own protocol is the contract here, not openapi.yaml).

Auth on every request: a run's own token (``Authorization: Bearer <run_id>.<secret>``, what the
job's MLFLOW_TRACKING_TOKEN holds) scopes it to that run; otherwise the Jupyter server's usual
authentication and authorization apply (``MLFLOW_TRACKING_TOKEN=<the server's token>``)."""

from __future__ import annotations

import json
import re

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..runs.mlflow_api import PREFIX, MlflowError, bad
from .base import AUTH_RESOURCE

BEARER = re.compile(r"bearer\s+(\S+)\Z", re.IGNORECASE)
MAX_BODY = 64 << 20  # bytes of one request (an artifact): larger is refused before it is parsed

GETS = {"runs/get": "get_run", "experiments/get": "get_experiment",
        "experiments/get-by-name": "get_experiment_by_name", "metrics/get-history": "metric_history"}
POSTS = {"runs/log-batch": "log_batch", "runs/log-metric": "log_metric", "runs/log-parameter": "log_param",
         "runs/set-tag": "set_tag", "runs/update": "update_run", "runs/create": "create_run",
         "runs/search": "search_runs", "experiments/search": "search_experiments",
         "experiments/create": "create_experiment"}
SCOPED = {"get_run", "metric_history", "log_batch", "log_metric", "log_param", "set_tag", "update_run",
          "create_run", "search_runs"}  # the methods that take the caller's scope


class MlflowHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE
    scope: str | None = None  # the run of a valid per-run token

    async def prepare(self):
        m = BEARER.match(self.request.headers.get("Authorization", ""))
        api = self.api
        if m and api is not None:
            self.scope = api.run_of_token(m.group(1))
        await super().prepare()

    def check_xsrf_cookie(self):
        if self.scope is None:
            return super().check_xsrf_cookie()
        return None  # a per-run bearer token is no cookie: no cross-site request can carry it

    @property
    def api(self):
        manager = self.settings.get("train_manager")
        return None if manager is None else manager.mlflow

    def authorize(self, action: str) -> None:
        if self.api is None:
            raise MlflowError("TEMPORARILY_UNAVAILABLE", "The jupyter-train workspace is not available on this server.")
        if self.scope is not None:
            return
        user = self.current_user
        if user is None:
            raise MlflowError("UNAUTHENTICATED", "Set MLFLOW_TRACKING_TOKEN to the Jupyter server's token "
                              "(inside a run it is set for you).")
        if not self.authorizer.is_authorized(self, user, action, AUTH_RESOURCE):
            raise MlflowError("PERMISSION_DENIED", f"{user.username} may not {action} jupyter-train runs.")

    def send(self, data: dict, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, allow_nan=False))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlflowError):
            self.set_status(exc.status)
            body = exc.to_json()
        elif isinstance(exc, web.HTTPError):
            body = {"error_code": "PERMISSION_DENIED" if status_code == 403 else "INVALID_PARAMETER_VALUE",
                    "message": exc.log_message or self._reason}
        else:
            body = {"error_code": "INTERNAL_ERROR", "message": "The server hit an unexpected error; "
                    "the details are in the server log."}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, MlflowError):
            self.log.info("jupyter-train mlflow: %s: %s", value.code, value.message)
            return
        super().log_exception(typ, value, tb)

    def body(self) -> dict:
        if len(self.request.body) > MAX_BODY:
            raise bad(f"The request body is over {MAX_BODY >> 20} MiB.")
        try:
            data = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise bad("The request body is not JSON.") from None
        if not isinstance(data, dict):
            raise bad("The request body must be a JSON object.")
        return data

    def call(self, name: str, arg: dict):
        method = getattr(self.api, name)
        return method(arg, self.scope) if name in SCOPED else method(arg)


class MlflowRestHandler(MlflowHandler):
    @allow_unauthenticated  # authorized in self.authorize: a run's token or the Jupyter user
    def get(self, endpoint):
        self.authorize("read")
        name = GETS.get(endpoint)
        if name is None:
            raise self.no_endpoint("GET", endpoint)
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.send(self.call(name, query))

    @allow_unauthenticated
    def post(self, endpoint):
        name = POSTS.get(endpoint)
        self.authorize("read" if name in ("search_runs", "search_experiments") else "write")
        if name is None:
            raise self.no_endpoint("POST", endpoint)
        self.send(self.call(name, self.body()))

    @staticmethod
    def no_endpoint(method: str, endpoint: str) -> MlflowError:
        return MlflowError("ENDPOINT_NOT_FOUND", f"{method} {PREFIX}/api/2.0/mlflow/{endpoint} is not part "
                           "of the MLflow API that jupyter-train answers (runs, metrics, params, tags, "
                           "experiments, artifacts; not the model registry or traces).")


class MlflowArtifactHandler(MlflowHandler):
    @allow_unauthenticated
    async def get(self, path):
        self.authorize("read")
        path = path or ""
        if not path.strip("/"):  # a listing: ?path=<run_id>/<folder>
            self.send(self.api.list_artifacts(self.get_query_argument("path", ""), self.scope))
            return
        f = self.api.open_artifact(path, self.scope)
        with f:
            self.set_header("Content-Type", "application/octet-stream")
            while chunk := f.read(1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()

    @allow_unauthenticated
    def put(self, path):
        self.authorize("write")
        if len(self.request.body) > MAX_BODY:
            raise bad(f"An artifact over {MAX_BODY >> 20} MiB is refused; save it under outputs/ instead.")
        self.api.put_artifact(path or "", self.request.body, self.scope)
        self.send({})


class MlflowNoEndpointHandler(MlflowHandler):
    """Anything else under the prefix, any method: MLflow's ENDPOINT_NOT_FOUND, after auth."""

    @allow_unauthenticated
    def get(self, rest):
        self.authorize("read")
        raise MlflowError("ENDPOINT_NOT_FOUND", f"{self.request.method} {PREFIX}{rest} is not part of the "
                          "MLflow API that jupyter-train answers (runs, metrics, params, tags, experiments, "
                          "artifacts under /api/2.0; not the model registry, traces or /api/3.0).")

    post = put = delete = patch = get


def mlflow_handlers(base: str = PREFIX) -> list[tuple[str, type]]:
    return [(base + r"/api/2\.0/mlflow/(?P<endpoint>[a-z-]+/[a-z-]+)", MlflowRestHandler),
            (base + r"/api/2\.0/mlflow-artifacts/artifacts(?P<path>/.*)?", MlflowArtifactHandler),
            (base + r"(?P<rest>/.*)?", MlflowNoEndpointHandler)]
