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
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from . import payload
from .commands import container_name
from .api import EnvPlan, PrepareContext, Target
from .host import Host
from .rundir import RunDir
from .slots import SlotPool
from .spec import DistributedSpec, DockerPlacement, RunSpec

LABEL = "jupyter-train"
IMAGE_PYTHON = "python3"  # the interpreter inside an image unless the environment names one
LIB = "/opt/jupyter-train/lib"
SITE = "/opt/jupyter-train/site"  # an environment's pip packages, in its image (environments.images)


def default_base_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(base_url: str | None, timeout: int = 30):
    import docker

    return docker.DockerClient(base_url=base_url or default_base_url(), timeout=timeout)


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


class DockerTarget(Target):
    kind = "docker"
    config_class = DockerConfig
    label = "a Docker target"

    def __init__(self, config: DockerConfig, host: Host | None = None, python: str | None = None):
        super().__init__(config, host, python)
        self.docker = config
        self.gpus_per_node = config.gpus
        self._seen, self._seen_at = {}, -1e9

    @classmethod
    def validate_config(cls, config: DockerConfig, host: Host) -> None:
        config.validate()

    def make_slots(self) -> SlotPool:
        return SlotPool(self.config.max_nodes, prepare_s=0)

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

    def check_reachable(self) -> str | None:
        why = self.ping()
        return why and why + ". Start Docker, or pass the engine's base_url."

    def node_gpus(self, indices: list[int]) -> list[str]:
        g = self.gpus_per_node
        return [",".join(str(i * g + k) for k in range(g)) for i in indices] if g else []

    def validate_job(self, dist: DistributedSpec | None) -> None:
        if dist is not None:
            self._check_job(dist)
        why = self.ping()  # every job: a dead engine is said at submit, not after the image build
        if why:
            raise InvalidRequest(why + ". Start Docker, or check base_url.")

    def _check_job(self, dist: DistributedSpec) -> None:
        if dist.nodes > self.docker.max_nodes:
            raise InvalidRequest(f"The job needs {dist.nodes} containers; {self.name!r} runs at most "
                                 f"{self.docker.max_nodes}. Use fewer nodes or a bigger max_nodes.")
        if dist.backend == "nccl" and not self.gpus_per_node:
            raise InvalidRequest(f"NCCL needs GPUs and {self.name!r} gives its containers none (gpus=0). "
                                 "Use communication_backend='Gloo', or create the target with gpus=N.")

    # -- the run's image -------------------------------------------------------------------
    def plan_environment(self, env, python: str | None) -> EnvPlan:
        """Every run here runs in an image: its environment's (base image or Dockerfile), or
        the target's default ``image`` with the environment's packages installed on top."""
        from ..environments import EnvironmentSpec

        if env is None or not (env.docker_base_image or env.docker_file):
            if not self.docker.image:
                raise InvalidRequest(
                    f"A run on the Docker target {self.name!r} needs an image: give it an environment with "
                    "docker.base_image (or a Dockerfile), or create the target with image=... for runs that "
                    "name none.")
            base = env or EnvironmentSpec(name=f"{self.name}-default")
            env = EnvironmentSpec(**{**base.to_dict(), "docker_base_image": self.docker.image})
        return EnvPlan(python=env.interpreter_path or IMAGE_PYTHON, build="image", env=env, key="docker")

    def prepare(self, spec: RunSpec, plan: EnvPlan, ctx: PrepareContext) -> None:
        from ..environments import BuildFailed
        from ..environments.images import ensure_image

        where = f"the Docker engine at {self.engine}"
        try:
            spec.image = ensure_image(self.client(), plan.env, ctx.say, self.docker.allow_pull, None, where)
        except BuildFailed:
            raise
        except Exception as exc:  # an engine that went away: the run fails, never stuck in Preparing
            raise BuildFailed(f"{where}: {exc}") from None

    def mount_refused(self) -> str | None:
        if self.docker.shared:
            return None
        return f"the Docker engine at {self.engine} does not see this host's files (shared_filesystem=False)"

    def placement(self, spec: RunSpec, indices: list[int]) -> DockerPlacement:
        """What the supervisor needs to start this run's containers (stored in spec.json)."""
        shared = self.docker.shared
        mounts = {k: v + ":ro" for k, v in payload.mounts(LIB).items()} if shared else {}
        mounts.update(self.docker.volumes)
        # a mounted dataset: its folder, read-only, at the same path (where the script is told)
        mounts.update({d["mount"]: d["mount"] + ":ro" for d in spec.datasets if d["mode"] == "mount"})
        return DockerPlacement(target=self.name, nodes=list(indices), node_gpus=self.node_gpus(indices),
                               base_url=self.engine, image=spec.image or "", mounts=mounts,
                               network=self.docker.network, shm_size=self.docker.shm_size,
                               pythonpath=f"{LIB}:{SITE}", shared=shared)

    def node_env(self, spec: RunSpec, node, rd: RunDir) -> dict[str, str]:
        env = super().node_env(spec, node, rd)  # not laid over this host's: the image has its own
        env["PYTHONPATH"] = ":".join(p for p in (spec.placement.pythonpath, env.get("PYTHONPATH")) if p)
        return env

    def node_where(self, spec: RunSpec, i: int) -> dict:
        """The container of node ``i``; for an MPI job (one mpirun on this host), every node's
        container, which mpirun's daemons and ranks are started in (docker exec)."""
        p = spec.placement
        mpi = spec.distributed is not None and spec.distributed.kind == "mpi"
        where = self._container_where(spec, i)
        if mpi:
            where["containers"] = [self._container_where(spec, k) for k in range(len(p.nodes))]
        return where

    def _container_where(self, spec: RunSpec, i: int) -> dict:
        p = spec.placement
        gpus = p.node_gpus[i] if i < len(p.node_gpus) else None
        return {"container": container_name(spec.run_id, i), "image": p.image,
                "mounts": dict(p.mounts), "run_dir": "bind mount at the same path" if p.shared else "a volume",
                "network": p.network, "shm_size": p.shm_size, "engine": self.engine,
                **({"gpus": gpus.split(",")} if gpus else {})}

    def describe(self) -> dict:
        d = self.description(vm_size=f"container x{self.docker.max_nodes}", cpus=self.host.cpus,
                             gpus=self.gpus_per_node, max_nodes=self.docker.max_nodes, base_url=self.engine,
                             network=self.docker.network, image=self.docker.image,
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

    def containers(self, run_id: str | None = None) -> list:
        """This target's containers on the engine (all, or one run's), found by label."""
        filters = {"label": [f"{LABEL}.target={self.name}"] + ([f"{LABEL}.run-id={run_id}"] if run_id else [])}
        return self.client().containers.list(all=True, filters=filters)

    def stop_without_supervisor(self, rd: RunDir, info: dict) -> bool:
        # No supervisor (it died with its host's session): stop the containers ourselves.
        return self.stop_containers(rd.path.name) > 0

    def reap_orphan(self, rd: RunDir, say) -> None:
        super().reap_orphan(rd, say)
        self.stop_containers(rd.path.name)  # the run's nodes, found by label on the engine

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
