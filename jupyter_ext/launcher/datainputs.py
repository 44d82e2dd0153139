"""A run's dataset inputs on a node: a content-addressed object cache and the folders a
script reads.

The server prepares a run's inputs before it queues (runs.datasets): every file of a
downloaded version is put, once, into this host's cache by its sha256, and the run directory
gets ``datasets.json`` (MANIFEST): for each input its name, mode, the dataset version, its files
([path, sha256, size]) and, for a mount, the folder the node reads as it is. Here, on the node,
``lay_out`` makes ``inputs/<name>/`` of a download from the cache (hard links: no bytes copied,
so a second run of the same version costs a few milliseconds), and ``input_paths`` says where
each input is, for the job's environment (contract.ENV_INPUT_DATASETS) and for rank_entry, which
puts those paths in place of the script's ``DatasetConsumptionConfig:<name>`` arguments. A Ray
node that does not share this host's files keeps a cache of its own: it is sent only the
objects it lacks (``missing``, then ``put``). Standard library only: it runs on the nodes too.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from .. import contract

MANIFEST = "datasets.json"
INPUTS = "inputs"
CHUNK = 1 << 20


def read_manifest(run_dir) -> dict:
    """{"cache": this host's object cache, "inputs": [...]} ({} for a run without datasets)."""
    try:
        with open(Path(run_dir) / MANIFEST, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def write_manifest(run_dir, cache, inputs: list[dict]) -> None:
    tmp = Path(run_dir) / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"cache": str(cache), "inputs": inputs}, sort_keys=True))
    os.replace(tmp, Path(run_dir) / MANIFEST)


def summary(inputs: list[dict]) -> list[dict]:
    """The inputs without their file lists: what a run spec carries (spec.datasets)."""
    return [{k: v for k, v in inp.items() if k != "files"} for inp in inputs]


class ObjectCache:
    """Files by content: ``<root>/<sha256[:2]>/<sha256>``, read-only, written whole (a reader
    never sees half an object), checked against their digest as they are written."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def missing(self, digests) -> list[str]:
        return sorted({d for d in digests if not self.has(d)})

    def put(self, src, digest: str, what: str) -> int:
        """Store the bytes of ``src`` (an open binary file, or bytes) as ``digest``; returns the
        bytes written (0 when the object was there). OSError if they are not what the version
        recorded: ``what`` names the file."""
        obj = self.path(digest)
        if obj.is_file():
            return 0
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.parent / f".{digest}.{secrets.token_hex(4)}.tmp"
        h, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                if isinstance(src, (bytes, bytearray, memoryview)):
                    h.update(src)
                    out.write(src)
                    size = len(src)
                else:
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            if h.hexdigest() != digest:
                raise OSError(f"{what} is not the file the dataset version recorded (its content "
                              "changed since it was registered): register a new version of the "
                              "dataset, or put the old file back.")
            os.chmod(tmp, 0o444)
            os.replace(tmp, obj)
        finally:
            if tmp.exists():
                tmp.unlink()
        return size

    def adopt(self, path, digest: str) -> bool:
        """Hard-link an existing file (already hashed to ``digest``) into the cache: the bytes
        stay where they are and the cache keeps them even when the file is later replaced.
        False where a link is impossible (another filesystem)."""
        obj = self.path(digest)
        if obj.is_file():
            return True
        obj.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, obj)
            os.chmod(obj, 0o444)
            return True
        except FileExistsError:
            return True
        except OSError:
            return False

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def lay_out(inputs: list[dict], cache: ObjectCache, root, say=print) -> None:
    """``root/inputs/<name>/`` of every downloaded input, from ``cache`` (which holds each of its
    objects). Built beside its place and renamed in, so a node never sees half a folder; an
    input already laid out (a restart) is left as it is."""
    for inp in inputs:
        if inp["mode"] != "download":
            continue
        dest = Path(root) / INPUTS / inp["name"]
        if dest.exists():
            continue
        t0 = time.monotonic()
        tmp = dest.with_name(f".{inp['name']}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for rel, digest, _size in inp["files"]:
            if rel.startswith("/") or ".." in rel.split("/"):
                raise OSError(f"dataset input {inp['name']}: {rel!r} would lead outside its folder")
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            obj = cache.path(digest)
            if not obj.is_file():
                raise OSError(f"dataset input {inp['name']}: {rel} is not in this node's cache "
                              f"({cache.root}); submit the run again.")
            _link_or_copy(obj, target)
        os.replace(tmp, dest)
        size = sum(f[2] for f in inp["files"])
        say(f"dataset input {inp['name']} ({inp['dataset']}:{inp['version']}): {len(inp['files'])} "
            f"files, {size / 1e6:.1f} MB from the cache, {(time.monotonic() - t0) * 1e3:.0f} ms")


def input_paths(inputs: list[dict], root: str) -> dict[str, dict]:
    """{input name: {"path", "kind", "dataset", "version", "mode"}} on a node whose run folder
    is ``root``: a download's folder there, a mount's folder as the node sees it."""
    out = {}
    for inp in inputs:
        path = inp["mount"] if inp["mode"] == "mount" else os.path.join(root, INPUTS, inp["name"])
        if inp.get("file"):  # a dataset of one file: its path, as Azure ML gives it
            path = os.path.join(path, inp["file"])
        out[inp["name"]] = {"path": path, "kind": inp.get("kind", "file"), "dataset": inp["dataset"],
                            "version": inp["version"], "mode": inp["mode"],
                            **({"tabular": inp["tabular"]} if inp.get("tabular") else {})}
    return out


def input_env(inputs: list[dict], root: str) -> dict[str, str]:
    """The job's variables for its inputs: contract.ENV_INPUT_DATASETS (JSON) and, as Azure ML
    sets them, AZUREML_DATAREFERENCE_<name> (the path)."""
    if not inputs:
        return {}
    paths = input_paths(inputs, root)
    env = {contract.ENV_INPUT_DATASETS: json.dumps(paths, sort_keys=True)}
    for name, info in paths.items():
        env[f"AZUREML_DATAREFERENCE_{name}"] = info["path"]
    return env
