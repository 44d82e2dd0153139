"""MLflow logging into runs, with the real mlflow client from PyPI (mlflow-skinny): a script that
logs the way Azure's MLflow samples do, MlflowClient reading our runs from outside, the per-run
token's scope, and garbage input answered in MLflow's error shape, never a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kernel_lib import Experiment, ScriptRunConfig
from tests.conftest import module_workspace

if os.environ.get("CI") != "true":
    pytest.importorskip("mlflow")  # in CI it must be there ([test] extra): the import below fails
import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")


def tracking_uri(ws) -> str:
    return ws.client.url.rstrip("/") + "/train/mlflow"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One headless server for the module (the logged run below is shared by three tests)."""
    with module_workspace(tmp_path_factory, "mlflow") as ws:
        yield ws


@pytest.fixture(scope="module")
def logged(ws):
    """A finished run of tests/scripts/mlflow_logging.py, 2000 flood points included."""
    run = Experiment(ws, "mlflow-sample").submit(
        ScriptRunConfig(SCRIPTS, "mlflow_logging.py", arguments=["--epochs", "4", "--flood", "2000"]))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", run.get_log()
    return run


def test_an_mlflow_script_logs_params_metrics_tags_and_artifacts_into_its_run(ws, logged, tmp_path):
    run = logged
    assert f"mlflow run {run.id} experiment mlflow-sample" in run.get_log()
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1 / 3, 0.25]  # in step order, every point
    assert metrics["accuracy"] == 0.9 and metrics["f1"] == 0.8  # logged once: a scalar
    assert metrics["flood"] == list(range(2000))  # every point of a tight loop kept
    # (mlflow's async logging, on in runs, may send points of one batch in another order)
    assert sorted(p["step"] for p in run.get_metrics_history("loss")) == [0, 1, 2, 3]
    details = ws.client.get(f"/runs/{run.id}")
    assert details["properties"]["params"] == {"epochs": "4", "lr": "0.01", "optimizer": "sgd"}
    assert run.get_tags()["framework"] == "pytorch"
    names = run.get_file_names()
    assert "outputs/reports/summary.txt" in names and "outputs/more/summary.txt" in names
    got = run.download_file("outputs/reports/summary.txt", str(tmp_path / "s.txt"))
    assert Path(got).read_text() == "all good\n"
    assert "artifacts ['more', 'reports']" in run.get_log()  # the job listed its own artifacts


def test_mlflow_client_outside_a_run_searches_and_reads_our_runs(ws, logged, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ws.client.token)
    client = MlflowClient(tracking_uri=tracking_uri(ws))
    exp = client.get_experiment_by_name("mlflow-sample")
    assert exp.experiment_id == "mlflow-sample"
    assert "mlflow-sample" in [e.name for e in client.search_experiments()]
    [found] = client.search_runs([exp.experiment_id])
    assert found.info.run_id == logged.id and found.info.status == "FINISHED"
    assert found.data.params == {"epochs": "4", "lr": "0.01", "optimizer": "sgd"}
    assert found.data.metrics["loss"] == 0.25 and found.data.metrics["flood"] == 1999
    assert found.data.tags["framework"] == "pytorch"
    history = client.get_metric_history(logged.id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25)]
    local = client.download_artifacts(logged.id, "reports/summary.txt", str(tmp_path))
    assert Path(local).read_text() == "all good\n"
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|No run"):
        client.get_run("nope_1_abc")
    with pytest.raises(MlflowException, match="submitting a script"):
        client.create_run("mlflow-sample")  # runs are submitted here, not created by a client
    # a finished run takes no more metrics
    with pytest.raises(MlflowException, match="takes no more"):
        client.log_metric(logged.id, "late", 1.0)


def test_a_runs_token_reaches_only_its_own_run_and_no_token_reaches_nothing(ws, logged):
    token = (Path(logged.get_details()["run_dir"]) / "mlflow.token").read_text()
    assert token.startswith(logged.id + ".") and \
        oct(os.stat(Path(logged.get_details()["run_dir"]) / "mlflow.token").st_mode & 0o777) == "0o600"
    other = Experiment(ws, "other").submit(ScriptRunConfig(SCRIPTS, "count.py", arguments=["--n", "1"]))
    other.wait_for_completion()
    base = tracking_uri(ws) + "/api/2.0/mlflow"
    assert call(f"{base}/runs/get?run_id={logged.id}", token)[0] == 200
    status, body = call(f"{base}/runs/get?run_id={other.id}", token)
    assert status == 403 and body["error_code"] == "PERMISSION_DENIED"
    status, body = call(f"{base}/runs/log-metric", token, {"run_id": other.id, "key": "x", "value": 1})
    assert status == 403
    status, body = call(f"{base}/runs/search", token, {"experiment_ids": ["other", "mlflow-sample"]})
    assert status == 200 and [r["info"]["run_id"] for r in body["runs"]] == [logged.id]
    assert call(f"{base}/runs/get?run_id={logged.id}", None)[0] in (401, 403)
    assert call(f"{base}/runs/get?run_id={logged.id}", logged.id + ".forged")[0] in (401, 403)
    status, _ = call(f"{tracking_uri(ws)}/api/2.0/mlflow-artifacts/artifacts/{other.id}/x.txt", token,
                     b"data", method="PUT")
    assert status == 403


def call(url: str, token: str | None, body=None, method: str | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw[:200].decode("utf-8", "replace")}


def test_garbage_is_answered_in_mlflows_error_shape_never_500(ws):
    """A live run (its token writes), then every malformed request: 4xx with error_code."""
    live = Experiment(ws, "garbage").submit(ScriptRunConfig(SCRIPTS, "count.py",
                                                            arguments=["--n", "200", "--sleep", "0.05"]))
    rd = Path(live.get_details()["run_dir"])
    token = (rd / "mlflow.token").read_text()
    base = tracking_uri(ws) + "/api/2.0/mlflow"
    art = tracking_uri(ws) + "/api/2.0/mlflow-artifacts/artifacts"
    rid = live.id
    cases = [
        (f"{base}/runs/log-metric", b"{not json"),
        (f"{base}/runs/log-metric", [1, 2]),
        (f"{base}/runs/log-metric", {"run_id": rid}),
        (f"{base}/runs/log-metric", {"run_id": rid, "key": "x", "value": "abc"}),
        (f"{base}/runs/log-metric", {"run_id": rid, "key": "x", "value": True}),
        (f"{base}/runs/log-metric", {"run_id": rid, "key": "x" * 300, "value": 1}),
        (f"{base}/runs/log-metric", {"run_id": rid, "key": "x", "value": 1, "step": "one"}),
        (f"{base}/runs/log-metric", {"run_id": rid, "key": "x", "value": 1, "step": 2**70}),
        (f"{base}/runs/log-metric", {"run_id": rid, "key": "x", "value": 1, "timestamp": -5}),
        (f"{base}/runs/log-parameter", {"run_id": rid, "key": "p", "value": 5}),
        (f"{base}/runs/log-parameter", {"run_id": rid, "key": "p", "value": "v" * 5000}),
        (f"{base}/runs/set-tag", {"run_id": rid, "key": "t", "value": None}),
        (f"{base}/runs/log-batch", {"run_id": rid, "metrics": "many"}),
        (f"{base}/runs/log-batch", {"run_id": rid, "metrics": [1]}),
        (f"{base}/runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": 1}] * 1001}),
        (f"{base}/runs/search", {"experiment_ids": "garbage"}),
        (f"{base}/runs/search", {"experiment_ids": ["garbage"], "max_results": -1}),
        (f"{base}/runs/search", {"experiment_ids": ["garbage"], "page_token": "x"}),
        (f"{base}/runs/search", {"experiment_ids": ["garbage"], "filter": "metrics.loss < 1"}),
        (f"{base}/experiments/create", {"name": "../up"}),
        (f"{base}/runs/nonsense", {}),
        (f"{base}/registered-models/create", {"name": "m"}),
    ]
    for url, body in cases:
        status, answer = call(url, token if "experiments/create" not in url else ws.client.token, body)
        assert 400 <= status < 500 and answer.get("error_code"), (url, body if len(str(body)) < 200 else "...", status, answer)
    for path, body in [(f"/{rid}/../../spec.json", b"x"), (f"/{rid}/a/../../escape.txt", b"x"), (f"/{rid}", b"x"),
                       ("/", b"x")]:
        status, answer = call(art + path, token, body, method="PUT")
        assert 400 <= status < 500, (path, status, answer)
    status, answer = call(f"{art}/{rid}/nope.txt", token)
    assert status == 404 and answer["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # a link in outputs/ that leads out of the run is neither written through nor read
    (rd / "outputs").mkdir(exist_ok=True)
    os.symlink("/tmp", rd / "outputs" / "out")
    assert call(f"{art}/{rid}/out/planted.txt", token, b"x", method="PUT")[0] == 403
    assert call(f"{art}/{rid}/out/planted.txt", token)[0] in (403, 404)
    # what was logged before the garbage is intact, and a good request still works
    assert call(f"{base}/runs/log-metric", token, {"run_id": rid, "key": "good", "value": 1.5, "step": 3})[0] == 200
    live.wait_for_completion()
    assert live.get_metrics()["good"] == 1.5 and len(live.get_metrics()["loss"]) == 200
    assert "x" not in live.get_metrics()


def test_a_user_set_tracking_uri_wins_and_a_resubmit_gets_its_own_run_id(ws, tmp_path):
    src = ScriptRunConfig(SCRIPTS, "mlflow_logging.py", arguments=["--epochs", "1"],
                          environment_variables={"MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(),
                                                 "MLFLOW_ALLOW_FILE_STORE": "true"})
    run = Experiment(ws, "own-uri").submit(src)
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", run.get_log()
    assert "loss" not in run.get_metrics()  # it went where the user said
    assert list((tmp_path / "mlruns").iterdir())
    again = ws.client.post(f"/runs/{run.id}/resubmit", {})
    assert again["id"] != run.id
    plain = Experiment(ws, "resub").submit(ScriptRunConfig(SCRIPTS, "mlflow_logging.py", arguments=["--epochs", "2"]))
    plain.wait_for_completion()
    second = ws.get_run(ws.client.post(f"/runs/{plain.id}/resubmit", {})["id"])
    assert second.wait_for_completion(raise_on_error=False)["status"] == "Completed", second.get_log()
    assert f"mlflow run {second.id}" in second.get_log()
    assert second.get_metrics()["loss"] == [1.0, 0.5] and plain.get_metrics()["loss"] == [1.0, 0.5]
