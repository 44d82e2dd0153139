"""Metrics over REST and the stream: every point by cursor (point objects or columns, of one
metric or all), the downsampled series for charts, a stream without points or logs for a
client that only waits; and the store: a workspace from before chunks opens with its points."""

from __future__ import annotations

import json
import sqlite3

from jupyter_ext.runs.ingest import parse_metric_lines
from jupyter_ext.store import SQLiteStore


async def test_points_by_name_and_as_columns_and_the_downsampled_series(api):
    run = await api.wait((await api.submit("count.py", ["--n", 40]))["id"])
    rid = run["id"]
    every = (await api.call("GET", f"runs/{rid}/metrics", limit=100000))["items"]
    loss = (await api.call("GET", f"runs/{rid}/metrics", name="loss", rank=0))["items"]
    assert loss == [m for m in every if m["name"] == "loss"] and len(loss) == 40
    assert [m["step"] for m in loss] == list(range(40))
    page = await api.call("GET", f"runs/{rid}/metrics", name="loss", cursor=loss[9]["id"], limit=5)
    assert page["items"] == loss[10:15] and page["cursor"] == loss[14]["id"]
    cols = await api.call("GET", f"runs/{rid}/metrics", format="columns", limit=100000)
    assert [dict(zip(cols["columns"], row)) for row in zip(*cols["columns"].values())] == every
    assert cols["cursor"] == every[-1]["id"]
    one = await api.call("GET", f"runs/{rid}/metrics", format="columns", name="loss",
                         cursor=loss[9]["id"], limit=5)  # one series: straight from its arrays
    assert [dict(zip(one["columns"], row)) for row in zip(*one["columns"].values())] == loss[10:15]
    assert one["cursor"] == loss[14]["id"]
    empty = await api.call("GET", f"runs/{rid}/metrics", format="columns", cursor=every[-1]["id"])
    assert empty["columns"]["id"] == [] and empty["cursor"] == every[-1]["id"]
    assert (await api.call("GET", f"runs/{rid}/metrics", name="nope"))["items"] == []

    view = await api.call("GET", f"runs/{rid}/metrics/series", points=10)
    by_name = {s["name"]: s for s in view["series"]}
    assert view["cursor"] == every[-1]["id"]
    s = by_name["loss"]
    assert (s["count"], s["numeric"], s["downsampled"]) == (40, 40, True)
    ys = [p[1] for p in s["points"]]
    assert len(ys) <= 12 and max(ys) == 1.0 and min(ys) == 1 / 40  # the extremes stay
    assert s["points"][0] == [0, 1.0] and s["points"][-1] == [39, 1 / 40]
    assert s["last"] == {"value": 1 / 40, "step": 39}
    whole = (await api.call("GET", f"runs/{rid}/metrics/series", name="loss", points=100))["series"]
    assert [s["name"] for s in whole] == ["loss"] and not whole[0]["downsampled"]
    assert whole[0]["points"] == [[m["step"], m["value"]] for m in loss]
    summaries = (await api.call("GET", f"runs/{rid}/metrics/series", points=0))["series"]
    assert {s["name"]: s["count"] for s in summaries} == {"n": 1, "loss": 40}
    assert all(s["points"] == [] for s in summaries)

    for bad in ({"format": "csv"}, {"points": -1}, {"points": "x"}, {"rank": "a"}):
        path = "metrics/series" if "points" in bad else "metrics"
        err = await api.call("GET", f"runs/{rid}/{path}", expect=400, **bad)
        assert err["error_code"] == "invalid_request"
    await api.call("GET", "runs/nope/metrics/series", expect=404)


async def test_a_stream_without_points_or_logs_sends_status_and_the_end(jp_ws_fetch, api):
    run = await api.wait((await api.submit("count.py", ["--n", 5]))["id"])
    ws = await jp_ws_fetch("train", "api", "runs", run["id"], "stream",
                           params={"metrics": "0", "output": "0"})
    kinds = []
    while True:
        msg = json.loads(await ws.read_message())
        kinds.append(msg["type"])
        if msg["type"] == "end":
            break
    ws.close()
    assert set(kinds) == {"status", "end"} and kinds[-1] == "end"
    ws = await jp_ws_fetch("train", "api", "runs", run["id"], "stream", params={"output": "0"})
    points = []
    while (msg := json.loads(await ws.read_message()))["type"] != "end":
        assert msg["type"] != "log"
        points += msg.get("items", [])
    ws.close()
    assert [p["value"] for p in points if p["name"] == "loss"] == [1 / (i + 1) for i in range(5)]


OLD_METRICS = """
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, rank INTEGER NOT NULL,
    name TEXT NOT NULL, step INTEGER, value REAL, text TEXT, ts REAL);
CREATE INDEX metrics_by_run ON metrics (run_id, id);
CREATE INDEX metrics_by_name ON metrics (run_id, name, id);
"""


def test_a_workspace_from_before_chunks_keeps_its_points_and_cursors(tmp_path):
    db = tmp_path / "train.db"
    old = sqlite3.connect(db)
    old.executescript(OLD_METRICS)
    rows = [("a", 0, "loss", i, 1.0 / (i + 1), None, 100.0 + i) for i in range(600)]
    rows += [("a", 1, "loss", 0, 9.0, None, 1.0), ("a", 0, "note", None, None, "hi", None),
             ("b", 0, "acc", 3, 0.5, None, None)]
    rows.insert(300, ("b", 0, "acc", 1, 0.25, None, 2.0))  # runs interleaved, as ingested
    old.executemany("INSERT INTO metrics (run_id, rank, name, step, value, text, ts) VALUES (?,?,?,?,?,?,?)", rows)
    old.commit()
    before = {r[0]: [dict(zip(("id", "rank", "name", "step", "value", "text", "ts"), x))
                     for x in old.execute("SELECT id, rank, name, step, value, text, ts FROM metrics "
                                          "WHERE run_id = ? ORDER BY id", (r[0],))]
              for r in old.execute("SELECT DISTINCT run_id FROM metrics").fetchall()}
    old.close()

    store = SQLiteStore(str(db))  # opening migrates
    for run_id, points in before.items():
        store.insert_run({"id": run_id, "experiment": "e", "status": "Completed", "created_at": 1.0})
        want = [{"id": p["id"], "rank": p["rank"], "name": p["name"], "step": p["step"],
                 "value": p["text"] if p["text"] is not None else p["value"], "ts": p["ts"]} for p in points]
        assert store.metrics_since(run_id, 0, 10**6) == want
        half = len(want) // 2
        assert store.metrics_since(run_id, want[half]["id"], 10**6) == want[half + 1:]
    assert not {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")} & {"metrics"}
    assert store.get_run("a")["primary_metric"] == {"name": "loss", "value": 1 / 600, "step": 599}
    # new points get cursors after the old ones
    rows, _, _ = parse_metric_lines(b'{"k":"m","n":"loss","v":0.5,"s":600}\n')
    store.ingest_metrics("a", "rank_0.jsonl", 0, rows, {}, 10)
    last = store.metrics_since("a", 0, 10**6)[-1]
    assert last["id"] > max(p["id"] for ps in before.values() for p in ps) and last["step"] == 600
    store.close()
    assert SQLiteStore(str(db)).metrics_since("a", 0, 10**6)[-1] == last  # and it opens again


def test_ingest_keeps_every_line_order_and_summary_across_batches(tmp_path):
    store = SQLiteStore(str(tmp_path / "db"))
    store.insert_run({"id": "r", "experiment": "e", "status": "Running", "created_at": 1.0})
    lines = []
    for i in range(1000):  # two series interleaved, a text value, points without a step
        lines.append({"k": "m", "n": "loss", "v": 1.0 / (i + 1), "s": i, "t": float(i)})
        if i % 3 == 0:
            lines.append({"k": "m", "n": "acc", "v": i if i % 9 else "skip", "t": None})
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    cut = data.index(b"\n", len(data) // 2) + 1
    for part, off in ((data[:cut], cut), (data[cut:], len(data))):
        rows, tags, problems = parse_metric_lines(part)
        assert not problems
        store.ingest_metrics("r", "rank_0.jsonl", 0, rows, tags, off)
    got = store.metrics_since("r", 0, 10**6)
    assert [(g["name"], g["value"]) for g in got] == [(x["n"], x["v"]) for x in lines]
    assert [g["id"] for g in got] == list(range(got[0]["id"], got[0]["id"] + len(lines)))
    acc = [g for g in got if g["name"] == "acc"]
    assert [g["step"] for g in acc] == [None] * len(acc)
    view = {s["name"]: s for s in store.metric_view("r", 10000)["series"]}
    numeric_acc = [(i, g["value"]) for i, g in enumerate(acc) if not isinstance(g["value"], str)]
    assert view["acc"]["points"] == [list(p) for p in numeric_acc]  # x: the position in the series
    assert (view["acc"]["count"], view["acc"]["numeric"]) == (len(acc), len(numeric_acc))
    assert view["acc"]["last"] == {"value": acc[-1]["value"], "step": None}
    assert store.tail_offsets("r") == {"rank_0.jsonl": len(data)}


def test_views_of_long_series_keep_their_extremes_whichever_path_draws_them(tmp_path, monkeypatch):
    from jupyter_ext.store import metric_chunks

    store = SQLiteStore(str(tmp_path / "db"))
    store.insert_run({"id": "r", "experiment": "e", "status": "Running", "created_at": 1.0})
    n = 20_000
    values = [((i * 7919) % 1009) / 1009 for i in range(n)]
    values[4321], values[15000] = -3.0, 4.0
    rows = [("up", i, v, None, None) for i, v in enumerate(values)]
    rows += [("down", n - i, v, None, None) for i, v in enumerate(values)]  # steps run backwards
    store.ingest_metrics("r", "rank_0.jsonl", 0, rows, {}, 1)

    def check(view, name, extremes_at):
        s = next(s for s in view["series"] if s["name"] == name)
        xs, ys = [p[0] for p in s["points"]], [p[1] for p in s["points"]]
        assert s["downsampled"] and len(ys) <= 102 and xs == sorted(xs)
        assert (min(ys), max(ys)) == (-3.0, 4.0)
        assert [xs[ys.index(-3.0)], xs[ys.index(4.0)]] == extremes_at

    exact = store.metric_view("r", 100)
    check(exact, "up", [4321, 15000])
    check(exact, "down", [n - 4321, n - 15000])
    monkeypatch.setattr(metric_chunks, "EXACT_MAX_POINTS", 1000)  # from the chunk summaries
    rolled = store.metric_view("r", 60)
    check(rolled, "up", [4321, 15000])
    check(rolled, "down", [n - 4321, n - 15000])


def test_views_with_times_carry_each_kept_points_own_time(tmp_path):
    """times=1 (a chart over wall time): [x, value, time] where the time is the very point's,
    through text points left out, steps logged backwards and the bucketed path."""
    store = SQLiteStore(str(tmp_path / "db"))
    store.insert_run({"id": "r", "experiment": "e", "status": "Running", "created_at": 1.0})
    n = 5000
    rows = [("down", n - i, float((i * 31) % 97), None, 1000.0 + i) for i in range(n)]
    rows += [("mixed", i, None if i % 4 == 0 else float(i), "text" if i % 4 == 0 else None,
              None if i % 5 == 0 else 2000.0 + i) for i in range(40)]
    store.ingest_metrics("r", "rank_0.jsonl", 0, rows, {}, 1)
    logged = {(name, step, value): t for name, step, value, _text, t in rows}
    timed = {s["name"]: s for s in store.metric_view("r", 100, times=True)["series"]}
    plain = {s["name"]: s for s in store.metric_view("r", 100)["series"]}
    down = timed["down"]["points"]
    assert timed["down"]["downsampled"] and [p[:2] for p in down] == plain["down"]["points"]
    assert all(t == logged[("down", x, v)] for x, v, t in down) and len(down) > 50
    assert timed["mixed"]["points"] == [[i, float(i), None if i % 5 == 0 else 2000.0 + i]
                                        for i in range(40) if i % 4]
    assert all(len(p) == 2 for p in plain["mixed"]["points"])  # the plain view is unchanged


async def test_series_over_rest_take_times_and_refuse_a_bad_flag(api):
    run = await api.wait((await api.submit("count.py", ["--n", 3]))["id"])
    view = await api.call("GET", f"runs/{run['id']}/metrics/series", times=1, name="loss")
    (loss,) = view["series"]
    assert [len(p) for p in loss["points"]] == [3, 3, 3]
    ts = [p[2] for p in loss["points"]]
    assert ts == sorted(ts) and run["created_at"] <= ts[0] <= (run["ended_at"] or ts[-1])
    err = await api.call("GET", f"runs/{run['id']}/metrics/series", times="yes", expect=400)
    assert "times='yes'" in err["message"]


async def test_a_metrics_file_that_is_a_link_out_of_the_run_is_not_read(api, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"k":"m","n":"secret","v":1.0,"s":0,"t":1.0}\n' * 3)
    script = ("import os\nfrom kernel_lib.tracking import Run\nrun = Run.get_context()\n"
              "run.log('loss', 0.5)\nrun.flush()\n"
              f"os.symlink({str(outside)!r}, os.path.join(os.environ['JUPYTER_TRAIN_METRICS_DIR'], "
              "'rank_7.jsonl'))\n")
    run = await api.call("POST", "runs", {"experiment": "exp", "script": "links.py",
                                          "extra_files": {"links.py": script}}, expect=201)
    run = await api.wait(run["id"])
    assert run["status"] == "Completed", run.get("error")
    series = (await api.call("GET", f"runs/{run['id']}/metrics/series", points=0))["series"]
    assert [(s["name"], s["rank"], s["count"]) for s in series
            if not s["name"].startswith("system/")] == [("loss", 0, 1)]  # (the node's own figures apart)


def test_parsing_a_batch_keeps_every_good_line_and_only_those():
    def good(i):
        return b'{"k":"m","n":"a","v":%d.5,"s":%d,"t":1.0}\n' % (i, i)

    cases = {  # garbage that a batch decode (one JSON array) would read differently from lines
        "an object across lines swallowing a good one": b'{"k":"m","n":"x","v":1,"z":[{}\n' + good(1)
        + b'{}]}\n' + b'{"k":"m","n":"b","v":1,"s":1},{"k":"m","n":"c","v":1,"s":1}\n',
        "two objects on a line": b'{"k":"m","n":"b","v":1,"s":1}, {"k":"m","n":"c","v":1,"s":1}\n',
        "not an object": b"[1, 2]\n\"text\"\n7\n",
        "bad UTF-8 and binary": b"\xff\xfe\x00\x01\n",
        "blank lines and blanks around": b"\n   \n  " + good(1).rstrip() + b"  \r\n",
        "a truncated record": b'{"k":"m","n":"a","v":\n',
    }
    for what, garbage in cases.items():
        data = good(0) + garbage + good(2)
        rows, _, problems = parse_metric_lines(data)
        steps = [r[1] for r in rows if r[0] == "a"]
        want = [0, 1, 2] if b'"a","v":1.5' in garbage else [0, 2]
        assert steps == want, what
        assert not [r for r in rows if r[0] in ("b", "c", "x")], what  # no line gave two, or half
        assert problems or what.startswith("blank"), what
    rows, _, problems = parse_metric_lines(good(0) + good(1).rstrip())  # the end of a finished file
    assert [r[1] for r in rows] == [0, 1] and not problems
