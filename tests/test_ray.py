"""The Ray target against a real multi-node Ray cluster on this machine (ray.cluster_utils:
a head and two worker nodes, bound to loopback, shut down by the processes it started)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from kernel_lib import (ComputeTarget, CondaDependencies, Environment, Experiment, MpiConfiguration,
                        PyTorchConfiguration, RayCompute, ScriptRunConfig)
from kernel_lib.client import TrainError
from tests.conftest import log_of, wait_for_log
from tests.tutorial import fowl, register_fowl, submit_tutorial  # noqa: F401 (fowl: a fixture)

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind to loopback on this host


@pytest.fixture(scope="module")
def ray_cluster():
    if os.environ.get("CI") == "true":
        import ray  # noqa: F401  (CI installs it with the test extras: never skip there)
    else:
        pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    import socket

    with socket.socket() as sock:  # a port for the head's Ray Client server (ray://)
        sock.bind(("127.0.0.1", 0))
        client_port = sock.getsockname()[1]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                              "include_dashboard": False,
                                                              "ray_client_server_port": client_port})
    cluster.client_address = f"ray://127.0.0.1:{client_port}"
    workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()


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


@pytest.fixture
def copy_target(ws, ray_cluster):
    """Nodes told not to share this host's files: everything goes through Ray (object store,
    runtime_env), as for nodes on other machines. The nodes are on this machine, so the test
    also checks that the ranks ran outside the run directory."""
    cluster, _ = ray_cluster
    return ComputeTarget.create(ws, "ray-copy", RayCompute.provisioning_configuration(
        address=cluster.address, node_shape={"CPU": 2}, max_nodes=2, shared_filesystem=False))


@pytest.fixture
def ship_packages(monkeypatch):
    """As for nodes without jupyter-train: the supervisor sends its packages (listed before the
    ws fixture, so that the server, and the supervisors it starts, see the variable)."""
    import shutil

    from jupyter_ext.launcher.ray_agent import LIB_CACHE, fingerprint
    from jupyter_ext.launcher.ray_supervisor import package_dirs

    monkeypatch.setenv("JUPYTER_TRAIN_RAY_SHIP_PACKAGES", "1")
    cached = LIB_CACHE / fingerprint(package_dirs())
    shutil.rmtree(cached, ignore_errors=True)
    return cached


def test_ddp_with_files_through_ray(ship_packages, ws, copy_target):
    src = ScriptRunConfig(SCRIPTS, "ddp_digits.py", ["--epochs", 3], compute_target=copy_target,
                          distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2))
    run = Experiment(ws, "ray-copy").submit(src)
    seen_running = False
    while run.get_status() not in ("Completed", "Failed", "Canceled"):
        # logs arrive while the job runs, not only at the end
        seen_running |= run.get_status() == "Running" and "env RANK=" in log_of(run, "rank_1.txt")
        time.sleep(0.2)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run, "node_0.txt") + log_of(run, "supervisor.txt")
    assert seen_running
    identical = [m for m in run.get_metrics_history() if m["name"] == "params_identical"]
    assert {m["rank"] for m in identical} == {0, 1, 2, 3} and all(m["value"] == 1 for m in identical)
    run_dir = str(Path(ws.path, "runs", run.id))
    for rank in range(4):
        first = log_of(run, f"rank_{rank}.txt").split("\n")[0]
        assert f"RANK={rank} " in first and f"NODE_RANK={rank // 2} " in first
        cwd = re.search(r"cwd=(\S+)", first).group(1)
        assert not cwd.startswith(run_dir) and f"-node{rank // 2}-" in cwd  # a node-local copy
        assert f"rank {rank} done" in log_of(run, f"rank_{rank}.txt")
    assert "files copied through Ray" in log_of(run, "supervisor.txt")
    assert "sent jupyter-train's packages" in log_of(run, "supervisor.txt")  # kept for the next runs:
    assert (ship_packages / "jupyter_ext" / "launcher" / "rank_entry.py").is_file()
    assert (ship_packages / "kernel_lib" / "tracking.py").is_file()
    assert "model.pt" in " ".join(run.get_file_names())  # rank 0's output came back
    for cwd in {re.search(r"cwd=(\S+)", log_of(run, f"rank_{r}.txt")).group(1) for r in range(4)}:
        assert not os.path.exists(cwd)  # the node-local copies are removed


def test_environment_built_by_ray_on_the_nodes(ws, copy_target):
    env = Environment("ray-toolz")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["toolz"])
    run = Experiment(ws, "ray-copy").submit(ScriptRunConfig(SCRIPTS, "use_toolz.py", compute_target=copy_target,
                                                            environment=env))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run) + log_of(run, "supervisor.txt")
    assert "/runtime_resources/uv/" in log_of(run)  # Ray's environment on the node, not this host's build
    assert run.get_metrics()["imported"] == 1
    assert "prepare.txt" not in " ".join(f["name"] for f in ws.client.get(f"/runs/{run.id}/logs")["logs"])


def test_status_shows_ray_nodes_and_the_autoscaler_request(ws, target, ray_cluster):
    cluster, workers = ray_cluster
    status = target.get_status()
    assert status["ray_state"] == "ready", status
    ids = {n["node_id"] for n in status["ray_nodes"]}
    assert {w.node_id for w in workers} <= ids and cluster.head_node.node_id in ids
    assert all(n["resources"]["CPU"] in (1, 2) for n in status["ray_nodes"])
    assert status["requested"] == []
    run = Experiment(ws, "ray").submit(ScriptRunConfig(
        SCRIPTS, "linger.py", compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2)))
    wait_for_log(run, "working")
    deadline = time.monotonic() + 30
    while True:  # the probe reports every 2 s
        status = target.get_status()
        busy = [n for n in status["ray_nodes"] if n["state"] == "busy"]
        if len(busy) >= 2 and status["requested"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["requested"] == [{"CPU": 2}, {"CPU": 2}]
    assert all(n["used"]["CPU"] == 2 for n in busy if n["node_id"] != cluster.head_node.node_id)
    assert autoscaler_request(cluster.address) == [{"CPU": 2.0}, {"CPU": 2.0}]  # what the autoscaler reads
    run.cancel()
    run.wait_for_completion(raise_on_error=False)
    deadline = time.monotonic() + 30
    while autoscaler_request(cluster.address) != []:  # withdrawn when the job ends
        assert time.monotonic() < deadline
        time.sleep(0.5)


def autoscaler_request(address: str):
    """The standing request in the cluster's KV store, where Ray's (v1) autoscaler reads it."""
    import json

    from ray._raylet import GcsClient

    raw = GcsClient(address=address).internal_kv_get(b"autoscaler_resource_request", None)
    return json.loads(raw) if raw else None


def test_through_ray_client_address(ws, ray_cluster):
    """address="ray://host:port" (Ray Client, as for a cluster elsewhere): the supervisor drives
    the job through the client server, and the status comes through it too."""
    cluster, workers = ray_cluster
    remote = ComputeTarget.create(ws, "ray-client", RayCompute.provisioning_configuration(
        address=cluster.client_address, node_shape={"CPU": 2}, max_nodes=2, shared_filesystem=False))
    run = Experiment(ws, "ray-client").submit(ScriptRunConfig(
        SCRIPTS, "count.py", ["--n", 3], compute_target=remote,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2)))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", (log_of(run, "supervisor.txt") + log_of(run, "node_0.txt")
                                              + client_server_logs(cluster))
    assert "done" in log_of(run, "rank_0.txt") and "done" in log_of(run, "rank_1.txt")
    losses = [m for m in run.get_metrics_history() if m["name"] == "loss"]
    assert sorted(m["rank"] for m in losses) == [0, 0, 0, 1, 1, 1]  # metrics came back from both nodes
    # The probe's Ray Client connection takes 10-20 s here, and Ray's client proxy sometimes fails
    # a connection made at the same moment as another (the supervisor's): the probe then reports
    # "unreachable" and connects again 2 s later.
    deadline = time.monotonic() + 120
    while (status := remote.get_status(timeout=5))["ray_state"] != "ready":
        assert time.monotonic() < deadline, f"{status}{client_server_logs(cluster)}"
        time.sleep(1)
    assert {w.node_id for w in workers} <= {n["node_id"] for n in status["ray_nodes"]}


def client_server_logs(cluster, tail=2000) -> str:
    """The end of each log of the head's Ray Client servers (the proxy's, ray_client_server.err,
    and each per-connection server's, ray_client_server_<port>.err/.out), for a failure message:
    why a server that the proxy started died is only written there."""
    logs = Path(cluster.head_node.get_session_dir_path(), "logs")
    parts = []
    for path in sorted(logs.glob("ray_client_server*")):
        text = path.read_text(errors="replace")
        if text.strip():
            parts.append(f"--- {path.name}:\n{text[-tail:]}")
    return "\n\nRay Client server logs (" + str(logs) + "):\n" + "\n".join(parts) if parts else ""


class _ConnectOnly:
    """Just what RaySupervisor.connect uses, for its retries without a cluster."""

    address = "ray://127.0.0.1:1"

    def __init__(self):
        self.said, self.connect_error = [], None

    def say(self, text):
        self.said.append(text)


def _proxy_failure(port):
    return ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n  ...\nRuntimeError: "
        f"Starting Ray client server failed. See ray_client_server_{port}.err for detailed logs.\n")


def test_connect_tries_again_after_ray_client_proxy_failure(monkeypatch):
    """The proxy's server for a connection sometimes dies at its start (a crash in its fork, under
    load): the supervisor gets time for another whole attempt, past CONNECT_S; a proxy that fails
    every attempt fails the run after ANSWERED_TRIES, with what the proxy said."""
    ray = pytest.importorskip("ray")
    from jupyter_ext.launcher import ray_supervisor
    from jupyter_ext.launcher.ray_supervisor import ANSWERED_TRIES, RaySupervisor

    from types import SimpleNamespace

    clock = [1000.0]  # the module's own clock only
    monkeypatch.setattr(ray_supervisor, "time", SimpleNamespace(
        monotonic=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s)))
    monkeypatch.setattr(ray.cloudpickle, "register_pickle_by_value", lambda module: None)
    outcomes = []

    def init(**kwargs):
        clock[0] += 40  # an attempt takes this long on a loaded machine
        if outcomes.pop(0):
            raise _proxy_failure(23000 + len(outcomes))

    monkeypatch.setattr(ray, "init", init)
    sup = _ConnectOnly()
    sup.deadline = clock[0] + RaySupervisor.CONNECT_S
    outcomes[:] = [True, False]  # one failure, 40 s in; the next attempt takes 40 s more
    RaySupervisor.connect(sup, sup.deadline)
    # connect_within gives up when the deadline passes: it must cover the second attempt
    assert not outcomes and sup.deadline > clock[0] > 1000 + RaySupervisor.CONNECT_S
    assert "ray_client_server_23001.err" in sup.said[0]
    sup = _ConnectOnly()
    sup.deadline = clock[0] + RaySupervisor.CONNECT_S
    outcomes[:] = [True] * 10
    with pytest.raises(OSError, match=f"(?s)failed {ANSWERED_TRIES} times in a row .*Starting Ray client server"):
        RaySupervisor.connect(sup, sup.deadline)
    assert len(outcomes) == 10 - ANSWERED_TRIES


def test_cancel_ends_every_process(ws, target):
    run = Experiment(ws, "ray").submit(ScriptRunConfig(SCRIPTS, "linger.py", compute_target=target))
    wait_for_log(run, "working")
    pids = [int(p) for p in log_of(run).split("\n")[0].split()[1:3]]
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    time.sleep(0.5)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_waiting_for_resources_shows_progress_and_cancels_at_once(ws, ray_cluster):
    """Bundles no node can hold: the run waits (its supervisor log says for what, every 10 s) and
    a cancel ends the wait at once, not when the wait would time out."""
    cluster, _ = ray_cluster
    big = ComputeTarget.create(ws, "ray-big", RayCompute.provisioning_configuration(
        address=cluster.address, node_shape={"CPU": 16}, max_nodes=1))
    run = Experiment(ws, "ray").submit(ScriptRunConfig(SCRIPTS, "count.py", compute_target=big))
    wait_for_log(run, "still waiting for the Ray cluster to grant 1 bundle(s) of {'CPU': 16}", "supervisor.txt", 60)
    t0 = time.monotonic()
    run.cancel()
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Canceled" and time.monotonic() - t0 < 10, details
    assert "Running" not in [p["state"] for p in ws.client.get(f"/runs/{run.id}")["phases"]]


def test_a_dead_supervisor_takes_the_nodes_processes_with_it(ws, copy_target):
    """SIGKILL the run's supervisor (the Ray driver): Ray ends its agents, and each agent's
    node_keeper (parent-death signal) ends the node's processes, on nodes this host cannot
    reach (copy mode: their pids are not in the run directory)."""
    import json
    import signal

    run = Experiment(ws, "ray").submit(ScriptRunConfig(SCRIPTS, "linger.py", compute_target=copy_target))
    wait_for_log(run, "working")
    pids = [int(p) for p in log_of(run).split("\n")[0].split()[1:3]]
    supervisor = json.loads(Path(ws.path, "runs", run.id, "supervisor.json").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and "supervisor" in details["error"]
    deadline = time.monotonic() + 60
    while any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
              for pid in pids):
        assert time.monotonic() < deadline, pids
        time.sleep(0.5)


def test_a_node_killed_mid_run_fails_the_run_naming_it(ws, target, ray_cluster):
    cluster, workers = ray_cluster
    # two nodes, so the job has a bundle on the worker that goes away
    run = Experiment(ws, "ray").submit(ScriptRunConfig(
        SCRIPTS, "linger.py", compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2)))
    wait_for_log(run, "working")
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


def test_a_dead_node_restarts_the_job_where_max_restarts_allows(ws, ray_cluster):
    """max_restarts=1: the Ray node under job node 1 goes away; the placement group reschedules
    that bundle on a spare node and the whole job starts again there, and completes."""
    cluster, workers = ray_cluster
    while len(workers) < 3:  # two for the job, one spare
        workers.append(cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1"))
    cluster.wait_for_nodes()
    target = ComputeTarget.create(ws, "ray-restart", RayCompute.provisioning_configuration(
        address=cluster.address, node_shape={"CPU": 2}, max_nodes=2))
    run = Experiment(ws, "ray").submit(ScriptRunConfig(
        SCRIPTS, "count.py", ["--n", 40, "--sleep", 0.25], compute_target=target,
        distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2, max_restarts=1)))
    for rank in (0, 1):
        wait_for_log(run, "line 3", f"rank_{rank}.txt")
    where = re.search(r"node 1 runs on 127\.0\.0\.1, Ray node (\w+)", log_of(run, "supervisor.txt")).group(1)
    victim = next(w for w in workers if w.node_id.startswith(where))
    cluster.remove_node(victim, allow_graceful=False)
    workers.remove(victim)
    details = run.wait_for_completion(raise_on_error=False)
    supervisor = log_of(run, "supervisor.txt")
    assert details["status"] == "Completed", (details, supervisor)
    assert f"Ray node {where}) died" in supervisor and "restarting the job (1 of 1 restarts)" in supervisor
    again = re.findall(r"node 1 runs on 127\.0\.0\.1, Ray node (\w+)", supervisor)
    assert len(again) == 2 and again[1] != where  # the second attempt ran elsewhere
    assert "done" in log_of(run, "rank_0.txt") and "done" in log_of(run, "rank_1.txt")


@pytest.fixture
def sampling(monkeypatch):
    """System metrics every 0.5 s (listed before the ws fixture: the server's supervisors see it)."""
    monkeypatch.setenv("JUPYTER_TRAIN_SYSTEM_METRICS_INTERVAL", "0.5")


@pytest.mark.parametrize("which", ["copy_target", "target"])
def test_each_ray_nodes_agent_samples_its_node_and_the_files_come_back(sampling, ws, which, request):
    """In the run directory (nodes that see it) or in node-local copies brought back by collect()."""
    src = ScriptRunConfig(SCRIPTS, "sleep_a_bit.py", compute_target=request.getfixturevalue(which),
                          distributed_job_config=PyTorchConfiguration("Gloo", process_count=2, node_count=2))
    run = Experiment(ws, "ray-system").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run, "node_0.txt") + log_of(run, "supervisor.txt")
    series = {(s["rank"], s["name"]): s for s in run.get_metric_series(points=100)}
    for node in (0, 1):
        assert max(v for _, v in series[(node, "system/process_memory_megabytes")]["points"]) > 5
        assert (node, "system/cpu_utilization_percentage") in series


def test_the_tutorial_reads_a_dataset_sent_through_ray(ws, copy_target, fowl):
    """Nodes that do not share this host's files: a mounted dataset is downloaded instead (and
    the prepare log says why), its files reach each node through Ray's object store into the
    node's own cache, and a second run sends none of them again."""
    from jupyter_ext.launcher.datainputs import ObjectCache
    from jupyter_ext.launcher.ray_agent import DATA_CACHE

    dataset = register_fowl(ws, fowl)
    digests = [f["sha256"] for f in ws.client.get(f"/datasets/fowl/{dataset.version}")["file_list"]]
    node_cache = ObjectCache(DATA_CACHE)  # the nodes are on this machine: empty their cache first
    for digest in digests:
        node_cache.path(digest).unlink(missing_ok=True)
    run = submit_tutorial(ws, fowl, "mount", compute_target=copy_target)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run, "supervisor.txt") + log_of(run)
    assert "shared_filesystem is not True" in log_of(run, "prepare.txt")
    n = len(set(digests))
    assert f"datasets through Ray: sent {n} of {n} files" in log_of(run, "supervisor.txt")
    assert f"sending {n} of {n} dataset files" in log_of(run, "prepare.txt")  # progress, where users look
    assert 0 <= run.get_metrics()["best_val_acc"] <= 1
    again = submit_tutorial(ws, fowl, "download", compute_target=copy_target)
    assert again.wait_for_completion(raise_on_error=False)["status"] == "Completed", log_of(again, "supervisor.txt")
    assert f"datasets through Ray: sent 0 of {n} files" in log_of(again, "supervisor.txt")
