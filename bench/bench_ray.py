"""What a Ray node costs, against the local and cluster targets measured in the same run.

    python bench/bench_ray.py [--quick]        (pip install 'jupyter-train[ray]')

Starts a Ray cluster on loopback (ray.cluster_utils: a 1-CPU head and two 2-CPU workers,
shut down by the processes it started) and a headless server, then prints, as medians:
  1. submit -> first line of the script: local process  vs  Ray node (shared run directory)
                                          vs  Ray node with its files through Ray
  2. a line printed by the script -> readable over REST: local  vs  Ray, files through Ray
  3. submit -> Completed of a 2 x 2 DDP run (gloo, 2 epochs on digits): cluster  vs  Ray (shared)
                                                                      vs  Ray (files through Ray)
Figures, not asserts: these machines are shared and noisy.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from bench.bench_docker import FIRST_LINE, ddp, first_line, print_rows, repetitions  # noqa: E402
from kernel_lib import ClusterCompute, ComputeTarget, Experiment, RayCompute, ScriptRunConfig, Workspace  # noqa: E402
from kernel_lib.client import TrainError  # noqa: E402

TICKS = "import time\nfor i in range(12):\n    print('t', time.time(), flush=True)\n    time.sleep(0.25)\n"


def line_latency(ws, src: Path, target) -> float:
    """Median delay from a line's print (its timestamp) to the moment REST returns it."""
    run = Experiment(ws, "bench-ray-lines").submit(ScriptRunConfig(str(src), "ticks.py", compute_target=target))
    seen, delays = 0, []
    while True:
        try:
            lines = [ln for ln in run.get_log().splitlines() if ln.startswith("t ")]
        except TrainError:  # no log yet
            lines = []
        now = time.time()
        for ln in lines[seen:]:
            delays.append(now - float(ln.split()[1]))
        seen = len(lines)
        if seen >= 12 or run.get_status() in ("Completed", "Failed", "Canceled"):
            break
        time.sleep(0.01)
    run.wait_for_completion()
    return statistics.median(delays)


def main():
    reps = repetitions()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                              "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            (tmp / "src").mkdir()
            (tmp / "src" / "first.py").write_text(FIRST_LINE)
            (tmp / "src" / "ticks.py").write_text(TICKS)
            ws = Workspace(tmp / "ws")
            ws.client
            try:
                shared = ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(
                    address=cluster.address, node_shape={"CPU": 2}, max_nodes=2))
                copy = ComputeTarget.create(ws, "ray-copy", RayCompute.provisioning_configuration(
                    address=cluster.address, node_shape={"CPU": 2}, max_nodes=2, shared_filesystem=False))
                nodes = ComputeTarget.create(ws, "cluster", ClusterCompute.provisioning_configuration(
                    vm_size="cpu:1", max_nodes=2, idle_seconds_before_scaledown=600))
                local_s = first_line(ws, tmp / "src", "local", None, reps, "bench-ray")
                shared_s = first_line(ws, tmp / "src", shared, None, reps, "bench-ray")
                copy_s = first_line(ws, tmp / "src", copy, None, reps, "bench-ray")
                lat_local = line_latency(ws, tmp / "src", "local")
                lat_copy = line_latency(ws, tmp / "src", copy)
                ddp_cluster = ddp(ws, nodes, None, max(1, reps // 3))
                ddp_shared = ddp(ws, shared, None, max(1, reps // 3))
                ddp_copy = ddp(ws, copy, None, max(1, reps // 3))
            finally:
                ws.client.stop_started_server()
    finally:
        cluster.shutdown()

    def vs(x, base, unit=1e3, suffix="ms"):
        return f"x{x / base:.2f} (+{(x - base) * unit:.0f} {suffix})"

    rows = [
        ("submit -> first line, local process", f"{local_s * 1e3:.0f} ms", "baseline"),
        ("submit -> first line, Ray node", f"{shared_s * 1e3:.0f} ms", vs(shared_s, local_s)),
        ("submit -> first line, Ray, files through Ray", f"{copy_s * 1e3:.0f} ms", vs(copy_s, local_s)),
        ("printed -> over REST, local process", f"{lat_local * 1e3:.0f} ms", "baseline"),
        ("printed -> over REST, Ray, files through Ray", f"{lat_copy * 1e3:.0f} ms", vs(lat_copy, lat_local)),
        ("2x2 DDP submit -> Completed, cluster", f"{ddp_cluster:.1f} s", "baseline"),
        ("2x2 DDP submit -> Completed, Ray", f"{ddp_shared:.1f} s", f"x{ddp_shared / ddp_cluster:.2f}"),
        ("2x2 DDP submit -> Completed, Ray, files through Ray", f"{ddp_copy:.1f} s", f"x{ddp_copy / ddp_cluster:.2f}"),
    ]
    print_rows(rows)


if __name__ == "__main__":
    main()
