"""The kernel library against a headless ``jupyter train`` in a subprocess: the SDK flow,
workspace ownership, and a server killed with SIGKILL while a run is going."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from kernel_lib import Experiment, Model, ScriptRunConfig, Workspace
from kernel_lib.client import TrainError
from kernel_lib.run import RunFailed


def test_sdk_flow(headless, workspace_dir, scripts_dir, tmp_path, capsys):
    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    src = ScriptRunConfig(source_directory=str(scripts_dir), script="count.py",
                          arguments=["--n", 5, "--sleep", 0.02])
    run = Experiment(ws, "sdk").submit(src, tags={"try": "1"})
    details = run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert details["status"] == "Completed"
    assert all(f"line {i}\n" in out for i in range(5)) and "Status: Completed" in out
    assert out.index("line 0") < out.index("line 4") < out.index("Execution Summary")
    metrics = run.get_metrics()
    assert metrics["n"] == 5 and metrics["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert "outputs/result.txt" in run.get_file_names()
    target = run.download_file("outputs/result.txt", str(tmp_path / "dl" / "result.txt"))
    assert open(target).read() == "counted to 5\n"
    assert run.get_tags() == {"try": "1", "finished": "yes"}
    m1 = run.register_model("counter", "outputs/result.txt", tags={"a": "b"})
    m2 = run.register_model("counter", "outputs/result.txt")
    assert (m1.version, m2.version) == (1, 2)
    assert Model(ws, "counter").version == 2 and Model(ws, "counter", version=1).tags == {"a": "b"}
    assert [(m.name, m.version) for m in Model.list(ws)] == [("counter", 1), ("counter", 2)]
    path = Model(ws, "counter", 1).download(str(tmp_path / "model"))
    assert open(path).read() == "counted to 5\n"
    with pytest.raises(TrainError, match="already exists"):
        Model(ws, "counter", 1).download(str(tmp_path / "model"))
    assert [r.id for r in Experiment(ws, "sdk").get_runs()] == [run.id]


def test_sdk_errors_are_clear(headless, workspace_dir, scripts_dir):
    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    with pytest.raises(TrainError, match="must be a str, int or float"):
        ScriptRunConfig(source_directory=str(scripts_dir), script="count.py", arguments=[None])
    with pytest.raises(TrainError, match="is not in"):
        ScriptRunConfig(source_directory=str(scripts_dir), script="nope.py")
    src = ScriptRunConfig(source_directory=str(scripts_dir), script="count.py", compute_target="gpu")
    with pytest.raises(TrainError) as info:
        Experiment(ws, "sdk").submit(src)
    assert info.value.code == "unknown_compute_target"
    run = Experiment(ws, "sdk").submit(ScriptRunConfig(str(scripts_dir), "fail.py"))
    with pytest.raises(RunFailed, match="ValueError: learning rate -1 is out of range"):
        run.wait_for_completion()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_kernel_library_starts_a_server_when_none_runs(tmp_path, scripts_dir):
    ws = Workspace.create(tmp_path / "auto")
    try:
        run = Experiment(ws, "auto").submit(ScriptRunConfig(str(scripts_dir), "count.py", ["--n", 1]))
        assert run.wait_for_completion()["status"] == "Completed"
        info = json.loads((tmp_path / "auto" / "server.json").read_text())
        assert oct(os.stat(tmp_path / "auto" / "server.json").st_mode & 0o777) == "0o600"
        # a second Workspace object finds the same server instead of starting another
        assert Workspace(tmp_path / "auto").client.url == info["url"]
    finally:
        info = json.loads((tmp_path / "auto" / "server.json").read_text())
        os.kill(info["pid"], signal.SIGTERM)


def test_a_second_server_says_who_owns_the_workspace(headless, workspace_dir, tmp_path):
    first = headless(workspace_dir)
    second_log = tmp_path / "second_log"
    argv = [sys.executable, "-m", "jupyter_ext", "--port=0", "--ip=127.0.0.1",
            f"--TrainApp.workspace_dir={workspace_dir}", "--allow-root"]
    with open(second_log, "ab") as log:
        proc = subprocess.Popen(argv, env=dict(os.environ, JUPYTER_TOKEN="second-token"),
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "/train/api?token" not in second_log.read_text():
            time.sleep(0.1)
        text = second_log.read_text()
        assert f"owned by another server (pid {first.proc.pid}" in text
        # the owner's info is untouched, so the kernel library connects to the owner
        info = json.loads((workspace_dir / "server.json").read_text())
        assert info["pid"] == first.proc.pid
        assert Workspace(workspace_dir).client.url == first.url
        # and the second server answers its API with the same explanation
        port = [ln for ln in text.splitlines() if "/train/api?token" in ln][0].split("127.0.0.1:")[1].split("/")[0]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/train/api/runs",
                                     headers={"Authorization": "token second-token"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        body = json.loads(info.value.read())
        assert info.value.code == 409 and body["error_code"] == "workspace_locked"
        assert str(first.proc.pid) in body["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)



