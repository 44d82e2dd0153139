"""Run specs (dataclasses) and run states (an enum). No behaviour hidden in dicts."""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Any


class RunState(str, enum.Enum):
    NOT_STARTED = "NotStarted"
    PREPARING = "Preparing"
    QUEUED = "Queued"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    def is_terminal(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELED)


TERMINAL_STATES = frozenset(s.value for s in RunState if s.is_terminal())


@dataclass
class NodeSpec:
    """What one node runs: argv, extra environment, working directory (relative to the run dir)."""

    rank: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "wd"
    log_name: str = "rank_0"


@dataclass
class DistributedSpec:
    """How many processes, where: ``kind`` is "pytorch" (one torchrun per node) or "mpi"."""

    kind: str = "pytorch"
    nodes: int = 1
    procs_per_node: int = 1
    backend: str | None = None  # "nccl" | "gloo" (pytorch)
    max_restarts: int = 0

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


@dataclass
class RunSpec:
    run_id: str
    experiment: str
    script: str
    arguments: list[str] = field(default_factory=list)
    compute_target: str = "local"
    python: str = "python3"
    snapshot_id: str = ""
    snapshot_store: str = ""
    env: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    nodes: list[NodeSpec] = field(default_factory=list)
    distributed: DistributedSpec | None = None
    node_gpus: list[str] = field(default_factory=list)  # CUDA_VISIBLE_DEVICES of each node
    cancel_grace_s: float = 2.0
    container: dict | None = None  # Docker target: image, python, mounts, network (docker_target)
    ray: dict | None = None  # Ray target: address, bundle shape (ray_target)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        data = dict(data)
        data["nodes"] = [NodeSpec(**n) for n in data.get("nodes", [])]
        if data.get("distributed"):
            data["distributed"] = DistributedSpec(**data["distributed"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path) -> "RunSpec":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
