"""Finds the jupyter-train server for a workspace and talks to it (REST + WebSocket).

Discovery, in order: ``JUPYTER_TRAIN_URL`` + ``JUPYTER_TRAIN_TOKEN``; the owner's
``server.json`` in the workspace (if that server answers); else a headless server started here
(``python -m jupyter_ext``), detached so it outlives the kernel. If the server goes away
mid-session (restarted, new token), the next call finds the new owner and retries once.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from jupyter_ext.contract import ENV_TOKEN, ENV_URL
from jupyter_ext.workspace import WorkspaceDir

START_TIMEOUT_S = 60


class TrainError(Exception):
    """An error answered by the server: ``code`` and a message that says what to do."""

    def __init__(self, message: str, code: str = "error", status: int = 0, details=None):
        super().__init__(message)
        self.message, self.code, self.status, self.details = message, code, status, details or {}


class ServerUnavailable(TrainError):
    pass


class TrainClient:
    def __init__(self, workspace_dir: str, url: str | None = None, token: str | None = None,
                 start: bool = True):
        self.ws = WorkspaceDir(workspace_dir)
        self.url, self.token = url, token
        self._start = start
        self._fixed = url is not None
        self.started = None  # the Popen of a headless server this client started, if any
        if url is None:
            self.discover()

    # -- discovery ------------------------------------------------------------------------
    def discover(self) -> None:
        env_url = os.environ.get(ENV_URL)
        if env_url:
            self.url, self.token = env_url, os.environ.get(ENV_TOKEN, "")
            self._fixed = True
            return
        info = self.ws.read_server_info()
        if info and self._answers(info):
            self.url, self.token = info["url"], info["token"]
            return
        if not self._start:
            raise ServerUnavailable(f"No jupyter-train server owns the workspace {self.ws.path}. "
                                    "Start one with `jupyter train` or open JupyterLab.")
        self._start_headless()

    def _answers(self, info: dict) -> bool:
        try:
            self._http("GET", info["url"].rstrip("/") + "/train/api", info["token"], None, timeout=3)
            return True
        except (OSError, TrainError, KeyError):
            return False

    def _start_headless(self) -> None:
        self.ws.create()
        token = secrets.token_hex(24)
        argv = [sys.executable, "-m", "jupyter_ext", "--port=0", "--ip=127.0.0.1",
                "--ServerApp.open_browser=False", f"--TrainApp.workspace_dir={self.ws.path}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        env = dict(os.environ, JUPYTER_TOKEN=token)
        print(f"jupyter-train: starting a server for the workspace {self.ws.path} ...",
              file=sys.stderr, flush=True)
        with open(self.ws.path / "server.log", "ab") as log:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            info = self.ws.read_server_info()
            if info and info.get("token") == token and self._answers(info):
                self.url, self.token, self.started = info["url"], token, proc
                print(f"jupyter-train: server ready at {self.url} (pid {info['pid']})",
                      file=sys.stderr, flush=True)
                return
            if proc.poll() is not None:
                info = self.ws.read_server_info()
                if info and self._answers(info):  # another process won the race: use it
                    self.url, self.token = info["url"], info["token"]
                    return
                raise ServerUnavailable(f"The jupyter-train server exited (code {proc.returncode}); "
                                        f"see {self.ws.path / 'server.log'}.")
            time.sleep(0.1)
        raise ServerUnavailable(f"The jupyter-train server did not answer within {START_TIMEOUT_S} s; "
                                f"see {self.ws.path / 'server.log'}.")

    def stop_started_server(self, timeout: float = 30) -> bool:
        """Stop the headless server this client started (runs keep going; a later client
        starts a new server, which re-attaches to them). False if it started none."""
        proc, self.started = self.started, None
        if proc is None or proc.poll() is not None:
            return False
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return True

    # -- HTTP -----------------------------------------------------------------------------
    def api_url(self, path: str, query: dict | None = None) -> str:
        url = self.url.rstrip("/") + "/train/api" + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None},
                                                doseq=True)
        return url

    @staticmethod
    def _http(method, url, token, body, timeout=60, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"token {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                e = json.loads(payload)
                raise TrainError(e.get("message", str(err)), e.get("error_code", "error"), err.code,
                                 e.get("details")) from None
            except ValueError:
                raise TrainError(f"HTTP {err.code} from {url}", "http_error", err.code) from None
        return payload if raw else json.loads(payload or b"null")

    def request(self, method: str, path: str, body=None, query=None, raw=False, timeout=60):
        try:
            return self._http(method, self.api_url(path, query), self.token, body, timeout, raw)
        except (urllib.error.URLError, ConnectionError, TrainError) as exc:
            retry = isinstance(exc, (urllib.error.URLError, ConnectionError)) or \
                getattr(exc, "status", 0) == 403
            if not retry or self._fixed:
                raise
            self.discover()  # the server restarted (new port or token): find the owner again
            return self._http(method, self.api_url(path, query), self.token, body, timeout, raw)

    def get(self, path, **query):
        return self.request("GET", path, query=query or None)

    def post(self, path, body=None):
        return self.request("POST", path, body=body if body is not None else {})

    def delete(self, path):
        return self.request("DELETE", path)

    def patch(self, path, body):
        return self.request("PATCH", path, body=body)

    # -- WebSocket ------------------------------------------------------------------------
    def stream(self, run_id: str, cursor: int = 0, offsets: dict | None = None,
               metrics: bool = True, output: bool = True):
        """Yield the run's stream messages until it ends; reconnects from where it left off.
        ``metrics=False`` / ``output=False``: the server leaves out metric / log messages."""
        import websocket  # websocket-client, a dependency of jupyter_server

        offsets = dict(offsets or {})
        failures = 0
        while True:
            q = {"cursor": cursor, "logs": ",".join(f"{k}:{v}" for k, v in offsets.items()),
                 "metrics": None if metrics else 0, "output": None if output else 0}
            url = self.api_url(f"/runs/{run_id}/stream", q).replace("http", "ws", 1)
            try:
                # The server sends valid UTF-8 (json.dumps); websocket-client's check of it is
                # pure Python and was most of the time a long stream took.
                conn = websocket.create_connection(url, header=[f"Authorization: token {self.token}"],
                                                   timeout=None, skip_utf8_validation=True)
            except (OSError, websocket.WebSocketException):
                failures += 1
                if failures > 60:
                    raise ServerUnavailable("Lost the connection to the jupyter-train server.") from None
                time.sleep(1)
                if not self._fixed:
                    try:
                        self.discover()
                    except TrainError:
                        pass
                continue
            try:
                while True:
                    raw = conn.recv()
                    if not raw:
                        break
                    msg = json.loads(raw)
                    failures = 0
                    if msg["type"] == "log":
                        offsets[msg["name"]] = msg["next_offset"]
                    elif msg["type"] == "metrics":
                        cursor = msg["cursor"]
                    yield msg
                    if msg["type"] == "end":
                        return
            except (OSError, websocket.WebSocketException):
                pass  # dropped: reconnect with the offsets we hold
            finally:
                conn.close()
