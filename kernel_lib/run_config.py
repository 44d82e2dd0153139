"""ScriptRunConfig: what to run (a script in a source directory, its arguments) and where."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from . import args
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
        """Every argument checked here, before anything reaches the server."""
        self.script = args.text("script", self.script)
        if not self.script:
            raise args.ArgumentError("script is empty: give the training script's file name, e.g. 'train.py'.")
        self.arguments = _arguments(self.arguments)
        self._check_target_and_environment()
        self.environment_variables = args.environment_variables(self.environment_variables)
        if not isinstance(self.extra_files or {}, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in (self.extra_files or {}).items()):
            raise args.ArgumentTypeError("extra_files must be a dict of relative path -> text.")
        self.extra_files = dict(self.extra_files or {})
        if self.distributed_job_config is not None:
            if not callable(getattr(self.distributed_job_config, "to_request", None)):
                raise args.ArgumentTypeError(
                    "distributed_job_config must be a PyTorchConfiguration or an MpiConfiguration, "
                    f"not {type(self.distributed_job_config).__name__}.")
            self.distributed = self.distributed_job_config.to_request()
        if self.source_directory is None:
            if self.script not in self.extra_files:
                raise TrainError("Give source_directory, the folder that holds your training script.",
                                 "invalid_request")
            return
        source = args.text("source_directory", self.source_directory)
        self.source_directory = os.path.abspath(os.path.expanduser(source))
        if not os.path.isdir(self.source_directory):
            raise TrainError(f"source_directory {self.source_directory!r} does not exist. Pass the "
                             "folder that holds your training script.", "invalid_request")
        if self.script not in self.extra_files and \
                not os.path.isfile(os.path.join(self.source_directory, self.script)):
            raise TrainError(f"The script {self.script!r} is not in {self.source_directory}. Check "
                             "the name or the source_directory.", "invalid_request")

    def _check_target_and_environment(self) -> None:
        target = self.compute_target
        if not isinstance(target, str) and not isinstance(getattr(target, "name", None), str):
            raise args.ArgumentTypeError(
                f"compute_target must be a target's name (e.g. 'local') or a ComputeTarget, not "
                f"{type(target).__name__}.")
        args.name("Compute target", self.target_name)
        env = self.environment
        if env is not None and not callable(getattr(env, "to_spec", None)):
            hint = f"Environment.get(ws, {env!r})" if isinstance(env, str) else "Environment(name)"
            raise args.ArgumentTypeError(f"environment must be an Environment, e.g. {hint}, not "
                                         f"{type(env).__name__}.")

    @property
    def target_name(self) -> str:
        t = self.compute_target
        return t if isinstance(t, str) else getattr(t, "name", str(t))

    def to_request(self, experiment: str, tags: dict | None) -> dict:
        import sys

        env = self.environment
        inputs = _dataset_inputs(self.arguments)
        return {"experiment": experiment, "source_directory": self.source_directory,
                "script": self.script,
                "arguments": [str(a) if _is_input(a) else a for a in self.arguments],  # its placeholder
                **({"datasets": inputs} if inputs else {}),
                "compute_target": self.target_name,
                # no environment: the job runs with this kernel's interpreter (no build)
                **({"environment": env.to_spec()} if env is not None else {"python": sys.executable}),
                "environment_variables": dict(self.environment_variables),
                "tags": {str(k): str(v) for k, v in (tags or {}).items()},
                **({"extra_files": dict(self.extra_files)} if self.extra_files else {}),
                **({"distributed": dict(self.distributed)} if self.distributed else {})}


def _is_input(a) -> bool:
    from .data import DatasetConsumptionConfig

    return isinstance(a, DatasetConsumptionConfig)


def _dataset_inputs(arguments: list) -> list[dict]:
    """The request's ``datasets``: one per input name (an input given twice is one input; two
    different ones under one name are refused)."""
    by_name: dict[str, dict] = {}
    for a in arguments:
        if _is_input(a):
            req = a.to_request()
            if by_name.setdefault(a.name, req) != req:
                raise args.ArgumentError(f"Two dataset inputs are named {a.name!r} ({by_name[a.name]['dataset']} "
                                         f"and {req['dataset']}, or two modes): give each its own "
                                         "as_named_input(name).")
    return list(by_name.values())


def _arguments(value) -> list:
    """The script's arguments: a list or tuple of str, int and float."""
    if value is None:
        return []
    if isinstance(value, str):
        raise args.ArgumentTypeError(
            f"arguments must be a list, not a str ({value!r}): pass a list, e.g. ['--lr', '1'] or "
            f"{value!r}.split().")
    if not isinstance(value, (list, tuple)):
        raise args.ArgumentTypeError(f"arguments must be a list or tuple, e.g. ['--lr', '1'], not "
                                     f"{type(value).__name__}.")
    for i, a in enumerate(value):
        if _is_input(a):
            continue
        if isinstance(a, bool) or not isinstance(a, (str, int, float)):
            raise args.ArgumentTypeError(f"arguments[{i}] is {a!r} ({type(a).__name__}); each argument "
                                         "must be a str, int or float. Convert it, e.g. str(value).")
        if isinstance(a, float) and not math.isfinite(a):
            raise args.ArgumentError(f"arguments[{i}] is {a}: pass a finite number or a str.")
        if isinstance(a, str):
            args.text(f"arguments[{i}]", a)
    return list(value)
