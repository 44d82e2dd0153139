"""Pure command builders, the late-bound variables and the environment contract: no processes,
no Docker, Ray or GPUs needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jupyter_ext.errors import InvalidRequest
from jupyter_ext.launcher.cluster_target import ClusterConfig, ClusterTarget, parse_shape
from jupyter_ext.launcher.commands import (RSH_AGENT, build_nodes, container_name, fill, late_names,
                                           supervisor_command)
from jupyter_ext.launcher.host import Host
from jupyter_ext.launcher.rank_entry import complete_env
from jupyter_ext.launcher.spec import DistributedSpec, DockerPlacement, Placement, RayPlacement, RunSpec

LATE = {"MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29500", "PYTHON": "/node/python", "RUN_DIR": "/runs/r"}


def spec(**kw):
    return RunSpec(run_id="r", experiment="e", script="train.py", arguments=["--lr", "0.1"],
                   python="/usr/bin/python3", **kw)


def test_one_process_job():
    (node,) = build_nodes(spec())
    assert node.argv == ["/usr/bin/python3", "-u", "-m", "jupyter_ext.launcher.rank_entry", "train.py",
                         "--lr", "0.1"]
    assert node.env["RANK"] == "0" and node.log_name == "rank_0"
    assert late_names(spec(), [node]) == set()


def test_torchrun_per_node_with_disjoint_gpus():
    cluster = ClusterTarget(ClusterConfig("g", vm_size="gpu:2", max_nodes=2), Host(gpus_given=["0", "1", "2", "3"]))
    s = spec(distributed=DistributedSpec("pytorch", nodes=2, procs_per_node=2, backend="nccl"))
    cluster.validate_job(s.distributed)  # GPUs present: NCCL is fine
    cluster.place(s, cluster.allocate("r", 2))
    nodes = s.nodes
    assert [n.env["CUDA_VISIBLE_DEVICES"] for n in nodes] == ["0,1", "2,3"]
    assert [n.cwd for n in nodes] == ["wd", "wd_node1"]
    for i, n in enumerate(nodes):
        assert n.argv[:3] == ["/usr/bin/python3", "-m", "torch.distributed.run"]
        assert {"--nnodes=2", "--nproc-per-node=2", f"--node-rank={i}", "--master-addr={MASTER_ADDR}",
                "--master-port={MASTER_PORT}", "--max-restarts=0"} <= set(n.argv)
        assert n.env["NODE_RANK"] == str(i)
        filled = fill(s, n, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1234"})
        assert {"--master-addr=127.0.0.1", "--master-port=1234"} <= set(filled.argv)
    # with restarts: c10d rendezvous (static cannot re-form a group)
    s.distributed.max_restarts = 3
    for n in build_nodes(s):
        assert {"--rdzv-backend=c10d", "--rdzv-endpoint={MASTER_ADDR}:{MASTER_PORT}", "--rdzv-id=r",
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
        parsed = get_args_parser().parse_args(fill(s, node, LATE).argv[3:])
        assert parsed.module and parsed.training_script == "jupyter_ext.launcher.rank_entry"
        assert parsed.training_script_args == ["train.py", *args]


@pytest.mark.parametrize("dist", [None, DistributedSpec("pytorch", nodes=2, procs_per_node=2),
                                  DistributedSpec("mpi", nodes=2, procs_per_node=1)])
def test_late_bound_variables_are_filled_only_in_the_launchers_part(dist):
    """A script's own arguments are the user's: "{MASTER_PORT}" there stays as written (rank_entry
    expands $MASTER_PORT per process for those who want the port)."""
    user = ["--port", "{MASTER_PORT}", "{MASTER_ADDR}:{PYTHON}", "{RUN_DIR}"]
    s = spec(distributed=dist, placement=Placement(kind="cluster", nodes=[0, 1]))
    s.arguments = user
    for node in build_nodes(s, is_root=False):
        filled = fill(s, node, LATE)
        assert filled.argv[-5:] == ["train.py", *user]  # exactly as the user wrote them
        launcher = " ".join(filled.argv[:-5]) + " " + " ".join(filled.env.values())
        assert "{" not in launcher  # every late-bound variable of the launcher's part is filled
        if dist is not None:
            assert "29500" in launcher and "10.0.0.7" in launcher
        assert node.argv[-5:] == filled.argv[-5:] and node is not filled  # fill returns a copy


def test_a_late_bound_variable_without_a_value_is_named():
    s = spec(distributed=DistributedSpec("pytorch", nodes=2))
    node = build_nodes(s)[0]
    assert late_names(s, [node]) == {"MASTER_ADDR", "MASTER_PORT"}
    with pytest.raises(KeyError, match="MASTER_PORT"):
        fill(s, node, {"MASTER_ADDR": "127.0.0.1"})


def test_mpirun_maps_ompi_ranks_to_nodes_and_gpus():
    s = spec(distributed=DistributedSpec("mpi", nodes=2, procs_per_node=2),
             placement=Placement(kind="cluster", nodes=[0, 1], node_gpus=["0", "1"]))
    (node,) = build_nodes(s, is_root=True)
    assert node.argv[:3] == ["mpirun", "-np", "4"] and "--allow-run-as-root" in node.argv
    assert "--host" not in node.argv  # every slot on this host
    assert node.env["JUPYTER_TRAIN_NODE_GPUS"] == "0;1"
    node = fill(s, node, LATE)
    env = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", **node.env, "MASTER_PORT": "1234"}
    assert complete_env(env) == 3
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"], env["NODE_RANK"]) == \
        ("3", "4", "1", "2", "1")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == "tcp://10.0.0.7:1234"
    assert env["AZ_BATCHAI_TASK_INDEX"] == "1"


def docker(**kw):
    return DockerPlacement(target="d", nodes=[0, 1], base_url="tcp://engine:2375", image="img:1", **kw)


def test_mpirun_on_docker_is_final_argv_with_the_containers_as_hosts():
    s = spec(distributed=DistributedSpec("mpi", nodes=2, procs_per_node=2), placement=docker(),
             env={"MY_VAR": "1"})
    s.python = "/opt/py/bin/python3"  # the image's interpreter (prepare sets it)
    (node,) = build_nodes(s, is_root=False)
    argv = node.argv
    hosts = argv[argv.index("--host") + 1]
    assert hosts == f"{container_name('r', 0)}:2,{container_name('r', 1)}:2" == "jt-r-node0:2,jt-r-node1:2"
    assert argv[argv.index("plm_rsh_agent") + 1] == f"{sys.executable} {RSH_AGENT}"
    assert argv[argv.index("-wdir") + 1] == "{RUN_DIR}/wd"
    exports = [argv[i + 1] for i, a in enumerate(argv) if a == "-x"]
    assert "=" not in "".join(exports)  # names: the values come from mpirun's own environment
    assert {"MY_VAR", "MASTER_ADDR", "MASTER_PORT", "JUPYTER_TRAIN_PROCS_PER_NODE", "JUPYTER_TRAIN_RUN_ID",
            "JUPYTER_TRAIN_RUN_DIR", "JUPYTER_TRAIN_METRICS_DIR", "PYTHONPATH"} <= set(exports)
    assert "JUPYTER_TRAIN_DOCKER_URL" not in exports and node.env["JUPYTER_TRAIN_DOCKER_URL"] == "tcp://engine:2375"
    assert argv[-7:] == ["/opt/py/bin/python3", "-u", "-m", "jupyter_ext.launcher.rank_entry", "train.py",
                         "--lr", "0.1"]
    filled = fill(s, node, LATE)
    assert filled.argv[filled.argv.index("-wdir") + 1] == "/runs/r/wd"


def test_docker_nodes_run_the_images_python_and_see_their_gpus_renumbered():
    s = spec(distributed=DistributedSpec("pytorch", nodes=2, procs_per_node=1),
             placement=docker(node_gpus=["2,3", "4,5"]))
    s.python = "/opt/py/bin/python3"
    nodes = build_nodes(s)
    assert [n.argv[0] for n in nodes] == ["/opt/py/bin/python3"] * 2
    assert [n.env["CUDA_VISIBLE_DEVICES"] for n in nodes] == ["0,1", "0,1"]  # the container's numbers
    mpi = spec(distributed=DistributedSpec("mpi", nodes=2, procs_per_node=2), placement=docker(node_gpus=["2,3", "4,5"]))
    assert build_nodes(mpi)[0].env["JUPYTER_TRAIN_NODE_GPUS"] == "0,1;0,1"  # each rank, in its container
    assert "--master-addr={MASTER_ADDR}" in nodes[1].argv  # host network: node 0 is on loopback
    s.placement.network = "jt-net"  # a network of its own: node 0 by its container's name
    assert "--master-addr=jt-r-node0" in build_nodes(s)[1].argv


def test_ray_nodes_get_their_interpreter_late():
    s = spec(distributed=DistributedSpec("pytorch", nodes=2, procs_per_node=2),
             placement=RayPlacement(target="ray", nodes=[0, 1], address="127.0.0.1:6379", shape={"CPU": 2}))
    nodes = build_nodes(s)
    assert [n.argv[0] for n in nodes] == ["{PYTHON}"] * 2
    assert late_names(s, nodes) == {"PYTHON", "MASTER_ADDR", "MASTER_PORT"}
    filled = fill(s, nodes[1], LATE)
    assert filled.argv[0] == "/node/python" and "--master-addr=10.0.0.7" in filled.argv


def test_torchrun_env_gets_node_rank_from_group_rank():
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "GROUP_RANK": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert complete_env(env) == 5 and env["NODE_RANK"] == "2" and env["AZ_BATCHAI_TASK_INDEX"] == "2"


def test_the_supervisor_entry_picks_its_class_by_placement_kind_without_a_cycle():
    from jupyter_ext.launcher.registry import supervisor_class

    assert supervisor_command("/py", "/runs/r") == ["/py", "-m", "jupyter_ext.launcher.supervise", "/runs/r"]
    assert supervisor_class("local").__name__ == supervisor_class("cluster").__name__ == "Supervisor"
    assert supervisor_class("docker").__name__ == "DockerSupervisor"
    # the base supervisor knows no engine (no import cycle), and the old entry still answers
    code = ("import sys, jupyter_ext.launcher.supervisor as s\n"
            "assert not [m for m in sys.modules if m.endswith(('docker_supervisor', 'ray_supervisor'))]\n"
            "sys.exit(s.main(['/nonexistent']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: python -m jupyter_ext.launcher.supervise RUN_DIR" in done.stderr


def test_shapes_and_capacity():
    assert parse_shape("cpu:4") == (4, 0) and parse_shape("gpu:8")[1] == 8
    assert parse_shape("tiny", {"tiny": (1, 0)}) == (1, 0)
    with pytest.raises(InvalidRequest, match="not a node shape"):
        parse_shape("gpu:0")
    with pytest.raises(InvalidRequest, match="needs 8 GPU"):
        ClusterConfig("c", vm_size="gpu:4", max_nodes=2).validate(gpus_on_host=4)
    c = ClusterTarget(ClusterConfig("c", vm_size="cpu:1", max_nodes=2, idle_seconds_before_scaledown=5),
                      Host(gpus_given=[]))
    with pytest.raises(InvalidRequest, match="Gloo"):
        c.validate_job(DistributedSpec("pytorch", nodes=1, backend="nccl"))
    a = c.allocate("a", 2)
    assert a == [0, 1] and c.allocate("b", 1) is None  # full: b waits
    c.release("a")
    assert c.describe()["node_counts"]["idle"] == 2
    c.slots.tick(now=c.nodes[0].since + 6)  # idle longer than the scale-down time
    assert c.describe()["nodes"] == 0
