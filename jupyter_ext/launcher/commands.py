"""Pure argv/env builders: what runs, independent of where it runs.

Every training process starts through ``jupyter_ext.launcher.rank_entry`` (same process as the
script), so one-process, torchrun and mpirun jobs share the environment contract, the per-rank
log files and the per-rank error files. ``{MASTER_PORT}`` in an argv or env value is filled in by
the supervisor with a free port when the job starts.
"""

from __future__ import annotations

import os

from .spec import DistributedSpec, NodeSpec, RunSpec

ENTRY = ["-m", "jupyter_ext.launcher.rank_entry"]
MASTER_ADDR = "127.0.0.1"
PORT = "{MASTER_PORT}"


def build_nodes(spec: RunSpec, is_root: bool | None = None) -> list[NodeSpec]:
    d = spec.distributed
    if d is None or (d.kind == "pytorch" and d.world_size == 1 and d.max_restarts == 0):
        return python_command(spec)
    if d.kind == "mpi":
        return mpirun_command(spec, d, os.geteuid() == 0 if is_root is None else is_root)
    return torchrun_commands(spec, d)


def _node_cwd(i: int) -> str:
    return "wd" if i == 0 else f"wd_node{i}"


def _gpu_env(spec: RunSpec, i: int) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": spec.node_gpus[i]} if i < len(spec.node_gpus) else {}


def python_command(spec: RunSpec) -> list[NodeSpec]:
    """A one-process job: ``python script args...`` in the run's working copy."""
    argv = [spec.python, "-u", *ENTRY, spec.script, *[str(a) for a in spec.arguments]]
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
           "NODE_RANK": "0", **_gpu_env(spec, 0)}
    return [NodeSpec(rank=0, argv=argv, env=env, log_name="rank_0")]


def torchrun_commands(spec: RunSpec, d: DistributedSpec) -> list[NodeSpec]:
    """One torchrun per node. Without restarts: static rendezvous on node 0, so node i holds
    ranks i*p .. i*p+p-1. With ``max_restarts``: c10d rendezvous on node 0, which re-forms the
    group after a restart (static cannot), at the price of ranks going to nodes in arrival
    order; NODE_RANK then follows torchrun's GROUP_RANK."""
    elastic = d.max_restarts > 0
    nodes = []
    for i in range(d.nodes):
        argv = [spec.python, "-m", "torch.distributed.run", f"--nnodes={d.nodes}",
                f"--nproc-per-node={d.procs_per_node}", f"--max-restarts={d.max_restarts}"]
        if elastic:
            argv += ["--rdzv-backend=c10d", f"--rdzv-endpoint={MASTER_ADDR}:{PORT}",
                     f"--rdzv-id={spec.run_id}"]
        else:
            argv += [f"--node-rank={i}", f"--master-addr={MASTER_ADDR}", f"--master-port={PORT}"]
        # "--": the script's arguments are never torchrun's, even where they look like its
        # options or their abbreviations ("--n", "--log", "--master-port")
        argv += ["-m", "--", "jupyter_ext.launcher.rank_entry", spec.script, *[str(a) for a in spec.arguments]]
        env = {"JUPYTER_TRAIN_BACKEND": d.backend or "", **_gpu_env(spec, i)}
        if not elastic:
            env["NODE_RANK"] = str(i)
        nodes.append(NodeSpec(rank=i, argv=argv, env=env, cwd=_node_cwd(i), log_name=f"node_{i}"))
    return nodes


def mpirun_command(spec: RunSpec, d: DistributedSpec, is_root: bool) -> list[NodeSpec]:
    """One mpirun for all nodes' slots on this host; rank_entry maps OMPI_* to the DDP names."""
    argv = ["mpirun", "-np", str(d.world_size), "--oversubscribe", "--bind-to", "none"]
    if is_root:
        argv.append("--allow-run-as-root")
    argv += [spec.python, "-u", *ENTRY, spec.script, *[str(a) for a in spec.arguments]]
    env = {"MASTER_ADDR": MASTER_ADDR, "MASTER_PORT": PORT,
           "JUPYTER_TRAIN_PROCS_PER_NODE": str(d.procs_per_node)}
    if spec.node_gpus:
        env["JUPYTER_TRAIN_NODE_GPUS"] = ";".join(spec.node_gpus)
    return [NodeSpec(rank=0, argv=argv, env=env, cwd="wd", log_name="mpirun")]


def supervisor_command(python: str, run_dir: str) -> list[str]:
    return [python, "-m", "jupyter_ext.launcher.supervisor", run_dir]
