"""Experiment: a named group of runs in a workspace."""

from __future__ import annotations

from .run import Run
from .run_config import ScriptRunConfig


class Experiment:
    def __init__(self, workspace, name: str):
        self.workspace = workspace
        self.name = name

    def __repr__(self):
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"

    def submit(self, config: ScriptRunConfig, tags: dict | None = None) -> Run:
        if not isinstance(config, ScriptRunConfig):
            raise TypeError("Experiment.submit takes a ScriptRunConfig(source_directory=..., script=...).")
        data = self.workspace.client.post("/runs", config.to_request(self.name, tags))
        return Run._from_data(self.workspace, data)

    def get_runs(self, limit: int = 100) -> list[Run]:
        runs = self.workspace.client.get("/runs", experiment=self.name, limit=limit)["runs"]
        return [Run._from_data(self.workspace, r) for r in runs]
