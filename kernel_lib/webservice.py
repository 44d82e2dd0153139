"""Deploy registered models as web services, with Azure ML SDK v1's names (``azureml.core.model``,
``azureml.core.webservice``):

    from kernel_lib.webservice import InferenceConfig, AciWebservice, LocalWebservice, Webservice
    inference_config = InferenceConfig(entry_script="score.py", source_directory=".", environment=env)
    deployment_config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
    service = Model.deploy(ws, "birds-svc", [model], inference_config, deployment_config)
    service.wait_for_deployment(show_output=True)
    service.run(input_data=json.dumps({"data": [...]}))

The service runs on the server's machine (or the given compute target) as a long-running run of
the experiment ``services``; ``AciWebservice`` and ``LocalWebservice`` both deploy there (ACI's
``cpu_cores`` becomes the model's thread count; ``memory_gb`` is recorded, not enforced).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from urllib.parse import quote

from jupyter_ext.serving import FAILED, HEALTHY, TRANSITIONING

from .client import TrainError

POLL_S = 0.25


class WebserviceException(TrainError):
    """Azure ML's name for what a service operation raises."""

    def __init__(self, message: str, code: str = "webservice_error", status: int = 0, details=None):
        super().__init__(message, code, status, details)


class InferenceConfig:
    """What serves the model: ``entry_script`` (init() and run(raw_data)) in ``source_directory``
    (default: the script's folder), in ``environment`` (default: this kernel's Python). An ONNX
    model needs none: onnxruntime scores it."""

    def __init__(self, entry_script: str | None = None, runtime: str | None = None, conda_file: str | None = None,
                 source_directory: str | None = None, environment=None, description: str | None = None):
        if entry_script is not None and not isinstance(entry_script, str):
            raise WebserviceException(f"entry_script must be a file name, e.g. 'score.py', not {entry_script!r}.",
                                      "invalid_request")
        if entry_script and source_directory is None:
            path = os.path.abspath(entry_script)
            source_directory, entry_script = os.path.dirname(path), os.path.basename(path)
        if entry_script:
            path = os.path.join(source_directory, entry_script)
            if not os.path.isfile(path):
                raise WebserviceException(f"The entry script {path} does not exist: give its file "
                                          "name and the folder that holds it (source_directory).",
                                          "invalid_request")
        self.entry_script = entry_script
        self.source_directory = os.path.abspath(source_directory) if source_directory else None
        self.environment = environment
        self.runtime, self.conda_file, self.description = runtime, conda_file, description
        if conda_file and environment is None:
            from .environment import Environment

            self.environment = Environment.from_conda_specification("inference", conda_file)

    def _request(self) -> dict:
        env = self.environment
        out = {"entry_script": self.entry_script, "source_directory": self.source_directory}
        if env is not None:
            out["environment"] = env.to_spec()
        else:
            out["python"] = sys.executable  # this kernel's interpreter, as for a run
        return out


class DeploymentConfiguration:
    """Where and how a service runs (``AciWebservice.deploy_configuration``,
    ``LocalWebservice.deploy_configuration``)."""

    def __init__(self, compute_type: str, port: int | None = None, cpu_cores: float | None = None,
                 memory_gb: float | None = None, auth_enabled: bool = False, tags: dict | None = None,
                 description: str | None = None, max_request_bytes: int | None = None,
                 environment_variables: dict | None = None):
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535):
            raise WebserviceException(f"port must be an int from 1024 to 65535 (or None: a free one), not {port!r}.",
                                      "invalid_request")
        for what, value in (("cpu_cores", cpu_cores), ("memory_gb", memory_gb)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise WebserviceException(f"{what} must be a positive number, not {value!r}.", "invalid_request")
        self.compute_type, self.port, self.cpu_cores, self.memory_gb = compute_type, port, cpu_cores, memory_gb
        self.auth_enabled, self.tags, self.description = bool(auth_enabled), dict(tags or {}), description
        self.max_request_bytes = max_request_bytes
        self.environment_variables = dict(environment_variables or {})

    def _request(self) -> dict:
        return {"port": self.port, "cpu_cores": self.cpu_cores, "memory_gb": self.memory_gb,
                "auth_enabled": self.auth_enabled, "tags": {str(k): str(v) for k, v in self.tags.items()},
                "description": self.description, "max_request_bytes": self.max_request_bytes,
                "environment_variables": self.environment_variables}


class Webservice:
    """A deployed service: ``Webservice(ws, name)``, ``Webservice.list(ws)``, or what
    ``Model.deploy`` returns."""

    def __init__(self, workspace, name: str, _data: dict | None = None):
        self.workspace = workspace
        self.name = name
        self._data = _data if _data is not None else self._get()

    # -- what Azure ML's Webservice has ---------------------------------------------------
    def _get(self) -> dict:
        return self.workspace.client.get(f"/services/{quote(self.name)}")

    def update_deployment_state(self) -> None:
        self._data = self._get()

    reload = update_deployment_state

    @property
    def state(self) -> str:
        """Transitioning, Healthy, Unhealthy or Failed (read from the server now)."""
        self.update_deployment_state()
        return self._data["state"]

    @property
    def scoring_uri(self) -> str:
        return self._data["scoring_uri"]

    @property
    def swagger_uri(self):
        return None

    @property
    def auth_enabled(self) -> bool:
        return self._data["auth_enabled"]

    @property
    def compute_type(self) -> str:
        return (self._data.get("tags") or {}).get("compute_type", "Local")

    @property
    def tags(self) -> dict:
        return self._data.get("tags") or {}

    @property
    def description(self):
        return self._data.get("description")

    @property
    def models(self) -> list:
        from .model import Model

        return [Model(self.workspace, m["name"], m["version"]) for m in self._data["models"]]

    @property
    def created_time(self):
        return datetime.fromtimestamp(self._data["created_at"], timezone.utc)

    @property
    def error(self):
        return self._data.get("error")

    @property
    def run_id(self) -> str:
        """The run that serves it (experiment 'services')."""
        return self._data["run_id"]

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, state={self._data['state']!r}, scoring_uri={self.scoring_uri!r})"

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float | None = None) -> None:
        """Wait until the service is Healthy (its init() done) or Failed; raises
        WebserviceException with the end of its log when it failed."""
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        shown = 0
        while True:
            self.update_deployment_state()
            state = self._data["state"]
            if show_output:
                logs = self.get_logs()
                if len(logs) > shown:
                    print(logs[shown:], end="" if logs.endswith("\n") else "\n", flush=True)
                    shown = len(logs)
            if state != TRANSITIONING:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise WebserviceException(f"Service {self.name} is still Transitioning after {timeout_sec} s; "
                                          "its log: service.get_logs().", "timeout")
            time.sleep(POLL_S)
        if show_output:
            print(f"{self.name}: {state}" + (f" at {self.scoring_uri}" if state == HEALTHY else ""), flush=True)
        if state == FAILED:
            tail = "\n".join(self.get_logs().splitlines()[-20:])
            raise WebserviceException(f"Service {self.name} failed: {self._data.get('error')}\n"
                                      f"The end of its log (service.get_logs()):\n{tail}", "service_failed")

    def run(self, input_data):
        """Score ``input_data`` (a str, usually JSON; a dict or list is JSON-encoded); returns
        what the entry script's run() returned."""
        body = input_data if isinstance(input_data, (str, bytes)) else json.dumps(input_data)
        client = self.workspace.client
        import urllib.error
        import urllib.request

        req = urllib.request.Request(client.api_url(f"/services/{quote(self.name)}/score"),
                                     data=body.encode() if isinstance(body, str) else body, method="POST")
        req.add_header("Authorization", f"token {client.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                e = json.loads(payload)
            except ValueError:
                e = {}
            message = e.get("message") or e.get("error") or f"HTTP {err.code}"
            if e.get("traceback"):
                message += "\n" + e["traceback"]
            raise WebserviceException(f"Service {self.name} answered {err.code}: {message}",
                                      e.get("error_code", "scoring_failed"), err.code) from None
        return json.loads(payload)

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        logs = self.workspace.client.get(f"/services/{quote(self.name)}/logs")["logs"]
        lines = logs.splitlines(keepends=True)
        return "".join(lines[-num_lines:]) if num_lines else logs

    def get_keys(self) -> tuple[str, str]:
        keys = self.workspace.client.get(f"/services/{quote(self.name)}/keys")
        return keys["primary_key"], keys["secondary_key"]

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        if set_key is not None:
            raise WebserviceException("set_key is not supported: keys are generated by the server.",
                                      "invalid_request")
        self.workspace.client.post(f"/services/{quote(self.name)}/keys", {"key": key})

    def get_token(self):
        raise WebserviceException("Token auth is not supported here: use get_keys() (auth_enabled).",
                                  "invalid_request")

    def delete(self) -> None:
        """Stop the service (nothing it started is left running when this returns)."""
        self.workspace.client.delete(f"/services/{quote(self.name)}")

    def serialize(self) -> dict:
        return dict(self._data)

    @classmethod
    def list(cls, workspace, compute_type: str | None = None, model_name: str | None = None,
             tags: list | None = None, properties=None) -> list["Webservice"]:
        out = []
        for d in workspace.client.get("/services")["services"]:
            if model_name and model_name not in {m["name"] for m in d["models"]}:
                continue
            if compute_type and (d.get("tags") or {}).get("compute_type", "Local").upper() != compute_type.upper():
                continue
            if tags and not all(_tag_matches(d.get("tags") or {}, t) for t in tags):
                continue
            out.append(_typed(workspace, d))
        return out


def _tag_matches(have: dict, want) -> bool:
    if isinstance(want, (list, tuple)) and len(want) == 2:
        return have.get(want[0]) == str(want[1])
    return str(want) in have


class LocalWebservice(Webservice):
    @staticmethod
    def deploy_configuration(port: int | None = None, **kwargs) -> DeploymentConfiguration:
        return DeploymentConfiguration("Local", port=port, **kwargs)


class AciWebservice(Webservice):
    @staticmethod
    def deploy_configuration(cpu_cores: float | None = None, memory_gb: float | None = None,
                             tags: dict | None = None, properties: dict | None = None,
                             description: str | None = None, location: str | None = None,
                             auth_enabled: bool = False, ssl_enabled: bool = False,
                             enable_app_insights: bool = False, port: int | None = None,
                             **kwargs) -> DeploymentConfiguration:
        if ssl_enabled:
            raise WebserviceException("ssl_enabled is not supported: the service listens on the server's "
                                      "loopback; reach it from elsewhere through the server (service.run).",
                                      "invalid_request")
        return DeploymentConfiguration("ACI", port=port, cpu_cores=cpu_cores, memory_gb=memory_gb,
                                       auth_enabled=auth_enabled, tags=tags, description=description, **kwargs)


def _typed(workspace, data: dict) -> Webservice:
    kind = (data.get("tags") or {}).get("compute_type", "Local")
    return (AciWebservice if kind == "ACI" else LocalWebservice)(workspace, data["name"], _data=data)


def deploy(workspace, name: str, models: list, inference_config: InferenceConfig | None = None,
           deployment_config: DeploymentConfiguration | None = None, deployment_target=None,
           overwrite: bool = False, show_output: bool = False) -> Webservice:
    """``Model.deploy``: the new service, Transitioning (``wait_for_deployment`` waits for it)."""
    from .model import Model

    if not isinstance(models, (list, tuple)) or not models or not all(isinstance(m, Model) for m in models):
        raise WebserviceException("models must be a non-empty list of Model, e.g. [Model(ws, 'birds')].",
                                  "invalid_request")
    inference_config = inference_config or InferenceConfig()
    deployment_config = deployment_config or LocalWebservice.deploy_configuration()
    if not isinstance(inference_config, InferenceConfig):
        raise WebserviceException("inference_config must be an InferenceConfig.", "invalid_request")
    if not isinstance(deployment_config, DeploymentConfiguration):
        raise WebserviceException("deployment_config must come from AciWebservice.deploy_configuration() "
                                  "or LocalWebservice.deploy_configuration().", "invalid_request")
    body = {"name": name, "models": [{"name": m.name, "version": m.version} for m in models],
            **inference_config._request(), **deployment_config._request(), "overwrite": bool(overwrite)}
    body["tags"] = {**body["tags"], "compute_type": deployment_config.compute_type}
    if deployment_target is not None:
        body["compute_target"] = getattr(deployment_target, "name", deployment_target)
    body = {k: v for k, v in body.items() if v is not None}
    service = _typed(workspace, workspace.client.post("/services", body))
    if show_output:
        service.wait_for_deployment(show_output=True)
    return service
