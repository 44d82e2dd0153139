"""The per-run supervisor on prepared run directories (no server): late-bound variables filled
where they belong, and an engine that cannot be reached fails the run in time, naming it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jupyter_ext.launcher.commands import build_nodes
from jupyter_ext.launcher.rundir import RunDir
from jupyter_ext.launcher.spec import DistributedSpec, DockerPlacement, Placement, RayPlacement, RunSpec

UNREACHABLE_S = 60  # issue 15: an engine nobody answers at fails the run within this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(tmp_path, placement, script="print('hello')\n", arguments=(), distributed=None) -> RunDir:
    """A run directory as the manager leaves it: spec.json with a placement and the nodes."""
    rd = RunDir(tmp_path / "run")
    rd.create()
    (rd.path / "wd").mkdir()
    (rd.path / "wd" / "job.py").write_text(script)
    spec = RunSpec(run_id="r1", experiment="e", script="job.py", arguments=list(arguments),
                   python=sys.executable, distributed=distributed, placement=placement, cancel_grace_s=1)
    spec.nodes = build_nodes(spec)
    rd.spec_path.write_text(spec.to_json())
    return rd


def supervise(rd: RunDir, timeout: float, entry: str = "supervise") -> tuple[dict, float]:
    """Run the supervisor to its end; returns the final event and how long it took."""
    env = dict(os.environ, JUPYTER_TRAIN_SUPERVISOR="1")
    t0 = time.monotonic()
    with open(rd.logs / "supervisor.txt", "ab") as log:
        subprocess.run([sys.executable, "-m", f"jupyter_ext.launcher.{entry}", str(rd.path)], env=env,
                       stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=rd.path)
    events, _ = rd.read_events()
    return events[-1], time.monotonic() - t0


@pytest.mark.parametrize("entry", ["supervise", "supervisor"])
def test_late_bound_variables_reach_the_launcher_not_the_scripts_arguments(tmp_path, entry):
    script = "import json, os, sys\njson.dump({'argv': sys.argv[1:], 'port': os.environ['MASTER_PORT'], " \
             "'addr': os.environ['MASTER_ADDR']}, open('outputs/seen.json', 'w'))\n"
    rd = prepare(tmp_path, Placement(kind="cluster", target="c", nodes=[0, 1]), script=script,
                 arguments=["--port", "{MASTER_PORT}", "{MASTER_ADDR}"],
                 distributed=DistributedSpec("pytorch", nodes=1, procs_per_node=2))
    (rd.path / "wd" / "outputs").mkdir()
    last, _ = supervise(rd, timeout=300, entry=entry)
    assert last["state"] == "Completed", (rd.logs / "supervisor.txt").read_text() + (rd.logs / "node_0.txt").read_text()
    seen = json.loads((rd.outputs / "seen.json").read_text())
    assert seen["argv"] == ["--port", "{MASTER_PORT}", "{MASTER_ADDR}"]  # the user's, untouched
    assert seen["addr"] == "127.0.0.1" and seen["port"].isdigit()  # the launcher's, filled


def test_an_unreachable_docker_engine_fails_the_run_naming_it(tmp_path):
    pytest.importorskip("docker")
    url = f"tcp://127.0.0.1:{free_port()}"
    rd = prepare(tmp_path, DockerPlacement(target="d", base_url=url, image="img:1"))
    last, took = supervise(rd, timeout=UNREACHABLE_S + 30)
    assert last["state"] == "Failed" and took < UNREACHABLE_S, (took, last)
    assert url in last["message"] and "base_url" in last["message"]


@pytest.mark.parametrize("listening", [False, True], ids=["nobody-listens", "not-ray-behind-the-port"])
def test_an_unreachable_ray_cluster_fails_the_run_naming_it(tmp_path, listening):
    """Nobody at the address, or a port that accepts but no Ray behind it (as when the addresses
    a cluster reports are not reachable from here): the driver would retry for ever."""
    if os.environ.get("CI") == "true":
        import ray  # noqa: F401  (CI installs it with the test extras: never skip there)
    else:
        pytest.importorskip("ray")
    held: list[socket.socket] = []  # accepted and never answered (a backlog alone fills up)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if listening:
            sock.listen(64)

            def accept() -> None:
                while True:
                    try:
                        held.append(sock.accept()[0])
                    except OSError:  # the socket closed: the test is over
                        return

            threading.Thread(target=accept, daemon=True).start()
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        rd = prepare(tmp_path, RayPlacement(target="ray", address=address, shape={"CPU": 1}))
        last, took = supervise(rd, timeout=UNREACHABLE_S + 60)
    for conn in held:
        conn.close()
    assert last["state"] == "Failed" and took < UNREACHABLE_S, (took, last, (rd.logs / "supervisor.txt").read_text())
    assert address in last["message"]
    assert ("accepts connections" if listening else "nothing answers") in last["message"]
    assert not Path(rd.path, ".ray-probe").exists()
