"""Checks responses against jupyter_ext/openapi.yaml: the one contract for every client.

The OpenAPI -> JSON Schema conversion is the server's own (jupyter_ext/schema.py), which checks
every request against the same file."""

from __future__ import annotations

import re

from jupyter_ext.schema import SPEC_PATH, ApiSpec


class Contract(ApiSpec):
    def __init__(self, path=SPEC_PATH):
        super().__init__(path)
        self.paths = []
        for template in self.spec["paths"]:
            regex = re.sub(r"\\{(path|name)\\}$", r"(.+)", re.escape(template))
            regex = re.sub(r"\\{[a-z_]+\\}", r"[^/]+", regex)
            self.paths.append((template, re.compile(f"^{regex}$")))

    def match(self, path: str) -> str | None:
        path = "/" + path.strip("/")
        for template, regex in sorted(self.paths, key=lambda p: -len(p[0])):
            if regex.match(path):
                return template
        return None

    def validate(self, method: str, path: str, status: int, body) -> None:
        template = self.match(path)
        assert template, f"{path} is not in openapi.yaml"
        op = self.operation(template, method)
        assert op, f"{method} {template} is not in openapi.yaml"
        response = op["responses"].get(str(status))
        assert response, f"{method} {template} answered {status}, which openapi.yaml does not list"
        if "$ref" in response:
            response = self.resolve(response["$ref"])
        schema = (response.get("content", {}).get("application/json") or {}).get("schema")
        if schema is None or not isinstance(body, (dict, list)):
            return
        self.validator(schema, request=False).validate(body)

    def _resolve(self, ref: str):
        return self.resolve(ref)
