"""The Docker target against a real dockerd that this module starts itself (Debian's docker.io,
installed by .ci/run): private socket, data-root and exec-root, no iptables and no bridge;
stopped by its PID at the end. No registry is reachable, so the test image is imported from a
skeleton root filesystem whose /usr and Python come from this host, bind-mounted read-only by
the target's volumes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.dockerd import Dockerd, host_python_volumes

from kernel_lib import (ComputeTarget, Dataset, DockerCompute, Environment, Experiment,
                        PyTorchConfiguration, ScriptRunConfig, Workspace)
from kernel_lib.client import TrainError
from tests.conftest import log_of
from tests.tutorial import fowl, register_fowl, submit_tutorial  # noqa: F401 (fowl: a fixture)

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")
SKELETON = "jt-skeleton:1"
# /usr and this interpreter (a virtual environment's too: the venv and its base), mounted as is
PY_VOLUMES = host_python_volumes()


def _need_docker():
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dockerd (Debian's docker.io) is missing or not root; .ci/run installs it")
        pytest.skip("dockerd is not installed (or not root)")


@pytest.fixture(scope="module")
def dockerd():
    _need_docker()
    engine = Dockerd().start()
    engine.import_skeleton(SKELETON)
    yield engine.url, engine.client
    engine.stop()


@pytest.fixture
def target(ws, dockerd):
    sock, _client = dockerd
    volumes = dict(PY_VOLUMES)
    cfg = DockerCompute.provisioning_configuration(base_url=sock, max_nodes=2, volumes=volumes)
    return ComputeTarget.create(ws, "docker", cfg)


def script(tmp_path, name, text):
    """A source folder holding one script."""
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    (src_dir / name).write_text(text)
    return src_dir


def skeleton_env(name="skeleton", pip=()):
    env = Environment(name)
    env.docker.base_image = SKELETON
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable  # the host's interpreter, mounted in
    env.python.conda_dependencies.pip_packages = list(pip)
    return env


def labelled(client, run_id):
    return client.containers.list(all=True, filters={"label": f"jupyter-train.run-id={run_id}"})


def test_a_run_in_one_container(ws, target, dockerd, tmp_path):
    _sock, client = dockerd
    src_dir = script(tmp_path, "where.py",
        "import os, sys\nfrom kernel_lib.tracking import Run\n"
        "print('in container:', os.path.exists('/.dockerenv'), 'python', sys.executable, flush=True)\n"
        "Run.get_context().log('acc', 0.5)\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/hello.txt', 'w').write('from the container')\n")
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(src_dir), "where.py", compute_target=target,
                                                          environment=skeleton_env()))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log() + run.get_log("prepare.txt") + run.get_log("supervisor.txt")
    assert "in container: True" in run.get_log()
    assert run.get_metrics()["acc"] == 0.5
    assert "outputs/hello.txt" in run.get_file_names()
    assert "Using the cached image" not in run.get_log("prepare.txt")  # built once ...
    assert labelled(client, run.id) == []  # removed when done
    again = Experiment(ws, "docker").submit(ScriptRunConfig(str(src_dir), "where.py", compute_target=target,
                                                            environment=skeleton_env()))
    assert again.wait_for_completion()["status"] == "Completed"
    assert "Using the cached image" in again.get_log("prepare.txt")  # ... and reused


def test_ddp_across_two_containers_of_two_processes(ws, target, dockerd):
    src = ScriptRunConfig(SCRIPTS, "ddp_digits.py", ["--epochs", 4], compute_target=target,
                          environment=skeleton_env(),
                          distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2))
    run = Experiment(ws, "docker-ddp").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log("node_0.txt") + run.get_log("node_1.txt")
    history = run.get_metrics_history()
    identical = [m for m in history if m["name"] == "params_identical"]
    assert {m["rank"] for m in identical} == {0, 1, 2, 3} and all(m["value"] == 1 for m in identical)
    for rank in range(4):
        first = run.get_log(f"rank_{rank}.txt").split("\n")[0]
        assert f"RANK={rank} " in first and f"NODE_RANK={rank // 2} " in first


def test_cancel_stops_and_removes_the_containers(ws, target, dockerd):
    _sock, client = dockerd
    run = Experiment(ws, "docker").submit(ScriptRunConfig(SCRIPTS, "linger.py", compute_target=target,
                                                          environment=skeleton_env()))
    deadline = time.monotonic() + 60
    while run.get_status() != "Running" or "working" not in log_of(run):
        assert time.monotonic() < deadline, run.get_log("prepare.txt")
        time.sleep(0.2)
    assert len(labelled(client, run.id)) == 1
    deadline = time.monotonic() + 15  # the target's view comes from the engine (cached 2 s)
    while ComputeTarget(ws, "docker").details["containers"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert ComputeTarget(ws, "docker").details["engine"] == "ready"
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert labelled(client, run.id) == []
    assert "outputs/partial.txt" in run.get_file_names()  # what it wrote is kept


def test_a_dying_container_fails_the_run_with_its_exit_code(ws, target, dockerd, tmp_path):
    src_dir = script(tmp_path, "die.py", "import os\nprint('last words', flush=True)\nos._exit(7)\n")
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(src_dir), "die.py", compute_target=target,
                                                          environment=skeleton_env()))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "7" in details["error"] and "last words" in details["error"], details["error"]


def test_a_missing_base_image_is_refused_not_pulled(ws, target, dockerd):
    _sock, client = dockerd
    env = skeleton_env("elsewhere")
    env.docker.base_image = "registry.example/none:1"
    run = Experiment(ws, "docker").submit(ScriptRunConfig(SCRIPTS, "count.py", compute_target=target,
                                                          environment=env))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "registry.example/none:1" in details["error"] and "does not pull images" in details["error"]
    assert not any("registry.example" in t for i in client.images.list() for t in i.tags)


def test_pip_packages_are_added_to_the_image(ws, target, dockerd, tmp_path):
    src_dir = script(tmp_path, "uses.py", "import toolz\nprint('toolz from', toolz.__file__, flush=True)\n")
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(src_dir), "uses.py", compute_target=target,
                                                          environment=skeleton_env("with-toolz", ["toolz"])))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log() + run.get_log("prepare.txt")
    assert "toolz from /opt/jupyter-train/site/toolz" in run.get_log()
    assert "COPY site/ /opt/jupyter-train/site/" in run.get_log("prepare.txt")


def test_a_run_survives_a_server_restart(headless, workspace_dir, dockerd, tmp_path):
    sock, client = dockerd
    server = headless(workspace_dir)
    ws = Workspace(workspace_dir)
    volumes = dict(PY_VOLUMES)
    target = ComputeTarget.create(ws, "docker", DockerCompute.provisioning_configuration(base_url=sock,
                                                                                         volumes=volumes))
    run = Experiment(ws, "docker").submit(ScriptRunConfig(SCRIPTS, "count.py", ["--n", 30, "--sleep", 0.2],
                                                          compute_target=target, environment=skeleton_env()))
    deadline = time.monotonic() + 60
    while "line 3" not in log_of(run):
        assert time.monotonic() < deadline, run.get_log("prepare.txt")
        time.sleep(0.2)
    server.kill()  # SIGKILL: the server goes, the run's supervisor and container stay
    assert len(labelled(client, run.id)) == 1
    headless(workspace_dir)
    ws2 = Workspace(workspace_dir)
    again = Experiment(ws2, "docker").get_runs()[0]
    assert again.id == run.id
    assert again.wait_for_completion(raise_on_error=False)["status"] == "Completed"
    assert again.get_metrics()["loss"][-1] == pytest.approx(1 / 30)
    assert ComputeTarget(ws2, "docker").details["kind"] == "docker"  # the target was re-created


def test_target_refusals(ws, dockerd):
    with pytest.raises(TrainError, match="does not answer"):
        ComputeTarget.create(ws, "nowhere", DockerCompute.provisioning_configuration(
            base_url="unix:///tmp/no-such-docker.sock"))
    sock, _ = dockerd
    target = ComputeTarget.create(ws, "plain", DockerCompute.provisioning_configuration(base_url=sock))
    with pytest.raises(TrainError, match="needs an image"):
        Experiment(ws, "docker").submit(ScriptRunConfig(SCRIPTS, "count.py", compute_target=target))


def test_mpi_across_two_containers(ws, target, dockerd):
    """mpirun on this host, its daemons and ranks in the two node containers (docker exec)."""
    from kernel_lib import MpiConfiguration

    _sock, client = dockerd
    src = ScriptRunConfig(SCRIPTS, "mpi_ranks.py", compute_target=target, environment=skeleton_env(),
                          distributed_job_config=MpiConfiguration(process_count_per_node=2, node_count=2))
    run = Experiment(ws, "docker-mpi").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log("mpirun.txt")
    metrics = run.get_metrics_history()
    assert sorted(m["value"] for m in metrics if m["name"] == "rank") == [0, 1, 2, 3]
    assert {m["value"] for m in metrics if m["name"] == "rank_sum"} == {6.0}
    for rank in range(4):
        line = log_of(run, f"rank_{rank}.txt").split("\n")[0]
        assert f"RANK={rank} WORLD_SIZE=4 LOCAL_RANK={rank % 2} NODE_RANK={rank // 2}" in line
    assert labelled(client, run.id) == []


def test_an_engine_without_our_files_gets_them_through_a_volume(ws, dockerd, tmp_path):
    """shared_filesystem=False is how a tcp:// or ssh:// engine on another machine runs: the
    working copy and jupyter-train go into a volume; logs and metrics come back while it runs,
    outputs at the end. Simulated on the local engine (the run directory is not mounted)."""
    sock, client = dockerd
    volumes = dict(PY_VOLUMES)
    remote = ComputeTarget.create(ws, "far", DockerCompute.provisioning_configuration(
        base_url=sock, volumes=volumes, shared_filesystem=False))
    assert remote.details["shared_filesystem"] is False
    src_dir = script(tmp_path, "far.py",
        "import os, time\nfrom kernel_lib.tracking import Run\n"
        "run_dir = os.environ['JUPYTER_TRAIN_RUN_DIR']\n"
        "print('sees spec.json:', os.path.exists(os.path.join(run_dir, 'spec.json')), flush=True)\n"
        "for i in range(6):\n    Run.get_context().log('step', i)\n    print('tick', i, flush=True)\n"
        "    time.sleep(0.5)\n"
        "os.makedirs('outputs', exist_ok=True)\nopen('outputs/far.txt', 'w').write('made far away')\n")
    run = Experiment(ws, "far").submit(ScriptRunConfig(str(src_dir), "far.py", compute_target=remote,
                                                       environment=skeleton_env()))
    deadline = time.monotonic() + 60
    while "tick 1" not in log_of(run):  # logs arrive while it runs, not only at the end
        assert time.monotonic() < deadline and run.get_status() not in ("Completed", "Failed"), \
            log_of(run, "supervisor.txt")
        time.sleep(0.2)
    assert run.get_status() == "Running"
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run) + log_of(run, "supervisor.txt")
    assert "sees spec.json: False" in run.get_log()  # the host's run directory was not mounted
    assert run.get_metrics()["step"] == [0, 1, 2, 3, 4, 5]
    assert "outputs/far.txt" in run.get_file_names()
    assert client.volumes.list(filters={"label": f"jupyter-train.run-id={run.id}"}) == []
    assert labelled(client, run.id) == []


def test_an_environment_from_a_dockerfile(ws, target, dockerd, tmp_path):
    src_dir = script(tmp_path, "env.py", "import os\nprint('FROM_DOCKERFILE=' + os.environ.get('FROM_DOCKERFILE', '-'), flush=True)\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {SKELETON} AS base\nENV FROM_DOCKERFILE=yes\n")
    env = Environment.from_dockerfile("from-dockerfile", str(dockerfile))
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(src_dir), "env.py", compute_target=target,
                                                          environment=env))
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", run.get_log("prepare.txt")
    assert "FROM_DOCKERFILE=yes" in run.get_log()


def test_a_deployed_model_serves_from_a_container(ws, target, dockerd, tmp_path):
    """Model.deploy onto the Docker target: the scoring process runs in a container (host
    network: the scoring URI is the same), and delete() leaves no container."""
    from kernel_lib import Model
    from kernel_lib.webservice import InferenceConfig, LocalWebservice

    _sock, client = dockerd
    (tmp_path / "weights.json").write_text('{"scale": 2}')
    model = Model.register(ws, str(tmp_path / "weights.json"), "scaler")
    svc = Model.deploy(ws, "in-docker", [model],
                       InferenceConfig(entry_script="score.py", source_directory=os.path.join(SCRIPTS, "services"),
                                       environment=skeleton_env()),
                       LocalWebservice.deploy_configuration(), deployment_target=target)
    try:
        svc.wait_for_deployment(timeout_sec=300)
        assert svc.run({"data": [1, 2]}) == {"result": [2, 4]}
        assert [c.status for c in labelled(client, svc.run_id)] == ["running"]
        assert "init: loaded" in svc.get_logs()
    finally:
        svc.delete()
    assert labelled(client, svc.run_id) == []


@pytest.fixture
def sampling(monkeypatch):
    """System metrics every 0.5 s (set before the server starts: its supervisors inherit it)."""
    monkeypatch.setenv("JUPYTER_TRAIN_SYSTEM_METRICS_INTERVAL", "0.5")


def test_a_containers_node_has_system_series_from_the_engine(sampling, ws, target, tmp_path):
    src_dir = script(tmp_path, "nap.py", "import time\nfrom kernel_lib.tracking import Run\n"
                     "Run.get_context().log('acc', 0.5)\nx = bytearray(20 << 20)\ntime.sleep(2)\n")
    run = Experiment(ws, "docker").submit(ScriptRunConfig(str(src_dir), "nap.py", compute_target=target,
                                                          environment=skeleton_env()))
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", run.get_log("supervisor.txt")
    series = {(s["rank"], s["name"]): s for s in run.get_metric_series(points=100)}
    memory = [v for _, v in series[(0, "system/process_memory_megabytes")]["points"]]
    assert max(memory) > 20  # the container's, from the engine's stats
    assert (0, "system/process_cpu_percentage") in series and (0, "system/cpu_utilization_percentage") in series
    assert run.get_metrics() == {"acc": 0.5}  # Azure ML's view: what the script logged


def test_the_tutorial_reads_a_dataset_mounted_read_only_in_the_containers(ws, target, dockerd, fowl):
    """The registered dataset's folder is bind-mounted read-only at its own path: the tutorial
    trains on it, and a script that tries to write there is refused by the container."""
    run = submit_tutorial(ws, fowl, "mount", compute_target=target, environment=skeleton_env())
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run) + log_of(run, "prepare.txt") + log_of(run, "supervisor.txt")
    store = Path(ws.path, "datastores", "workspaceblobstore", "fowl")
    assert f"mounted: the nodes read {store} as it is" in log_of(run, "prepare.txt")
    assert 0 <= run.get_metrics()["best_val_acc"] <= 1
    dataset = Dataset.get_by_name(ws, "fowl")
    writer = Experiment(ws, "docker-data").submit(ScriptRunConfig(
        SCRIPTS, "read_data.py", ["--data", dataset.as_named_input("fowl").as_mount(), "--write"],
        compute_target=target, environment=skeleton_env()))
    assert writer.wait_for_completion(raise_on_error=False)["status"] == "Completed", log_of(writer)
    seen = json.loads(Path(ws.path, "runs", writer.id, "outputs", "seen.json").read_text())
    assert "Read-only file system" in seen["wrote"] and len(seen["files"]) == dataset._data["files"]
    assert not (store / "new.txt").exists()


def test_an_engine_without_our_files_gets_the_dataset_downloaded(ws, dockerd, fowl):
    sock, _client = dockerd
    remote = ComputeTarget.create(ws, "far-data", DockerCompute.provisioning_configuration(
        base_url=sock, volumes=dict(PY_VOLUMES), shared_filesystem=False))
    dataset = register_fowl(ws, fowl)
    run = Experiment(ws, "far-data").submit(ScriptRunConfig(
        SCRIPTS, "read_data.py", ["--data", dataset.as_named_input("fowl").as_mount()],
        compute_target=remote, environment=skeleton_env()))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run) + log_of(run, "supervisor.txt")
    prepare = log_of(run, "prepare.txt")
    assert "does not see this host's files" in prepare and "downloading it instead" in prepare
    seen = json.loads(Path(ws.path, "runs", run.id, "outputs", "seen.json").read_text())
    assert seen["arg"] == str(Path(ws.path, "runs", run.id, "inputs", "fowl"))  # in the volume
    assert len(seen["files"]) == dataset._data["files"]
