"""Datastores and datasets as a service: register stores, upload into the workspace's own,
register dataset versions (immutable: a list of files by content), serve their files, and get
a run's inputs ready before it queues.

A version names files by sha256. Files of the workspace's stores are pinned as they are
registered (hard links into the object cache: an upload that later replaces a file leaves the
version's bytes in place). Files of other stores are checked against their digest whenever
they are copied; one that changed since its version was registered is refused with a message,
unless this host's cache holds its bytes. The cache (``datasets/objects`` in the workspace) is
this host's: a second run of a version copies nothing (launcher.datainputs lays it out)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import time
from pathlib import Path

from ..data import credentials
from ..data.stores import DEFAULT, Store, check_pattern, split_pattern
from ..errors import Conflict, InvalidRequest, NotFound
from ..launcher.datainputs import ObjectCache
from ..modelfiles import version_checksum
from ..paths import check_name, check_relative

MODES = ("mount", "download")
KINDS = ("file", "tabular")
PROGRESS_S = 1.0
MAX_UPLOAD_FILES = 10_000  # files in one upload request (the SDK sends batches)


def _sha256(store: Store, path: str) -> tuple[str, int]:
    """(sha256, size) of a file of ``store``, read once."""
    h, size = hashlib.sha256(), 0
    with store.open(path) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Datasets:
    def __init__(self, store, ws_root: Path):
        self.store = store
        self.stores_dir = Path(ws_root) / "datastores"
        self.cache = ObjectCache(Path(ws_root) / "datasets" / "objects")
        if self.store.get_datastore(DEFAULT) is None:
            self.store.save_datastore({"name": DEFAULT, "kind": "workspace",
                                       "root": str(self.stores_dir / DEFAULT)})
        (self.stores_dir / DEFAULT).mkdir(parents=True, exist_ok=True)

    # -- datastores -----------------------------------------------------------------------
    def datastore(self, name) -> Store:
        row = self.store.get_datastore(name) if isinstance(name, str) else None
        if row is None:
            raise NotFound(f"No datastore {name!r} in this workspace. List them with GET "
                           "/train/api/datastores; the default one is 'workspaceblobstore'.")
        # a workspace store's folder is where the workspace is now (it may have been moved)
        root = str(self.stores_dir / row["name"]) if row["kind"] == "workspace" else row["root"]
        return Store(name=row["name"], kind=row["kind"], root=root, url=row["url"],
                     sealed=row["sealed"], option_names=tuple(row["option_names"]))

    def list_datastores(self) -> list[dict]:
        return [self.datastore(r["name"]).to_json() for r in self.store.list_datastores()]

    def register_datastore(self, body: dict) -> dict:
        """A folder on this host (``kind`` "local", ``path``), a folder of the workspace's own
        ("workspace"), or an fsspec URL ("fsspec", ``url``, ``storage_options`` kept encrypted)."""
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object: name, kind, path or url.")
        allowed = {"name", "kind", "path", "url", "storage_options", "overwrite"}
        if set(body) - allowed:
            raise InvalidRequest(f"Unknown field(s) {sorted(set(body) - allowed)}; allowed: {sorted(allowed)}.")
        name = check_name("Datastore", body.get("name"))
        kind = body.get("kind")
        if kind not in ("local", "fsspec", "workspace"):
            raise InvalidRequest("'kind' must be 'local' (a folder on the server's machine), 'fsspec' "
                                 "(a URL) or 'workspace' (a folder inside the workspace).")
        if name == DEFAULT:
            raise Conflict(f"{DEFAULT!r} is the workspace's default datastore; pick another name.")
        if self.store.get_datastore(name) is not None and not body.get("overwrite"):
            raise Conflict(f"Datastore {name!r} is already registered; pass overwrite=True to replace it.")
        options = body.get("storage_options") or {}
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise InvalidRequest("'storage_options' must be an object of option name -> value.")
        row = {"name": name, "kind": kind}
        if kind == "local":
            path = body.get("path")
            if not isinstance(path, str) or not os.path.isabs(path) or "\x00" in path:
                raise InvalidRequest("'path' must be an absolute folder path on the server's machine.")
            if not os.path.isdir(path):
                raise InvalidRequest(f"{path!r} is not a folder on the server's machine; create it or "
                                     "give another path.")
            row["root"] = os.path.realpath(path)
        elif kind == "workspace":
            row["root"] = str(self.stores_dir / name)
            os.makedirs(row["root"], exist_ok=True)
        else:
            url = body.get("url")
            if not isinstance(url, str) or "://" not in url or "\x00" in url:
                raise InvalidRequest("'url' must be an fsspec URL, e.g. s3://bucket/prefix or file:///data.")
            row.update(url=url.rstrip("/"), sealed=credentials.seal(options), option_names=sorted(options))
            self._check_reachable(Store(name=name, kind=kind, url=row["url"], sealed=row["sealed"]))
        self.store.save_datastore(row)
        return self.datastore(name).to_json()

    @staticmethod
    def _check_reachable(store: Store) -> None:
        fs, root = store._fs()
        try:
            fs.ls(root)
        except FileNotFoundError:
            pass  # an empty prefix is a store too
        except Exception as exc:  # the protocol's own errors (credentials, network)
            raise InvalidRequest(f"{store.what}: {store.url} cannot be listed: {type(exc).__name__}: "
                                 f"{exc}. Check the URL and storage_options.") from None

    def upload(self, name: str, body: dict) -> dict:
        """Copy files of a folder on this host into a workspace datastore: ``source`` (the
        folder), ``files`` (paths in it; default: all), ``target_path`` (a folder in the store),
        ``overwrite``. Returns what was written and what was kept (it existed)."""
        store = self.datastore(name)
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object: source, files, target_path.")
        src = body.get("source")
        if not isinstance(src, str) or not os.path.isabs(src) or not os.path.isdir(src):
            raise InvalidRequest("'source' must be an absolute path of a folder on the server's machine.")
        target = body.get("target_path") or ""
        if not isinstance(target, str):
            raise InvalidRequest("'target_path' must be a folder path inside the datastore.")
        if target.strip("/"):
            check_relative(target.strip("/"), store.what)
        files = body.get("files")
        if files is None:
            from ..paths import Tree

            with Tree(src, follow_root=True, what=f"the folder {src}") as tree:
                files = [rel for rel, _ in tree.list().files]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files) or len(files) > MAX_UPLOAD_FILES:
            raise InvalidRequest(f"'files' must be a list of at most {MAX_UPLOAD_FILES} relative paths.")
        plan = []  # every file checked before any is written: a bad one leaves the store as it was
        for rel in files:
            parts = check_relative(rel, f"the folder {src}")
            real = os.path.realpath(Path(src, *parts))
            if not real.startswith(os.path.realpath(src) + os.sep) or not os.path.isfile(real):
                raise InvalidRequest(f"{rel!r} is not a file inside {src} (links out are not followed).")
            plan.append((real, posixpath.join(target.strip("/"), *parts) if target.strip("/") else "/".join(parts)))
        written, kept, size = [], [], 0
        for real, dest in plan:
            if store.write(dest, Path(real), bool(body.get("overwrite"))):
                written.append(dest)
                size += os.path.getsize(real)
            else:
                kept.append(dest)
        return {"datastore": name, "written": len(written), "kept": kept, "bytes": size}

    def open_store_file(self, name: str, rel: str):
        """A datastore's file, opened for reading; a URL store's is copied into a temporary
        file first (what is served is a real file, of a size known before it is sent)."""
        store = self.datastore(name)
        check_relative(rel, store.what)
        src = store.open(rel)
        if store.kind != "fsspec":
            return src
        import shutil
        import tempfile

        out = tempfile.TemporaryFile()
        with src:
            shutil.copyfileobj(src, out, 1 << 20)
        out.seek(0)
        return out

    # -- resolving a definition -----------------------------------------------------------
    def _resolve(self, body: dict) -> tuple[dict, Store, list[list]]:
        """A definition's (header, store, files [path in version, store path, size])."""
        kind = body.get("kind", "file")
        if kind not in KINDS:
            raise InvalidRequest("'kind' must be 'file' or 'tabular'.")
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or not all(
                isinstance(p, dict) and set(p) <= {"datastore", "path"} for p in paths):
            raise InvalidRequest("'paths' must be a non-empty list of {datastore, path}, e.g. "
                                 "[{\"datastore\": \"workspaceblobstore\", \"path\": \"fowl/**\"}].")
        stores = {p.get("datastore") or DEFAULT for p in paths}
        if len(stores) > 1:
            raise InvalidRequest(f"A dataset's paths must be on one datastore; these name {sorted(stores)}. "
                                 "Register one dataset per datastore.")
        store = self.datastore(stores.pop())
        found, bases = {}, []
        for p in paths:
            pattern = check_pattern(p.get("path"))
            base, glob = split_pattern(pattern)
            listed = store.list(pattern)
            if glob is None and len(listed) == 1 and listed[0][0] == base:  # one file
                base = posixpath.dirname(base)
            bases.append(base)
            found.update(dict(listed))
        base = posixpath.commonpath(bases) if all(bases) else ""
        cut = len(base) + 1 if base else 0
        files = [[sp[cut:], sp, size] for sp, size in sorted(found.items())]
        for rel, sp, _ in files:  # an object key may hold '..' (S3 allows it): never a path out
            if not rel or rel.startswith("/") or {"", ".", ".."} & set(rel.split("/")) or "\x00" in rel:
                raise InvalidRequest(f"{store.what} holds {sp!r}, which is not a plain relative path "
                                     "(an empty, '.' or '..' part): rename it, or name other files.")
        tabular = None
        if kind == "tabular":
            tabular = body.get("tabular") or {}
            if not isinstance(tabular, dict) or set(tabular) - {"separator", "header"}:
                raise InvalidRequest("'tabular' must be an object with 'separator' and 'header'.")
        header = {"kind": kind, "paths": [{"datastore": store.name, "path": p["path"]} for p in paths],
                  "base": base, "datastore": store.name, "tabular": tabular}
        return header, store, files

    def preview(self, body: dict) -> dict:
        """An unregistered definition's files (what a registration would name)."""
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object: kind, paths.")
        header, _store, files = self._resolve(body)
        return {**header, "files": [{"path": f[0], "store_path": f[1], "size": f[2]} for f in files],
                "size": sum(f[2] for f in files)}

    # -- registering ------------------------------------------------------------------------
    async def register(self, body: dict) -> dict:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object: name, kind, paths, ...")
        allowed = {"name", "kind", "paths", "description", "tags", "create_new_version", "tabular"}
        if set(body) - allowed:
            raise InvalidRequest(f"Unknown field(s) {sorted(set(body) - allowed)}; allowed: {sorted(allowed)}.")
        name = check_name("Dataset", body.get("name"))
        if not isinstance(body.get("tags") or {}, dict) or not isinstance(body.get("description") or "", str):
            raise InvalidRequest("'tags' must be an object and 'description' a string.")
        latest = self.store.get_dataset(name)
        if latest is not None and not body.get("create_new_version"):
            raise Conflict(f"Dataset {name!r} is already registered (version {latest['version']}); pass "
                           "create_new_version=True to register a new version.")
        header, store, files = self._resolve(body)
        hashed = await asyncio.to_thread(self._hash, store, files, name)
        checksum = version_checksum([[f[0], f[1], f[2]] for f in hashed])
        if latest is not None and latest["checksum"] == checksum and latest["kind"] == header["kind"] \
                and latest["tabular"] == header["tabular"] and latest["paths"] == header["paths"]:
            return {**self.get(name, latest["version"]), "unchanged": True}
        row = {"name": name, **header, "description": body.get("description"),
               "tags": {str(k): str(v) for k, v in (body.get("tags") or {}).items()}, "checksum": checksum}
        version = self.store.insert_dataset(row, hashed)
        return {**self.get(name, version), "unchanged": False}

    def _hash(self, store: Store, files: list[list], name: str) -> list[list]:
        """[path, sha256, size, store path, mtime_ns] of each file. A local file unchanged since
        the latest version of ``name`` (same size and mtime) keeps its digest; a workspace
        store's file is pinned in the cache as it is hashed."""
        latest = self.store.get_dataset(name)
        known = {(f[3], f[2], f[4]): f[1] for f in (self.store.dataset_files(name, latest["version"]) if latest else [])
                 if f[4] is not None}
        out = []
        for rel, store_path, _size in files:
            st = store.stat(store_path)
            digest = known.get((store_path, st.st_size, st.st_mtime_ns)) if st else None
            if digest is None:
                digest, size = _sha256(store, store_path)
            else:
                size = st.st_size
            if store.kind == "workspace":
                self.cache.adopt(store.folder(store_path), digest)
            out.append([rel, digest, size if st is None else st.st_size, store_path,
                        st.st_mtime_ns if st else None])
        return out

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None, files: bool = True) -> dict:
        ds = self.store.get_dataset(name, version) if isinstance(name, str) else None
        if ds is None:
            which = f"version {version} of " if version else ""
            raise NotFound(f"No {which}dataset {name!r} is registered. List datasets with GET "
                           "/train/api/datasets.")
        ds["runs"] = self.store.runs_of_dataset(name).get(ds["version"], [])
        if files:
            ds["file_list"] = [{"path": f[0], "size": f[2], "sha256": f[1]}
                               for f in self.store.dataset_files(name, ds["version"])]
        return ds

    def list(self, name: str | None = None) -> list[dict]:
        runs: dict[str, dict] = {}
        out = []
        for ds in self.store.list_datasets(name):
            if ds["name"] not in runs:
                runs[ds["name"]] = self.store.runs_of_dataset(ds["name"])
            out.append({**ds, "runs": runs[ds["name"]].get(ds["version"], [])})
        return out

    def open_file(self, name: str, version: int, rel: str):
        """A version's file, from this host's cache (copied there first when it is not)."""
        ds = self.get(name, version, files=False)
        entry = next((f for f in self.store.dataset_files(name, ds["version"]) if f[0] == rel), None)
        if entry is None:
            raise NotFound(f"Dataset {name}:{ds['version']} has no file {rel!r}; list them with GET "
                           f"/train/api/datasets/{name}/{ds['version']}.")
        self._fetch_one(self.datastore(ds["datastore"]), entry, f"{name}:{ds['version']}")
        return open(self.cache.path(entry[1]), "rb")

    def _fetch_one(self, store: Store, entry: list, what: str) -> int:
        rel, digest, _size, store_path, _mtime = entry
        if self.cache.has(digest):
            return 0
        try:
            with store.open(store_path) as f:
                return self.cache.put(f, digest, f"{store_path} of {store.what}")
        except NotFound:
            raise Conflict(f"Dataset {what}: {store_path} is gone from {store.what} ({store.location}) "
                           "and this host's cache does not hold it: put the file back, or register a "
                           "new version.") from None
        except OSError as exc:
            raise Conflict(f"Dataset {what}: {exc}") from None

    # -- a run's inputs ---------------------------------------------------------------------
    def check_inputs(self, raw) -> list[dict]:
        """A run request's ``datasets`` as inputs with their files, refused (before the run
        exists) when a version is unknown or a file is neither in its store nor in the cache."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise InvalidRequest("'datasets' must be a list of {name, dataset, version, mode}.")
        inputs, names = [], set()
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or set(item) - {"name", "dataset", "version", "mode"}:
                raise InvalidRequest(f"datasets[{i}] must be an object with name, dataset, version and "
                                     "mode ('mount' or 'download').")
            input_name = item.get("name") or item.get("dataset")
            check_name("Dataset input", input_name)
            if not input_name.isidentifier():
                raise InvalidRequest(f"Dataset input name {input_name!r} must be a Python identifier "
                                     "(letters, digits, '_'): scripts read run.input_datasets[name].")
            if input_name in names:
                raise InvalidRequest(f"Two dataset inputs are named {input_name!r}; give each its own "
                                     "name (as_named_input).")
            names.add(input_name)
            mode = item.get("mode", "mount")
            if mode not in MODES:
                raise InvalidRequest(f"datasets[{i}].mode must be 'mount' or 'download'.")
            version = item.get("version")
            if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
                raise InvalidRequest(f"datasets[{i}].version must be a whole number (or absent: the latest).")
            ds = self.get(item.get("dataset"), version, files=False)
            files = self.store.dataset_files(ds["name"], ds["version"])
            store = self.datastore(ds["datastore"])
            missing = [f[3] for f in files if not self.cache.has(f[1]) and store.kind != "fsspec"
                       and store.stat(f[3]) is None]
            if missing:
                raise InvalidRequest(
                    f"Dataset {ds['name']}:{ds['version']} names {len(missing)} file(s) that are gone from "
                    f"{store.what} ({store.location}), e.g. {missing[0]!r}, and are not in this host's "
                    "cache. Put them back, or register a new version (create_new_version=True) and "
                    "submit with it.")
            only = ds["paths"][0]["path"].strip("/") if len(ds["paths"]) == 1 else None
            single = len(files) == 1 and files[0][3] == only  # the dataset names one file
            inputs.append({"name": input_name, "dataset": ds["name"], "version": ds["version"], "mode": mode,
                           "kind": ds["kind"], "datastore": store.name, "base": ds["base"],
                           **({"tabular": ds["tabular"]} if ds["tabular"] else {}),
                           **({"file": files[0][0]} if single else {}),
                           "files": [f[:3] for f in files], "_entries": files})
        return inputs

    def prepare(self, inputs: list[dict], mount_refused: str | None, say) -> list[dict]:
        """Decide how each input reaches the nodes and put what downloads need into the cache,
        with progress through ``say``. ``mount_refused``: why the target's nodes cannot see
        this host's folders (None: they can). Returns the inputs as the manifest holds them."""
        out = []
        for inp in inputs:
            entries = inp.pop("_entries")
            store = self.datastore(inp["datastore"])
            label = f"dataset input {inp['name']} ({inp['dataset']}:{inp['version']})"
            if inp["mode"] == "mount":
                why = mount_refused or self._mount_problem(store, inp, entries)
                if why is None:
                    inp["mount"] = store.folder(inp["base"])
                    say(f"{label}: mounted: the nodes read {inp['mount']} as it is ({len(entries)} files, "
                        "checked unchanged; nothing copied)\n")
                    out.append(inp)
                    continue
                say(f"{label}: cannot be mounted ({why}); downloading it instead\n")
                inp["mode"], inp["note"] = "download", f"downloaded instead of mounted: {why}"
            self._fetch(store, entries, label, say)
            out.append(inp)
        return out

    def _mount_problem(self, store: Store, inp: dict, entries: list[list]) -> str | None:
        """Why the store's folder is not exactly this version (None: it is)."""
        if store.kind == "fsspec":
            return f"{store.what} is a URL ({store.url}), not a folder the nodes see"
        for rel, digest, size, store_path, mtime in entries:
            st = store.stat(store_path)
            if st is None:
                return f"{store_path} is gone from the store"
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                if _sha256(store, store_path)[0] != digest:
                    return f"{store_path} changed since version {inp['version']} was registered"
        if "file" not in inp:
            there = {p for p, _ in store._tree_list(inp["base"])}
            extra = there - {e[3] for e in entries}
            if extra:
                return (f"{len(extra)} file(s) in {store.folder(inp['base'])} are not in version "
                        f"{inp['version']}, e.g. {sorted(extra)[0]!r}")
        return None

    def _fetch(self, store: Store, entries: list[list], label: str, say) -> None:
        t0 = last = time.monotonic()
        todo = [e for e in entries if not self.cache.has(e[1])]
        total, need = sum(e[2] for e in entries), sum(e[2] for e in todo)
        if not todo:
            say(f"{label}: {len(entries)} files, {_mb(total)}, all in this host's cache\n")
            return
        say(f"{label}: {len(entries)} files, {_mb(total)}: {len(entries) - len(todo)} in the cache, "
            f"fetching {len(todo)} ({_mb(need)}) from {store.what}\n")
        done = got = 0
        for entry in todo:
            got += self._fetch_one(store, entry, label)
            done += 1
            if time.monotonic() - last >= PROGRESS_S:
                last = time.monotonic()
                say(f"{label}: {done}/{len(todo)} files, {_mb(got)} of {_mb(need)}\n")
        say(f"{label}: fetched {len(todo)} files ({_mb(got)}) in {time.monotonic() - t0:.1f} s\n")
