"""TrainApp: the server extension, and ``jupyter train`` (the same app, headless).

Configuration (traitlets), e.g. in jupyter_server_config.py::

    c.TrainApp.workspace_dir = "/data/train-workspace"   # or the environment variable in contract.ENV_WORKSPACE
    c.TrainApp.snapshot_max_mb = 300
    c.TrainApp.snapshot_max_files = 2000
    c.TrainApp.poll_interval = 1.0   # the tailer's fallback poll; file events wake it at once
    c.TrainApp.node_shapes = {"a100x2": {"cpus": 16, "gpus": 2}}   # cluster vm_size names
"""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Integer, Unicode, default

from ._version import __version__
from . import contract
from .errors import WorkspaceLocked
from .handlers import handlers
from .workspace import WorkspaceDir, default_workspace_dir


class TrainApp(ExtensionApp):
    name = "jupyter_ext"
    app_name = "jupyter train"
    description = "Train PyTorch models from notebooks on your own machines (headless server)."
    extension_url = "/train/api"
    load_other_extensions = False  # `jupyter train` serves only this; under JupyterLab, all load

    workspace_dir = Unicode(config=True, help="Directory holding the database, runs, snapshots "
                            f"and models. Default: ${contract.ENV_WORKSPACE} or ~/.jupyter-train/workspace.")
    snapshot_max_mb = Float(300.0, config=True, help="Largest source snapshot, in MB.")
    snapshot_max_files = Integer(2000, config=True, help="Most files in a source snapshot.")
    poll_interval = Float(1.0, config=True, help="Seconds between the run tailer's fallback passes "
                          "over every active run (supervisor liveness, files written where no file "
                          "event is raised). Writes to a run's files wake the tailer at once "
                          "(inotify); where file events are unavailable it polls every "
                          "min(poll_interval, 0.05) s.")
    file_events = Bool(True, config=True, help="Follow runs' files by file events (inotify). "
                       "False: a pass every poll_interval instead (e.g. a workspace on a network "
                       "filesystem that other hosts write to; then set poll_interval to about 0.05).")
    node_shapes = Dict(config=True, help="Named node shapes for clusters' vm_size, e.g. "
                       "{'a100x2': {'cpus': 16, 'gpus': 2}}.")

    @default("workspace_dir")
    def _default_workspace_dir(self):
        return default_workspace_dir()

    def initialize_settings(self):
        self.workspace = WorkspaceDir(self.workspace_dir)
        self.manager = None
        try:
            self.workspace.acquire(self._server_info())
        except WorkspaceLocked as exc:
            # A second server on the same workspace: say who owns it; serve errors, not state.
            self.log.warning("jupyter-train: %s", exc.message)
            self.settings["train_unavailable"] = exc.message
            return
        from .runs import RunManager

        self.manager = RunManager(self.workspace_dir, snapshot_max_mb=self.snapshot_max_mb,
                                  snapshot_max_files=self.snapshot_max_files,
                                  poll_interval=self.poll_interval, node_shapes=self.node_shapes)
        self.manager.tailer.file_events = self.file_events
        self.settings["train_manager"] = self.manager
        self.log.info("jupyter-train %s: workspace %s", __version__, self.workspace.path)

    def _server_info(self) -> dict:
        sa = self.serverapp
        return {"pid": os.getpid(), "url": sa.connection_url, "token": sa.identity_provider.token,
                "version": __version__, "base_url": sa.base_url}

    def initialize_handlers(self):
        from .handlers.mlflow import mlflow_handlers

        self.handlers.extend(handlers())  # jupyter_server prepends base_url
        self.handlers.extend(mlflow_handlers())

    async def _start_jupyter_server_extension(self, serverapp):
        if self.manager is None:
            return
        # The real port (port=0 picks a free one) is known only now: publish the info again.
        self.workspace.publish(self._server_info())
        self.manager.server_url = serverapp.connection_url  # runs' MLFLOW_TRACKING_URI is below it
        await self.manager.start()

    async def stop_extension(self):
        if self.manager is not None:
            from .handlers.ws import TrainWebSocket

            TrainWebSocket.close_all(self.manager)  # 1001 to every open socket, before the tailer stops
            await self.manager.stop()
            self.workspace.release()


def main(argv=None):
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["env"]:  # jupyter train env list|show|prune: no server needed
        from .environments.cli import main as env_main

        sys.exit(env_main(args[1:]))
    TrainApp.launch_instance(argv)
