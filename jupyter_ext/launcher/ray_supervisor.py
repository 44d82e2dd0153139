"""The supervisor of a run on a Ray target: it is the Ray driver. One agent actor per node,
each in its own bundle of a placement group, starts the node's command on its Ray node (its own
process group, output into the node's log); the supervisor polls the agents. Cancel, a failing
node, or a node that dies ends every agent and removes the placement group."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .procs import kill_ranks
from .spec import RunState
from .supervisor import RemoteProc, Supervisor

PG_TIMEOUT_S = 120


class NodeAgent:
    """Runs on a Ray node: starts one node's command and reports on it."""

    def __init__(self):
        self.proc = None

    def address(self) -> str:
        import ray

        return ray.util.get_node_ip_address()

    def where(self) -> str:
        import ray

        return f"{ray.util.get_node_ip_address()}, Ray node {ray.get_runtime_context().get_node_id()[:12]}"

    def start(self, argv, cwd, env, log_path) -> int:
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc.pid

    def poll(self):
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace_s: float) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return self.proc.wait()


class _AgentProc(RemoteProc):
    def __init__(self, agent, index: int):
        super().__init__()
        self.agent, self.index = agent, index
        self.where = ""
        self.died: str | None = None

    def check(self):
        import ray

        try:
            return ray.get(self.agent.poll.remote(), timeout=30)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            self.died = f"Node {self.index} ({self.where}) died: its Ray node went away ({type(exc).__name__})"
            return 137


class RaySupervisor(Supervisor):
    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        self.cfg = self.spec.ray
        self.pg = None
        self.agents = []

    def start_nodes(self) -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        deadline = time.monotonic() + 60  # a local head started by the target may still be coming up
        while True:
            try:
                ray.init(address=self.cfg["address"], namespace="jupyter-train", log_to_driver=False,
                         logging_level="ERROR")
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise OSError(f"could not reach the Ray cluster at {self.cfg['address']}: {exc}") from None
                time.sleep(1)
        nodes = self.spec.nodes
        shape = {k: float(v) for k, v in self.cfg["shape"].items()}
        self.pg = placement_group([dict(shape) for _ in nodes], strategy="SPREAD",
                                  name=f"jupyter-train-{self.spec.run_id}")
        try:
            ray.get(self.pg.ready(), timeout=PG_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise OSError(f"the Ray cluster did not grant {len(nodes)} bundle(s) of {shape} in "
                          f"{PG_TIMEOUT_S} s; check its free resources (ray status)") from None
        Agent = ray.remote(NodeAgent)
        opts = dict(num_cpus=0)
        self.agents = [Agent.options(**opts, scheduling_strategy=PlacementGroupSchedulingStrategy(
            placement_group=self.pg, placement_group_bundle_index=i)).remote() for i in range(len(nodes))]
        master = ray.get(self.agents[0].address.remote())
        starts = []
        for i, (node, agent) in enumerate(zip(nodes, self.agents)):
            argv = [a.replace("127.0.0.1", master) if "127.0.0.1" in a else a for a in node.argv]
            env = {k: v.replace("127.0.0.1", master) for k, v in self.node_env(node).items()}
            starts.append(agent.start.remote(argv, str(self.rd.path / node.cwd), env,
                                             str(self.rd.logs / f"{node.log_name}.txt")))
            self.procs.append((node, _AgentProc(agent, i)))
        pids = ray.get(starts)
        wheres = ray.get([a.where.remote() for a in self.agents])
        for (_, proc), pid, where in zip(self.procs, pids, wheres):
            proc.pid, proc.where = pid, where

    def stop_all(self) -> None:
        import ray

        stops = []
        for _, p in self.procs:
            if p.died is None:
                stops.append(p.agent.stop.remote(self.spec.cancel_grace_s))
        try:
            ray.get(stops, timeout=self.spec.cancel_grace_s + 30)
        except Exception:
            pass
        for _, p in self.procs:
            p.wait()
        kill_ranks(self.rd)  # ranks whose node went away with its agent (same machine, shared disk)
        self._release()

    def _release(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for agent in self.agents:
            try:
                ray.kill(agent)
            except Exception:
                pass
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception:
                pass
            self.pg = None

    def finish(self) -> int:
        died = [(node, p) for node, p in self.procs if p.died]
        for node, p in died:
            with open(self.rd.logs / f"{node.log_name}.txt", "a") as f:
                f.write(p.died + "\n")
        if died and not self.cancel_requested:
            node, p = died[0]
            codes = {n.log_name: q.returncode for n, q in self.procs}
            self.rd.append_event(RunState.FAILED, "supervisor", f"{p.died}; the job's other nodes were "
                                 f"stopped. See logs/{node.log_name}.txt.", exit_codes=codes, failed_node=node.rank)
            self._release()
            return 0
        code = super().finish()
        self._release()
        return code

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
