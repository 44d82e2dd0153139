"""Compute targets: ``local`` (always there) and clusters whose nodes are slots of this host.

    cfg = ClusterCompute.provisioning_configuration(vm_size="cpu:1", min_nodes=0, max_nodes=4,
                                                    idle_seconds_before_scaledown=1800)
    cluster = ComputeTarget.create(ws, "cpu-cluster", cfg)
    cluster.wait_for_completion(show_output=True)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from urllib.parse import quote

from .client import TrainError


class ComputeTargetException(TrainError):
    """Azure ML's name for errors about compute targets."""


class ComputeTargetNotFound(ComputeTargetException):
    pass


class ComputeStatus(dict):
    """A target's status; ``serialize()`` gives the plain dict, as Azure ML's status object does."""

    def serialize(self) -> dict:
        return dict(self)


@dataclass
class ClusterProvisioningConfiguration:
    vm_size: str = "cpu:1"
    min_nodes: int = 0
    max_nodes: int = 4
    idle_seconds_before_scaledown: float = 1800


class ClusterCompute:
    """Azure ML's AmlCompute, on this host."""

    @staticmethod
    def provisioning_configuration(vm_size: str = "cpu:1", min_nodes: int = 0, max_nodes: int = 4,
                                   idle_seconds_before_scaledown: float = 1800, **_ignored):
        return ClusterProvisioningConfiguration(vm_size, min_nodes, max_nodes, idle_seconds_before_scaledown)


AmlCompute = ClusterCompute


@dataclass
class DockerProvisioningConfiguration:
    kind: str = "docker"
    base_url: str | None = None
    max_nodes: int = 4
    gpus: int = 0
    shm_size: str = "2g"
    network: str = "host"
    volumes: dict | None = None
    image: str | None = None
    allow_pull: bool = False
    shared_filesystem: bool | None = None


@dataclass
class RayProvisioningConfiguration:
    kind: str = "ray"
    address: str | None = None
    max_nodes: int = 4
    node_shape: dict | None = None
    shared_filesystem: bool | None = None


class RayCompute:
    """Nodes are the nodes of a Ray cluster: ``address`` "ray://host:10001", "auto", "host:port",
    or None for a local head the target starts and stops. ``node_shape``: Ray resources of each
    node of a job (default {"CPU": 1}). ``shared_filesystem``: whether the nodes see the run
    directory at this machine's path; None (default) checks each node, and a node that does not
    gets the working copy through Ray, builds the run's environment with Ray (uv), and sends its
    logs and metrics back as they are written."""

    @staticmethod
    def provisioning_configuration(address: str | None = None, node_shape: dict | None = None,
                                   max_nodes: int = 4, shared_filesystem: bool | None = None):
        return RayProvisioningConfiguration(address=address, max_nodes=max_nodes, node_shape=node_shape,
                                            shared_filesystem=shared_filesystem)


class DockerCompute:
    """Nodes are containers on a Docker engine: ``base_url`` defaults to DOCKER_HOST, else the
    local socket. Each node of a job is one container of the run's environment image (its
    ``docker.base_image`` plus its pip packages); ``image`` serves runs that name none."""

    @staticmethod
    def provisioning_configuration(base_url: str | None = None, max_nodes: int = 4, gpus: int = 0,
                                   shm_size: str = "2g", network: str = "host", volumes: dict | None = None,
                                   image: str | None = None, allow_pull: bool = False,
                                   shared_filesystem: bool | None = None):
        """``shared_filesystem``: whether the engine sees this machine's files at the same paths
        (default: yes for a unix:// socket, no for tcp:// and ssh://, whose runs get their files
        copied through a volume)."""
        return DockerProvisioningConfiguration(base_url=base_url, max_nodes=max_nodes, gpus=gpus,
                                               shm_size=shm_size, network=network, volumes=volumes or {},
                                               image=image, allow_pull=allow_pull,
                                               shared_filesystem=shared_filesystem)


class ComputeTarget:
    def __init__(self, workspace, name: str, _data: dict | None = None):
        self.workspace = workspace
        self.name = name
        if _data is None:
            try:
                _data = workspace.client.get(f"/computes/{quote(name)}")
            except TrainError as exc:
                if exc.code == "not_found":
                    raise ComputeTargetNotFound(exc.message, "not_found", 404) from None
                raise
        self.details = _data

    def __repr__(self):
        return f"ComputeTarget(name={self.name!r}, kind={self.details.get('kind')!r})"

    @classmethod
    def create(cls, workspace, name: str, provisioning_configuration) -> "ComputeTarget":
        body = {"name": name, **asdict(provisioning_configuration)}
        return cls(workspace, name, _data=workspace.client.post("/computes", body))

    @classmethod
    def list(cls, workspace) -> list["ComputeTarget"]:
        return [cls(workspace, c["name"], c) for c in workspace.client.get("/computes")["computes"]]

    def refresh(self) -> "ComputeTarget":
        self.details = self.workspace.client.get(f"/computes/{quote(self.name)}")
        return self

    def get_status(self, timeout: float = 20) -> ComputeStatus:
        """Node counts (idle, busy, preparing, unusable), current and max nodes, the queue. A Ray
        target adds its cluster's nodes (``ray_nodes``: address, busy or idle, resources total
        and used), ``ray_state`` and what its jobs asked the autoscaler for (``requested``); the
        first call waits (up to ``timeout`` s) for the cluster's first report."""
        d = self.refresh().details
        deadline = time.monotonic() + timeout
        while d.get("ray", {}).get("state") == "connecting" and time.monotonic() < deadline:
            time.sleep(0.25)
            d = self.refresh().details
        status = ComputeStatus(state=d["state"], current_node_count=d["nodes"], **d["node_counts"],
                               max_nodes=d.get("max_nodes", d["nodes"]), queue=d.get("queue", []))
        if "ray" in d:
            ray = d["ray"]
            status.update(ray_state=ray["state"], ray_nodes=ray["nodes"], requested=ray.get("requested", []),
                          pending_nodes=ray.get("pending_nodes", 0), ray_error=ray.get("error"))
        return status

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: float = 25) -> dict:
        """Wait until the cluster has its minimum nodes (or ``min_node_count``) ready."""
        deadline = time.monotonic() + timeout_in_minutes * 60
        want = self.details.get("min_nodes", 0) if min_node_count is None else min_node_count
        last = None
        while True:
            st = self.get_status()
            line = f"{self.name}: {st['state']}, nodes {st['current_node_count']} " \
                   f"(idle {st['idle']}, busy {st['busy']}, preparing {st['preparing']})"
            if show_output and line != last:
                print(line, flush=True)
                last = line
            if st["preparing"] == 0 and st["idle"] + st["busy"] >= want:
                return st
            if time.monotonic() > deadline:
                raise TrainError(f"{self.name} did not reach {want} ready node(s) in "
                                 f"{timeout_in_minutes} minutes.", "timeout")
            time.sleep(0.2)

    def delete(self) -> None:
        self.workspace.client.request("DELETE", f"/computes/{quote(self.name)}", raw=True)
