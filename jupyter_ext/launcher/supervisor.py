"""The per-run supervisor of nodes on this host (``python -m jupyter_ext.launcher.supervise RUN_DIR``
picks it, or a remote one, from the run's placement).

Started detached (its own session) by a target, so that neither a kernel restart nor a server
restart touches the run. It starts each node's command in a process group of its own, with
stdout and stderr going straight into that node's log file (no pipe to copy through), waits,
handles cancellation (SIGTERM to the supervisor), moves ``./outputs`` and ``./logs`` of the
working copy into run history and appends the final state. Standard library only: it must
start fast and must not depend on the server being importable in its current state.

It is the run's process boundary: a child subreaper (Linux), so whatever a script starts, even
in a session of its own or as a double-forked daemon, stays its descendant; when the nodes have
exited, and on cancel, it ends every process left (SIGTERM, SIGKILL after the grace) and names
them in logs/supervisor.txt. If the supervisor itself is killed, the server does the same from
JUPYTER_TRAIN_RUN_DIR in the processes' environment (procs.end_run_processes).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from ..contract import ENV_SUPERVISOR
from . import datainputs
from .commands import LOOPBACK, fill, job_env, late_names
from .finalize import failure_summary, finalize_outputs, first_rank_error
from .procs import become_subreaper, end_run_processes, free_port, kill_ranks, start_reaper, start_time
from .rundir import RunDir
from .spec import RunSpec, RunState

POLL_S = 0.02  # wait_nodes' pace where it cannot wait on events (_NodeWaiter unavailable)
LIVENESS_S = 1.0  # the longest wait_nodes sleeps without an event (a node exiting, a signal)


class InputsFailed(OSError):
    """A dataset input could not be laid out on this node."""


class _NodeWaiter:
    """Sleeps until a node process of this host exits (its pidfd turns readable), a signal
    arrives (the signal wakeup fd: cancel is a SIGTERM), or the timeout: waiting for the nodes
    costs no wake-ups. Where pidfds or the wakeup fd are not available (kernel < 5.3, not the
    main thread) it sleeps POLL_S, as the supervisor always did."""

    def __init__(self, procs):
        self.pidfds: dict[int, subprocess.Popen] = {}
        self.pipe: tuple[int, int] | None = None
        self.old_wakeup: int | None = None
        try:
            self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.old_wakeup = signal.set_wakeup_fd(self.pipe[1])
            for _, p in procs:
                if isinstance(p, subprocess.Popen) and p.returncode is None:
                    self.pidfds[os.pidfd_open(p.pid)] = p
        except (OSError, ValueError, AttributeError):
            self.close()

    def wait(self, timeout: float) -> None:
        if self.pipe is None:
            time.sleep(POLL_S)
            return
        for fd, p in list(self.pidfds.items()):
            if p.returncode is not None:  # collected: its pidfd would stay readable
                os.close(fd)
                del self.pidfds[fd]
        poller = select.poll()
        for fd in (self.pipe[0], *self.pidfds):
            poller.register(fd, select.POLLIN)
        poller.poll(max(1, int(timeout * 1000)))
        try:
            while os.read(self.pipe[0], 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for fd in self.pidfds:
            os.close(fd)
        self.pidfds.clear()
        if self.old_wakeup is not None:
            signal.set_wakeup_fd(self.old_wakeup)
            self.old_wakeup = None
        if self.pipe is not None:
            for fd in self.pipe:
                os.close(fd)
            self.pipe = None


class StartCanceled(Exception):
    """Cancel arrived while the nodes were still being started (waiting for resources)."""


class Supervisor:
    def __init__(self, run_dir: str):
        self.rd = RunDir(run_dir)
        self.spec = RunSpec.load(self.rd.spec_path)
        self.cancel_requested = False
        self.procs: list[tuple[object, subprocess.Popen]] = []
        self.sampler = None  # sysmetrics.SystemSampler of the nodes, while they run

    def _on_signal(self, signum, frame):
        self.cancel_requested = True

    def materialize(self) -> None:
        """Each node's working copy is laid out here, on the node, not by the server: a remote
        or containerized node gets its copy the same way, and a submit returns without waiting.
        The first copy is the store's spare of the snapshot where it holds one (one rename), else
        every file is cloned (reflink) or copied, never hard-linked. As the supervisor exits, after
        the run's final state, it starts a process of its own (lowest priority) that builds a new
        spare for the snapshot's next run."""
        store = None
        for cwd in sorted({node.cwd for node in self.spec.nodes} | {"wd"}):
            dest = self.rd.path / cwd
            if self.spec.snapshot_id and not dest.exists():
                from ..errors import TrainError
                from ..snapshots import SnapshotStore
                from ..worktree import remove_tree

                tmp = self.rd.path / f"{cwd}.partial"
                remove_tree(tmp)  # what a supervisor that died half-way left
                t0 = time.monotonic()
                try:
                    first = store is None
                    store = store or SnapshotStore(self.spec.snapshot_store)
                    layout = store.lay_out(self.spec.snapshot_id, tmp, use_spare=first)
                except TrainError as exc:  # e.g. the snapshot was deleted from the store
                    raise OSError(exc.message) from None
                os.replace(tmp, dest)
                counted = "" if layout.files is None else f", {layout.files} files" + (
                    f" ({layout.cloned} cloned)" if layout.cloned else "")
                print(f"working copy {cwd}: {layout.method}{counted}, "
                      f"{(time.monotonic() - t0) * 1e3:.0f} ms", flush=True)
            dest.mkdir(exist_ok=True)
        for d in ("pids", "errors"):
            (self.rd.path / d).mkdir(exist_ok=True)
        self.materialize_inputs()
        if store is not None:
            import atexit

            atexit.register(store.start_restock, self.spec.snapshot_id, self.rd.path)

    def materialize_inputs(self) -> None:
        """The run's downloaded datasets, as inputs/<name>/ of the run directory, from this
        host's cache (the server fetched them there while the run was Preparing)."""
        manifest = datainputs.read_manifest(self.rd.path)
        if not manifest.get("inputs"):
            return
        try:
            datainputs.lay_out(manifest["inputs"], datainputs.ObjectCache(manifest["cache"]), self.rd.path,
                               self.say_prepared)
        except OSError as exc:
            raise InputsFailed(str(exc)) from None

    def say_prepared(self, text: str) -> None:
        """A line of the run's preparation on its nodes: in supervisor.txt and logs/prepare.txt."""
        self.say(text)
        with open(self.rd.logs / "prepare.txt", "a") as f:
            f.write(text + "\n")

    def late_values(self) -> dict[str, str]:
        """The values of the late-bound variables (commands.LATE) of this host's nodes: node 0
        is here (loopback), the port is free here; a remote supervisor knows its own."""
        values = {"MASTER_ADDR": LOOPBACK, "PYTHON": self.spec.python, "RUN_DIR": str(self.rd.path)}
        if "MASTER_PORT" in late_names(self.spec):
            values["MASTER_PORT"] = str(free_port())
        return values

    def fill_late(self) -> None:
        """The nodes' commands with their late-bound variables filled (commands.fill)."""
        values = self.late_values()
        self.spec.nodes = [fill(self.spec, node, values) for node in self.spec.nodes]

    def contract_env(self, node, root) -> dict[str, str]:
        """The job's own variables (the run's, the node's) and where the run's files are (``root``:
        the run directory, or a node's copy of it)."""
        return job_env(self.spec, node, root)

    def node_env(self, node) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(ENV_SUPERVISOR, None)
        env.update(self.contract_env(node, self.rd.path))
        return env

    def start_nodes(self) -> None:
        for node in self.spec.nodes:
            log_path = self.rd.logs / f"{node.log_name}.txt"
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    node.argv,
                    cwd=self.rd.path / node.cwd,
                    env=self.node_env(node),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs.append((node, proc))

    def system_sources(self) -> list:
        """What the system-metric sampler reads (sysmetrics.NodeSource): this host's figures and
        each node's own process tree, under the node's index. Nodes elsewhere say it themselves."""
        from .sysmetrics import NodeSource, ProcessTree

        return [NodeSource(node.rank, ProcessTree(lambda pid=p.pid: [pid]),
                           gpus=self.node_env(node).get("CUDA_VISIBLE_DEVICES"))
                for node, p in self.procs if isinstance(p, subprocess.Popen)]

    def start_system_metrics(self) -> None:
        """metrics/system_<node>.jsonl while the nodes run (sysmetrics; never the run's problem)."""
        try:
            from .sysmetrics import start_sampler

            self.sampler = start_sampler(self.rd.metrics, self.system_sources(), str(self.rd.path),
                                         say=self.say)
        except Exception as exc:
            self.say(f"system metrics not sampled: {type(exc).__name__}: {exc}")

    def stop_system_metrics(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None

    def start_failure(self, exc: OSError) -> str:
        return f"Could not start {self.spec.nodes[0].argv[0]!r}: {exc.strerror or exc}"

    def wait_nodes(self) -> None:
        waiter = _NodeWaiter(self.procs)
        try:
            while True:
                codes = [p.poll() for _, p in self.procs]
                if all(c is not None for c in codes):
                    return
                if self.cancel_requested:
                    self.rd.append_event(RunState.CANCEL_REQUESTED, "supervisor", "Stopping the processes")
                    self.stop_all()
                    return
                if any(c not in (None, 0) for c in codes):
                    # One node failed: the others cannot finish a distributed job; stop them.
                    self.stop_all()
                    return
                # a node elsewhere (RemoteProc) is asked at its own pace; this host's wake us
                waiter.wait(min([LIVENESS_S] + [p.REMOTE_POLL_S + 0.005 for _, p in self.procs
                                                if not isinstance(p, subprocess.Popen)]))
        finally:
            waiter.close()

    @staticmethod
    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)  # into logs/supervisor.txt

    def _hosted(self) -> list[subprocess.Popen]:
        """The nodes that are processes of this host (not containers or Ray agents)."""
        return [p for _, p in self.procs if isinstance(p, subprocess.Popen)]

    def stop_all(self) -> None:
        """SIGTERM to every process of the run at once (each node's process group, and whatever
        else is the supervisor's descendant or carries the run's directory in its environment:
        torchrun's workers in their own sessions, a script's daemons), SIGKILL to what is left
        after the grace, then to any rank left over."""
        self.end_leftovers()
        for _, p in self.procs:
            p.wait()
        kill_ranks(self.rd)

    def end_leftovers(self) -> None:
        """End every process of the run still alive (none, when the nodes exited and left nothing
        behind), naming in the supervisor log the ones other than the nodes themselves."""
        hosted = self._hosted()
        end_run_processes(self.rd.path, self.spec.cancel_grace_s, groups=[p.pid for p in hosted],
                          descendants=True, keep=[p.pid for p in hosted], say=self.say)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if become_subreaper():  # before any node starts: their orphans come back to us
            start_reaper(lambda: {p.pid for p in self._hosted()})
        me = os.getpid()
        info = {"pid": me, "start_time": start_time(me), "pgids": []}
        self.rd.write_supervisor_info(info)
        if any(e["state"] == RunState.CANCEL_REQUESTED.value for e in self.rd.read_events()[0]):
            self.rd.append_event(RunState.CANCELED, "supervisor", "Canceled before it started")
            return 0
        self.rd.append_event(RunState.STARTING, "supervisor", pid=me)
        try:
            self.materialize()
        except InputsFailed as exc:
            self.rd.append_event(RunState.FAILED, "supervisor", f"Could not lay out the run's datasets: {exc}")
            return 1
        except OSError as exc:
            self.rd.append_event(RunState.FAILED, "supervisor", f"Could not lay out the working copy "
                                 f"of the snapshot: {exc}. Check free disk space in {self.rd.path}.")
            return 1
        self.fill_late()
        try:
            self.start_nodes()
        except StartCanceled:
            self.stop_all()
            self.end_leftovers()
            self.rd.append_event(RunState.CANCELED, "supervisor", "Canceled before its processes started")
            return 0
        except OSError as exc:
            if self.procs:
                self.stop_all()  # the nodes that did start before one could not
            self.end_leftovers()
            self.rd.append_event(RunState.FAILED, "supervisor", self.start_failure(exc))
            return 1
        info["pgids"] = [p.pid for _, p in self.procs]
        self.rd.write_supervisor_info(info)
        self.rd.append_event(RunState.RUNNING, "supervisor", pids=info["pgids"])
        self.start_system_metrics()
        try:
            self.wait_nodes()
        finally:
            self.stop_system_metrics()  # its last sample, before the run's final state
        self.end_leftovers()  # what the nodes left behind: daemons, setsid children, stragglers
        self.rd.append_event(RunState.FINALIZING, "supervisor")
        finalize_outputs(self.rd)
        return self.finish()

    def finish(self) -> int:
        codes = {node.log_name: p.returncode for node, p in self.procs}
        if self.cancel_requested:
            self.rd.append_event(RunState.CANCELED, "supervisor", "Canceled by request", exit_codes=codes)
            return 0
        failed = [(node, p.returncode) for node, p in self.procs if p.returncode != 0]
        if not failed:
            self.rd.append_event(RunState.COMPLETED, "supervisor", exit_codes=codes)
            return 0
        node, code = failed[0]
        first = first_rank_error(self.rd)
        distributed = self.spec.distributed is not None and self.spec.distributed.world_size > 1
        if first is not None and distributed:
            message = (f"Rank {first['rank']} failed first: {first['message']}. See "
                       f"logs/rank_{first['rank']}.txt for its traceback.")
            rank = first["rank"]
        else:
            message = failure_summary(self.rd.logs / f"{node.log_name}.txt", node.log_name, code)
            rank = node.rank
        self.rd.append_event(RunState.FAILED, "supervisor", message, exit_codes=codes, failed_rank=rank)
        return 0


def main(argv=None) -> int:
    """The old entry (``python -m jupyter_ext.launcher.supervisor RUN_DIR``): runs still started
    with it go through the new one."""
    from .supervise import main as supervise

    return supervise(argv)


if __name__ == "__main__":
    sys.exit(main())
