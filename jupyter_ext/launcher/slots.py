"""Node slots and the queue of runs waiting for them, composed by targets (not inherited).

``SlotPool``: up to ``max_nodes`` nodes that scale up on demand (a short ``preparing`` state) and
down to ``min_nodes`` after ``idle_s``; runs wait FIFO and the head of the queue is never
overtaken, so a big run is not starved by small ones. ``HostSlots``: the whole host as one node
that any number of runs share (the local target).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PREPARE_S = 0.2  # a slot on this host is ready almost at once; the state is still shown
MAX_NODES = 10_000  # nodes of one target: its slots are listed one by one


@dataclass
class Node:
    index: int
    state: str = "preparing"  # preparing | idle | busy
    run_id: str | None = None
    since: float = field(default_factory=time.time)


class Slots:
    """What the manager asks of any target's slots."""

    def __init__(self) -> None:
        self.queue: list[str] = []  # run ids waiting, FIFO

    def allocate(self, run_id: str, count: int) -> list[int] | None:
        raise NotImplementedError

    def hold(self, run_id: str, indices: list[int]) -> None:
        raise NotImplementedError

    def release(self, run_id: str) -> None:
        if run_id in self.queue:
            self.queue.remove(run_id)

    def tick(self, now: float | None = None) -> None:
        pass

    def busy_nodes(self) -> int:
        raise NotImplementedError

    def node_count(self) -> int:
        """Nodes that exist now (scaled up), busy or not."""
        raise NotImplementedError

    def holds_runs(self) -> bool:
        return bool(self.queue) or self.busy_nodes() > 0

    def counts(self) -> dict[str, int]:
        raise NotImplementedError


class HostSlots(Slots):
    """One node, this whole host: it runs any number of jobs side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[str] = set()

    def allocate(self, run_id: str, count: int) -> list[int] | None:
        self.running.add(run_id)
        return [0]

    def hold(self, run_id: str, indices: list[int]) -> None:
        self.running.add(run_id)

    def release(self, run_id: str) -> None:
        self.running.discard(run_id)
        super().release(run_id)

    def busy_nodes(self) -> int:
        return 1 if self.running else 0

    def node_count(self) -> int:
        return 1

    def counts(self) -> dict[str, int]:
        busy = self.busy_nodes()
        return {"idle": 1 - busy, "busy": busy, "preparing": 0, "unusable": 0}


class SlotPool(Slots):
    def __init__(self, max_nodes: int, min_nodes: int = 0, idle_s: float = 0.0, prepare_s: float = PREPARE_S):
        super().__init__()
        self.max_nodes, self.min_nodes, self.idle_s, self.prepare_s = max_nodes, min_nodes, idle_s, prepare_s
        self.nodes: dict[int, Node] = {}
        self._grow(min_nodes)

    def _grow(self, n: int) -> None:
        free = [i for i in range(self.max_nodes) if i not in self.nodes]
        for i in free[:n]:
            self.nodes[i] = Node(i, "preparing" if self.prepare_s > 0 else "idle")

    def tick(self, now: float | None = None) -> None:
        """Finish scale-ups, scale idle nodes down to min_nodes after the idle time."""
        now = now or time.time()
        for node in self.nodes.values():
            if node.state == "preparing" and now - node.since >= self.prepare_s:
                node.state, node.since = "idle", now
        idle = sorted((n for n in self.nodes.values() if n.state == "idle"), key=lambda n: -n.index)
        excess = len(self.nodes) - self.min_nodes
        for node in idle:
            if excess <= 0:
                break
            if now - node.since >= self.idle_s:
                del self.nodes[node.index]
                excess -= 1

    def _usable(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.state in ("idle", "preparing") and n.run_id is None]

    def allocate(self, run_id: str, count: int) -> list[int] | None:
        """Nodes for ``run_id`` if ``count`` are free (scaling up as needed), else None."""
        self.tick()
        usable = self._usable()
        if len(usable) < count:
            self._grow(count - len(usable))
            usable = self._usable()
            if len(usable) < count:
                return None
        chosen = sorted(usable, key=lambda n: n.index)[:count]
        for n in chosen:
            n.state, n.run_id, n.since = "busy", run_id, time.time()
        return [n.index for n in chosen]

    def hold(self, run_id: str, indices: list[int]) -> None:
        """Re-attach: ``run_id`` (still running after a server restart) holds these nodes."""
        for i in indices:
            self.nodes[i] = Node(i, "busy", run_id)

    def release(self, run_id: str) -> None:
        now = time.time()
        for n in self.nodes.values():
            if n.run_id == run_id:
                n.state, n.run_id, n.since = "idle", None, now
        super().release(run_id)

    def busy_nodes(self) -> int:
        return sum(1 for n in self.nodes.values() if n.run_id is not None)

    def node_count(self) -> int:
        return len(self.nodes)

    def counts(self) -> dict[str, int]:
        self.tick()
        counts = {"idle": 0, "busy": 0, "preparing": 0, "unusable": 0}
        for n in self.nodes.values():
            counts[n.state] += 1
        return counts
