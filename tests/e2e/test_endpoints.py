"""A deployed model in the JupyterLab panel, driven in Debian's chromium by Playwright: a service
deployed through the SDK (Model.deploy) shows in the Endpoints section, Transitioning, then
Healthy by itself (the section refreshes every 2 s meanwhile), scores what is typed in its try-it
box (an answer, and run()'s error with its traceback), counts its requests, shows its log, opens
its run and is deleted from the panel. Values are checked against the REST API."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kernel_lib import Model, Workspace
from kernel_lib.client import TrainClient
from kernel_lib.webservice import InferenceConfig, LocalWebservice, Webservice
from tests.e2e.test_lab_monitor import lab_session
from tests.e2e.test_sidebar import Lab
from tests.e2e.test_sweep_view import wait_text

SERVICES = Path(__file__).resolve().parents[1] / "scripts" / "services"
NAME = "scaler-svc"
ITEM = f"[data-testid=jp-train-endpoint][data-service='{NAME}']"
ENDPOINTS = "[data-testid=jp-train-endpoints]"
EMPTY = "No endpoints yet. Deploy a model with Model.deploy(...)."
# How long the entry script's init() takes: the service is Transitioning meanwhile, long enough
# that the section's 10 s refresh alone would leave a gap over MAX_GAP_S between its redraws.
INIT_S = 8
MAX_GAP_S = 3.5
# Each redraw of the section: [performance.now(), the item's data-state] (a MutationObserver).
RECORD_REDRAWS = """sel => {
  window.jpTrainRedraws = [];
  const box = document.querySelector(sel);
  new MutationObserver(() => {
    const item = box.querySelector('[data-testid=jp-train-endpoint]');
    window.jpTrainRedraws.push([performance.now(), item ? item.dataset.state : null]);
  }).observe(box, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
}"""


def slow_entry(folder: Path) -> Path:
    """tests/scripts/services/score.py, its init() first sleeping INIT_S seconds."""
    text = (SERVICES / "score.py").read_text()
    assert "def init():\n" in text
    folder.mkdir()
    slow = text.replace("def init():\n", f"def init():\n    __import__('time').sleep({INIT_S})\n", 1)
    (folder / "score.py").write_text(slow)
    return folder


def wait_data(page, selector, key, value, timeout=10_000):
    """Until the element at ``selector`` has ``data-<key>`` == value (it may be redrawn meanwhile)."""
    page.wait_for_function("([sel, k, v]) => document.querySelector(sel)?.dataset[k] === v",
                           arg=[selector, key, value], timeout=timeout)


def score(page, text, status, keyboard=False):
    """Type ``text`` in the try-it box, press Score (or Ctrl+Enter in the box), wait for an answer
    with that HTTP status."""
    item = page.locator(ITEM)
    box = item.locator("[data-testid=jp-train-endpoint-input]")
    box.fill(text)
    if keyboard:
        box.press("Control+Enter")
    else:
        item.locator("[data-testid=jp-train-endpoint-score]").click()
    wait_data(page, f"{ITEM} [data-testid=jp-train-endpoint-answer]", "status", str(status))
    return item.locator("[data-testid=jp-train-endpoint-answer]").inner_text()


def test_endpoint_shows_scores_logs_and_deletes_in_the_panel(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "endpoints") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()
        page.locator("[data-section=endpoints] > summary").click()
        wait_text(page, ENDPOINTS, EMPTY)
        page.evaluate(RECORD_REDRAWS, ENDPOINTS)

        ws_dir = str(tmp_path / "workspace")
        ws = Workspace(ws_dir, _client=TrainClient(ws_dir, url=url, token=token, start=False))
        weights = tmp_path / "weights.json"
        weights.write_text(json.dumps({"scale": 3}))
        model = Model.register(ws, str(weights), "scaler")
        source = slow_entry(tmp_path / "entry")
        svc = Model.deploy(ws, NAME, [model], InferenceConfig(entry_script="score.py", source_directory=str(source)),
                           LocalWebservice.deploy_configuration())
        try:
            # The panel finds the service (its run starting refreshes the section) and follows it
            # to Healthy on its own: every 2 s while it is Transitioning, not the 10 s of the others.
            page.locator(ITEM).wait_for(timeout=15_000)
            assert page.locator(ITEM).get_attribute("data-state") == "Transitioning"
            svc.wait_for_deployment()
            t0 = time.monotonic()
            wait_data(page, ITEM, "state", "Healthy", timeout=15_000)
            print(f"the panel showed Healthy {(time.monotonic() - t0) * 1000:.0f} ms after "
                  "wait_for_deployment() returned")
            redraws = page.evaluate("window.jpTrainRedraws")
            busy = [t for t, state in redraws if state == "Transitioning"]
            healthy = next(t for t, state in redraws if state == "Healthy")
            times = [*busy, healthy]
            gaps = [(b - a) / 1000 for a, b in zip(times, times[1:])]
            print(f"redrawn {len(busy)} times while Transitioning for {(healthy - busy[0]) / 1000:.1f} s, "
                  f"at most {max(gaps):.1f} s apart")
            assert max(gaps) < MAX_GAP_S, f"the section was not refreshed every couple of seconds: {gaps}"

            rest = lab.call("GET", f"services/{NAME}")
            item = page.locator(ITEM)
            assert item.locator(".jp-train-status").get_attribute("data-status") == "Healthy"
            assert item.locator(".jp-train-endpoint-uri").inner_text() == rest["scoring_uri"]
            assert item.locator(".jp-train-endpoint-info").inner_text() == "scaler:1 · auth off"
            assert item.locator(".jp-train-endpoint-traffic").inner_text() == "No requests yet"
            assert item.locator("[data-testid=jp-train-endpoint-input]").input_value() == '{"data": []}'

            # Score from the try-it box: the answer, then run()'s error with its traceback.
            answer = score(page, '{"data": [1, 2]}', 200)
            assert '{"result": [3, 6]}' in answer and "HTTP 200 ·" in answer
            wait_data(page, ITEM, "requests", "1")
            answer = score(page, '{"data": "boom"}', 500, keyboard=True)
            assert "HTTP 500 ·" in answer and "run() raised: ValueError: boom, as asked" in answer
            assert "Traceback" in item.locator(".jp-train-endpoint-answer-detail").inner_text()
            assert item.locator("[data-testid=jp-train-endpoint-answer]").get_attribute("data-ok") == "false"
            wait_data(page, ITEM, "errors", "1")
            assert item.get_attribute("data-requests") == "2"
            rest = lab.call("GET", f"services/{NAME}")
            assert (rest["requests"], rest["errors"]) == (2, 1)
            assert item.locator(".jp-train-endpoint-traffic").inner_text().startswith("2 requests · 1 error · p50 ")
            # the box keeps what was typed across the refreshes
            assert item.locator("[data-testid=jp-train-endpoint-input]").input_value() == '{"data": "boom"}'

            # The log: init() ran, and run()'s traceback went there too.
            item.locator("[data-testid=jp-train-endpoint-log-toggle]").click()
            page.wait_for_function("sel => document.querySelector(sel)?.textContent.includes('init: loaded')",
                                   arg=f"{ITEM} [data-testid=jp-train-endpoint-log]", timeout=10_000)
            assert "ValueError: boom" in item.locator("[data-testid=jp-train-endpoint-log]").inner_text()
            page.screenshot(path=str(out / "endpoints.png"))

            # Its run opens in the main area.
            item.locator(".jp-train-endpoint-run").click()
            page.locator(f"[data-testid=jp-train-runview][data-run-id='{svc.run_id}']").wait_for(timeout=10_000)

            # Delete, confirmed in the dialog: the item goes, and so does the service.
            item.locator("[data-testid=jp-train-endpoint-delete]").click()
            dialog = page.locator(".jp-Dialog")
            assert NAME in dialog.inner_text()
            dialog.locator("button.jp-mod-accept").click()
            page.locator(ITEM).wait_for(state="detached", timeout=30_000)
            wait_text(page, ENDPOINTS, EMPTY)
            assert lab.call("GET", "services")["services"] == []
            assert lab.call("GET", f"runs/{svc.run_id}")["status"] == "Canceled"
        finally:
            if NAME in {s.name for s in Webservice.list(ws)}:
                svc.delete()
