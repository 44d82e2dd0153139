"""The route table and openapi.yaml describe the same API."""

from __future__ import annotations

import re

from jupyter_ext.handlers import ROUTES
from tests.contract import Contract


def _template(pattern: str) -> str:
    t = re.sub(r"\(\?P<([a-z_]+)>[^)]*\)", r"{\1}", pattern)
    return t or "/"


def test_every_route_and_method_is_in_the_contract_and_back():
    contract = Contract()
    from tornado.web import RequestHandler

    served = set()
    for pattern, handler in ROUTES:
        template = _template(pattern)
        for method in ("get", "post", "patch", "put", "delete"):
            impl = getattr(handler, method, None)
            if impl is not None and impl is not getattr(RequestHandler, method):
                served.add((template, method))
    documented = {(path, m) for path, ops in contract.spec["paths"].items()
                  for m in ops if m in ("get", "post", "patch", "put", "delete")}
    assert served == documented


def test_the_contract_catches_a_wrong_response():
    contract = Contract()
    good = {"error_code": "not_found", "message": "No run."}
    contract.validate("GET", "runs/x", 404, good)
    import jsonschema
    import pytest

    with pytest.raises(jsonschema.ValidationError):
        contract.validate("GET", "runs/x", 404, {"message": "no code"})
    with pytest.raises(AssertionError, match="does not list"):
        contract.validate("GET", "runs/x", 418, good)
