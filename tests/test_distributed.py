"""Distributed jobs with real processes: torchrun + torch.distributed on gloo, and OpenMPI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kernel_lib import (ClusterCompute, ComputeTarget, ComputeTargetNotFound, Experiment,
                        MpiConfiguration, PyTorchConfiguration, ScriptRunConfig)
from kernel_lib.client import TrainError

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")


@pytest.fixture
def cluster(ws):
    cfg = ClusterCompute.provisioning_configuration(vm_size="cpu:1", min_nodes=0, max_nodes=2,
                                                    idle_seconds_before_scaledown=600)
    return ComputeTarget.create(ws, "cpu-cluster", cfg)


def test_ddp_on_digits_2_nodes_x_2_processes(ws, cluster):
    src = ScriptRunConfig(SCRIPTS, "ddp_digits.py", ["--epochs", 8, "--tag", "r$RANK-n$NODE_RANK"],
                          compute_target=cluster,
                          distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2))
    run = Experiment(ws, "ddp").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log("node_0.txt") + run.get_log("rank_3.txt")
    history = run.get_metrics_history()
    ranks = {m["rank"] for m in history}
    assert ranks == {0, 1, 2, 3}  # per-rank metrics, tagged with the rank
    identical = [m for m in history if m["name"] == "params_identical"]
    assert len(identical) == 4 and all(m["value"] == 1 for m in identical)
    final_acc = [m["value"] for m in history if m["name"] == "val_acc" and m["step"] == 7]
    assert len(final_acc) == 4 and min(final_acc) >= 0.9, final_acc
    logs = {entry["name"] for entry in run.get_logs()}
    assert {"rank_0.txt", "rank_1.txt", "rank_2.txt", "rank_3.txt", "node_0.txt", "node_1.txt"} <= logs
    for rank in range(4):
        env = dict(kv.split("=", 1) for kv in run.get_log(f"rank_{rank}.txt").split("\n")[0].split()[1:])
        node = rank // 2
        assert env["RANK"] == str(rank) and env["WORLD_SIZE"] == "4" and env["LOCAL_RANK"] == str(rank % 2)
        assert env["LOCAL_WORLD_SIZE"] == "2" and env["NODE_RANK"] == str(node)
        assert env["AZ_BATCHAI_TASK_INDEX"] == str(node) and env["MASTER_ADDR"] == "127.0.0.1"
        assert env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == f"tcp://127.0.0.1:{env['MASTER_PORT']}"
        assert env["tag"] == f"r{rank}-n{node}"  # $VAR expanded per process
        assert env["cwd"].endswith("/wd" if node == 0 else f"/wd_node{node}")  # a directory per node
    assert "outputs/model.pt" in run.get_file_names()




def test_mpi_job_2_x_2_sees_ranks_0_to_3(ws, cluster):
    if shutil.which("mpirun") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpirun (Debian's openmpi-bin) is missing; .ci/run installs it")
        pytest.skip("mpirun is not installed")
    src = ScriptRunConfig(SCRIPTS, "mpi_ranks.py", compute_target=cluster,
                          distributed_job_config=MpiConfiguration(process_count_per_node=2, node_count=2))
    run = Experiment(ws, "mpi").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log("mpirun.txt")
    metrics = run.get_metrics_history()
    assert sorted(m["value"] for m in metrics if m["name"] == "rank") == [0, 1, 2, 3]
    assert {m["value"] for m in metrics if m["name"] == "rank_sum"} == {6.0}
    for rank in range(4):
        line = run.get_log(f"rank_{rank}.txt").split("\n")[0]
        assert f"OMPI_COMM_WORLD_RANK={rank} OMPI_COMM_WORLD_SIZE=4 RANK={rank} WORLD_SIZE=4" in line
        assert f"LOCAL_RANK={rank % 2} NODE_RANK={rank // 2}" in line


def test_two_2_node_runs_on_a_2_node_cluster_run_one_after_the_other(ws, cluster):
    dist = PyTorchConfiguration("Gloo", process_count=2, node_count=2)
    src = ScriptRunConfig(SCRIPTS, "sleep_a_bit.py", compute_target=cluster, distributed_job_config=dist,
                          environment_variables={"SLEEP": "2"})
    first = Experiment(ws, "queue").submit(src)
    second = Experiment(ws, "queue").submit(src)
    assert second.get_details()["status"] == "Queued"
    assert second.get_details()["queue_position"] == 1
    status = cluster.get_status()
    assert status["busy"] == 2 and status["queue"] == [second.id]
    a, b = first.wait_for_completion(), second.wait_for_completion()
    assert a["status"] == b["status"] == "Completed"
    assert b["started_at"] >= a["ended_at"]
    assert cluster.get_status()["idle"] == 2


def test_cluster_lifecycle_and_refusals(ws):
    with pytest.raises(ComputeTargetNotFound, match="No compute target 'nope'"):
        ComputeTarget(workspace=ws, name="nope")
    with pytest.raises(TrainError, match="is not a node shape"):
        ComputeTarget.create(ws, "bad", ClusterCompute.provisioning_configuration(vm_size="huge"))
    with pytest.raises(TrainError, match="GPU"):
        ComputeTarget.create(ws, "gpus", ClusterCompute.provisioning_configuration(vm_size="gpu:64", max_nodes=1))
    c = ComputeTarget.create(ws, "small", ClusterCompute.provisioning_configuration(
        vm_size="cpu:1", min_nodes=1, max_nodes=1, idle_seconds_before_scaledown=1))
    st = c.wait_for_completion(show_output=True, min_node_count=1)
    assert st["idle"] == 1 and st["current_node_count"] == 1
    assert {t.name for t in ComputeTarget.list(ws)} == {"local", "small"}
    too_big = ScriptRunConfig(SCRIPTS, "sleep_a_bit.py", compute_target="small",
                              distributed_job_config=PyTorchConfiguration("Gloo", node_count=2))
    with pytest.raises(TrainError, match="needs 2 nodes; cluster 'small' has at most 1"):
        Experiment(ws, "x").submit(too_big)
    nccl = ScriptRunConfig(SCRIPTS, "sleep_a_bit.py", compute_target="small",
                           distributed_job_config=PyTorchConfiguration("Nccl", node_count=1))
    with pytest.raises(TrainError, match="Gloo"):
        Experiment(ws, "x").submit(nccl)
    c.delete()
    with pytest.raises(ComputeTargetNotFound):
        ComputeTarget(ws, "small")


def test_train_magic_runs_a_distributed_cell_on_the_same_path(ws, cluster, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("JUPYTER_TRAIN_WORKSPACE", str(ws.path))
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("kernel_lib")
    cell = Path(SCRIPTS, "ddp_digits.py").read_text()
    run = shell.run_cell_magic(
        "train", "--experiment ddp-magic --compute cpu-cluster --nodes 2 --procs-per-node 1 "
                 "--backend gloo --wait -- --epochs 2", cell)
    assert run.status == "Completed", run.error
    assert {m["rank"] for m in run.get_metrics_history("params_identical")} == {0, 1}
    assert {e["name"] for e in run.get_logs()} >= {"node_0.txt", "node_1.txt", "rank_0.txt", "rank_1.txt"}
