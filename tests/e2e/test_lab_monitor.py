"""A real browser (Playwright driving Debian's chromium) runs a %%train cell in JupyterLab and
watches the run monitor: the chart gains points and the status reaches Completed."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]

CELLS = [
    "%load_ext kernel_lib",
    "%%train --experiment e2e -- --epochs 12\n"
    "import argparse, time\n"
    "from kernel_lib.tracking import Run\n"
    "p = argparse.ArgumentParser(); p.add_argument('--epochs', type=int); a = p.parse_args()\n"
    "run = Run.get_context()\n"
    "for epoch in range(a.epochs):\n"
    "    time.sleep(0.5)\n"
    "    run.log('loss', 1.0 / (epoch + 1)); run.log('val_acc', epoch / a.epochs); run.log('epoch', epoch)\n"
    "    print(f'epoch {epoch} done', flush=True)\n"
    "    if epoch == 2:  # an image (a real 24x12 PNG), shown by the monitor\n"
    "        import struct, zlib\n"
    "        c = lambda k, d: struct.pack('>I', len(d)) + k + d + struct.pack('>I', zlib.crc32(k + d))\n"
    "        open('pic.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + c(b'IHDR', struct.pack('>IIBBBBB', 24, 12, 8, 2, 0, 0, 0))\n"
    "            + c(b'IDAT', zlib.compress(b''.join(b'\\x00' + b'\\xc8\\x00\\x00' * 24 for _ in range(12)))) + c(b'IEND', b''))\n"
    "        run.log_image('sample', path='pic.png')\n"
    "import os; os.makedirs('outputs', exist_ok=True); open('outputs/summary.txt', 'w').write('ok')\n",
    "import time\ntime.sleep(8)  # the kernel is busy here while the run goes on",
    "from kernel_lib import Experiment, Workspace\nExperiment(Workspace.default(), 'e2e').get_runs()[0]",
]


def _need(component_ok: bool, what: str):
    if not component_ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is missing; .ci/run installs it")
        pytest.skip(f"{what} is not installed")


def start_lab(tmp_path, cells, kernel_workspace=None):
    """JupyterLab with the extension on its own workspace; kernels use ``kernel_workspace``
    (default: the same one)."""
    _need(os.path.exists(CHROMIUM), "Debian's chromium (/usr/bin/chromium)")
    _need(shutil.which("jupyter-lab") is not None, "jupyterlab")
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "e2e.ipynb").write_text(json.dumps(nb))
    ws = tmp_path / "workspace"
    token = secrets.token_hex(16)
    # No "get notified about Jupyter news?" toast over the page (it would hide our notifications).
    settings = tmp_path / "lsettings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = dict(os.environ, JUPYTER_TRAIN_WORKSPACE=str(kernel_workspace or ws), JUPYTER_TOKEN=token,
               JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lws"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lsettings"))
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--port=0", "--ip=127.0.0.1",
            f"--ServerApp.root_dir={root}", f"--TrainApp.workspace_dir={ws}"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline and url is None:
            try:
                info = json.loads((ws / "server.json").read_text())
                if info.get("pid") == proc.pid and ":0/" not in info["url"]:
                    url = info["url"].replace("localhost", "127.0.0.1")
            except (FileNotFoundError, ValueError):
                pass
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            time.sleep(0.2)
        assert url, "JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-3000:]
        return proc, log, (url, token, tmp_path)
    except BaseException:
        stop_lab(proc, log)
        raise


def stop_lab(proc, log):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        log.close()


@pytest.fixture
def lab(tmp_path):
    proc, log, info = start_lab(tmp_path, CELLS)
    yield info
    stop_lab(proc, log)


@pytest.fixture
def browser_page():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def wait_kernel_idle(page, url, token, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = page.request.get(f"{url}api/kernels?token={token}")
        kernels = resp.json() if resp.ok else None  # an error's body is a dict: ask again
        if isinstance(kernels, list) and kernels and all(k["execution_state"] == "idle" for k in kernels):
            return
        page.wait_for_timeout(200)
    raise AssertionError("the notebook's kernel did not become idle")


def open_and_run_all(page, url, token, ui="lab"):
    path = "lab/tree" if ui == "lab" else "notebooks"
    page.goto(f"{url}{path}/e2e.ipynb?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    wait_kernel_idle(page, url, token)
    # The kernel can be idle on the server before this page's session has connected to it; a
    # Run All in that window does nothing. Retry until the first cell shows it was sent.
    first_prompt = page.locator(".jp-Cell").first.locator(".jp-InputPrompt")
    for _attempt in range(4):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function("(el) => !/\\[\\s*\\]/.test(el.textContent)",
                                   arg=first_prompt.element_handle(), timeout=10_000)
            return
        except Exception:
            continue
    raise AssertionError("the notebook never started running its cells")


@contextlib.contextmanager
def recording(page, out, name):
    """A screenshot if the block fails; every screenshot of the test copied to test-results/."""
    try:
        yield
    except Exception:
        page.screenshot(path=str(out / f"{name}-failure.png"))
        raise
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for png in out.glob("*.png"):
            shutil.copy(png, ARTIFACTS / png.name)


@contextlib.contextmanager
def lab_session(tmp_path, cells, page, name, kernel_workspace=None):
    """JupyterLab for one test, recorded, and stopped at the end: yields (url, token, out)."""
    proc, log, info = start_lab(tmp_path, cells, kernel_workspace)
    try:
        with recording(page, info[2], name):
            yield info
    finally:
        stop_lab(proc, log)


def test_train_cell_in_jupyterlab_shows_a_live_monitor(lab, browser_page):
    url, token, out = lab
    page = browser_page
    with recording(page, out, "monitor"):
        open_and_run_all(page, url, token)
        status = page.locator("[data-testid=jt-status]")
        status.wait_for(timeout=60_000)
        page.wait_for_function(
            "document.querySelector('[data-testid=jt-status]').textContent === 'Running'",
            timeout=60_000)
        line = ".jt-monitor >> nth=0 >> [data-testid=jt-chart] [data-testid=jp-train-chart][data-metric=loss]"
        page.locator(line).wait_for(timeout=30_000)
        first = int(page.locator(line).get_attribute("data-points"))
        # the chart keeps gaining points while the kernel is busy in the next cell
        busy = page.locator(".jp-Cell").nth(2).locator(".jp-InputPrompt", has_text="[*]")
        busy.wait_for(timeout=30_000)
        deadline = time.monotonic() + 30
        while int(page.locator(line).get_attribute("data-points")) <= first + 1:
            assert time.monotonic() < deadline, "no new points while the kernel was busy"
            page.wait_for_timeout(100)
        assert busy.is_visible(), "the sleeping cell finished before the chart moved"
        page.screenshot(path=str(out / "monitor-running.png"))
        first_status = page.locator("[data-testid=jt-status]").first
        page.wait_for_function(
            "document.querySelector('[data-testid=jt-status]').textContent === 'Completed'",
            timeout=90_000)
        # the stream sends the last points before Completed; the chart draws them on its next
        # animation frame (run_monitor.js redrawChart), which may come just after the status text
        page.wait_for_function(
            "() => { const c = document.querySelector('.jt-monitor [data-testid=jt-chart] "
            "[data-testid=jp-train-chart][data-metric=loss]'); return c && c.dataset.points === '12'; }",
            timeout=10_000)
        points = int(page.locator(line).get_attribute("data-points"))
        assert first < points == 12 and first_status.inner_text() == "Completed"
        monitor = page.locator(".jt-monitor").first
        assert "live from the server" in monitor.inner_text()
        assert "epoch 11 done" in monitor.locator("[data-testid=jt-log]").inner_text()
        page.wait_for_timeout(500)  # the bar's width transition
        assert monitor.locator(".jt-bar-fill").inner_text() == "100%"
        # the image the run logged, fetched from the run's files by the page (naturalWidth: it loaded)
        image = monitor.locator("[data-testid=jt-images] figure[data-image='outputs/images/sample.png'] img")
        image.wait_for(timeout=10_000)
        page.wait_for_function("el => el.complete && el.naturalWidth === 24", arg=image.element_handle(),
                               timeout=10_000)
        link = monitor.locator("[data-testid=jt-links] a", has_text="outputs/summary.txt")
        link.wait_for(timeout=10_000)
        assert page.request.get(url.rstrip("/") + link.get_attribute("href")).text() == "ok"
        page.screenshot(path=str(out / "monitor-completed.png"))

        # after a kernel restart, re-displaying the run re-attaches to its full history
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        page.evaluate("document.querySelectorAll('.jt-monitor').forEach(e => e.dataset.old = '1')")
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel").first.click()
        page.locator(".jp-Dialog-button.jp-mod-accept").click()
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        page.locator(".jp-Cell").nth(3).click()
        page.keyboard.press("Shift+Enter")
        fresh = ".jt-monitor:not([data-old])"
        page.locator(fresh).wait_for(timeout=60_000)
        page.wait_for_function(
            f"document.querySelector('{fresh} [data-testid=jt-status]')?.textContent === 'Completed'"
            f" && document.querySelector('{fresh} [data-testid=jp-train-chart][data-metric=loss]')"
            "?.getAttribute('data-points') === '12'", timeout=60_000)
        page.screenshot(path=str(out / "monitor-reattached.png"))


FAILING_CELLS = [
    "%load_ext kernel_lib",
    "%%train --experiment e2e-fail\n"
    "import time\n"
    "from kernel_lib.tracking import Run\n"
    "for step in range(4):\n"
    "    Run.get_context().log('loss', 1.0 / (step + 1)); time.sleep(0.3)\n"
    "def configure(lr):\n"
    "    raise ValueError(f'learning rate {lr} is out of range')\n"
    "configure(-1)\n",
]


def test_monitor_streams_through_the_kernel_and_shows_the_failure(headless, tmp_path, browser_page):
    """The page's server does not own the run's workspace (a headless server does): the
    monitor falls back to the kernel forwarding the stream, and a failure's traceback shows."""
    other = headless(tmp_path / "other-workspace")
    page = browser_page
    with lab_session(tmp_path, FAILING_CELLS, page, "monitor-kernel",
                     kernel_workspace=other.workspace) as (url, token, out):
        open_and_run_all(page, url, token)
        page.wait_for_function(
            "document.querySelector('[data-testid=jt-status]')?.textContent === 'Failed'", timeout=90_000)
        monitor = page.locator(".jt-monitor").first
        assert "live through the kernel" in monitor.inner_text()
        error = monitor.locator("[data-testid=jt-error]")
        error.wait_for(timeout=10_000)
        text = error.inner_text()
        assert "ValueError: learning rate -1 is out of range" in text
        assert "Traceback (most recent call last)" in text and "configure(-1)" in text
        assert monitor.locator("[data-testid=jp-train-chart][data-metric=loss]").get_attribute("data-points") == "4"
        assert not monitor.locator("[data-testid=jt-cancel]").is_visible()
        page.screenshot(path=str(out / "monitor-failed-through-kernel.png"))


def test_train_cell_in_notebook_7(tmp_path, browser_page):
    _need(shutil.which("jupyter-notebook") is not None, "notebook 7")
    long_cell = "%%train --experiment e2e-cancel\nimport time\nprint('started', flush=True)\ntime.sleep(120)\n"
    page = browser_page
    with lab_session(tmp_path, CELLS[:2] + [long_cell], page, "monitor-notebook7") as (url, token, out):
        open_and_run_all(page, url, token, ui="notebook")
        line = "[data-testid=jt-chart] [data-testid=jp-train-chart][data-metric=loss]"
        page.locator(line).wait_for(timeout=60_000)
        first = int(page.locator(line).get_attribute("data-points"))
        page.wait_for_function(
            "document.querySelector('[data-testid=jt-status]')?.textContent === 'Completed'", timeout=90_000)
        assert first < int(page.locator(line).get_attribute("data-points")) == 12
        # the second monitor's Cancel button stops its run (a POST with the page's XSRF token)
        second = page.locator(".jt-monitor").nth(1)
        second.locator("[data-testid=jt-log]", has_text="started").wait_for(timeout=60_000)
        second.locator("[data-testid=jt-cancel]").click()
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=jt-status]')[1]?.textContent === 'Canceled'",
            timeout=15_000)
        page.screenshot(path=str(out / "monitor-notebook7.png"))
