"""The supervisor of a run on a Ray target: it is the Ray driver. One agent actor per job node
(ray_agent.NodeAgent), each holding its bundle of a SPREAD placement group, starts the node's
command on its Ray node, with the late-bound variables (commands.LATE) of that node: node 0's
address and a free port there, the node's interpreter and folder. A node that dies fails the
run naming it, or, while ``max_restarts`` allows, restarts the job on the placement group's
rescheduled bundles. Reaching the cluster (CONNECT_S), syncing new log and metric lines back
from nodes that do not share this host's files (every SYNC_S), stopping and releasing are
RemoteSupervisor's; the placement group is removed at the end."""

from __future__ import annotations

import copy
import os
import secrets
import threading
import time

from . import datainputs, payload, ray_agent, transfer
from .commands import fill, late_names
from .ray_agent import PROBE, NodeAgent
from .remote_supervisor import RemoteProc, RemoteSupervisor, tcp_hint
from .sysmetrics import interval_from_env
from ..contract import ENV_RAY_SHIP_PACKAGES, ENV_SYSTEM_METRICS_INTERVAL

PG_TIMEOUT_S = 120  # to be granted the job's bundles
ENV_TIMEOUT_S = 900  # for Ray to build an environment on a node
SHIP_BATCH_BYTES = 64 << 20  # dataset files sent to a node in one object-store put
# Ray Client's proxy starts a new server process for each connection attempt; under load it
# sometimes dies before it runs (the fork, in the proxy's multi-threaded gRPC process, crashes:
# its .err holds only a gRPC "epoll_wait error: Bad file descriptor"), and the proxy answers with
# an error. Another attempt starts another server, a whole connection again: 20-45 s measured on
# two loaded cores.
ANSWERED_S = 75.0  # time for another attempt after the cluster answered with an error of its own
ANSWERED_TRIES = 3  # that many such answers in a row: a real failure of the cluster's, not bad luck
MAX_CONNECT_S = 180.0  # and no more than this in all
package_dirs = payload.package_dirs  # jupyter_ext and kernel_lib: on the PYTHONPATH of the nodes


class _AgentProc(RemoteProc):
    UNAVAILABLE_S = 60  # an agent that cannot be reached this long, on a live node, counts as dead

    def __init__(self, agent, index: int, info: dict):
        super().__init__()
        self.agent, self.index = agent, index
        self.where, self.node_id = info["where"], info["node_id"]
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


class RaySupervisor(RemoteSupervisor):
    engine = "the Ray cluster"
    SYNC_S = 0.2
    CONNECT_S = 45.0  # a local head that the target has just started may still be coming up

    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        self.template = copy.deepcopy(self.spec.nodes)  # late-bound variables unfilled, for restarts
        self.packages = self.placement.packages
        self.max_restarts = self.spec.distributed.max_restarts if self.spec.distributed else 0
        self.pg = None
        self.agents: list = []
        self.infos: list[dict] = []
        self.offsets: list[dict] = []
        self.token = secrets.token_hex(16)
        self.lib_fingerprint = payload.fingerprint()
        self.lib_ref = None  # jupyter-train's packages in the object store, once a node needs them
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.placement.address

    @property
    def copy_mode(self) -> bool:
        return any(info["copy"] for info in self.infos)

    def fill_late(self) -> None:
        pass  # each node's values come from the agents, on their machines (_launch)

    # -- Ray --------------------------------------------------------------------------------
    def connect(self, deadline: float) -> None:
        import ray

        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's notes in supervisor.txt, without colour codes
        said, started, answered = None, time.monotonic(), 0
        while True:  # a local head started by the target may still be coming up
            try:
                ray.init(address=self.address, namespace="jupyter-train", log_to_driver=False,
                         logging_level="ERROR")
                break
            except Exception as exc:
                self.connect_error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ConnectionAbortedError) and "from server" in str(exc):
                    # The cluster answered, with an error of its own (Ray Client's proxy failing
                    # to start a server for us, seen under load): it is reachable; time for a
                    # whole new attempt, a few times at most.
                    answered += 1
                    if answered >= ANSWERED_TRIES:
                        raise OSError(f"its Ray Client server failed {answered} times in a row "
                                      f"(see ray_client_server*.err in the head's Ray logs); "
                                      f"the last: {exc}") from None
                    self.deadline = deadline = min(max(self.deadline, time.monotonic() + ANSWERED_S),
                                                   started + MAX_CONNECT_S)
                else:
                    answered = 0
                if time.monotonic() + 1 > deadline:
                    raise OSError(f"could not reach it: {exc}") from None
                if said != self.connect_error:
                    said = self.connect_error
                    self.say(f"Ray: {self.connect_error}; trying again")
                time.sleep(1)
        # nodes need not have jupyter-train: the agent, and the payload helpers it uses, by value
        ray.cloudpickle.register_pickle_by_value(payload)
        ray.cloudpickle.register_pickle_by_value(ray_agent)

    def unreachable_hint(self) -> str:
        address = self.address.removeprefix("ray://")
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            return tcp_hint(host, int(port))
        return "check that this host belongs to a running Ray cluster (ray status), or give its address"

    def disconnect(self) -> None:
        import ray

        ray.shutdown()

    def _wait(self, refs: list, what: str, timeout_s: float) -> list:
        """ray.get of ``refs``, waiting as wait_until does."""
        import ray

        pending = list(refs)

        def left(step_s: float) -> int:
            nonlocal pending
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=step_s)
            return len(pending)

        self.wait_until(left, what, timeout_s)
        return ray.get(refs)

    def _placement_group(self) -> None:
        from ray.util.placement_group import placement_group

        n = len(self.spec.nodes)
        shape = {k: float(v) for k, v in self.placement.shape.items()}
        self.say(f"asking the Ray cluster at {self.address} for {n} bundle(s) of {shape} (SPREAD)")
        self.pg = placement_group([dict(shape) for _ in range(n)], strategy="SPREAD",
                                  name=f"jupyter-train-{self.spec.run_id}")
        try:
            self._wait([self.pg.ready()], f"the Ray cluster to grant {n} bundle(s) of {self.placement.shape}",
                       PG_TIMEOUT_S)
        except OSError as exc:
            raise OSError(f"{exc}; check the cluster's free resources (ray status), or a smaller "
                          "node_shape") from None

    def _agent(self, i: int, env: bool):
        """Agent ``i``, holding bundle ``i``'s resources; ``env``: with the run's packages
        installed by Ray on the node (uv), for nodes that cannot use this host's build."""
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        shape = {k: float(v) for k, v in self.placement.shape.items()}
        runtime_env = {"uv": list(self.packages)} if env and self.packages else None
        return ray.remote(NodeAgent).options(
            num_cpus=shape.pop("CPU", 0), num_gpus=shape.pop("GPU", 0), memory=shape.pop("memory", None),
            resources=shape or None, runtime_env=runtime_env,
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=self.pg,
                                                                 placement_group_bundle_index=i),
            name=f"jupyter-train-{self.spec.run_id}-node{i}-{self.restarts}").remote(self.spec.run_id, i)

    # -- start ------------------------------------------------------------------------------
    def launch(self) -> None:
        (self.rd.path / PROBE).write_text(self.token)
        self._placement_group()
        self._launch()

    def _launch(self) -> None:
        """Agents in every bundle, working copies where needed, then every node's command."""
        import ray

        shared = self.placement.shared
        agents = [self._agent(i, env=shared is False) for i in range(len(self.template))]
        infos = self._hello(agents, "the node agents to start")
        if self.packages and shared is None:
            # nodes that turned out not to see this host's files build the environment themselves
            rebuild = [i for i, info in enumerate(infos) if info["copy"]]
            for i in rebuild:
                ray.get(agents[i].cleanup.remote())  # its empty node-local folder
                ray.kill(agents[i])
                agents[i] = self._agent(i, env=True)
            if rebuild:
                self.say(f"Ray builds the environment on node(s) {rebuild} (uv: {len(self.packages)} "
                         "package(s)); the first time takes a while")
                for i, info in zip(rebuild, self._hello([agents[i] for i in rebuild], "the environment on the nodes")):
                    infos[i] = info
        late = {"MASTER_ADDR": infos[0]["address"]}
        if "MASTER_PORT" in late_names(self.spec, self.template):
            late["MASTER_PORT"] = str(ray.get(agents[0].free_port.remote()))  # free on node 0
        with self._lock:
            self.agents, self.infos = agents, infos
            self.offsets = [{} for _ in self.template]
        nodes, starts = [], []
        for node, agent, info in zip(self.template, agents, infos):
            if info["copy"]:
                self._ship(node, agent)
                self._ship_inputs(agent, info)
            python = info["python"] if info["copy"] else self.spec.python  # Ray's environment there
            node = fill(self.spec, node, {**late, "PYTHON": python, "RUN_DIR": info["root"]})
            nodes.append(node)
            env = self.contract_env(node, info["root"])
            # the node agent's system-metric sampler reads it there (not the job's business)
            env[ENV_SYSTEM_METRICS_INTERVAL] = str(interval_from_env())
            starts.append(agent.start.remote(node.argv, node.cwd, env, node.log_name, self.spec.cancel_grace_s))
        self.spec.nodes = nodes
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

        use_own = os.environ.get(ENV_RAY_SHIP_PACKAGES) != "1"
        infos = self._wait([a.hello.remote(str(self.rd.path), self.token, self.placement.shared,
                                           self.lib_fingerprint, use_own) for a in agents], what, ENV_TIMEOUT_S)
        for info in infos:
            if "error" in info:
                raise OSError(info["error"])
        needy = [i for i, info in enumerate(infos) if info["needs_lib"]]
        if needy:
            if self.lib_ref is None:
                self.lib_ref = ray.put(transfer.pack(self.rd.path, [], extra=payload.mounts("")))
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

    def _ship_inputs(self, agent, info: dict) -> None:
        """The run's downloaded datasets to a node that does not see this host's files: it is
        sent (through the object store, in batches) only the files its own cache lacks."""
        import ray

        manifest = datainputs.read_manifest(self.rd.path)
        inputs = [i for i in manifest.get("inputs", []) if i["mode"] == "download"]
        if not inputs:
            return
        cache = datainputs.ObjectCache(manifest["cache"])
        digests = sorted({f[1] for i in inputs for f in i["files"]})
        missing = ray.get(agent.missing_objects.remote(digests))
        need = sum(cache.path(d).stat().st_size for d in missing)
        where = info["where"]
        if missing:
            self.say_prepared(f"{where}: sending {len(missing)} of {len(digests)} dataset files "
                              f"({need / 1e6:.1f} MB) through Ray; the rest are in the node's cache")
        sent, batch, size = 0, {}, 0
        for digest in missing:
            data = cache.read(digest)
            batch[digest], size = data, size + len(data)
            if size >= SHIP_BATCH_BYTES:
                ray.get(agent.put_objects.remote(ray.put(batch)))
                sent, batch, size = sent + size, {}, 0
                self.say_prepared(f"{where}: {sent / 1e6:.1f} of {need / 1e6:.1f} MB sent")
        if batch:
            ray.get(agent.put_objects.remote(ray.put(batch)))
            sent += size
        for line in ray.get(agent.lay_out_inputs.remote(inputs)):
            self.say_prepared(f"{where}: {line}")
        self.say_prepared(f"{where}: datasets through Ray: sent {len(missing)} of {len(digests)} files "
                          f"({sent / 1e6:.1f} MB); the rest were in the node's cache")

    # -- files back -------------------------------------------------------------------------
    def sync(self, final: bool = False) -> None:
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

    def fetch_final(self) -> None:
        import ray

        cwds = sorted({n.cwd for n in self.spec.nodes})
        for i, (agent, info) in enumerate(zip(self.agents, self.infos)):
            if info["copy"] and not self.procs[i][1].died:
                try:
                    transfer.unpack(ray.get(agent.final_files.remote(cwds), timeout=120), self.rd.path)
                except Exception as exc:
                    self.say(f"could not bring back node {i}'s outputs: {exc}")

    # -- waiting, restarts, stopping --------------------------------------------------------
    def wait_attempts(self) -> None:
        while True:
            super().wait_attempts()
            died = [p for _, p in self.procs if p.died]
            if not died or self.cancel_requested or self.restarts >= self.max_restarts:
                return
            self.restarts += 1
            note = f"{died[0].died}; restarting the job ({self.restarts} of {self.max_restarts} restarts)"
            self.say(note)
            for node, _ in self.procs:
                with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                    f.write(note + "\n")
            self.sync(final=True)
            self._kill_agents()
            try:
                self._await_rescheduled({p.node_id for p in died})
                self._launch()
                self.start_sync()
            except Exception as exc:
                self.say(f"the restart failed: {exc}")
                return  # the dead node's message fails the run

    def _await_rescheduled(self, dead: set) -> None:
        """Until Ray has marked the dead nodes dead and placed their bundles elsewhere."""
        import ray
        from ray.util.placement_group import placement_group_table

        def left(step_s: float) -> bool:
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            table = placement_group_table(self.pg)
            placed = set(table.get("bundles_to_node_id", {}).values())
            if not dead & alive and table.get("state") == "CREATED" and not placed & dead:
                return False
            time.sleep(step_s)
            return True

        self.wait_until(left, f"Ray to place the dead node's bundle of {self.placement.shape} on another "
                        "node", PG_TIMEOUT_S, step_s=0.5)

    def stop_nodes(self) -> None:
        import ray

        stops = [p.agent.stop.remote(self.spec.cancel_grace_s) for _, p in self.procs if p.died is None]
        if not stops:
            return
        try:
            ray.get(stops, timeout=self.spec.cancel_grace_s + 30)
        except Exception:
            pass

    def _kill_agents(self) -> None:
        import ray

        with self._lock:
            for agent in self.agents:
                try:
                    ray.get(agent.cleanup.remote(), timeout=30)
                except Exception:
                    pass
                try:
                    ray.kill(agent)
                except Exception:
                    pass
            self.agents, self.infos = [], []

    def release(self) -> None:
        if self.connected:
            from ray.util.placement_group import remove_placement_group

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
