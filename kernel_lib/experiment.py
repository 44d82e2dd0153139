"""Experiment: a named group of runs in a workspace."""

from __future__ import annotations

from . import args
from .run import Run
from .run_config import ScriptRunConfig

MAX_RUNS = 10000  # the most GET /runs answers at once (openapi.yaml)


class Experiment:
    def __init__(self, workspace, name: str):
        self.workspace = workspace
        self.name = args.name("Experiment", name)

    def __repr__(self):
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"

    def submit(self, config, tags: dict | None = None) -> Run:
        """Submit a ScriptRunConfig (a Run) or a HyperDriveConfig (a HyperDriveRun, the sweep)."""
        from .hyperdrive import HyperDriveConfig, HyperDriveRun

        if not isinstance(config, (ScriptRunConfig, HyperDriveConfig)):
            raise TypeError("Experiment.submit takes a ScriptRunConfig(source_directory=..., script=...) "
                            "or a HyperDriveConfig(...).")
        if tags is not None and not isinstance(tags, dict):
            raise args.ArgumentTypeError(f"tags must be a dict of name -> value, not {type(tags).__name__}.")
        if isinstance(config, HyperDriveConfig):
            data = self.workspace.client.post("/sweeps", config.to_request(self.name, tags))
            return HyperDriveRun._from_data(self.workspace, data)
        data = self.workspace.client.post("/runs", config.to_request(self.name, tags))
        return Run._from_data(self.workspace, data)

    def get_runs(self, limit: int = 100) -> list[Run]:
        args.whole_number("limit", limit, 1, MAX_RUNS)
        runs = self.workspace.client.get("/runs", experiment=self.name, limit=limit)["runs"]
        return [Run._from_data(self.workspace, r) for r in runs]
