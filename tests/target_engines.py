"""The engines behind the four target kinds for the target contract suite (test_target_contract):
what to create on a RunManager, the environment a run names there, and what of a run may still
be running. One dockerd and one Ray head at a time, started by ``Engine.start`` and stopped by
``Engine.stop`` (the suite's module-scoped ``engine`` fixture)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.faults.test_processes import tagged

# The job of the behaviour contracts: ``job.py finish TAG`` logs a metric and writes an output;
# ``job.py linger TAG`` starts a child and runs until stopped. TAG is in every command line.
JOB = '''"""The target contract suite's job."""
import os, subprocess, sys, time

mode, tag = sys.argv[1], sys.argv[2]
if mode == "finish":
    from kernel_lib.tracking import Run

    Run.get_context().log("answer", 42)
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/answer.txt", "w") as f:
        f.write(tag)
    print("finished", tag, flush=True)
else:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", tag])
    print("working", os.getpid(), child.pid, flush=True)
    time.sleep(600)
'''


class Engine:
    """The built-in local target: nothing to start, nothing to create."""

    kind = "local"
    name = "local"
    queues = False  # runs wait for nodes (a SlotPool); the local target runs them side by side

    def start(self) -> "Engine":
        return self

    def stop(self) -> None:
        pass

    def body(self) -> dict | None:
        """POST /computes' body for the target the runs go to (None: built in)."""
        return None

    environment: dict | None = None  # SubmitRequest.environment of the contract's runs

    def leftovers(self, run_id: str, tag: str) -> list[str]:
        """What of a run is still running: its tagged processes (containers' too: they are
        processes of this host) and, on Docker, its containers."""
        return [f"process {pid}" for pid in tagged(tag)]

    def running(self, rd, node) -> dict:
        """What runs as ``node`` (a NodeRequest) of the run in ``rd``: its argv, environment and
        working directory, from /proc (the job prints its pid: "working PID CHILD")."""
        pid = int((rd.logs / f"{node.log}.txt").read_text().split("working ", 1)[1].split()[0])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(e.decode().partition("=")[::2] for e in f.read().split(b"\0") if e)
        return {"argv": argv, "env": env, "cwd": os.readlink(f"/proc/{pid}/cwd")}

    def wait_gone(self, run_id: str, tag: str, within_s: float) -> list[str]:
        deadline = time.monotonic() + within_s
        while (left := self.leftovers(run_id, tag)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


class ClusterEngine(Engine):
    kind = "cluster"
    name = "contract-cluster"
    queues = True

    def body(self) -> dict:
        return {"name": self.name, "kind": "cluster", "vm_size": "cpu:1", "max_nodes": 1}


class DockerEngine(Engine):
    """A private dockerd (tests/dockerd.py) with the skeleton image, as tests/test_docker.py."""

    kind = "docker"
    name = "contract-docker"
    queues = True

    def start(self) -> "DockerEngine":
        from tests.dockerd import Dockerd
        from tests.test_docker import SKELETON, _need_docker

        _need_docker()
        self.dockerd = Dockerd().start()
        self.dockerd.import_skeleton(SKELETON)
        self.environment = {"name": "contract-skeleton", "docker_base_image": SKELETON,
                            "interpreter_path": sys.executable}  # this host's, mounted in
        return self

    def stop(self) -> None:
        self.dockerd.stop()

    def body(self) -> dict:
        from tests.test_docker import PY_VOLUMES

        return {"name": self.name, "kind": "docker", "base_url": self.dockerd.url, "max_nodes": 1,
                "volumes": dict(PY_VOLUMES)}

    def running(self, rd, node) -> dict:
        """The node's container as the engine has it (its pids are the container's own)."""
        c = self.dockerd.client.containers.get(node.where["container"])
        config, host = c.attrs["Config"], c.attrs["HostConfig"]
        return {"argv": list(config["Cmd"]), "env": dict(e.partition("=")[::2] for e in config["Env"]),
                "cwd": config["WorkingDir"], "image": config["Image"], "network": host["NetworkMode"],
                "mounts": {m["Source"]: m["Destination"] + ("" if m["RW"] else ":ro") for m in c.attrs["Mounts"]}}

    def leftovers(self, run_id: str, tag: str) -> list[str]:
        found = self.dockerd.client.containers.list(all=True, filters={"label": f"jupyter-train.run-id={run_id}"})
        return super().leftovers(run_id, tag) + [f"container {c.name}" for c in found]


class RayEngine(Engine):
    """A Ray head on loopback (ray.cluster_utils), its CPUs for the contract's one-node runs."""

    kind = "ray"
    name = "contract-ray"
    queues = True

    def start(self) -> "RayEngine":
        need_ray()
        from ray.cluster_utils import Cluster

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind to loopback on this host
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False})
        self.cluster.wait_for_nodes()
        return self

    def stop(self) -> None:
        self.cluster.shutdown()

    def body(self) -> dict:
        return {"name": self.name, "kind": "ray", "address": self.cluster.address, "max_nodes": 1,
                "node_shape": {"CPU": 1}}


def need_ray() -> None:
    if os.environ.get("CI") == "true":
        import ray  # noqa: F401  (.ci/run installs it: never skip there)
    else:
        pytest.importorskip("ray")


ENGINES = {e.kind: e for e in (Engine, ClusterEngine, DockerEngine, RayEngine)}
