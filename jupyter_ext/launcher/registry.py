"""Compute target kinds: kind -> the module of its Target and of its supervisor, imported lazily
(torchx's scheduler registry), so the server imports Docker's or Ray's code only when a target of
that kind exists, and the per-run supervisor imports only its own.

A new kind is one module with a Target subclass (and, if its nodes are not processes of this
host, a supervisor subclass), one line here, and the contract suite (tests/test_target_contract.py)
run against it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import InvalidRequest


@dataclass(frozen=True)
class Kind:
    target: str  # "module:Class" of its Target
    supervisor: str  # "module:Class" of the supervisor that runs its placements
    creatable: bool = True  # POST /computes may create one


_PKG = "jupyter_ext.launcher"
KINDS: dict[str, Kind] = {
    "local": Kind(f"{_PKG}.local_target:LocalTarget", f"{_PKG}.supervisor:Supervisor", creatable=False),
    "cluster": Kind(f"{_PKG}.cluster_target:ClusterTarget", f"{_PKG}.supervisor:Supervisor"),
    "docker": Kind(f"{_PKG}.docker_target:DockerTarget", f"{_PKG}.docker_supervisor:DockerSupervisor"),
    "ray": Kind(f"{_PKG}.ray_target:RayTarget", f"{_PKG}.ray_supervisor:RaySupervisor"),
}


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def creatable_kinds() -> list[str]:
    return [k for k, v in KINDS.items() if v.creatable]


def target_class(kind: str, creatable: bool = True):
    """The Target class of ``kind`` (with ``creatable``: one a user may create); InvalidRequest
    naming the kinds there are."""
    entry = KINDS.get(kind) if isinstance(kind, str) else None
    if entry is None or (creatable and not entry.creatable):
        others = [repr(k) for k in creatable_kinds() if k != "cluster"]
        raise InvalidRequest(f"Unknown compute kind {kind!r}: use 'cluster' (node slots of this host), "
                             f"{', '.join(others[:-1])} or {others[-1]}.")
    return _load(entry.target)


def supervisor_class(kind: str):
    """The supervisor class that runs a placement of ``kind`` (the per-run process)."""
    entry = KINDS.get(kind)
    if entry is None:
        raise ValueError(f"no supervisor for placement kind {kind!r}; known: {sorted(KINDS)}")
    return _load(entry.supervisor)


def local_target(python: str | None = None, host=None):
    """The embedded default target ("local": processes on this host)."""
    return _load(KINDS["local"].target).default(python=python, host=host)
