"""Model: a registered, versioned copy of files from a run (or from a local path)."""

from __future__ import annotations

import os
from urllib.parse import quote

from .client import TrainError


class Model:
    def __init__(self, workspace, name: str, version: int | None = None, _data: dict | None = None):
        self.workspace = workspace
        if _data is None:
            q = {"version": version} if version is not None else {}
            _data = workspace.client.get(f"/models/{quote(name)}", **q)
        self._data = _data
        self.name = _data["name"]
        self.version = _data["version"]
        self.tags = _data.get("tags", {})
        self.properties = _data.get("properties", {})
        self.description = _data.get("description")
        self.run_id = _data.get("run_id")

    def __repr__(self):
        return f"Model(name={self.name!r}, version={self.version}, run_id={self.run_id!r})"

    @property
    def files(self) -> list[str]:
        if "files" not in self._data:
            self._data = self.workspace.client.get(f"/models/{quote(self.name)}", version=self.version)
        return self._data["files"]

    @classmethod
    def list(cls, workspace, name: str | None = None, latest: bool = False) -> list["Model"]:
        models = [cls(workspace, m["name"], m["version"], _data=m)
                  for m in workspace.client.get("/models", **({"name": name} if name else {}))["models"]]
        if latest:
            newest = {}
            for m in models:
                newest[m.name] = m
            models = list(newest.values())
        return models

    @classmethod
    def register(cls, workspace, model_path: str, model_name: str, tags: dict | None = None,
                 properties: dict | None = None, description: str | None = None) -> "Model":
        """Register a local file or folder (not from a run)."""
        data = workspace.client.post("/models", {
            "name": model_name, "path": os.path.abspath(model_path), "tags": tags or {},
            "properties": properties or {}, "description": description})
        return cls(workspace, data["name"], data["version"], _data=data)

    def download(self, target_dir: str = ".", exist_ok: bool = False) -> str:
        """Write the model's files under ``target_dir``; returns the path of the model (its file,
        or its folder)."""
        written = []
        for rel in self.files:
            dest = os.path.join(target_dir, rel)
            if os.path.exists(dest) and not exist_ok:
                raise TrainError(f"{dest} already exists; pass exist_ok=True to overwrite it.",
                                 "conflict")
            data = self.workspace.client.request(
                "GET", f"/models/{quote(self.name)}/{self.version}/files/{quote(rel)}", raw=True)
            os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(data)
            written.append(dest)
        top = self.files[0].split("/", 1)[0] if self.files else ""
        return os.path.join(target_dir, top)
