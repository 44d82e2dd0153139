"""The API contract, ``jupyter_ext/openapi.yaml``, as JSON Schema: the server checks every request
against it before anything reaches the RunManager (handlers/validate.py), and the tests check
every response against it (tests/contract.py). One copy of the OpenAPI 3.0 -> JSON Schema
conversion for both. Framework-free: plain strings, bytes and dicts in, InvalidRequest out.

Beyond what a schema says, every request obeys two rules: no string (or object key) holds a NUL
character or a lone UTF-16 surrogate, and JSON numbers are finite (no NaN, no 1e400).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml
from jsonschema.exceptions import relevance

from .errors import InvalidRequest

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
SERVER_QUERY_PARAMETERS = frozenset({"token", "_xsrf", "no_track_activity"})  # Jupyter's, on any URL
MAX_PATH_BYTES, MAX_NAME_BYTES = 4095, 255
_INTEGER = re.compile(r"^-?[0-9]+$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SIZE_KEYWORDS = ("maxItems", "maxLength", "maxProperties")  # their own words, not x-error's
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "object": "an object", "array": "a list", "boolean": "true or false", "null": "null"}


def to_jsonschema(node):
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null type (or, beside a $ref,
    an anyOf with null); everything else (refs, formats, x- extensions) stays."""
    if isinstance(node, list):
        return [to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: to_jsonschema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def _is_int(checker, instance) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)  # 1.5 and 2.0 are not


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("path")
def _is_path(value) -> bool:
    """A path this machine can open: at most 4095 bytes, each name at most 255."""
    if not isinstance(value, str):
        return True
    raw = value.encode("utf-8", "surrogatepass")
    return len(raw) <= MAX_PATH_BYTES and all(len(p) <= MAX_NAME_BYTES for p in raw.split(b"/"))


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_int))


class ApiSpec:
    """openapi.yaml, loaded once: its operations and a validator for each request part."""

    def __init__(self, path: str | Path = SPEC_PATH):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: 7x faster
        self.spec = yaml.load(Path(path).read_text(), Loader=loader)
        self.doc = to_jsonschema(self.spec)
        self._validators: dict[tuple[int, bool], object] = {}  # by id of the spec's own dict

    # -- the operations --------------------------------------------------------------------
    def operations(self) -> list[tuple[str, str]]:
        """Every (path template, METHOD) of the contract."""
        return [(t, m.upper()) for t, ops in self.spec["paths"].items() for m in ops if m in HTTP_METHODS]

    def methods(self, template: str) -> list[str]:
        return [m.upper() for m in self.spec["paths"].get(template, {}) if m in HTTP_METHODS]

    def operation(self, template: str, method: str) -> dict | None:
        return self.spec["paths"].get(template, {}).get(method.lower())

    def is_websocket(self, template: str, method: str = "GET") -> bool:
        op = self.operation(template, method) or {}
        return "101" in op.get("responses", {})

    def parameters(self, template: str, method: str) -> dict[tuple[str, str], dict]:
        """(in, name) -> parameter (refs resolved), the operation's over the path's."""
        params = {}
        for p in self.spec["paths"][template].get("parameters", []) + \
                (self.operation(template, method) or {}).get("parameters", []):
            p = self.resolve(p["$ref"]) if "$ref" in p else p
            params[(p["in"], p["name"])] = p
        return params

    def path_parameters(self, template: str) -> list[str]:
        return re.findall(r"\{([a-z_]+)\}", template)

    def resolve(self, ref: str):
        """What a local $ref ("#/components/...") names, in the spec as written."""
        node = self.spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def validator(self, schema: dict, request: bool = True):
        """A validator of ``schema`` (OpenAPI form) that resolves the contract's $refs: for a
        request, integers are strict (2.0 is not one) and formats are checked."""
        key = (id(schema), request)
        if key not in self._validators:
            root = {**to_jsonschema(self.inline(schema)), "components": self.doc["components"]}
            self._validators[key] = Validator(root, format_checker=_FORMATS) if request else \
                jsonschema.Draft202012Validator(root)
        return self._validators[key]

    def inline(self, node, seen: tuple = ()):
        """``node`` with each local $ref replaced by what it names (its siblings kept), so that
        validating looks nothing up; a $ref back into itself stays (components resolve it)."""
        if isinstance(node, list):
            return [self.inline(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**self.inline(self.resolve(ref), seen + (ref,)), **self.inline(rest, seen)}
        return {k: self.inline(v, seen) for k, v in node.items()}

    # -- a request ---------------------------------------------------------------------------
    def check_request(self, template: str, method: str, path_params: dict[str, str],
                      query: dict[str, list[bytes]], body: bytes | None):
        """Check one request of operation ``method template``; returns (path parameters, query
        parameters, body) with their declared types (the body is None when the operation takes
        none). Raises InvalidRequest naming the field and what to give instead."""
        params = self.parameters(template, method)
        path = {name: self._check_parameter(params.get(("path", name)), name, value)
                for name, value in path_params.items()}
        taken = sorted(name for where, name in params if where == "query")
        checked_query = {}
        for name, values in query.items():
            if name in SERVER_QUERY_PARAMETERS or _cache_buster(name, values):
                continue
            if ("query", name) not in params:
                raise InvalidRequest(
                    f"Unknown query parameter {name!r} for {method} {template}; it takes "
                    f"{', '.join(taken) if taken else 'none'} (see jupyter_ext/openapi.yaml).",
                    field=name)
            checked_query[name] = [self._check_parameter(params[("query", name)], name,
                                                         _query_text(name, v)) for v in values]
        op = self.operation(template, method) or {}
        if "requestBody" not in op:
            return path, checked_query, None
        content = op["requestBody"]["content"]
        if "application/json" not in content:
            return path, checked_query, None  # a body of any text (a service's input): the handler's
        schema = content["application/json"]["schema"]
        instance = parse_json_body(body)
        self._check(schema, instance, "")
        return path, checked_query, instance

    def _check_parameter(self, param: dict | None, name: str, raw: str):
        if param is None:  # a route parameter the contract does not describe: a string
            return raw
        if "\x00" in raw:
            raise InvalidRequest(f"{name}: must not contain a NUL character (\\x00); remove it.", field=name)
        schema = param.get("schema", {})
        target = self.resolve(schema["$ref"]) if "$ref" in schema else schema
        value = _coerce(target.get("type", "string"), raw)
        if value is _BAD:
            raise InvalidRequest(f"{name}={_show(raw)}: must be {_TYPE_WORDS[target['type']]}.", field=name)
        self._check(schema, value, name, shown=f"{name}={_show(raw)}")
        return value

    def _check(self, schema: dict, instance, prefix: str, shown: str | None = None) -> None:
        check_text(instance, prefix)
        errors = list(self.validator(schema).iter_errors(instance))
        if errors:
            error = _innermost(max(errors, key=relevance))
            field = _field(prefix, error.absolute_path)
            raise InvalidRequest(f"{shown or field or 'The request body'}: {_explain(error, shown is None)}",
                                 field=field or "body")


def parse_json_body(body: bytes | None):
    """The request body as JSON (an empty body is ``{}``); numbers must be finite."""
    if not body or not body.strip():
        return {}
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not UTF-8; send JSON encoded as UTF-8.") from None
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply; send a flatter JSON object.") from None
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc}); send a JSON object, "
                             "with Content-Type: application/json.") from None


def check_text(instance, prefix: str = "") -> None:
    """No NUL character and no lone surrogate in any string or object key of ``instance``."""
    stack = [(prefix, instance)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            _check_string(node, where or "The request body", "")
        elif isinstance(node, dict):
            for key, value in node.items():
                _check_string(key, where or "The request body", f" (in the key {_show(key)})")
                stack.append((_field(where, [key]), value))
        elif isinstance(node, list):
            stack.extend((_field(where, [i]), v) for i, v in enumerate(node))


def _check_string(text: str, where: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidRequest(f"{where}: must not contain a NUL character (\\x00){what}; remove it.",
                             field=where)
    if _SURROGATE.search(text):
        raise InvalidRequest(f"{where}: holds a lone UTF-16 surrogate{what}; send valid Unicode text.",
                             field=where)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _query_text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"Query parameter {name!r} is not UTF-8; percent-encode UTF-8 text.",
                             field=name) from None


_BAD = object()


def _coerce(kind, raw: str):
    """A query or path parameter (text) as its declared type; _BAD when it is not one."""
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "integer":
        if not _INTEGER.match(raw):
            return _BAD
        sign = -1 if raw.startswith("-") else 1
        return sign * 10**30 if len(raw.lstrip("-")) > 30 else int(raw)  # out of range, said so
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            return _BAD
        return value if math.isfinite(value) else _BAD
    if kind == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(raw.lower(), _BAD)
    return raw


def _innermost(error):
    """Into an anyOf/oneOf when all but a null branch failed: its own error says more."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        branches = [b for b in error.validator_value if b != {"type": "null"}]
        if len(branches) != 1 or "x-error" in error.schema:
            break
        error = max(error.context, key=relevance)
    return error


def _field(prefix: str, path) -> str:
    out = prefix
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{_show(part)}]"
    return out


def _show(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"


def _explain(error, show_value: bool = True) -> str:
    """What is wrong with the value and what to send instead, in words."""
    schema, value, kw = error.schema, error.validator_value, error.validator
    was = f" (got {_show(error.instance)})" if show_value else ""
    key_of = "propertyNames" in error.schema_path
    got = f"the key {_show(error.instance)} " if key_of else ""
    if "x-error" in schema and kw not in _SIZE_KEYWORDS:
        return f"{got}{schema['x-error']}."
    if kw == "type":
        kinds = value if isinstance(value, list) else [value]
        return f"{got}must be {' or '.join(_TYPE_WORDS[k] for k in kinds)}, not {_json_type(error.instance)}."
    if kw in ("minimum", "exclusiveMinimum"):
        return f"{got}must be at least {value + (kw == 'exclusiveMinimum')}{was}."
    if kw in ("maximum", "exclusiveMaximum"):
        return f"{got}must be at most {value - (kw == 'exclusiveMaximum')}{was}."
    if kw == "enum":
        return f"{got}must be one of {', '.join(map(str, value))}{was}."
    if kw == "required":
        missing = [k for k in value if k not in error.instance]
        return f"{', '.join(map(repr, missing))} is required."
    if kw == "additionalProperties":
        unknown = sorted(set(error.instance) - set(schema.get("properties", {})))
        return (f"Unknown field(s) {unknown}; allowed: {', '.join(sorted(schema.get('properties', {})))}.")
    if kw == "minLength":
        return f"{got}must not be empty." if value == 1 else f"{got}must have at least {value} characters."
    if kw == "maxLength":
        return f"{got}must have at most {value} characters."
    if kw == "maxItems":
        return f"must have at most {value} items."
    if kw == "maxProperties":
        return f"must have at most {value} entries."
    if kw == "format" and value == "path":
        return (f"{got}must be a path of at most {MAX_PATH_BYTES} bytes whose names have at most "
                f"{MAX_NAME_BYTES} bytes.")
    if kw in ("oneOf", "anyOf"):
        kinds = [_TYPE_WORDS.get(b.get("type"), "another form") if isinstance(b.get("type"), str)
                 else "another form" for b in value if isinstance(b, dict)]
        return f"must be {' or '.join(kinds)}, not {_json_type(error.instance)}."
    return f"{got}{error.message}."


def _json_type(value) -> str:
    for kind, types in (("null", type(None)), ("true or false", bool), ("an integer", int),
                        ("a number", float), ("a string", str), ("a list", list), ("an object", dict)):
        if isinstance(value, types):
            return f"{kind} ({_show(value, 30)})" if kind in ("an integer", "a number", "a string") else kind
    return type(value).__name__


@lru_cache(maxsize=1)
def api_spec() -> ApiSpec:
    """The server's copy, loaded once."""
    return ApiSpec()


def _cache_buster(name: str, values: list[bytes]) -> bool:
    """JupyterLab's ServerConnection appends ``?<milliseconds>`` (a name, no value) to every GET
    so that no cache answers it: that is not a parameter of ours, and never refused."""
    return name.isdigit() and all(not v for v in values)
