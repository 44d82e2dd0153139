"""Azure ML SDK v1 compatibility for training scripts run by jupyter-train (see ../../README.md):
``from azureml.core import Run`` and ``Run.get_context()`` log into the jupyter-train run.

Only the in-script API lives here. A notebook uses ``kernel_lib`` (Workspace, Experiment,
ScriptRunConfig, ...), whose names match the SDK's."""

from .run import Run

__all__ = ["Run"]
