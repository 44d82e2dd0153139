"""The supervisor of a run on a Ray target: it is the Ray driver. One agent actor per job node
(ray_agent.NodeAgent), each holding its bundle of a SPREAD placement group, starts the node's
command on its Ray node; the supervisor polls the agents, brings back new log and metric lines
from nodes that do not share this host's files (every SYNC_S), and at the end their error
files, outputs and user logs. Cancel, or a failing node, stops every agent's processes. A node
that dies fails the run naming it, or, while ``max_restarts`` allows, restarts the job on the
placement group's rescheduled bundles. The placement group is removed at the end."""

from __future__ import annotations

import copy
import os
import secrets
import signal
import threading
import time

from . import transfer
from . import ray_agent
from .ray_agent import PROBE, NodeAgent
from .commands import MASTER_ADDR
from .spec import RunState
from .supervisor import RemoteProc, StartCanceled, Supervisor

PG_TIMEOUT_S = 120  # to be granted the job's bundles
ENV_TIMEOUT_S = 900  # for Ray to build an environment on a node
SYNC_S = 0.2
PROGRESS_S = 10


class _AgentProc(RemoteProc):
    UNAVAILABLE_S = 60  # an agent that cannot be reached this long, on a live node, counts as dead

    def __init__(self, agent, index: int, info: dict):
        super().__init__()
        self.agent, self.index = agent, index
        self.where, self.node_id = info["where"], info["node_id"]
        self.died: str | None = None
        self._unavailable_since: float | None = None

    def check(self):
        import ray

        try:
            code = ray.get(self.agent.poll.remote(), timeout=30)
            self._unavailable_since = None
            return code
        except ray.exceptions.ActorDiedError as exc:
            return self._dead(exc)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            # unreachable for now: dead once Ray marks its node dead (missed heartbeats), or
            # after UNAVAILABLE_S
            now = time.monotonic()
            self._unavailable_since = self._unavailable_since or now
            if not node_alive(self.node_id) or now - self._unavailable_since > self.UNAVAILABLE_S:
                return self._dead(exc)
            return None

    def _dead(self, exc) -> int:
        self.died = f"Node {self.index} ({self.where}) died: its Ray node went away ({type(exc).__name__})"
        return 137


def node_alive(node_id: str) -> bool:
    import ray

    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


MASTER_FLAGS = ("--master-addr=", "--rdzv-endpoint=")  # where commands.py put this host's loopback


def _master(text: str, address: str, port: str) -> str:
    """Node 0's address and port in place of the loopback and placeholder (only in the master's
    flags and MASTER_ADDR: a script's own arguments are left alone)."""
    return text.replace(MASTER_ADDR, address).replace("{MASTER_PORT}", port)


def package_dirs() -> list[str]:
    """jupyter_ext and kernel_lib: on the PYTHONPATH of every node's processes."""
    import kernel_lib

    import jupyter_ext

    return [os.path.dirname(os.path.abspath(m.__file__)) for m in (jupyter_ext, kernel_lib)]


class RaySupervisor(Supervisor):
    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        self.cfg = self.spec.ray
        self.template = copy.deepcopy(self.spec.nodes)  # {MASTER_PORT} still unfilled, for restarts
        self.max_restarts = self.spec.distributed.max_restarts if self.spec.distributed else 0
        self.restarts = 0
        self.pg = None
        self.agents: list = []
        self.infos: list[dict] = []
        self.offsets: list[dict] = []
        self.token = secrets.token_hex(16)
        self.lib_fingerprint = ray_agent.fingerprint(package_dirs())
        self.lib_ref = None  # jupyter-train's packages in the object store, once a node needs them
        self._lock = threading.Lock()
        self._stop_sync = threading.Event()

    @staticmethod
    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)  # into logs/supervisor.txt

    def fill_port(self) -> None:
        pass  # node 0's agent picks the port, on its own machine (_launch)

    # -- Ray --------------------------------------------------------------------------------
    def _connect(self) -> None:
        import ray

        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's notes in supervisor.txt, without colour codes
        deadline = time.monotonic() + 60  # a local head started by the target may still be coming up
        while True:
            try:
                ray.init(address=self.cfg["address"], namespace="jupyter-train", log_to_driver=False,
                         logging_level="ERROR")
                ray.cloudpickle.register_pickle_by_value(ray_agent)  # nodes need not have jupyter-train
                # ray.init installs Ray's own SIGTERM handler (log and die): cancel is ours
                signal.signal(signal.SIGTERM, self._on_signal)
                signal.signal(signal.SIGINT, self._on_signal)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise OSError(f"could not reach the Ray cluster at {self.cfg['address']}: {exc}") from None
                time.sleep(1)

    def _wait(self, refs: list, what: str, timeout_s: float) -> list:
        """ray.get with a progress line every PROGRESS_S while waiting (users see it in the
        supervisor log), and an OSError naming ``what`` after ``timeout_s``."""
        import ray

        deadline = time.monotonic() + timeout_s
        pending = list(refs)
        said = time.monotonic()
        while pending:
            if self.cancel_requested:
                raise StartCanceled()
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError(f"waited {timeout_s:.0f} s for {what}")
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=min(0.25, left))
            if pending and time.monotonic() - said >= PROGRESS_S:
                said = time.monotonic()
                self.say(f"still waiting for {what} ({len(pending)} of {len(refs)} left)")
        return ray.get(refs)

    def _placement_group(self) -> None:
        from ray.util.placement_group import placement_group

        n = len(self.spec.nodes)
        shape = {k: float(v) for k, v in self.cfg["shape"].items()}
        self.say(f"asking the Ray cluster at {self.cfg['address']} for {n} bundle(s) of {shape} (SPREAD)")
        self.pg = placement_group([dict(shape) for _ in range(n)], strategy="SPREAD",
                                  name=f"jupyter-train-{self.spec.run_id}")
        self._wait_pg()

    def _wait_pg(self) -> None:
        n = len(self.spec.nodes)
        try:
            self._wait([self.pg.ready()], f"the Ray cluster to grant {n} bundle(s) of {self.cfg['shape']}",
                       PG_TIMEOUT_S)
        except OSError as exc:
            raise OSError(f"{exc}; check the cluster's free resources (ray status), or a smaller "
                          "node_shape") from None

    def _agent(self, i: int, env: bool):
        """Agent ``i``, holding bundle ``i``'s resources; ``env``: with the run's packages
        installed by Ray on the node (uv), for nodes that cannot use this host's build."""
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        shape = {k: float(v) for k, v in self.cfg["shape"].items()}
        runtime_env = {"uv": list(self.cfg["packages"])} if env and self.cfg.get("packages") else None
        return ray.remote(NodeAgent).options(
            num_cpus=shape.pop("CPU", 0), num_gpus=shape.pop("GPU", 0), memory=shape.pop("memory", None),
            resources=shape or None, runtime_env=runtime_env,
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=self.pg,
                                                                 placement_group_bundle_index=i),
            name=f"jupyter-train-{self.spec.run_id}-node{i}-{self.restarts}").remote(self.spec.run_id, i)

    # -- start ------------------------------------------------------------------------------
    def start_nodes(self) -> None:
        try:
            self._connect()
            (self.rd.path / PROBE).write_text(self.token)
            self._placement_group()
            self._launch()
        except (OSError, StartCanceled):
            raise
        except Exception as exc:  # Ray's own errors: a message, not a traceback
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        threading.Thread(target=self._sync_loop, daemon=True).start()

    def start_failure(self, exc: OSError) -> str:
        return f"Could not start the job on the Ray cluster at {self.cfg['address']}: {exc}"

    def _launch(self) -> None:
        """Agents in every bundle, working copies where needed, then every node's command."""
        import ray

        nodes = self.spec.nodes = copy.deepcopy(self.template)
        shared = self.cfg.get("shared")
        agents = [self._agent(i, env=shared is False) for i in range(len(nodes))]
        infos = self._hello(agents, "the node agents to start")
        if self.cfg.get("packages") and shared is None:
            # nodes that turned out not to see this host's files build the environment themselves
            rebuild = [i for i, info in enumerate(infos) if info["copy"]]
            for i in rebuild:
                ray.get(agents[i].cleanup.remote())  # its empty node-local folder
                ray.kill(agents[i])
                agents[i] = self._agent(i, env=True)
            if rebuild:
                self.say(f"Ray builds the environment on node(s) {rebuild} (uv: {len(self.cfg['packages'])} "
                         "package(s)); the first time takes a while")
                for i, info in zip(rebuild, self._hello([agents[i] for i in rebuild], "the environment on the nodes")):
                    infos[i] = info
        port = str(ray.get(agents[0].free_port.remote()))
        master = infos[0]["address"]
        with self._lock:
            self.agents, self.infos = agents, infos
            self.offsets = [{} for _ in nodes]
        starts = []
        for node, agent, info in zip(nodes, agents, infos):
            node.argv = [_master(a, master, port) if a.startswith(MASTER_FLAGS) else a.replace("{MASTER_PORT}", port)
                         for a in node.argv]
            node.env = {k: _master(v, master, port) if k == "MASTER_ADDR" else v.replace("{MASTER_PORT}", port)
                        for k, v in node.env.items()}
            argv = list(node.argv)
            if info["copy"]:
                self._ship(node, agent)
                if argv[0] == self.spec.python:
                    argv[0] = info["python"]  # the node's interpreter (with Ray's environment)
            env = self.contract_env(node, info["root"])
            starts.append(agent.start.remote(argv, node.cwd, env, node.log_name, self.spec.cancel_grace_s))
        pids = ray.get(starts)
        self.procs = []
        for i, (node, pid, info) in enumerate(zip(nodes, pids, infos)):
            proc = _AgentProc(agents[i], i, info)
            proc.pid = pid
            self.procs.append((node, proc))
            self.say(f"node {i} runs on {info['where']}" + (" (files copied through Ray)" if info["copy"] else ""))

    def _hello(self, agents: list, what: str) -> list[dict]:
        """Each agent's hello; jupyter-train's packages sent to the nodes that lack an identical
        copy (JUPYTER_TRAIN_RAY_SHIP_PACKAGES=1: to every node)."""
        import ray

        use_own = os.environ.get("JUPYTER_TRAIN_RAY_SHIP_PACKAGES") != "1"
        infos = self._wait([a.hello.remote(str(self.rd.path), self.token, self.cfg.get("shared"),
                                           self.lib_fingerprint, use_own) for a in agents], what, ENV_TIMEOUT_S)
        for info in infos:
            if "error" in info:
                raise OSError(info["error"])
        needy = [i for i, info in enumerate(infos) if info["needs_lib"]]
        if needy:
            if self.lib_ref is None:
                self.lib_ref = ray.put(transfer.pack(self.rd.path, [], extra={
                    d: os.path.basename(d) for d in package_dirs()}))
            self._wait([agents[i].install_lib.remote(self.lib_ref, self.lib_fingerprint) for i in needy],
                       "jupyter-train's packages to reach the nodes", ENV_TIMEOUT_S)
            self.say(f"sent jupyter-train's packages ({self.lib_fingerprint}) to "
                     + ", ".join(infos[i]["where"] for i in needy))
        return infos

    def _ship(self, node, agent) -> None:
        """The node's working copy, through the object store."""
        import ray

        data = transfer.pack(self.rd.path, [node.cwd])
        ray.get(agent.unpack.remote(ray.put(data)))

    # -- files back -------------------------------------------------------------------------
    def _sync(self, final: bool = False) -> None:
        import ray

        with self._lock:
            for i, (agent, info) in enumerate(zip(self.agents, self.infos)):
                if not info["copy"] or (i < len(self.procs) and self.procs[i][1].died):
                    continue
                try:
                    chunks = ray.get(agent.collect.remote(self.offsets[i], final), timeout=30)
                except Exception:
                    continue  # gone: what came back so far is what there is
                transfer.append_new(self.rd.path, chunks, self.offsets[i])

    def _sync_loop(self) -> None:
        while not self._stop_sync.wait(SYNC_S):
            try:
                self._sync()
            except Exception:
                pass  # the next pass, or the final one, catches up

    def _fetch_final(self) -> None:
        import ray

        self._stop_sync.set()
        self._sync(final=True)
        cwds = sorted({n.cwd for n in self.spec.nodes})
        for i, (agent, info) in enumerate(zip(self.agents, self.infos)):
            if info["copy"] and not self.procs[i][1].died:
                try:
                    transfer.unpack(ray.get(agent.final_files.remote(cwds), timeout=120), self.rd.path)
                except Exception as exc:
                    self.say(f"could not bring back node {i}'s outputs: {exc}")

    # -- waiting, restarts, stopping --------------------------------------------------------
    def wait_nodes(self) -> None:
        while True:
            super().wait_nodes()
            died = [p for _, p in self.procs if p.died]
            if not died or self.cancel_requested or self.restarts >= self.max_restarts:
                break
            self.restarts += 1
            note = f"{died[0].died}; restarting the job ({self.restarts} of {self.max_restarts} restarts)"
            self.say(note)
            for node, _ in self.procs:
                with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                    f.write(note + "\n")
            self._sync(final=True)
            self._kill_agents()
            try:
                self._await_rescheduled({p.node_id for p in died})
                self._launch()
            except Exception as exc:
                self.say(f"the restart failed: {exc}")
                break  # the dead node's message fails the run
        self._fetch_final()

    def _await_rescheduled(self, dead: set) -> None:
        """Until Ray has marked the dead nodes dead and placed their bundles elsewhere."""
        import ray
        from ray.util.placement_group import placement_group_table

        deadline = time.monotonic() + PG_TIMEOUT_S
        said = time.monotonic()
        while True:
            if self.cancel_requested:
                raise StartCanceled()
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            table = placement_group_table(self.pg)
            placed = set(table.get("bundles_to_node_id", {}).values())
            if not dead & alive and table.get("state") == "CREATED" and not placed & dead:
                return
            if time.monotonic() > deadline:
                raise OSError(f"no node took over the dead node's bundle of {self.cfg['shape']} in "
                              f"{PG_TIMEOUT_S} s")
            if time.monotonic() - said > PROGRESS_S:
                said = time.monotonic()
                self.say("waiting for Ray to place the dead node's bundle on another node")
            time.sleep(0.5)

    def stop_all(self) -> None:
        import ray

        stops = [p.agent.stop.remote(self.spec.cancel_grace_s) for _, p in self.procs if p.died is None]
        try:
            ray.get(stops, timeout=self.spec.cancel_grace_s + 30)
        except Exception:
            pass
        for _, p in self.procs:
            p.wait()

    def _kill_agents(self) -> None:
        import ray

        with self._lock:
            for i, agent in enumerate(self.agents):
                try:
                    ray.get(agent.cleanup.remote(), timeout=30)
                except Exception:
                    pass
                try:
                    ray.kill(agent)
                except Exception:
                    pass
            self.agents, self.infos = [], []

    def _release(self) -> None:
        from ray.util.placement_group import remove_placement_group

        self._stop_sync.set()
        self._kill_agents()
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception:
                pass
            self.pg = None
        try:
            (self.rd.path / PROBE).unlink()
        except OSError:
            pass

    def finish(self) -> int:
        died = [(node, p) for node, p in self.procs if p.died]
        for node, p in died:
            with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                f.write(p.died + "\n")
        if died and not self.cancel_requested:
            node, p = died[0]
            codes = {n.log_name: q.returncode for n, q in self.procs}
            tried = f" after {self.restarts} restart(s)" if self.restarts else ""
            self.rd.append_event(RunState.FAILED, "supervisor", f"{p.died}{tried}; the job's other nodes were "
                                 f"stopped. See logs/{node.log_name}.txt.", exit_codes=codes, failed_node=node.rank)
            return 0
        return super().finish()

    def run(self) -> int:
        try:
            return super().run()
        finally:
            try:
                self._release()
                import ray

                ray.shutdown()
            except Exception:
                pass
