"""The REST API against a real Jupyter server with the extension loaded (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from jupyter_ext.launcher.procs import is_alive
from tests.conftest import TERMINAL


async def test_run_lifecycle_logs_metrics_files(api, scripts_dir):
    run = await api.submit("count.py", ["--n", 4, "--sleep", 0.01])
    assert run["status"] in ("Queued", "Starting", "Running")
    assert [p["state"] for p in run["phases"]][:3] == ["NotStarted", "Preparing", "Queued"]
    run = await api.wait(run["id"])
    assert run["status"] == "Completed", run
    states = [p["state"] for p in run["phases"]]
    assert states == ["NotStarted", "Preparing", "Queued", "Starting", "Running", "Finalizing", "Completed"]
    ts = [p["ts"] for p in run["phases"]]
    assert ts == sorted(ts)
    assert run["arguments"] == ["--n", "4", "--sleep", "0.01"]
    assert run["tags"]["finished"] == "yes"  # set from inside the script

    log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
    assert log["text"].splitlines() == ["line 0", "line 1", "line 2", "line 3", "done"]
    assert log["eof"] is True
    part = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt", offset=7, limit=7)
    assert part["text"] == "line 1\n" and part["next_offset"] == 14

    metrics = await api.call("GET", f"runs/{run['id']}/metrics")
    loss = [m for m in metrics["items"] if m["name"] == "loss"]
    assert [m["step"] for m in loss] == [0, 1, 2, 3]
    assert [m["value"] for m in loss] == [1.0, 0.5, 1 / 3, 0.25]
    later = await api.call("GET", f"runs/{run['id']}/metrics", cursor=metrics["items"][1]["id"])
    assert [m["id"] for m in later["items"]] == [m["id"] for m in metrics["items"][2:]]

    listing = await api.call("GET", f"runs/{run['id']}/files")
    files = listing["files"]
    assert "outputs/result.txt" in files and "logs/rank_0.txt" in files
    body = await api.call("GET", f"runs/{run['id']}/files/outputs/result.txt")
    assert body == b"counted to 4\n"
    assert sorted(listing["sizes"]) == sorted(files) and listing["sizes"]["outputs/result.txt"] == len(body)
    # the ignored file never reached the run's working copy
    assert not os.path.exists(os.path.join(run["run_dir"], "wd", "ignored.bin"))


async def test_models_get_versions(api):
    run = await api.wait((await api.submit("count.py", ["--n", 1]))["id"])
    for expected in (1, 2):
        m = await api.call("POST", "models", {"name": "counter", "run_id": run["id"],
                                              "path": "outputs/result.txt", "tags": {"k": "v"}},
                           expect=201)
        assert m["version"] == expected and m["files"] == ["result.txt"]
    latest = await api.call("GET", "models/counter")
    assert latest["version"] == 2 and latest["tags"] == {"k": "v"}
    first = await api.call("GET", "models/counter", version=1)
    assert first["run_id"] == run["id"]
    data = await api.call("GET", "models/counter/1/files/result.txt")
    assert data == b"counted to 1\n"
    listed = await api.call("GET", "models")
    assert [(m["name"], m["version"]) for m in listed["models"]] == [("counter", 1), ("counter", 2)]
    await api.call("POST", "models", {"name": "counter", "run_id": run["id"], "path": "outputs/nope"},
                   expect=404)
    await api.call("POST", "models", {"name": "bad name!", "run_id": run["id"],
                                      "path": "outputs/result.txt"}, expect=400)


async def test_failed_script_names_last_traceback_line(api):
    run = await api.wait((await api.submit("fail.py"))["id"])
    assert run["status"] == "Failed"
    assert "ValueError: learning rate -1 is out of range" in run["error"]
    assert "exited with code 1" in run["error"]
    log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
    assert log["text"].startswith("about to fail\n") and "Traceback" in log["text"]


async def test_cancel_kills_the_process_tree_and_keeps_outputs(api):
    run = await api.submit("linger.py")
    run = await api.wait(run["id"], states=("Running",))
    # wait until the script wrote its partial output (it prints its pids first)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
        if "working" in log["text"]:
            break
        await asyncio.sleep(0.05)
    pids = [int(p) for p in log["text"].split("\n")[0].split()[1:]]
    assert all(is_alive(p) for p in pids)
    t0 = time.monotonic()
    await api.call("POST", f"runs/{run['id']}/cancel")
    run = await api.wait(run["id"], timeout=5)
    took = time.monotonic() - t0
    assert run["status"] == "Canceled", run
    assert took < 5
    await asyncio.sleep(0.2)
    assert not any(is_alive(p) for p in pids), "the script or its child survived the cancel"
    files = (await api.call("GET", f"runs/{run['id']}/files"))["files"]
    assert "outputs/partial.txt" in files
    log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
    assert "working" in log["text"]
    # cancelling again is harmless and the run stays Canceled
    again = await api.call("POST", f"runs/{run['id']}/cancel")
    assert again["status"] == "Canceled"


async def test_bad_metric_values_are_stored_or_refused_and_run_completes(api):
    run = await api.wait((await api.submit("badmetrics.py"))["id"])
    assert run["status"] == "Completed", run
    items = (await api.call("GET", f"runs/{run['id']}/metrics"))["items"]
    values = {m["name"]: m["value"] for m in items}
    assert values == {"nan_metric": "nan", "inf_metric": "inf", "text_metric": "hello", "ok": 3.5}
    log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
    assert "over the 4096-character limit" in log["text"]
    assert "a dict is not a number or text" in log["text"]
    assert "metric name '' refused" in log["text"]
    assert "still alive" in log["text"]


@pytest.mark.parametrize("change, code, words", [
    ({"source_directory": "/nonexistent/dir"}, "invalid_request", "does not exist"),
    ({"script": "missing.py"}, "invalid_request", "was not found"),
    ({"compute_target": "gpu-cluster"}, "unknown_compute_target", "Known targets: local"),
    ({"arguments": ["--x", {"a": 1}]}, "invalid_request", "must be a str, int or float"),
    ({"arguments": ["--flag", True]}, "invalid_request", "must be a str, int or float"),
    ({"experiment": "no spaces allowed"}, "invalid_request", "Experiment name"),
    ({"script": "../conftest.py"}, "path_escapes", "outside"),
    ({"script": "ignored.bin"}, "invalid_request", "excluded by the ignore rules"),
    ({"surprise": 1}, "invalid_request", "Unknown field"),
])
async def test_bad_submissions_are_clear_errors(api, scripts_dir, change, code, words):
    body = {"experiment": "exp", "source_directory": str(scripts_dir), "script": "count.py", **change}
    status = 403 if code == "path_escapes" else 400
    err = await api.call("POST", "runs", body, expect=status)
    assert err["error_code"] == code and words in err["message"], err
    assert (await api.call("GET", "runs"))["runs"] == []  # nothing was created


async def test_snapshot_over_limit_names_the_largest_files(jp_fetch, tmp_path, api, jp_serverapp):
    src = tmp_path / "big"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    (src / "weights.bin").write_bytes(os.urandom(300_000))
    for i in range(5):
        (src / f"small{i}.txt").write_text("x")
    manager = jp_serverapp.web_app.settings["train_manager"]
    manager.snapshot_max_bytes = 200_000
    err = await api.submit("train.py", source=src, expect=400)
    assert err["error_code"] == "snapshot_too_large"
    assert "weights.bin (0.3 MB)" in err["message"] and ".amlignore" in err["message"]
    manager.snapshot_max_bytes = 10**9
    manager.snapshot_max_files = 3
    err = await api.submit("train.py", source=src, expect=400)
    assert "7 files" in err["message"] and "limit is 3 files" in err["message"]
    (src / ".amlignore").write_text("*.bin\nsmall*\n")
    run = await api.submit("train.py", source=src)
    assert run["properties"]["snapshot_files"] == 2  # train.py and .amlignore


async def test_files_and_logs_cannot_escape_the_run(api):
    run = await api.wait((await api.submit("count.py", ["--n", 1]))["id"])
    for path in (f"runs/{run['id']}/files/outputs/../../spec.json",
                 f"runs/{run['id']}/files/logs/../../../../../etc/passwd",
                 f"runs/{run['id']}/logs/../../../train.db"):
        err = await api.call("GET", path, expect=403)
        assert err["error_code"] == "path_escapes"
    # a link inside outputs/ that points out of the run is refused too
    os.symlink("/etc/passwd", os.path.join(run["run_dir"], "outputs", "link"))
    err = await api.call("GET", f"runs/{run['id']}/files/outputs/link", expect=403)
    assert err["error_code"] == "path_escapes"
    err = await api.call("GET", f"runs/{run['id']}/files/spec.json", expect=400)
    assert "outputs/ and logs/" in err["message"]
    await api.call("GET", "runs/nope_1_2", expect=404)


# Auth on every endpoint and method of openapi.yaml: tests/faults/test_auth.py


async def test_websocket_streams_status_logs_metrics_and_resumes(jp_ws_fetch, api):
    import json

    run = await api.submit("count.py", ["--n", 6, "--sleep", 0.05])
    ws = await jp_ws_fetch("train", "api", "runs", run["id"], "stream")
    text, metrics, statuses, after_final = "", [], [], []
    while True:
        msg = json.loads(await ws.read_message())
        if statuses and statuses[-1] == "Completed":
            after_final.append(msg["type"])
        if msg["type"] == "status":
            statuses.append(msg["run"]["status"])
        elif msg["type"] == "log" and msg["name"] == "rank_0.txt":
            assert msg["offset"] == len(text.encode())
            text += msg["text"]
        elif msg["type"] == "metrics":
            metrics += msg["items"]
        elif msg["type"] == "end":
            assert msg["status"] == "Completed"
            break
    ws.close()
    assert text.splitlines() == [f"line {i}" for i in range(6)] + ["done"]
    assert [m["value"] for m in metrics if m["name"] == "loss"] == [1 / (i + 1) for i in range(6)]
    assert statuses[-1] == "Completed" and "Running" in statuses
    assert after_final == ["end"]  # the final status comes after every log line and point
    # resume: from a log offset and a metric cursor, only what came after is sent
    cut = len("line 0\nline 1\n")
    ws = await jp_ws_fetch("train", "api", "runs", run["id"], "stream",
                           params={"logs": f"rank_0.txt:{cut}", "cursor": str(metrics[2]["id"])})
    resumed_text, resumed_metrics = "", []
    while True:
        msg = json.loads(await ws.read_message())
        if msg["type"] == "log" and msg["name"] == "rank_0.txt":
            resumed_text += msg["text"]
        elif msg["type"] == "metrics":
            resumed_metrics += msg["items"]
        elif msg["type"] == "end":
            break
    ws.close()
    assert resumed_text == text[cut:]
    assert resumed_metrics == metrics[3:]


async def test_tags_experiments_and_computes(api):
    run = await api.submit("count.py", ["--n", 1], tags={"try": 1})
    assert run["tags"] == {"try": "1"}
    updated = await api.call("PATCH", f"runs/{run['id']}", {"tags": {"note": "good"}})
    assert updated["tags"] == {"try": "1", "note": "good"}
    await api.wait(run["id"])
    exps = (await api.call("GET", "experiments"))["experiments"]
    assert [(e["name"], e["runs"]) for e in exps] == [("exp", 1)]
    computes = (await api.call("GET", "computes"))["computes"]
    assert computes[0]["name"] == "local" and computes[0]["kind"] == "local"
    listed = await api.call("GET", "runs", experiment="exp", limit=5)
    assert [r["id"] for r in listed["runs"]] == [run["id"]]
    err = await api.call("GET", "runs", limit="x", expect=400)
    assert err["error_code"] == "invalid_request"


async def test_a_script_sent_as_text_with_or_without_a_source_directory(api, scripts_dir):
    cell = "import helper\nprint('cell says', helper.VALUE)\n"
    err = await api.call("POST", "runs", {"experiment": "exp", "script": "cell.py",
                                          "extra_files": {"cell.py": cell}}, expect=201)
    run = await api.wait(err["id"])
    assert run["status"] == "Failed" and "ModuleNotFoundError: No module named 'helper'" in run["error"]
    # beside a source directory, the text wins over a file of the same name
    run = await api.call("POST", "runs", {
        "experiment": "exp", "script": "cell.py", "source_directory": str(scripts_dir),
        "extra_files": {"cell.py": cell, "helper.py": "VALUE = 42\n", "count.py": "raise SystemExit(3)\n"}},
        expect=201)
    run = await api.wait(run["id"])
    assert run["status"] == "Completed"
    log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
    assert log["text"] == "cell says 42\n"
    wd = os.path.join(run["run_dir"], "wd")
    assert open(os.path.join(wd, "count.py")).read() == "raise SystemExit(3)\n"
    assert os.path.isfile(os.path.join(wd, "linger.py"))  # the rest of the folder came too
    # the snapshot keeps the cell's text as it was submitted, though the run may change wd/
    open(os.path.join(wd, "cell.py"), "w").write("changed by the run\n")
    snap = await api.call("GET", f"runs/{run['id']}/snapshot")
    sizes = {f["path"]: f["size"] for f in snap["files"]}
    assert sizes["cell.py"] == len(cell) and sizes["helper.py"] == 11 and "linger.py" in sizes
    assert snap["snapshot_id"] == run["snapshot_id"]
    assert await api.call("GET", f"runs/{run['id']}/snapshot/cell.py") == cell.encode()
    for name in ("nope.py", "../spec.json", "..%2F..%2Ftrain.db", "wd/cell.py"):
        err = await api.call("GET", f"runs/{run['id']}/snapshot/{name}", expect=404)
        assert "GET /train/api/runs/" in err["message"]
    for bad in ({"../x.py": "1"}, {"/etc/x.py": "1"}, {"a.py": 3}):
        err = await api.call("POST", "runs", {"experiment": "exp", "script": "a.py", "extra_files": bad},
                             expect=400)
        assert "extra_files" in err["message"]


async def test_cancel_right_after_submit_is_not_lost(api):
    for _ in range(10):  # the cancel lands at varying points of the supervisor's start
        run = await api.submit("linger.py")
        await api.call("POST", f"runs/{run['id']}/cancel")
        run = await api.wait(run["id"], timeout=10)
        assert run["status"] == "Canceled", run


async def test_workspace_events_feed_new_runs_and_status_changes(jp_ws_fetch, api):
    import json

    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("train", "api", "events", headers={"Authorization": ""})
    assert info.value.code == 403
    old = await api.wait((await api.submit("count.py", ["--n", 1]))["id"])
    ws = await jp_ws_fetch("train", "api", "events")
    first = json.loads(await ws.read_message())
    assert first["type"] == "runs" and [r["id"] for r in first["runs"]] == [old["id"]]
    run = await api.submit("count.py", ["--n", 2])
    statuses = []
    t0 = time.monotonic()
    while "Completed" not in statuses:
        msg = json.loads(await asyncio.wait_for(ws.read_message(), 30))
        assert msg["type"] == "run" and msg["run"]["id"] == run["id"]
        statuses.append(msg["run"]["status"])
    ws.close()
    assert statuses[0] in ("Queued", "Starting", "Running") and statuses[-1] == "Completed"
    assert time.monotonic() - t0 < 30


async def test_runs_carry_their_primary_metric(api):
    run = await api.wait((await api.submit("count.py", ["--n", 4]))["id"])
    # "n" was logged first but once; "loss" is the first series, and its latest value shows
    assert run["primary_metric"] == {"name": "loss", "value": 0.25, "step": 3}
    tagged = await api.wait((await api.submit("count.py", ["--n", 2], tags={"primary_metric": "n"}))["id"])
    assert tagged["primary_metric"]["name"] == "n" and tagged["primary_metric"]["value"] == 2
    listed = {r["id"]: r for r in (await api.call("GET", "runs"))["runs"]}
    assert listed[run["id"]]["primary_metric"]["value"] == 0.25
    quiet = await api.wait((await api.submit("sleep_a_bit.py"))["id"])
    assert quiet["primary_metric"] is None


async def test_a_starting_run_shows_its_own_metric_not_its_learning_rate(api, tmp_path):
    """lr and epoch come first, logged once, as training scripts do; the run's own metric (loss,
    logged once so far) is its primary metric from the start, and stays when it becomes a
    series. Only a run that logs nothing but bookkeeping shows it."""
    release = tmp_path / "go"
    script = ("import os, sys, time\nfrom kernel_lib.tracking import Run\nrun = Run.get_context()\n"
              "run.log('lr', 0.01); run.log('epoch', 0); run.log('loss', 2.0); run.flush()\n"
              "while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"
              "run.log('epoch', 1); run.log('loss', 1.0)\n")
    run = await api.call("POST", "runs", {"experiment": "exp", "script": "t.py", "arguments": [str(release)],
                                          "extra_files": {"t.py": script}}, expect=201)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = await api.call("GET", f"runs/{run['id']}")
        if live["primary_metric"] or live["status"] in TERMINAL:
            break
        await asyncio.sleep(0.05)
    assert live["status"] == "Running" and live["primary_metric"]["name"] == "loss", live
    release.write_text("")
    done = await api.wait(run["id"])
    assert done["primary_metric"] == {"name": "loss", "value": 1.0, "step": 1}
    only = await api.call("POST", "runs", {"experiment": "exp", "script": "t.py", "extra_files": {
        "t.py": "from kernel_lib.tracking import Run\nr = Run.get_context()\nr.log('lr', 0.1); r.log('lr', 0.05)\n"}},
        expect=201)
    assert (await api.wait(only["id"]))["primary_metric"]["name"] == "lr"


async def test_resubmit_runs_the_same_spec_again(api, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("import sys\nprint('v1', sys.argv[1:])\n")
    first = await api.submit("train.py", ["--lr", 0.1], source=src, tags={"who": "me"},
                             environment_variables={"X": "1"},
                             distributed={"kind": "pytorch", "nodes": 1, "procs_per_node": 1,
                                          "backend": "gloo"})
    assert first["properties"]["distributed"] == {"kind": "pytorch", "nodes": 1, "procs_per_node": 1,
                                                  "backend": "gloo", "max_restarts": 0}
    first = await api.wait(first["id"])
    # the source changed since: a resubmit runs what the first run ran (its snapshot)
    (src / "train.py").write_text("print('v2')\n")
    again = await api.call("POST", f"runs/{first['id']}/resubmit", expect=201)
    assert again["id"] != first["id"] and again["snapshot_id"] == first["snapshot_id"]
    assert again["tags"] == {"who": "me", "resubmit_of": first["id"]}
    assert again["arguments"] == first["arguments"] and again["script"] == "train.py"
    assert again["properties"]["distributed"] == first["properties"]["distributed"]
    again = await api.wait(again["id"])
    assert again["status"] == "Completed", again
    text = (await api.call("GET", f"runs/{again['id']}/logs/rank_0.txt"))["text"]
    assert "v1 ['--lr', '0.1']" in text
    # a resubmit of a resubmit points at its own source run, not a chain of tags
    third = await api.call("POST", f"runs/{again['id']}/resubmit", expect=201)
    assert third["tags"]["resubmit_of"] == again["id"]
    await api.wait(third["id"])
    err = await api.call("POST", "runs/nope/resubmit", expect=404)
    assert "No run 'nope'" in err["message"]


async def test_info_and_environment_build_states(api, workspace_dir):
    info = await api.call("GET", "")
    assert info["workspace"] == str(workspace_dir)
    envs = (await api.call("GET", "environments"))["environments"]
    assert envs and all(e["build_state"] == "ready" for e in envs if e.get("curated"))
    await api.call("POST", "environments", {"name": "needs-toolz", "pip_packages": ["toolz"]}, expect=201)
    envs = (await api.call("GET", "environments"))["environments"]
    assert [e["build_state"] for e in envs if e["name"] == "needs-toolz"] == ["not built"]
