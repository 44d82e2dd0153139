"""Registered models as a service: versions of a run's file or folder (or a local path),
their tags and properties, their files (stored once per content, read through paths.Tree)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from pathlib import Path

from ..errors import Conflict, InvalidRequest, NotFound
from ..modelfiles import ModelFiles, model_source
from ..paths import Tree, check_name
from ..store import SQLiteStore
from . import history


class Models:
    def __init__(self, store: SQLiteStore, root: Path, runs):
        self.store = store
        self.root = root  # the workspace's models/ folder
        self.files = ModelFiles(root)
        self.runs = runs  # get_run(run_id), run_dir(run_id)

    async def register(self, body: dict) -> dict:
        """A new version of model ``name`` from a run's file or folder (``run_id`` + ``path``) or a
        local absolute ``path``. Its files are stored once per content (see modelfiles)."""
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object: name, path, run_id, ...")
        name = check_name("Model", body.get("name"))
        run_id, rel = body.get("run_id"), body.get("path")
        if not isinstance(rel, str) or not rel:
            raise InvalidRequest("'path' is required: a file or folder inside the run (e.g. "
                                 "outputs/model.pt), or an absolute path on the server's machine.")
        experiment = self.runs.get_run(run_id)["experiment"] if run_id else None
        for key in ("tags", "properties"):
            if not isinstance(body.get(key) or {}, dict):
                raise InvalidRequest(f"'{key}' must be an object.")
        for key in ("model_framework", "model_framework_version", "description"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InvalidRequest(f"'{key}' must be a string.")
        tree, src_rel, src_name = model_source(rel, history.run_tree(self.runs.run_dir(run_id), run_id) if run_id else None)
        pending = self.root / name / f".pending-{secrets.token_hex(6)}"
        try:
            stored = await asyncio.to_thread(self.files.store, tree, src_rel, src_name, pending)
        finally:
            tree.close()
        model = {"name": name, "run_id": run_id, "experiment": experiment, "path": src_name,
                 "source_path": rel, "tags": {str(k): str(v) for k, v in (body.get("tags") or {}).items()},
                 "properties": body.get("properties") or {}, "description": body.get("description"),
                 "framework": body.get("model_framework"),
                 "framework_version": body.get("model_framework_version"),
                 "checksum": stored.checksum, "size": stored.size, "created_at": time.time()}
        try:
            version = self.store.insert_model(model, stored.files)
            os.replace(pending, self.root / name / str(version))
        except BaseException:
            shutil.rmtree(pending, ignore_errors=True)
            raise
        return {**self.get(name, version), "skipped": stored.skipped}

    def update(self, name: str, version: int, body: dict) -> dict:
        """Add or change tags (``tags``), remove some (``remove_tags``), add properties (never
        change them: they record how a version was made) and set the description."""
        model = self.get(name, version)
        if not isinstance(body, dict) or not set(body) <= {"tags", "remove_tags", "properties", "description"}:
            raise InvalidRequest("Send an object with any of: tags (object), remove_tags (list), "
                                 "properties (object), description (string).")
        tags, props = dict(model["tags"]), dict(model["properties"])
        add, remove, new_props = body.get("tags") or {}, body.get("remove_tags") or [], body.get("properties") or {}
        if not isinstance(add, dict) or not isinstance(remove, list) or not isinstance(new_props, dict):
            raise InvalidRequest("'tags' and 'properties' must be objects, 'remove_tags' a list of keys.")
        changed = [k for k, v in new_props.items() if k in props and props[k] != v]
        if changed:
            raise Conflict(f"Properties {changed} are already set on {name}:{version} and cannot change; "
                           "use tags for values that change.")
        tags.update({str(k): str(v) for k, v in add.items()})
        for key in remove:
            tags.pop(str(key), None)
        props.update(new_props)
        description = body.get("description", model.get("description"))
        if description is not None and not isinstance(description, str):
            raise InvalidRequest("'description' must be a string.")
        self.store.update_model(name, version, tags, props, description)
        return self.get(name, version)

    def delete(self, name: str, version: int) -> dict:
        """Forget one version and free the bytes no other version shares; returns what it freed."""
        model = self.get(name, version)
        unused = self.store.delete_model(name, version)
        freed = self.files.remove(self.dir(model), unused)
        return {"name": name, "version": version, "freed_bytes": freed}

    def get(self, name: str, version: int | None = None) -> dict:
        model = self.store.get_model(name, version)
        if model is None:
            which = f"version {version} of " if version else ""
            raise NotFound(f"No {which}model {name!r} is registered. List models with GET /train/api/models.")
        model["files"] = self.list_files(model)
        return model

    def dir(self, model: dict) -> Path:
        return self.root / model["name"] / str(model["version"])

    def tree(self, model: dict) -> Tree:
        return Tree(self.dir(model), what=f"model {model['name']}:{model['version']}")

    def list_files(self, model: dict) -> list[str]:
        """The version's files (links planted in its folder afterwards are left out)."""
        try:
            with self.tree(model) as tree:
                return sorted(name for name, _size in tree.list().files)
        except NotFound:
            return []

    def open_file(self, name: str, version: int, rel: str):
        model = self.get(name, version)
        with self.tree(model) as tree:
            try:
                return tree.open(rel)
            except NotFound:
                raise NotFound(f"Model {name}:{version} has no file {rel!r}; it has {model['files']}.") from None

    def list(self, name: str | None = None, tags: list[str] | None = None,
                    properties: list[str] | None = None) -> list[dict]:
        """Every version, oldest first per name; ``tags``/``properties`` filters are "key" (has
        it) or "key=value" (has that value), all of which must hold."""
        def keep(d: dict, wanted: list[str]) -> bool:
            for w in wanted:
                key, eq, value = w.partition("=")
                if key not in d or (eq and str(d[key]) != value):
                    return False
            return True

        return [m for m in self.store.list_models(name)
                if keep(m["tags"], tags or []) and keep(m["properties"], properties or [])]
