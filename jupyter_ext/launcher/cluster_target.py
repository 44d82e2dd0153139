"""A compute cluster whose nodes are slots of this host.

Each node has a shape (``vm_size``: "cpu:N" or "gpu:N", or a named shape), its own working
directory and, where the host has GPUs, a disjoint set of them (CUDA_VISIBLE_DEVICES). Nodes
scale up on demand to ``max_nodes`` (a short Preparing state) and down to ``min_nodes`` after
``idle_seconds_before_scaledown``. Runs wait FIFO for nodes; the head of the queue is never
overtaken, so a big run is not starved by small ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field

from ..errors import InvalidRequest
from .local_target import LocalTarget

NAMED_SHAPES = {"cpu-small": (1, 0), "cpu": (2, 0), "cpu-large": (4, 0), "gpu-small": (4, 1), "gpu": (8, 1),
                "gpu-x8": (32, 8)}
MAX_SHAPE_UNITS = 4096  # cores or GPUs of one node: beyond any machine
MAX_CLUSTER_NODES = 10_000  # nodes of one cluster (its slots are listed one by one)
PREPARE_S = 0.2  # a slot on this host is ready almost at once; the state is still shown


def parse_shape(vm_size: str, shapes: dict | None = None) -> tuple[int, int]:
    """(cpus, gpus) of a node: "cpu:2", "gpu:1" (cpus default to the host's), or a named shape
    (built in, or from c.TrainApp.node_shapes)."""
    named = {**NAMED_SHAPES, **(shapes or {})}
    if vm_size in named:
        return tuple(named[vm_size])
    m = re.fullmatch(r"(cpu|gpu):(\d+)", vm_size or "")
    if not m or int(m.group(2)) < 1:
        raise InvalidRequest(f"vm_size {vm_size!r} is not a node shape: use 'cpu:N' (N cores), "
                             f"'gpu:N' (N GPUs) or one of {', '.join(sorted(named))}.")
    n = int(m.group(2))
    if n > MAX_SHAPE_UNITS:
        raise InvalidRequest(f"vm_size {vm_size!r} asks for {n} {m.group(1).upper()}s per node; the most "
                             f"is {MAX_SHAPE_UNITS}. Use a smaller shape.")
    return (n, 0) if m.group(1) == "cpu" else (max(1, (os.cpu_count() or 1)), n)


def host_gpus() -> list[str]:
    """Indices of this host's NVIDIA GPUs (empty without nvidia-smi or GPUs)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().isdigit()]


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


@dataclass
class _Node:
    index: int
    state: str = "preparing"  # preparing | idle | busy
    run_id: str | None = None
    since: float = field(default_factory=time.time)


class ClusterTarget(LocalTarget):
    kind = "cluster"

    @staticmethod
    def slot_config(name: str, max_nodes: int, created_at: float) -> ClusterConfig:
        """Node accounting only (nodes ready at once, released when idle): for targets whose nodes
        live elsewhere (containers, Ray nodes)."""
        return ClusterConfig(name=name, vm_size="cpu:1", min_nodes=0, max_nodes=max_nodes,
                             idle_seconds_before_scaledown=0, created_at=created_at)

    def __init__(self, config: ClusterConfig, gpus: list[str] | None = None, python: str | None = None,
                 shapes: dict | None = None):
        super().__init__(config.name, python)
        self.config = config
        self.cpus, self.gpus_per_node = parse_shape(config.vm_size, shapes)
        self._gpus = list(gpus) if gpus is not None else None  # the host's, looked up if not given
        self.nodes: dict[int, _Node] = {}
        self.queue: list[str] = []  # run ids waiting, FIFO
        self._grow(config.min_nodes)

    # -- capacity ---------------------------------------------------------------------------
    def _grow(self, n: int) -> None:
        free = [i for i in range(self.config.max_nodes) if i not in self.nodes]
        for i in free[:n]:
            self.nodes[i] = _Node(i)

    def tick(self, now: float | None = None) -> None:
        """Finish scale-ups, scale idle nodes down to min_nodes after the idle time."""
        now = now or time.time()
        for node in self.nodes.values():
            if node.state == "preparing" and now - node.since >= PREPARE_S:
                node.state, node.since = "idle", now
        idle = sorted((n for n in self.nodes.values() if n.state == "idle"), key=lambda n: -n.index)
        excess = len(self.nodes) - self.config.min_nodes
        for node in idle:
            if excess <= 0:
                break
            if now - node.since >= self.config.idle_seconds_before_scaledown:
                del self.nodes[node.index]
                excess -= 1

    def allocate(self, run_id: str, count: int) -> list[int] | None:
        """Nodes for ``run_id`` if ``count`` are free (scaling up as needed), else None."""
        self.tick()
        usable = [n for n in self.nodes.values() if n.state in ("idle", "preparing") and n.run_id is None]
        if len(usable) < count:
            self._grow(count - len(usable))
            usable = [n for n in self.nodes.values() if n.state in ("idle", "preparing") and n.run_id is None]
            if len(usable) < count:
                return None
        chosen = sorted(usable, key=lambda n: n.index)[:count]
        for n in chosen:
            n.state, n.run_id, n.since = "busy", run_id, time.time()
        return [n.index for n in chosen]

    def hold(self, run_id: str, indices: list[int]) -> None:
        """Re-attach: ``run_id`` (still running after a server restart) holds these nodes."""
        for i in indices:
            self.nodes[i] = _Node(i, "busy", run_id)

    def release(self, run_id: str) -> None:
        now = time.time()
        for n in self.nodes.values():
            if n.run_id == run_id:
                n.state, n.run_id, n.since = "idle", None, now
        if run_id in self.queue:
            self.queue.remove(run_id)

    def node_gpus(self, indices: list[int]) -> list[str]:
        g = self.gpus_per_node
        if not g or not self.gpus:
            return []
        return [",".join(self.gpus[i * g:(i + 1) * g]) for i in indices]

    def check_job(self, nodes: int, procs_per_node: int, backend: str | None) -> None:
        if nodes > self.config.max_nodes:
            raise InvalidRequest(f"The job needs {nodes} nodes; cluster {self.name!r} has at most "
                                 f"{self.config.max_nodes}. Use fewer nodes or a bigger cluster.")
        if backend == "nccl" and not (self.gpus_per_node and self.gpus):
            raise InvalidRequest(f"NCCL needs GPUs and the nodes of {self.name!r} ({self.config.vm_size}) "
                                 "have none on this host. Use communication_backend='Gloo'.")

    def describe(self) -> dict:
        self.tick()
        counts = {"idle": 0, "busy": 0, "preparing": 0, "unusable": 0}
        for n in self.nodes.values():
            counts[n.state] += 1
        return {"name": self.name, "kind": self.kind, "vm_size": self.config.vm_size,
                "cpus": self.cpus, "gpus": self.gpus_per_node, "nodes": len(self.nodes),
                "min_nodes": self.config.min_nodes, "max_nodes": self.config.max_nodes,
                "idle_seconds_before_scaledown": self.config.idle_seconds_before_scaledown,
                "node_counts": counts, "queue": list(self.queue),
                "state": "busy" if counts["busy"] else ("scaling" if counts["preparing"] else "ready")}

    def to_config(self) -> dict:
        return asdict(self.config)
