"""Coming from Azure ML: its config.json, its curated environment names, and the article's conda
spec (with azureml-defaults) built as a layer on the kernel's interpreter, for real (uv, PyPI)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from jupyter_ext.environments import layers
from jupyter_ext.environments.spec import EnvironmentSpec, from_conda_yaml, is_azureml
from kernel_lib import Environment, Experiment, ScriptRunConfig, Workspace
from kernel_lib.client import TrainError

HERE = Path(__file__).resolve().parent
SCRIPTS = str(HERE / "scripts")
ARTICLE_SPEC = HERE / "data" / "azureml_article_conda.yml"
AZURE_CONFIG = {"subscription_id": "00000000-1111-2222-3333-444444444444",
                "resource_group": "rg-birds", "workspace_name": "birds-ws"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The default workspace (JUPYTER_TRAIN_WORKSPACE) in a folder of its own."""
    monkeypatch.setenv("JUPYTER_TRAIN_WORKSPACE", str(tmp_path / "home" / "workspace"))
    return tmp_path / "home"


def test_azure_config_json_opens_the_default_workspace_then_one_per_other_name(home, tmp_path, capsys):
    project = tmp_path / "project" / "src"
    project.mkdir(parents=True)
    (project.parent / ".azureml").mkdir()
    (project.parent / ".azureml" / "config.json").write_text(json.dumps(AZURE_CONFIG))
    ws = Workspace.from_config(project)  # found in a parent's .azureml/, as Azure ML looks
    assert ws.path == str(home / "workspace") and ws.name == "birds-ws"
    said = capsys.readouterr().err
    assert "birds-ws" in said and "rg-birds" in said and str(home / "workspace") in said
    assert Workspace.from_config(project).path == ws.path  # the same name, the same place
    other = Workspace.get("fish-ws", subscription_id="x", resource_group="y")
    assert other.path == str(home / "workspaces" / "fish-ws") and Path(other.path).is_dir()
    assert Workspace.get("birds-ws").path == ws.path
    mapping = json.loads((home / "azureml-workspaces.json").read_text())
    assert mapping == {"birds-ws": ws.path, "fish-ws": other.path}
    # our own config keeps working beside it
    ours = Workspace.create(tmp_path / "mine")
    ours.write_config(tmp_path / "elsewhere")
    assert Workspace.from_config(tmp_path / "elsewhere").path == ours.path


@pytest.mark.parametrize("text, says", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", 'needs a JSON object with "workspace_path"'),
    (json.dumps({"subscription_id": "x"}), '"workspace_name" (Azure ML)'),
    (json.dumps({**AZURE_CONFIG, "workspace_name": "../escape"}), "is not a workspace name"),
    (json.dumps({**AZURE_CONFIG, "workspace_name": "a" * 40}), "3 to 33"),
])
def test_a_bad_config_json_says_what_to_do(home, tmp_path, text, says):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(TrainError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Workspace.from_config(tmp_path)
    assert not (home / "workspaces").exists()


def test_a_damaged_name_map_is_refused_not_overwritten(home):
    home.mkdir(parents=True)
    (home / "azureml-workspaces.json").write_text("{oops")
    with pytest.raises(TrainError, match="is damaged"):
        Workspace.get("birds-ws")
    assert (home / "azureml-workspaces.json").read_text() == "{oops"


def test_azureml_packages_are_left_out_of_a_spec():
    assert [is_azureml(r) for r in ("azureml-defaults", "azureml_core==1.5", "azureml-sdk[notebooks]",
                                    "azure-ai-ml", "azureml", "future")] == [True, True, True, False, True, False]
    spec = from_conda_yaml("pytorch-env", ARTICLE_SPEC.read_text())
    assert spec.azureml_requirements() == ["azureml-defaults"]
    assert spec.pip_requirements() == ["future==1.0.0", "pillow", "torch==2.14.1", "torchvision==0.29.1"]


def test_layer_decisions_against_a_base():
    base = layers.Base("python", [], {"torch": "2.14.1+cu128", "pillow": "13.0.0", "numpy": "2.3.1"})
    have, need = layers.split(base, ["torch==2.14.1", "Pillow>=10", "numpy<2", "future", "torch[opt]",
                                     "./local-path", "pillow @ https://example.invalid/p.whl"])
    assert have == {"torch==2.14.1": "2.14.1+cu128", "Pillow>=10": "13.0.0"}
    assert need == ["numpy<2", "future", "torch[opt]", "./local-path", "pillow @ https://example.invalid/p.whl"]
    # the base's versions constrain the resolution, except for what the spec names; no local label
    assert layers.constraints(base, ["numpy<2"]) == ["pillow==13.0.0", "torch==2.14.1"]
    # of a resolution, what the base has at that very version is not installed again
    assert layers.not_in_base(base, ["torch==2.14.1", "numpy==1.26.4", "future==1.0.0", "", "# c"]) == \
        ["numpy==1.26.4", "future==1.0.0"]


def test_azure_curated_names_map_here_and_the_prefix_is_reserved(ws, capsys):
    env = Environment.get(ws, "AzureML-PyTorch-1.6-CPU")
    assert env.name == "Curated-PyTorch"
    assert "AzureML-PyTorch-1.6-CPU is an Azure ML curated environment" in capsys.readouterr().err
    assert Environment.get(ws, "AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu").name == "Curated-PyTorch"
    with pytest.raises(TrainError, match="no counterpart here .*from_conda_specification") as err:
        Environment.get(ws, "AzureML-TensorFlow-2.4-Ubuntu18.04-Py37-CPU-Inference")
    assert err.value.status == 404
    with pytest.raises(TrainError, match="reserved"):
        Environment("AzureML-mine").register(ws)
    # the server refuses it too, whatever the client checks
    with pytest.raises(TrainError, match="reserved"):
        ws.client.post("/environments", {"name": "azureml-Mine", "pip_packages": []})
    # a run naming the Azure name runs in the stand-in
    run = Experiment(ws, "curated").submit(ScriptRunConfig(SCRIPTS, "count.py", arguments=["--n", "2"],
                                                           environment=Environment.get(ws, "AzureML-Minimal")))
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed"


def test_the_articles_conda_spec_works_unchanged_as_a_layer_on_the_kernel(ws, tmp_path):
    """azureml-defaults is not installed, torch is the kernel's (never copied), only `future` is
    installed, the unmodified script's Azure ML logging lands in the run; the same spec again is
    a cache hit."""
    spec = ARTICLE_SPEC.read_text().replace("python=3.11", "python=%d.%d" % sys.version_info[:2])
    (tmp_path / "conda.yml").write_text(spec)
    env = Environment.from_conda_specification("pytorch-env", str(tmp_path / "conda.yml"))
    src = ScriptRunConfig(SCRIPTS, "azureml_article.py", environment=env)
    run = Experiment(ws, "article").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    prepare = run.get_log("prepare.txt")
    assert details["status"] == "Completed", prepare + run.get_log()
    assert "Not installing azureml-defaults" in prepare
    assert "torch==2.14.1 (2.14.1" in prepare.split("From the base, not installed again:")[1].splitlines()[0]
    assert "+ future==1.0.0" in prepare and "+ torch" not in prepare and "azureml-core" not in prepare
    metrics = run.get_metrics()
    assert len(metrics["loss"]) == 3 and metrics["best_val_acc"] == 0.5
    import torch

    assert f"torch from {torch.__file__}" in run.get_log()  # the kernel's torch, not a copy
    envs = Path(ws.path) / "environments" / "envs"
    [built] = [d for d in envs.iterdir() if d.is_dir()]
    ready = json.loads((built / "ready.json").read_text())
    assert ready["layered"] and ready["installed"] == ["future==1.0.0"]
    assert not list(built.rglob("torch/__init__.py"))
    size = sum(p.stat().st_size for p in built.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < 50 * 2**20, size
    again = Experiment(ws, "article").submit(ScriptRunConfig(
        SCRIPTS, "azureml_article.py",
        environment=Environment.from_conda_specification("pytorch-env", str(tmp_path / "conda.yml"))))
    assert again.wait_for_completion(raise_on_error=False)["status"] == "Completed"
    assert "Using the cached environment pytorch-env" in again.get_log("prepare.txt")


def test_a_layer_shadows_the_bases_version_of_a_package(ws):
    """The base has six 1.17.0 (a jupyter dependency); a spec asking for 1.16.0 gets it in the
    layer, and the job imports the layer's."""
    import six

    assert six.__version__ != "1.16.0"
    env = Environment("old-six")
    env.python.conda_dependencies.add_pip_package("six==1.16.0")
    run = Experiment(ws, "layer").submit(ScriptRunConfig(SCRIPTS, "show_module.py", environment=env,
                                                         arguments=["six"]))
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", run.get_log("prepare.txt")
    log = run.get_log()
    assert "six 1.16.0" in log and "/environments/envs/" in log, log


def test_the_build_key_follows_the_kernels_version_of_what_a_layer_takes_from_it(monkeypatch):
    """A layer built on the kernel's torch 2.14.1 is not reused once the kernel has another torch."""
    import importlib.metadata

    spec = EnvironmentSpec(name="k", pip_packages=["torch==2.14.1", "future"])
    before = spec.build_key()
    assert spec.build_key() == before  # an identical spec is the same key
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "2.15.0" if name == "torch" else real(name))
    assert spec.build_key() != before
