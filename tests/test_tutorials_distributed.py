"""The distributed tutorials (DDP through torchrun, and through mpirun) executed end to end."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("path", ["pytorch-ddp/pytorch-ddp.ipynb", "mpi/mpi.ipynb"])
def test_distributed_tutorial_runs(path, headless, workspace_dir, monkeypatch):
    if "mpi" in path and shutil.which("mpirun") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpirun (Debian's openmpi-bin) is missing; .ci/run installs it")
        pytest.skip("mpirun is not installed")
    headless(workspace_dir)
    monkeypatch.setenv("JUPYTER_TRAIN_WORKSPACE", str(workspace_dir))
    nb = nbformat.read(NOTEBOOKS / path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str((NOTEBOOKS / path).parent)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Status: Completed" in text
    assert "final val_acc" in text
