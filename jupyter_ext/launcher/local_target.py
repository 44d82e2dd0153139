"""Processes on this host: the embedded default compute target ("local")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ..errors import InvalidRequest
from .api import Request, Target
from .commands import supervisor_command
from .procs import is_alive, terminate_groups
from .rundir import RunDir
from .spec import RunSpec


class LocalTarget(Target):
    kind = "local"

    def __init__(self, name: str = "local", python: str | None = None):
        self.name = name
        self.python = python or sys.executable
        self.queue: list[str] = []  # runs waiting for nodes (FIFO)
        self.running: set[str] = set()
        self._gpus: list[str] | None = None

    # -- capacity: one node, this whole host ----------------------------------------------
    @property
    def gpus(self) -> list[str]:
        if self._gpus is None:
            from .cluster_target import host_gpus

            self._gpus = host_gpus()
        return self._gpus

    def allocate(self, run_id: str, count: int) -> list[int] | None:
        self.running.add(run_id)  # this host runs any number of jobs side by side
        return [0]

    def hold(self, run_id: str, indices: list[int]) -> None:
        self.running.add(run_id)

    def release(self, run_id: str) -> None:
        self.running.discard(run_id)
        if run_id in self.queue:
            self.queue.remove(run_id)

    def tick(self, now: float | None = None) -> None:
        pass

    def node_gpus(self, indices: list[int]) -> list[str]:
        return []  # the whole host: CUDA_VISIBLE_DEVICES is left as the server has it

    def check_job(self, nodes: int, procs_per_node: int, backend: str | None) -> None:
        if nodes > 1:
            raise InvalidRequest(
                f"The '{self.name}' target is this one machine, a single node; a job of {nodes} nodes "
                "needs a cluster: ComputeTarget.create(ws, 'cluster', ClusterCompute."
                f"provisioning_configuration(vm_size='cpu:1', max_nodes={nodes})).")
        if backend == "nccl" and not self.gpus:
            raise InvalidRequest("NCCL needs GPUs and this machine has none. Use "
                                 "communication_backend='Gloo'.")

    def dryrun(self, spec: RunSpec, rd: RunDir) -> Request:
        env = {"JUPYTER_TRAIN_SUPERVISOR": "1"}
        return Request(target=self.name, argv=supervisor_command(self.python, str(rd.path)),
                       env=env, cwd=str(rd.path))

    def schedule(self, spec: RunSpec, rd: RunDir) -> dict:
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

    def describe(self) -> dict:
        busy = 1 if self.running else 0
        return {"name": self.name, "kind": self.kind, "nodes": 1, "cpus": os.cpu_count() or 1,
                "gpus": len(self.gpus), "state": "busy" if busy else "ready",
                "node_counts": {"idle": 1 - busy, "busy": busy, "preparing": 0, "unusable": 0},
                "queue": list(self.queue)}

    def cancel(self, rd: RunDir) -> bool:
        info = rd.read_supervisor_info() or {}
        pid, started = info.get("pid"), info.get("start_time")
        if is_alive(pid, started):
            os.kill(pid, signal.SIGTERM)
            return True
        # The supervisor is gone: stop the process groups it left behind ourselves.
        pgids = info.get("pgids") or []
        terminate_groups(pgids, grace_s=2.0)
        return bool(pgids)
