"""Facts about this host that targets share: its GPUs, the named node shapes, free ports.

One place, so that every target reads the same facts the same way (and a test can give a target
a host with four GPUs without a GPU on the machine: ``Host(gpus=["0", "1", "2", "3"])``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from .procs import free_port  # noqa: F401  (a host fact; procs keeps it for the Ray agent)

NAMED_SHAPES = {"cpu-small": (1, 0), "cpu": (2, 0), "cpu-large": (4, 0), "gpu-small": (4, 1), "gpu": (8, 1),
                "gpu-x8": (32, 8)}
MAX_SHAPE_UNITS = 4096  # cores or GPUs of one node: beyond any machine


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


@dataclass
class Host:
    """This host as targets see it. ``gpus`` None: looked up (nvidia-smi) when first asked."""

    gpus_given: list[str] | None = None
    shapes: dict = field(default_factory=dict)  # c.TrainApp.node_shapes: name -> (cpus, gpus)
    _gpus: list[str] | None = field(default=None, repr=False)

    @property
    def gpus(self) -> list[str]:
        if self._gpus is None:
            self._gpus = list(self.gpus_given) if self.gpus_given is not None else host_gpus()
        return self._gpus

    @property
    def cpus(self) -> int:
        return os.cpu_count() or 1

    def shape(self, vm_size: str) -> tuple[int, int]:
        return parse_shape(vm_size, self.shapes)
