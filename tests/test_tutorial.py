"""The pytorch-birds tutorial, end to end on local compute: 2 epochs on generated images, read
through the registered dataset "fowl" (mounted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kernel_lib import Model, Workspace
from tests.tutorial import TUTORIAL, fowl, submit_tutorial  # noqa: F401 (fowl: a fixture)


def test_tutorial_trains_well_above_chance_and_registers_versions(headless, workspace_dir, fowl, tmp_path):
    import torch

    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    run = submit_tutorial(ws, fowl, "mount", epochs=2, image_size=64)
    assert run.wait_for_completion()["status"] == "Completed", run.get_log()
    # the images were read where the dataset's version lies, through the script's --data_dir
    store = Path(ws.path, "datastores", "workspaceblobstore", "fowl")
    assert f"mounted: the nodes read {store} as it is" in run.get_log("prepare.txt")
    assert run.get_details()["runDefinition"]["arguments"][5] == "DatasetConsumptionConfig:fowl"
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
