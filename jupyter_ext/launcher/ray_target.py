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

Files: a node that sees the run directory at this host's path works in it; one that does not
(``shared_filesystem`` None finds out per node, False assumes none does) gets the working copy
through Ray's object store, the run's environment built by Ray (uv), and its logs and metrics
copied back as they are written (ray_agent, ray_supervisor).

Status: a probe process per cluster address (ray_probe) reports the cluster's nodes, their
resources and whether they are busy, and hands the autoscaler what this server's jobs hold
(``request_resources``): the server itself never imports Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from .api import EnvPlan, Target
from .host import Host, free_port
from .slots import SlotPool
from .spec import DistributedSpec, RayPlacement, RunSpec


@dataclass
class RayConfig:
    name: str
    address: str | None = None
    max_nodes: int = 4
    node_shape: dict = field(default_factory=lambda: {"CPU": 1})
    shared_filesystem: bool | None = None  # None: each node is checked (does it see the run directory?)
    created_at: float = field(default_factory=time.time)

    def validate(self) -> None:
        if not isinstance(self.max_nodes, int) or isinstance(self.max_nodes, bool) or self.max_nodes < 1:
            raise InvalidRequest("max_nodes must be a whole number >= 1.")
        if not isinstance(self.node_shape, dict) or not self.node_shape or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and v >= 0 for k, v in self.node_shape.items()):
            raise InvalidRequest("node_shape must map Ray resource names to amounts, e.g. {'CPU': 2, 'GPU': 1}.")
        if self.address is not None and not isinstance(self.address, str):
            raise InvalidRequest("address must be 'ray://host:10001', 'auto', 'host:port' or None.")
        if self.shared_filesystem not in (None, True, False):
            raise InvalidRequest("shared_filesystem must be True, False or None (find out per node).")
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise InvalidRequest("A Ray target needs Ray next to the server: pip install 'jupyter-train[ray]'.")


class RayTarget(Target):
    kind = "ray"
    config_class = RayConfig
    label = "a Ray target"

    def __init__(self, config: RayConfig, host: Host | None = None, python: str | None = None):
        self.ray = config
        super().__init__(config, host, python)
        self.gpus_per_node = int(config.node_shape.get("GPU", 0))
        self._head: subprocess.Popen | None = None
        self._head_address: str | None = None
        self._requested: list | None = None

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
        port = free_port()
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

    def make_slots(self) -> SlotPool:
        return SlotPool(self.config.max_nodes, prepare_s=0)

    # -- jobs ------------------------------------------------------------------------------
    def validate_job(self, dist: DistributedSpec | None) -> None:
        if dist is None:
            return
        if dist.kind == "mpi":
            raise InvalidRequest(f"MPI jobs do not run on the Ray target {self.name!r} yet: use a "
                                 "PyTorchConfiguration (torchrun) job, or a cluster or Docker target for MPI.")
        if dist.nodes > self.ray.max_nodes:
            raise InvalidRequest(f"The job needs {dist.nodes} nodes; {self.name!r} uses at most {self.ray.max_nodes}.")
        if dist.backend == "nccl" and not self.gpus_per_node:
            raise InvalidRequest(f"NCCL needs GPUs and {self.name!r}'s node_shape has none. Use "
                                 "communication_backend='Gloo', or a node_shape with 'GPU'.")

    def plan_environment(self, env, python: str | None) -> EnvPlan:
        """As on this host, and nodes that do not see this host's files build the environment's
        packages themselves (Ray's uv); with shared_filesystem=False no node sees the host's
        build, so none is made here."""
        if env is not None and env.needs_build and self.ray.shared_filesystem is False:
            return EnvPlan(python=sys.executable, env=env, remote_packages=env.pip_requirements())
        plan = super().plan_environment(env, python)
        if env is not None and env.needs_build:
            plan.remote_packages = env.pip_requirements()
        return plan

    def placement(self, spec: RunSpec, indices: list[int]) -> RayPlacement:
        placement = RayPlacement(target=self.name, nodes=list(indices), address=self.address,  # may start the local head
                                 shape=dict(self.ray.node_shape), shared=self.ray.shared_filesystem,
                                 packages=spec.remote_packages)
        self._publish()  # a local head is known only now: its autoscaler hears of the nodes here
        return placement

    def node_where(self, spec: RunSpec, i: int) -> dict:
        p = spec.placement
        return {"ray_address": p.address, "bundle": dict(p.shape), "bundle_index": i,
                "files": {True: "shared filesystem", False: "through Ray's object store",
                          None: "shared where the node sees the run directory"}[p.shared],
                **({"builds": p.packages} if p.packages else {})}

    # -- the cluster's view: status and autoscaler requests --------------------------------
    @property
    def _view_address(self) -> str | None:
        return self.ray.address or self._head_address  # a local head is seen once it was started

    def cluster_status(self) -> dict:
        address = self._view_address
        if address is None:
            return {"state": "not started", "nodes": [], "requested": [],
                    "error": "The local Ray head starts with the target's first run."}
        return RayView.of(address).latest()

    def _publish(self) -> None:
        """Tell the autoscaler (through the probe) what this target's jobs hold: one bundle of
        node_shape per busy node. Sent when it changes; an empty list withdraws it."""
        busy = self.slots.busy_nodes()
        bundles = [dict(self.ray.node_shape) for _ in range(busy)]
        address = self._view_address
        if address is None or bundles == (self._requested or []):
            return
        RayView.of(address).request(self.name, bundles)
        self._requested = bundles

    def slots_changed(self) -> None:
        self._publish()

    def mount_refused(self) -> str | None:
        if self.ray.shared_filesystem is True:
            return None
        return ("the Ray nodes may not see this host's files (the target's shared_filesystem is not "
                "True), so they are sent the files through Ray")

    def describe(self) -> dict:
        shape = self.ray.node_shape
        d = self.description(vm_size=_shape_text(shape), cpus=int(shape.get("CPU", 0)), gpus=self.gpus_per_node,
                             max_nodes=self.ray.max_nodes, address=self.ray.address or "local head",
                             node_shape=dict(shape), shared_filesystem=self.ray.shared_filesystem,
                             ray=self.cluster_status())
        if d["ray"]["state"] == "unreachable":
            d["state"] = "unreachable"
        return d

    def close(self) -> None:
        """Withdraw this target's autoscaler request (the probe passes it on), then stop the
        local head it started."""
        address = self._view_address
        if address is not None:
            RayView.drop(address, self.name)
        self._requested = None
        self.stop_head()


class RayView:
    """The latest status line of one cluster's probe process, and the autoscaler requests of
    every target on that cluster (summed: a request replaces the previous one). One per
    address; started when first asked, stopped by PID with the server."""

    _views: dict[str, "RayView"] = {}
    _lock = threading.Lock()

    def __init__(self, address: str):
        self.address = address
        self.proc: subprocess.Popen | None = None
        self.status: dict = {"state": "connecting", "nodes": [], "requested": []}
        self.demand: dict[str, list] = {}
        self.started = 0.0

    @classmethod
    def of(cls, address: str) -> "RayView":
        with cls._lock:
            view = cls._views.get(address)
            if view is None:
                view = cls._views[address] = cls(address)
            return view

    @classmethod
    def drop(cls, address: str, target: str) -> None:
        """``target`` no longer asks for anything; the last one out stops the probe (which
        withdraws its request as it exits)."""
        with cls._lock:
            view = cls._views.get(address)
            if view is None:
                return
            view.demand.pop(target, None)
            last = not view.demand or not any(view.demand.values())
            if last:
                del cls._views[address]
        if last:
            view.stop()
        elif view.proc is not None:
            view._send()

    @classmethod
    def stop_all(cls) -> None:
        with cls._lock:
            views, cls._views = list(cls._views.values()), {}
        for view in views:
            view.stop()

    def _ensure(self) -> None:
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return
            if time.monotonic() - self.started < 10:
                return  # it exited at once: say so (below), do not start one per request
        self.started = time.monotonic()
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
        env.pop("JUPYTER_TOKEN", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.launcher.ray_probe", self.address],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, text=True, start_new_session=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if any(self.demand.values()):
            self._send()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                status = json.loads(line)
            except ValueError:
                continue
            if status.get("state") == "error":  # a failed request: keep the last status, note it
                self.status = {**self.status, "request_error": status.get("error")}
            else:
                self.status = status
        code = proc.wait()
        if self.proc is proc:
            self.status = {"state": "unreachable", "nodes": [], "requested": [],
                           "error": f"the Ray status probe stopped (exit code {code}); is Ray installed "
                                    "for the server's Python? pip install 'jupyter-train[ray]'"}

    def latest(self) -> dict:
        self._ensure()
        return dict(self.status)

    def request(self, target: str, bundles: list) -> None:
        self.demand[target] = bundles
        self._ensure()
        self._send()

    def _send(self) -> None:
        bundles = [b for name in sorted(self.demand) for b in self.demand[name]]
        try:
            self.proc.stdin.write(json.dumps({"bundles": bundles}) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # the probe died; the next _ensure starts another, which gets the demand

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        connected = self.status.get("state") not in ("connecting", "unreachable")
        try:
            proc.stdin.close()  # the probe withdraws its request and exits
            proc.wait(timeout=15 if connected else 1)  # one that never connected has nothing to withdraw
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


def _shape_text(shape: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(shape.items()))
