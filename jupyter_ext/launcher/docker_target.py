"""A compute target whose nodes are containers on a Docker engine.

Each node of a job is one container from the run's environment image, with the run directory
bind-mounted at the same path (logs, metrics and outputs flow exactly as on the local target),
jupyter-train's own packages mounted read-only for the in-script tracking API, the target's
extra volumes, GPUs through device requests, and labels (run id, node, target, workspace) so
that list and cancel find a run's containers from the engine itself, also after a server
restart. The per-run supervisor still runs on this host; it starts, watches, stops and removes
the containers (see docker_supervisor).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from ..errors import InvalidRequest
from .cluster_target import ClusterTarget
from .procs import is_alive
from .rundir import RunDir

LABEL = "jupyter-train"
IMAGE_PYTHON = "python3"  # the interpreter inside an image unless the environment names one
LIB = "/opt/jupyter-train/lib"
SITE = "/opt/jupyter-train/site"  # an environment's pip packages, in its image (environments.images)


def default_base_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(base_url: str | None, timeout: int = 30):
    import docker

    return docker.DockerClient(base_url=base_url or default_base_url(), timeout=timeout)


def package_mounts() -> dict[str, str]:
    """Host folder -> container folder (read-only) of jupyter_ext and kernel_lib, whose parent
    goes on the container's PYTHONPATH."""
    import kernel_lib

    import jupyter_ext

    return {os.path.dirname(os.path.abspath(m.__file__)): f"{LIB}/{m.__name__}"
            for m in (jupyter_ext, kernel_lib)}


@dataclass
class DockerConfig:
    name: str
    base_url: str | None = None  # None: DOCKER_HOST, else the local socket
    max_nodes: int = 4
    gpus: int = 0  # GPUs per node container (device requests), taken from the engine host's
    shm_size: str = "2g"
    network: str = "host"  # "host" (nodes reach each other on 127.0.0.1) or a network's name
    volumes: dict = field(default_factory=dict)  # host path -> "container path[:ro]"
    image: str | None = None  # for runs whose environment names no image
    allow_pull: bool = False
    # Whether the engine sees this host's files at the same paths (bind mounts). None: yes for a
    # unix:// socket, no for tcp:// and ssh:// engines, whose runs get their files copied into a
    # volume and back (logs and metrics every second).
    shared_filesystem: bool | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def shared(self) -> bool:
        if self.shared_filesystem is not None:
            return bool(self.shared_filesystem)
        return (self.base_url or default_base_url()).startswith("unix://")

    def validate(self) -> None:
        if not isinstance(self.max_nodes, int) or isinstance(self.max_nodes, bool) or self.max_nodes < 1:
            raise InvalidRequest("max_nodes must be a whole number >= 1.")
        if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or self.gpus < 0:
            raise InvalidRequest("gpus (per node) must be a whole number >= 0.")
        if not isinstance(self.volumes, dict) or not all(
                isinstance(k, str) and os.path.isabs(k) and isinstance(v, str) and v.startswith("/")
                for k, v in self.volumes.items()):
            raise InvalidRequest("volumes must map absolute host paths to 'container path[:ro]'.")
        if not isinstance(self.network, str) or not self.network:
            raise InvalidRequest("network must be 'host' or the name of a Docker network.")
        if self.base_url is not None and not (isinstance(self.base_url, str) and
                                              self.base_url.split("://")[0] in ("unix", "tcp", "ssh", "http", "https")):
            raise InvalidRequest("base_url must be unix://PATH, tcp://HOST:PORT or ssh://USER@HOST.")


class DockerTarget(ClusterTarget):
    kind = "docker"

    def __init__(self, config: DockerConfig, python: str | None = None):
        self.docker = config
        super().__init__(self.slot_config(config.name, config.max_nodes, config.created_at), gpus=[], python=python)
        self.gpus_per_node = config.gpus
        self._seen, self._seen_at = {}, -1e9

    @property
    def engine(self) -> str:
        return self.docker.base_url or default_base_url()

    def client(self):
        return connect(self.docker.base_url)

    def ping(self) -> str | None:
        """None when the engine answers, else why not (for describe and submit)."""
        try:
            self.client().ping()
            return None
        except Exception as exc:  # docker.errors.DockerException, connection errors
            return f"The Docker engine at {self.engine} does not answer: {exc}"

    def node_gpus(self, indices: list[int]) -> list[str]:
        g = self.gpus_per_node
        return [",".join(str(i * g + k) for k in range(g)) for i in indices] if g else []

    def check_job(self, nodes: int, procs_per_node: int, backend: str | None) -> None:
        if nodes > self.docker.max_nodes:
            raise InvalidRequest(f"The job needs {nodes} containers; {self.name!r} runs at most "
                                 f"{self.docker.max_nodes}. Use fewer nodes or a bigger max_nodes.")
        if backend == "nccl" and not self.gpus_per_node:
            raise InvalidRequest(f"NCCL needs GPUs and {self.name!r} gives its containers none (gpus=0). "
                                 "Use communication_backend='Gloo', or create the target with gpus=N.")
        why = self.ping()
        if why:
            raise InvalidRequest(why + ". Start Docker, or check base_url.")

    def container_config(self, image: str, python: str) -> dict:
        """What the supervisor needs to start this run's containers (stored in spec.json)."""
        shared = self.docker.shared
        mounts = {k: v + ":ro" for k, v in package_mounts().items()} if shared else {}
        mounts.update(self.docker.volumes)
        return {"base_url": self.docker.base_url, "image": image, "python": python,
                "mounts": mounts, "network": self.docker.network, "shm_size": self.docker.shm_size,
                "target": self.name, "pythonpath": f"{LIB}:{SITE}", "shared": shared,
                "packages": package_mounts()}

    def describe(self) -> dict:
        d = super().describe()
        d.update(kind=self.kind, base_url=self.engine, vm_size=f"container x{self.docker.max_nodes}",
                 gpus=self.gpus_per_node, network=self.docker.network, image=self.docker.image,
                 allow_pull=self.docker.allow_pull, shared_filesystem=self.docker.shared,
                 **self._engine_view())
        if d["engine"] != "ready":
            d["state"] = "unreachable"
        return d

    def _engine_view(self) -> dict:
        """The engine's own count of this target's running containers (cached two seconds,
        with a short timeout: the compute list must not hang on a dead engine)."""
        now = time.monotonic()
        if now - self._seen_at > 2:
            try:
                client = connect(self.docker.base_url, timeout=2)
                running = client.containers.list(filters={"label": f"{LABEL}.target={self.name}"})
                self._seen = {"engine": "ready", "containers": len(running)}
            except Exception:
                self._seen = {"engine": "unreachable", "containers": 0}
            self._seen_at = now
        return dict(self._seen)

    def to_config(self) -> dict:
        return asdict(self.docker)

    def containers(self, run_id: str | None = None) -> list:
        """This target's containers on the engine (all, or one run's), found by label."""
        filters = {"label": [f"{LABEL}.target={self.name}"] + ([f"{LABEL}.run-id={run_id}"] if run_id else [])}
        return self.client().containers.list(all=True, filters=filters)

    def cancel(self, rd: RunDir) -> bool:
        info = rd.read_supervisor_info() or {}
        if is_alive(info.get("pid"), info.get("start_time")):
            return super().cancel(rd)  # the supervisor stops and removes its containers
        # No supervisor (it died with its host's session): stop the containers ourselves.
        return self.stop_containers(rd.path.name) > 0

    def stop_containers(self, run_id: str) -> int:
        """Stop and remove a run's containers, found by label; returns how many."""
        try:
            found = self.containers(run_id)
        except Exception:
            return 0  # the engine is gone; nothing to stop from here
        for c in found:
            try:
                c.stop(timeout=2)
                c.remove(force=True)
            except Exception:
                pass
        return len(found)
