"""A process boundary per run: every process a run starts, however it detaches (a new session,
a double-forked daemon, a child that ignores SIGTERM, a grandchild in a process group of its
own), is gone within 5 s of cancel and of the run's end, on every target.

The script (tests/scripts/detach.py) puts a tag in every command line it starts; survivors are
counted in this host's /proc by that tag (container processes are visible here too, under
this host's pids). Whatever a try leaves behind is SIGKILLed at teardown, so a failing try
leaves nothing running on the machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import pytest

from kernel_lib import (ClusterCompute, ComputeTarget, Experiment, PyTorchConfiguration,
                        ScriptRunConfig)
from tests.conftest import log_of
from tests.test_docker import dockerd, skeleton_env, target  # noqa: F401  (dockerd, target: fixtures)

SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")
PER_RANK = 6  # detach.py: the rank, setsid, daemon, stubborn, group parent, group grandchild
LIMIT_S = 5.0


def tagged(tag: str) -> list[int]:
    """Live (not zombie) processes of this host whose command line holds ``tag``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if tag.encode() in cmdline and stat[stat.rfind(b")") + 2:][:1] != b"Z":
            found.append(int(entry.name))
    return found


def survivors_by(tag: str, deadline: float) -> list[int]:
    """Poll until no tagged process is left or ``deadline`` (monotonic) passes."""
    while True:
        left = tagged(tag)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


class Detach:
    def __init__(self, tmp_path: Path):
        self.tag = f"jt-detach-{uuid.uuid4().hex[:12]}"
        self.pids = tmp_path / "pids"

    def args(self, then: str, pids: str | None = None, *extra) -> list:
        return ["--tag", self.tag, "--pids", pids or str(self.pids), "--then", then, *extra]

    def started(self, folder: Path | None = None) -> int:
        folder = folder or self.pids
        return len(list(folder.glob("*.pid"))) if folder.is_dir() else 0

    def wait_started(self, run, expected: int, folder: Path | None = None, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.started(folder) < expected:
            assert time.monotonic() < deadline, (f"{self.started(folder)} of {expected} detachers started: "
                                                 + log_of(run) + log_of(run, "supervisor.txt"))
            assert run.get_status() not in ("Completed", "Failed", "Canceled"), log_of(run)
            time.sleep(0.05)


@pytest.fixture
def detach(tmp_path):
    d = Detach(tmp_path)
    yield d
    for pid in tagged(d.tag):  # what a failing try left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def submit(ws, args, **config):
    return Experiment(ws, "detach").submit(ScriptRunConfig(SCRIPTS, "detach.py", args, **config))


def cancel_and_count(run, detach, fault, name: str, named=("supervisor.txt", "--role setsid")) -> None:
    """Cancel a running run whose detachers all started; 0 of them may be left 5 s later, and the
    log ``named[0]`` says what its process boundary had to end (holds ``named[1]``)."""
    t0 = time.monotonic()
    run.cancel()
    status = run.wait_for_completion(raise_on_error=False)["status"]
    left = survivors_by(detach.tag, t0 + LIMIT_S)
    note = f"all gone {time.monotonic() - t0:.2f} s after cancel" if not left else ""
    print(f"{name}: {note or f'{len(left)} left after {LIMIT_S:g} s'}")
    fault.record(name, survived=status == "Canceled" and not left, lost=len(left), unit="processes", note=note)
    assert status == "Canceled"
    assert not left, f"{len(left)} process(es) survived the cancel: " + log_of(run, "supervisor.txt")
    text = run.get_log(named[0])
    assert named[1] in text, text


def end_and_count(run, detach, fault, name: str, expected_status: str, started: int,
                  folder: Path | None = None) -> None:
    """Wait for the run's own end; 0 of its ``started`` detachers may be left 5 s after it."""
    status = run.wait_for_completion(raise_on_error=False)["status"]
    at_end = tagged(detach.tag)  # the run said it ended: its processes are gone already
    left = survivors_by(detach.tag, time.monotonic() + LIMIT_S)
    ok = status == expected_status and detach.started(folder) == started and not left and not at_end
    fault.record(name, survived=ok, lost=len(left), unit="processes")
    assert status == expected_status, log_of(run) + log_of(run, "supervisor.txt")
    assert detach.started(folder) == started, log_of(run)
    assert not left, f"{len(left)} process(es) outlived the run: " + log_of(run, "supervisor.txt")
    assert not at_end, f"{len(at_end)} process(es) still ran when the run was {status}"


# -- local target ----------------------------------------------------------------------------
def test_cancel_on_the_local_target_leaves_no_process(ws, detach, fault):
    run = submit(ws, detach.args("linger"))
    detach.wait_started(run, PER_RANK)
    cancel_and_count(run, detach, fault, "detached processes: cancel, local")


@pytest.mark.parametrize("then,status", [("exit", "Completed"), ("fail", "Failed")])
def test_the_end_of_a_local_run_leaves_no_process(ws, detach, fault, then, status):
    run = submit(ws, detach.args(then))
    end_and_count(run, detach, fault, f"detached processes: run ends ({then}), local", status, PER_RANK)
    if then == "exit":
        lines = log_of(run, "supervisor.txt").splitlines()
        # named, with how each had to go: the one that ignores SIGTERM got SIGKILL after the grace
        assert any("(SIGKILL)" in line and "--role stubborn" in line for line in lines), "\n".join(lines)
        assert any("(SIGTERM)" in line and "--role setsid" in line for line in lines), "\n".join(lines)


def test_a_sigkilled_supervisor_leaves_the_server_to_end_its_processes(ws, detach, fault):
    run = submit(ws, detach.args("linger"))
    detach.wait_started(run, PER_RANK)
    run_dir = Path(ws.path, "runs", run.id)
    os.kill(json.loads((run_dir / "supervisor.json").read_text())["pid"], signal.SIGKILL)
    details = run.wait_for_completion(raise_on_error=False)
    left = survivors_by(detach.tag, time.monotonic() + LIMIT_S)
    fault.record("detached processes: supervisor SIGKILLed", survived=details["status"] == "Failed" and not left,
                 lost=len(left), unit="processes")
    assert details["status"] == "Failed" and "supervisor" in details["error"]
    assert not left, f"{len(left)} process(es) outlived their dead supervisor"


# -- a 2-node cluster, torchrun + gloo ---------------------------------------------------------
@pytest.fixture
def cluster(ws):
    return ComputeTarget.create(ws, "cpu-cluster", ClusterCompute.provisioning_configuration(
        vm_size="cpu:1", min_nodes=0, max_nodes=2, idle_seconds_before_scaledown=600))


def ddp(cluster):
    return {"compute_target": cluster,
            "distributed_job_config": PyTorchConfiguration("Gloo", process_count=2, node_count=2)}


def test_cancel_of_a_2_node_ddp_run_leaves_no_process(ws, cluster, detach, fault):
    run = submit(ws, detach.args("linger", None, "--ddp"), **ddp(cluster))
    detach.wait_started(run, 2 * PER_RANK)
    cancel_and_count(run, detach, fault, "detached processes: cancel, 2-node DDP")


@pytest.mark.parametrize("then,extra,status",
                         [("exit", (), "Completed"), ("linger", ("--fail_rank", "1"), "Failed")],
                         ids=["ends", "rank-1-fails"])
def test_the_end_of_a_2_node_ddp_run_leaves_no_process(ws, cluster, detach, fault, then, extra, status):
    run = submit(ws, detach.args(then, None, "--ddp", *extra), **ddp(cluster))
    name = "run ends" if then == "exit" else "a rank fails"
    end_and_count(run, detach, fault, f"detached processes: {name}, 2-node DDP", status, 2 * PER_RANK)


# -- a Docker target (a real dockerd) and a Ray cluster (real, on this machine) ---------------

def test_cancel_on_a_docker_target_leaves_no_process(ws, dockerd, target, detach, fault):  # noqa: F811
    _sock, client = dockerd
    # the container sees the run directory, not this test's folder: the pids go to outputs/
    run = submit(ws, detach.args("linger", "outputs/detach"), compute_target=target, environment=skeleton_env())
    detach.wait_started(run, PER_RANK, Path(ws.path, "runs", run.id, "wd", "outputs", "detach"))
    # a container's PID namespace takes its processes with it: the supervisor names the container
    cancel_and_count(run, detach, fault, "detached processes: cancel, Docker",
                     named=("supervisor.txt", "stopped container"))
    assert client.containers.list(all=True, filters={"label": f"jupyter-train.run-id={run.id}"}) == []


def test_the_end_of_an_mpi_run_on_docker_leaves_no_process(ws, dockerd, target, detach, fault):  # noqa: F811
    """mpirun on this host, its daemons and ranks in two node containers through docker exec:
    the ranks' detachers live in containers that outlast mpirun; they end with them."""
    from kernel_lib import MpiConfiguration

    if shutil.which("mpirun") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpirun (OpenMPI) is missing; .ci/run installs it")
        pytest.skip("mpirun (OpenMPI) is not installed")
    _sock, client = dockerd
    run = submit(ws, detach.args("exit", "outputs/detach"), compute_target=target, environment=skeleton_env(),
                 distributed_job_config=MpiConfiguration(process_count_per_node=1, node_count=2))
    end_and_count(run, detach, fault, "detached processes: run ends, MPI on Docker", "Completed", 2 * PER_RANK,
                  Path(ws.path, "runs", run.id, "outputs", "detach"))
    assert client.containers.list(all=True, filters={"label": f"jupyter-train.run-id={run.id}"}) == []


@pytest.fixture
def ray_head():
    """A one-node Ray cluster on this machine (ray.cluster_utils; the head runs the job)."""
    if os.environ.get("CI") == "true":
        import ray  # noqa: F401  (CI installs it with the test extras: never skip there)
    else:
        pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback; before ``ws`` starts the server
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "node_ip_address": "127.0.0.1",
                                                              "include_dashboard": False})
    yield cluster
    cluster.shutdown()


def test_cancel_on_a_ray_node_leaves_no_process(ray_head, ws, detach, fault):
    """The node keeper (a subreaper) ends what the command started, however it detached."""
    from kernel_lib import RayCompute

    on_ray = ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(
        address=ray_head.address, node_shape={"CPU": 2}, max_nodes=1))
    run = submit(ws, detach.args("linger"), compute_target=on_ray)
    detach.wait_started(run, PER_RANK)
    cancel_and_count(run, detach, fault, "detached processes: cancel, Ray node",
                     named=("rank_0.txt", "--role setsid"))
