"""One containment rule: nothing outside a run (or a model version) is ever served, however a
script plants links: into the run's logs/ and outputs/ while it runs, into its working copy's
outputs/ (which finalize moves), into a folder it registers as a model; nor through '..',
absolute, NUL or percent-encoded paths in any file, log or model-file URL. ``lost`` counts the
bytes served from outside (tests/scripts/plant_links.py plants the links)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest

MARK = b"TOPSECRET:0123456789\n"
SECRET = MARK * 50
PASSWD = Path("/etc/passwd").read_bytes()


def leaked(body) -> int:
    """Bytes of the secret file or of /etc/passwd in ``body``."""
    body = body.encode() if isinstance(body, str) else body or b""
    n = body.count(MARK[:10]) * len(MARK)
    first = PASSWD.split(b"\n", 1)[0]
    return n + (len(PASSWD) if first and first in body else 0)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A secret file and a folder holding one, beside the workspace (outside every run)."""
    d = tmp_path / "outside"
    (d / "dir").mkdir(parents=True)
    (d / "secret.txt").write_bytes(SECRET)
    (d / "dir" / "secret.txt").write_bytes(SECRET)
    return d


async def get_raw(api, path):
    """(status, body bytes) of a GET under /train/api."""
    from tornado.httpclient import HTTPClientError

    try:
        resp = await api.fetch("train", "api", *path.split("/"))
        return resp.code, resp.body
    except HTTPClientError as err:
        return err.code, (err.response.body if err.response else b"")


async def planted_run(api, outside) -> dict:
    run = await api.submit("plant_links.py", ["--secret", str(outside / "secret.txt"),
                                              "--secret-dir", str(outside / "dir")])
    run = await api.wait(run["id"])
    assert run["status"] == "Completed", run
    return run


async def read_stream(jp_ws_fetch, run_id) -> list[dict]:
    ws = await jp_ws_fetch("train", "api", "runs", run_id, "stream")
    messages = []
    while True:
        msg = json.loads(await ws.read_message())
        messages.append(msg)
        if msg["type"] == "end":
            ws.close()
            return messages


async def serve_all(api, prefix, names) -> tuple[int, list]:
    """Bytes leaked over GET prefix/<name> for every name, and any answer of 500."""
    lost, errors = 0, []
    for name in names:
        status, body = await get_raw(api, f"{prefix}/{name}")
        lost += leaked(body)
        if status >= 500:
            errors.append((name, status))
    return lost, errors


async def test_links_out_of_a_run_are_never_followed(api, jp_ws_fetch, outside, fault):
    run = await planted_run(api, outside)
    rid = run["id"]
    # the WebSocket stream: logs/x.txt -> /etc/passwd, logs/secret.txt, logs/dir/ -> a folder
    messages = await read_stream(jp_ws_fetch, rid)
    logs_sent = [m for m in messages if m["type"] == "log"]
    lost = sum(leaked(m["text"]) for m in logs_sent)
    fault.record("link in logs/ to /etc/passwd, a file, a folder: stream", survived=lost == 0,
                 lost=lost, unit="bytes")
    assert "planted" in "".join(m["text"] for m in logs_sent if m["name"] == "rank_0.txt")
    assert lost == 0

    # REST logs: the listing and every name, listed or planted
    listing = await api.call("GET", f"runs/{rid}/logs")
    names = [e["name"] for e in listing["logs"]]
    lost, errors = await serve_all(api, f"runs/{rid}/logs", names + [
        "x.txt", "secret.txt", "dir/secret.txt", "user/user_secret.txt", "pipe.txt"])
    fault.record("link in logs/ to /etc/passwd, a file, a folder: REST logs", survived=lost == 0,
                 lost=lost, unit="bytes")
    assert (lost, errors) == (0, [])

    # REST files: outputs/leak.txt -> a file, outputs/leakdir -> a folder, planted while running
    files = await api.call("GET", f"runs/{rid}/files")
    lost, errors = await serve_all(api, f"runs/{rid}/files", files["files"] + [
        "outputs/leak.txt", "outputs/leakdir/secret.txt", "logs/x.txt", "logs/dir/secret.txt"])
    fault.record("link in outputs/ to a file, a folder: REST files", survived=lost == 0,
                 lost=lost, unit="bytes")
    assert (lost, errors) == (0, [])

    # links the script left in its working copy's outputs/, which finalize moved
    lost, errors = await serve_all(api, f"runs/{rid}/files", [
        "outputs/moved.txt", "outputs/moveddir/secret.txt", "logs/user/user_secret.txt"])
    fault.record("link in the working copy's outputs/, moved by finalize", survived=lost == 0,
                 lost=lost, unit="bytes")
    assert (lost, errors) == (0, [])

    # what stays inside the history is served; a link to elsewhere in the run is not
    assert await get_raw(api, f"runs/{rid}/files/outputs/alias.txt") == (200, b"real\n")
    assert (await get_raw(api, f"runs/{rid}/files/outputs/spec.json"))[0] in (400, 403)
    assert "outputs/alias.txt" in files["files"] and "outputs/real.txt" in files["files"]
    # and the user is told which links were left out: in the listings and in supervisor.txt
    skipped = {s["name"] for s in files["skipped"]}
    assert {"outputs/leak.txt", "outputs/leakdir", "outputs/moved.txt", "outputs/moveddir",
            "outputs/spec.json", "logs/x.txt", "logs/dir", "logs/pipe.txt"} <= skipped
    assert {"x.txt", "secret.txt", "dir", "pipe.txt"} <= {s["name"] for s in listing["skipped"]}
    note = (await api.call("GET", f"runs/{rid}/logs/supervisor.txt"))["text"]
    assert "outputs/leak.txt" in note and "logs/x.txt" in note and "not served" in note
    err = await api.call("GET", f"runs/{rid}/files/outputs/leak.txt", expect=403)
    assert err["error_code"] == "path_escapes" and "link" in err["message"]


async def test_a_model_never_takes_or_serves_files_from_outside(api, outside, workspace_dir, fault):
    run = await planted_run(api, outside)
    model = await api.call("POST", "models", {"name": "m", "run_id": run["id"], "path": "outputs"},
                           expect=201)
    version_dir = workspace_dir / "models" / "m" / str(model["version"])
    stored = 0
    for folder, _dirs, names in os.walk(version_dir):
        for n in names:
            p = Path(folder) / n
            if p.is_file() and not p.is_symlink():
                stored += leaked(p.read_bytes())
    lost, errors = await serve_all(api, f"models/m/{model['version']}/files", model["files"] + [
        "outputs/leak.txt", "outputs/moved.txt", "outputs/model/stolen.bin",
        "outputs/model/relative.bin", "outputs/leakdir/secret.txt"])
    fault.record("register_model of a folder with links out", survived=stored + lost == 0,
                 lost=stored + lost, unit="bytes")
    assert (stored, lost, errors) == (0, 0, [])
    assert "outputs/model/weights.bin" in model["files"] and "outputs/alias.txt" in model["files"]
    assert {"outputs/leak.txt", "outputs/model/stolen.bin", "outputs/model/relative.bin"} <= \
        {s["name"] for s in model["skipped"]}
    # a link planted in a stored version afterwards is not served either
    os.symlink(outside / "secret.txt", version_dir / "outputs" / "planted.txt")
    os.symlink(outside / "dir", version_dir / "outputs" / "planted_dir")
    lost, errors = await serve_all(api, f"models/m/{model['version']}/files",
                                   ["outputs/planted.txt", "outputs/planted_dir/secret.txt"])
    listed = (await api.call("GET", f"models/m/{model['version']}"))["files"]
    fault.record("link planted in a stored model version", survived=lost == 0, lost=lost, unit="bytes")
    assert (lost, errors) == (0, []) and "outputs/planted.txt" not in listed
    # naming the link itself: refused with the reason
    err = await api.call("POST", "models", {"name": "m2", "run_id": run["id"], "path": "outputs/leak.txt"},
                         expect=403)
    assert err["error_code"] == "path_escapes"
    # a local folder is its own tree: a link inside it that leads out of it is skipped too
    local = outside.parent / "local_model"
    (local / "sub").mkdir(parents=True)
    (local / "w.bin").write_bytes(b"w")
    (local / "sub" / "same.bin").symlink_to("../w.bin")
    (local / "stolen.bin").symlink_to(outside / "secret.txt")
    m3 = await api.call("POST", "models", {"name": "local", "path": str(local)}, expect=201)
    stored = sum(leaked(p.read_bytes()) for p in (workspace_dir / "models" / "local" / "1").rglob("*")
                 if p.is_file())
    fault.record("register_model of a local folder with links out", survived=stored == 0, lost=stored,
                 unit="bytes")
    assert stored == 0 and m3["files"] == ["local_model/sub/same.bin", "local_model/w.bin"]
    assert [s["name"] for s in m3["skipped"]] == ["local_model/stolen.bin"]


async def test_a_failed_runs_error_never_quotes_a_file_outside(api, outside, fault):
    """The run's error quotes the last line of its log (and, distributed, the first rank's
    error file): a script that swaps those for links to the outside gets nothing of it."""
    (outside / "secret.json").write_text(json.dumps({"rank": 0, "ts": 0, "message": SECRET.decode()}))
    run = await api.submit("fail_through_link.py", ["--secret", str(outside / "secret.txt"),
                                                    "--secret-json", str(outside / "secret.json")])
    run = await api.wait(run["id"])
    lost = leaked(json.dumps(run))
    fault.record("a failed run's error quotes its log, swapped for a link", survived=lost == 0,
                 lost=lost, unit="bytes")
    assert run["status"] == "Failed" and lost == 0, run["error"]
    assert "exited with code 3" in run["error"]


def bad_paths(secret: Path) -> list[str]:
    """Raw (already URL-encoded) path tails that must never reach ``secret`` or /etc/passwd."""
    up = "../" * 12 + str(secret).lstrip("/")
    return [
        up, "outputs/" + up, quote(up, safe=""), up.replace("..", "%2e%2e"), up.replace("/", "%2F"),
        quote(quote(up, safe=""), safe=""), up.replace("/", "\\"), up.replace("/", "%5C"),
        "/" + str(secret), quote(str(secret), safe=""), "%2Fetc%2Fpasswd", "/etc/passwd",
        "outputs/real.txt%00", "outputs%00/" + up, "%00", "outputs/./" + up, "outputs//" + up,
        "outputs/real.txt/" + up, "..", "%2e%2e", ".", "outputs/..", "logs/../../" + up,
        "outputs/%ff%fe", "~root/.bashrc",
    ]


async def test_bad_paths_in_every_file_url(api, outside, http_server_client,
                                           jp_base_url, jp_auth_header, fault):
    from tornado.httpclient import HTTPClientError

    run = await planted_run(api, outside)
    model = await api.call("POST", "models", {"name": "m", "run_id": run["id"], "path": "outputs/real.txt"},
                           expect=201)
    prefixes = {"run files": f"runs/{run['id']}/files/", "run logs": f"runs/{run['id']}/logs/",
                "model files": f"models/m/{model['version']}/files/"}
    tails = bad_paths(outside / "secret.txt")
    for what, prefix in prefixes.items():
        lost, errors = 0, []
        for tail in tails:
            url = f"{jp_base_url}train/api/{prefix}{tail}"  # the client adds the host
            try:
                resp = await http_server_client.fetch(url, headers=jp_auth_header, raise_error=False)
            except HTTPClientError as err:  # pragma: no cover - raise_error=False answers instead
                resp = err.response
            lost += leaked(resp.body)
            if resp.code >= 500:
                errors.append((tail, resp.code))
            elif resp.code >= 400 and resp.body.startswith(b"{"):
                assert set(json.loads(resp.body)) >= {"error_code", "message"}, (tail, resp.body)
        fault.record(f"'..', absolute, NUL, encoded paths: {what}", survived=lost == 0 and not errors,
                     lost=lost, unit="bytes", note=f"{len(tails)} paths")
        assert (lost, errors) == (0, []), what


def test_files_from_a_node_never_lead_out(tmp_path, outside, fault):
    """transfer.py, the copies from nodes that do not share this filesystem (Docker through a
    volume, Ray): a tar whose members are links, hard links, devices, '..' or absolute names
    writes nothing outside its destination and no link; reading a node's new log lines never
    follows a link out of its run folder."""
    import io
    import tarfile

    from jupyter_ext.launcher import transfer

    def member(name, kind=tarfile.REGTYPE, data=b"", link=""):
        info = tarfile.TarInfo(name)
        info.type, info.size, info.linkname, info.mode = kind, len(data), link, 0o644
        return info, io.BytesIO(data) if data else None

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in [member("outputs/ok.txt", data=b"ok\n"),
                           member("outputs/link.txt", tarfile.SYMTYPE, link=str(outside / "secret.txt")),
                           member("outputs/hard.txt", tarfile.LNKTYPE, link=str(outside / "secret.txt").lstrip("/")),
                           member("outputs/dev", tarfile.CHRTYPE),
                           member("../escape.txt", data=b"escaped\n"),
                           member(str(outside / "abs.txt"), data=b"escaped\n"),
                           member("outputs/planted/x.txt", data=b"escaped\n")]:
            tar.addfile(info, data)
    dest = tmp_path / "host_run"
    (dest / "outputs").mkdir(parents=True)
    (dest / "outputs" / "planted").symlink_to(outside / "dir")  # a link already on this host
    before = sorted(p.name for p in outside.rglob("*"))
    written = transfer.unpack(buf.getvalue(), dest)
    made = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    links = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_symlink())
    outside_changed = sorted(p.name for p in outside.rglob("*")) != before or (tmp_path / "escape.txt").exists()

    node = tmp_path / "node_run"
    (node / "logs").mkdir(parents=True)
    (node / "logs" / "rank_0.txt").write_bytes(b"line\n")
    (node / "logs" / "x.txt").symlink_to(outside / "secret.txt")
    (node / "logs" / "dir").symlink_to(outside / "dir")
    (node / "metrics").symlink_to(outside / "dir")
    chunks = transfer.read_new(node, ("logs", "metrics"), {}, final=True)
    lost = sum(leaked(d) for d in chunks.values()) + sum(leaked((dest / m).read_bytes()) for m in made)
    fault.record("files from a node: tar links, '..', absolute; links on the node", survived=lost == 0
                 and not outside_changed, lost=lost, unit="bytes")
    assert lost == 0 and not outside_changed
    assert (written, made, links) == (1, ["outputs/ok.txt"], ["outputs/planted"])
    assert chunks == {"logs/rank_0.txt": b"line\n"}


def test_a_folder_or_file_swapped_for_a_link_during_reads_never_leads_out(tmp_path, outside, fault):
    """Time of check, time of use: while a thread keeps swapping outputs/sub (a folder) and
    outputs/f.txt (a file) for links to the outside, listing and reading under the rule
    (paths.Tree, the one every reader uses) never returns a byte from outside."""
    import threading
    import time

    from jupyter_ext.errors import TrainError
    from jupyter_ext.paths import Tree

    out = tmp_path / "run" / "outputs"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "secret.txt").write_bytes(b"inside\n")
    (out / "f.txt").write_bytes(b"inside\n")
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            os.rename(out / "sub", out / "sub.real")
            os.symlink(outside / "dir", out / "sub")
            os.rename(out / "f.txt", out / "f.real")
            os.symlink(outside / "secret.txt", out / "f.txt")
            os.unlink(out / "sub")
            os.rename(out / "sub.real", out / "sub")
            os.unlink(out / "f.txt")
            os.rename(out / "f.real", out / "f.txt")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    lost = reads = 0
    deadline = time.monotonic() + 1.0
    try:
        while time.monotonic() < deadline:
            with Tree(tmp_path / "run", within=("outputs",)) as tree:
                names = [n for n, _ in tree.list("outputs").files] + ["outputs/sub/secret.txt", "outputs/f.txt"]
                for name in names:
                    try:
                        with tree.open(name) as f:
                            lost += leaked(f.read())
                            reads += 1
                    except TrainError:
                        continue
    finally:
        stop.set()
        swapper.join()
    fault.record("a folder or file swapped for a link during reads", survived=lost == 0, lost=lost,
                 unit="bytes", note=f"{reads} reads")
    assert lost == 0 and reads > 100
