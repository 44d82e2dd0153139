"""A compute target whose nodes are the nodes of a Ray cluster.

Nothing here manages a cluster: Ray does. A job's nodes come from a placement group of
``node_count`` bundles (``node_shape`` resources each, spread over distinct Ray nodes where the
cluster has enough); one agent actor per bundle starts that node's command (python or torchrun,
the same as on a cluster target) on its Ray node, with MASTER_ADDR set to the first bundle's node
address. The per-run supervisor on this host is the Ray driver: it waits on the agents, and
cancel, or a node that dies, ends every agent and removes the placement group.

``address``: "ray://host:10001" (Ray Client), "auto" or "host:6379" (an existing cluster this
host belongs to), or None: a local head that the target starts (``ray start --head`` on loopback)
and stops, for trying it on one machine.

This first version runs where the Ray nodes share this host's filesystem (one machine, or the
workspace on a shared path): the working copies are laid out in the run directory and the
nodes' processes write logs and metrics there directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from ..errors import InvalidRequest
from .cluster_target import ClusterTarget


@dataclass
class RayConfig:
    name: str
    address: str | None = None
    max_nodes: int = 4
    node_shape: dict = field(default_factory=lambda: {"CPU": 1})
    created_at: float = field(default_factory=time.time)

    def validate(self) -> None:
        if not isinstance(self.max_nodes, int) or isinstance(self.max_nodes, bool) or self.max_nodes < 1:
            raise InvalidRequest("max_nodes must be a whole number >= 1.")
        if not isinstance(self.node_shape, dict) or not self.node_shape or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and v >= 0 for k, v in self.node_shape.items()):
            raise InvalidRequest("node_shape must map Ray resource names to amounts, e.g. {'CPU': 2, 'GPU': 1}.")
        if self.address is not None and not isinstance(self.address, str):
            raise InvalidRequest("address must be 'ray://host:10001', 'auto', 'host:port' or None.")


class RayTarget(ClusterTarget):
    kind = "ray"

    def __init__(self, config: RayConfig, python: str | None = None):
        self.ray = config
        super().__init__(self.slot_config(config.name, config.max_nodes, config.created_at), gpus=[], python=python)
        self.gpus_per_node = int(config.node_shape.get("GPU", 0))
        self._head: subprocess.Popen | None = None
        self._head_address: str | None = None

    # -- the local head (address None) -----------------------------------------------------
    @property
    def address(self) -> str:
        return self.ray.address or self._start_head()

    def _start_head(self) -> str:
        if self._head_address:
            return self._head_address
        ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
        if ray is None:
            raise InvalidRequest("A local Ray head needs Ray: pip install 'ray[default]'.")
        port = _free_port()
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
        self._head = subprocess.Popen(
            [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--include-dashboard=false", "--disable-usage-stats"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        self._head_address = f"127.0.0.1:{port}"
        return self._head_address

    def stop_head(self) -> None:
        """Stop the head this target started (by its PID; never `ray stop`, which kills every Ray
        process on the machine)."""
        if self._head is not None and self._head.poll() is None:
            self._head.terminate()
            try:
                self._head.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._head.kill()
        self._head = None
        self._head_address = None

    # -- jobs ------------------------------------------------------------------------------
    def check_job(self, nodes: int, procs_per_node: int, backend: str | None) -> None:
        if nodes > self.ray.max_nodes:
            raise InvalidRequest(f"The job needs {nodes} nodes; {self.name!r} uses at most {self.ray.max_nodes}.")
        if backend == "nccl" and not self.gpus_per_node:
            raise InvalidRequest(f"NCCL needs GPUs and {self.name!r}'s node_shape has none. Use "
                                 "communication_backend='Gloo', or a node_shape with 'GPU'.")

    def check_kind(self, kind: str | None) -> None:
        if kind == "mpi":
            raise InvalidRequest(f"MPI jobs do not run on the Ray target {self.name!r} yet: use a "
                                 "PyTorchConfiguration (torchrun) job, or a cluster or Docker target for MPI.")

    def node_gpus(self, indices: list[int]) -> list[str]:
        return []  # Ray sets CUDA_VISIBLE_DEVICES for the GPUs of each bundle

    def ray_config(self) -> dict:
        return {"address": self.address, "shape": dict(self.ray.node_shape), "target": self.name}

    def describe(self) -> dict:
        d = super().describe()
        d.update(kind=self.kind, address=self.ray.address or "local head", vm_size=_shape_text(self.ray.node_shape),
                 gpus=self.gpus_per_node)
        return d

    def to_config(self) -> dict:
        return asdict(self.ray)


def _shape_text(shape: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(shape.items()))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
