"""The panel's Datasets section, in Debian's chromium driven by Playwright: empty, it says how
to register a dataset; datasets registered through the REST API show with their versions
(newest first), file counts, sizes and datastore, and the runs that used each version, which
open from there. Screenshots land in the test's folder (and test-results/)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SCRIPTS
from tests.e2e.test_lab_monitor import lab_session
from tests.e2e.test_sidebar import Lab

SECTION = "[data-testid=jp-train-datasets]"
VERSION = SECTION + " [data-dataset='{}'] [data-version='{}']"


def test_panel_lists_datasets_with_versions_sizes_and_runs(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "panel-datasets") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()
        page.locator("[data-section=datasets] summary").click()
        empty = page.locator(f"{SECTION} .jp-train-empty")
        empty.wait_for(timeout=15_000)
        assert ('Dataset.File.from_files(path=(ws.get_default_datastore(), "fowl/**")).register(ws, "fowl")'
                in empty.inner_text())
        page.screenshot(path=str(out / "panel-datasets-empty.png"))

        # Two files in the default datastore's folder: version 1 of "fowl".
        store = next(d for d in lab.call("GET", "datastores")["datastores"] if d["default"])
        assert store["name"] == "workspaceblobstore"
        folder = Path(store["path"]) / "fowl"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hen.txt").write_text("cluck")  # 5 bytes
        (folder / "duck.txt").write_text("quack!")  # 6 bytes
        paths = [{"datastore": "workspaceblobstore", "path": "fowl/**"}]
        v1 = lab.call("POST", "datasets", {"name": "fowl", "paths": paths,
                                          "description": "birds of the farm"}, expect=201)
        assert (v1["version"], v1["files"], v1["size"]) == (1, 2, 11)

        # A run reads version 1 (downloaded to its node).
        run = lab.submit("read_data.py", ["--data", "DatasetConsumptionConfig:fowl"], experiment="birds",
                         datasets=[{"name": "fowl", "dataset": "fowl", "version": 1, "mode": "download"}])
        lab.wait_status(run["id"], ("Completed",))

        # A third file, 1500 bytes: version 2, which no run has used yet.
        (folder / "goose.bin").write_bytes(b"g" * 1500)
        v2 = lab.call("POST", "datasets", {"name": "fowl", "paths": paths, "create_new_version": True},
                      expect=201)
        assert (v2["version"], v2["files"], v2["size"]) == (2, 3, 1511)
        assert [d["runs"] for d in lab.call("GET", "datasets")["datasets"]] == [[run["id"]], []]

        # The section shows both versions, newest first (the refresh button: no 10 s wait).
        page.locator("[data-testid=jp-train-refresh]").click()
        second = page.locator(VERSION.format("fowl", 2))
        second.wait_for(timeout=15_000)
        dataset = page.locator(f"{SECTION} [data-dataset=fowl]")
        assert dataset.locator(".jp-train-dataset-name").inner_text() == "fowl"
        assert dataset.locator(".jp-train-dataset-kind").inner_text() == "file · 2 versions"
        versions = dataset.locator("[data-version]").evaluate_all("els => els.map(e => e.dataset.version)")
        assert versions == ["2", "1"]
        first = page.locator(VERSION.format("fowl", 1))
        assert second.locator(".jp-train-dataset-summary").inner_text() == "v2 · 3 files · 1.5 KB"
        assert first.locator(".jp-train-dataset-summary").inner_text() == "v1 · 2 files · 11 B"
        assert (first.get_attribute("data-files"), first.get_attribute("data-size")) == ("2", "11")
        assert first.locator(".jp-train-dataset-source").inner_text() == "workspaceblobstore: fowl/**"
        assert first.locator(".jp-train-dataset-description").inner_text() == "birds of the farm"
        assert first.locator(".jp-train-run-time").inner_text().strip() != ""
        assert second.locator("[data-testid=jp-train-dataset-runs]").inner_text() == "not used by a run yet"
        assert first.locator("[data-testid=jp-train-dataset-runs]").inner_text() == f"used by 1 run: {run['id']}"
        page.screenshot(path=str(out / "panel-datasets.png"))

        # The run that used version 1 opens from its link.
        first.locator(f"a[data-run-id='{run['id']}']").click()
        view = page.locator(f"[data-testid=jp-train-runview][data-run-id='{run['id']}']")
        view.wait_for(timeout=10_000)
        view.locator("[data-testid=jp-train-overview]").wait_for(timeout=10_000)
        page.screenshot(path=str(out / "panel-datasets-run.png"))
        overview = view.locator("[data-testid=jp-train-overview]").inner_text()
        assert "fowl = fowl:1 (download)" in overview  # the version the run read, and how
