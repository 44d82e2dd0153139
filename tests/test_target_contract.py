"""The contract every compute target passes (DESIGN.md convention 13), as MLflow's stores pass
AbstractStoreTest: each test runs for local, cluster, docker and ray.

1. The dryrun shape, without Docker, Ray or a GPU: a target made from its stored config
   (``from_stored`` contacts no engine) on a host with four fake GPUs places a one-process, a
   torchrun and an MPI job, and its ``dryrun`` is the whole request: the supervisor's command,
   and for each node the final argv, env, cwd, log and where it runs.
2. Behaviour against the real thing where it runs here (a dockerd of the module's own, a Ray
   head on loopback): schedule, cancel, a supervisor lost mid-run, describe, and an engine that
   cannot be reached. Runs go through a RunManager (the core the server drives), one engine at
   a time (the module-scoped ``engine`` fixture is parametrized over the kinds).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest

import jupyter_ext
import kernel_lib
from jupyter_ext.errors import InvalidRequest
from jupyter_ext.launcher import registry
from jupyter_ext.launcher.commands import LATE, container_name
from jupyter_ext.launcher.host import Host, free_port
from jupyter_ext.launcher.rundir import RunDir
from jupyter_ext.launcher.spec import DistributedSpec, DockerPlacement, Placement, RayPlacement, RunSpec
from jupyter_ext.launcher.supervisor import Supervisor
from jupyter_ext.runs import RunManager, SubmitRequest
from tests.conftest import CONTRACT
from tests.faults.test_processes import tagged
from tests.target_engines import ENGINES, JOB, need_ray

KINDS = ["local", "cluster", "docker", "ray"]
SHAPES = ["single", "torchrun", "mpi"]
FAKE_GPUS = ["0", "1", "2", "3"]
RUN_ID = "contract_1700000000_ab12"
# the script's own arguments: ones that look like torchrun's, "--", a late-bound variable's name
SCRIPT_ARGS = ["--lr", "0.1", "--nnodes=9", "--", "--master-port", "{MASTER_PORT}"]
NO_ENGINE = "unix:///nonexistent/docker.sock"  # a dryrun never reaches it
RAY_NOWHERE = f"127.0.0.1:{free_port()}"
PAYLOAD_LIB = "/opt/jupyter-train/lib"
PLACEMENTS = {"local": Placement, "cluster": Placement, "docker": DockerPlacement, "ray": RayPlacement}
TERMINAL = ("Completed", "Failed", "Canceled")


# -- 1. the dryrun shape ---------------------------------------------------------------------
def stored(kind: str) -> dict:
    """A target's config as ``to_config`` stores it: GPU nodes where the kind has them."""
    return {"local": {"name": "local"},
            "cluster": {"name": "gpu-cluster", "vm_size": "gpu:2", "max_nodes": 2},
            "docker": {"name": "dk", "base_url": NO_ENGINE, "max_nodes": 2, "gpus": 1, "image": "base:1",
                       "volumes": {"/data": "/data:ro"}},
            "ray": {"name": "ry", "address": RAY_NOWHERE, "max_nodes": 2, "node_shape": {"CPU": 2},
                    "shared_filesystem": False}}[kind]


@pytest.fixture(scope="module")
def made():
    """Every target the dryrun tests make, closed at the end (a Ray target's place() starts a
    status probe for its address: one for all of them, stopped once)."""
    targets = []
    yield targets
    for t in targets:
        t.close()


def make_target(made, kind: str, config: dict | None = None, host: Host | None = None):
    host = host or Host(gpus_given=FAKE_GPUS)
    cls = registry.target_class(kind, creatable=False)  # "local" is built in, never created by a user
    target = cls.from_stored(config or stored(kind), host)
    made.append(target)
    return target


def job(kind: str, shape: str) -> DistributedSpec | None:
    nodes = 1 if kind == "local" else 2  # the local target is one node
    backend = "nccl" if kind == "cluster" else "gloo"
    return {"single": None, "torchrun": DistributedSpec("pytorch", nodes, 2, backend),
            "mpi": DistributedSpec("mpi", nodes, 2)}[shape]


def placed(target, dist, rd: RunDir) -> tuple[RunSpec, list[int]]:
    """A run spec through the template up to ``place``: plan, (prepare), allocate, place."""
    plan = target.plan_environment(None, None)
    spec = RunSpec(run_id=RUN_ID, experiment="contract", script="train.py", arguments=list(SCRIPT_ARGS),
                   compute_target=target.name, python=plan.python, env={"USER_VAR": "1"}, distributed=dist)
    if plan.build == "image":
        spec.image = "jt-env:contract"  # what prepare() records (building it needs the engine)
    indices = target.allocate(spec.run_id, dist.nodes if dist else 1)
    assert indices is not None
    target.place(spec, indices)
    return spec, indices


def expected_gpus(kind: str, i: int) -> str | None:
    """CUDA_VISIBLE_DEVICES of node i: a cluster's disjoint pairs of the host's four, a
    container's own numbering, none where the target leaves it as it is (local) or has none."""
    return {"cluster": ",".join(FAKE_GPUS[2 * i:2 * i + 2]), "docker": "0"}.get(kind)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_dryrun_is_the_whole_request(made, kind, shape, tmp_path):
    target = make_target(made, kind)
    dist = job(kind, shape)
    if kind == "ray" and shape == "mpi":
        with pytest.raises(InvalidRequest, match="MPI jobs do not run on the Ray target"):
            target.validate_job(dist)
        return
    rd = RunDir(tmp_path / RUN_ID)
    spec, indices = placed(target, dist, rd)
    req = target.dryrun(spec, rd)
    # the supervisor this host starts: the registry's entry for the placement's kind
    assert (req.target, req.kind) == (target.name, kind)
    assert req.argv == [target.python, "-m", "jupyter_ext.launcher.supervise", str(rd.path)]
    assert req.cwd == str(rd.path) and req.env == {"JUPYTER_TRAIN_SUPERVISOR": "1"}
    assert type(spec.placement) is PLACEMENTS[kind]
    assert (spec.placement.kind, spec.placement.target, spec.placement.nodes) == (kind, target.name, indices)
    assert req.placement == dataclasses.asdict(spec.placement)
    assert issubclass(registry.supervisor_class(spec.placement.kind), Supervisor)
    # one request per node (one mpirun for all of an MPI job's), in rank order
    count = 1 if shape in ("single", "mpi") else dist.nodes
    assert [n.rank for n in req.nodes] == list(range(count))
    assert len({n.cwd for n in req.nodes}) == count
    for i, node in enumerate(req.nodes):
        assert Path(node.cwd).is_relative_to(rd.path) and Path(node.cwd).name == ("wd" if i == 0 else f"wd_node{i}")
        assert node.env["USER_VAR"] == "1"
        {"single": check_python, "torchrun": check_torchrun, "mpi": check_mpirun}[shape](kind, spec, node, i)
        check_where(kind, target, spec, node, i)
    # spec.json is what the supervisor reads: the same placement type, the same request
    again = RunSpec.from_dict(json.loads(spec.to_json()))
    assert type(again.placement) is type(spec.placement) and again == spec
    assert target.dryrun(again, rd) == req


def python_of(kind: str, spec: RunSpec) -> str:
    return "{PYTHON}" if kind == "ray" else spec.python  # a Ray node's own interpreter, late-bound


def launcher_part(argv: list[str], script_at: int) -> list[str]:
    """The launcher's part of a node's argv; every {NAME} in it is a late-bound variable."""
    part = argv[:script_at]
    assert {m for a in part for m in re.findall(r"\{([A-Z_]+)\}", a)} <= set(LATE), part
    return part


def check_python(kind, spec, node, i):
    assert node.argv == [python_of(kind, spec), "-u", "-m", "jupyter_ext.launcher.rank_entry", "train.py",
                         *SCRIPT_ARGS]
    launcher_part(node.argv, 4)
    assert node.log == "rank_0"
    assert {k: node.env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK")} == \
        {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "NODE_RANK": "0"}
    assert node.env.get("CUDA_VISIBLE_DEVICES") == expected_gpus(kind, 0)


def check_torchrun(kind, spec, node, i):
    from torch.distributed.run import get_args_parser

    d = spec.distributed
    cut = node.argv.index("--")  # torchrun's own options end here; the rest is the script's
    assert node.argv[:3] == [python_of(kind, spec), "-m", "torch.distributed.run"]
    assert node.argv[cut - 1:] == ["-m", "--", "jupyter_ext.launcher.rank_entry", "train.py", *SCRIPT_ARGS]
    options = [re.sub(r"\{[A-Z_]+\}", "29500", a) for a in launcher_part(node.argv, cut)[3:]]
    args = get_args_parser().parse_args(options + node.argv[cut:])
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == (str(d.nodes), str(d.procs_per_node), i)
    assert args.module and args.training_script == "jupyter_ext.launcher.rank_entry"
    assert args.training_script_args == ["train.py", *SCRIPT_ARGS]  # untouched, late-bound look-alike too
    assert node.log == f"node_{i}"
    assert node.env["NODE_RANK"] == str(i) and node.env["JUPYTER_TRAIN_BACKEND"] == d.backend
    assert node.env.get("CUDA_VISIBLE_DEVICES") == expected_gpus(kind, i)


def check_mpirun(kind, spec, node, i):
    d = spec.distributed
    tail = [spec.python, "-u", "-m", "jupyter_ext.launcher.rank_entry", "train.py", *SCRIPT_ARGS]
    assert node.argv[:3] == ["mpirun", "-np", str(d.world_size)] and node.argv[-len(tail):] == tail
    launcher = launcher_part(node.argv, len(node.argv) - len(tail))
    assert ("--allow-run-as-root" in launcher) == (os.geteuid() == 0)
    assert node.log == "mpirun"
    assert node.env["JUPYTER_TRAIN_PROCS_PER_NODE"] == str(d.procs_per_node)
    assert node.env["MASTER_ADDR"] == "{MASTER_ADDR}" and node.env["MASTER_PORT"] == "{MASTER_PORT}"
    # a container gets its node's devices by device request and sees them as 0..n-1
    gpus = {"cluster": "0,1;2,3", "docker": "0;0"}.get(kind)
    assert node.env.get("JUPYTER_TRAIN_NODE_GPUS") == gpus
    if kind == "docker":  # the ranks run in the node containers, reached through docker exec
        hosts = launcher[launcher.index("--host") + 1]
        assert hosts == ",".join(f"{container_name(RUN_ID, n)}:{d.procs_per_node}" for n in range(d.nodes))
        assert "plm_rsh_agent" in launcher and node.env["JUPYTER_TRAIN_DOCKER_URL"] == NO_ENGINE
        containers = node.where["containers"]  # mpirun's daemons run in every node's container
        assert [c["container"] for c in containers] == [container_name(RUN_ID, n) for n in range(d.nodes)]
        assert [c["gpus"] for c in containers] == [[str(n)] for n in range(d.nodes)]
        exported = {launcher[k + 1] for k, a in enumerate(launcher) if a == "-x"}
        assert {"USER_VAR", "JUPYTER_TRAIN_RUN_ID", "JUPYTER_TRAIN_RUN_DIR", "PYTHONPATH"} <= exported


def payload_mounts() -> dict[str, str]:
    return {os.path.dirname(os.path.abspath(m.__file__)): f"{PAYLOAD_LIB}/{m.__name__}:ro"
            for m in (jupyter_ext, kernel_lib)}


def check_where(kind, target, spec, node, i):
    where = node.where
    gpus = expected_gpus(kind, i)
    if kind in ("local", "cluster"):
        assert where == {"host": "this host", **({"CUDA_VISIBLE_DEVICES": gpus} if gpus else {})}
    elif kind == "docker":
        assert where["container"] == container_name(RUN_ID, i) and where["image"] == "jt-env:contract"
        assert where["mounts"] == {**payload_mounts(), "/data": "/data:ro"}  # the payload read-only, volumes
        assert where["run_dir"] == "bind mount at the same path"
        assert (where["network"], where["engine"], where["shm_size"]) == ("host", NO_ENGINE, "2g")
        assert where["gpus"] == [str(i)]  # the engine host's device for node i (one a node)
    else:
        assert where == {"ray_address": RAY_NOWHERE, "bundle": {"CPU": 2}, "bundle_index": i,
                         "files": "through Ray's object store"}


def test_docker_dryrun_on_a_network_of_its_own_and_an_engine_elsewhere(made, tmp_path):
    """network != host: node 0 is reached by its container's name; shared_filesystem=False: the
    run's files and the payload go through a volume (nothing of this host is bind-mounted)."""
    target = make_target(made, "docker", {**stored("docker"), "network": "jt-net", "shared_filesystem": False})
    rd = RunDir(tmp_path / RUN_ID)
    spec, _ = placed(target, DistributedSpec("pytorch", 2, 1, "gloo"), rd)
    req = target.dryrun(spec, rd)
    for i, node in enumerate(req.nodes):
        assert f"--master-addr={container_name(RUN_ID, 0)}" in node.argv
        assert node.where["network"] == "jt-net" and node.where["run_dir"] == "a volume"
        assert node.where["mounts"] == {"/data": "/data:ro"}
    assert spec.placement.shared is False
    assert not set(spec.placement.mounts) & {m.split(":")[0] for m in payload_mounts()}  # copied in, not mounted


@pytest.mark.parametrize("kind", KINDS)
def test_jobs_a_target_can_never_run_are_refused_before_anything_starts(made, kind):
    """validate_job refuses with what to do; from_config refuses unknown fields; to_config
    round-trips through from_stored (a server restart). No engine is needed for any of it."""
    config = {**stored(kind), "gpus": 0} if kind == "docker" else None  # nccl is refused before the ping
    target = make_target(made, kind, config, host=Host(gpus_given=[]))
    too_many = {"local": 2, "cluster": 3, "docker": 3, "ray": 3}[kind]
    with pytest.raises(InvalidRequest, match=r"(?i)cluster|fewer|at most"):
        target.validate_job(DistributedSpec("pytorch", too_many, 1, "gloo"))
    with pytest.raises(InvalidRequest, match="Gloo"):  # GPU nodes of a cluster on a host without GPUs too
        target.validate_job(DistributedSpec("pytorch", 1, 1, "nccl"))
    cls = type(target)
    assert cls.from_stored(target.to_config(), target.host).to_config() == target.to_config()
    if kind != "local":
        with pytest.raises(InvalidRequest, match="bogus"):
            cls.from_config({**stored(kind), "kind": kind, "bogus": 1}, Host(gpus_given=[]))
    if kind == "cluster":
        with pytest.raises(InvalidRequest, match="GPU"):  # gpu:2 x 2 nodes on a host without GPUs
            cls.from_config({**stored(kind), "kind": kind}, Host(gpus_given=[]))


# -- 2. behaviour, against the real thing ------------------------------------------------------
@pytest.fixture(scope="module", params=KINDS)
def engine(request):
    """One engine at a time: pytest runs every test of one kind before the next kind starts."""
    e = ENGINES[request.param]().start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("contract-src")
    (src / "job.py").write_text(JOB)
    return src


def with_manager(engine, tmp_path, scenario):
    """Run ``scenario(m, target_name)`` on a RunManager of a fresh workspace with the engine's
    target created (as POST /computes does), then stop the manager (and close its targets)."""
    async def main():
        m = RunManager(str(tmp_path / "ws"))
        await m.start()
        try:
            body = engine.body()
            if body is not None:
                m.computes.create(body)
            return await scenario(m, engine.name)
        finally:
            await m.stop()

    return asyncio.run(main())


async def submit(m, engine, job_dir, target: str, mode: str, tag: str) -> str:
    run = await m.submit(SubmitRequest("contract", "job.py", str(job_dir), [mode, tag], compute_target=target,
                                       environment=engine.environment))
    return run["id"]


async def wait_for(m, run_id: str, states, timeout: float = 90, why=lambda: "") -> dict:
    deadline = time.monotonic() + timeout
    while (run := m.get_run(run_id))["status"] not in states:
        assert time.monotonic() < deadline, f"{run_id} still {run['status']}: {why()}"
        await asyncio.sleep(0.05)
    return run


def logs(m, run_id: str) -> str:
    """The run's logs, for a failing assertion's message."""
    folder = m.run_dir(run_id).logs
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.glob("*.txt")))


async def working(m, engine, run_id: str, tag: str) -> None:
    """Until the lingering job runs and its child too."""
    deadline = time.monotonic() + 90
    log = m.run_dir(run_id).logs / "rank_0.txt"
    while not (log.is_file() and "working" in log.read_text()) or len(tagged(tag)) < 2:
        assert time.monotonic() < deadline, logs(m, run_id)
        assert m.get_run(run_id)["status"] not in TERMINAL, logs(m, run_id)
        await asyncio.sleep(0.1)


async def released(m, target: str, timeout: float = 15) -> dict:
    """The target's description once no node is busy (a run's end gives its node back)."""
    deadline = time.monotonic() + timeout
    while (d := m.computes.describe(target))["node_counts"]["busy"]:
        assert time.monotonic() < deadline, d
        await asyncio.sleep(0.1)
    return d


def test_schedule_runs_to_completed_with_its_output(engine, job_dir, tmp_path):
    tag = f"jt-contract-{uuid.uuid4().hex[:12]}"

    async def scenario(m, target):
        run_id = await submit(m, engine, job_dir, target, "finish", tag)
        run = await wait_for(m, run_id, TERMINAL, why=lambda: logs(m, run_id))
        assert run["status"] == "Completed", logs(m, run_id)
        assert run["compute_target"] == target
        assert f"finished {tag}" in (m.run_dir(run_id).logs / "rank_0.txt").read_text()
        assert "outputs/answer.txt" in m.file_names(run_id)
        assert (m.run_dir(run_id).outputs / "answer.txt").read_text() == tag
        deadline = time.monotonic() + 10  # the tailer ingests the metric line
        while not [p for p in m.metrics(run_id)["items"] if p["name"] == "answer"]:
            assert time.monotonic() < deadline, m.metrics(run_id)
            await asyncio.sleep(0.1)
        assert [p["value"] for p in m.metrics(run_id)["items"] if p["name"] == "answer"] == [42]
        await released(m, target)
        assert engine.wait_gone(run_id, tag, 10) == []

    with_manager(engine, tmp_path, scenario)


def test_cancel_ends_everything_and_the_next_run_gets_the_node(engine, job_dir, tmp_path):
    """While it runs the target says busy; a run that finds no free node waits in its queue;
    cancel: Canceled, nothing of the run left (processes, containers), and the waiting run runs."""
    tag = f"jt-contract-{uuid.uuid4().hex[:12]}"

    async def scenario(m, target):
        run_id = await submit(m, engine, job_dir, target, "linger", tag)
        await working(m, engine, run_id, tag)
        d = m.computes.describe(target)
        assert d["state"] == "busy" and d["node_counts"]["busy"] == 1, d
        second = await submit(m, engine, job_dir, target, "finish", f"jt-contract-{uuid.uuid4().hex[:12]}")
        if engine.queues:  # one node, busy: the second run waits for it
            await wait_for(m, second, ("Queued",))
            assert m.computes.describe(target)["queue"] == [second]
            assert m.get_run(second)["queue_position"] == 1
        t0 = time.monotonic()
        m.cancel(run_id)
        run = await wait_for(m, run_id, TERMINAL, timeout=30, why=lambda: logs(m, run_id))
        assert run["status"] == "Canceled", logs(m, run_id)
        assert engine.wait_gone(run_id, tag, 10) == [], logs(m, run_id)
        print(f"{engine.kind}: canceled and all gone in {time.monotonic() - t0:.1f} s")
        assert "outputs/answer.txt" not in m.file_names(run_id)
        nxt = await wait_for(m, second, TERMINAL, why=lambda: logs(m, second))
        assert nxt["status"] == "Completed", logs(m, second)
        d = await released(m, target)
        assert d["queue"] == [] and d["state"] in ("ready", "scaling"), d

    with_manager(engine, tmp_path, scenario)


def check_runs_as_dryrun_said(m, engine, run_id: str, target: str) -> None:
    """What the supervisor started is what the target's dryrun of the run's spec.json says:
    argv (late-bound values filled: {PYTHON} is the node's interpreter), env, cwd, and on
    Docker the container's image, network and mounts."""
    rd = m.run_dir(run_id)
    (node,) = m.computes.get(target).dryrun(RunSpec.load(rd.spec_path), rd).nodes
    seen = engine.running(rd, node)
    argv = list(node.argv)
    if argv[0] == "{PYTHON}":
        assert os.path.isabs(seen["argv"][0]), seen
        argv[0] = seen["argv"][0]
    assert seen["argv"] == argv
    assert {k: seen["env"].get(k) for k in node.env} == node.env
    assert seen["cwd"] == node.cwd
    if engine.kind == "docker":
        assert (seen["image"], seen["network"]) == (node.where["image"], node.where["network"])
        assert {str(rd.path): str(rd.path), **node.where["mounts"]} == seen["mounts"]


def test_a_running_job_is_its_dryrun_and_a_killed_supervisor_leaves_nothing(engine, job_dir, tmp_path):
    """While it runs: what runs is what dryrun said. SIGKILL its supervisor: the run fails
    naming the supervisor, and nothing of it is left (processes, containers), its node freed."""
    tag = f"jt-contract-{uuid.uuid4().hex[:12]}"

    async def scenario(m, target):
        run_id = await submit(m, engine, job_dir, target, "linger", tag)
        await working(m, engine, run_id, tag)
        check_runs_as_dryrun_said(m, engine, run_id, target)
        os.kill(m.run_dir(run_id).read_supervisor_info()["pid"], signal.SIGKILL)
        run = await wait_for(m, run_id, TERMINAL, timeout=60, why=lambda: logs(m, run_id))
        assert run["status"] == "Failed" and "supervisor" in run["error"], run
        assert engine.wait_gone(run_id, tag, 60) == [], logs(m, run_id)
        await released(m, target)

    with_manager(engine, tmp_path, scenario)


# what the SDK (kernel_lib/compute.py) and the sidebar (labextension/src/sidebar.ts) read, by kind
PANEL_KEYS = {"local": {"cpus", "gpus"}, "cluster": {"vm_size", "min_nodes", "max_nodes"},
              "docker": {"engine", "containers", "max_nodes", "base_url"},
              "ray": {"vm_size", "max_nodes", "address", "ray"}}


def test_describe_has_what_the_panel_and_the_sdk_read(engine, tmp_path):
    from kernel_lib.compute import ComputeTarget

    async def scenario(m, target):
        listed = {d["name"]: d for d in m.computes.describe_all()}
        assert target in listed and "local" in listed
        d = json.loads(json.dumps(m.computes.describe(target)))  # as it goes over the wire
        CONTRACT.validate("GET", f"computes/{target}", 200, d)
        CONTRACT.validate("GET", "computes", 200, {"computes": list(listed.values())})
        assert (d["name"], d["kind"]) == (target, engine.kind)
        assert set(d["node_counts"]) == {"idle", "busy", "preparing", "unusable"} and d["node_counts"]["busy"] == 0
        assert d["queue"] == [] and isinstance(d["nodes"], int)
        assert PANEL_KEYS[engine.kind] <= set(d), PANEL_KEYS[engine.kind] - set(d)
        # the SDK's own reading of it (ComputeTarget.get_status), through a client that answers
        # with this description
        client = type("Client", (), {"get": staticmethod(lambda path: json.loads(json.dumps(
            m.computes.describe(target))))})()
        ws = type("Workspace", (), {"client": client})()
        status = await asyncio.to_thread(ComputeTarget(ws, target, _data=d).get_status, 60)
        assert status["state"] == "ready", status
        assert status["busy"] == 0 and status["queue"] == [] and status["max_nodes"] >= 1
        if engine.kind == "ray":  # the cluster as its probe sees it
            assert status["ray_state"] == "ready" and status["ray_nodes"], status
        if engine.kind == "docker":
            assert d["engine"] == "ready" and d["base_url"] == engine.dockerd.url

    with_manager(engine, tmp_path, scenario)


# -- an engine that cannot be reached -----------------------------------------------------------
def test_a_docker_target_on_an_engine_that_does_not_answer_is_not_created(tmp_path):
    address = f"127.0.0.1:{free_port()}"

    async def main():
        m = RunManager(str(tmp_path / "ws"))
        await m.start()
        try:
            with pytest.raises(InvalidRequest, match=re.escape(address)) as err:
                m.computes.create({"name": "nowhere", "kind": "docker", "base_url": f"tcp://{address}"})
            assert "does not answer" in err.value.message
            assert m.computes.get("nowhere") is None and m.store.list_computes() == []
        finally:
            await m.stop()

    asyncio.run(main())


def test_a_ray_run_on_a_cluster_that_does_not_answer_fails_within_60_s_naming_it(job_dir, tmp_path):
    need_ray()
    address = f"127.0.0.1:{free_port()}"
    tag = f"jt-contract-{uuid.uuid4().hex[:12]}"

    async def main():
        m = RunManager(str(tmp_path / "ws"))
        await m.start()
        try:
            m.computes.create({"name": "nowhere", "kind": "ray", "address": address, "max_nodes": 1})
            t0 = time.monotonic()
            run = await m.submit(SubmitRequest("contract", "job.py", str(job_dir), ["finish", tag],
                                               compute_target="nowhere"))
            done = await wait_for(m, run["id"], TERMINAL, timeout=60, why=lambda: logs(m, run["id"]))
            took = time.monotonic() - t0
            assert done["status"] == "Failed" and address in done["error"], done
            print(f"ray, nothing at {address}: Failed after {took:.1f} s: {done['error']}")
        finally:
            await m.stop()

    asyncio.run(main())
