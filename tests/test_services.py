"""Deployed models (Model.deploy) end to end: a real headless server, real scoring processes
(tornado, the entry scripts in tests/scripts/services), real HTTP. Deploy and score, a crashing
init(), a failing run(), a crash of the scoring process, auth on and off, a body over the cap,
a server killed under a service, the ONNX path without an entry script, delete (nothing left
running), and bad requests."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jupyter_ext.launcher.procs import is_alive
from kernel_lib import Model, Workspace
from kernel_lib.client import TrainError
from kernel_lib.webservice import (AciWebservice, InferenceConfig, LocalWebservice, Webservice,
                                   WebserviceException)
from tests.conftest import Headless

SCRIPTS = Path(__file__).parent / "scripts" / "services"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One server for the module's services, and a registered model (weights scale=3)."""
    root = tmp_path_factory.mktemp("services")
    server = Headless(root / "workspace", root / "server.log").start()
    ws = Workspace(root / "workspace")
    (root / "weights.json").write_text(json.dumps({"scale": 3}))
    model = Model.register(ws, str(root / "weights.json"), "scaler")
    yield {"ws": ws, "model": model, "root": root, "server": server}
    for svc in Webservice.list(ws):
        svc.delete()
    server.stop()


def deploy(env, name, script="score.py", config=None, **kw):
    ic = InferenceConfig(entry_script=script, source_directory=str(SCRIPTS)) if script else None
    svc = Model.deploy(env["ws"], name, [kw.pop("model", env["model"])], ic,
                       config or LocalWebservice.deploy_configuration(), **kw)
    return svc


def post(url, body, key=None, raw=False):
    """POST straight to a scoring URI: (status, parsed JSON answer)."""
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def until(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def listening(port) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def status_of(env, svc) -> dict:
    run_dir = env["root"] / "workspace" / "runs" / svc.run_id
    return json.loads((run_dir / "service_status.json").read_text())


def test_deploy_score_and_delete_leave_nothing_running(env):
    svc = deploy(env, "scaler-svc", config=AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1))
    assert isinstance(svc, AciWebservice)
    svc.wait_for_deployment(show_output=False)
    assert svc.state == "Healthy"
    assert svc.run(json.dumps({"data": [1, 2]})) == {"result": [3, 6]}  # through the server
    assert post(svc.scoring_uri, {"data": [5]}) == (200, {"result": [15]})  # straight to it
    seen = svc.run({"data": "env"})
    assert seen["path"].endswith("azureml-models/scaler/1/weights.json")  # the deployed copy
    assert seen["model_dir"].endswith("azureml-models/scaler/1") and seen["threads"] == "1"
    assert "init: loaded" in svc.get_logs()
    assert [s.name for s in Webservice.list(env["ws"])] == ["scaler-svc"]
    assert [s.name for s in Webservice.list(env["ws"], model_name="nobody")] == []
    until(lambda: Webservice(env["ws"], "scaler-svc")._data["requests"] == 3, 5, "the request count")
    info = Webservice(env["ws"], "scaler-svc")._data
    assert info["p50_ms"] is not None and info["errors"] == 0 and info["restarts"] == 0
    keeper = status_of(env, svc)
    host_pid, port = keeper["pid"], keeper["port"]
    supervisor = json.loads((env["root"] / "workspace" / "runs" / svc.run_id / "supervisor.json").read_text())
    assert is_alive(host_pid) and listening(port)

    svc.delete()
    assert not is_alive(host_pid) and not is_alive(supervisor["pid"])  # gone when delete() returns
    assert not listening(port)
    with pytest.raises(TrainError, match="No service named"):
        Webservice(env["ws"], "scaler-svc")
    assert env["ws"].client.get(f"/runs/{svc.run_id}")["status"] == "Canceled"


def test_a_crashing_init_fails_the_service_with_its_traceback(env):
    svc = deploy(env, "bad-init", script="bad_init.py")
    with pytest.raises(WebserviceException, match="failed") as err:
        svc.wait_for_deployment()
    assert "no weights here" in str(err.value)  # the end of the log comes with the error
    assert svc.state == "Failed"
    logs = svc.get_logs()
    assert "Traceback" in logs and "FileNotFoundError: no weights here" in logs
    assert "init() raised" in svc.error
    with pytest.raises(WebserviceException, match="409.*Failed"):
        svc.run({"data": [1]})
    svc.delete()


def test_a_failing_run_answers_500_and_the_service_serves_on(env):
    svc = deploy(env, "fails-some")
    svc.wait_for_deployment()
    with pytest.raises(WebserviceException, match="500.*ValueError: boom, as asked") as err:
        svc.run({"data": "boom"})
    assert "Traceback" in str(err.value)
    code, answer = post(svc.scoring_uri, {"data": "not json"})
    assert code == 500 and "JSON cannot encode" in answer["error"]
    assert svc.run({"data": [2]}) == {"result": [6]}
    assert svc.state == "Healthy"
    until(lambda: Webservice(env["ws"], "fails-some")._data["errors"] == 2, 5, "the error count")
    assert "ValueError: boom, as asked" in svc.get_logs()
    svc.delete()


def test_a_crashed_scoring_process_is_started_again_and_counted(env):
    svc = deploy(env, "crashes")
    svc.wait_for_deployment()
    first = status_of(env, svc)
    with pytest.raises(WebserviceException):
        svc.run({"data": "die"})  # the process ends mid-request: the proxy says so
    until(lambda: status_of(env, svc)["restarts"] == 1 and status_of(env, svc)["state"] == "Healthy",
          20, "a restart")
    again = status_of(env, svc)
    assert again["pid"] != first["pid"] and again["port"] == first["port"] and again["last_exit"] == 9
    assert svc.run({"data": [1]}) == {"result": [3]}
    assert Webservice(env["ws"], "crashes")._data["restarts"] == 1
    assert "exit code 9; starting it again in 1 s (restart 1)" in svc.get_logs()
    svc.delete()
    assert not is_alive(again["pid"])


def test_a_service_whose_run_directory_is_deleted_stops_and_can_be_deleted(env):
    import shutil

    svc = deploy(env, "dir-gone")
    svc.wait_for_deployment()
    host = status_of(env, svc)["pid"]
    keeper = int(Path(f"/proc/{host}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    shutil.rmtree(env["root"] / "workspace" / "runs" / svc.run_id)
    until(lambda: not is_alive(host) and not is_alive(keeper), 15, "the service to stop")
    svc.delete()  # nothing left to stop: the service is forgotten, no error
    assert "dir-gone" not in [s.name for s in Webservice.list(env["ws"])]


def test_keys_when_auth_is_on_and_none_when_off(env):
    svc = deploy(env, "locked", config=AciWebservice.deploy_configuration(auth_enabled=True))
    svc.wait_for_deployment()
    primary, secondary = svc.get_keys()
    assert primary and secondary and primary != secondary
    code, answer = post(svc.scoring_uri, {"data": [1]})
    assert code == 401 and "Authorization: Bearer" in answer["error"]
    assert post(svc.scoring_uri, {"data": [1]}, key="wrong")[0] == 401
    assert post(svc.scoring_uri, {"data": [1]}, key=primary) == (200, {"result": [3]})
    assert post(svc.scoring_uri, {"data": [1]}, key=secondary)[0] == 200
    assert svc.run({"data": [1]}) == {"result": [3]}  # the server's proxy adds the key
    svc.regen_key("Primary")
    new, same = svc.get_keys()
    assert new != primary and same == secondary
    assert post(svc.scoring_uri, {"data": [1]}, key=primary)[0] == 401  # the old one, refused at once
    assert post(svc.scoring_uri, {"data": [1]}, key=new)[0] == 200
    svc.delete()

    open_svc = deploy(env, "open")
    open_svc.wait_for_deployment()
    assert post(open_svc.scoring_uri, {"data": [1]}) == (200, {"result": [3]})
    with pytest.raises(TrainError, match="without auth_enabled"):
        open_svc.get_keys()
    open_svc.delete()


def test_a_body_over_the_cap_is_refused_before_it_is_read(env):
    svc = deploy(env, "small-bodies", config=LocalWebservice.deploy_configuration(max_request_bytes=1000))
    svc.wait_for_deployment()
    code, answer = post(svc.scoring_uri, b'{"data": [' + b"1," * 2000 + b"1]}", raw=True)
    assert code == 413 and "at most 1000" in answer["error"]
    chunked = http.client.HTTPConnection("127.0.0.1", status_of(env, svc)["port"], timeout=30)
    chunked.request("POST", "/score", body=iter([b'{"data": [', b"1," * 1000, b"1]}"]),
                    encode_chunked=True)  # no Content-Length: refused as it comes in
    resp = chunked.getresponse()
    assert resp.status == 413 and "over 1000 bytes" in json.loads(resp.read())["error"]
    chunked.close()
    code, answer = post(svc.scoring_uri, b"\xff\xfe", raw=True)
    assert code == 400 and "UTF-8" in answer["error"]
    assert svc.run({"data": [1]}) == {"result": [3]}
    svc.delete()


def test_a_service_serves_on_through_a_server_kill(env):
    svc = deploy(env, "outlives")
    svc.wait_for_deployment()
    pid = status_of(env, svc)["pid"]
    env["server"].kill(signal.SIGKILL)
    assert post(svc.scoring_uri, {"data": [2]}) == (200, {"result": [6]})  # no server needed
    env["server"] = env["server"].start()
    ws = Workspace(env["root"] / "workspace")
    env["ws"] = ws
    again = Webservice(ws, "outlives")
    assert again.state == "Healthy" and status_of(env, again)["pid"] == pid
    assert again.run({"data": [4]}) == {"result": [12]}
    again.delete()
    assert not is_alive(pid)


def test_an_onnx_model_deploys_without_an_entry_script(env, tmp_path):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[1.0, -1.0], [2.0, 0.5], [0.0, 3.0]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(w, "w")])
    model_file = tmp_path / "linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model_file)
    model = Model.register(env["ws"], str(model_file), "linear-onnx", model_framework="Onnx")
    svc = deploy(env, "onnx-svc", script=None, model=model)
    svc.wait_for_deployment()
    x = [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]
    answer = svc.run({"data": x})
    assert np.allclose(answer["result"], np.array(x, dtype=np.float32) @ w)
    with pytest.raises(WebserviceException, match="500.*Send"):
        svc.run({"input": x})
    svc.delete()


def test_a_service_runs_in_the_environment_it_was_given(env):
    """Built and cached as a run's (a virtual environment from pip packages); the build adds the
    scoring server's tornado. (uv or pip fetch toolz and tornado from PyPI: a few seconds.)"""
    from kernel_lib import CondaDependencies, Environment

    e = Environment("svc-env")
    e.python.conda_dependencies = CondaDependencies.create(pip_packages=["toolz"])
    svc = Model.deploy(env["ws"], "in-env", [env["model"]],
                       InferenceConfig(entry_script="score.py", source_directory=str(SCRIPTS), environment=e))
    svc.wait_for_deployment(timeout_sec=600)
    seen = svc.run({"data": "env"})
    assert "/environments/" in seen["python"] and seen["python"] != sys.executable
    assert svc.run({"data": [1]}) == {"result": [3]}
    svc.delete()


def test_bad_deployments_are_refused_and_leave_nothing(env):
    client = env["ws"].client
    runs_before = len(client.get("/runs", limit=1000)["runs"])
    with pytest.raises(TrainError, match="model 'nope' is registered"):
        Model.deploy(env["ws"], "svc-x", [Model(env["ws"], _data={**env["model"]._data, "name": "nope"})],
                     InferenceConfig(entry_script="score.py", source_directory=str(SCRIPTS)))
    with pytest.raises(TrainError, match="not a valid service name"):
        deploy(env, "Bad_Name")
    with pytest.raises(TrainError, match="entry script is needed"):
        deploy(env, "no-script", script=None)
    with pytest.raises(WebserviceException, match="does not exist"):
        InferenceConfig(entry_script="missing.py", source_directory=str(SCRIPTS))
    with pytest.raises(WebserviceException, match="port must be"):
        LocalWebservice.deploy_configuration(port=80)
    assert len(client.get("/runs", limit=1000)["runs"]) == runs_before
    svc = deploy(env, "twice")
    with pytest.raises(TrainError, match="exists.*overwrite"):
        deploy(env, "twice")
    with pytest.raises(TrainError, match="not found"):  # a bad replacement leaves the old one serving
        client.post("/services", {"name": "twice", "models": [{"name": "scaler"}], "entry_script": "nope.py",
                                  "source_directory": str(SCRIPTS), "overwrite": True})
    assert Webservice(env["ws"], "twice").run_id == svc.run_id
    replaced = deploy(env, "twice", overwrite=True)
    replaced.wait_for_deployment()
    assert replaced.run_id != svc.run_id
    assert client.get(f"/runs/{svc.run_id}")["status"] == "Canceled"
    replaced.delete()
