"""The workspace on disk: a directory with the database, run directories, snapshots and models.

One server owns a workspace at a time. Ownership is an exclusive ``flock`` on ``.lock``, held for
the server's lifetime and released by the kernel when the process ends, however it ends; the
owner publishes how to reach it in ``server.json`` (mode 0600: it holds the token)."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from . import contract
from .errors import WorkspaceLocked

DEFAULT_DIR = os.path.join("~", ".jupyter-train", "workspace")
ENV_VAR = contract.ENV_WORKSPACE


def default_workspace_dir() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get(ENV_VAR) or DEFAULT_DIR))


class WorkspaceDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(os.path.abspath(os.path.expanduser(str(path))))
        self._lock_fd: int | None = None

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def models(self) -> Path:
        return self.path / "models"

    @property
    def db_path(self) -> Path:
        return self.path / "train.db"

    @property
    def server_info_path(self) -> Path:
        return self.path / "server.json"

    def create(self) -> "WorkspaceDir":
        for d in (self.path, self.runs, self.snapshots, self.models):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def read_server_info(self) -> dict | None:
        try:
            return json.loads(self.server_info_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self, info: dict) -> None:
        """Take the lock or raise WorkspaceLocked naming the owner; then publish ``info``."""
        self.create()
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = self.read_server_info() or {}
            raise WorkspaceLocked(
                f"The workspace {self.path} is owned by another server (pid {owner.get('pid')}, "
                f"{owner.get('url')}). Use that server, stop it, or give this one another "
                f"workspace (c.TrainApp.workspace_dir or {ENV_VAR}).",
                owner={k: v for k, v in owner.items() if k != "token"}) from None
        self._lock_fd = fd
        self.publish(info)

    def publish(self, info: dict) -> None:
        tmp = self.server_info_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self.server_info_path)

    def release(self) -> None:
        if self._lock_fd is None:
            return
        info = self.read_server_info()
        if info and info.get("pid") == os.getpid():
            self.server_info_path.unlink(missing_ok=True)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None
