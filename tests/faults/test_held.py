"""Faults the product already held before the fault suite, kept here so the table shows them:
a server SIGKILLed mid-run, a kernel killed while its run goes on, a rank that fails in a
distributed job, and 100 submissions at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jupyter_ext.launcher.procs import is_alive
from kernel_lib import (ClusterCompute, ComputeTarget, Experiment, PyTorchConfiguration,
                        ScriptRunConfig, Workspace)
from kernel_lib.client import TrainError


def test_server_killed_and_restarted_mid_run_loses_nothing(headless, workspace_dir, scripts_dir, fault):
    server = headless(workspace_dir)
    ws = Workspace(workspace_dir)
    exp = Experiment(ws, "restart")
    long_run = exp.submit(ScriptRunConfig(str(scripts_dir), "count.py", ["--n", 80, "--sleep", 0.05]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(long_run.get_metrics_history("loss")) < 10:
        time.sleep(0.05)
    short_run = exp.submit(ScriptRunConfig(str(scripts_dir), "count.py", ["--n", 3, "--sleep", 0.3]))
    server.kill(signal.SIGKILL)
    time.sleep(1.5)  # the short run finishes while no server is up
    headless(workspace_dir)  # a new server: new port, new token
    statuses = [run.wait_for_completion()["status"] for run in (long_run, short_run)]
    steps = [m["step"] for m in long_run.get_metrics_history("loss")]
    lines = long_run.get_log().splitlines()
    lost = len(set(range(80)) - set(steps)) + (len(steps) - len(set(steps)))
    fault.record("server SIGKILLed mid-run, restarted", survived=statuses == ["Completed"] * 2 and lost == 0,
                 lost=lost, unit="points")
    assert statuses == ["Completed", "Completed"]
    assert steps == list(range(80))
    assert lines == [f"line {i}" for i in range(80)] + ["done"]
    assert short_run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3]
    phases = [p["state"] for p in short_run.get_details()["phases"]]
    assert phases[-3:] == ["Running", "Finalizing", "Completed"]


def test_killing_the_kernel_never_kills_the_run(headless, workspace_dir, scripts_dir, fault):
    """A 'kernel' (a Python process using the SDK) submits a run and dies with SIGKILL."""
    headless(workspace_dir)
    code = (
        "import sys, time\n"
        "from kernel_lib import Workspace, Experiment, ScriptRunConfig\n"
        f"ws = Workspace({str(workspace_dir)!r})\n"
        f"run = Experiment(ws, 'k').submit(ScriptRunConfig({str(scripts_dir)!r}, 'count.py',"
        " ['--n', 20, '--sleep', 0.05]))\n"
        "print(run.id, flush=True)\n"
        "time.sleep(600)\n"
    )
    kernel = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    run_id = kernel.stdout.readline().strip()
    kernel.kill()
    kernel.wait()
    run = Workspace(workspace_dir).get_run(run_id)
    status = run.wait_for_completion()["status"]
    points = len(run.get_metrics()["loss"])
    fault.record("kernel SIGKILLed after submit", survived=status == "Completed" and points == 20,
                 lost=20 - points, unit="points")
    assert status == "Completed" and points == 20


def test_a_failing_rank_stops_every_rank_and_is_named(ws, scripts_dir, fault):
    ComputeTarget.create(ws, "cpu-cluster", ClusterCompute.provisioning_configuration(
        vm_size="cpu:1", min_nodes=0, max_nodes=2, idle_seconds_before_scaledown=600))
    src = ScriptRunConfig(str(scripts_dir), "ddp_digits.py", ["--epochs", 50, "--fail_rank", 3],
                          compute_target="cpu-cluster",
                          distributed_job_config=PyTorchConfiguration("Gloo", process_count=4, node_count=2))
    run = Experiment(ws, "ddp-fail").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    run_dir = Path(details["run_dir"])
    time.sleep(0.5)
    alive = [f.name for f in (run_dir / "pids").glob("rank_*.json")
             if is_alive(json.loads(f.read_text())["pid"])]
    named = details["error"].startswith("Rank 3 failed first: RuntimeError: planted failure at rank 3")
    fault.record("a rank fails in a 2x2 DDP job", survived=details["status"] == "Failed" and named and not alive,
                 lost=len(alive), unit="processes")
    assert details["status"] == "Failed"
    assert named, details["error"]
    assert details["properties"]["failed_rank"] == 3
    failed_at = json.loads((run_dir / "errors" / "rank_3.json").read_text())["ts"]
    assert details["ended_at"] - failed_at < 10, "the other ranks were not stopped within 10 s"
    assert not alive, f"still running: {alive}"
    assert "RuntimeError: planted failure at rank 3" in run.get_log("rank_3.txt")


def test_100_submissions_at_once_all_run_and_keep_their_points(ws, fault):
    script = ("from kernel_lib.tracking import Run\nimport sys\nrun = Run.get_context()\n"
              "for i in range(10):\n    run.log('i', i)\nprint('ok', sys.argv[1])\n")
    exp = Experiment(ws, "burst")

    def submit(i):
        try:
            return exp.submit(ScriptRunConfig(None, "burst.py", arguments=[i],
                                              extra_files={"burst.py": script}))
        except TrainError as exc:
            return exc

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(submit, range(100)))
    errors = [r for r in results if isinstance(r, TrainError)]
    runs = [r for r in results if not isinstance(r, TrainError)]
    statuses = [r.wait_for_completion(raise_on_error=False)["status"] for r in runs]
    lost = sum(10 - len(r.get_metrics_history("i")) for r in runs) + 10 * len(errors)
    ok = not errors and statuses == ["Completed"] * 100 and lost == 0
    fault.record("100 concurrent submissions", survived=ok, lost=lost, unit="points",
                 note=f"{len(errors)} refused")
    assert not errors, [e.message for e in errors[:3]]
    assert statuses == ["Completed"] * 100
    assert lost == 0
    assert len({r.id for r in runs}) == 100
    assert [r.get_log().strip() for r in runs[:3]] == [f"ok {i}" for i in range(3)]
