"""The JupyterLab sidebar follows the workspace live: a run submitted through the REST API
appears in the panel and moves to Completed without a refresh (Playwright + Debian chromium)."""

from __future__ import annotations

import json
import time

from tests.conftest import SCRIPTS
from tests.e2e.test_lab_monitor import lab_session


def test_sidebar_shows_new_runs_live(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "sidebar") as (url, token, out):
        page.goto(f"{url}lab?token={token}")
        tab = page.locator(".lm-TabBar-tab[data-id='jupyter-train-sidebar']")
        tab.wait_for(timeout=60_000)
        tab.click()
        page.locator("[data-testid=jp-train-sidebar]").wait_for(timeout=30_000)
        page.locator("[data-testid=jp-train-sidebar][data-live=true]").wait_for(timeout=30_000)
        body = {"experiment": "sidebar", "source_directory": str(SCRIPTS), "script": "count.py",
                "arguments": ["--n", 10, "--sleep", 0.2]}
        t0 = time.monotonic()
        resp = page.request.post(f"{url}train/api/runs", data=json.dumps(body),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        assert resp.status == 201, resp.text()
        run_id = resp.json()["id"]
        row = page.locator(f"[data-testid=jp-train-run-row][data-run-id='{run_id}']")
        row.wait_for(timeout=10_000)
        appeared = time.monotonic() - t0
        print(f"run appeared in the sidebar {appeared * 1000:.0f} ms after the POST")
        page.wait_for_function(
            f"document.querySelector(\"[data-run-id='{run_id}']\")?.dataset.status === 'Completed'",
            timeout=60_000)
        page.screenshot(path=str(out / "sidebar-live.png"))
        assert appeared < 5  # the goal is 1 s; a shared machine gets slack here
