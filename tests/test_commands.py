"""Pure command builders and the environment contract: no processes, no GPUs needed."""

from __future__ import annotations

import pytest

from jupyter_ext.errors import InvalidRequest
from jupyter_ext.launcher.cluster_target import ClusterConfig, ClusterTarget, parse_shape
from jupyter_ext.launcher.commands import build_nodes
from jupyter_ext.launcher.rank_entry import complete_env
from jupyter_ext.launcher.spec import DistributedSpec, RunSpec


def spec(**kw):
    return RunSpec(run_id="r", experiment="e", script="train.py", arguments=["--lr", "0.1"],
                   python="/usr/bin/python3", **kw)


def test_one_process_job():
    (node,) = build_nodes(spec())
    assert node.argv == ["/usr/bin/python3", "-u", "-m", "jupyter_ext.launcher.rank_entry", "train.py",
                         "--lr", "0.1"]
    assert node.env["RANK"] == "0" and node.log_name == "rank_0"


def test_torchrun_per_node_with_disjoint_gpus():
    cluster = ClusterTarget(ClusterConfig("g", vm_size="gpu:2", max_nodes=2), gpus=["0", "1", "2", "3"])
    cluster.check_job(2, 2, "nccl")  # GPUs present: NCCL is fine
    idx = cluster.allocate("r", 2)
    s = spec(distributed=DistributedSpec("pytorch", nodes=2, procs_per_node=2, backend="nccl"))
    s.node_gpus = cluster.node_gpus(idx)
    nodes = build_nodes(s)
    assert [n.env["CUDA_VISIBLE_DEVICES"] for n in nodes] == ["0,1", "2,3"]
    assert [n.cwd for n in nodes] == ["wd", "wd_node1"]
    for i, n in enumerate(nodes):
        assert n.argv[:3] == ["/usr/bin/python3", "-m", "torch.distributed.run"]
        assert {"--nnodes=2", "--nproc-per-node=2", f"--node-rank={i}", "--master-addr=127.0.0.1",
                "--master-port={MASTER_PORT}", "--max-restarts=0"} <= set(n.argv)
        assert n.env["NODE_RANK"] == str(i)
    # with restarts: c10d rendezvous (static cannot re-form a group)
    s.distributed.max_restarts = 3
    for n in build_nodes(s):
        assert {"--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:{MASTER_PORT}", "--rdzv-id=r",
                "--max-restarts=3"} <= set(n.argv)
        assert "NODE_RANK" not in n.env and not any(a.startswith("--node-rank") for a in n.argv)
        assert n.argv[-6:] == ["-m", "--", "jupyter_ext.launcher.rank_entry", "train.py", "--lr", "0.1"]


@pytest.mark.parametrize("restarts", [0, 2])
def test_script_arguments_that_look_like_torchruns_own_stay_the_scripts(restarts):
    """torchrun's parser (argparse, abbreviations allowed) would take "--n" as ambiguous and
    "--master-port" as its own; after "--" they all reach the script."""
    from torch.distributed.run import get_args_parser

    args = ["--n", "40", "--master-port", "1", "--log", "x", "--", "tail"]
    s = spec(distributed=DistributedSpec("pytorch", nodes=2, procs_per_node=1, max_restarts=restarts))
    s.arguments = args
    for node in build_nodes(s):
        parsed = get_args_parser().parse_args([a.replace("{MASTER_PORT}", "29500") for a in node.argv[3:]])
        assert parsed.module and parsed.training_script == "jupyter_ext.launcher.rank_entry"
        assert parsed.training_script_args == ["train.py", *args]


def test_mpirun_maps_ompi_ranks_to_nodes_and_gpus():
    s = spec(distributed=DistributedSpec("mpi", nodes=2, procs_per_node=2), node_gpus=["0", "1"])
    (node,) = build_nodes(s, is_root=True)
    assert node.argv[:3] == ["mpirun", "-np", "4"] and "--allow-run-as-root" in node.argv
    assert node.env["JUPYTER_TRAIN_NODE_GPUS"] == "0;1"
    env = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", **node.env, "MASTER_PORT": "1234"}
    assert complete_env(env) == 3
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"], env["NODE_RANK"]) == \
        ("3", "4", "1", "2", "1")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == "tcp://127.0.0.1:1234"
    assert env["AZ_BATCHAI_TASK_INDEX"] == "1"


def test_torchrun_env_gets_node_rank_from_group_rank():
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "GROUP_RANK": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert complete_env(env) == 5 and env["NODE_RANK"] == "2" and env["AZ_BATCHAI_TASK_INDEX"] == "2"


def test_shapes_and_capacity():
    assert parse_shape("cpu:4") == (4, 0) and parse_shape("gpu:8")[1] == 8
    assert parse_shape("tiny", {"tiny": (1, 0)}) == (1, 0)
    with pytest.raises(InvalidRequest, match="not a node shape"):
        parse_shape("gpu:0")
    with pytest.raises(InvalidRequest, match="needs 8 GPU"):
        ClusterConfig("c", vm_size="gpu:4", max_nodes=2).validate(gpus_on_host=4)
    c = ClusterTarget(ClusterConfig("c", vm_size="cpu:1", max_nodes=2, idle_seconds_before_scaledown=5), gpus=[])
    with pytest.raises(InvalidRequest, match="Gloo"):
        c.check_job(1, 1, "nccl")
    a = c.allocate("a", 2)
    assert a == [0, 1] and c.allocate("b", 1) is None  # full: b waits
    c.release("a")
    assert c.describe()["node_counts"]["idle"] == 2
    c.tick(now=c.nodes[0].since + 6)  # idle longer than the scale-down time
    assert c.describe()["nodes"] == 0
