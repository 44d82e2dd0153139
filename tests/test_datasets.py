"""Datastores and datasets through the SDK against a headless server: upload, immutable
content-hashed versions, download, runs that mount or download a version (and record it), the
host's cache, a missing or changed file, a tabular dataset, and an fsspec store whose
credentials never reach the workspace in plain text."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from kernel_lib import Datastore, Dataset, Experiment, ScriptRunConfig
from kernel_lib.client import TrainError
from tests.conftest import log_of

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


FOWL = {"turkey/1.bin": os.urandom(20_000), "turkey/2.bin": os.urandom(30_000), "chicken/3.txt": b"cluck\n"}


def run_reading(ws, dataset_input, experiment="data", extra=()):
    src = ScriptRunConfig(SCRIPTS, "read_data.py", ["--data", dataset_input, *extra])
    run = Experiment(ws, experiment).submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    return run, details


def seen(ws, run) -> dict:
    return json.loads(Path(ws.path, "runs", run.id, "outputs", "seen.json").read_text())


def test_upload_versions_are_immutable_and_download(ws, tmp_path):
    src = make_files(tmp_path / "fowl_data", FOWL)
    secret = make_files(tmp_path / "private", {"key.txt": b"not for the store"})
    (src / "leak.txt").symlink_to(secret / "key.txt")  # a link out of the folder: never uploaded
    ds = ws.get_default_datastore()
    assert ds.name == "workspaceblobstore" and ds.datastore_type == "workspace"
    ds.upload(src_dir=str(src), target_path="fowl", show_progress=False)
    assert not Path(ws.path, "datastores", "workspaceblobstore", "fowl", "leak.txt").exists()
    with pytest.raises(TrainError, match="not a file inside"):  # asked for anyway: refused whole
        ws.client.post("/datastores/workspaceblobstore/upload",
                       {"source": str(src), "files": ["chicken/3.txt", "leak.txt"], "target_path": "other"})
    assert not Path(ws.path, "datastores", "workspaceblobstore", "other").exists()
    v1 = Dataset.File.from_files(path=(ds, "fowl/**")).register(ws, "fowl", description="birds")
    assert (v1.version, v1._data["files"], v1._data["size"]) == (1, 3, sum(map(len, FOWL.values())))
    assert sorted(v1.to_path()) == sorted("/" + k for k in FOWL)
    with pytest.raises(TrainError, match="create_new_version=True"):
        Dataset.File.from_files(path=(ds, "fowl/**")).register(ws, "fowl")
    same = Dataset.File.from_files(path=(ds, "fowl/**")).register(ws, "fowl", create_new_version=True)
    assert same.version == 1 and same._data["unchanged"]  # same files: no new version

    # a changed file makes a new version; version 1 keeps its bytes (pinned at registration)
    (src / "turkey" / "1.bin").write_bytes(b"new bytes")
    again = ds.upload(src_dir=str(src), target_path="fowl", show_progress=False)
    assert again.path_on_datastore == "fowl"
    kept = Path(ws.path, "datastores", "workspaceblobstore", "fowl", "turkey", "1.bin").read_bytes()
    assert kept == FOWL["turkey/1.bin"]  # upload keeps what is there unless overwrite
    ds.upload(src_dir=str(src), target_path="fowl", overwrite=True, show_progress=False)
    v2 = Dataset.File.from_files(path=(ds, "fowl/**")).register(ws, "fowl", create_new_version=True)
    assert v2.version == 2 and v2._data["checksum"] != v1._data["checksum"]

    old = Dataset.get_by_name(ws, "fowl", version=1).download(str(tmp_path / "v1"), show_progress=False)
    assert len(old) == 3
    assert (tmp_path / "v1" / "turkey" / "1.bin").read_bytes() == FOWL["turkey/1.bin"]
    Dataset.get_by_name(ws, "fowl").download(str(tmp_path / "v2"), show_progress=False)
    assert (tmp_path / "v2" / "turkey" / "1.bin").read_bytes() == b"new bytes"
    with pytest.raises(TrainError, match="already exists"):
        Dataset.get_by_name(ws, "fowl", version=2).download(str(tmp_path / "v2"), show_progress=False)
    assert [d.version for d in Dataset.list_versions(ws, "fowl")] == [1, 2]
    assert ws.datasets["fowl"].version == 2 and "workspaceblobstore" in ws.datastores
    with pytest.raises(TrainError, match="names no file"):
        Dataset.File.from_files(path=(ds, "nothing/**"))

    # a tabular dataset, unregistered: read straight from the store
    make_files(tmp_path / "tables", {"a.csv": b"x,y\n1,2\n3,4\n", "b.csv": b"x,y\n5,6\n"})
    ds.upload(src_dir=str(tmp_path / "tables"), target_path="tables", show_progress=False)
    frame = Dataset.Tabular.from_delimited_files(path=(ds, "tables/*.csv")).to_pandas_dataframe()
    assert list(frame.columns) == ["x", "y"] and frame["x"].tolist() == [1, 3, 5]


def test_runs_mount_or_download_a_version_and_record_it(ws, tmp_path):
    data = make_files(tmp_path / "shared", {f"fowl/{k}": v for k, v in FOWL.items()})
    make_files(data, {"table.csv": b"a,b\n1,2\n3,4\n5,6\n"})
    shared = Datastore.register_local(ws, "shared", path=str(data))
    fowl = Dataset.File.from_files(path=(shared, "fowl/**")).register(ws, "fowl", create_new_version=True)
    want = {k: sha(v) for k, v in FOWL.items()}

    # mount: the folder itself, checked unchanged, nothing copied
    run, details = run_reading(ws, fowl.as_named_input("fowl").as_mount())
    assert details["status"] == "Completed", log_of(run, "prepare.txt") + log_of(run)
    s = seen(ws, run)
    assert s["arg"] == s["input"] == str(data / "fowl") and s["files"] == want
    assert "mounted" in log_of(run, "prepare.txt")

    # download: fetched into this host's cache once, then laid out from it
    first, details = run_reading(ws, fowl.as_named_input("fowl").as_download())
    assert details["status"] == "Completed", log_of(first, "prepare.txt") + log_of(first)
    s = seen(ws, first)
    assert s["arg"] == str(Path(ws.path, "runs", first.id, "inputs", "fowl")) and s["files"] == want
    prepare = log_of(first, "prepare.txt")
    assert "fetching 3" in prepare and "fetched 3 files" in prepare and "from the cache" in prepare
    second, details = run_reading(ws, fowl.as_named_input("fowl").as_download())
    assert details["status"] == "Completed" and seen(ws, second)["files"] == want
    assert "all in this host's cache" in log_of(second, "prepare.txt")

    # each run records the version it used; the dataset lists its runs
    inputs = second.get_details()["properties"]["input_datasets"]
    assert inputs == [{"name": "fowl", "dataset": "fowl", "version": 1, "mode": "download"}]
    assert ws.client.get("/datasets/fowl/1")["runs"] == [run.id, first.id, second.id]

    # a tabular input: run.input_datasets gives an object with to_pandas_dataframe()
    table = Dataset.Tabular.from_delimited_files(path=(shared, "table.csv")).register(ws, "table")
    tab_run, details = run_reading(ws, table.as_named_input("tab").as_download(), extra=["--input", "tab"])
    assert details["status"] == "Completed", log_of(tab_run)
    assert seen(ws, tab_run)["rows"] == 3 and seen(ws, tab_run)["arg"].endswith("table.csv")


def test_a_missing_file_is_refused_before_the_run_exists(ws, tmp_path):
    data = make_files(tmp_path / "store", FOWL)
    store = Datastore.register_local(ws, "store", path=str(data))
    fowl = Dataset.File.from_files(path=(store, "**")).register(ws, "gone")
    (data / "turkey" / "2.bin").unlink()
    for mode in ("as_mount", "as_download"):
        with pytest.raises(TrainError, match=r"gone from datastore 'store'.*turkey/2.bin.*register a new version"):
            Experiment(ws, "missing").submit(ScriptRunConfig(
                SCRIPTS, "read_data.py", ["--data", getattr(fowl.as_named_input("fowl"), mode)()]))
    assert Experiment(ws, "missing").get_runs() == []


def test_a_folder_that_changed_is_downloaded_or_refused_never_silently_different(ws, tmp_path):
    data = make_files(tmp_path / "store", FOWL)
    store = Datastore.register_local(ws, "store", path=str(data))
    fowl = Dataset.File.from_files(path=(store, "**")).register(ws, "fowl")
    want = {k: sha(v) for k, v in FOWL.items()}

    # a file added to the folder: a mount would show it, so version 1 is downloaded instead
    (data / "turkey" / "added.bin").write_bytes(b"not in version 1")
    run, details = run_reading(ws, fowl.as_named_input("fowl").as_mount())
    assert details["status"] == "Completed", log_of(run, "prepare.txt")
    assert seen(ws, run)["files"] == want
    assert "cannot be mounted (1 file(s)" in log_of(run, "prepare.txt") and "downloading it instead" in log_of(run, "prepare.txt")

    # a file changed in place after its bytes reached the cache: the run still reads version 1
    (data / "chicken" / "3.txt").write_bytes(b"quack\n")
    run, details = run_reading(ws, fowl.as_named_input("fowl").as_mount())
    assert details["status"] == "Completed" and seen(ws, run)["files"] == want
    assert "changed since version 1 was registered" in log_of(run, "prepare.txt")

    # a file changed before any run fetched it: refused while Preparing, with what to do
    other = make_files(tmp_path / "other", {"x.bin": b"one"})
    odd = Dataset.File.from_files(path=(Datastore.register_local(ws, "other", path=str(other)), "**")).register(ws, "odd")
    (other / "x.bin").write_bytes(b"two")
    run, details = run_reading(ws, odd.as_named_input("odd").as_download(), extra=["--input", "odd"])
    assert details["status"] == "Failed"
    assert "changed since it was registered" in details["error"] and "register a new version" in details["error"]
    events = Path(ws.path, "runs", run.id, "events.jsonl").read_text().splitlines()
    states = [json.loads(line)["state"] for line in events]
    assert states[-2:] == ["Preparing", "Failed"] and "Starting" not in states  # it never started


def test_an_fsspec_store_keeps_its_credentials_encrypted(ws, tmp_path):
    """A local file:// filesystem stands in for a cloud object store (none is reachable from
    here): the same fsspec calls list, read and hash its files."""
    lake = make_files(tmp_path / "lake", {f"fowl/{k}": v for k, v in FOWL.items()})
    secret = "s3cr3t-" + os.urandom(8).hex()
    store = Datastore.register_fsspec(ws, "lake", url=f"file://{lake}", storage_options={"token": secret})
    assert store.datastore_type == "fsspec"
    shown = ws.client.get("/datastores/lake")
    assert shown["storage_options"] == {"token": "<hidden>"} and secret not in json.dumps(ws.client.get("/datastores"))

    fowl = Dataset.File.from_files(path=(store, "fowl/**")).register(ws, "lakefowl")
    run, details = run_reading(ws, fowl.as_named_input("fowl").as_mount())
    assert details["status"] == "Completed", log_of(run, "prepare.txt") + log_of(run)
    assert seen(ws, run)["files"] == {k: sha(v) for k, v in FOWL.items()}
    assert "is a URL" in log_of(run, "prepare.txt")  # nothing to mount: downloaded, and said so
    got = Dataset.File.from_files(path=(store, "fowl/chicken/*")).download(str(tmp_path / "got"), show_progress=False)
    assert [Path(p).read_bytes() for p in got] == [FOWL["chicken/3.txt"]]  # straight from the store

    # nowhere in the workspace in plain text (database, specs, logs), and the key lives elsewhere
    for path in Path(ws.path).rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), f"the credential is in {path}"
    key = Path(os.environ["JUPYTER_TRAIN_SECRET_FILE"])
    assert key.is_file() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert not str(key.resolve()).startswith(str(Path(ws.path).resolve()))
    with pytest.raises(TrainError, match="cannot be listed|fsspec cannot open"):
        Datastore.register_fsspec(ws, "bad", url="nosuchprotocol://bucket/x")


async def test_an_in_memory_fsspec_store_through_the_api(api, scripts_dir):
    """fsspec's in-memory filesystem stands in for a cloud object store: the server runs in this
    process (pytest-jupyter), so it sees the files written here. Its files have no file
    descriptor; the server serves a copy."""
    import fsspec

    mem = fsspec.filesystem("memory")
    for rel, data in FOWL.items():
        mem.pipe(f"/bucket-{id(api)}/fowl/{rel}", data)
    store = await api.call("POST", "datastores", {"name": "mem", "kind": "fsspec", "url": f"memory://bucket-{id(api)}",
                                                  "storage_options": {"skip_instance_cache": True}}, expect=201)
    assert store["storage_options"] == {"skip_instance_cache": "<hidden>"}
    listed = json.loads((await api.fetch("train", "api", "datastores", "mem", "files",
                                         params={"path": "fowl/turkey/*"})).body)
    assert (listed["base"], sorted(f["path"] for f in listed["files"])) == ("fowl/turkey", ["1.bin", "2.bin"])
    assert await api.call("GET", "datastores/mem/files/fowl/chicken/3.txt") == FOWL["chicken/3.txt"]
    v1 = await api.call("POST", "datasets", {"name": "memfowl", "paths": [{"datastore": "mem", "path": "fowl/**"}]},
                        expect=201)
    assert v1["files"] == 3 and {f["sha256"] for f in v1["file_list"]} == {sha(v) for v in FOWL.values()}
    mem.pipe(f"/bucket-{id(api)}/fowl/chicken/3.txt", b"changed in the store")
    # the version's bytes: refused (changed since registration, never in the cache), not served changed
    await api.call("GET", "datasets/memfowl/1/files/chicken/3.txt", expect=409)
    assert await api.call("GET", "datasets/memfowl/1/files/turkey/1.bin") == FOWL["turkey/1.bin"]


def test_a_server_killed_while_a_run_fetches_its_dataset_resumes_it(headless, workspace_dir, tmp_path):
    """SIGKILL to the server while a run is Preparing (copying 3,000 files into the cache): the
    server that comes back starts the preparation again, reusing what was fetched, and the run
    completes having read every file."""
    from kernel_lib import Workspace

    server = headless(workspace_dir)
    ws = Workspace(workspace_dir)
    files = {f"d{i // 300}/{i}.bin": os.urandom(4000) for i in range(3000)}
    data = make_files(tmp_path / "many", files)
    fowl = Dataset.File.from_files(path=(Datastore.register_local(ws, "many", path=str(data)), "**")).register(ws, "many")
    run = Experiment(ws, "resume").submit(ScriptRunConfig(
        SCRIPTS, "read_data.py", ["--data", fowl.as_named_input("fowl").as_download()]))
    server.kill()
    events = Path(ws.path, "runs", run.id, "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["state"] == "Preparing", "the fetch ended before the kill: make it bigger"
    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    run = ws.get_run(run.id)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", log_of(run, "prepare.txt")[-2000:]
    assert "The server restarted while this run was Preparing" in log_of(run, "prepare.txt")
    assert seen(ws, run)["files"] == {k: sha(v) for k, v in files.items()}


async def test_an_object_key_with_dot_dot_is_refused_not_followed(api):
    """Object stores allow keys such as 'a/../../x' (fsspec's memory filesystem keeps them as
    written, standing in for S3): a dataset naming one is refused, so no download or layout
    can write outside its folder."""
    import fsspec

    mem = fsspec.filesystem("memory")
    root = f"/keys-{id(api)}"
    mem.pipe(f"{root}/ok.txt", b"fine")
    mem.store[f"{root}/sub/../../escape.txt"] = mem.store[f"{root}/ok.txt"]  # a raw key, unnormalised
    await api.call("POST", "datastores", {"name": "keys", "kind": "fsspec", "url": f"memory:/{root}"}, expect=201)
    answer = await api.call("POST", "datasets", {"name": "keys", "paths": [{"datastore": "keys", "path": "**"}]},
                            expect=400)
    assert "not a plain relative path" in answer["message"]


def test_a_run_configs_dataset_inputs_are_checked_before_anything_is_sent(tmp_path):
    """No server: ScriptRunConfig turns inputs into the request's ``datasets`` and placeholders."""
    from kernel_lib.data import FileDataset

    a = FileDataset(None, [], _data={"name": "fowl", "version": 2})
    b = FileDataset(None, [], _data={"name": "other", "version": 1})
    (tmp_path / "t.py").write_text("")
    given = a.as_named_input("fowl").as_download()
    req = ScriptRunConfig(str(tmp_path), "t.py", ["--x", given, "--y", given]).to_request("e", None)
    assert req["arguments"] == ["--x", "DatasetConsumptionConfig:fowl", "--y", "DatasetConsumptionConfig:fowl"]
    assert req["datasets"] == [{"name": "fowl", "dataset": "fowl", "version": 2, "mode": "download"}]
    with pytest.raises(TrainError, match="Two dataset inputs are named 'fowl'"):
        ScriptRunConfig(str(tmp_path), "t.py", [given, b.as_named_input("fowl").as_mount()]).to_request("e", None)
    with pytest.raises(TrainError, match="not registered"):
        ScriptRunConfig(str(tmp_path), "t.py", [FileDataset(None, []).as_named_input("x").as_mount()]).to_request("e", None)
    with pytest.warns(UserWarning, match="path_on_compute"):
        a.as_named_input("fowl").as_mount(path_on_compute="/mnt/x")
