"""The base of the supervisors whose nodes run elsewhere: containers on a Docker engine
(docker_supervisor), actors on a Ray cluster (ray_supervisor).

What they share is here: reaching the engine within CONNECT_S (well within a minute: an
engine that does not answer fails the run, naming its address, instead of leaving it in
Starting), node handles that look like processes (RemoteProc) so the base Supervisor's
waiting and bookkeeping apply, the loop that brings new log and metric lines back to this host
while the nodes run (where they do not share its files), the final sync, stopping the nodes on
cancel or when one fails, and releasing what the engine holds (containers, volumes, placement
groups) when the supervisor exits. An engine's module says only how its nodes start, stop,
sync and are released.
"""

from __future__ import annotations

import signal
import socket
import threading
import time

from .spec import RunState
from .supervisor import StartCanceled, Supervisor



class RemoteProc:
    """Popen-like view of a node that runs elsewhere (a container, a Ray agent), so the
    supervisor's bookkeeping applies. ``check()`` asks where it runs (an API call); ``poll()``
    asks at most every REMOTE_POLL_S, not at the supervisor's 20 ms pace."""

    REMOTE_POLL_S = 0.25

    def __init__(self):
        self.pid = 0
        self.returncode = None
        self.died: str | None = None  # why the node went away, where its engine says so
        self._checked = 0.0

    def check(self) -> int | None:
        raise NotImplementedError

    def poll(self):
        now = time.monotonic()
        if self.returncode is None and now - self._checked >= self.REMOTE_POLL_S:
            self._checked = now
            self.returncode = self.check()
        return self.returncode

    def wait(self):
        while self.poll() is None:
            time.sleep(self.REMOTE_POLL_S)
        return self.returncode


def tcp_hint(host: str, port: int, timeout: float = 3.0) -> str:
    """Why an engine at host:port may not answer, for the run's error message."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return (f"{host}:{port} accepts connections, but the engine behind it did not answer: "
                    "check that it is the engine's address and that this host reaches the "
                    "addresses the engine reports")
    except OSError as exc:
        return (f"nothing answers at {host}:{port} ({exc.strerror or exc}): check the target's "
                "address, and that the engine runs")


class RemoteSupervisor(Supervisor):
    engine = "the engine"  # for messages: "the Docker engine", "the Ray cluster"
    CONNECT_S = 45.0  # to reach the engine, retries included
    PROGRESS_S = 10  # a line in the supervisor log this often while it waits for the engine
    SYNC_S = 1.0  # how often new log and metric lines come back (copy mode)

    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        self.placement = self.spec.placement
        self.connected = False
        self.connect_error: str | None = None  # what the last attempt to connect said
        self.restarts = 0  # of the job, by an engine that restarts it when a node goes away
        self._stop_sync = threading.Event()
        self._sync_thread: threading.Thread | None = None

    # -- what an engine says ------------------------------------------------------------------
    @property
    def address(self) -> str:
        """Where the engine is, as the user gave it (for messages)."""
        raise NotImplementedError

    @property
    def copy_mode(self) -> bool:
        """Whether some node works in a copy of the run's files (not this host's)."""
        return False

    def connect(self, deadline: float) -> None:
        """Reach the engine (may retry until ``deadline``, time.monotonic()); raise if it cannot."""
        raise NotImplementedError

    def unreachable_hint(self) -> str:
        return "check that it runs and that this host reaches it"

    def launch(self) -> None:
        """Start every node where it runs, appending (node, RemoteProc) to self.procs."""
        raise NotImplementedError

    def sync(self, final: bool = False) -> None:
        """Bring new log and metric lines back from the nodes (copy mode)."""

    def fetch_final(self) -> None:
        """At the end: what the nodes left (error files, outputs, user logs), in copy mode."""

    def stop_nodes(self) -> None:
        """Stop every node still running (SIGTERM, SIGKILL after the grace), where it runs."""

    def release(self) -> None:
        """Give back what the engine holds for the run (containers, volumes, placement groups)."""

    def disconnect(self) -> None:
        """Close the connection to the engine (only called once connected)."""

    # -- the shared part ----------------------------------------------------------------------
    def node_env(self, node) -> dict[str, str]:
        """Not this host's environment: the node has its own PATH and libraries."""
        return self.contract_env(node, self.rd.path)

    def start_failure(self, exc: OSError) -> str:
        return f"Could not start the job on {self.engine} at {self.address}: {exc}"

    def start_nodes(self) -> None:
        self.connect_within(self.CONNECT_S)
        try:
            self.launch()
        except (OSError, StartCanceled):
            raise
        except Exception as exc:  # the engine's own errors: a message, not a traceback
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        self.start_sync()

    def connect_within(self, seconds: float) -> None:
        """``connect`` in a thread of its own, so that an engine that never answers (a Ray
        driver retries its GCS forever) fails the run after ``seconds`` with its address."""
        self.deadline = time.monotonic() + seconds
        outcome: dict = {}

        def attempt() -> None:
            try:
                self.connect(self.deadline)
            except BaseException as exc:  # noqa: BLE001 (handed to the main thread)
                outcome["error"] = exc

        worker = threading.Thread(target=attempt, daemon=True, name="connect")
        worker.start()
        while worker.is_alive() and time.monotonic() < self.deadline:
            if self.cancel_requested:
                raise StartCanceled()
            worker.join(0.25)
        # an engine's client may install its own handlers (ray.init does): cancel is ours
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if worker.is_alive():
            last = f" (last: {self.connect_error})" if self.connect_error else ""
            raise OSError(f"no answer within {seconds:.0f} s{last}; {self.unreachable_hint()}")
        error = outcome.get("error")
        if isinstance(error, OSError):
            raise error
        if error is not None:
            raise OSError(f"could not reach {self.engine} at {self.address}: {error}") from None
        self.connected = True

    def wait_until(self, left, what: str, timeout_s: float, step_s: float = 0.25) -> None:
        """Until ``left(step_s)`` (which may wait that long) says nothing is left to wait for:
        a progress line every PROGRESS_S (users see it in the supervisor log), StartCanceled on
        cancel, and an OSError naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        said = time.monotonic()
        while True:
            if self.cancel_requested:
                raise StartCanceled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OSError(f"waited {timeout_s:.0f} s for {what}")
            count = left(min(step_s, remaining))
            if not count:
                return
            if time.monotonic() - said >= self.PROGRESS_S:
                said = time.monotonic()
                self.say(f"still waiting for {what}" + ("" if count is True else f" ({count} left)"))

    def start_sync(self) -> None:
        """The loop that brings new lines back every SYNC_S, once some node needs it."""
        if self.copy_mode and self._sync_thread is None:
            self._sync_thread = threading.Thread(target=self._sync_loop, daemon=True, name="sync")
            self._sync_thread.start()

    def _sync_loop(self) -> None:
        while not self._stop_sync.wait(self.SYNC_S):
            try:
                self.sync()
            except Exception:
                pass  # the next pass, or the final one, catches up

    def bring_back(self) -> None:
        """The last lines, then what the nodes left, once every node has ended."""
        self._stop_sync.set()
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=60)
        if self.copy_mode:
            self.sync(final=True)
            self.fetch_final()

    def wait_nodes(self) -> None:
        self.wait_attempts()
        self.bring_back()

    def wait_attempts(self) -> None:
        """Wait until every node has ended (an engine that restarts nodes waits again)."""
        super().wait_nodes()

    def end_leftovers(self) -> None:
        """Stop the nodes still running where they run, then end what is left on this host."""
        self.stop_nodes()
        super().end_leftovers()

    def stop_all(self) -> None:
        self.end_leftovers()
        for _, p in self.procs:
            p.wait()

    def finish(self) -> int:
        """A node that went away (as its engine says) fails the run naming it; else as ever."""
        died = [(node, p) for node, p in self.procs if getattr(p, "died", None)]
        for node, p in died:
            with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                f.write(p.died + "\n")
        if not died or self.cancel_requested:
            return super().finish()
        node, p = died[0]
        codes = {n.log_name: q.returncode for n, q in self.procs}
        tried = f" after {self.restarts} restart(s)" if self.restarts else ""
        self.rd.append_event(RunState.FAILED, "supervisor", f"{p.died}{tried}; the job's other nodes were "
                             f"stopped. See logs/{node.log_name}.txt.", exit_codes=codes, failed_node=node.rank)
        return 0

    def run(self) -> int:
        try:
            return super().run()
        finally:
            self._stop_sync.set()
            try:
                self.release()
            except Exception as exc:
                self.say(f"could not release what {self.engine} holds for the run: {exc}")
            if self.connected:
                try:
                    self.disconnect()
                except Exception:
                    pass
