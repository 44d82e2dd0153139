"""Datastores (register, upload into, list and read files) and dataset versions (register,
list, get, read a version's files)."""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import InvalidRequest
from .base import TrainHandler
from .runs import FileHandler, bad_version


class DatastoresHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"datastores": self.manager.datasets.list_datastores()})

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        self.send_json(await asyncio.to_thread(self.manager.datasets.register_datastore, body), status=201)


class DatastoreHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        self.send_json(self.manager.datasets.datastore(name).to_json())


class DatastoreUploadHandler(TrainHandler):
    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.json_body()
        self.send_json(await asyncio.to_thread(self.manager.datasets.upload, name, body))


class DatastoreFilesHandler(TrainHandler):
    @web.authenticated
    @authorized
    async def get(self, name):
        patterns = self.get_query_arguments("path")
        if not patterns:
            raise InvalidRequest("Give ?path=PATTERN (e.g. fowl/** or table.csv), once or more.")
        body = {"kind": "file", "paths": [{"datastore": name, "path": p} for p in patterns]}
        self.send_json(await asyncio.to_thread(self.manager.datasets.preview, body))


class DatastoreFileHandler(FileHandler):
    @web.authenticated
    @authorized
    async def get(self, name, path):
        f = await asyncio.to_thread(self.manager.datasets.open_store_file, name, path)
        await self.send_file(f, path)


class DatasetsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"datasets": self.manager.datasets.list(self.get_query_argument("name", None))})

    @web.authenticated
    @authorized
    async def post(self):
        self.send_json(await self.manager.datasets.register(self.json_body()), status=201)


class DatasetHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        version = self.get_query_argument("version", None)
        self.send_json(self.manager.datasets.get(name, bad_version(version, "Dataset") if version else None))


class DatasetVersionHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name, version):
        self.send_json(self.manager.datasets.get(name, bad_version(version, "Dataset")))


class DatasetFileHandler(FileHandler):
    @web.authenticated
    @authorized
    async def get(self, name, version, path):
        f = await asyncio.to_thread(self.manager.datasets.open_file, name, bad_version(version, "Dataset"), path)
        await self.send_file(f, path)
