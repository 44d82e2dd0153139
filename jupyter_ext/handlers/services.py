"""Deployed models (web services): deploy, list, get, delete, keys, logs, and a proxy to score.

``POST /services/{name}/score`` forwards the body to the service's scoring URL (adding its key),
so a notebook whose JupyterLab is on another machine reaches a service that listens on the
server's loopback only; the service's answer (status and JSON body) comes back as it is.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import httpclient, web

from ..errors import TrainError
from .base import TrainHandler

PROXY_TIMEOUT_S = 600.0


class ServiceUnreachable(TrainError):
    code = "service_unreachable"
    status = 502


class ServicesHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.send_json({"services": self.manager.services.list()})

    @web.authenticated
    @authorized
    async def post(self):
        self.send_json(await self.manager.services.deploy(self.json_body()), status=201)


class ServiceHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        self.send_json(self.manager.services.get(name))

    @web.authenticated
    @authorized
    async def delete(self, name):
        self.send_json(await self.manager.services.delete(name))


class ServiceKeysHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        self.send_json(self.manager.services.keys(name))

    @web.authenticated
    @authorized
    def post(self, name):
        self.send_json(self.manager.services.regen_key(name, self.json_body().get("key")))


class ServiceLogsHandler(TrainHandler):
    @web.authenticated
    @authorized
    def get(self, name):
        self.send_json({"name": name, "logs": self.manager.services.logs(name)})


class ServiceScoreHandler(TrainHandler):
    @web.authenticated
    @authorized
    async def post(self, name):
        url, headers = self.manager.services.target(name)
        ctype = self.request.headers.get("Content-Type", "application/json")
        try:
            resp = await httpclient.AsyncHTTPClient().fetch(
                url, method="POST", body=self.request.body, headers={**headers, "Content-Type": ctype},
                raise_error=False, request_timeout=PROXY_TIMEOUT_S)
        except OSError as exc:
            raise ServiceUnreachable(f"Service {name!r} did not answer at {url}: {exc}.") from None
        if resp.code == 599:
            raise ServiceUnreachable(f"Service {name!r} did not answer at {url}: {resp.error}.")
        self.set_status(resp.code)
        self.set_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
        self.finish(resp.body)
