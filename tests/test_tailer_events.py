"""The tailer follows runs by file events, not by its poll.

The server here polls only every 10 s (``poll_interval``, the fallback), so whatever arrives in
a few seconds came because a file event woke the tailer: a running script's line and metric
(WebSocket and REST), a second rank's metrics file and a nested log file that appear mid-run,
and the final status; and a run directory deleted while it is followed leaves the others
followed. With file events off (``file_events = False``, as where inotify is missing) the poll
alone still follows a run to its end. Behaviour, not timing: the bounds are far above what it
takes (milliseconds) and far below the poll.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest

FALLBACK_POLL_S = 10.0
PROMPT_S = 3.0  # well under the fallback poll


@pytest.fixture
def jp_server_config(workspace_dir, request):
    train = {"workspace_dir": str(workspace_dir), "poll_interval": FALLBACK_POLL_S,
             **getattr(request, "param", {})}  # a test may set other TrainApp options
    return {"ServerApp": {"jpserver_extensions": {"jupyter_ext": True}}, "TrainApp": train}


class Stream:
    """Every message of a run's WebSocket, collected in the background."""

    def __init__(self, conn):
        self.conn, self.messages = conn, []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        while True:
            raw = await self.conn.read_message()
            if raw is None:
                return
            self.messages.append(json.loads(raw))

    def log_text(self, name="rank_0.txt") -> str:
        return "".join(m["text"] for m in self.messages if m["type"] == "log" and m["name"] == name)

    def metric_names(self) -> set[str]:
        return {i["name"] for m in self.messages if m["type"] == "metrics" for i in m["items"]}

    def close(self):
        self.task.cancel()
        self.conn.close()


async def until(check, timeout, what):
    """Wait until ``check()`` (sync or async) is true; the seconds it took."""
    t0 = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)


async def start(api, jp_ws_fetch, release, *args):
    release.mkdir(exist_ok=True)
    run = await api.submit("wait_release.py", [str(release), *args])
    stream = Stream(await jp_ws_fetch("train", "api", "runs", run["id"], "stream"))
    await until(lambda: "started" in stream.log_text(), 60, "the script's first line")
    return run, stream


async def metric_names(api, run_id) -> set[str]:
    return {m["name"] for m in (await api.call("GET", f"runs/{run_id}/metrics"))["items"]}


async def test_a_line_and_a_metric_arrive_without_the_fallback_poll(api, jp_ws_fetch, tmp_path):
    run, stream = await start(api, jp_ws_fetch, tmp_path / "release")
    try:
        (tmp_path / "release" / "go").touch()
        await until(lambda: "released" in stream.log_text(), PROMPT_S, "the line on the WebSocket")
        await until(lambda: "after_go" in stream.metric_names(), PROMPT_S, "the metric on the WebSocket")
        assert "after_go" in await metric_names(api, run["id"])  # REST reads the same store
        log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
        assert "released" in log["text"]
        running = await api.call("GET", f"runs/{run['id']}")
        assert running["status"] == "Running"
        (tmp_path / "release" / "end").touch()
        t_end = time.monotonic()
        done = await api.wait(run["id"], timeout=FALLBACK_POLL_S)
        assert done["status"] == "Completed", done
        assert time.monotonic() - t_end < PROMPT_S, "the final status waited for the fallback poll"
        await until(lambda: any(m["type"] == "end" for m in stream.messages), PROMPT_S, "the stream's end")
    finally:
        (tmp_path / "release" / "end").touch()
        stream.close()


async def test_new_metrics_files_and_nested_log_files_are_picked_up(api, jp_ws_fetch, tmp_path):
    run, stream = await start(api, jp_ws_fetch, tmp_path / "release", "--new-files")
    try:
        (tmp_path / "release" / "go").touch()
        await until(lambda: "late_rank" in stream.metric_names(), PROMPT_S, "rank 1's new metrics file")
        items = (await api.call("GET", f"runs/{run['id']}/metrics"))["items"]
        assert {(m["rank"], m["name"]) for m in items} >= {(0, "after_go"), (1, "late_rank")}
        nested = "agent/node1/extra.txt"
        await until(lambda: "late log line" in stream.log_text(nested), PROMPT_S, "the nested log file")
        names = [f["name"] for f in (await api.call("GET", f"runs/{run['id']}/logs"))["logs"]]
        assert nested in names
    finally:
        (tmp_path / "release" / "end").touch()
        stream.close()
    assert (await api.wait(run["id"], timeout=FALLBACK_POLL_S))["status"] == "Completed"


async def test_a_deleted_run_directory_leaves_the_other_runs_followed(api, jp_ws_fetch, tmp_path,
                                                                     workspace_dir):
    doomed, doomed_stream = await start(api, jp_ws_fetch, tmp_path / "doomed")
    kept, kept_stream = await start(api, jp_ws_fetch, tmp_path / "kept")
    try:
        doomed_stream.close()
        shutil.rmtree(workspace_dir / "runs" / doomed["id"])
        (tmp_path / "doomed" / "go").touch()  # its script writes into files that are gone
        await asyncio.sleep(0.3)
        (tmp_path / "kept" / "go").touch()
        await until(lambda: "released" in kept_stream.log_text(), PROMPT_S, "the other run's line")
        await until(lambda: "after_go" in kept_stream.metric_names(), PROMPT_S, "the other run's metric")
        # a run that starts after the deletion is followed too
        later, later_stream = await start(api, jp_ws_fetch, tmp_path / "later")
        (tmp_path / "later" / "go").touch()
        await until(lambda: "after_go" in later_stream.metric_names(), PROMPT_S, "a new run's metric")
        (tmp_path / "later" / "end").touch()
        later_stream.close()
    finally:
        for name in ("doomed", "kept", "later"):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / "end").touch()
        kept_stream.close()
    assert (await api.wait(kept["id"], timeout=FALLBACK_POLL_S))["status"] == "Completed"


@pytest.mark.parametrize("jp_server_config", [{"file_events": False, "poll_interval": 0.05}], indirect=True)
async def test_without_file_events_the_poll_follows_runs(api, jp_ws_fetch):
    run = await api.submit("count.py", ["--n", 3])
    stream = Stream(await jp_ws_fetch("train", "api", "runs", run["id"], "stream"))
    try:
        done = await api.wait(run["id"], timeout=60)
        assert done["status"] == "Completed" and done["tags"]["finished"] == "yes", done
        items = (await api.call("GET", f"runs/{run['id']}/metrics"))["items"]
        loss = [m for m in items if m["name"] == "loss"]
        assert [m["step"] for m in loss] == [0, 1, 2]
        await until(lambda: any(m["type"] == "end" for m in stream.messages), PROMPT_S, "the stream's end")
        assert "line 2" in stream.log_text()
    finally:
        stream.close()
