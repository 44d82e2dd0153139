"""The supervisor of a run on a Docker target: one container per node instead of one process
group. Everything else (working copies, finalizing outputs, the final state) is the base
Supervisor's, and reaching the engine, syncing files back and releasing is RemoteSupervisor's.

A node's command (commands.py: the image's interpreter, final) runs in its container with the
run directory bind-mounted at the same path, the environment contract of every target, and
PYTHONPATH reaching jupyter-train's packages mounted read-only. The container's own output goes
to the node's log (rank logs are written by rank_entry through the mount). An MPI job's mpirun
runs on this host and reaches the node containers through the docker_rsh agent. Cancel, and a
failure of any node, stop and remove every container of the run.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from ..contract import ENV_SUPERVISOR
from . import datainputs, payload, transfer
from .commands import container_name
from .remote_supervisor import RemoteProc, RemoteSupervisor

LABEL = "jupyter-train"
__all__ = ["DockerSupervisor", "container_name"]


def engine_url(base_url: str | None) -> str:
    """The engine a placement names: its base_url, else DOCKER_HOST, else the local socket."""
    return base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class _Container(RemoteProc):
    def __init__(self, container):
        super().__init__()
        self.c = container
        self.oom = False

    def check(self):
        self.c.reload()
        if self.c.status not in ("exited", "dead"):
            return None
        state = self.c.attrs.get("State", {})
        self.oom = bool(state.get("OOMKilled"))
        return int(state.get("ExitCode", 1))


class ContainerUsage:
    """A container's (CPU seconds so far, memory in use) from the engine's stats (one shot, as
    ``docker stats`` counts memory: usage less the inactive file cache); None once it is gone."""

    def __init__(self, container):
        self.c = container

    def __call__(self) -> tuple[float, int] | None:
        try:
            stats = self.c.stats(stream=False, one_shot=True)
            cpu = stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
            mem = stats.get("memory_stats") or {}
            more = mem.get("stats") or {}
            cache = more.get("inactive_file", more.get("total_inactive_file", 0))
            return cpu, max(0, int(mem.get("usage", 0)) - int(cache))
        except Exception:  # exited, removed, or the engine busy: no figures this time
            return None


class DockerSupervisor(RemoteSupervisor):
    engine = "the Docker engine"
    CONNECT_S = 15.0  # nothing here starts the engine: one that refuses now is down

    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        self.client = None
        self.threads: list[threading.Thread] = []
        self.keepers: list[_Container] = []  # MPI: node containers mpirun execs into
        self.volume = None  # copy mode: the run's files on the engine
        self.pythonpath = self.placement.pythonpath  # in copy mode: the payload inside the volume

    @property
    def address(self) -> str:
        return engine_url(self.placement.base_url)

    @property
    def copy_mode(self) -> bool:
        """The engine does not see this host's files: the run's files go through a volume."""
        return not self.placement.shared

    def connect(self, deadline: float) -> None:
        import docker

        while True:
            try:
                wait_s = max(1, min(10, deadline - time.monotonic()))  # each try: an unroutable host too
                client = docker.DockerClient(base_url=self.address, timeout=wait_s)
                client.ping()
                break
            except Exception as exc:  # docker.errors.DockerException, connection errors
                if time.monotonic() + 1 > deadline:
                    raise OSError(f"it does not answer ({exc}); start Docker there, or check the "
                                  "target's base_url") from None
                time.sleep(1)
        client.api.timeout = 60  # the engine's calls from now on
        self.client = client

    def unreachable_hint(self) -> str:
        scheme, _, rest = self.address.partition("://")
        if scheme in ("tcp", "http", "https") and ":" in rest:
            from .remote_supervisor import tcp_hint

            host, _, port = rest.split("/")[0].rpartition(":")
            return tcp_hint(host, int(port))
        return "start Docker there, or check the target's base_url"

    def node_env(self, node) -> dict[str, str]:
        env = self.contract_env(node, self.rd.path)
        env["PYTHONPATH"] = ":".join(p for p in (self.pythonpath, env.get("PYTHONPATH")) if p)
        return env

    def _labels(self, **more) -> dict[str, str]:
        return {f"{LABEL}.run-id": self.spec.run_id, f"{LABEL}.target": self.placement.target,
                **{f"{LABEL}.{k.replace('_', '-')}": str(v) for k, v in more.items()}}

    def _mounts(self) -> list:
        import docker

        run_dir = str(self.rd.path)
        if self.copy_mode:
            mounts = [docker.types.Mount(run_dir, self.volume.name, type="volume")]
        else:
            mounts = [docker.types.Mount(run_dir, run_dir, type="bind")]
        for host, spec in self.placement.mounts.items():
            target, _, mode = spec.partition(":")
            mounts.append(docker.types.Mount(target, host, type="bind", read_only=mode == "ro"))
        return mounts

    # -- a volume instead of bind mounts (an engine on another machine) -----------------------
    def _fill_volume(self) -> None:
        """Create the run's volume and copy in the working copies, the empty history folders and
        jupyter-train's packages (.jt-lib), through a created-but-never-started container."""
        import docker

        self.volume = self.client.volumes.create(name=container_name(self.spec.run_id, 0) + "-files",
                                                 labels=self._labels())
        run_dir = str(self.rd.path)
        data = transfer.pack(self.rd.path, sorted({n.cwd for n in self.spec.nodes} | {"wd", datainputs.INPUTS}),
                             empty_dirs=("logs", "metrics", "pids", "errors"),
                             extra=payload.mounts(".jt-lib"))
        helper = self.client.containers.create(self.placement.image, ["true"], labels=self._labels(),
                                               mounts=[docker.types.Mount(run_dir, self.volume.name,
                                                                          type="volume")])
        try:
            helper.put_archive(run_dir, data)
        finally:
            helper.remove(force=True)
        site = self.placement.pythonpath.split(":", 1)[1:]  # the environment's packages stay
        self.pythonpath = ":".join([f"{run_dir}/.jt-lib", *site])

    def sync(self, final: bool = False) -> None:
        """Copy logs, metrics (and at the end errors and outputs) from the volume to this host,
        each file replaced whole (write then rename), so readers never see half a file."""
        holders = [p.c for _, p in self.procs if isinstance(p, _Container)] + [k.c for k in self.keepers]
        if not holders:
            return
        subs = ["logs", "metrics"] + (["errors", "pids"] + sorted(
            f"{n.cwd}/{d}" for n in self.spec.nodes for d in ("outputs", "logs")) + ["wd/outputs", "wd/logs"]
            if final else [])
        for sub in dict.fromkeys(subs):
            try:
                stream, _ = holders[0].get_archive(f"{self.rd.path}/{sub}")
            except Exception:
                continue  # not there (yet)
            transfer.unpack(b"".join(stream), (self.rd.path / sub).parent, only_changed=not final)

    # -- start --------------------------------------------------------------------------------
    def launch(self) -> None:
        if self.copy_mode:
            self._fill_volume()
        d = self.spec.distributed
        if d is not None and d.kind == "mpi":
            return self._start_mpi(d)
        self._start_containers()

    def _container(self, name: str, index: int, node, argv: list[str], env: dict, **options):
        import docker

        try:
            return self.client.containers.run(
                self.placement.image, argv, name=name, detach=True, working_dir=str(self.rd.path / node.cwd),
                environment=env, mounts=self._mounts(), shm_size=self.placement.shm_size,
                labels=self._labels(node=index, run_dir=self.rd.path), **options)
        except docker.errors.DockerException as exc:
            raise OSError(f"the Docker engine refused container {name}: {exc}") from None

    def _start_mpi(self, d) -> None:
        """mpirun (commands.py: its hosts, rsh agent and exports) on this host; its daemons and
        ranks in the node containers, each idling until mpirun uses it."""
        node = self.spec.nodes[0]
        env = self.node_env(node)
        keep = [self.spec.python, "-c", "import signal, time\n"
                "signal.signal(signal.SIGTERM, lambda *a: exit(0))\ntime.sleep(10**9)"]
        for i in range(d.nodes):
            container = self._container(container_name(self.spec.run_id, i), i, node, keep, env,
                                        device_requests=self._gpu_requests(i), network_mode="host")
            self.keepers.append(_Container(container))
        host_env = dict(os.environ)
        host_env.pop(ENV_SUPERVISOR, None)
        host_env.update(env)  # what mpirun exports to the ranks (-x NAME)
        with open(self.rd.logs / f"{node.log_name}.txt", "ab") as log:
            proc = subprocess.Popen(node.argv, cwd=self.rd.path / node.cwd, env=host_env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((node, proc))

    def _gpu_requests(self, i: int) -> list:
        """Node ``i``'s GPUs (the engine host's device ids) as device requests: inside, 0..n-1."""
        import docker

        gpus = self.spec.node_gpus[i] if i < len(self.spec.node_gpus) else ""
        return [docker.types.DeviceRequest(device_ids=gpus.split(","), capabilities=[["gpu"]])] if gpus else []

    def _start_containers(self) -> None:
        host = self.placement.network == "host"
        for i, node in enumerate(self.spec.nodes):
            name = container_name(self.spec.run_id, i)
            container = self._container(name, i, node, node.argv, self.node_env(node),
                                        device_requests=self._gpu_requests(i), network_mode="host" if host else None,
                                        network=None if host else self.placement.network,
                                        hostname=None if host else name)
            self.procs.append((node, _Container(container)))
            # the container's own output; in copy mode rank logs come from the volume instead
            log_name = f"container_{i}" if self.copy_mode and node.log_name.startswith("rank_") else node.log_name
            t = threading.Thread(target=self._copy_logs, args=(container, self.rd.logs / f"{log_name}.txt"),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _copy_logs(self, container, path) -> None:
        try:
            with open(path, "ab") as f:
                for chunk in container.logs(stream=True, follow=True):
                    f.write(chunk)
                    f.flush()
        except Exception:
            pass  # the container is gone; what it wrote is in the file

    def system_sources(self) -> list:
        """Each node container's CPU and memory from the engine; this host's figures and the
        node's GPUs (the host's device ids, its gpu_0, gpu_1, ... in that order) where the engine
        is this host's (it sees this host's files), not in copy mode."""
        from .sysmetrics import NodeSource

        containers = self.keepers or [p for _, p in self.procs if isinstance(p, _Container)]
        local = not self.copy_mode
        return [NodeSource(i, ContainerUsage(p.c), host=local,
                           gpus=(self.spec.node_gpus[i] if i < len(self.spec.node_gpus) else "") if local else "")
                for i, p in enumerate(containers)]

    # -- stop, end, release -------------------------------------------------------------------
    def _containers(self) -> list[_Container]:
        return [p for _, p in self.procs if isinstance(p, _Container)] + self.keepers

    def stop_nodes(self) -> None:
        """SIGTERM to each running container at once, SIGKILL to those left after the grace. A
        container's processes, those ``docker exec`` started included, all end with it (its PID
        namespace); mpirun and its agents on this host are the base's to end."""
        running = []
        for p in self._containers():
            try:
                p.c.kill(signal="SIGTERM")
                running.append(p.c)
            except Exception:
                pass  # not running (any more)
        deadline = time.monotonic() + self.spec.cancel_grace_s
        for c in running:
            how = "SIGTERM"
            try:
                c.wait(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # still running after the grace
                how = f"SIGKILL after {self.spec.cancel_grace_s:g} s"
                try:
                    c.kill()
                    c.wait(timeout=30)
                except Exception:
                    pass
            self.say(f"stopped container {c.name} ({how}), and with it every process in it")

    def release(self) -> None:
        for t in self.threads:
            t.join(timeout=5)
        for p in self._containers():
            try:
                p.c.remove(force=True)
            except Exception:
                pass
        if self.volume is not None:
            try:
                self.volume.remove(force=True)
            except Exception:
                pass
            self.volume = None

    def disconnect(self) -> None:
        self.client.close()

    def finish(self) -> int:
        for t in self.threads:
            t.join(timeout=5)  # the containers' last lines are in the node logs
        for node, p in self.procs:
            if getattr(p, "oom", False):
                with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                    f.write("The container was killed: out of memory (OOMKilled). Give it more memory "
                            "or use smaller batches.\n")
        return super().finish()
