"""Processes on this host: the embedded default compute target ("local")."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequest
from .api import Target
from .host import Host
from .slots import HostSlots
from .spec import DistributedSpec, Placement, RunSpec


@dataclass
class LocalConfig:
    name: str = "local"

    def validate(self) -> None:
        pass


class LocalTarget(Target):
    kind = "local"
    config_class = LocalConfig
    label = "the local target"
    builtin = True

    @classmethod
    def default(cls, name: str = "local", python: str | None = None, host: Host | None = None) -> "LocalTarget":
        return cls(LocalConfig(name), host, python)

    def make_slots(self) -> HostSlots:
        return HostSlots()

    @property
    def gpus(self) -> list[str]:
        return self.host.gpus

    def validate_job(self, dist: DistributedSpec | None) -> None:
        if dist is None:
            return
        if dist.nodes > 1:
            raise InvalidRequest(
                f"The '{self.name}' target is this one machine, a single node; a job of {dist.nodes} nodes "
                "needs a cluster: ComputeTarget.create(ws, 'cluster', ClusterCompute."
                f"provisioning_configuration(vm_size='cpu:1', max_nodes={dist.nodes})).")
        if dist.backend == "nccl" and not self.gpus:
            raise InvalidRequest("NCCL needs GPUs and this machine has none. Use "
                                 "communication_backend='Gloo'.")

    def placement(self, spec: RunSpec, indices: list[int]) -> Placement:
        # the whole host: CUDA_VISIBLE_DEVICES is left as the server has it
        return Placement(kind=self.kind, target=self.name, nodes=list(indices))

    def describe(self) -> dict:
        return self.description(vm_size="this host", cpus=self.host.cpus, gpus=len(self.gpus), max_nodes=1,
                                min_nodes=1)
