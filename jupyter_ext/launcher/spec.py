"""Run specs (dataclasses) and run states (an enum). No behaviour hidden in dicts."""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Any

from .. import contract


class RunState(str, enum.Enum):
    NOT_STARTED = contract.NOT_STARTED
    PREPARING = contract.PREPARING
    QUEUED = contract.QUEUED
    STARTING = contract.STARTING
    RUNNING = contract.RUNNING
    FINALIZING = contract.FINALIZING
    CANCEL_REQUESTED = contract.CANCEL_REQUESTED
    COMPLETED = contract.COMPLETED
    FAILED = contract.FAILED
    CANCELED = contract.CANCELED

    def is_terminal(self) -> bool:
        return self.value in contract.TERMINAL_STATES


if tuple(RunState) != contract.RUN_STATES:  # a state added to one and not the other
    raise ImportError("launcher.spec.RunState and jupyter_ext.contract.RUN_STATES differ: make them one")
TERMINAL_STATES = contract.TERMINAL_STATES


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
class Placement:
    """Where a run's nodes run, as its target decided when it allocated them. ``kind`` names the
    supervisor that runs them (launcher.registry); each kind with more to say has its own class."""

    kind: str = "local"
    target: str = "local"
    nodes: list[int] = field(default_factory=lambda: [0])  # the target's slot indices
    node_gpus: list[str] = field(default_factory=list)  # CUDA_VISIBLE_DEVICES of each node

    @staticmethod
    def from_dict(data: dict | None) -> "Placement | None":
        if not data:
            return None
        cls = _PLACEMENTS.get(data.get("kind"), Placement)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class DockerPlacement(Placement):
    """Nodes are containers of ``image`` on the engine at ``base_url``."""

    kind: str = "docker"
    base_url: str | None = None  # the engine (resolved when placed: DOCKER_HOST or the local socket)
    image: str = ""
    mounts: dict[str, str] = field(default_factory=dict)  # host path -> "container path[:ro]"
    network: str = "host"
    shm_size: str | None = None
    pythonpath: str = ""  # the in-job payload and the environment's packages, inside the image
    shared: bool = True  # the engine sees this host's files at the same paths


@dataclass
class RayPlacement(Placement):
    """Nodes are bundles of a placement group on the Ray cluster at ``address``."""

    kind: str = "ray"
    address: str = ""
    shape: dict[str, float] = field(default_factory=dict)  # Ray resources of one bundle
    shared: bool | None = None  # None: each node finds out whether it sees the run directory
    packages: list[str] | None = None  # pip requirements Ray builds on nodes that need them


_PLACEMENTS = {"docker": DockerPlacement, "ray": RayPlacement}


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
    cancel_grace_s: float = 2.0
    image: str | None = None  # the container image its nodes run in (set by a target's prepare)
    remote_packages: list[str] | None = None  # pip requirements the nodes install themselves (the
    # environment plan's, kept until the target places the run: RayPlacement.packages)
    placement: Placement | None = None  # where its nodes run (set when the nodes are allocated)
    datasets: list[dict] = field(default_factory=list)  # its dataset inputs (datainputs.summary;
    # their files are in the run directory's datasets.json), set when they are prepared

    @property
    def node_gpus(self) -> list[str]:
        return self.placement.node_gpus if self.placement else []

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        data = dict(data)
        data["nodes"] = [NodeSpec(**n) for n in data.get("nodes", [])]
        if data.get("distributed"):
            data["distributed"] = DistributedSpec(**data["distributed"])
        data["placement"] = Placement.from_dict(data.get("placement"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path) -> "RunSpec":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
