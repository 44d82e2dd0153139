"""Distributed job configurations, as in Azure ML: pass one as
``ScriptRunConfig(..., distributed_job_config=...)``. Their numbers are checked when they are
made and again when a run is submitted (a field may have been changed in between)."""

from __future__ import annotations

from dataclasses import dataclass

from .args import ArgumentError, ArgumentTypeError, whole_number

BACKENDS = ("nccl", "gloo")


@dataclass
class PyTorchConfiguration:
    """One torchrun per node; ``process_count`` processes in all (default: one per node)."""

    communication_backend: str = "Nccl"
    process_count: int | None = None
    node_count: int = 1
    max_restarts: int = 0

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        backend = self.communication_backend
        if not isinstance(backend, str) or backend.lower() not in BACKENDS:
            raise (ArgumentError if isinstance(backend, str) else ArgumentTypeError)(
                f"communication_backend {backend!r}: use 'Nccl' (GPUs) or 'Gloo' (CPUs).")
        nodes = whole_number("PyTorchConfiguration node_count", self.node_count)
        whole_number("PyTorchConfiguration max_restarts", self.max_restarts, minimum=0)
        if self.process_count is not None:
            total = whole_number("PyTorchConfiguration process_count", self.process_count)
            if total % nodes:
                raise ArgumentError(
                    f"process_count {total} is not a multiple of node_count {nodes}: every node runs "
                    f"process_count / node_count processes. Use e.g. process_count={nodes * max(1, total // nodes)} "
                    f"or node_count=1.")

    def to_request(self) -> dict:
        self.check()
        total = self.process_count or self.node_count
        return {"kind": "pytorch", "nodes": self.node_count, "procs_per_node": total // self.node_count,
                "backend": self.communication_backend.lower(), "max_restarts": self.max_restarts}


@dataclass
class MpiConfiguration:
    """mpirun (OpenMPI): ``process_count_per_node`` ranks on each of ``node_count`` nodes."""

    process_count_per_node: int = 1
    node_count: int = 1

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        whole_number("MpiConfiguration process_count_per_node", self.process_count_per_node)
        whole_number("MpiConfiguration node_count", self.node_count)

    def to_request(self) -> dict:
        self.check()
        return {"kind": "mpi", "nodes": self.node_count, "procs_per_node": self.process_count_per_node}
