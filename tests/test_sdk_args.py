"""The SDK checks its own arguments before anything is sent: a ValueError or TypeError that is also
the SDK's TrainError, with a message that says what to pass. No server: the workspace given is
None, so any network call would fail with an AttributeError instead of the error asserted."""

from __future__ import annotations

import pytest

from kernel_lib import Experiment, MpiConfiguration, PyTorchConfiguration, ScriptRunConfig, TrainError

SCRIPT = {"script": "count.py"}


@pytest.fixture
def src(scripts_dir):
    return {"source_directory": str(scripts_dir), **SCRIPT}


@pytest.mark.parametrize("kwargs, error, words", [
    ({"node_count": 0}, ValueError, "node_count must be a whole number >= 1, not 0"),
    ({"node_count": -2}, ValueError, "node_count must be a whole number >= 1"),
    ({"node_count": "2"}, TypeError, "node_count must be a whole number >= 1, not '2' (str)"),
    ({"node_count": 2.0}, TypeError, "not 2.0 (float)"),
    ({"node_count": True}, TypeError, "not True (bool)"),
    ({"process_count": 0}, ValueError, "process_count must be a whole number >= 1"),
    ({"process_count": 3, "node_count": 2}, ValueError,
     "process_count 3 is not a multiple of node_count 2: every node runs process_count / node_count "
     "processes. Use e.g. process_count=2"),
    ({"max_restarts": -1}, ValueError, "max_restarts must be a whole number >= 0"),
    ({"communication_backend": "mpi"}, ValueError, "use 'Nccl' (GPUs) or 'Gloo' (CPUs)"),
    ({"communication_backend": None}, TypeError, "use 'Nccl' (GPUs) or 'Gloo' (CPUs)"),
])
def test_pytorch_configuration_refuses_numbers_that_cannot_work(kwargs, error, words):
    with pytest.raises(error) as info:
        PyTorchConfiguration(**{"communication_backend": "Gloo", **kwargs})
    assert words in info.value.message
    assert isinstance(info.value, TrainError) and info.value.code == "invalid_request"


def test_good_configurations_become_requests():
    assert PyTorchConfiguration("Gloo", process_count=4, node_count=2).to_request() == {
        "kind": "pytorch", "nodes": 2, "procs_per_node": 2, "backend": "gloo", "max_restarts": 0}
    assert MpiConfiguration(process_count_per_node=3, node_count=2).to_request() == {
        "kind": "mpi", "nodes": 2, "procs_per_node": 3}


def test_a_configuration_changed_after_it_was_made_is_checked_again(src):
    dist = PyTorchConfiguration("Gloo", node_count=2)
    dist.node_count = 0  # no ZeroDivisionError at submit
    with pytest.raises(ValueError, match="node_count must be a whole number >= 1, not 0"):
        ScriptRunConfig(**src, distributed_job_config=dist)
    mpi = MpiConfiguration()
    mpi.process_count_per_node = "4"
    with pytest.raises(TypeError, match="process_count_per_node must be a whole number"):
        mpi.to_request()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"process_count_per_node": 0}, ValueError, "process_count_per_node must be a whole number >= 1, not 0"),
    ({"node_count": 0}, ValueError, "node_count must be a whole number >= 1"),
    ({"node_count": 1.5}, TypeError, "not 1.5 (float)"),
])
def test_mpi_configuration_refuses_numbers_that_cannot_work(kwargs, error, words):
    with pytest.raises(error) as info:
        MpiConfiguration(**kwargs)
    assert words in info.value.message


@pytest.mark.parametrize("change, error, words", [
    ({"arguments": "--lr 1"}, TypeError, "pass a list, e.g. ['--lr', '1'] or '--lr 1'.split()"),
    ({"arguments": {"--lr": 1}}, TypeError, "arguments must be a list or tuple"),
    ({"arguments": ["--lr", None]}, TypeError, "arguments[1] is None (NoneType)"),
    ({"arguments": ["--flag", True]}, TypeError, "must be a str, int or float"),
    ({"arguments": ["--lr", float("nan")]}, ValueError, "arguments[1] is nan: pass a finite number"),
    ({"arguments": ["--name", "a\x00b"]}, ValueError, "arguments[1] holds a NUL character"),
    ({"script": 5}, TypeError, "script must be a str, not 5 (int)"),
    ({"script": ""}, ValueError, "script is empty"),
    ({"script": "nope.py"}, TrainError, "is not in"),
    ({"source_directory": "/nonexistent/dir"}, TrainError, "does not exist"),
    ({"source_directory": "/tmp/a\x00b"}, ValueError, "source_directory holds a NUL character"),
    ({"compute_target": 5}, TypeError, "compute_target must be a target's name (e.g. 'local') or a ComputeTarget"),
    ({"compute_target": "my cluster"}, ValueError, "Compute target name 'my cluster' is not valid"),
    ({"environment": "Curated-PyTorch"}, TypeError, "environment must be an Environment, e.g. "
                                                    "Environment.get(ws, 'Curated-PyTorch')"),
    ({"environment_variables": {"LR": 1}}, TypeError, "environment_variables['LR'] must be a str (variables "
                                                      "hold text): use str(1)"),
    ({"environment_variables": {"A B": "1"}}, ValueError, "'A B' is not a valid variable name"),
    ({"environment_variables": {"A": "1\x00"}}, ValueError, "holds a NUL character"),
    ({"environment_variables": ["A=1"]}, TypeError, "environment_variables must be a dict"),
    ({"extra_files": {"x.py": 3}}, TypeError, "extra_files must be a dict of relative path -> text"),
    ({"distributed_job_config": {"nodes": 2}}, TypeError,
     "distributed_job_config must be a PyTorchConfiguration or an MpiConfiguration, not dict"),
])
def test_script_run_config_refuses_what_cannot_run(src, change, error, words):
    with pytest.raises(error) as info:
        ScriptRunConfig(**{**src, **change})
    assert words in info.value.message, info.value.message
    assert isinstance(info.value, TrainError)


def test_script_run_config_takes_tuples_and_paths(src, scripts_dir):
    config = ScriptRunConfig(source_directory=scripts_dir, script="count.py", arguments=("--n", 2, 0.5),
                             environment_variables={"OMP_NUM_THREADS": "2"})
    assert config.arguments == ["--n", 2, 0.5] and config.source_directory == str(scripts_dir)
    request = config.to_request("exp", {"try": 1})
    assert request["arguments"] == ["--n", 2, 0.5] and request["tags"] == {"try": "1"}
    assert request["environment_variables"] == {"OMP_NUM_THREADS": "2"}


@pytest.mark.parametrize("name", ["my experiment", "../up", "", "-dash", "a" * 256, "ok\n"])
def test_experiment_names_are_checked_before_any_call(name):
    with pytest.raises(ValueError, match="Experiment name .* is not valid: use 1-255 letters"):
        Experiment(None, name)


def test_experiment_arguments_are_checked_before_any_call(src):
    with pytest.raises(TypeError, match="Experiment name must be a str"):
        Experiment(None, 5)
    exp = Experiment(None, "fine-1.0")
    with pytest.raises(ValueError, match="limit must be a whole number >= 1 and <= 10000, not 0"):
        exp.get_runs(limit=0)
    with pytest.raises(TypeError, match="tags must be a dict"):
        exp.submit(ScriptRunConfig(**src), tags=["a"])
