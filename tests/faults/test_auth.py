"""Every endpoint of openapi.yaml, every method, refuses a client without the server's token (or
with a wrong one): 403 with a JSON error, and the WebSocket endpoints refuse the upgrade. The
list comes from the spec, so a new endpoint is covered the day it is documented (and
tests/test_contract.py makes sure every route is documented)."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from tests.contract import Contract
from tests.faults.test_bad_input import UPGRADE, fetch  # noqa: F401 (fetch is a fixture)

CONTRACT = Contract()
CREDENTIALS = {"no token": {}, "a wrong token": {"Authorization": "token not-the-token"}}


def refused(resp) -> bool:
    """403 (or 401) with a JSON body that has error_code and message."""
    if resp.code not in (401, 403):
        return False
    try:
        body = json.loads(resp.body)
    except ValueError:
        return False
    return isinstance(body, dict) and "error_code" in body and "message" in body


async def test_every_endpoint_refuses_a_client_without_the_token(api, fetch, jp_ws_fetch, fault):
    run = await api.wait((await api.submit("count.py", ["--n", 1]))["id"])
    await api.call("POST", "models", {"name": "m", "run_id": run["id"], "path": "outputs/result.txt"},
                   expect=201)
    samples = {"run_id": run["id"], "name": "m", "version": "1", "path": "result.txt"}
    per_template = {"/computes/{name}": "local", "/environments/{name}": "Curated-PyTorch",
                    "/runs/{run_id}/logs/{name}": "rank_0.txt",
                    "/runs/{run_id}/files/{name}": "outputs/result.txt"}
    answered = []
    for template, method in CONTRACT.operations():
        path = template.replace("{name}", per_template.get(template, "{name}"))
        for key, value in samples.items():
            path = path.replace("{%s}" % key, value)
        path = "" if path == "/" else path
        websocket = CONTRACT.is_websocket(template, method)
        for who, headers in CREDENTIALS.items():
            resp = await fetch(method, path, body=None if method in ("GET", "DELETE") else "{}",
                               headers={**headers, **(UPGRADE if websocket else {})}, auth=False, timeout=5)
            ok = refused(resp)
            if websocket:  # and a real WebSocket client is refused the upgrade
                with pytest.raises(HTTPClientError) as info:
                    await jp_ws_fetch("train", "api", *path.strip("/").split("/"),
                                      headers={"Authorization": headers.get("Authorization", "")})
                ok = ok and info.value.code == 403
            fault.record(f"endpoint without auth: {method} {template}", survived=ok, lost=int(not ok),
                         unit="answered")
            if not ok:
                answered.append(f"{method} {path} with {who}: {resp.code} {resp.body[:200]!r}")
    assert not answered, "answered without the server's token:\n" + "\n".join(answered)
    assert len(CONTRACT.operations()) >= 20


async def test_paths_with_no_endpoint_refuse_before_saying_so(fetch):
    for method in ("GET", "POST", "DELETE"):
        resp = await fetch(method, "/no/such/endpoint", body=None if method != "POST" else "{}", auth=False)
        assert refused(resp), (method, resp.code, resp.body[:200])


async def test_a_token_in_the_query_string_must_be_the_right_one(fetch, jp_auth_header):
    resp = await fetch("GET", "/runs", query="token=not-the-token", auth=False)
    assert refused(resp), resp.code
    token = jp_auth_header["Authorization"].split()[-1]
    resp = await fetch("GET", "/runs", query=f"token={token}", auth=False)
    assert resp.code == 200  # Jupyter's own query parameter is not refused as unknown
