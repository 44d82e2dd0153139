"""Distributed job configurations, as in Azure ML: pass one as
``ScriptRunConfig(..., distributed_job_config=...)``."""

from __future__ import annotations

from dataclasses import dataclass

from .client import TrainError


@dataclass
class PyTorchConfiguration:
    """One torchrun per node; ``process_count`` processes in all (default: one per node)."""

    communication_backend: str = "Nccl"
    process_count: int | None = None
    node_count: int = 1
    max_restarts: int = 0

    def to_request(self) -> dict:
        backend = (self.communication_backend or "").lower()
        if backend not in ("nccl", "gloo"):
            raise TrainError(f"communication_backend {self.communication_backend!r}: use 'Nccl' or 'Gloo'.",
                             "invalid_request")
        total = self.process_count or self.node_count
        if total % self.node_count:
            raise TrainError(f"process_count {total} is not a multiple of node_count {self.node_count}.",
                             "invalid_request")
        return {"kind": "pytorch", "nodes": self.node_count, "procs_per_node": total // self.node_count,
                "backend": backend, "max_restarts": self.max_restarts}


@dataclass
class MpiConfiguration:
    """mpirun (OpenMPI): ``process_count_per_node`` ranks on each of ``node_count`` nodes."""

    process_count_per_node: int = 1
    node_count: int = 1

    def to_request(self) -> dict:
        return {"kind": "mpi", "nodes": self.node_count, "procs_per_node": self.process_count_per_node}
