"""Content-addressed snapshots: ignore rules, limits, and a resubmit that copies nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def test_many_snapshots_of_the_same_files_taken_at_once_all_succeed(tmp_path):
    """Submissions take snapshots on worker threads: 100 identical ones at once write the same
    manifest and the same stat cache at the same moment (a shared temp name made some fail)."""
    src = tmp_path / "src"
    write(src, "train.py", "print(1)")
    store = SnapshotStore(tmp_path / "store")
    barrier = threading.Barrier(8)

    def take(i):
        barrier.wait()
        if i % 2:
            return store.take(None, 10**6, 10, extra_files={"burst.py": b"print('same')"}).id
        return store.take(str(src), 10**6, 10).id

    for _ in range(5):
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(take, range(8)))
        assert len(set(ids[0::2])) == 1 and len(set(ids[1::2])) == 1
    assert not [p.name for p in (tmp_path / "store").rglob("*.tmp")], "temp files left behind"


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


# -- working copies: a clone or a copy, never a hard link -----------------------------------------

def make_reflink_fs(root: Path) -> Path:
    """XFS with reflink=1 in a sparse file on a loop device (root, xfsprogs); raises with what is
    missing."""
    if os.geteuid() != 0:
        raise RuntimeError("mounting a loop device needs root")
    if shutil.which("mkfs.xfs") is None:
        raise RuntimeError("mkfs.xfs is missing: apt-get install xfsprogs")
    img, mnt = root / "xfs.img", root / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(512 << 20)  # sparse: costs no disk until written
    for argv in (["mkfs.xfs", "-q", "-m", "reflink=1", str(img)], ["mount", "-o", "loop", str(img), str(mnt)]):
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")
    return mnt


@pytest.fixture(scope="module")
def reflink_dir(tmp_path_factory):
    """A folder on a filesystem that clones (needed in CI, where .ci/run installs xfsprogs)."""
    root = tmp_path_factory.mktemp("reflink")
    try:
        mnt = make_reflink_fs(root)
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no reflink-capable filesystem for the clone tests: {exc}")
        pytest.skip(f"no reflink-capable filesystem: {exc}")
    yield mnt
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def object_of(store, snap_id, rel):
    digest = {e[0]: e[1] for e in store.manifest(snap_id)}[rel]
    return store._object_path(digest)


def assert_own_copies(store, snap_id, *trees):
    """Every file of every tree is a file of its own: not the store's object, not another tree's."""
    for rel, digest, _ in store.manifest(snap_id):
        obj = os.stat(store._object_path(digest))
        stats = [os.stat(Path(t) / rel) for t in trees]
        assert all(st.st_nlink == 1 for st in stats), rel
        inodes = {(obj.st_dev, obj.st_ino)} | {(st.st_dev, st.st_ino) for st in stats}
        assert len(inodes) == len(trees) + 1, rel


def snapshot_of(root: Path, files: dict[str, bytes]):
    src = root / "src"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    store = SnapshotStore(root / "snaps")
    return store, store.take(str(src), 10**9, 100)


def test_a_working_copy_is_a_copy_of_its_own_never_a_hard_link(tmp_path):
    big = os.urandom(200_000)  # big enough to be cloned where the filesystem can
    store, snap = snapshot_of(tmp_path, {"train.py": b"print('ok')\n", "pkg/data.txt": b"original",
                                         "pkg/big.bin": big})
    first = store.lay_out(snap.id, tmp_path / "wd1", use_spare=False)
    store.lay_out(snap.id, tmp_path / "wd2", use_spare=False)
    # The test's tmp clones or not (ext4: FICLONE fails and the copy takes over); small files are
    # copied either way; nothing is shared with the store.
    assert (first.files, first.cloned) == (3, 1 if clones(tmp_path) else 0)
    assert first.method == ("clone" if clones(tmp_path) else "copy")
    assert (tmp_path / "wd1" / "pkg" / "big.bin").read_bytes() == big
    assert_own_copies(store, snap.id, tmp_path / "wd1", tmp_path / "wd2")
    with open(tmp_path / "wd1" / "pkg" / "data.txt", "r+b") as f:  # a script writing in place
        f.write(b"SCRIBBLE")
    assert object_of(store, snap.id, "pkg/data.txt").read_bytes() == b"original"
    assert (tmp_path / "wd2" / "pkg" / "data.txt").read_bytes() == b"original"


def test_working_copies_are_clones_on_a_reflink_filesystem(reflink_dir):
    root = Path(tempfile.mkdtemp(dir=reflink_dir))
    big = os.urandom(1 << 20) * 32  # 32 MiB
    store, snap = snapshot_of(root, {"weights.bin": big, "train.py": b"print('ok')\n"})
    free_before = shutil.disk_usage(reflink_dir).free
    trees = [root / f"wd{i}" for i in range(4)]
    layouts = [store.lay_out(snap.id, t, use_spare=False) for t in trees]
    assert {(lay.method, lay.cloned) for lay in layouts} == {("clone", 1)}  # train.py: copied
    # four 32 MiB working copies took (almost) no space: the blocks are shared until written
    assert free_before - shutil.disk_usage(reflink_dir).free < 8 << 20
    assert_own_copies(store, snap.id, *trees)
    with open(trees[0] / "weights.bin", "r+b") as f:
        f.write(b"\0" * 4096)  # copy-on-write: only this copy changes
    assert object_of(store, snap.id, "weights.bin").read_bytes() == big
    assert all((t / "weights.bin").read_bytes() == big for t in trees[1:])


def clones(path: Path) -> bool:
    from jupyter_ext.worktree import clone_file

    a, b = path / ".probe-a", path / ".probe-b"
    a.write_bytes(b"x")
    try:
        return clone_file(str(a), str(b)) == "clone"
    finally:
        a.unlink()
        b.unlink(missing_ok=True)


def test_copy_falls_back_from_kernel_copies_to_read_and_write(tmp_path):
    # A pipe: copy_file_range and sendfile both refuse it (EINVAL), so read/write copies it.
    from jupyter_ext.worktree import copy_fd

    data = os.urandom(300_000)
    r, w = os.pipe()
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        with ThreadPoolExecutor(1) as pool:
            writer = pool.submit(lambda: (os.write(w, data), os.close(w)))
            assert copy_fd(r, out) == len(data)
            writer.result()
    finally:
        os.close(r)
        os.close(out)
    assert (tmp_path / "out").read_bytes() == data


def test_a_resubmit_gets_the_spare_copy_and_it_is_its_own(tmp_path):
    store, snap = snapshot_of(tmp_path, {"train.py": b"print('ok')\n", "pkg/data.txt": b"original"})
    os.chmod(tmp_path / "src" / "train.py", 0o755)
    snap = store.take(str(tmp_path / "src"), 10**9, 100)
    assert store.lay_out(snap.id, tmp_path / "wd1").method in ("clone", "copy")  # no spare yet
    (tmp_path / "wd1" / "pkg" / "data.txt").write_bytes(b"run 1 wrote this")
    assert store.restock(snap.id, tmp_path) is True
    assert store.restock(snap.id, tmp_path) is False  # one spare per snapshot
    second = store.lay_out(snap.id, tmp_path / "wd2")
    assert second.method == "spare"
    assert (tmp_path / "wd2" / "pkg" / "data.txt").read_bytes() == b"original"
    assert os.access(tmp_path / "wd2" / "train.py", os.X_OK)
    assert_own_copies(store, snap.id, tmp_path / "wd1", tmp_path / "wd2")
    # the shelf gave its only spare away: the next run lays out its own copy
    assert store.lay_out(snap.id, tmp_path / "wd3").method in ("clone", "copy")


def test_of_many_runs_ending_at_once_only_one_starts_a_spare_builder(tmp_path):
    store, snap = snapshot_of(tmp_path, {"train.py": b"print('ok')\n"})
    busy = store.spares.lock()  # another builder at work
    assert store.start_restock(snap.id, tmp_path) is None
    busy.close()
    child = store.start_restock(snap.id, tmp_path)  # takes the lock and hands it to the child
    assert child is not None
    assert store.start_restock(snap.id, tmp_path) is None  # the child holds it (or is done)
    assert child.wait(timeout=60) == 0
    assert store.start_restock(snap.id, tmp_path) is None  # the spare is there
    assert store.lay_out(snap.id, tmp_path / "wd").method == "spare"


def test_spares_are_bounded_and_a_dead_builders_leftovers_removed(tmp_path):
    store, _ = snapshot_of(tmp_path, {"a.py": b"1"})
    ids = []
    for i in range(6):
        (tmp_path / "src" / "a.py").write_text(f"value = {i}\n")
        ids.append(store.take(str(tmp_path / "src"), 10**9, 100).id)
    (store.spares.root / f"{ids[0]}.partial").mkdir(parents=True)  # killed half-way
    for i, snap_id in enumerate(ids):
        assert store.restock(snap_id, tmp_path)
        os.utime(store.spares.root / snap_id, ns=(i * 10**9, i * 10**9))
    assert sorted(p.name for p in store.spares.root.iterdir() if p.name != ".lock") == sorted(ids[-4:])
    # a spare that would have to be copied past the budget is not built
    store.spare_max_copy_bytes = 0
    store.lay_out(ids[-1], tmp_path / "wd")  # takes the spare
    assert store.restock(ids[-1], tmp_path) is clones(tmp_path)
    assert not list(store.spares.root.glob("*.partial"))


# -- links in the source --------------------------------------------------------------------------

def test_links_that_leave_the_source_are_skipped_and_named(tmp_path):
    src = tmp_path / "src"
    write(src, "train.py", "print('ok')\n")
    write(src, "inner/real.txt", "inside")
    write(tmp_path, "outside/secret.txt", "SECRET")
    os.symlink(tmp_path / "outside" / "secret.txt", src / "abs_out.txt")
    os.symlink("../outside/secret.txt", src / "rel_out.txt")
    os.symlink(tmp_path / "outside", src / "dir_out")            # a folder outside
    os.symlink("inner", src / "dir_in")                          # a folder: not followed either
    os.symlink("abs_out.txt", src / "chain_out.txt")             # inside link -> outside link
    os.symlink("inner/real.txt", src / "alias.txt")              # inside: shipped as a copy
    os.symlink("nowhere", src / "dangling")
    store = SnapshotStore(tmp_path / "snaps")
    snap = store.take(str(src), 10**9, 100)
    assert sorted(snap.skipped_links) == ["abs_out.txt", "chain_out.txt", "dangling", "dir_in",
                                         "dir_out", "rel_out.txt"]
    store.materialize(snap.id, tmp_path / "wd")
    shipped = sorted(str(p.relative_to(tmp_path / "wd")) for p in (tmp_path / "wd").rglob("*"))
    assert shipped == ["alias.txt", "inner", "inner/real.txt", "train.py"]
    assert (tmp_path / "wd" / "alias.txt").read_text() == "inside"
    assert not (tmp_path / "wd" / "alias.txt").is_symlink()
    objects = [p.read_bytes() for p in store.objects.rglob("*") if p.is_file()]
    assert b"SECRET" not in objects


def test_a_file_swapped_for_a_link_while_the_snapshot_is_taken_is_not_read(tmp_path):
    src = tmp_path / "src"
    write(src, "train.py", "print('ok')\n")
    write(tmp_path, "secret.txt", "SECRET")
    store = SnapshotStore(tmp_path / "snaps")
    files = walk_source(str(src))  # the walk saw a plain file ...
    (src / "train.py").unlink()
    os.symlink(tmp_path / "secret.txt", src / "train.py")  # ... which is a link when it is read
    with pytest.raises(InvalidRequest, match="changed or went away"):
        store._take_files(str(src), files)
    assert b"SECRET" not in [p.read_bytes() for p in store.objects.rglob("*") if p.is_file()]


def test_a_manifest_path_that_leaves_the_working_copy_is_refused(tmp_path):
    from jupyter_ext.worktree import lay_out

    (tmp_path / "obj").write_bytes(b"x")
    for rel in ("../escape.txt", "/tmp/abs.txt", "a/../../b"):
        with pytest.raises(OSError, match="would leave the working copy"):
            lay_out([[rel, "d", 0o644]], lambda d: tmp_path / "obj", tmp_path / "wd")
        assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "wd").exists()


# -- end to end: a resubmit through the server ----------------------------------------------------

SCRIBBLER = """\
import pathlib
data = pathlib.Path("data.txt")
print("read:", data.read_text())
data.write_text("scribbled by the run")
"""


async def test_a_resubmit_runs_on_the_spare_and_never_sees_the_last_runs_writes(api, tmp_path,
                                                                               workspace_dir):
    src = tmp_path / "scribbler"
    write(src, "scribble.py", SCRIBBLER)
    write(src, "data.txt", "original")
    first = await api.wait((await api.submit("scribble.py", source=src))["id"])
    assert first["status"] == "Completed", first
    spare = workspace_dir / "snapshots" / "spares" / first["snapshot_id"]
    deadline = time.monotonic() + 30
    while not spare.is_dir():  # built by the first run's supervisor once the run was over
        assert time.monotonic() < deadline, "no spare working copy was built"
        await asyncio.sleep(0.05)
    again = await api.wait((await api.call("POST", f"runs/{first['id']}/resubmit", expect=201))["id"])
    assert again["status"] == "Completed" and again["snapshot_id"] == first["snapshot_id"]
    for run in (first, again):  # each run read the snapshot's bytes, not the other run's writes
        log = await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt")
        assert log["text"] == "read: original\n"
        assert (Path(run["run_dir"]) / "wd" / "data.txt").read_text() == "scribbled by the run"
    sup = await api.call("GET", f"runs/{again['id']}/logs/supervisor.txt")
    assert "working copy wd: spare" in sup["text"]
    store = SnapshotStore(workspace_dir / "snapshots")
    assert object_of(store, first["snapshot_id"], "data.txt").read_bytes() == b"original"
    assert_own_copies(store, first["snapshot_id"], Path(first["run_dir"]) / "wd", Path(again["run_dir"]) / "wd")
