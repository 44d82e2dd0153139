"""Every tutorial under notebooks/ is executed end to end with nbclient (a real kernel) against a
real headless server, in a copy of the notebooks folder so nothing is written into the repository; and the
notebooks in the repository carry no outputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kernel_lib import Workspace

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL = sorted(str(p.relative_to(NOTEBOOKS)) for p in NOTEBOOKS.rglob("*.ipynb")
             if ".ipynb_checkpoints" not in p.parts)

# What each tutorial's output must show (a notebook without an entry here fails: add one).
EXPECT = {
    "pytorch-birds/train-pytorch-birds.ipynb": [
        "Uploaded ", "FileDataset(name='fowl', version=1",
        "dataset input fowl (fowl:1): mounted", "Creating a new compute target",
        "Building environment pytorch-birds", "Status: Completed",
        "best_val_acc", "pytorch-birds:1 from run", "Downloading from outputs/model.pt",
        "ExportResult(path=", "model='pytorch-birds-onnx:1'", "onnxruntime says:",
        "onnxruntime val accuracy:", "aci-birds: Healthy at http://127.0.0.1:", "init() done",
        "{'label': '", "'probability': '"],
    "pytorch-birds/hyperdrive-pytorch-birds.ipynb": [
        "Status: Completed", "best_val_acc=", "'--learning_rate', '0.00", "'--momentum', '0.9",
        "outputs/model.pt", "pytorch-birds-hd 1 from run"],
    "pytorch-ddp/pytorch-ddp.ipynb": ["Status: Completed", "final val_acc"],
    "mpi/mpi.ipynb": ["Status: Completed", "final val_acc"],
    "environments/environments.ipynb": [
        "toolz 1.", "/environments/envs/", "Building environment tutorial-toolz",
        "Using the cached environment tutorial-toolz", "tutorial-conda 1 ['toolz']"],
}


def test_every_tutorial_has_checks_and_no_saved_outputs():
    assert set(ALL) == set(EXPECT), "add the new notebook's expected output to EXPECT"
    for rel in ALL:
        nb = nbformat.read(NOTEBOOKS / rel, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, \
                    f"{rel} was saved with outputs: clear them (python tools/make_notebooks.py)"


@pytest.mark.parametrize("rel", ALL)
def test_tutorial_runs_end_to_end(rel, headless, workspace_dir, monkeypatch, tmp_path):
    if "mpi" in rel and shutil.which("mpirun") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpirun (Debian's openmpi-bin) is missing; .ci/run installs it")
        pytest.skip("mpirun is not installed")
    headless(workspace_dir)
    monkeypatch.setenv("JUPYTER_TRAIN_WORKSPACE", str(workspace_dir))
    # the whole notebooks/ tree: a tutorial may use a sibling's folder (mpi uses ../pytorch-ddp)
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns("data", "outputs", "model", "config.json", "__pycache__",
                                                  ".ipynb_checkpoints"))
    folder = (tmp_path / "notebooks" / rel).parent
    nb = nbformat.read(folder / Path(rel).name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    missing = [s for s in EXPECT[rel] if s not in text]
    assert not missing, f"{rel}: missing {missing} in its output:\n{text[-4000:]}"
    if rel == "pytorch-birds/hyperdrive-pytorch-birds.ipynb":
        rows = [line.split() for line in text.splitlines() if line.startswith("pytorch-birds-hd_")]
        assert len(rows) == 4 and all(r[1] == "Completed" for r in rows), text[-3000:]
        assert float(rows[0][2]) >= max(float(r[2]) for r in rows)  # sorted best first
    if rel == "pytorch-birds/train-pytorch-birds.ipynb":
        acc = float(text.split("onnxruntime val accuracy:")[1].split()[0])
        assert acc >= 0.8, text[-2000:]  # two balanced classes: chance is 0.5
        assert (folder / "config.json").is_file() and (folder / "model" / "model.onnx").is_file()
        ws = Workspace(workspace_dir)  # the service was deleted: none left, its run Canceled
        assert ws.client.get("/services")["services"] == []
        served = ws.client.get("/runs", experiment="services")["runs"]
        assert [r["status"] for r in served] == ["Canceled"]
