"""What a Docker node costs, against the local target measured in the same run.

    python bench/bench_docker.py [--quick]        (root, Debian's docker.io installed)

Starts a private dockerd (tests/dockerd.py) and a headless server, then prints, as medians:
  1. submit -> first line of the script: local process  vs  container (bind mounts)
                                          vs  container with the files through a volume
  2. submit -> Completed of a 2 x 2 DDP run (gloo, 2 epochs on digits): cluster  vs  containers
Figures, not asserts: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import (ClusterCompute, ComputeTarget, DockerCompute, Environment, Experiment,  # noqa: E402
                        PyTorchConfiguration, ScriptRunConfig, Workspace)
from tests.dockerd import Dockerd, host_python_volumes  # noqa: E402

FIRST_LINE = "import time; print('first', time.time(), flush=True)\n"
SCRIPTS = ROOT / "tests" / "scripts"


def skeleton_env() -> Environment:
    env = Environment("bench-skeleton")
    env.docker.base_image = "jt-skeleton:1"
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    return env


def first_line(ws, src: Path, target, env, n: int, experiment: str = "bench-docker") -> float:
    exp = Experiment(ws, experiment)
    exp.submit(ScriptRunConfig(str(src), "first.py", compute_target=target,
                                                          environment=env)).wait_for_completion()  # warm
    times = []
    for _ in range(n):
        t0 = time.time()
        run = exp.submit(ScriptRunConfig(str(src), "first.py", compute_target=target, environment=env))
        run.wait_for_completion()
        times.append(float(run.get_log().split()[1]) - t0)
    return statistics.median(times)


def ddp(ws, target, env, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.time()
        run = Experiment(ws, "bench-ddp").submit(ScriptRunConfig(
            str(SCRIPTS), "ddp_digits.py", ["--epochs", 2], compute_target=target, environment=env,
            distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2)))
        assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", run.get_log("node_0.txt")
        times.append(time.time() - t0)
    return statistics.median(times)


def main():
    reps = repetitions()
    engine = Dockerd().start()
    try:
        engine.import_skeleton("jt-skeleton:1")
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            (tmp / "src").mkdir()
            (tmp / "src" / "first.py").write_text(FIRST_LINE)
            ws = Workspace(tmp / "ws")
            ws.client
            try:
                volumes = host_python_volumes()  # /usr and this Python (a venv's too), as is
                bind = ComputeTarget.create(ws, "bind", DockerCompute.provisioning_configuration(
                    base_url=engine.url, max_nodes=2, volumes=volumes))
                copy = ComputeTarget.create(ws, "copy", DockerCompute.provisioning_configuration(
                    base_url=engine.url, max_nodes=2, volumes=volumes, shared_filesystem=False))
                cluster = ComputeTarget.create(ws, "cluster", ClusterCompute.provisioning_configuration(
                    vm_size="cpu:1", max_nodes=2, idle_seconds_before_scaledown=600))
                env = skeleton_env()
                local_s = first_line(ws, tmp / "src", "local", None, reps)
                bind_s = first_line(ws, tmp / "src", bind, env, reps)
                copy_s = first_line(ws, tmp / "src", copy, env, reps)
                ddp_local = ddp(ws, cluster, None, max(1, reps // 3))
                ddp_docker = ddp(ws, bind, env, max(1, reps // 3))
            finally:
                ws.client.stop_started_server()
    finally:
        engine.stop()
    rows = [
        ("submit -> first line, local process", f"{local_s * 1e3:.0f} ms", "baseline"),
        ("submit -> first line, container", f"{bind_s * 1e3:.0f} ms", f"x{bind_s / local_s:.2f} (+{(bind_s - local_s) * 1e3:.0f} ms)"),
        ("submit -> first line, files via volume", f"{copy_s * 1e3:.0f} ms", f"x{copy_s / local_s:.2f} (+{(copy_s - local_s) * 1e3:.0f} ms)"),
        ("2x2 DDP submit -> Completed, cluster", f"{ddp_local:.1f} s", "baseline"),
        ("2x2 DDP submit -> Completed, containers", f"{ddp_docker:.1f} s", f"x{ddp_docker / ddp_local:.2f}"),
    ]
    print_rows(rows)


def repetitions() -> int:
    """Medians over 7 repetitions, or 3 with --quick."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    return 3 if ap.parse_args().quick else 7


def print_rows(rows) -> None:
    """(what, value, ratio) rows as an aligned table."""
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>9}  {ratio}")


if __name__ == "__main__":
    main()
