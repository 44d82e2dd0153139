"""The supervisor of a run on a Docker target: one container per node instead of one process
group. Everything else (working copies, ports, finalizing outputs, the final state) is the
base Supervisor's.

A node's command runs in its container with the interpreter of the image (``python``), the run
directory bind-mounted at the same path, the environment contract of every target, and
PYTHONPATH reaching jupyter-train's packages mounted read-only. The container's own output goes
to the node's log (rank logs are written by rank_entry through the mount). Cancel, and a
failure of any node, stop and remove every container of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from . import transfer
from .supervisor import RemoteProc, Supervisor

LABEL = "jupyter-train"


def container_name(run_id: str, node: int) -> str:
    """A node container's name, which is also its host name for mpirun: letters, digits, dots
    and hyphens only (OpenMPI refuses '_' in node names)."""
    return f"jt-{run_id.replace('_', '-')}-node{node}"


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


class DockerSupervisor(Supervisor):
    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        import docker

        self.cfg = self.spec.container
        self.client = docker.DockerClient(base_url=self.cfg.get("base_url") or None, timeout=60)
        self.threads: list[threading.Thread] = []
        self.keepers: list[_Container] = []  # MPI: node containers mpirun execs into
        self.volume = None  # copy mode: the run's files on the engine
        self._done = threading.Event()

    def node_env(self, node) -> dict[str, str]:
        """Not this host's environment: the image has its own PATH and libraries."""
        env = self.contract_env(node, self.rd.path)
        env["PYTHONPATH"] = ":".join(p for p in (self.cfg["pythonpath"], env.get("PYTHONPATH")) if p)
        return env

    def _argv(self, node) -> list[str]:
        argv = list(node.argv)
        if argv and argv[0] == self.spec.python:
            argv[0] = self.cfg["python"]
        return argv

    @property
    def copy_mode(self) -> bool:
        """The engine does not see this host's files: the run's files go through a volume."""
        return not self.cfg.get("shared", True)

    def _mounts(self) -> list:
        import docker

        run_dir = str(self.rd.path)
        if self.copy_mode:
            mounts = [docker.types.Mount(run_dir, self.volume.name, type="volume")]
        else:
            mounts = [docker.types.Mount(run_dir, run_dir, type="bind")]
        for host, spec in self.cfg["mounts"].items():
            target, _, mode = spec.partition(":")
            mounts.append(docker.types.Mount(target, host, type="bind", read_only=mode == "ro"))
        return mounts

    # -- a volume instead of bind mounts (an engine on another machine) -----------------------
    def _fill_volume(self) -> None:
        """Create the run's volume and copy in the working copies, the empty history folders and
        jupyter-train's packages (.jt-lib), through a created-but-never-started container."""
        import docker

        labels = {f"{LABEL}.run-id": self.spec.run_id, f"{LABEL}.target": self.cfg["target"]}
        self.volume = self.client.volumes.create(name=container_name(self.spec.run_id, 0) + "-files",
                                                 labels=labels)
        run_dir = str(self.rd.path)
        data = transfer.pack(self.rd.path, sorted({n.cwd for n in self.spec.nodes} | {"wd"}),
                             empty_dirs=("logs", "metrics", "pids", "errors"),
                             extra={host: f".jt-lib/{inside.rsplit('/', 1)[-1]}"
                                    for host, inside in self.cfg["packages"].items()})
        helper = self.client.containers.create(self.cfg["image"], ["true"], labels=labels,
                                               mounts=[docker.types.Mount(run_dir, self.volume.name,
                                                                          type="volume")])
        try:
            helper.put_archive(run_dir, data)
        finally:
            helper.remove(force=True)
        self.cfg["pythonpath"] = f"{run_dir}/.jt-lib:{self.cfg['pythonpath'].split(':', 1)[1]}"

    def _sync(self, final: bool = False) -> None:
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

    def _sync_loop(self) -> None:
        while not self._done.wait(1.0):
            try:
                self._sync()
            except Exception:
                pass  # the next pass, or the final one, catches up

    def wait_nodes(self) -> None:
        super().wait_nodes()
        if self.copy_mode:
            self._done.set()
            self._sync(final=True)

    def start_nodes(self) -> None:
        if self.copy_mode:
            self._fill_volume()
            t = threading.Thread(target=self._sync_loop, daemon=True)
            t.start()
        d = self.spec.distributed
        if d is not None and d.kind == "mpi":
            return self._start_mpi(d)
        self._start_containers()

    def _start_mpi(self, d) -> None:
        """mpirun on this host; its daemons and ranks in the node containers, reached through
        the docker_rsh agent (docker exec). Each container idles until mpirun uses it."""
        import docker

        node = self.spec.nodes[0]
        env = self.node_env(node)
        names = []
        for i in range(d.nodes):
            name = container_name(self.spec.run_id, i)
            keep = [self.cfg["python"], "-c", "import signal, time\n"
                    "signal.signal(signal.SIGTERM, lambda *a: exit(0))\ntime.sleep(10**9)"]
            try:
                container = self.client.containers.run(
                    self.cfg["image"], keep, name=name, detach=True, working_dir=str(self.rd.path / "wd"),
                    environment=env, mounts=self._mounts(), network_mode="host", shm_size=self.cfg.get("shm_size"),
                    labels={f"{LABEL}.run-id": self.spec.run_id, f"{LABEL}.node": str(i),
                            f"{LABEL}.target": self.cfg["target"], f"{LABEL}.run-dir": str(self.rd.path)})
            except docker.errors.DockerException as exc:
                raise OSError(f"the Docker engine refused container {name}: {exc}") from None
            self.keepers.append(_Container(container))
            names.append(name)
        argv = ["mpirun", "-np", str(d.world_size), "--host", ",".join(f"{n}:{d.procs_per_node}" for n in names),
                "--oversubscribe", "--bind-to", "none", "--mca", "plm_rsh_agent",
                f"{sys.executable} -m jupyter_ext.launcher.docker_rsh", "--mca", "plm_rsh_no_tree_spawn", "1",
                "--mca", "btl", "self,tcp", "-wdir", str(self.rd.path / "wd")]
        if os.geteuid() == 0:
            argv.append("--allow-run-as-root")
        for key, value in env.items():
            argv += ["-x", f"{key}={value}"]
        script = node.argv[node.argv.index("jupyter_ext.launcher.rank_entry") + 1:]
        argv += [self.cfg["python"], "-u", "-m", "jupyter_ext.launcher.rank_entry", *script]
        host_env = dict(os.environ, JUPYTER_TRAIN_DOCKER_URL=self.cfg.get("base_url") or "")
        with open(self.rd.logs / f"{node.log_name}.txt", "ab") as log:
            proc = subprocess.Popen(argv, cwd=self.rd.path / "wd", env=host_env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((node, proc))

    def _start_containers(self) -> None:
        import docker

        mounts = self._mounts()
        for i, node in enumerate(self.spec.nodes):
            gpus = node.env.get("CUDA_VISIBLE_DEVICES")
            requests = [docker.types.DeviceRequest(device_ids=gpus.split(","), capabilities=[["gpu"]])] if gpus else []
            env = self.node_env(node)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(k) for k in range(len(gpus.split(","))))
            name = container_name(self.spec.run_id, i)
            try:
                container = self._run_container(name, node, env, mounts, requests)
            except docker.errors.DockerException as exc:
                raise OSError(f"the Docker engine refused container {name}: {exc}") from None
            proc = _Container(container)
            self.procs.append((node, proc))
            # the container's own output; in copy mode rank logs come from the volume instead
            log_name = f"container_{i}" if self.copy_mode and node.log_name.startswith("rank_") else node.log_name
            t = threading.Thread(target=self._copy_logs, args=(container, self.rd.logs / f"{log_name}.txt"),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _run_container(self, name, node, env, mounts, requests):
        i = node.rank
        run_dir = str(self.rd.path)
        return self.client.containers.run(
                self.cfg["image"], self._argv(node), name=name, detach=True,
                working_dir=str(self.rd.path / node.cwd), environment=env, mounts=mounts,
                network_mode="host" if self.cfg["network"] == "host" else None,
                network=None if self.cfg["network"] == "host" else self.cfg["network"],
                hostname=None if self.cfg["network"] == "host" else name,
                shm_size=self.cfg.get("shm_size"), device_requests=requests,
                labels={f"{LABEL}.run-id": self.spec.run_id, f"{LABEL}.node": str(i),
                        f"{LABEL}.target": self.cfg["target"], f"{LABEL}.run-dir": run_dir})

    def _copy_logs(self, container, path) -> None:
        try:
            with open(path, "ab") as f:
                for chunk in container.logs(stream=True, follow=True):
                    f.write(chunk)
                    f.flush()
        except Exception:
            pass  # the container is gone; what it wrote is in the file

    def end_leftovers(self) -> None:
        """Stop every container of the run still running (on cancel, a failing node, and at the
        end: MPI's node containers), then end what is left on this host (mpirun, its docker exec
        agents). A container's processes, those ``docker exec`` started included, all end with
        it (its PID namespace)."""
        self._stop_containers()
        super().end_leftovers()

    def _stop_containers(self) -> None:
        """SIGTERM to each running container at once, SIGKILL to those left after the grace."""
        running = []
        for p in [p for _, p in self.procs if isinstance(p, _Container)] + self.keepers:
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

    def remove_containers(self) -> None:
        for t in self.threads:
            t.join(timeout=5)
        for p in [p for _, p in self.procs if isinstance(p, _Container)] + self.keepers:
            try:
                p.c.remove(force=True)
            except Exception:
                pass
        if self.volume is not None:
            try:
                self.volume.remove(force=True)
            except Exception:
                pass

    def finish(self) -> int:
        for t in self.threads:
            t.join(timeout=5)  # the containers' last lines are in the node logs
        for node, p in self.procs:
            if getattr(p, "oom", False):
                with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                    f.write("The container was killed: out of memory (OOMKilled). Give it more memory "
                            "or use smaller batches.\n")
        code = super().finish()
        self.remove_containers()
        return code

    def run(self) -> int:
        try:
            return super().run()
        finally:
            self.remove_containers()
