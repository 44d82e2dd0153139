"""Model: a registered, versioned copy of files from a run or from a local path, as in Azure ML
SDK v1 (``Model.register``, ``run.register_model``, ``Model.list``, ``model.download``,
``model.delete``, ``Model.get_model_path``). Each version keeps its lineage (run id, experiment)
and a checksum; identical files are stored once in the workspace."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from urllib.parse import quote

from .client import TrainError


class Model:
    """One version of a registered model. ``Model(ws, name)`` is the latest version,
    ``Model(ws, name, version=2)`` a given one."""

    def __init__(self, workspace, name: str | None = None, version: int | None = None,
                 id: str | None = None, _data: dict | None = None):
        self.workspace = workspace
        if _data is None:
            if id:  # Azure ML's "name:version"
                name, _, v = id.partition(":")
                version = int(v) if v else version
            if not name:
                raise TrainError("Model(ws, name) needs the model's name (or id='name:version').",
                                 "invalid_request")
            path = f"/models/{quote(name)}" + (f"/{int(version)}" if version is not None else "")
            _data = workspace.client.get(path)
        self._set(_data)
        self.skipped = _data.get("skipped") or []  # a registration's: links it did not follow
        if self.skipped:
            import warnings

            warnings.warn(f"{self.id}: {len(self.skipped)} path(s) not stored, never read: "
                          + "; ".join(f"{s['name']} ({s['reason']})" for s in self.skipped[:5]),
                          stacklevel=3)

    def _set(self, data: dict) -> None:
        self._data = data
        self.name = data["name"]
        self.version = data["version"]
        self.id = f"{self.name}:{self.version}"
        self.tags = data.get("tags", {})
        self.properties = data.get("properties", {})
        self.description = data.get("description")
        self.run_id = data.get("run_id")
        self.experiment_name = data.get("experiment")
        self.model_framework = data.get("framework")
        self.model_framework_version = data.get("framework_version")
        self.checksum = data.get("checksum")
        self.size = data.get("size")
        self.created_time = datetime.fromtimestamp(data["created_at"], timezone.utc) if data.get("created_at") else None

    def __repr__(self):
        return (f"Model(name={self.name!r}, version={self.version}, run_id={self.run_id!r}, "
                f"framework={self.model_framework!r})")

    def serialize(self) -> dict:
        return dict(self._data)

    @property
    def files(self) -> list[str]:
        if "files" not in self._data:
            self._data = self.workspace.client.get(f"/models/{quote(self.name)}/{self.version}")
        return self._data["files"]

    # -- the registry ---------------------------------------------------------------------
    @classmethod
    def list(cls, workspace, name: str | None = None, tags: list | None = None,
             properties: list | None = None, latest: bool = False) -> list["Model"]:
        """Every version (or with ``latest``, the newest of each name). ``tags``/``properties``:
        a list whose items are a key (the model has it) or a [key, value] pair; all must hold."""
        query = {"name": name, "tag": _filters(tags, "tags"), "property": _filters(properties, "properties")}
        models = [cls(workspace, _data=m) for m in workspace.client.get("/models", **query)["models"]]
        if latest:
            newest = {}
            for m in models:
                newest[m.name] = m
            models = list(newest.values())
        return models

    @classmethod
    def register(cls, workspace, model_path: str, model_name: str, tags: dict | None = None,
                 properties: dict | None = None, description: str | None = None,
                 model_framework: str | None = None, model_framework_version: str | None = None,
                 **_azure_only) -> "Model":
        """Register a local file or folder as a new version of ``model_name``."""
        path = os.path.abspath(os.path.expanduser(str(model_path)))
        if not os.path.exists(path):
            raise TrainError(f"model_path {model_path!r} does not exist. Pass the file or folder "
                             "to register.", "not_found")
        data = workspace.client.post("/models", {
            "name": model_name, "path": path, "tags": tags or {}, "properties": properties or {},
            "description": description, "model_framework": model_framework,
            "model_framework_version": model_framework_version})
        return cls(workspace, _data=data)

    @staticmethod
    def deploy(workspace, name: str, models: list, inference_config=None, deployment_config=None,
               deployment_target=None, overwrite: bool = False, show_output: bool = False):
        """Deploy ``models`` as the web service ``name`` (kernel_lib.webservice); returns it,
        Transitioning: ``service.wait_for_deployment(show_output=True)``."""
        from .webservice import deploy

        return deploy(workspace, name, models, inference_config, deployment_config, deployment_target,
                      overwrite, show_output)

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace=None) -> str:
        """The model's file or folder: inside a deployed service, its copy there (under
        AZUREML_MODEL_DIR); elsewhere, the workspace's (read it, never write it)."""
        from jupyter_ext.serving import model_path

        inside = model_path(model_name, version)
        if inside is not None:
            return inside
        from .workspace import Workspace

        ws = _workspace or Workspace.default()
        m = Model(ws, model_name, version)
        return os.path.join(ws.path, "models", m.name, str(m.version), m._data["path"])

    def download(self, target_dir: str = ".", exist_ok: bool = False) -> str:
        """Write the model's files under ``target_dir``; returns the path of the model (its file,
        or its folder). Nothing is written when a file would be overwritten without ``exist_ok``."""
        files = self.files
        if not exist_ok:
            clash = [rel for rel in files if os.path.exists(os.path.join(target_dir, rel))]
            if clash:
                raise TrainError(f"{os.path.join(target_dir, clash[0])} already exists; pass "
                                 "exist_ok=True to overwrite it, or another target_dir.", "conflict")
        for rel in files:
            dest = os.path.join(target_dir, rel)
            data = self.workspace.client.request(
                "GET", f"/models/{quote(self.name)}/{self.version}/files/{quote(rel)}", raw=True)
            os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
            tmp = f"{dest}.partial"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        top = files[0].split("/", 1)[0] if files else ""
        return os.path.join(target_dir, top)

    # -- changing a version -----------------------------------------------------------------
    def _patch(self, body: dict) -> "Model":
        self._set(self.workspace.client.patch(f"/models/{quote(self.name)}/{self.version}", body))
        return self

    def add_tags(self, tags: dict) -> None:
        """Add or change tags of this version (e.g. {"stage": "production"})."""
        self._patch({"tags": tags})

    def remove_tags(self, tags: list) -> None:
        self._patch({"remove_tags": [str(t) for t in tags]})

    def add_properties(self, properties: dict) -> None:
        """Add properties; a property already set cannot change (use a tag for that)."""
        self._patch({"properties": properties})

    def update(self, tags: dict | None = None, description: str | None = None) -> None:
        """Azure ML's update: replace the tags (when given) and/or set the description."""
        body = {}
        if tags is not None:
            body["tags"] = tags
            body["remove_tags"] = [k for k in self.tags if k not in tags]
        if description is not None:
            body["description"] = description
        if body:
            self._patch(body)

    def delete(self) -> int:
        """Delete this version from the registry; returns the bytes freed (files another version
        shares stay). Its version number is not reused."""
        return self.workspace.client.delete(f"/models/{quote(self.name)}/{self.version}")["freed_bytes"]


def _filters(items, what: str) -> list[str] | None:
    if not items:
        return None
    if isinstance(items, dict):
        items = list(items.items())
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            out.append(f"{item[0]}={item[1]}")
        else:
            raise TrainError(f"{what} filter {item!r}: use a key, or a [key, value] pair.", "invalid_request")
    return out
