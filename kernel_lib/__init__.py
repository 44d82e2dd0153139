"""jupyter-train kernel library: the SDK a notebook imports, the %%train magics and the run
monitor. Names are imported lazily, so ``kernel_lib.tracking`` (used inside training scripts)
costs nothing more than itself."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Workspace": "workspace",
    "Experiment": "experiment",
    "Run": "run",
    "ScriptRunConfig": "run_config",
    "ComputeTarget": "compute",
    "ComputeTargetNotFound": "compute",
    "ComputeTargetException": "compute",
    "ClusterCompute": "compute",
    "AmlCompute": "compute",
    "DockerCompute": "compute",
    "RayCompute": "compute",
    "PyTorchConfiguration": "distributed",
    "Environment": "environment",
    "CondaDependencies": "environment",
    "MpiConfiguration": "distributed",
    "Model": "model",
    "Datastore": "data",
    "Dataset": "data",
    "FileDataset": "data",
    "TabularDataset": "data",
    "DatasetConsumptionConfig": "data",
    "InferenceConfig": "webservice",
    "Webservice": "webservice",
    "AciWebservice": "webservice",
    "LocalWebservice": "webservice",
    "WebserviceException": "webservice",
    "TrainClient": "client",
    "TrainError": "client",
    "RunMonitor": "widgets",
    "RunDetails": "widgets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


def load_ipython_extension(ipython):
    """``%load_ext kernel_lib``: the %%train cell magic and the %train_* line magics."""
    from .magics import TrainMagics

    ipython.register_magics(TrainMagics)
