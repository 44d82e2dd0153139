"""System metrics of a run's nodes (launcher.sysmetrics): the /proc parsers and the GPU index
mapping as pure functions, the sampler on real processes, and runs on a real server whose nodes'
``system/`` series come back through the REST API under each node's index, beside (never
instead of) the training metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from jupyter_ext import contract
from jupyter_ext.launcher import sysmetrics as sm
from jupyter_ext.launcher.spec import Placement
from jupyter_ext.runs.ingest import parse_metric_lines, rank_of
from tests.test_supervisor import prepare, supervise

STAT = """cpu  100 5 50 800 20 3 2 1 0 0
cpu0 50 2 25 400 10 1 1 0 0 0
intr 12345
"""
MEMINFO = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    4096000 kB\n"
DISKSTATS = """   7       0 loop0 5 0 80 1 0 0 0 0 0 1 1
 253       0 vda 100 0 2000 10 50 0 4000 20 0 30 30
 253       1 vda1 90 0 1800 9 45 0 3600 18 0 27 27
 252       0 dm-0 10 0 999 1 5 0 999 2 0 3 3
"""
NETDEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 999999     10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0: 1000       5    0    0    0     0          0         0     2000       6    0    0    0     0       0          0
  eth1: 24         1    0    0    0     0          0         0       48       1    0    0    0     0       0          0
"""
PID_STAT = "4242 (my (odd) name) S 4200 4242 4242 0 -1 4194560 10 0 0 0 70 30 0 0 20 0 3 0 98765 1000 200"


def test_proc_parsers_read_host_cpu_memory_whole_disks_and_network_without_lo():
    assert sm.parse_cpu(STAT) == (100 + 5 + 50 + 3 + 2 + 1, 981)  # idle and iowait are not busy
    used, pct = sm.memory_used(sm.parse_meminfo(MEMINFO))
    assert used == (16384000 - 4096000) * 1024 and pct == pytest.approx(75.0)
    assert sm.parse_diskstats(DISKSTATS, {"vda"}) == (2000 * 512, 4000 * 512)  # not vda1, loop0, dm-0
    assert sm.parse_net_dev(NETDEV) == (1024, 2048)
    assert sm.parse_pid_stat(PID_STAT) == (4200, 4242, 100, 98765)
    assert sm.parse_rss("Name:\tx\nVmRSS:\t  2048 kB\n") == 2 * 1024 * 1024 and sm.parse_rss("Name:\tk\n") == 0
    with pytest.raises(ValueError):
        sm.parse_cpu("intr 1\n")


def test_rates_are_deltas_over_time_and_never_negative():
    assert sm.rate(100, 350, 2.5) == 100.0
    assert sm.rate(350, 100, 2.5) == 0.0 and sm.rate(1, 2, 0) == 0.0  # counter reset; no time passed
    assert sm.cpu_percent((100, 1000), (150, 1200)) == 25.0
    assert sm.cpu_percent((100, 1000), (100, 1000)) == 0.0


def test_cuda_visible_devices_maps_a_nodes_gpu_numbers_to_nvml_devices():
    uuids = ["GPU-aaaa-0", "GPU-bbbb-1", "GPU-cccc-2", "GPU-dddd-3"]
    assert sm.gpu_indices("2,0", 4, uuids) == [2, 0]  # its gpu_0 is device 2, its gpu_1 device 0
    assert sm.gpu_indices(None, 4, uuids) == [0, 1, 2, 3]  # unset: every GPU
    assert sm.gpu_indices("", 4, uuids) == []  # none
    assert sm.gpu_indices("GPU-cccc-2, GPU-aaaa", 4, uuids) == [2, 0]  # UUIDs, a unique prefix too
    assert sm.gpu_indices("1,7,2", 4, uuids) == [1]  # as CUDA: up to the first that names no GPU
    assert sm.gpu_indices("GPU-,3", 4, uuids) == []  # an ambiguous prefix names none
    assert sm.gpu_indices("-1", 4, uuids) == [] and sm.gpu_indices("1,1", 4, uuids) == [1]


def test_gpus_without_nvml_are_a_silent_skip():
    gpus = sm.Gpus()  # the real pynvml (or none): no driver here, nothing raised, nothing reported
    if gpus.nvml is None:
        assert gpus.figures(None) == {} and gpus.figures("0") == {}
    gpus.close()


def test_a_sample_is_contract_records_on_the_fast_path_and_its_file_is_the_nodes_rank():
    data = sm.records({"cpu_utilization_percentage": 12.5, "bad": float("nan")}, 3, 1700000000.5)
    rows, tags, problems = parse_metric_lines(data)
    assert rows == [("system/cpu_utilization_percentage", 3, 12.5, None, 1700000000.5)] and not problems
    assert contract.system_metrics_file_name(1) == "system_1.jsonl" and rank_of("system_1.jsonl") == 1
    assert sm.interval_from_env({}) == 5.0 and sm.interval_from_env({contract.ENV_SYSTEM_METRICS_INTERVAL: "0"}) == 0
    assert sm.interval_from_env({contract.ENV_SYSTEM_METRICS_INTERVAL: "0.5"}) == 0.5


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_sampler_follows_a_process_tree_and_writes_a_last_sample_when_stopped(tmp_path):
    code = ("import subprocess, sys, time\n"
            "kid = subprocess.Popen([sys.executable, '-c', 'x = bytearray(30 << 20)\\nimport time\\ntime.sleep(3)'])\n"
            "time.sleep(3)\n")
    top = subprocess.Popen([sys.executable, "-c", code])
    try:
        sampler = sm.SystemSampler(tmp_path / "metrics", [sm.NodeSource(2, sm.ProcessTree(lambda: [top.pid]))],
                                   0.3, str(tmp_path)).start()
        time.sleep(1.2)
        sampler.stop()
    finally:
        top.kill()
        top.wait()
    points = _lines(tmp_path / "metrics" / "system_2.jsonl")
    steps = sorted({p["s"] for p in points})
    assert steps == list(range(len(steps))) and len(steps) >= 3  # each tick and the last one
    assert all(set(p) == {"k", "n", "v", "s", "t"} and p["n"].startswith("system/") for p in points)
    mem = [p["v"] for p in points if p["n"] == "system/process_memory_megabytes"]
    assert max(mem) > 30  # the child's 30 MB are the node's
    cpu = [p["v"] for p in points if p["n"] == "system/cpu_utilization_percentage"]
    assert cpu and all(0 <= v <= 100 for v in cpu)


def test_a_failing_sample_is_said_once_and_stops_the_sampler_only(tmp_path):
    said = []

    def broken():
        raise RuntimeError("no /proc here")

    sampler = sm.SystemSampler(tmp_path / "m", [sm.NodeSource(0, broken, host=False)], 0.05, say=said.append)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    assert said == ["system metrics stopped: RuntimeError: no /proc here"]
    assert not (tmp_path / "m").exists()


def test_interval_0_writes_no_system_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv(contract.ENV_SYSTEM_METRICS_INTERVAL, "0")
    rd = prepare(tmp_path, Placement(), script="import time\ntime.sleep(0.3)\n")
    final, _ = supervise(rd, timeout=60)
    assert final["state"] == "Completed"
    assert not list(rd.metrics.glob("system_*"))


async def _series(api, run_id) -> dict:
    view = await api.call("GET", f"runs/{run_id}/metrics/series", points=100)
    return {(s["rank"], s["name"]): s for s in view["series"]}


def _values(series) -> list[float]:
    return [v for _, v in series["points"]]


LOGGING = ("import os, time\nfrom kernel_lib.tracking import Run\nrun = Run.get_context()\n"
           "run.log('loss', 0.5)\nrun.log('loss', 0.25)\nrun.flush()\ntime.sleep(float(os.environ.get('NAP', '3')))\n")


async def test_a_run_has_system_series_of_its_node_beside_its_training_metrics(api, monkeypatch):
    monkeypatch.setenv(contract.ENV_SYSTEM_METRICS_INTERVAL, "0.5")
    run = await api.call("POST", "runs", {"experiment": "exp", "script": "nap.py",
                                          "extra_files": {"nap.py": LOGGING}}, expect=201)
    run = await api.wait(run["id"])
    assert run["status"] == "Completed", run.get("error")
    series = await _series(api, run["id"])
    system = {name for rank, name in series if name.startswith("system/")}
    assert {rank for rank, name in series if name.startswith("system/")} == {0}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
            "system/system_memory_usage_percentage", "system/disk_usage_percentage",
            "system/disk_read_megabytes_per_second", "system/network_receive_megabytes_per_second",
            "system/process_cpu_percentage", "system/process_memory_megabytes"} <= system
    assert series[(0, "system/cpu_utilization_percentage")]["count"] >= 4  # 3 s at 0.5 s
    assert all(0 <= v <= 100 for v in _values(series[(0, "system/cpu_utilization_percentage")]))
    assert min(_values(series[(0, "system/system_memory_usage_megabytes")])) > 0
    assert max(_values(series[(0, "system/process_memory_megabytes")])) > 5  # the script's python
    assert 0 < max(_values(series[(0, "system/disk_usage_percentage")])) <= 100
    assert run["primary_metric"] == {"name": "loss", "value": 0.25, "step": 1}


FAIL_AT_1 = LOGGING + "if os.environ['RANK'] == '1':\n    raise RuntimeError('planted at rank 1')\n"


async def test_each_node_of_a_2_node_cluster_run_has_its_own_system_series(api, monkeypatch):
    """... and the training ranks are as ever: rank 1 fails first, the primary metric is the loss."""
    monkeypatch.setenv(contract.ENV_SYSTEM_METRICS_INTERVAL, "0.5")
    monkeypatch.setenv("NAP", "1.5")
    await api.call("POST", "computes", {"name": "two", "vm_size": "cpu:1", "min_nodes": 0, "max_nodes": 2},
                   expect=201)
    run = await api.call("POST", "runs", {
        "experiment": "exp", "script": "nap.py", "extra_files": {"nap.py": FAIL_AT_1}, "compute_target": "two",
        "distributed": {"kind": "pytorch", "nodes": 2, "procs_per_node": 1, "backend": "gloo"}}, expect=201)
    run = await api.wait(run["id"], timeout=90)
    assert run["status"] == "Failed" and run["error"].startswith("Rank 1 failed first: RuntimeError: planted"), run
    assert run["properties"]["failed_rank"] == 1
    series = await _series(api, run["id"])
    for node in (0, 1):
        assert max(_values(series[(node, "system/process_memory_megabytes")])) > 5  # its torchrun tree
        assert (node, "system/cpu_utilization_percentage") in series
    assert {rank for rank, name in series if not name.startswith("system/")} == {0, 1}  # the ranks' loss
    assert run["primary_metric"]["name"] == "loss"


async def test_a_run_that_logs_nothing_has_no_primary_metric_though_its_node_has_figures(api, monkeypatch):
    monkeypatch.setenv(contract.ENV_SYSTEM_METRICS_INTERVAL, "0.2")
    monkeypatch.setenv("NAP", "0.5")
    run = await api.wait((await api.call("POST", "runs", {"experiment": "exp", "script": "q.py", "extra_files": {
        "q.py": "import time\ntime.sleep(0.6)\n"}}, expect=201))["id"])
    assert run["status"] == "Completed" and run["primary_metric"] is None
    assert any(name.startswith("system/") for _, name in await _series(api, run["id"]))
