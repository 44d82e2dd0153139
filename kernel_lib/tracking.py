"""The in-script tracking API: ``Run.get_context().log("val_acc", 0.91)``.

Standard library only, so that it imports in any job environment in a millisecond. Inside a
run (the supervisor sets ``JUPYTER_TRAIN_METRICS_DIR``) each call appends a tuple to an
in-memory buffer; a daemon thread writes the buffer to this rank's JSON-lines file every
``JUPYTER_TRAIN_FLUSH_S`` seconds (default 0.05) and at exit; after an interval with nothing
to write it sleeps until the next point and writes that one at once. No network, no serialization and
no file I/O happen on the training thread. The server tails the file. The record format and
its limits are jupyter_ext.contract's (stdlib-only too; launcher.payload ships it with this).

Outside a run, ``Run.get_context()`` returns an offline run that prints what it is given and
keeps going, so the same script runs under plain ``python``.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import sys
import threading
import time

from jupyter_ext.contract import (ENV_EXPERIMENT, ENV_INPUT_DATASETS, ENV_FLUSH_S, ENV_METRICS_DIR, ENV_RUN_ID, KIND,
                                  MAX_NAME, MAX_TEXT, METRIC, NAME, NONFINITE, STEP, TAG, TIME, VALUE,
                                  metrics_file_name)

__all__ = ["Run", "MAX_TEXT", "MAX_NAME"]

_NUMBER_TYPES = (int, float)
_now = time.time


IDLE_CHECK_S = 1.0  # an idle flusher still looks at its queue this often


def _warn(msg: str) -> None:
    print(f"[jupyter-train] {msg}", file=sys.stderr, flush=True)


def _coerce(name, value):
    """Return a JSON-safe value for a metric, or raise ValueError with what to do instead."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, _NUMBER_TYPES):
        return value
    item = getattr(value, "item", None)  # numpy scalars, 0-d / 1-element tensors
    if callable(item):
        try:
            return _coerce(name, item())
        except (ValueError, RuntimeError):
            raise ValueError(f"metric {name!r}: a {type(value).__name__} with more than one element "
                             "is not a scalar; log a number, or use log_list for a list") from None
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"metric {name!r}: a text value of {len(value)} characters is over the "
                             f"{MAX_TEXT}-character limit; write long text to ./outputs instead")
        return value
    raise ValueError(f"metric {name!r}: a {type(value).__name__} is not a number or text; "
                     f"log a number (or a string of at most {MAX_TEXT} characters)")


class _Writer:
    """The background flusher for one metrics file. Records are tuples on a deque: append and
    popleft are atomic, so the training thread never takes a lock."""

    def __init__(self, path: str, interval: float):
        self.path = path
        self.interval = interval
        self.queue: collections.deque = collections.deque()
        self.flush_lock = threading.Lock()
        self.wake = threading.Event()
        self.idle = False  # the flusher sleeps until a point comes (see _idle)
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="jupyter-train-metrics", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _loop(self):
        while not self.closed:
            self.wake.wait(self.interval)  # points logged meanwhile go out as one write
            self.wake.clear()
            busy = bool(self.queue)
            self.flush()
            if not busy and not self.closed:
                self._idle()

    def _idle(self):
        """A whole interval without a point: sleep until the next one, which ``poke`` writes at
        once (an epoch's metric is not held back by the batching meant for per-step logging)."""
        self.idle = True
        if not self.queue:
            self.wake.wait(IDLE_CHECK_S)
        self.idle = False
        self.wake.clear()
        self.flush()

    def poke(self):
        self.idle = False
        self.wake.set()

    def flush(self):
        if not self.queue:
            return
        with self.flush_lock:  # the flusher thread and an explicit flush() never interleave
            pop, lines = self.queue.popleft, []
            while True:
                try:
                    rec = pop()
                except IndexError:
                    break
                lines.append(_encode(rec))
            if lines:
                data = ("\n".join(lines) + "\n").encode("utf-8")
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)

    def close(self):
        self.closed = True
        self.wake.set()
        self.flush()


_names: dict[str, str] = {}  # metric name -> its JSON string (names repeat every step)
# The text around the fields of a point record, from the contract's keys: '{"k":"m","n":' ...
_HEAD = f'{{"{KIND}":"{METRIC}","{NAME}":'
_AT_V, _AT_S, _AT_T = f',"{VALUE}":', f',"{STEP}":', f',"{TIME}":'


def _encode(rec: tuple) -> str:
    if rec[0] == "t":
        return json.dumps({KIND: TAG, NAME: rec[1], VALUE: rec[2]}, separators=(",", ":"))
    v, step, t = rec[2], rec[3], rec[4]
    # The common record (a finite float or an int, an int step) without json.dumps: the same
    # text it would write (repr of a finite float is its JSON), in a fraction of the time.
    if (type(v) is float and v - v == 0.0 or type(v) is int) and type(step) is int:
        name = _names.get(rec[1])
        if name is None:
            name = _names[rec[1]] = json.dumps(rec[1])
        return f"{_HEAD}{name}{_AT_V}{v!r}{_AT_S}{step}{_AT_T}{t!r}}}"
    d = {KIND: METRIC, NAME: rec[1], VALUE: v, STEP: step, TIME: t}
    try:
        return json.dumps(d, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN / inf: keep the point, as text, so the history is honest
        d[VALUE], d[NONFINITE] = repr(rec[2]), True
        return json.dumps(d, separators=(",", ":"))


class LocalTabularDataset:
    """A tabular dataset input on the node: its delimited files, read with pandas."""

    def __init__(self, info: dict):
        self.path = info["path"]
        self.name, self.version = info.get("dataset"), info.get("version")
        self._options = info.get("tabular") or {}

    def files(self) -> list:
        if os.path.isfile(self.path):
            return [self.path]
        return sorted(os.path.join(d, f) for d, _, names in os.walk(self.path) for f in names)

    def to_pandas_dataframe(self):
        import pandas as pd

        sep = self._options.get("separator", ",")
        header = 0 if self._options.get("header", True) else None
        frames = [pd.read_csv(f, sep=sep, header=header) for f in self.files()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def __repr__(self):
        return f"TabularDataset(name={self.name!r}, version={self.version}, path={self.path!r})"


class Run:
    """A handle on the current run from inside its script."""

    _context: "Run | None" = None

    def __init__(self, run_id: str | None, metrics_dir: str | None, rank: int = 0):
        self.id = run_id or "offline"
        self.rank = rank
        self.experiment_name = os.environ.get(ENV_EXPERIMENT, "")
        self._steps: dict[str, int] = {}
        self._writer = None
        if metrics_dir:
            os.makedirs(metrics_dir, exist_ok=True)
            interval = float(os.environ.get(ENV_FLUSH_S, "0.05"))
            self._writer = _Writer(os.path.join(metrics_dir, metrics_file_name(rank)), interval)
        # Where a record goes: the writer's deque (no lock, no I/O) or, offline, the console.
        self._append = self._writer.queue.append if self._writer else self._print_offline

    @classmethod
    def get_context(cls) -> "Run":
        """The run this process belongs to, or an offline run that prints."""
        if cls._context is None:
            rank = int(os.environ.get("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")) or 0)
            cls._context = cls(os.environ.get(ENV_RUN_ID), os.environ.get(ENV_METRICS_DIR), rank)
        return cls._context

    @property
    def offline(self) -> bool:
        return self._writer is None

    @property
    def input_datasets(self) -> dict:
        """The run's dataset inputs by name, as Azure ML gives them: a file dataset's path on
        this node (its folder, or its file for a dataset of one file); a tabular dataset as an
        object with ``to_pandas_dataframe()`` (and ``.path``)."""
        inputs = json.loads(os.environ.get(ENV_INPUT_DATASETS) or "{}")
        return {name: (LocalTabularDataset(info) if info.get("kind") == "tabular" else info["path"])
                for name, info in inputs.items()}

    @staticmethod
    def _print_offline(rec: tuple) -> None:
        print(f"[offline run] {rec[1]} = {rec[2]!r}" + (f" (step {rec[3]})" if rec[0] == "m" else " (tag)"))

    def log(self, name: str, value, step: int | None = None, description: str = "") -> None:
        """Log one value of a metric. Steps count up per name unless given."""
        if type(value) not in _NUMBER_TYPES or type(name) is not str or not 0 < len(name) <= MAX_NAME:
            if not isinstance(name, str) or not name or len(name) > MAX_NAME:
                _warn(f"metric name {name!r} refused: use a non-empty string of at most {MAX_NAME} characters")
                return
            try:
                value = _coerce(name, value)
            except ValueError as exc:
                _warn(f"{exc}; the value was not recorded")
                return
        if step is None:
            step = self._steps.get(name, -1) + 1
        self._steps[name] = step
        self._append(("m", name, value, step, _now()))
        if self._writer is not None and self._writer.idle:
            self._writer.poke()

    def log_list(self, name: str, values, description: str = "") -> None:
        for v in values:
            self.log(name, v)

    def log_row(self, name: str, description: str = "", **kwargs) -> None:
        """A row of a table metric: each column becomes the metric ``name/column``."""
        for col, v in kwargs.items():
            self.log(f"{name}/{col}", v)

    # -- files: images and Azure ML's tables (tracking_files) --------------------------------
    def log_image(self, name: str, path=None, plot=None, description: str = "") -> str | None:
        """An image file (``path``) or a matplotlib figure (``plot``) into outputs/images/, shown
        in the run view and the monitor; the metric ``name`` records its path. Returns it."""
        return self._log_file(name, lambda files: files.save_image(name, path, plot))

    def log_table(self, name: str, value: dict, description: str = "") -> None:
        """A table as {column: [values]}: each column becomes the metric ``name/column``."""
        if not isinstance(value, dict) or not all(isinstance(v, (list, tuple)) for v in value.values()):
            _warn(f"log_table({name!r}) refused: give a dict of columns, {{column: [values]}}")
            return
        for col, values in value.items():
            self.log_list(f"{name}/{col}", values)

    def log_confusion_matrix(self, name: str, value, description: str = "") -> None:
        """Azure ML's confusion matrix JSON ({"schema_type": "confusion_matrix", "data":
        {"class_labels": [...], "matrix": [[...]]}}), as the metric ``name`` and a file."""
        self._log_file(name, lambda files: files.save_table(name, files.confusion_matrix(name, value)))

    def log_accuracy_table(self, name: str, value, description: str = "") -> None:
        """Azure ML's accuracy table JSON ({"schema_type": "accuracy_table", "data": {...}})."""
        self._log_file(name, lambda files: files.save_table(name, files.accuracy_table(name, value)))

    def _log_file(self, name, save) -> str | None:
        """``save(tracking_files)`` writes the file; the metric ``name`` records what it returns."""
        from . import tracking_files  # on first use: importing tracking stays a millisecond

        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            _warn(f"metric name {name!r} refused: use a non-empty string of at most {MAX_NAME} characters")
            return None
        try:
            recorded = save(tracking_files)
        except (tracking_files.Refused, OSError) as exc:
            _warn(f"{exc}; nothing was recorded")
            return None
        self.log(name, recorded)
        return recorded

    def tag(self, key: str, value=None) -> None:
        self._append(("t", str(key), "" if value is None else str(value)))
        if self._writer is not None and self._writer.idle:
            self._writer.poke()

    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.tag(k, v)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
