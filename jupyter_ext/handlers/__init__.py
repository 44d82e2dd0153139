"""Route table for /train/api (see jupyter_ext/openapi.yaml for the contract)."""

from __future__ import annotations

from .environments import EnvironmentHandler, EnvironmentsHandler
from .events import WorkspaceEventsHandler
from .models import ModelFileHandler, ModelHandler, ModelsHandler, ModelVersionHandler
from .runs import (CancelHandler, ComputeHandler, ExperimentsHandler, FileHandler, FilesHandler,
                   InfoHandler, LogHandler, LogsHandler, MetricsHandler, OneComputeHandler,
                   ResubmitHandler, RunHandler, RunsHandler)
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
    (rf"/runs/{RUN}/files", FilesHandler),
    (rf"/runs/{RUN}/files/(?P<name>.+)", FileHandler),
    (rf"/runs/{RUN}/stream", RunStreamHandler),
    (r"/environments", EnvironmentsHandler),
    (rf"/environments/{NAME}", EnvironmentHandler),
    (r"/models", ModelsHandler),
    (rf"/models/{NAME}", ModelHandler),
    (rf"/models/{NAME}/(?P<version>[0-9]+)", ModelVersionHandler),
    (rf"/models/{NAME}/(?P<version>[0-9]+)/files/(?P<path>.+)", ModelFileHandler),
]


def handlers(base: str = "/train/api") -> list[tuple[str, type]]:
    return [(base + pattern, handler) for pattern, handler in ROUTES]
