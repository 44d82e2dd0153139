"""Workspace: where experiments, runs and models live (a directory owned by one server)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jupyter_ext.workspace import default_workspace_dir

from .client import TrainClient, TrainError

CONFIG_NAMES = ("config.json", os.path.join(".azureml", "config.json"))


class Workspace:
    def __init__(self, path: str | os.PathLike | None = None, name: str | None = None,
                 _client: TrainClient | None = None):
        self.path = os.path.abspath(os.path.expanduser(str(path))) if path else default_workspace_dir()
        self.name = name or os.path.basename(self.path.rstrip(os.sep))
        self._client = _client

    def __repr__(self):
        return f"Workspace(name={self.name!r}, path={self.path!r})"

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, name: str | None = None, exist_ok: bool = True) -> "Workspace":
        p = Path(os.path.expanduser(str(path))).absolute()
        if p.exists() and not exist_ok and any(p.iterdir()):
            raise TrainError(f"{p} already exists; pass exist_ok=True to use it.", "conflict")
        p.mkdir(parents=True, exist_ok=True)
        return cls(p, name)

    @classmethod
    def default(cls) -> "Workspace":
        """The workspace of ``$JUPYTER_TRAIN_WORKSPACE``, else ``~/.jupyter-train/workspace``."""
        return cls(None)

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None, _file_name: str | None = None) -> "Workspace":
        """Read ``config.json`` (or ``.azureml/config.json``) from ``path`` (default: the current
        directory) or its parents. Keys: ``workspace_path`` (relative to the file), ``workspace_name``."""
        start = Path(path or os.getcwd()).absolute()
        names = (_file_name,) if _file_name else CONFIG_NAMES
        if start.is_file():
            candidates = [start]
        else:
            candidates = [d / n for d in (start, *start.parents) for n in names]
        for cfg in candidates:
            if cfg.is_file():
                try:
                    data = json.loads(cfg.read_text())
                    ws_path = data["workspace_path"]
                except (ValueError, KeyError, TypeError):
                    raise TrainError(f"{cfg} is not a jupyter-train config: it needs a JSON object "
                                     'with "workspace_path". Write one with ws.write_config().',
                                     "invalid_config") from None
                ws_path = os.path.join(cfg.parent, os.path.expanduser(ws_path))
                return cls(ws_path, data.get("workspace_name"))
        raise TrainError(f"No config.json found in {start} or its parents. Create one with "
                         "Workspace.create(path).write_config(), or use Workspace.default().",
                         "config_not_found")

    def write_config(self, path: str | os.PathLike = ".", file_name: str = "config.json") -> str:
        target = Path(path) / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"workspace_path": self.path, "workspace_name": self.name},
                                     indent=2) + "\n")
        return str(target)

    # -- server ---------------------------------------------------------------------------
    @property
    def client(self) -> TrainClient:
        if self._client is None:
            self._client = TrainClient(self.path)
        return self._client

    # -- contents -------------------------------------------------------------------------
    @property
    def experiments(self) -> dict:
        from .experiment import Experiment

        return {e["name"]: Experiment(self, e["name"]) for e in self.client.get("/experiments")["experiments"]}

    @property
    def compute_targets(self) -> dict:
        from .compute import ComputeTarget

        return {c["name"]: ComputeTarget(self, c["name"], c) for c in self.client.get("/computes")["computes"]}

    @property
    def models(self) -> dict:
        from .model import Model

        latest = {}
        for m in self.client.get("/models")["models"]:
            latest[m["name"]] = Model(self, m["name"], _data=m)
        return latest

    def get_run(self, run_id: str):
        from .run import Run

        return Run._from_data(self, self.client.get(f"/runs/{run_id}"))
