"""Fixtures: a real Jupyter server with the extension (pytest-jupyter), a headless
``jupyter train`` in a subprocess, and helpers to call the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.contract import Contract

pytest_plugins = ["pytest_jupyter.jupyter_server"]

CONTRACT = Contract()
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
TERMINAL = ("Completed", "Failed", "Canceled")
# Nodes' system metrics (metrics/system_<node>.jsonl) are off in the suite unless a test (or
# whoever runs it) asks: tests that compare a run's metrics with what its script logged stay
# exact. tests/test_system_metrics.py turns them on where it looks at them.
os.environ.setdefault("JUPYTER_TRAIN_SYSTEM_METRICS_INTERVAL", "0")
# Datastore credentials are encrypted with a key outside the workspace: the suite's own, not the
# key of whoever runs it (tests/test_datasets.py checks the key never lands in a workspace).
os.environ.setdefault("JUPYTER_TRAIN_SECRET_FILE", os.path.join(
    __import__("tempfile").mkdtemp(prefix="jt-secret-"), "datastore.key"))


def pytest_terminal_summary(terminalreporter):
    """The fault suite's table (tests/faults), when any fault test ran."""
    from tests.faults.table import render

    text = render()
    if text:
        terminalreporter.write_sep("=", "fault suite")
        terminalreporter.write_line(text)


@pytest.fixture
def workspace_dir(tmp_path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def jp_server_config(workspace_dir):
    # The server's defaults: file events, with the 1 s fallback pass (what users run)
    return {"ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
            "TrainApp": {"workspace_dir": str(workspace_dir)}}


@pytest.fixture
def scripts_dir() -> Path:
    return SCRIPTS


class Api:
    """JSON calls through pytest-jupyter's jp_fetch; errors come back as (status, body)."""

    def __init__(self, jp_fetch):
        self.fetch = jp_fetch

    async def call(self, method, path, body=None, expect=200, **params):
        from tornado.httpclient import HTTPClientError

        kwargs = {"method": method, "params": params}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PATCH"):
            kwargs["body"] = "{}"
        try:
            resp = await self.fetch("train", "api", *filter(None, path.split("/")), **kwargs)
            status, raw = resp.code, resp.body
        except HTTPClientError as err:
            status, raw = err.code, err.response.body if err.response else b""
        assert status == expect, f"{method} {path}: expected {expect}, got {status}: {raw[:500]!r}"
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        CONTRACT.validate(method, path, status, body)
        return body

    async def submit(self, script, args=(), source=SCRIPTS, expect=201, **extra):
        body = {"experiment": "exp", "source_directory": str(source), "script": script,
                "arguments": list(args), **extra}
        return await self.call("POST", "runs", body, expect=expect)

    async def wait(self, run_id, timeout=60.0, states=TERMINAL):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = await self.call("GET", f"runs/{run_id}")
            if run["status"] in states:
                return run
            await asyncio.sleep(0.05)
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s")


@pytest.fixture
def api(jp_fetch):
    return Api(jp_fetch)


class Headless:
    """``python -m jupyter_ext`` on a free port, owning ``workspace``."""

    def __init__(self, workspace: Path, log: Path):
        self.workspace, self.log = workspace, log
        self.token = secrets.token_hex(16)
        self.proc = None

    def start(self, timeout=60.0) -> "Headless":
        argv = [sys.executable, "-m", "jupyter_ext", "--port=0", "--ip=127.0.0.1",
                "--ServerApp.open_browser=False", f"--TrainApp.workspace_dir={self.workspace}"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        env = dict(os.environ, JUPYTER_TOKEN=self.token)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = _read_json(self.workspace / "server.json")
            if info and info.get("pid") == self.proc.pid and ":0/" not in info["url"]:
                self.url = info["url"]
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"headless server exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(f"headless server did not start: {self.log.read_text()[-2000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def log_of(run, name="rank_0.txt"):
    """A run's log through the SDK, or '' while it does not exist yet (for polling loops)."""
    from kernel_lib.client import TrainError

    try:
        return run.get_log(name)
    except TrainError:
        return ""


def wait_for_log(run, text, name="rank_0.txt", timeout=90.0):
    """Poll until ``text`` is in the run's log ``name``; on timeout, fail showing the
    supervisor's log (where a target says what it is waiting for)."""
    deadline = time.monotonic() + timeout
    while text not in log_of(run, name):
        assert time.monotonic() < deadline, f"{text!r} not in {name}: " + log_of(run, "supervisor.txt")
        time.sleep(0.2)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


@pytest.fixture
def headless(tmp_path):
    servers = []

    def factory(workspace=None):
        server = Headless(workspace or tmp_path / "workspace", tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        return server.start()

    yield factory
    for s in servers:
        s.stop()


@contextlib.contextmanager
def module_workspace(tmp_path_factory, name: str):
    """A kernel_lib Workspace on a headless server of its own, for a module-scoped fixture."""
    from kernel_lib import Workspace

    root = tmp_path_factory.mktemp(name)
    server = Headless(root / "workspace", root / "server.log").start()
    try:
        yield Workspace(root / "workspace")
    finally:
        server.stop()


@pytest.fixture
def ws(headless, workspace_dir):
    """A kernel_lib Workspace on a headless server of its own."""
    from kernel_lib import Workspace

    headless(workspace_dir)
    return Workspace(workspace_dir)
