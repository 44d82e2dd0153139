"""Datastores and datasets, as in Azure ML SDK v1: ``ws.get_default_datastore()``,
``ds.upload``, ``Datastore.register_local`` / ``register_fsspec``, ``Dataset.File.from_files``,
``Dataset.Tabular.from_delimited_files``, ``.register(ws, name, create_new_version=True)``,
``Dataset.get_by_name``, ``.download``, ``.to_pandas_dataframe`` and, for a run,
``dataset.as_named_input("x").as_mount()`` / ``.as_download()`` in a ScriptRunConfig's
arguments (the script gets the path there, and ``run.input_datasets["x"]``)."""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import quote

from . import args as check
from .client import TrainError

BATCH_FILES, BATCH_BYTES = 500, 256 * 10**6  # an upload request's most (progress after each)
UPLOAD_TIMEOUT_S = 600  # one batch, copied by the server
REGISTER_TIMEOUT_S = 6 * 3600  # the server hashes every file of a new version
SAY_HASHING_BYTES = 200 * 10**6  # a registration that reads this much says so first
TOKEN = "DatasetConsumptionConfig:"  # jupyter_ext.contract.DATASET_ARG_PREFIX (Azure ML's text)


def _progress(show: bool, text: str, end: bool = False) -> None:
    if show:
        sys.stdout.write(f"\r{text:<100}" + ("\n" if end else ""))
        sys.stdout.flush()


class Datastore:
    """Where files live: a folder in the workspace (the default, ``workspaceblobstore``), a
    folder on this machine (``register_local``) or an fsspec URL (``register_fsspec``)."""

    def __init__(self, workspace, name: str | None = None, _data: dict | None = None):
        self.workspace = workspace
        if _data is None:
            _data = workspace.client.get(f"/datastores/{quote(check.name('Datastore', name))}")
        self._data = _data
        self.name, self.datastore_type = _data["name"], _data["kind"]
        self.local_path, self.url = _data.get("path"), _data.get("url")

    def __repr__(self):
        where = self.url or self.local_path
        return f"Datastore(name={self.name!r}, kind={self.datastore_type!r}, at={where!r})"

    @classmethod
    def get(cls, workspace, datastore_name: str) -> "Datastore":
        return cls(workspace, datastore_name)

    @classmethod
    def get_default(cls, workspace) -> "Datastore":
        return cls(workspace, "workspaceblobstore")

    @classmethod
    def list(cls, workspace) -> list["Datastore"]:
        return [cls(workspace, _data=d) for d in workspace.client.get("/datastores")["datastores"]]

    @classmethod
    def register_local(cls, workspace, datastore_name: str, path: str, overwrite: bool = False) -> "Datastore":
        """A folder on the server's machine, read where it is (a mount reads it without copying)."""
        path = os.path.abspath(os.path.expanduser(check.text("path", path)))
        return cls(workspace, _data=workspace.client.post("/datastores", {
            "name": check.name("Datastore", datastore_name), "kind": "local", "path": path,
            "overwrite": bool(overwrite)}))

    @classmethod
    def register_fsspec(cls, workspace, datastore_name: str, url: str, storage_options: dict | None = None,
                        overwrite: bool = False) -> "Datastore":
        """Any fsspec URL (s3://, gcs://, abfs://, file://, memory://). ``storage_options`` (keys,
        tokens) are kept encrypted by the server and never shown again."""
        if storage_options is not None and not isinstance(storage_options, dict):
            raise check.ArgumentTypeError("storage_options must be a dict of fsspec options.")
        return cls(workspace, _data=workspace.client.post("/datastores", {
            "name": check.name("Datastore", datastore_name), "kind": "fsspec", "url": check.text("url", url),
            "storage_options": storage_options or {}, "overwrite": bool(overwrite)}))

    def path(self, path: str) -> "DataPath":
        return DataPath(self, path)

    def upload(self, src_dir: str, target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> "DataPath":
        """Copy the files of ``src_dir`` into this datastore under ``target_path``. Files already
        there are kept unless ``overwrite``; a version registered earlier keeps its bytes."""
        src = os.path.abspath(os.path.expanduser(check.text("src_dir", src_dir)))
        if not os.path.isdir(src):
            raise TrainError(f"src_dir {src_dir!r} is not a folder; give the folder to upload.", "not_found")
        files, outside = [], []
        real_src = os.path.realpath(src)
        for folder, dirs, names in os.walk(src):
            dirs.sort()
            for n in sorted(names):
                full = os.path.join(folder, n)
                if not os.path.realpath(full).startswith(real_src + os.sep):
                    outside.append(os.path.relpath(full, src))  # a link out of src_dir: not sent
                elif os.path.isfile(full):
                    files.append((os.path.relpath(full, src).replace(os.sep, "/"), os.path.getsize(full)))
        if outside:
            print(f"Not uploaded: {len(outside)} link(s) that lead outside {src}, e.g. {outside[0]}")
        return self._upload(src, files, target_path, overwrite, show_progress)

    def upload_files(self, files: list, relative_root: str | None = None, target_path: str | None = None,
                     overwrite: bool = False, show_progress: bool = True) -> "DataPath":
        paths = [os.path.abspath(os.path.expanduser(check.text("files[i]", f))) for f in files]
        root = os.path.abspath(relative_root) if relative_root else os.path.commonpath(
            [os.path.dirname(p) for p in paths]) if paths else os.getcwd()
        rels = [(os.path.relpath(p, root).replace(os.sep, "/"), os.path.getsize(p)) for p in paths]
        if any(r.startswith("../") for r, _ in rels):
            raise check.ArgumentError("Every file must be inside relative_root.")
        return self._upload(root, rels, target_path, overwrite, show_progress)

    def _upload(self, src: str, files: list, target_path, overwrite: bool, show: bool) -> "DataPath":
        target = (check.text("target_path", target_path) if target_path else "").strip("/")
        total = sum(s for _, s in files)
        done = size = written = 0
        kept: list[str] = []
        t0 = time.monotonic()
        batch: list[str] = []
        batch_bytes = 0

        def send() -> None:
            nonlocal done, size, written, batch, batch_bytes
            if not batch:
                return
            out = self.workspace.client.request("POST", f"/datastores/{quote(self.name)}/upload", {
                "source": src, "files": batch, "target_path": target, "overwrite": bool(overwrite)},
                timeout=UPLOAD_TIMEOUT_S)
            done, size, written = done + len(batch), size + batch_bytes, written + out["written"]
            kept.extend(out["kept"])
            batch, batch_bytes = [], 0
            _progress(show, f"Uploading to {self.name}/{target}: {done}/{len(files)} files, "
                            f"{size / 1e6:.1f}/{total / 1e6:.1f} MB")

        for rel, n in files:
            batch.append(rel)
            batch_bytes += n
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                send()
        send()
        _progress(show, f"Uploaded {written} file(s) to {self.name}/{target} in {time.monotonic() - t0:.1f} s"
                        + (f"; kept {len(kept)} that were there (overwrite=True replaces them)" if kept else ""),
                  end=True)
        return DataPath(self, target)


class DataPath:
    """A path in a datastore: ``(datastore, "fowl/**")`` or ``datastore.path("fowl/**")``."""

    def __init__(self, datastore: Datastore, path_on_datastore: str):
        self.datastore, self.path_on_datastore = datastore, path_on_datastore or ""

    def __repr__(self):
        return f"DataPath({self.datastore.name}/{self.path_on_datastore})"


def _paths(path) -> list[dict]:
    """from_files' ``path``: a (datastore, path) tuple, a DataPath, or a list of them."""
    items = path if isinstance(path, list) else [path]
    out = []
    for item in items:
        if isinstance(item, DataPath):
            item = (item.datastore, item.path_on_datastore or "**")
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
            raise check.ArgumentTypeError(
                f"path must be (datastore, 'folder/**'), a DataPath or a list of them, not {item!r}. "
                "Upload local files first: ws.get_default_datastore().upload(src_dir=...).")
        store = item[0]
        store_name = store if isinstance(store, str) else getattr(store, "name", None)
        out.append({"datastore": check.name("Datastore", store_name), "path": item[1]})
    return out


class _Dataset:
    kind = "file"

    def __init__(self, workspace, paths: list[dict], tabular: dict | None = None, _data: dict | None = None):
        self.workspace, self._paths, self._tabular, self._data = workspace, paths, tabular, _data

    # -- identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self._data["name"] if self._data else None

    @property
    def version(self) -> int | None:
        return self._data["version"] if self._data else None

    @property
    def id(self) -> str | None:
        return f"{self.name}:{self.version}" if self._data else None

    @property
    def tags(self) -> dict:
        return dict(self._data.get("tags") or {}) if self._data else {}

    @property
    def description(self) -> str | None:
        return self._data.get("description") if self._data else None

    def __repr__(self):
        kind = type(self).__name__
        if self._data:
            return (f"{kind}(name={self.name!r}, version={self.version}, files={self._data['files']}, "
                    f"size={self._data['size']})")
        return f"{kind}(paths={[p['datastore'] + '/' + p['path'] for p in self._paths]}, unregistered)"

    # -- registering ------------------------------------------------------------------------
    def register(self, workspace, name: str, description: str | None = None, tags: dict | None = None,
                 create_new_version: bool = False):
        """A new version of ``name`` naming these files (by content). With the same files as the
        latest version, that version is returned; without ``create_new_version`` an existing
        name is refused."""
        files = self._listing()
        size = sum(f["size"] for f in files)
        if size >= SAY_HASHING_BYTES:  # the server reads every byte once (files unchanged since
            # an earlier version of the name are not read again)
            print(f"Registering {name}: {len(files)} files, {size / 1e6:.0f} MB to hash ...", flush=True)
        data = workspace.client.request("POST", "/datasets", {
            "name": check.name("Dataset", name), "kind": self.kind, "paths": self._paths,
            "description": description, "tags": {str(k): str(v) for k, v in (tags or {}).items()},
            "create_new_version": bool(create_new_version),
            **({"tabular": self._tabular} if self._tabular else {})}, timeout=REGISTER_TIMEOUT_S)
        return type(self)(workspace, self._paths, self._tabular, data)

    # -- files ------------------------------------------------------------------------------
    def _listing(self) -> list[dict]:
        """[{path (in the dataset), size, url}] of its files."""
        if self._data:
            if "file_list" not in self._data:
                self._data = self.workspace.client.get(f"/datasets/{quote(self.name)}/{self.version}")
            base = f"/datasets/{quote(self.name)}/{self.version}/files/"
            return [{"path": f["path"], "size": f["size"], "url": base + quote(f["path"])}
                    for f in self._data["file_list"]]
        store = self._paths[0]["datastore"]
        found = self.workspace.client.request("GET", f"/datastores/{quote(store)}/files",
                                              query={"path": [p["path"] for p in self._paths]})
        return [{"path": f["path"], "size": f["size"], "url": f"/datastores/{quote(store)}/files/{quote(f['store_path'])}"}
                for f in found["files"]]

    def to_path(self) -> list[str]:
        return ["/" + f["path"] for f in self._listing()]

    def download(self, target_path: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> list[str]:
        """Write the files under ``target_path`` (default: a new temporary folder); returns their
        paths. Nothing is written when a file would be overwritten without ``overwrite``."""
        import tempfile

        target = os.path.abspath(os.path.expanduser(target_path)) if target_path else tempfile.mkdtemp(prefix="dataset-")
        files = self._listing()
        dests = [os.path.join(target, *f["path"].split("/")) for f in files]
        for f, d in zip(files, dests):
            if ".." in f["path"].split("/") or not os.path.abspath(d).startswith(target + os.sep):
                raise TrainError(f"{f['path']!r} would be written outside {target}; nothing was written.",
                                 "invalid_request")
        if not overwrite:
            clash = next((d for d in dests if os.path.exists(d)), None)
            if clash:
                raise TrainError(f"{clash} already exists; pass overwrite=True, or another target_path.", "conflict")
        total, got, t0 = sum(f["size"] for f in files), 0, time.monotonic()
        for i, (f, dest) in enumerate(zip(files, dests)):
            data = self.workspace.client.request("GET", f["url"], raw=True)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = f"{dest}.partial"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, dest)
            got += len(data)
            if i % 50 == 0 or i == len(files) - 1:
                _progress(show_progress, f"Downloading {self.id or 'dataset'}: {i + 1}/{len(files)} files, "
                                         f"{got / 1e6:.1f}/{total / 1e6:.1f} MB")
        _progress(show_progress, f" in {time.monotonic() - t0:.1f} s", end=True)
        return dests

    # -- a run's input -----------------------------------------------------------------------
    def as_named_input(self, name: str) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(name, self)

    def as_mount(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return self.as_named_input(self.name or "input").as_mount(path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return self.as_named_input(self.name or "input").as_download(path_on_compute)


class FileDataset(_Dataset):
    kind = "file"

    def mount(self):
        raise TrainError("FileDataset.mount() in a notebook is not supported here: use "
                         "download(target_path) or, for a run, as_mount().", "invalid_request")


class TabularDataset(_Dataset):
    kind = "tabular"

    def to_pandas_dataframe(self):
        """Every delimited file of the dataset, read with pandas and concatenated."""
        import io

        try:
            import pandas as pd
        except ImportError:
            raise TrainError("to_pandas_dataframe needs pandas: pip install pandas", "invalid_request") from None
        sep = (self._tabular or {}).get("separator", ",")
        header = 0 if (self._tabular or {}).get("header", True) else None
        frames = [pd.read_csv(io.BytesIO(self.workspace.client.request("GET", f["url"], raw=True)),
                              sep=sep, header=header) for f in self._listing()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def take(self, count: int):
        return self.to_pandas_dataframe().head(count)


class DatasetConsumptionConfig:
    """A dataset as a run's named input. In ScriptRunConfig's arguments it stands for the
    input's path on each node (mounted, or downloaded before the script starts)."""

    def __init__(self, name: str, dataset: _Dataset, mode: str = "mount", path_on_compute: str | None = None):
        if not isinstance(name, str) or not name.isidentifier():
            raise check.ArgumentError(f"as_named_input({name!r}): the name must be a Python identifier "
                                      "(letters, digits, '_'); the script reads run.input_datasets[name].")
        if path_on_compute is not None:
            import warnings

            warnings.warn(f"path_on_compute={path_on_compute!r} is not used here: the script is given the "
                          "input's path on each node (its argument, and run.input_datasets).", stacklevel=3)
        self.name, self.dataset, self.mode, self.path_on_compute = name, dataset, mode, path_on_compute

    def as_mount(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def __str__(self):
        return TOKEN + self.name

    def __repr__(self):
        return f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r}, dataset={self.dataset!r})"

    def to_request(self) -> dict:
        if not self.dataset.name:
            raise TrainError(f"Dataset input {self.name!r} is not registered: register it first, e.g. "
                             f"dataset.register(ws, {self.name!r}, create_new_version=True), so the run "
                             "records the exact version it read.", "invalid_request")
        return {"name": self.name, "dataset": self.dataset.name, "version": self.dataset.version,
                "mode": self.mode}


class _FileFactory:
    @staticmethod
    def from_files(path, validate: bool = True, workspace=None) -> FileDataset:
        paths = _paths(path)
        ws = workspace or _workspace_of(path)
        ds = FileDataset(ws, paths)
        if validate:
            ds._listing()  # a path that names nothing: a clear error now
        return ds


class _TabularFactory:
    @staticmethod
    def from_delimited_files(path, validate: bool = True, separator: str = ",", header: bool = True,
                             workspace=None, **_azure_only) -> TabularDataset:
        paths = _paths(path)
        ws = workspace or _workspace_of(path)
        header_flag = header if isinstance(header, bool) else str(header).upper() != "NO_HEADERS"
        ds = TabularDataset(ws, paths, {"separator": separator, "header": header_flag})
        if validate:
            ds._listing()
        return ds


def _workspace_of(path):
    items = path if isinstance(path, list) else [path]
    for item in items:
        store = item.datastore if isinstance(item, DataPath) else (item[0] if isinstance(item, tuple) else None)
        if isinstance(store, Datastore):
            return store.workspace
    from .workspace import Workspace

    return Workspace.default()


class Dataset:
    """Azure ML's entry point: ``Dataset.File``, ``Dataset.Tabular``, ``Dataset.get_by_name``."""

    File = _FileFactory
    Tabular = _TabularFactory

    @staticmethod
    def get_by_name(workspace, name: str, version="latest"):
        v = None if version in (None, "latest") else check.whole_number("version", version)
        data = workspace.client.get(f"/datasets/{quote(check.name('Dataset', name))}"
                                    + (f"/{v}" if v is not None else ""))
        return _from_data(workspace, data)

    @staticmethod
    def get_all(workspace) -> dict:
        latest = {}
        for d in workspace.client.get("/datasets")["datasets"]:
            latest[d["name"]] = d
        return {name: _from_data(workspace, d) for name, d in latest.items()}

    @staticmethod
    def list_versions(workspace, name: str) -> list:
        return [_from_data(workspace, d) for d in workspace.client.get("/datasets", name=name)["datasets"]]


def _from_data(workspace, data: dict):
    cls = TabularDataset if data["kind"] == "tabular" else FileDataset
    return cls(workspace, data["paths"], data.get("tabular"), data)
