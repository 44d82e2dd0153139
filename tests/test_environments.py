"""Environments built for real from PyPI with uv, cached and reused; the conda paths; the registry."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_ext.environments.spec import EnvironmentSpec, from_conda_yaml
from jupyter_ext.errors import InvalidRequest
from kernel_lib import CondaDependencies, Environment, Experiment, ScriptRunConfig
from kernel_lib.client import TrainError

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")


def toolz_env(name="toolz-env", pin=None):
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=[f"toolz{pin or ''}"])
    return env


def prepare_log(run) -> str:
    return run.get_log("prepare.txt")


def test_a_run_imports_its_environments_package_and_the_build_is_cached(ws):
    assert subprocess.run([sys.executable, "-c", "import toolz"], capture_output=True).returncode != 0
    src = ScriptRunConfig(SCRIPTS, "use_toolz.py", environment=toolz_env())
    first = Experiment(ws, "env").submit(src)
    assert first.wait_for_completion(raise_on_error=False)["status"] == "Completed", prepare_log(first)
    log = first.get_log()
    assert "toolz " in log and "/environments/envs/" in log  # its own venv, not the server's
    assert first.get_metrics()["imported"] == 1  # the tracking API works in the environment
    built = prepare_log(first)
    assert "Building environment toolz-env" in built and "toolz" in built and "ready in" in built
    second = Experiment(ws, "env").submit(src)
    assert second.wait_for_completion()["status"] == "Completed"
    again = prepare_log(second)
    assert "Using the cached environment toolz-env" in again and "Building" not in again
    out = subprocess.run([sys.executable, "-m", "jupyter_ext", "env", "--workspace", str(ws.path), "list"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "toolz-env" in out.stdout


def test_two_runs_with_a_new_spec_build_it_once(ws):
    src = ScriptRunConfig(SCRIPTS, "use_toolz.py", environment=toolz_env("pinned", "==0.12.1"))
    a = Experiment(ws, "env").submit(src)
    b = Experiment(ws, "env").submit(src)
    for r in (a, b):
        assert r.wait_for_completion(raise_on_error=False)["status"] == "Completed", prepare_log(r)
    firsts = sorted(prepare_log(r).splitlines()[0].split(" (")[0] for r in (a, b))
    # one run built it; the other waited for that build (and saw its output), or found it cached
    assert firsts[0] == "Building environment pinned", firsts
    assert firsts[1] in ("Waiting for the build of environment pinned", "Using the cached environment pinned")
    assert len([p for p in (Path(a.get_details()["run_dir"]).parents[1] / "environments" / "envs").iterdir()
                if p.is_dir()]) == 1
    assert "toolz 0.12.1" in a.get_log() and "toolz 0.12.1" in b.get_log()


def test_a_failed_build_fails_the_run_and_is_not_cached(ws):
    env = Environment("broken")
    env.python.conda_dependencies.add_pip_package("jupyter-train-no-such-package-zzz")
    run = Experiment(ws, "env").submit(ScriptRunConfig(SCRIPTS, "use_toolz.py", environment=env))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "Environment broken: The environment build failed" in details["error"]
    assert "jupyter-train-no-such-package-zzz" in details["error"]
    assert [p.name for p in (Path(ws.path) / "environments" / "envs").iterdir() if p.is_dir()] == []


def test_curated_environment_needs_no_build_and_its_prefix_is_reserved(ws):
    curated = Environment.get(ws, "Curated-PyTorch")
    assert curated.python.interpreter_path == sys.executable
    assert "Curated-PyTorch" in Environment.list(ws)
    run = Experiment(ws, "env").submit(ScriptRunConfig(SCRIPTS, "count.py", ["--n", 1], environment=curated))
    assert run.wait_for_completion()["status"] == "Completed"
    assert "prepare.txt" not in {e["name"] for e in run.get_logs()}
    with pytest.raises(TrainError, match="reserved for curated"):
        Environment("Curated-Mine").register(ws)
    mine = curated.clone("my-pytorch")
    mine.python.conda_dependencies.add_pip_package("toolz")
    assert mine.register(ws).version == 1


def test_registry_versions_files_and_clone(ws, tmp_path):
    env = toolz_env("reg")
    assert env.register(ws).version == 1
    env.python.conda_dependencies.add_pip_package("six")
    assert env.register(ws).version == 2
    assert Environment.get(ws, "reg").version == 2
    assert Environment.get(ws, "reg", version=1).python.conda_dependencies.pip_packages == ["toolz"]
    env.save_to_directory(str(tmp_path / "saved"))
    loaded = Environment.load_from_directory(str(tmp_path / "saved"))
    assert loaded.to_spec() == env.to_spec()
    with pytest.raises(TrainError, match="overwrite=True"):
        env.save_to_directory(str(tmp_path / "saved"))
    clone = env.clone("reg-copy")
    assert clone.name == "reg-copy" and clone.version is None
    with pytest.raises(TrainError, match="No environment 'nope'"):
        Environment.get(ws, "nope")


def test_conda_spec_mapping_and_refusals(tmp_path):
    yml = tmp_path / "conda_dependencies.yml"
    yml.write_text("name: t\nchannels: [pytorch, conda-forge]\ndependencies:\n"
                   f"  - python={sys.version_info.major}.{sys.version_info.minor}\n"
                   "  - pytorch=2.14\n  - scikit-learn\n  - pip\n  - pip:\n    - toolz==0.12.1\n")
    spec = from_conda_yaml("t", yml.read_text())
    assert spec.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert spec.pip_requirements() == ["scikit-learn", "toolz==0.12.1", "torch==2.14"]
    assert spec.interpreter()  # the machine has this python
    sdk = Environment.from_conda_specification("t", str(yml)).to_spec()
    assert sdk["python_version"] == spec.python_version and sdk["pip_packages"] == ["toolz==0.12.1"]
    refused = EnvironmentSpec(name="x", conda_packages=["cudatoolkit=11.8", "mkl", "numpy"])
    with pytest.raises(InvalidRequest, match="cudatoolkit=11.8, mkl"):
        refused.pip_requirements()
    with pytest.raises(InvalidRequest, match=r"python=3.1 is not installed on this machine \(available: "):
        EnvironmentSpec(name="old", python_version="3.1").interpreter()
    # the key changes with the requirements and not with their order
    a = EnvironmentSpec(name="a", pip_packages=["toolz", "six"]).build_key()
    assert a == EnvironmentSpec(name="b", pip_packages=["six", "toolz"]).build_key()
    assert a != EnvironmentSpec(name="a", pip_packages=["toolz"]).build_key()


def test_prune_keeps_what_a_running_run_uses(ws):
    src = ScriptRunConfig(SCRIPTS, "use_toolz.py", environment=toolz_env())
    assert Experiment(ws, "env").submit(src).wait_for_completion()["status"] == "Completed"
    slow_env = Environment("slow")
    slow_env.python.conda_dependencies.add_pip_package("six")
    linger = Experiment(ws, "env").submit(ScriptRunConfig(SCRIPTS, "linger.py", environment=slow_env))
    deadline = time.monotonic() + 60
    while linger.get_status() != "Running" and time.monotonic() < deadline:
        time.sleep(0.1)
    out = subprocess.run([sys.executable, "-m", "jupyter_ext", "env", "--workspace", str(ws.path), "prune"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "removed" in out.stdout and "(toolz-env)" in out.stdout
    assert "kept" in out.stdout and "(slow)" in out.stdout
    linger.cancel()


def test_the_tutorials_conda_spec_maps_to_pip():
    path = Path(__file__).resolve().parents[1] / "notebooks" / "pytorch-birds" / "conda_dependencies.yml"
    spec = from_conda_yaml("pytorch-birds", path.read_text())
    assert spec.python_version == "3.11"
    assert spec.pip_requirements() == ["numpy", "pillow", "torch==2.14.1", "torchvision==0.29.1"]
