"""Pure argv/env builders: what runs, given where it runs (``spec.placement``).

Every training process starts through ``jupyter_ext.launcher.rank_entry`` (same process as the
script), so one-process, torchrun and mpirun jobs share the environment contract, the per-rank
log files and the per-rank error files. The argv built here is final: no supervisor rewrites it.
What is only known when a node starts is a late-bound variable (LATE): ``{MASTER_ADDR}`` (node
0's address), ``{MASTER_PORT}`` (a free port there), ``{PYTHON}`` (a Ray node's interpreter) and
``{RUN_DIR}`` (where the run's files are), filled by ``fill`` in the launcher's part of the argv
and in the node's env, never in the script's own arguments (they come last: script, args).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Mapping

from .. import contract as C
from .datainputs import input_env
from .spec import DistributedSpec, DockerPlacement, NodeSpec, RunSpec

ENTRY = ["-m", "jupyter_ext.launcher.rank_entry"]
LATE = ("MASTER_ADDR", "MASTER_PORT", "PYTHON", "RUN_DIR")
MASTER_ADDR, MASTER_PORT, PYTHON, RUN_DIR = (f"{{{name}}}" for name in LATE)
PORT = MASTER_PORT
LOOPBACK = "127.0.0.1"  # node 0's address where every node runs on this host
DOCKER_URL = C.ENV_DOCKER_URL  # the engine the docker_rsh agent reaches (mpirun on Docker)
RSH_AGENT = str(Path(__file__).resolve().with_name("docker_rsh.py"))  # run by path: no PYTHONPATH needed
_LATE_RE = re.compile(r"\{(" + "|".join(LATE) + r")\}")


def build_nodes(spec: RunSpec, is_root: bool | None = None) -> list[NodeSpec]:
    d = spec.distributed
    if d is None or (d.kind == "pytorch" and d.world_size == 1 and d.max_restarts == 0):
        return python_command(spec)
    if d.kind == "mpi":
        return mpirun_command(spec, d, os.geteuid() == 0 if is_root is None else is_root)
    return torchrun_commands(spec, d)


def container_name(run_id: str, node: int) -> str:
    """A node container's name, which is also its host name for mpirun: letters, digits, dots
    and hyphens only (OpenMPI refuses '_' in node names)."""
    return f"jt-{run_id.replace('_', '-')}-node{node}"


def _kind(spec: RunSpec) -> str:
    return spec.placement.kind if spec.placement is not None else "local"


def _python(spec: RunSpec) -> str:
    """argv[0] of a node: the run's interpreter, except on Ray, where a node that builds its
    own environment has its own (``{PYTHON}``)."""
    return PYTHON if _kind(spec) == "ray" else spec.python


def _master_addr(spec: RunSpec) -> str:
    """Node 0's address: its container's name on a Docker network of its own, else late-bound."""
    p = spec.placement
    if isinstance(p, DockerPlacement) and p.network != "host":
        return container_name(spec.run_id, 0)
    return MASTER_ADDR


def _node_cwd(i: int) -> str:
    return "wd" if i == 0 else f"wd_node{i}"


def _gpu_env(spec: RunSpec, i: int) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES of node ``i``: the host's numbers, or in a container (which gets
    the host's devices through device requests) the container's, 0..n-1."""
    if i >= len(spec.node_gpus) or not spec.node_gpus[i]:
        return {}
    gpus = spec.node_gpus[i]
    if isinstance(spec.placement, DockerPlacement):
        gpus = ",".join(str(k) for k in range(len(gpus.split(","))))
    return {"CUDA_VISIBLE_DEVICES": gpus}


def _script(spec: RunSpec) -> list[str]:
    return [spec.script, *[str(a) for a in spec.arguments]]


def python_command(spec: RunSpec) -> list[NodeSpec]:
    """A one-process job: ``python script args...`` in the run's working copy."""
    argv = [_python(spec), "-u", *ENTRY, *_script(spec)]
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
           "NODE_RANK": "0", **_gpu_env(spec, 0)}
    return [NodeSpec(rank=0, argv=argv, env=env, log_name="rank_0")]


def torchrun_commands(spec: RunSpec, d: DistributedSpec) -> list[NodeSpec]:
    """One torchrun per node. Without restarts: static rendezvous on node 0, so node i holds
    ranks i*p .. i*p+p-1. With ``max_restarts``: c10d rendezvous on node 0, which re-forms the
    group after a restart (static cannot), at the price of ranks going to nodes in arrival
    order; NODE_RANK then follows torchrun's GROUP_RANK."""
    elastic = d.max_restarts > 0
    master = _master_addr(spec)
    nodes = []
    for i in range(d.nodes):
        argv = [_python(spec), "-m", "torch.distributed.run", f"--nnodes={d.nodes}",
                f"--nproc-per-node={d.procs_per_node}", f"--max-restarts={d.max_restarts}"]
        if elastic:
            argv += ["--rdzv-backend=c10d", f"--rdzv-endpoint={master}:{MASTER_PORT}",
                     f"--rdzv-id={spec.run_id}"]
        else:
            argv += [f"--node-rank={i}", f"--master-addr={master}", f"--master-port={MASTER_PORT}"]
        # "--": the script's arguments are never torchrun's, even where they look like its
        # options or their abbreviations ("--n", "--log", "--master-port")
        argv += ["-m", "--", "jupyter_ext.launcher.rank_entry", *_script(spec)]
        env = {C.ENV_BACKEND: d.backend or "", **_gpu_env(spec, i)}
        if not elastic:
            env["NODE_RANK"] = str(i)
        nodes.append(NodeSpec(rank=i, argv=argv, env=env, cwd=_node_cwd(i), log_name=f"node_{i}"))
    return nodes


def mpirun_command(spec: RunSpec, d: DistributedSpec, is_root: bool) -> list[NodeSpec]:
    """One mpirun on this host for all nodes' slots; rank_entry maps OMPI_* to the DDP names.
    On Docker its ranks run in the node containers (``docker_mpi_options``)."""
    env = {"MASTER_ADDR": MASTER_ADDR, "MASTER_PORT": MASTER_PORT,
           C.ENV_PROCS_PER_NODE: str(d.procs_per_node)}
    if any(spec.node_gpus):
        env[C.ENV_NODE_GPUS] = ";".join(_gpu_env(spec, i).get("CUDA_VISIBLE_DEVICES", "") for i in range(d.nodes))
    argv = ["mpirun", "-np", str(d.world_size)]
    if isinstance(spec.placement, DockerPlacement):
        argv += docker_mpi_options(spec, d, env)
        env[DOCKER_URL] = spec.placement.base_url or ""
    argv += ["--oversubscribe", "--bind-to", "none"]
    if is_root:
        argv.append("--allow-run-as-root")
    argv += [spec.python, "-u", *ENTRY, *_script(spec)]
    return [NodeSpec(rank=0, argv=argv, env=env, cwd="wd", log_name="mpirun")]


def docker_mpi_options(spec: RunSpec, d: DistributedSpec, env: dict[str, str]) -> list[str]:
    """mpirun's options for ranks in the node containers (host network): the containers as its
    hosts, reached through the docker_rsh agent (``docker exec``), TCP between them, and the
    job's environment exported by name from the environment mpirun starts with."""
    hosts = ",".join(f"{container_name(spec.run_id, i)}:{d.procs_per_node}" for i in range(d.nodes))
    exports = [x for name in job_env_names(spec, env) for x in ("-x", name)]
    return ["--host", hosts, "--mca", "plm_rsh_agent", f"{sys.executable} {RSH_AGENT}",
            "--mca", "plm_rsh_no_tree_spawn", "1", "--mca", "btl", "self,tcp",
            "-wdir", f"{RUN_DIR}/wd", *exports]


# -- the environment contract --------------------------------------------------------------
def contract_vars(spec: RunSpec, root) -> dict[str, str]:
    """The variables every process of a run gets: which run, and where its files are (``root``:
    the run directory, or a node's copy of it)."""
    return {
        C.ENV_RUN_ID: spec.run_id,
        C.ENV_EXPERIMENT: spec.experiment,
        C.ENV_RUN_DIR: str(root),
        C.ENV_METRICS_DIR: str(Path(root) / C.METRICS_DIR),
        "PYTHONUNBUFFERED": "1",
        **input_env(spec.datasets, str(root)),
    }


def job_env(spec: RunSpec, node: NodeSpec, root) -> dict[str, str]:
    """A node's job environment: the run's variables, the node's, then the contract's."""
    env = dict(spec.env)
    env.update(node.env)
    env.update(contract_vars(spec, root))
    return env


def job_env_names(spec: RunSpec, node_env: Mapping[str, str]) -> list[str]:
    """The names ``job_env`` sets (and PYTHONPATH), less what only the launcher on this host
    reads: what mpirun exports to its ranks elsewhere."""
    names = dict.fromkeys([*spec.env, *node_env, *contract_vars(spec, ""), "PYTHONPATH"])
    names.pop(DOCKER_URL, None)
    return list(names)


# -- late-bound variables --------------------------------------------------------------------
def _script_at(spec: RunSpec, argv: list[str]) -> int:
    """Where the script's own part (script, arguments) of ``argv`` begins: len(argv) if absent."""
    tail = _script(spec)
    start = len(argv) - len(tail)
    return start if start >= 0 and argv[start:] == tail else len(argv)


def late_names(spec: RunSpec, nodes: list[NodeSpec] | None = None) -> set[str]:
    """The late-bound variables that the launcher's part of ``nodes`` (default: the spec's) uses."""
    found = set()
    for node in spec.nodes if nodes is None else nodes:
        texts = node.argv[:_script_at(spec, node.argv)] + list(node.env.values())
        found.update(m.group(1) for t in texts for m in _LATE_RE.finditer(t))
    return found


def fill(spec: RunSpec, node: NodeSpec, values: Mapping[str, str]) -> NodeSpec:
    """``node`` with its late-bound variables replaced by ``values``, in the launcher's argv
    and the node's env; the script and its arguments are left exactly as the user wrote them.
    A variable used without a value is a bug of the caller (KeyError naming it)."""
    def sub(text: str) -> str:
        def value(m: re.Match) -> str:
            if m.group(1) not in values:
                raise KeyError(f"late-bound {m.group(0)} of node {node.rank} has no value")
            return str(values[m.group(1)])
        return _LATE_RE.sub(value, text)

    at = _script_at(spec, node.argv)
    return NodeSpec(rank=node.rank, argv=[sub(a) for a in node.argv[:at]] + node.argv[at:],
                    env={k: sub(v) for k, v in node.env.items()}, cwd=node.cwd, log_name=node.log_name)


def supervisor_command(python: str, run_dir: str) -> list[str]:
    return [python, "-m", "jupyter_ext.launcher.supervise", run_dir]
