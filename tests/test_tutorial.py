"""The pytorch-birds tutorial, end to end on local compute: 2 epochs on generated data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lib import Experiment, Model, ScriptRunConfig, Workspace

TUTORIAL = Path(__file__).resolve().parent.parent / "notebooks" / "pytorch-birds"


@pytest.fixture(scope="module")
def fowl(tmp_path_factory):
    sys.path.insert(0, str(TUTORIAL))
    try:
        from make_data import make_imagefolder
    finally:
        sys.path.remove(str(TUTORIAL))
    return make_imagefolder(str(tmp_path_factory.mktemp("fowl")), seed=0)


def test_tutorial_trains_well_above_chance_and_registers_versions(headless, workspace_dir, fowl, tmp_path):
    import torch

    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    src = ScriptRunConfig(source_directory=str(TUTORIAL), script="pytorch_train.py",
                          arguments=["--num_epochs", 2, "--output_dir", "./outputs", "--data_dir", fowl,
                                     "--image_size", 64, "--batch_size", 16, "--learning_rate", 0.01])
    run = Experiment(ws, "pytorch-birds").submit(src)
    assert run.wait_for_completion()["status"] == "Completed", run.get_log()
    m = run.get_metrics()
    assert len(m["val_acc"]) == 2 and len(m["train_loss"]) == 2
    assert m["best_val_acc"] >= 0.8, m  # two balanced classes: chance is 0.5
    assert m["lr"] == 0.01 and m["momentum"] == 0.9
    assert "outputs/model.pt" in run.get_file_names()
    # data/, outputs/ etc. are excluded by the tutorial's .amlignore; the script itself shipped
    assert Path(run.get_details()["run_dir"], "wd", "pytorch_train.py").is_file()
    v1 = run.register_model(model_name="pytorch-birds", model_path="outputs/model.pt")
    v2 = run.register_model(model_name="pytorch-birds", model_path="outputs/model.pt")
    assert (v1.version, v2.version) == (1, 2)
    path = Model(ws, "pytorch-birds").download(str(tmp_path / "model"))
    net = torch.load(path, weights_only=False, map_location="cpu").eval()
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 3, 64, 64)).shape) == (1, 2)


def test_training_script_runs_offline_under_plain_python(fowl, tmp_path):
    """Outside a run, Run.get_context() prints and the script still trains and saves."""
    out = subprocess.run([sys.executable, str(TUTORIAL / "pytorch_train.py"), "--data_dir", fowl,
                          "--num_epochs", "1", "--image_size", "32", "--output_dir", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "[offline run] best_val_acc" in out.stdout
    assert (tmp_path / "o" / "model.pt").is_file()
