"""jupyter-train server extension.

Kept import-light on purpose: the per-run supervisor imports ``jupyter_ext.launcher`` and must
start fast, so nothing from jupyter_server or tornado is imported at package level.
"""

from ._version import __version__  # noqa: F401


def _jupyter_server_extension_points():
    from .app import TrainApp

    return [{"module": "jupyter_ext.app", "app": TrainApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-train-labextension"}]
