"""``python -m jupyter_ext.launcher.ray_probe ADDRESS``: the server's view of a Ray cluster,
kept out of the server process (which never imports Ray or becomes a Ray driver).

Every INTERVAL_S it prints one JSON line: the cluster's nodes (id, address, busy or idle, each
resource's total and used), nodes the autoscaler is still bringing up, and the pending demand;
or ``{"state": "unreachable", "error": ...}``. It reads the server's autoscaler requests from
stdin, one JSON line each ({"bundles": [{"CPU": 2}, ...]}: everything the server's jobs on the
cluster hold), and hands them to ``ray.autoscaler.sdk.request_resources`` (connecting as a
driver only then). When stdin closes (the server stopped) it withdraws its request and exits.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

INTERVAL_S = 2.0
SHOWN = ("CPU", "GPU", "memory")  # plus custom resources; not node:* or object_store_memory


def _resources(usage) -> tuple[dict, dict]:
    total, used = {}, {}
    for u in usage:
        name = u.resource_name
        if name.startswith("node:") or name in ("object_store_memory",) or name.startswith("accelerator_type"):
            continue
        total[name], used[name] = u.total, u.used
    return total, used


def gcs_status(gcs_address: str) -> dict:
    """Nodes and demand from the GCS (no driver), through Ray's autoscaler status API."""
    from ray.autoscaler.v2.sdk import get_cluster_status

    st = get_cluster_status(gcs_address, timeout=5)
    nodes = []
    for state, group in (("busy", st.active_nodes), ("idle", st.idle_nodes)):
        for n in group:
            total, used = _resources(n.resource_usage.usage if n.resource_usage else [])
            nodes.append({"node_id": n.node_id or n.instance_id, "address": n.ip_address, "state": state,
                          "resources": total, "used": used,
                          "idle_s": round((n.resource_usage.idle_time_ms or 0) / 1000, 1)
                          if n.resource_usage else 0})
    nodes.sort(key=lambda n: (n["address"], n["node_id"]))
    demand = st.resource_demands
    pg_waiting = sum(1 for d in demand.placement_group_demand)
    return {"state": "ready", "nodes": nodes, "pending_nodes": len(st.pending_nodes) +
            sum(lr.count for lr in st.pending_launches), "waiting_placement_groups": pg_waiting,
            "failed_nodes": len(st.failed_nodes)}


def client_status() -> dict:
    """Through a connected driver (Ray Client, ray://): nodes and totals; busy or idle is not
    known per node there."""
    import ray

    nodes = [{"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "state": "alive",
              "resources": {k: v for k, v in n["Resources"].items() if not k.startswith("node:")
                            and k != "object_store_memory"}, "used": {}, "idle_s": None}
             for n in ray.nodes() if n.get("Alive")]
    return {"state": "ready", "nodes": nodes, "pending_nodes": 0, "waiting_placement_groups": 0, "failed_nodes": 0}


class Probe:
    def __init__(self, address: str):
        self.address = address
        self.client = address.startswith("ray://")
        self.gcs: str | None = None  # resolved on first use ("auto" needs a cluster to find)
        self.requested: list | None = None
        self.lock = threading.Lock()

    @staticmethod
    def _gcs_address(address: str) -> str:
        if address == "auto":
            from ray._private.services import canonicalize_bootstrap_address_or_die

            return canonicalize_bootstrap_address_or_die("auto")
        return address

    def connect(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, namespace="jupyter-train", log_to_driver=False, logging_level="ERROR")

    def status(self) -> dict:
        try:
            if self.client:
                with self.lock:
                    self.connect()
                    out = client_status()
            else:
                self.gcs = self.gcs or self._gcs_address(self.address)
                out = gcs_status(self.gcs)
        except Exception as exc:  # the cluster is down or unreachable: say so, keep trying
            out = {"state": "unreachable", "error": f"{type(exc).__name__}: {exc}"[:500], "nodes": []}
        out["requested"] = self.requested or []
        out["time"] = time.time()
        return out

    def request(self, bundles: list) -> None:
        if bundles == (self.requested or []):
            return
        import ray

        with self.lock:
            self.connect()
            if self.client:  # a Ray Client has no GCS connection of its own: ask from inside the cluster
                ray.get(ray.remote(num_cpus=0)(_request_resources).remote(bundles), timeout=60)
            else:
                _request_resources(bundles)
        self.requested = bundles


def _request_resources(bundles: list) -> None:
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


def _read_requests(probe: Probe, done: threading.Event) -> None:
    for line in sys.stdin:
        try:
            bundles = json.loads(line)["bundles"]
            probe.request([{str(k): float(v) for k, v in b.items()} for b in bundles])
        except Exception as exc:
            print(json.dumps({"state": "error", "error": f"request failed: {exc}"[:500]}), flush=True)
    done.set()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m jupyter_ext.launcher.ray_probe ADDRESS", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    probe = Probe(argv[0])
    done = threading.Event()
    threading.Thread(target=_read_requests, args=(probe, done), daemon=True).start()
    while not done.is_set():
        print(json.dumps(probe.status()), flush=True)
        done.wait(INTERVAL_S)
    if probe.requested:
        try:
            probe.request([])  # the server is gone: no standing request keeps the cluster up
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
