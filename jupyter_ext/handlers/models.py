"""Registered models: list (by name, tags, properties), register, get, delete, download a file."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import TrainHandler
from .runs import FileHandler, bad_version


class ModelsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"models": self.manager.models.list(self.get_query_argument("name", None),
                                                           self.get_query_arguments("tag"),
                                                           self.get_query_arguments("property"))})

    @web.authenticated
    @authorized
    async def post(self):
        self.send_json(await self.manager.models.register(self.json_body()), status=201)


class ModelHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        version = self.get_query_argument("version", None)
        self.send_json(self.manager.models.get(name, bad_version(version) if version else None))


class ModelVersionHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name, version):
        self.send_json(self.manager.models.get(name, bad_version(version)))

    @web.authenticated
    @authorized
    def patch(self, name, version):
        self.send_json(self.manager.models.update(name, bad_version(version), self.json_body()))

    @web.authenticated
    @authorized
    def delete(self, name, version):
        self.send_json(self.manager.models.delete(name, bad_version(version)))


class ModelFileHandler(FileHandler):
    @web.authenticated
    @authorized
    async def get(self, name, version, path):
        await self.send_file(self.manager.models.open_file(name, bad_version(version), path), path)
