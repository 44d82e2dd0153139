"""The pytorch-birds tutorial as the tests run it: its generated images uploaded to the default
datastore, registered as the dataset "fowl", and read by pytorch_train.py through that dataset
(mounted or downloaded) on any compute target."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kernel_lib import Dataset, Experiment, ScriptRunConfig

TUTORIAL = Path(__file__).resolve().parent.parent / "notebooks" / "pytorch-birds"


@pytest.fixture(scope="module")
def fowl(tmp_path_factory):
    """The tutorial's two-class image folder (train/ and val/), generated once a module."""
    sys.path.insert(0, str(TUTORIAL))
    try:
        from make_data import make_imagefolder
    finally:
        sys.path.remove(str(TUTORIAL))
    return make_imagefolder(str(tmp_path_factory.mktemp("fowl")), seed=0)


def register_fowl(ws, fowl_dir: str):
    datastore = ws.get_default_datastore()
    datastore.upload(src_dir=fowl_dir, target_path="fowl", overwrite=True, show_progress=False)
    return Dataset.File.from_files(path=(datastore, "fowl/**")).register(ws, "fowl", create_new_version=True)


def submit_tutorial(ws, fowl_dir: str, mode: str = "mount", epochs: int = 1, image_size: int = 32,
                    experiment: str = "pytorch-birds", **config):
    """pytorch_train.py reading the registered dataset "fowl" (``mode``: mount or download)."""
    dataset = register_fowl(ws, fowl_dir)
    given = dataset.as_named_input("fowl")
    given = given.as_mount() if mode == "mount" else given.as_download()
    src = ScriptRunConfig(str(TUTORIAL), "pytorch_train.py",
                          ["--num_epochs", epochs, "--output_dir", "./outputs", "--data_dir", given,
                           "--image_size", image_size, "--batch_size", 16, "--learning_rate", 0.01], **config)
    return Experiment(ws, experiment).submit(src)
