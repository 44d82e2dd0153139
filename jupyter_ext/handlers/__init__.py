"""Route table for /train/api (see jupyter_ext/openapi.yaml for the contract; tests/test_contract.py
checks the two describe the same endpoints)."""

from __future__ import annotations

import re

from ..schema import api_spec
from .base import NoEndpointHandler
from .datasets import (DatasetFileHandler, DatasetHandler, DatasetsHandler, DatasetVersionHandler,
                       DatastoreFileHandler, DatastoreFilesHandler, DatastoreHandler, DatastoresHandler,
                       DatastoreUploadHandler)
from .environments import EnvironmentHandler, EnvironmentsHandler
from .events import WorkspaceEventsHandler
from .models import ModelFileHandler, ModelHandler, ModelsHandler, ModelVersionHandler
from .runs import (CancelHandler, ComputeHandler, ExperimentsHandler, FileHandler, FilesHandler,
                   InfoHandler, LogHandler, LogsHandler, MetricSeriesHandler, MetricsHandler,
                   OneComputeHandler,
                   ResubmitHandler, RunHandler, RunsHandler, SnapshotFileHandler,
                   SnapshotHandler, SweepsHandler)
from .services import (ServiceHandler, ServiceKeysHandler, ServiceLogsHandler, ServiceScoreHandler,
                       ServicesHandler)
from .stream import RunStreamHandler

RUN = r"(?P<run_id>[A-Za-z0-9_.-]+)"
NAME = r"(?P<name>[A-Za-z0-9_.-]+)"

ROUTES = [
    (r"", InfoHandler),
    (r"/events", WorkspaceEventsHandler),
    (r"/experiments", ExperimentsHandler),
    (r"/computes", ComputeHandler),
    (rf"/computes/{NAME}", OneComputeHandler),
    (r"/runs", RunsHandler),
    (rf"/runs/{RUN}", RunHandler),
    (rf"/runs/{RUN}/cancel", CancelHandler),
    (rf"/runs/{RUN}/resubmit", ResubmitHandler),
    (rf"/runs/{RUN}/logs", LogsHandler),
    (rf"/runs/{RUN}/logs/(?P<name>.+)", LogHandler),
    (rf"/runs/{RUN}/metrics", MetricsHandler),
    (rf"/runs/{RUN}/metrics/series", MetricSeriesHandler),
    (rf"/runs/{RUN}/files", FilesHandler),
    (rf"/runs/{RUN}/files/(?P<name>.+)", FileHandler),
    (rf"/runs/{RUN}/snapshot", SnapshotHandler),
    (rf"/runs/{RUN}/snapshot/(?P<name>.+)", SnapshotFileHandler),
    (rf"/runs/{RUN}/stream", RunStreamHandler),
    (r"/sweeps", SweepsHandler),
    (r"/environments", EnvironmentsHandler),
    (rf"/environments/{NAME}", EnvironmentHandler),
    (r"/models", ModelsHandler),
    (rf"/models/{NAME}", ModelHandler),
    (rf"/models/{NAME}/(?P<version>[0-9]+)", ModelVersionHandler),
    (rf"/models/{NAME}/(?P<version>[0-9]+)/files/(?P<path>.+)", ModelFileHandler),
    (r"/datastores", DatastoresHandler),
    (rf"/datastores/{NAME}", DatastoreHandler),
    (rf"/datastores/{NAME}/upload", DatastoreUploadHandler),
    (rf"/datastores/{NAME}/files", DatastoreFilesHandler),
    (rf"/datastores/{NAME}/files/(?P<path>.+)", DatastoreFileHandler),
    (r"/datasets", DatasetsHandler),
    (rf"/datasets/{NAME}", DatasetHandler),
    (rf"/datasets/{NAME}/(?P<version>[0-9]+)", DatasetVersionHandler),
    (rf"/datasets/{NAME}/(?P<version>[0-9]+)/files/(?P<path>.+)", DatasetFileHandler),
    (r"/services", ServicesHandler),
    (rf"/services/{NAME}", ServiceHandler),
    (rf"/services/{NAME}/keys", ServiceKeysHandler),
    (rf"/services/{NAME}/logs", ServiceLogsHandler),
    (rf"/services/{NAME}/score", ServiceScoreHandler),
]


def spec_path(pattern: str) -> str:
    """A route's path in openapi.yaml: ``/runs/(?P<run_id>...)`` -> ``/runs/{run_id}``."""
    return re.sub(r"\(\?P<([a-z_]+)>[^)]*\)", r"{\1}", pattern) or "/"


def handlers(base: str = "/train/api") -> list[tuple[str, type, dict]]:
    """Every route, told its openapi.yaml path (requests are checked against it), then the
    catch-all: JSON 404 for anything else under ``base``."""
    api_spec()  # read openapi.yaml once, at server start (a broken file fails here, not later)
    return [(base + pattern, handler, {"spec_path": spec_path(pattern)}) for pattern, handler in ROUTES] \
        + [(base + r"/.*", NoEndpointHandler, {"spec_path": None})]
