"""Workspace: where experiments, runs and models live (a directory owned by one server)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from pathlib import Path

from jupyter_ext.workspace import default_workspace_dir

from .client import TrainClient, TrainError

CONFIG_NAMES = ("config.json", os.path.join(".azureml", "config.json"))
AZURE_KEYS = ("subscription_id", "resource_group", "workspace_name")
# Azure ML's rule for workspace names (3-33 characters: letters, digits, '-' and '_'), which also
# keeps a name safe as a directory name here.
AZURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$")
AZURE_MAP_FILE = "azureml-workspaces.json"  # beside the default workspace: Azure name -> path


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
        directory) or its parents. Ours holds ``workspace_path`` (relative to the file) and
        ``workspace_name``; Azure ML's (``subscription_id``, ``resource_group``,
        ``workspace_name``) opens the local workspace of that name (see :meth:`get`)."""
        start = Path(path or os.getcwd()).absolute()
        names = (_file_name,) if _file_name else CONFIG_NAMES
        if start.is_file():
            candidates = [start]
        else:
            candidates = [d / n for d in (start, *start.parents) for n in names]
        for cfg in candidates:
            if cfg.is_file():
                return cls._open_config(cfg)
        raise TrainError(f"No config.json found in {start} or its parents. Create one with "
                         "Workspace.create(path).write_config(), or use Workspace.default().",
                         "config_not_found")

    @classmethod
    def _open_config(cls, cfg: Path) -> "Workspace":
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError) as exc:
            raise TrainError(f"{cfg} is not valid JSON ({exc}). Fix it, or write a new one with "
                             "ws.write_config().", "invalid_config") from None
        if isinstance(data, dict) and isinstance(data.get("workspace_path"), str):
            ws_path = os.path.join(cfg.parent, os.path.expanduser(data["workspace_path"]))
            return cls(ws_path, data.get("workspace_name"))
        if isinstance(data, dict) and isinstance(data.get("workspace_name"), str):
            return cls.get(data["workspace_name"], data.get("subscription_id"), data.get("resource_group"))
        raise TrainError(f"{cfg} is not a workspace config: it needs a JSON object with "
                         '"workspace_path" (jupyter-train) or "workspace_name" (Azure ML). Write '
                         "one with ws.write_config().", "invalid_config")

    @classmethod
    def get(cls, name: str, subscription_id: str | None = None, resource_group: str | None = None,
            **_azure_only) -> "Workspace":
        """The local workspace standing in for the Azure ML workspace ``name`` (created if new).

        The first Azure name seen is the default workspace (the one JupyterLab's sidebar shows);
        each other name gets ``workspaces/<name>`` beside it. The mapping is kept in
        ``azureml-workspaces.json`` there, so a name always opens the same place.
        ``subscription_id`` and ``resource_group`` name Azure resources: they are accepted and
        printed, never needed."""
        if not isinstance(name, str) or not AZURE_NAME.match(name):
            raise TrainError(f"{name!r} is not a workspace name: use 3 to 33 letters, digits, '-' or "
                             "'_', starting with a letter or digit (Azure ML's rule).", "invalid_request")
        path, new = _azure_workspace_path(name)
        where = "a new local workspace" if new else "the local workspace"
        azure = ", ".join(f"{k} {v}" for k, v in (("subscription", subscription_id),
                                                  ("resource group", resource_group)) if v)
        print(f"jupyter-train: Azure ML workspace {name!r}{f' ({azure})' if azure else ''} is {where} "
              f"at {path}.", file=sys.stderr, flush=True)
        return cls.create(path, name)

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

    def get_default_datastore(self):
        """The workspace's own datastore, ``workspaceblobstore`` (a folder in the workspace)."""
        from .data import Datastore

        return Datastore.get_default(self)

    @property
    def datastores(self) -> dict:
        from .data import Datastore

        return {d.name: d for d in Datastore.list(self)}

    @property
    def datasets(self) -> dict:
        from .data import Dataset

        return Dataset.get_all(self)

    def get_run(self, run_id: str):
        from .run import Run

        return Run._from_data(self, self.client.get(f"/runs/{run_id}"))


def _azure_workspace_path(name: str) -> tuple[str, bool]:
    """(path, newly mapped) of the local workspace for the Azure ML workspace ``name``."""
    default = default_workspace_dir()
    root = os.path.dirname(default)
    os.makedirs(root, exist_ok=True)
    map_file = os.path.join(root, AZURE_MAP_FILE)
    with open(map_file + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two kernels opening new names at once
        try:
            with open(map_file) as f:
                mapping = json.load(f)
            if not isinstance(mapping, dict):
                raise ValueError("not an object")
        except FileNotFoundError:
            mapping = {}
        except ValueError:
            raise TrainError(f"{map_file} is damaged (it maps Azure ML workspace names to local "
                             "folders); fix or delete it.", "invalid_config") from None
        if isinstance(mapping.get(name), str):
            return mapping[name], False
        taken = set(mapping.values())
        mapping[name] = default if default not in taken else os.path.join(root, "workspaces", name)
        tmp = f"{map_file}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(mapping, f, indent=2)
        os.replace(tmp, map_file)
        return mapping[name], True
