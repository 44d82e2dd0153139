"""The model registry through the SDK against a headless server: registration from a run and
from local files, versions, lineage, checksums, tag filters, download, delete, and identical
files stored once (hard links into models/.objects)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from kernel_lib import Experiment, Model, ScriptRunConfig, Workspace
from kernel_lib.client import TrainError


def objects(ws_dir):
    root = ws_dir / "models" / ".objects"
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_register_versions_lineage_filters_download_delete_dedup(headless, workspace_dir, scripts_dir,
                                                                 tmp_path):
    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    run = Experiment(ws, "reg").submit(ScriptRunConfig(str(scripts_dir), "count.py", arguments=["--n", 3]))
    run.wait_for_completion()

    # from a run: lineage (run, experiment), framework, checksum
    m1 = run.register_model("counter", "outputs/result.txt", tags={"stage": "dev"},
                            model_framework="Custom", model_framework_version="1")
    assert (m1.version, m1.run_id, m1.experiment_name) == (1, run.id, "reg")
    assert (m1.model_framework, m1.model_framework_version) == ("Custom", "1")
    assert m1.checksum.startswith("sha256:") and m1.size == len("counted to 3\n")
    assert m1.id == "counter:1" and m1.created_time is not None

    # from local files: a folder, then the same file again
    folder = tmp_path / "weights"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(os.urandom(50_000))
    (folder / "sub" / "b.txt").write_text("b")
    local = Model.register(ws, str(folder), "weights", tags={"stage": "prod", "team": "cv"},
                           properties={"acc": 0.9}, description="local weights",
                           model_framework="PyTorch")
    assert local.run_id is None and local.experiment_name is None
    assert sorted(local.files) == ["weights/a.bin", "weights/sub/b.txt"]
    m2 = run.register_model("counter", "outputs/result.txt", tags={"stage": "prod"})
    assert m2.version == 2 and m2.checksum == m1.checksum  # same content, same checksum
    again = Model.register(ws, str(folder), "weights-copy")
    assert again.checksum == local.checksum

    # identical files are stored once: result.txt (x2) and the folder (x2) -> 3 objects
    objs = objects(workspace_dir)
    assert len(objs) == 3
    a_bin = next(p for p in objs if p.stat().st_size == 50_000)
    assert a_bin.stat().st_nlink == 3  # the object + weights:1 + weights-copy:1
    assert not os.access(a_bin, os.W_OK) or os.geteuid() == 0  # read-only (root ignores modes)
    assert oct(a_bin.stat().st_mode & 0o777) == "0o444"

    # list: all versions, by name, by tags (key or [key, value]), by property, latest
    assert [m.id for m in Model.list(ws)] == ["counter:1", "counter:2", "weights:1", "weights-copy:1"]
    assert [m.id for m in Model.list(ws, name="counter")] == ["counter:1", "counter:2"]
    assert [m.id for m in Model.list(ws, tags=[["stage", "prod"]])] == ["counter:2", "weights:1"]
    assert [m.id for m in Model.list(ws, tags=["team"])] == ["weights:1"]
    assert [m.id for m in Model.list(ws, tags=["stage", ["team", "cv"]])] == ["weights:1"]
    assert [m.id for m in Model.list(ws, properties=[["acc", "0.9"]])] == ["weights:1"]
    assert [m.id for m in Model.list(ws, latest=True)] == ["counter:2", "weights:1", "weights-copy:1"]
    assert Model(ws, "counter").version == 2 and Model(ws, id="counter:1").tags == {"stage": "dev"}

    # download: files land under the target; no overwrite without exist_ok, nothing half-written
    path = Model(ws, "weights").download(str(tmp_path / "dl"))
    assert path == str(tmp_path / "dl" / "weights")
    assert (tmp_path / "dl" / "weights" / "a.bin").read_bytes() == (folder / "a.bin").read_bytes()
    (tmp_path / "dl" / "weights" / "sub" / "b.txt").write_text("mine")
    with pytest.raises(TrainError, match="already exists"):
        Model(ws, "weights").download(str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "weights" / "sub" / "b.txt").read_text() == "mine"
    Model(ws, "weights").download(str(tmp_path / "dl"), exist_ok=True)
    assert (tmp_path / "dl" / "weights" / "sub" / "b.txt").read_text() == "b"
    assert Model.get_model_path("weights", _workspace=ws) == str(workspace_dir / "models" / "weights" / "1" / "weights")

    # tags change on a version; properties are added, never changed
    m2 = Model(ws, "counter", 2)
    m2.add_tags({"stage": "production", "owner": "me"})
    m2.remove_tags(["owner"])
    assert Model(ws, "counter", 2).tags == {"stage": "production"}
    assert [m.id for m in Model.list(ws, tags=[["stage", "production"]])] == ["counter:2"]
    m2.add_properties({"auc": "0.97"})
    with pytest.raises(TrainError, match="cannot change"):
        m2.add_properties({"auc": "0.99"})
    m2.update(tags={"stage": "archived"}, description="superseded")
    again2 = Model(ws, "counter", 2)
    assert (again2.tags, again2.properties, again2.description) == ({"stage": "archived"}, {"auc": "0.97"},
                                                                    "superseded")

    # delete: shared bytes stay while another version uses them
    assert Model(ws, "weights").delete() == 0  # weights-copy still holds both files
    assert a_bin.exists() and a_bin.stat().st_nlink == 2
    freed = Model(ws, "weights-copy").delete()
    assert freed == 50_001 and not a_bin.exists()
    with pytest.raises(TrainError) as info:
        Model(ws, "weights")
    assert info.value.code == "not_found"
    Model(ws, "counter", 2).delete()
    assert len(objects(workspace_dir)) == 1  # counter:1 still holds result.txt
    assert not (workspace_dir / "models" / "counter" / "2").exists()
    # a deleted version's number is never given again
    assert run.register_model("counter", "outputs/result.txt").version == 3


def test_registration_errors_are_clear_and_leave_nothing(headless, workspace_dir, tmp_path):
    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    with pytest.raises(TrainError, match="does not exist"):
        Model.register(ws, str(tmp_path / "nope.pt"), "m")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(TrainError, match="Model name"):
        Model.register(ws, str(tmp_path / "m.pt"), "bad name!")
    with pytest.raises(TrainError, match="use a key, or a \\[key, value\\] pair"):
        Model.list(ws, tags=[["a", "b", "c"]])
    assert Model.list(ws) == []
    assert [p.name for p in (workspace_dir / "models").iterdir() if not p.name.startswith(".")] == []


def test_an_older_workspace_database_gains_the_new_model_columns(tmp_path):
    """A workspace written before lineage and checksums existed opens and keeps its models."""
    from jupyter_ext.store import SQLiteStore

    db = tmp_path / "train.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE models (name TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT, path TEXT NOT NULL,"
        " source_path TEXT, tags TEXT NOT NULL DEFAULT '{}', properties TEXT NOT NULL DEFAULT '{}',"
        " description TEXT, created_at REAL NOT NULL, PRIMARY KEY (name, version));"
        "INSERT INTO models VALUES ('old', 1, NULL, 'm.pt', '/x/m.pt', '{}', '{}', NULL, 1.0);")
    con.commit()
    con.close()
    store = SQLiteStore(str(db))
    [old] = store.list_models()
    assert old["name"] == "old" and old["checksum"] is None and old["experiment"] is None
    assert store.insert_model({"name": "old", "path": "m.pt", "created_at": 2.0}, []) == 2
    store.close()
