"""ScriptRunConfig: what to run (a script in a source directory, its arguments) and where."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .client import TrainError


@dataclass
class ScriptRunConfig:
    source_directory: str | None
    script: str
    arguments: list = field(default_factory=list)
    compute_target: object = "local"
    environment: object = None
    environment_variables: dict = field(default_factory=dict)
    extra_files: dict = field(default_factory=dict)  # path -> text, shipped beside the source
    distributed: dict | None = None
    distributed_job_config: object = None  # PyTorchConfiguration or MpiConfiguration

    def __post_init__(self):
        if self.distributed_job_config is not None:
            self.distributed = self.distributed_job_config.to_request()
        self.arguments = list(self.arguments or [])
        for i, a in enumerate(self.arguments):
            if isinstance(a, bool) or not isinstance(a, (str, int, float)):
                raise TrainError(f"arguments[{i}] is {a!r} ({type(a).__name__}); each argument must "
                                 "be a str, int or float. Convert it, e.g. str(value).",
                                 "invalid_request")
        if self.source_directory is None:
            if self.script not in self.extra_files:
                raise TrainError("Give source_directory, the folder that holds your training script.",
                                 "invalid_request")
            return
        self.source_directory = os.path.abspath(os.path.expanduser(str(self.source_directory)))
        if not os.path.isdir(self.source_directory):
            raise TrainError(f"source_directory {self.source_directory!r} does not exist. Pass the "
                             "folder that holds your training script.", "invalid_request")
        if self.script not in self.extra_files and \
                not os.path.isfile(os.path.join(self.source_directory, self.script)):
            raise TrainError(f"The script {self.script!r} is not in {self.source_directory}. Check "
                             "the name or the source_directory.", "invalid_request")

    @property
    def target_name(self) -> str:
        t = self.compute_target
        return t if isinstance(t, str) else getattr(t, "name", str(t))

    def to_request(self, experiment: str, tags: dict | None) -> dict:
        import sys

        env = self.environment
        return {"experiment": experiment, "source_directory": self.source_directory,
                "script": self.script, "arguments": self.arguments,
                "compute_target": self.target_name,
                # no environment: the job runs with this kernel's interpreter (no build)
                **({"environment": env.to_spec()} if env is not None else {"python": sys.executable}),
                "environment_variables": dict(self.environment_variables),
                "tags": {str(k): str(v) for k, v in (tags or {}).items()},
                **({"extra_files": dict(self.extra_files)} if self.extra_files else {}),
                **({"distributed": dict(self.distributed)} if self.distributed else {})}
