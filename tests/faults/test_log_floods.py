"""Log floods: 200 MB of output, a 50 MB line without a newline, binary output. The server (a
headless one, so its memory is its own) keeps answering REST while it streams, its peak memory
stays bounded, the WebSocket delivers everything in bounded messages with no byte missing or
sent twice, REST reads the log in bounded chunks, and the run completes. ``lost`` counts bytes
missing or duplicated on the stream; a second row per flood counts answers of 500.

The test never holds a flood in memory: it checks offsets and a running hash against the file."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

MiB = 1 << 20
MAX_MESSAGE = 2 * MiB  # what a client may expect one stream message to be at most


def vm_hwm(pid: int) -> int:
    """Peak resident memory of ``pid`` in bytes (Linux)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class Rest:
    def __init__(self, server):
        self.base, self.token = server.url.rstrip("/") + "/train/api/", server.token

    def call(self, method, path, body=None, **query):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read()


class Pinger(threading.Thread):
    """GET /runs/{id} every 20 ms while the stream runs: the slowest answer and any 5xx."""

    def __init__(self, rest, run_id):
        super().__init__(daemon=True)
        self.rest, self.run_id = rest, run_id
        self.stop, self.slowest, self.errors, self.count = threading.Event(), 0.0, 0, 0

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            status, _ = self.rest.call("GET", f"runs/{self.run_id}")
            self.slowest = max(self.slowest, time.monotonic() - t0)
            self.count += 1
            self.errors += status >= 500
            time.sleep(0.02)


def stream_log(server, run_id, name="rank_0.txt") -> dict:
    """Read the run's stream to its end, keeping per-message sizes, the byte ranges of ``name``
    (missing and duplicated bytes) and a hash of its text, not the text itself."""
    import websocket

    url = server.url.replace("http", "ws", 1).rstrip("/") + f"/train/api/runs/{run_id}/stream"
    conn = websocket.create_connection(url, header=[f"Authorization: token {server.token}"],
                                       timeout=120, skip_utf8_validation=True)
    out = {"missing": 0, "duplicated": 0, "next": 0, "largest": 0, "messages": 0,
           "sha": hashlib.sha256(), "end": None}
    t0 = time.monotonic()
    try:
        while out["end"] is None:
            raw = conn.recv()
            out["largest"] = max(out["largest"], len(raw))
            msg = json.loads(raw)
            if msg["type"] == "end":
                out["end"] = msg["status"]
            if msg["type"] != "log" or msg["name"] != name:
                continue
            out["messages"] += 1
            if msg["offset"] > out["next"]:
                out["missing"] += msg["offset"] - out["next"]
            elif msg["offset"] < out["next"]:
                out["duplicated"] += out["next"] - msg["offset"]
            out["next"] = max(out["next"], msg["next_offset"])
            out["sha"].update(msg["text"].encode("utf-8", "surrogatepass"))
    finally:
        conn.close()
    out["seconds"] = time.monotonic() - t0
    return out


def file_sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def rest_read_all(rest, run_id, size, name="rank_0.txt") -> tuple[int, int, int]:
    """Page through the log over REST in 1 MiB chunks: (bytes covered, 5xx answers, pages)."""
    offset, errors, pages = 0, 0, 0
    while offset < size:
        status, chunk = rest.call("GET", f"runs/{run_id}/logs/{name}", offset=offset, limit=MiB)
        pages += 1
        if status != 200:
            errors += status >= 500
            break
        assert chunk["next_offset"] > offset, chunk["offset"]
        offset = chunk["next_offset"]
    return offset, errors, pages


FLOODS = [  # (fault name, mode, MiB, whether the text is the file's bytes decoded)
    ("200 MB of output", "lines", 200, True),
    ("a 50 MB line without a newline", "longline", 50, True),
    ("binary (non-UTF-8) output", "binary", 20, False),
]


@pytest.mark.parametrize("what,mode,mb,is_text", FLOODS, ids=[f[1] for f in FLOODS])
def test_log_flood(headless, workspace_dir, scripts_dir, fault, what, mode, mb, is_text):
    server = headless(workspace_dir)
    rest = Rest(server)
    before = vm_hwm(server.proc.pid)
    status, run = rest.call("POST", "runs", {"experiment": "flood", "source_directory": str(scripts_dir),
                                             "script": "flood.py", "arguments": ["--mode", mode, "--mb", str(mb)]})
    assert status == 201, run
    pinger = Pinger(rest, run["id"])
    pinger.start()
    try:
        got = stream_log(server, run["id"])
    finally:
        pinger.stop.set()
        pinger.join()
    path = f"{run['run_dir']}/logs/rank_0.txt"
    size = mb * (MiB - MiB % 3) if mode == "longline" else mb * MiB  # whole characters a block
    with open(path, "rb") as f:
        assert f.seek(0, 2) == size
    missing = got["missing"] + max(0, size - got["next"])
    lost = missing + got["duplicated"]
    same_text = got["sha"].hexdigest() == file_sha(path) if is_text else True
    covered, rest_errors, pages = rest_read_all(rest, run["id"], size) if mb <= 50 else (size, 0, 0)
    peak = vm_hwm(server.proc.pid)
    status, final = rest.call("GET", f"runs/{run['id']}")
    errors = pinger.errors + rest_errors
    note = (f"{mb} MiB streamed in {got['seconds']:.1f} s, {got['messages']} messages (largest "
            f"{got['largest'] / MiB:.2f} MiB), slowest REST answer {pinger.slowest * 1000:.0f} ms over "
            f"{pinger.count}, server peak RSS {before / MiB:.0f} -> {peak / MiB:.0f} MiB")
    print(f"\n{what}: {note}")
    fault.record(f"log flood: {what}", survived=lost == 0 and same_text and final["status"] == "Completed",
                 lost=lost, unit="bytes", note=note)
    fault.record(f"log flood: {what} (answers of 500)", survived=errors == 0, lost=errors, unit="500s")
    assert (lost, errors) == (0, 0)
    assert same_text, "the stream's text is not the file's"
    assert covered == size, f"REST pages covered {covered} of {size} bytes"
    assert got["end"] == "Completed" and final["status"] == "Completed"
    assert got["largest"] <= MAX_MESSAGE
    assert peak - before < 100 * MiB, note  # bounded: far less than the flood itself
    assert pinger.slowest < 2.0, note  # the server kept answering while it streamed
