"""The Ray target against a real multi-node Ray cluster on this machine (ray.cluster_utils:
a head and two worker nodes, bound to loopback, shut down by the processes it started)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from kernel_lib import (ComputeTarget, Experiment, MpiConfiguration, PyTorchConfiguration, RayCompute,
                        ScriptRunConfig, Workspace)
from kernel_lib.client import TrainError
from tests.conftest import log_of

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind to loopback on this host


@pytest.fixture(scope="module")
def ray_cluster():
    if os.environ.get("CI") == "true":
        import ray  # noqa: F401  (CI installs it with the test extras: never skip there)
    else:
        pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                              "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()


@pytest.fixture
def ws(headless, workspace_dir):
    headless(workspace_dir)
    return Workspace(workspace_dir)


@pytest.fixture
def target(ws, ray_cluster):
    cluster, _ = ray_cluster
    return ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(
        address=cluster.address, node_shape={"CPU": 2}, max_nodes=2))


def test_ddp_on_two_ray_nodes_of_two_processes(ws, target):
    src = ScriptRunConfig(SCRIPTS, "ddp_digits.py", ["--epochs", 4], compute_target=target,
                          distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2))
    run = Experiment(ws, "ray-ddp").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run, "node_0.txt") + log_of(run, "supervisor.txt")
    history = run.get_metrics_history()
    identical = [m for m in history if m["name"] == "params_identical"]
    assert {m["rank"] for m in identical} == {0, 1, 2, 3} and all(m["value"] == 1 for m in identical)
    for rank in range(4):  # every rank's log reached the run directory
        first = log_of(run, f"rank_{rank}.txt").split("\n")[0]
        assert f"RANK={rank} " in first and f"NODE_RANK={rank // 2} " in first
    assert ComputeTarget(ws, "ray").details["kind"] == "ray"


def test_cancel_ends_every_process(ws, target):
    run = Experiment(ws, "ray").submit(ScriptRunConfig(SCRIPTS, "linger.py", compute_target=target))
    deadline = time.monotonic() + 90
    while "working" not in log_of(run):
        assert time.monotonic() < deadline, log_of(run, "supervisor.txt")
        time.sleep(0.2)
    pids = [int(p) for p in log_of(run).split("\n")[0].split()[1:3]]
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    time.sleep(0.5)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_node_killed_mid_run_fails_the_run_naming_it(ws, target, ray_cluster):
    cluster, workers = ray_cluster
    # two nodes, so the job has a bundle on the worker that goes away
    run = Experiment(ws, "ray").submit(ScriptRunConfig(
        SCRIPTS, "linger.py", compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2)))
    deadline = time.monotonic() + 90
    while "working" not in log_of(run):
        assert time.monotonic() < deadline, log_of(run, "supervisor.txt")
        time.sleep(0.2)
    victim = workers[-1]
    victim_id = victim.node_id
    cluster.remove_node(victim, allow_graceful=False)
    workers.remove(victim)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed", details
    # the message names the job's node on the Ray node that went away (SPREAD picks which one)
    assert re.match(rf"Node [01] \(127\.0\.0\.1, Ray node {victim_id[:12]}\) died", details["error"]), \
        (victim_id, details["error"])


def test_mpi_is_refused_with_a_message(ws, target):
    src = ScriptRunConfig(SCRIPTS, "mpi_ranks.py", compute_target=target,
                          distributed_job_config=MpiConfiguration(process_count_per_node=1, node_count=2))
    with pytest.raises(TrainError, match="MPI jobs do not run on the Ray target"):
        Experiment(ws, "ray").submit(src)


def test_a_local_head_started_by_the_target(ws):
    """address=None: the target starts a Ray head on loopback for the run (and stops it with the
    server), for trying Ray on one machine."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray")
    local = ComputeTarget.create(ws, "ray-local", RayCompute.provisioning_configuration(max_nodes=1))
    assert local.details["address"] == "local head"
    run = Experiment(ws, "ray").submit(ScriptRunConfig(SCRIPTS, "count.py", ["--n", 3], compute_target=local))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run, "supervisor.txt") + log_of(run)
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3]
