"""RunManager without a web server (the core is framework-free): lost supervisors and a
database rebuilt from the run directories."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from jupyter_ext.launcher.procs import is_alive
from jupyter_ext.runs import RunManager, SubmitRequest

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


async def wait_for(manager, run_id, states, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = manager.get_run(run_id)
        if run["status"] in states:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"{run_id} is {run['status']}")


def test_a_supervisor_killed_with_sigkill_fails_the_run_and_stops_its_processes(tmp_path):
    async def main():
        m = RunManager(str(tmp_path / "ws"))
        await m.start()
        try:
            run = await m.submit(SubmitRequest("exp", "linger.py", SCRIPTS))
            await wait_for(m, run["id"], ("Running",))
            rd = m.run_dir(run["id"])
            deadline = time.monotonic() + 20
            while "working" not in (rd.logs / "rank_0.txt").read_text() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            pids = [int(p) for p in (rd.logs / "rank_0.txt").read_text().split("\n")[0].split()[1:]]
            os.kill(rd.read_supervisor_info()["pid"], signal.SIGKILL)
            done = await wait_for(m, run["id"], ("Failed", "Completed", "Canceled"))
            assert done["status"] == "Failed" and "supervisor" in done["error"]
            await asyncio.sleep(0.3)
            assert not any(is_alive(p) for p in pids)
            assert "outputs/partial.txt" in m.file_names(run["id"])
        finally:
            await m.stop()

    asyncio.run(main())


def test_a_lost_database_is_rebuilt_from_the_run_directories(tmp_path):
    ws = tmp_path / "ws"

    async def first():
        m = RunManager(str(ws))
        await m.start()
        try:
            ok = await m.submit(SubmitRequest("exp", "count.py", SCRIPTS, ["--n", 7]))
            bad = await m.submit(SubmitRequest("exp", "fail.py", SCRIPTS))
            for r in (ok, bad):
                await wait_for(m, r["id"], ("Completed", "Failed"))
            await asyncio.sleep(0.2)
            return ok["id"], bad["id"]
        finally:
            await m.stop()

    ok_id, bad_id = asyncio.run(first())
    for suffix in ("", "-wal", "-shm"):
        p = ws / f"train.db{suffix}"
        if p.exists():
            p.unlink()

    async def second():
        m = RunManager(str(ws))
        await m.start()
        try:
            ok = await wait_for(m, ok_id, ("Completed",))
            bad = await wait_for(m, bad_id, ("Failed",))
            await asyncio.sleep(0.3)  # the tailer re-ingests the metrics files once
            loss = [x for x in m.metrics(ok_id)["items"] if x["name"] == "loss"]
            assert [x["step"] for x in loss] == list(range(7))
            assert "ValueError" in bad["error"]
            assert [p["state"] for p in ok["phases"]][-1] == "Completed"
            assert m.get_run(ok_id)["tags"] == {"finished": "yes"}  # tags logged by the script
        finally:
            await m.stop()

    asyncio.run(second())
