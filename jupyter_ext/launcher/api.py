"""The Target ABC: where a run's nodes run. Every target can describe the full request it would
make (``dryrun``) before it makes it (``schedule``), so tests can check argv, env and mounts
without Docker or a GPU."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from .rundir import RunDir
from .spec import RunSpec


@dataclass
class Request:
    """Everything a target will do to start a run."""

    target: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    mounts: list[str] = field(default_factory=list)


class Target(abc.ABC):
    name: str = ""
    kind: str = ""

    @abc.abstractmethod
    def dryrun(self, spec: RunSpec, rd: RunDir) -> Request:
        """The request ``schedule`` would make, without making it."""

    @abc.abstractmethod
    def schedule(self, spec: RunSpec, rd: RunDir) -> dict:
        """Start the run; returns what is needed to find it again (pids, container ids)."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """Name, kind, capacity and state, for the compute list."""

    @abc.abstractmethod
    def cancel(self, rd: RunDir) -> bool:
        """Ask the run to stop; True if a signal was delivered to something still alive."""
