"""The Target ABC: everything the run manager may call on a compute target.

A target says where a run's nodes run; the command builders (``commands``) say what they run.
The manager drives every target through the same template:

    target = registry.create(kind, body, host)       # from_config: checks the body, no I/O
    target.validate_job(dist)                        # refuse a job it can never run
    plan = target.plan_environment(env, python)      # the interpreter, and what to prepare
    target.prepare(spec, plan, ctx)                  # build the venv or image (a thread)
    indices = target.allocate(run_id, n)             # wait FIFO in target.queue
    target.place(spec, indices)                      # spec.placement, then spec.nodes
    target.dryrun(spec, rd) / target.schedule(...)   # the full request; then make it
    target.cancel(rd) / target.reap_orphan(rd, say)  # stop it; end what a lost supervisor left
    target.describe() / target.close()

Every target starts one supervisor process per run on this host (``schedule``); the supervisor
picks its class from ``spec.placement.kind`` (``registry.supervisor_class``) and runs the nodes
as processes, containers or Ray actors. So ``dryrun`` can return the whole request, per node,
before anything starts, and tests check it without Docker, Ray or a GPU.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from .. import contract
from ..errors import InvalidRequest
from .commands import build_nodes, job_env, supervisor_command
from .host import Host
from .procs import end_run_processes, is_alive, kill_ranks, terminate_groups
from .rundir import RunDir
from .slots import Slots
from .spec import DistributedSpec, Placement, RunSpec


@dataclass
class NodeRequest:
    """What one node of a run runs, and where."""

    rank: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log: str  # logs/<log>.txt
    where: dict[str, Any] = field(default_factory=dict)  # container or Ray options, GPUs


@dataclass
class Request:
    """Everything a target will do to start a run: the supervisor it starts on this host, and
    the request for each node that the supervisor then makes."""

    target: str
    kind: str
    argv: list[str]  # the supervisor's command
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    nodes: list[NodeRequest] = field(default_factory=list)
    placement: dict[str, Any] = field(default_factory=dict)


@dataclass
class EnvPlan:
    """How a run's environment gets ready on a target (``plan_environment``)."""

    python: str  # argv[0] of the run's nodes
    build: str | None = None  # "venv" (a cached uv build on this host), "image", or None
    env: Any = None  # the EnvironmentSpec to prepare (a target may fill in its default image)
    key: str | None = None  # what the run's properties show as the build's key
    remote_packages: list[str] | None = None  # pip requirements the nodes install themselves

    @property
    def what(self) -> str:
        return "its image" if self.build == "image" else "its environment"


@dataclass
class PrepareContext:
    envs: Any  # environments.EnvCache of the workspace
    log_path: Any  # logs/prepare.txt of the run

    def say(self, text: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(text)


class Target(abc.ABC):
    kind: ClassVar[str] = ""
    config_class: ClassVar[type] = type(None)
    label: ClassVar[str] = "a compute target"  # for messages: "Unknown field(s) ... for {label}"
    builtin: ClassVar[bool] = False  # made by the server, never created or deleted by a user

    def __init__(self, config, host: Host | None = None, python: str | None = None):
        self.config = config
        self.name: str = config.name
        self.host = host or Host()
        self.python = python or sys.executable  # what the supervisor runs with
        self.slots: Slots = self.make_slots()

    # -- configuration ---------------------------------------------------------------------
    @abc.abstractmethod
    def make_slots(self) -> Slots:
        """The node slots this target's runs allocate (composed, not inherited)."""

    @classmethod
    def from_config(cls, body: dict, host: Host | None = None) -> "Target":
        """A new target from a user's request body (``name`` and the config's fields, plus
        ``kind``): unknown fields and bad values are refused here, before anything is saved."""
        fields = {f.name for f in dataclasses.fields(cls.config_class)} - {"name", "created_at"}
        unknown = set(body) - fields - {"name", "kind"}
        if unknown:
            raise InvalidRequest(f"Unknown field(s) {sorted(unknown)} for {cls.label}; allowed: {sorted(fields)}.")
        config = cls.config_class(name=body["name"], **{k: v for k, v in body.items()
                                                         if k in fields and v is not None})
        cls.validate_config(config, host or Host())
        target = cls(config, host)
        why = target.check_reachable()
        if why:
            raise InvalidRequest(why)
        return target

    @classmethod
    def from_stored(cls, config: dict, host: Host | None = None) -> "Target":
        """The target as ``to_config`` saved it (a server restart)."""
        return cls(cls.config_class(**config), host)

    @classmethod
    def validate_config(cls, config, host: Host) -> None:
        config.validate()

    def to_config(self) -> dict:
        return dataclasses.asdict(self.config)

    def check_reachable(self) -> str | None:
        """None when the engine behind the target answers, else why not and what to do."""
        return None

    # -- jobs ------------------------------------------------------------------------------
    def validate_job(self, dist: DistributedSpec | None) -> None:
        """Refuse a job this target can never run (too many nodes, NCCL without GPUs, ...)."""

    def plan_environment(self, env, python: str | None) -> EnvPlan:
        """On this host: a built environment (venv, prepared before the run queues), an
        environment's existing interpreter, the request's ``python``, or the server's."""
        if env is not None and env.needs_build:
            return EnvPlan(python=sys.executable, build="venv", env=env, key=env.build_key())
        interpreter = (env.interpreter() if env is not None else None) or python or sys.executable
        return EnvPlan(python=check_host_python(interpreter), env=env)

    def prepare(self, spec: RunSpec, plan: EnvPlan, ctx: PrepareContext) -> None:
        """Make ``plan`` ready (in a thread; may take minutes, progress in ``ctx.say``) and
        record the result in ``spec``. Raises environments.BuildFailed with what to do."""
        if plan.build == "venv":
            spec.python = ctx.envs.ensure(plan.env, ctx.log_path)

    def mount_refused(self) -> str | None:
        """Why this target's nodes cannot read a folder of this host as it is (a dataset's
        mount: they then get a download); None: they can (processes on this host)."""
        return None

    @abc.abstractmethod
    def placement(self, spec: RunSpec, indices: list[int]) -> Placement:
        """Where the nodes on slots ``indices`` run (may raise InvalidRequest: the run fails)."""

    def place(self, spec: RunSpec, indices: list[int]) -> None:
        """Decide where ``spec`` runs, then what each node runs (the final argv)."""
        spec.placement = self.placement(spec, indices)
        spec.nodes = build_nodes(spec)

    def node_where(self, spec: RunSpec, i: int) -> dict[str, Any]:
        """Target-specific options of node ``i`` (container, Ray bundle) for ``dryrun``."""
        gpus = spec.node_gpus[i] if i < len(spec.node_gpus) else None
        return {"host": "this host", **({"CUDA_VISIBLE_DEVICES": gpus} if gpus else {})}

    def node_env(self, spec: RunSpec, node, rd: RunDir) -> dict[str, str]:
        """The job's environment of ``node`` (its variables, the node's, the contract's); on
        this host it is laid over the server's own (less its credentials)."""
        return job_env(spec, node, rd.path)

    def dryrun(self, spec: RunSpec, rd: RunDir) -> Request:
        """The request ``schedule`` would make for a placed ``spec``, without making it."""
        if spec.placement is None:
            raise ValueError("dryrun needs a placed spec: call place(spec, indices) first")
        nodes = [NodeRequest(rank=n.rank, argv=list(n.argv), env=self.node_env(spec, n, rd),
                             cwd=str(rd.path / n.cwd), log=n.log_name, where=self.node_where(spec, i))
                 for i, n in enumerate(spec.nodes)]
        return Request(target=self.name, kind=self.kind, argv=supervisor_command(self.python, str(rd.path)),
                       env={contract.ENV_SUPERVISOR: "1"}, cwd=str(rd.path), nodes=nodes,
                       placement=dataclasses.asdict(spec.placement))

    def schedule(self, spec: RunSpec, rd: RunDir) -> dict:
        """Start the run's supervisor; returns what finds it again (``_popen``: the process)."""
        req = self.dryrun(spec, rd)
        env = dict(os.environ)
        env.pop("JUPYTER_TOKEN", None)  # the server's credential is not the job's business
        env.update(req.env)
        # The supervisor must outlive the server and the kernel: its own session, no inherited
        # stdio (the server's terminal may go away), output of its own into logs/supervisor.txt.
        with open(rd.logs / "supervisor.txt", "ab") as log:
            proc = subprocess.Popen(req.argv, cwd=req.cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
        return {"supervisor_pid": proc.pid, "_popen": proc}

    def cancel(self, rd: RunDir) -> bool:
        """Ask the run to stop; True if a signal reached something still alive. The supervisor
        stops its nodes itself; without one, what it left is stopped from here."""
        info = rd.read_supervisor_info() or {}
        if is_alive(info.get("pid"), info.get("start_time")):
            os.kill(info["pid"], signal.SIGTERM)
            return True
        return self.stop_without_supervisor(rd, info)

    def stop_without_supervisor(self, rd: RunDir, info: dict) -> bool:
        pgids = info.get("pgids") or []
        terminate_groups(pgids, grace_s=2.0)
        return bool(pgids)

    def reap_orphan(self, rd: RunDir, say: Callable[[str], None]) -> None:
        """The run's supervisor died without a result: end every process of the run, however
        it detached (their environment names the run directory), and its ranks."""
        info = rd.read_supervisor_info() or {}
        end_run_processes(rd.path, 2.0, groups=info.get("pgids") or [], say=say)
        kill_ranks(rd)

    # -- slots (the manager's queue): through these, so a target hears of every change ------
    @property
    def queue(self) -> list[str]:
        return self.slots.queue

    def allocate(self, run_id: str, count: int) -> list[int] | None:
        got = self.slots.allocate(run_id, count)
        if got is not None:
            self.slots_changed()
        return got

    def hold(self, run_id: str, indices: list[int]) -> None:
        self.slots.hold(run_id, indices)
        self.slots_changed()

    def release(self, run_id: str) -> None:
        self.slots.release(run_id)
        self.slots_changed()

    def slots_changed(self) -> None:
        """Nodes were taken or freed (a Ray target tells the autoscaler)."""

    def tick(self) -> None:
        self.slots.tick()

    # -- status ----------------------------------------------------------------------------
    @abc.abstractmethod
    def describe(self) -> dict:
        """Name, kind, capacity and state, for the compute list (``description`` + its own)."""

    def description(self, *, vm_size: str, cpus: int, gpus: int, max_nodes: int, min_nodes: int = 0,
                    idle_s: float = 0, **extra) -> dict:
        """The keys every target's ``describe`` has (openapi.yaml's Compute), and ``extra``."""
        counts = self.slots.counts()
        state = "busy" if counts["busy"] else ("scaling" if counts["preparing"] else "ready")
        return {"name": self.name, "kind": self.kind, "state": state, "vm_size": vm_size, "cpus": cpus,
                "gpus": gpus, "nodes": self.slots.node_count(), "min_nodes": min_nodes, "max_nodes": max_nodes,
                "idle_seconds_before_scaledown": idle_s, "node_counts": counts, "queue": list(self.queue),
                **extra}

    def close(self) -> None:
        """The server stops, or the target is deleted: stop what the target itself started."""


def check_host_python(python: str) -> str:
    if not (os.path.isabs(python) and os.access(python, os.X_OK)):
        raise InvalidRequest(f"The Python interpreter {python!r} is not an executable absolute "
                             "path on the server's machine.")
    return python
