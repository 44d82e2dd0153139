"""GET /train/api tells the sidebar where the workspace is in the file browser, if it is there:
inside the server's root and not hidden (the contents API refuses hidden paths)."""

from __future__ import annotations

import pytest

CASES = [("projects/train-ws", "projects/train-ws"), (".hidden/ws", None), (None, None)]


@pytest.fixture(params=CASES, ids=["inside", "hidden", "outside"])
def case(request):
    return request.param


@pytest.fixture
def workspace_dir(jp_root_dir, tmp_path, case):
    rel = case[0]
    return jp_root_dir / rel if rel else tmp_path / "elsewhere" / "ws"


async def test_contents_path_of_the_workspace(case, api, jp_fetch):
    info = await api.call("GET", "")
    assert info["contents_path"] == case[1]
    if case[1]:
        resp = await jp_fetch("api", "contents", *case[1].split("/"))
        assert resp.code == 200  # the file browser can open what the sidebar links to
