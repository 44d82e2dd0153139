"""A compute cluster whose nodes are slots of this host.

Each node has a shape (``vm_size``: "cpu:N" or "gpu:N", or a named shape), its own working
directory and, where the host has GPUs, a disjoint set of them (CUDA_VISIBLE_DEVICES). Nodes
scale up on demand to ``max_nodes`` (a short Preparing state) and down to ``min_nodes`` after
``idle_seconds_before_scaledown``. Runs wait FIFO for nodes; the head of the queue is never
overtaken, so a big run is not starved by small ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from .api import Target
from .host import Host, parse_shape
from .slots import MAX_NODES as MAX_CLUSTER_NODES, SlotPool
from .spec import DistributedSpec, Placement, RunSpec


@dataclass
class ClusterConfig:
    name: str
    vm_size: str = "cpu:1"
    min_nodes: int = 0
    max_nodes: int = 4
    idle_seconds_before_scaledown: float = 1800
    created_at: float = field(default_factory=time.time)

    def validate(self, gpus_on_host: int, shapes: dict | None = None) -> None:
        cpus, gpus = parse_shape(self.vm_size, shapes)
        for key in ("min_nodes", "max_nodes"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidRequest(f"{key} must be a whole number >= 0.")
        if self.max_nodes > MAX_CLUSTER_NODES:
            raise InvalidRequest(f"max_nodes {self.max_nodes} is more than {MAX_CLUSTER_NODES}; ask for fewer nodes.")
        if self.max_nodes < 1 or self.min_nodes > self.max_nodes:
            raise InvalidRequest("Need 0 <= min_nodes <= max_nodes and max_nodes >= 1.")
        if gpus and gpus * self.max_nodes > gpus_on_host:
            raise InvalidRequest(
                f"vm_size {self.vm_size!r} x max_nodes {self.max_nodes} needs {gpus * self.max_nodes} "
                f"GPU(s); this host has {gpus_on_host}. Use a 'cpu:N' shape or fewer nodes.")


class ClusterTarget(Target):
    kind = "cluster"
    config_class = ClusterConfig
    label = "a cluster"

    def __init__(self, config: ClusterConfig, host: Host | None = None, python: str | None = None):
        host = host or Host()
        self.cpus, self.gpus_per_node = parse_shape(config.vm_size, host.shapes)
        super().__init__(config, host, python)

    @classmethod
    def validate_config(cls, config: ClusterConfig, host: Host) -> None:
        config.validate(len(host.gpus), host.shapes)

    def make_slots(self) -> SlotPool:
        c = self.config
        return SlotPool(c.max_nodes, c.min_nodes, c.idle_seconds_before_scaledown)

    @property
    def gpus(self) -> list[str]:
        return self.host.gpus

    @property
    def nodes(self):
        return self.slots.nodes

    def node_gpus(self, indices: list[int]) -> list[str]:
        """A disjoint set of this host's GPUs per node: node i gets GPUs i*g .. i*g+g-1."""
        g = self.gpus_per_node
        if not g or not self.gpus:
            return []
        return [",".join(self.gpus[i * g:(i + 1) * g]) for i in indices]

    def validate_job(self, dist: DistributedSpec | None) -> None:
        if dist is None:
            return
        if dist.nodes > self.config.max_nodes:
            raise InvalidRequest(f"The job needs {dist.nodes} nodes; cluster {self.name!r} has at most "
                                 f"{self.config.max_nodes}. Use fewer nodes or a bigger cluster.")
        if dist.backend == "nccl" and not (self.gpus_per_node and self.gpus):
            raise InvalidRequest(f"NCCL needs GPUs and the nodes of {self.name!r} ({self.config.vm_size}) "
                                 "have none on this host. Use communication_backend='Gloo'.")

    def placement(self, spec: RunSpec, indices: list[int]) -> Placement:
        return Placement(kind=self.kind, target=self.name, nodes=list(indices), node_gpus=self.node_gpus(indices))

    def describe(self) -> dict:
        c = self.config
        return self.description(vm_size=c.vm_size, cpus=self.cpus, gpus=self.gpus_per_node, max_nodes=c.max_nodes,
                                min_nodes=c.min_nodes, idle_s=c.idle_seconds_before_scaledown)
