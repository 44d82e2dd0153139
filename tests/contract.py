"""Checks responses against jupyter_ext/openapi.yaml: the one contract for every client."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parent.parent / "jupyter_ext" / "openapi.yaml"


def _to_jsonschema(node):
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null type, refs stay."""
    if isinstance(node, dict):
        node = {k: _to_jsonschema(v) for k, v in node.items()}
        if node.pop("nullable", False):
            t = node.get("type")
            if t is not None:
                node["type"] = [t, "null"]
        node.pop("format", None) if node.get("type") == "string" else None
        return node
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    return node


class Contract:
    def __init__(self, path=SPEC_PATH):
        self.spec = yaml.safe_load(Path(path).read_text())
        self.doc = _to_jsonschema(copy.deepcopy(self.spec))
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
        op = self.spec["paths"][template].get(method.lower())
        assert op, f"{method} {template} is not in openapi.yaml"
        response = op["responses"].get(str(status))
        assert response, f"{method} {template} answered {status}, which openapi.yaml does not list"
        if "$ref" in response:
            response = self._resolve(response["$ref"])
        schema = (response.get("content", {}).get("application/json") or {}).get("schema")
        if schema is None or not isinstance(body, (dict, list)):
            return
        resolver_doc = dict(self.doc)
        jsonschema.validate(body, {**_to_jsonschema(schema), "components": resolver_doc["components"]})

    def _resolve(self, ref: str):
        node = self.spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node
