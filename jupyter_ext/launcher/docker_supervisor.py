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

import threading
import time

from .procs import kill_ranks
from .supervisor import POLL_S, Supervisor

LABEL = "jupyter-train"


class _Container:
    """Popen-like view of a container, so the base Supervisor's bookkeeping applies."""

    def __init__(self, container):
        self.c = container
        self.pid = 0
        self.returncode = None
        self.oom = False

    def poll(self):
        if self.returncode is None:
            self.c.reload()
            state = self.c.attrs.get("State", {})
            if self.c.status in ("exited", "dead"):
                self.returncode = int(state.get("ExitCode", 1))
                self.oom = bool(state.get("OOMKilled"))
        return self.returncode

    def wait(self):
        while self.poll() is None:
            time.sleep(POLL_S * 5)
        return self.returncode


class DockerSupervisor(Supervisor):
    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        import docker

        self.cfg = self.spec.container
        self.client = docker.DockerClient(base_url=self.cfg.get("base_url") or None, timeout=60)
        self.threads: list[threading.Thread] = []

    def node_env(self, node) -> dict[str, str]:
        """Not this host's environment: the image has its own PATH and libraries."""
        env = dict(self.spec.env)
        env.update(node.env)
        env.update({
            "JUPYTER_TRAIN_RUN_ID": self.spec.run_id,
            "JUPYTER_TRAIN_EXPERIMENT": self.spec.experiment,
            "JUPYTER_TRAIN_RUN_DIR": str(self.rd.path),
            "JUPYTER_TRAIN_METRICS_DIR": str(self.rd.metrics),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": ":".join(p for p in (self.cfg["pythonpath"], env.get("PYTHONPATH")) if p),
        })
        return env

    def _argv(self, node) -> list[str]:
        argv = list(node.argv)
        if argv and argv[0] == self.spec.python:
            argv[0] = self.cfg["python"]
        return argv

    def start_nodes(self) -> None:
        import docker

        run_dir = str(self.rd.path)
        mounts = [docker.types.Mount(run_dir, run_dir, type="bind")]
        for host, spec in self.cfg["mounts"].items():
            target, _, mode = spec.partition(":")
            mounts.append(docker.types.Mount(target, host, type="bind", read_only=mode == "ro"))
        for i, node in enumerate(self.spec.nodes):
            gpus = node.env.get("CUDA_VISIBLE_DEVICES")
            requests = [docker.types.DeviceRequest(device_ids=gpus.split(","), capabilities=[["gpu"]])] if gpus else []
            env = self.node_env(node)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(k) for k in range(len(gpus.split(","))))
            name = f"jt-{self.spec.run_id}-node{i}"
            try:
                container = self._run_container(name, node, env, mounts, requests)
            except docker.errors.DockerException as exc:
                raise OSError(f"the Docker engine refused container {name}: {exc}") from None
            proc = _Container(container)
            self.procs.append((node, proc))
            t = threading.Thread(target=self._copy_logs, args=(container, self.rd.logs / f"{node.log_name}.txt"),
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

    def stop_all(self) -> None:
        for _, p in self.procs:
            try:
                p.c.stop(timeout=int(max(1, self.spec.cancel_grace_s)))
            except Exception:
                pass
        for _, p in self.procs:
            p.wait()
        kill_ranks(self.rd)  # nothing on this host, normally; harmless

    def remove_containers(self) -> None:
        for t in self.threads:
            t.join(timeout=5)
        for _, p in self.procs:
            try:
                p.c.remove(force=True)
            except Exception:
                pass

    def finish(self) -> int:
        for t in self.threads:
            t.join(timeout=5)  # the containers' last lines are in the node logs
        for node, p in self.procs:
            if p.oom:
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
