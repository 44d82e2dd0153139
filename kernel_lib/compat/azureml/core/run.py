"""``azureml.core.run.Run`` for scripts run by jupyter-train, backed by kernel_lib.tracking.

What a training script does with its run works: ``Run.get_context()``, ``log``, ``log_list``,
``log_row``, ``log_table``, ``log_image`` (a file under outputs/images/, shown in the run view),
``log_confusion_matrix``, ``log_accuracy_table``, ``tag``, ``set_tags``, ``get_tags``,
``add_properties``, ``id``, ``experiment.name``, ``upload_file`` (copied into outputs/),
``flush``, ``complete``. Calls that only make sense against the Azure service
(``submit_child``, ``get_secret``, ...) raise a NotImplementedError that says what to do."""

from __future__ import annotations

import os
import shutil

from jupyter_ext.contract import RUNNING
from kernel_lib.tracking import Run as _TrackingRun


class NotAvailable(AttributeError, NotImplementedError):
    """An Azure ML service call with no meaning here (hasattr() sees it as missing)."""


class _Experiment:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"Experiment(name={self.name!r})"


class Run:
    """The current run, as Azure ML SDK v1 scripts see it."""

    _context: "Run | None" = None

    def __init__(self, tracking: _TrackingRun):
        self._run = tracking
        self._tags: dict[str, str] = {}
        self._properties: dict[str, str] = {}

    @classmethod
    def get_context(cls, allow_offline: bool = True, **_ignored) -> "Run":
        if cls._context is None:
            tracking = _TrackingRun.get_context()
            if tracking.offline and not allow_offline:
                raise RuntimeError("Not inside a jupyter-train run (allow_offline=False).")
            cls._context = cls(tracking)
        return cls._context

    # -- identity -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._run.id

    @property
    def experiment(self) -> _Experiment:
        return _Experiment(self._run.experiment_name)

    @property
    def parent(self):
        return None

    @property
    def input_datasets(self) -> dict:
        return self._run.input_datasets

    @property
    def number(self) -> int:
        return 0

    def __repr__(self):
        return f"Run(id={self.id!r}, experiment={self._run.experiment_name!r})"

    # -- metrics --------------------------------------------------------------------------
    def log(self, name, value, description: str = "", step: int | None = None) -> None:
        self._run.log(name, value, step=step)

    def log_list(self, name, value, description: str = "") -> None:
        self._run.log_list(name, value)

    def log_row(self, name, description: str = "", **kwargs) -> None:
        self._run.log_row(name, **kwargs)

    def log_table(self, name, value: dict, description: str = "") -> None:
        """A table as {column: [values]}: each column becomes the metric ``name/column``."""
        self._run.log_table(name, value)

    def log_confusion_matrix(self, name, value, description: str = "") -> None:
        self._run.log_confusion_matrix(name, value)

    def log_accuracy_table(self, name, value, description: str = "") -> None:
        self._run.log_accuracy_table(name, value)

    def log_image(self, name, path=None, plot=None, description: str = "") -> None:
        """Into outputs/images/ (a matplotlib ``plot`` as PNG); shown in the run view."""
        self._run.log_image(name, path=path, plot=plot)

    # -- tags and properties --------------------------------------------------------------
    def tag(self, key, value=None) -> None:
        self._tags[str(key)] = "" if value is None else str(value)
        self._run.tag(key, value)

    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.tag(k, v)

    def get_tags(self) -> dict:
        return dict(self._tags)

    def add_properties(self, properties: dict) -> None:
        """Recorded as tags (jupyter-train keeps one key-value set per run)."""
        self._properties.update({str(k): str(v) for k, v in properties.items()})
        self.set_tags(properties)

    def get_properties(self) -> dict:
        return dict(self._properties)

    # -- files ----------------------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream) -> None:
        """Copies a file into the run's history (under outputs/ unless ``name`` says logs/)."""
        rel = name if name.startswith(("outputs/", "logs/")) else os.path.join("outputs", name)
        os.makedirs(os.path.dirname(rel) or ".", exist_ok=True)
        if hasattr(path_or_stream, "read"):
            with open(rel, "wb") as f:
                shutil.copyfileobj(path_or_stream, f)
        elif os.path.abspath(path_or_stream) != os.path.abspath(rel):
            shutil.copyfile(path_or_stream, rel)

    def upload_folder(self, name: str, path: str) -> None:
        rel = name if name.startswith("outputs/") else os.path.join("outputs", name)
        shutil.copytree(path, rel, dirs_exist_ok=True)

    # -- lifecycle ------------------------------------------------------------------------
    def flush(self) -> None:
        self._run.flush()

    def complete(self, _set_status: bool = True) -> None:
        """Flushes metrics; the run's status follows the script's exit code."""
        self._run.flush()

    def get_status(self) -> str:
        return RUNNING

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotAvailable(
            f"azureml Run.{name} is not available inside a jupyter-train run. Training scripts can "
            "log metrics, tags and files; use kernel_lib from the notebook for the rest.")
