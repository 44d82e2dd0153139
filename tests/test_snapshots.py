"""Content-addressed snapshots: ignore rules, limits, and a resubmit that copies nothing."""

from __future__ import annotations

import os

import pytest

from jupyter_ext.errors import InvalidRequest, SnapshotTooLarge
from jupyter_ext.snapshots import SnapshotStore, walk_source


def files_of(root):
    return [f.rel for f in walk_source(str(root))]


def write(root, rel, text="x"):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_amlignore_wins_over_gitignore_and_nested_files_apply(tmp_path):
    src = tmp_path / "src"
    for rel in ("train.py", "data/big.csv", "data/keep.csv", "ckpt/a.pt", "sub/x.log",
                "sub/y.txt", ".git/HEAD", "notes.md"):
        write(src, rel)
    write(src, ".gitignore", "*.md\n")
    write(src, ".amlignore", "ckpt/\ndata/*.csv\n!data/keep.csv\n")
    write(src, "sub/.gitignore", "*.log\n")
    assert files_of(src) == [".amlignore", ".gitignore", "data/keep.csv", "notes.md", "sub/.gitignore",
                             "sub/y.txt", "train.py"]
    (src / ".amlignore").unlink()
    assert "notes.md" not in files_of(src) and "ckpt/a.pt" in files_of(src)


def test_links_leading_out_of_the_folder_are_not_shipped(tmp_path):
    src = tmp_path / "src"
    write(src, "train.py")
    write(tmp_path, "secret.txt", "s")
    os.symlink(tmp_path / "secret.txt", src / "secret.txt")
    os.symlink(src / "train.py", src / "alias.py")
    assert files_of(src) == ["alias.py", "train.py"]


def test_resubmit_of_an_unchanged_folder_stores_nothing_new(tmp_path):
    src = tmp_path / "src"
    for i in range(50):
        write(src, f"pkg/m{i}.py", f"value = {i}\n")
    store = SnapshotStore(tmp_path / "snaps")
    first = store.take(str(src), 10**9, 2000)
    assert (first.files, first.new_files) == (50, 50)
    again = store.take(str(src), 10**9, 2000)
    assert again.id == first.id and again.new_files == 0 and again.new_bytes == 0
    write(src, "pkg/m3.py", "value = 'changed'\n")
    changed = store.take(str(src), 10**9, 2000)
    assert changed.id != first.id and changed.new_files == 1
    # identical content in two files is stored once
    write(src, "pkg/copy.py", "value = 'changed'\n")
    assert store.take(str(src), 10**9, 2000).new_files == 0
    out = tmp_path / "wd"
    assert store.materialize(changed.id, out) == 50
    assert (out / "pkg" / "m3.py").read_text() == "value = 'changed'\n"
    # the working copy is a copy: changing it does not touch the store
    (out / "pkg" / "m3.py").write_text("scribbled")
    out2 = tmp_path / "wd2"
    store.materialize(changed.id, out2)
    assert (out2 / "pkg" / "m3.py").read_text() == "value = 'changed'\n"


def test_limits_are_checked_before_anything_is_stored(tmp_path):
    src = tmp_path / "src"
    write(src, "train.py")
    (src / "weights.bin").write_bytes(b"0" * 5000)
    store = SnapshotStore(tmp_path / "snaps")
    with pytest.raises(SnapshotTooLarge) as info:
        store.take(str(src), 4000, 100)
    assert "weights.bin" in info.value.message and info.value.details["files"] == 2
    assert not any(p.is_file() for p in (tmp_path / "snaps" / "objects").rglob("*"))
    with pytest.raises(InvalidRequest, match="does not exist"):
        store.take(str(tmp_path / "nope"), 4000, 100)


def test_executable_bit_survives(tmp_path):
    src = tmp_path / "src"
    write(src, "run.sh", "#!/bin/sh\necho hi\n")
    os.chmod(src / "run.sh", 0o755)
    store = SnapshotStore(tmp_path / "snaps")
    snap = store.take(str(src), 10**9, 10)
    store.materialize(snap.id, tmp_path / "wd")
    assert os.access(tmp_path / "wd" / "run.sh", os.X_OK)
