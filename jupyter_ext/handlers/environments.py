"""Environments: list (curated and registered), register a new version, get one."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import TrainHandler
from .runs import bad_version


class EnvironmentsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"environments": self.manager.environments.list()})

    @web.authenticated
    @authorized
    def post(self):
        self.send_json(self.manager.environments.register(self.json_body()), status=201)


class EnvironmentHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        version = self.get_query_argument("version", None)
        self.send_json(self.manager.environments.get(name, bad_version(version) if version else None))
