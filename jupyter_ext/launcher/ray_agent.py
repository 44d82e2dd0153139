"""The agent of one job node on a Ray node: an actor pinned to its bundle of the job's placement
group, holding the bundle's resources (so Ray sets CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS for
it). It reaches the node through Ray's runtime_env: jupyter-train's packages as py_modules, the
run's environment as Ray's pip/uv environment where the node builds it.

It finds out whether its node sees the run directory at the server's path (a token file the
supervisor wrote). If so, the node's processes write there directly. If not (another machine),
it works in a node-local copy: the supervisor sends the working copy through the object store,
and reads back new log and metric lines as they are written, and the run's error files,
outputs and user logs at the end. Imports only the standard library and jupyter_ext.launcher.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import transfer
from .node_keeper import read_state
from .procs import free_port, is_alive, kill_ranks
from .rundir import RunDir

PROBE = ".ray-probe"  # the token file the supervisor writes into the run directory
FOLDERS = ("logs", "metrics", "pids", "errors")


class NodeAgent:
    def __init__(self, run_id: str, index: int):
        self.run_id, self.index = run_id, index
        self.keeper: dict | None = None  # node_keeper's state: its pid and the command's
        self.lifeline: int | None = None  # held open while this agent lives (node_keeper)
        self.root: Path | None = None
        self.copy = False

    def hello(self, run_dir: str, token: str, shared: bool | None) -> dict:
        """Where this node is, and where its files go: the run directory itself when the node
        sees it (and ``shared`` is not False), else a fresh node-local folder."""
        import ray

        try:
            sees = Path(run_dir, PROBE).read_text() == token
        except OSError:
            sees = False
        ip = ray.util.get_node_ip_address()
        node_id = ray.get_runtime_context().get_node_id()
        where = f"{ip}, Ray node {node_id[:12]}"
        if shared is True and not sees:
            return {"error": f"Node {self.index} ({where}) does not see the run directory {run_dir}; "
                             "create the target with shared_filesystem=False (or None) to copy files "
                             "through Ray."}
        self.copy = not sees if shared is None else not shared
        if self.copy:
            self.root = Path(tempfile.mkdtemp(prefix=f"jupyter-train-{self.run_id}-node{self.index}-"))
        else:
            self.root = Path(run_dir)
        for d in FOLDERS:
            (self.root / d).mkdir(exist_ok=True)
        return {"address": ip, "node_id": node_id, "where": where, "copy": self.copy, "root": str(self.root),
                "python": sys.executable}

    def free_port(self) -> int:
        return free_port()

    def unpack(self, data: bytes) -> int:
        return transfer.unpack(data, self.root)

    def start(self, argv: list[str], cwd: str, env: dict, log_name: str, grace_s: float) -> int:
        """Start the node's command under a node_keeper (which ends it when this agent goes, however
        it goes), in its own process group, output into its log. ``env`` is the job's contract,
        laid over this worker's environment (Ray's PATH, py_modules and environment, the bundle's
        devices). Returns the command's pid."""
        full = dict(os.environ)
        full.update(env)
        path = [p for p in (env.get("PYTHONPATH"), os.environ.get("PYTHONPATH")) if p]
        if path:
            full["PYTHONPATH"] = os.pathsep.join(path)
        read_end, self.lifeline = os.pipe()
        self.state = self.root / "pids" / f"keeper_{log_name}.json"
        self.state.unlink(missing_ok=True)  # an earlier attempt's (a restart)
        keeper = [sys.executable, "-m", "jupyter_ext.launcher.node_keeper", str(self.root), str(grace_s),
                  str(read_end), str(self.state), "--"]
        with open(self.root / "logs" / f"{log_name}.txt", "ab") as log:
            launcher = subprocess.Popen(keeper + argv, cwd=self.root / cwd, env=full, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        pass_fds=(read_end,))
        os.close(read_end)
        if launcher.wait() != 0:
            raise OSError(f"the node keeper did not start (exit code {launcher.returncode}); see logs/{log_name}.txt")
        deadline = time.monotonic() + 30
        while "command" not in read_state(self.state):
            if time.monotonic() > deadline:
                raise OSError(f"the node keeper did not start the command; see logs/{log_name}.txt")
            time.sleep(0.02)
        self.keeper = read_state(self.state)
        return self.keeper["command"]

    def poll(self):
        if self.keeper is None:
            return None
        state = read_state(self.state)
        if "code" in state:
            return state["code"]
        if not is_alive(self.keeper["keeper"]):
            state = read_state(self.state)  # it may have written its last word just now
            return state.get("code", 137)
        return None

    def collect(self, offsets: dict, final: bool = False) -> dict:
        """New whole lines of logs and metrics past ``offsets`` (copy mode)."""
        return transfer.read_new(self.root, ("logs", "metrics"), offsets, final=final) if self.copy else {}

    def final_files(self, cwds: list[str]) -> bytes:
        """Error files, and outputs and user logs of the working copies (copy mode)."""
        if not self.copy:
            return b""
        names = ["errors"] + [f"{cwd}/{d}" for cwd in cwds for d in ("outputs", "logs")]
        return transfer.pack(self.root, names)

    def stop(self, grace_s: float):
        """SIGTERM to the keeper, which stops the command's process group (SIGKILL after
        ``grace_s``) and any rank left over; if it has not finished 5 s after that, SIGKILL to
        both."""
        if self.keeper is None:
            return None
        if self.poll() is None:
            try:
                os.kill(self.keeper["keeper"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace_s + 5
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.poll() is None:
                for pid, kill in ((self.keeper["keeper"], os.kill), (self.keeper["command"], os.killpg)):
                    try:
                        kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        kill_ranks(RunDir(self.root))
        return self.poll()

    def cleanup(self) -> None:
        """Remove the node-local copy (everything in it has been read back)."""
        if self.copy and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

