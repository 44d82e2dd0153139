"""The agent of one job node on a Ray node: an actor pinned to its bundle of the job's placement
group, holding the bundle's resources (so Ray sets CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS for
it). The run's environment reaches the node as Ray's pip/uv environment where the node builds it.

jupyter-train's own packages: the class travels by value (this module imports only the
standard library and launcher.payload at the top, and payload travels by value too), so the
node need not have jupyter-train. Its first call checks
whether the node's Python has a copy identical to the supervisor's (a fingerprint of the
sources); if not, the supervisor sends its packages through the object store once, kept on the
node under their fingerprint for later runs. Either way they go on the PYTHONPATH of the node's
processes (rank_entry, the tracking API, node_keeper). No Ray runtime_env for this: a worker with
one starts about 3 s slower, on every run.

It finds out whether its node sees the run directory at the server's path (a token file the
supervisor wrote). If so, the node's processes write there directly. If not (another machine),
it works in a node-local copy: the supervisor sends the working copy through the object store,
and reads back new log and metric lines as they are written, and the run's error files,
outputs and user logs at the end.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import payload  # stdlib-only; travels by value with this module (ray_supervisor.connect)

PROBE = ".ray-probe"  # the token file the supervisor writes into the run directory
FOLDERS = ("logs", "metrics", "pids", "errors")
PACKAGES = payload.PACKAGES
LIB_CACHE = Path(tempfile.gettempdir()) / "jupyter-train-lib"  # on each node: <fingerprint>/<package>
DATA_CACHE = Path(tempfile.gettempdir()) / "jupyter-train-data"  # on each node: dataset files by content
fingerprint = payload.fingerprint  # a hash of the packages' Python sources


def _node_packages() -> list[str] | None:
    """Folders of this Python's own jupyter_ext and kernel_lib (None if it lacks one)."""
    dirs = [payload.package_dir(name) for name in PACKAGES]
    return None if None in dirs else dirs


class NodeAgent:
    def __init__(self, run_id: str, index: int):
        self.run_id, self.index = run_id, index
        self.keeper: dict | None = None  # node_keeper's state: its pid and the command's
        self.lifeline: int | None = None  # held open while this agent lives (node_keeper)
        self.root: Path | None = None
        self.copy = False
        self.lib: str | None = None  # a folder to put first on PYTHONPATH (shipped packages)
        self.sampler = None  # sysmetrics.SystemSampler of this node, while its command runs

    def hello(self, run_dir: str, token: str, shared: bool | None, lib_fingerprint: str,
              use_own_lib: bool = True) -> dict:
        """Where this node is, where its files go (the run directory itself when the node sees
        it and ``shared`` is not False, else a fresh node-local folder), and whether it needs
        jupyter-train's packages sent (``needs_lib``)."""
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
        needs_lib = self._find_lib(lib_fingerprint, use_own_lib)
        if self.copy:
            self.root = Path(tempfile.mkdtemp(prefix=f"jupyter-train-{self.run_id}-node{self.index}-"))
        else:
            self.root = Path(run_dir)
        for d in FOLDERS:
            (self.root / d).mkdir(exist_ok=True)
        return {"address": ip, "node_id": node_id, "where": where, "copy": self.copy, "root": str(self.root),
                "python": sys.executable, "needs_lib": needs_lib}

    def _find_lib(self, wanted: str, use_own: bool) -> bool:
        """Use the node's own packages if identical, else a copy sent earlier; True if neither."""
        own = _node_packages()
        if use_own and own is not None and fingerprint(own) == wanted:
            return False
        cached = LIB_CACHE / wanted
        if all((cached / name).is_dir() for name in PACKAGES):
            self._use_lib(cached)
            return False
        return True

    def install_lib(self, data: bytes, wanted: str) -> None:
        """Unpack jupyter-train's packages (a tar of jupyter_ext/ and kernel_lib/) and keep them
        under their fingerprint for the next runs on this node."""
        import io
        import tarfile

        LIB_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=LIB_CACHE))
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, **safe)
        dest = LIB_CACHE / wanted
        try:
            os.replace(tmp, dest)
        except OSError:  # another run's agent put it there meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        self._use_lib(dest)

    def _use_lib(self, folder: Path) -> None:
        self.lib = str(folder)
        sys.path.insert(0, self.lib)
        for name in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
            del sys.modules[name]  # a different copy may have been imported before

    @staticmethod
    def _launcher(name: str):
        return importlib.import_module(f"jupyter_ext.launcher.{name}")

    def free_port(self) -> int:
        return self._launcher("procs").free_port()

    def unpack(self, data: bytes) -> int:
        return self._launcher("transfer").unpack(data, self.root)

    # -- dataset inputs (copy mode): this node's own cache, sent only what it lacks ----------
    def _data_cache(self):
        return self._launcher("datainputs").ObjectCache(DATA_CACHE)

    def missing_objects(self, digests: list[str]) -> list[str]:
        return self._data_cache().missing(digests)

    def put_objects(self, batch: dict) -> int:
        cache = self._data_cache()
        return sum(cache.put(data, digest, f"a dataset file ({digest[:12]}) sent to node {self.index}")
                   for digest, data in batch.items())

    def lay_out_inputs(self, inputs: list[dict]) -> list[str]:
        lines: list[str] = []
        self._launcher("datainputs").lay_out(inputs, self._data_cache(), self.root, lines.append)
        return lines

    def start(self, argv: list[str], cwd: str, env: dict, log_name: str, grace_s: float) -> int:
        """Start the node's command under a node_keeper (which ends it when this agent goes, however
        it goes), in its own process group, output into its log. ``env`` is the job's contract,
        laid over this worker's environment (Ray's PATH, py_modules and environment, the bundle's
        devices). Returns the command's pid."""
        full = dict(os.environ)
        full.update(env)
        path = [p for p in (self.lib, env.get("PYTHONPATH"), os.environ.get("PYTHONPATH")) if p]
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
        read_state = self._launcher("node_keeper").read_state
        while "command" not in read_state(self.state):
            if time.monotonic() > deadline:
                raise OSError(f"the node keeper did not start the command; see logs/{log_name}.txt")
            time.sleep(0.02)
        self.keeper = read_state(self.state)
        self._start_sampler(env, log_name)
        return self.keeper["command"]

    def _start_sampler(self, env: dict, log_name: str) -> None:
        """This node's system metrics into its metrics/ (collect brings them back in copy mode),
        at the interval the supervisor passed in ``env``; the GPUs Ray gave this actor."""
        try:
            sysmetrics = self._launcher("sysmetrics")
            say_to = self.root / "logs" / f"{log_name}.txt"

            def say(text: str) -> None:
                with open(say_to, "a") as f:
                    f.write(f"[node agent] {text}\n")

            command = self.keeper["command"]
            node = sysmetrics.NodeSource(self.index, sysmetrics.ProcessTree(lambda: [command]),
                                         gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
            self._stop_sampler()
            self.sampler = sysmetrics.start_sampler(self.root / "metrics", [node], str(self.root), say=say,
                                                    environ=env)
        except Exception:
            self.sampler = None  # never the run's problem

    def _stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None

    def poll(self):
        if self.keeper is None:
            return None
        read_state = self._launcher("node_keeper").read_state
        state = read_state(self.state)
        if "code" in state:
            self._stop_sampler()  # its last sample, before the supervisor's last collect
            return state["code"]
        if not self._launcher("procs").is_alive(self.keeper["keeper"]):
            state = read_state(self.state)  # it may have written its last word just now
            self._stop_sampler()
            return state.get("code", 137)
        return None

    def collect(self, offsets: dict, final: bool = False) -> dict:
        """New whole lines of logs and metrics past ``offsets`` (copy mode)."""
        if not self.copy:
            return {}
        return self._launcher("transfer").read_new(self.root, ("logs", "metrics"), offsets, final=final)

    def final_files(self, cwds: list[str]) -> bytes:
        """Error files, and outputs and user logs of the working copies (copy mode)."""
        if not self.copy:
            return b""
        names = ["errors"] + [f"{cwd}/{d}" for cwd in cwds for d in ("outputs", "logs")]
        return self._launcher("transfer").pack(self.root, names)

    def stop(self, grace_s: float):
        """SIGTERM to the keeper, which ends every process the command started (SIGKILL after
        ``grace_s``) and any rank left over; if it has not finished 5 s after that, SIGKILL to
        both, and an end to every process whose environment names this node's run folder."""
        if self.keeper is None:
            return None
        self._stop_sampler()
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
                # what the keeper had started is orphaned now: found by its environment
                self._launcher("procs").end_run_processes(self.root, grace_s)
        self._kill_ranks()
        return self.poll()

    def _kill_ranks(self) -> None:
        rundir = self._launcher("rundir")
        self._launcher("procs").kill_ranks(rundir.RunDir(self.root))

    def cleanup(self) -> None:
        """Remove the node-local copy (everything in it has been read back)."""
        if self.copy and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

