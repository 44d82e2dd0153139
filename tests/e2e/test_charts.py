"""The metric charts in a real browser (Playwright + Debian's chromium): the run view's Metrics
tab and the notebook run monitor draw the same chart (kernel_lib/widgets/chart.js). Checked:
ticks on both axes, the legend toggling lines, the hover read-out, smoothing, log y, x by wall
time, zoom and reset, a line per rank, the System section with a line per node, that every
number on a chart is readable (inside the chart, not overlapping, >= 10 px, contrast >= 3:1) in
the light and the dark theme at 1400x900, the monitor's log pane following rank 0 (and the
failing rank) and its progress bar from tqdm. Screenshots go to the test's folder and
test-results/; the render time of 12 charts x 4 lines x 1000 points is printed."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from tests.e2e.readable import check_readable, element_shot, switch_theme
from tests.e2e.test_lab_monitor import lab_session, open_and_run_all
from tests.e2e.test_sidebar import Lab

CHART_JS = Path(__file__).resolve().parents[2] / "kernel_lib" / "widgets" / "chart.js"

# A run with a line per rank (rank 1 written through its own Run, as a second process would)
# and system metrics of two nodes (the record's rank is the node index).
CHARTS_SCRIPT = textwrap.dedent("""\
    import math, os, sys, time
    from jupyter_ext.contract import ENV_METRICS_DIR, ENV_RUN_ID
    from kernel_lib.tracking import Run
    r0 = Run.get_context()
    r1 = Run(os.environ[ENV_RUN_ID], os.environ[ENV_METRICS_DIR], 1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    for i in range(n):
        r0.log("loss", 2.0 * math.exp(-i / 15) + 0.1 + 0.05 * math.sin(i))
        r1.log("loss", 2.2 * math.exp(-i / 14) + 0.1 + 0.05 * math.cos(i))
        r0.log("accuracy", min(1.0, i / 50))
        r0.log("lr", 0.00073 * 0.97 ** i)
        r0.log("tokens", 1200.0 * i)
        if i % 3 == 0:
            for node, run in ((0, r0), (1, r1)):
                run.log("system/cpu_percent", 40 + 10 * node + (i % 7), step=i)
                run.log("system/gpu_0_memory_mb", 1500 + 300 * node + 5 * i, step=i)
        time.sleep(0.02)
    r0.flush(); r1.flush()
    print("done", flush=True)
""")

# 12 charts x 4 lines x 1000 points drawn by the page's chart (the one the panel bundles).
BENCH_JS = """async (source) => {
  const m = await import(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
  const mk = (k) => Array.from({ length: 1000 }, (_, i) => [i, Math.exp(-i / 300) * (1 + k / 10) + Math.random() * 0.05, 1e9 + i]);
  const sections = [{ id: 'metrics', charts: Array.from({ length: 12 }, (_, c) => ({ metric: 'm' + c,
    series: [0, 1, 2, 3].map(k => ({ label: 'rank ' + k, points: mk(k), color: k })) })) }];
  const group = new m.ChartGroup();
  group.element.style.width = '1300px';
  document.body.appendChild(group.element);
  const times = [];
  for (let i = 0; i < 5; i++) { const t = performance.now(); group.setSections(sections); group.body.getBoundingClientRect(); times.push(performance.now() - t); }
  group.element.remove();
  return times;
}"""


def tick_texts(chart, axis):
    return chart.locator(f"text.jp-train-chart-tick[data-axis={axis}]").evaluate_all("els => els.map(e => e.textContent)")


def test_run_view_charts_features_and_readability(tmp_path, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    src = tmp_path / "src"
    src.mkdir()
    (src / "charts.py").write_text(CHARTS_SCRIPT)
    with lab_session(tmp_path, ["print('hello')"], page, "charts") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()
        run = lab.call("POST", "runs", {"experiment": "charts", "source_directory": str(src),
                                        "script": "charts.py", "arguments": []}, expect=201)
        lab.wait_status(run["id"], ("Completed", "Failed"), timeout=90)
        lab.row_status(run["id"], "Completed")
        view = lab.open_run(run["id"], "metrics")
        loss = view.locator("[data-section=metrics] [data-testid=jp-train-chart][data-metric=loss]")
        loss.wait_for(timeout=15_000)

        # small multiples: one chart per metric, a line per rank; ticks on both axes
        metrics = view.locator("[data-section=metrics] [data-testid=jp-train-chart]")
        assert sorted(metrics.evaluate_all("els => els.map(e => e.dataset.metric)")) == ["accuracy", "loss", "lr", "tokens"]
        assert loss.locator(".jp-train-chart-legend-item").all_inner_texts() == ["rank 0", "rank 1"]
        assert loss.locator("path.jp-train-series").count() == 2
        assert len(tick_texts(loss, "x")) >= 3 and len(tick_texts(loss, "y")) >= 3
        assert loss.locator(".jp-train-chart-grid line").count() >= 6
        lr_ticks = tick_texts(view.locator("[data-testid=jp-train-chart][data-metric=lr]"), "y")
        assert all(re.fullmatch(r"\d(\.\d+)?e-4|0\.000\d+|0", t) for t in lr_ticks), lr_ticks
        assert any(t.endswith("k") for t in tick_texts(view.locator("[data-testid=jp-train-chart][data-metric=tokens]"), "y"))

        # the System section: a chart per system metric, a line per node, readable titles
        system = view.locator("[data-section=system]")
        assert system.locator("h3").inner_text() == "System"
        titles = system.locator("figcaption").all_inner_texts()
        assert {"CPU utilization (%)", "GPU 0 memory (MB)"} <= set(titles), titles  # (and the recorder's)
        assert system.locator("[data-testid=jp-train-chart][data-metric='system/cpu_percent']").locator(
            ".jp-train-chart-legend-item").all_inner_texts() == ["node 0", "node 1"]
        page.screenshot(path=str(out / "charts-run-view.png"))
        element_shot(system, str(out / "charts-system-section.png"))

        # legend toggles a line
        loss.locator(".jp-train-chart-legend-item[data-series='rank 1']").click()
        assert loss.locator("path.jp-train-series").count() == 1
        loss.locator(".jp-train-chart-legend-item[data-series='rank 1']").click()
        assert loss.locator("path.jp-train-series").count() == 2

        # hover read-out: every visible line's value at the nearest step
        box = loss.locator("svg").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
        readout = loss.locator("[data-testid=jp-train-chart-readout]")
        readout.wait_for(timeout=5_000)
        text = readout.inner_text()
        assert re.search(r"step \d+", text) and "rank 0: " in text and "rank 1: " in text, text
        assert loss.locator(".jp-train-chart-rule").get_attribute("visibility") == "visible"

        # smoothing: the line changes, the raw one stays faint beneath, the read-out shows both
        before = loss.locator("path.jp-train-series").first.get_attribute("d")
        view.locator("[data-testid=jp-train-chart-smoothing]").evaluate(
            "el => { el.value = '0.8'; el.dispatchEvent(new Event('input')); }")
        smoothed = loss.locator("path[data-smoothed=true]").first
        assert smoothed.get_attribute("d") != before
        assert loss.locator("path.jp-train-series-raw").first.get_attribute("d") == before
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        assert "(raw " in loss.locator("[data-testid=jp-train-chart-readout]").inner_text()
        page.mouse.move(0, 0)

        # log y: drawn where every value is > 0; the toolbar says why not elsewhere
        view.locator("[data-testid=jp-train-chart-log]").check()
        assert loss.get_attribute("data-log") == "true"
        note = view.locator("[data-testid=jp-train-chart-note]").inner_text()
        assert "accuracy" in note and "> 0" in note, note
        view.locator("[data-testid=jp-train-chart-log]").uncheck()
        view.locator("[data-testid=jp-train-chart-smoothing]").evaluate(
            "el => { el.value = '0'; el.dispatchEvent(new Event('input')); }")

        # zoom: drag across a plot; double-click resets; so does the toolbar's button
        full = tick_texts(loss, "x")
        loss.scroll_into_view_if_needed()
        box = loss.locator("svg").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
        zoomed = tick_texts(loss, "x")
        assert zoomed != full and max(map(float, zoomed)) < max(map(float, full)), (full, zoomed)
        assert tick_texts(view.locator("[data-testid=jp-train-chart][data-metric=accuracy]"), "x") == zoomed  # together
        assert view.locator("[data-testid=jp-train-chart-reset]").is_enabled()
        loss.locator("svg").dblclick()
        assert tick_texts(loss, "x") == full
        box = loss.locator("svg").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
        assert tick_texts(loss, "x") != full
        view.locator("[data-testid=jp-train-chart-reset]").click()
        assert tick_texts(loss, "x") == full
        page.mouse.move(0, 0)

        # x by wall time on a finished run: the server's view sends each point's time (times=1)
        view.locator("[data-testid=jp-train-chart-x]").select_option("time")
        assert loss.locator(".jp-train-chart-axis-label").text_content() == "wall time (s)"
        assert loss.locator("path.jp-train-series").count() == 2 and len(tick_texts(loss, "x")) >= 3
        view.locator("[data-testid=jp-train-chart-x]").select_option("step")

        # every number readable, light then dark
        n = check_readable(page, f"[data-testid=jp-train-runview][data-run-id='{run['id']}']", "light")
        switch_theme(page, "JupyterLab Dark", light=False)
        check_readable(page, f"[data-testid=jp-train-runview][data-run-id='{run['id']}']", "dark")
        page.screenshot(path=str(out / "charts-run-view-dark.png"))
        print(f"{n} chart labels readable in light and dark")

        # render time: 12 charts x 4 lines x 1000 points (the chart.js file the monitor loads)
        times = page.evaluate(BENCH_JS, CHART_JS.read_text())
        print("render 12 charts x 4 lines x 1000 points: " + ", ".join(f"{t:.0f} ms" for t in times)
              + f" (median {sorted(times)[2]:.0f} ms)")
        assert sorted(times)[2] < 2000


MONITOR_CELLS = [
    "%load_ext kernel_lib",
    "%%train --experiment monitor-charts\n"
    "import sys, time\n"
    "from kernel_lib.tracking import Run\n"
    "run = Run.get_context()\n"
    "print('training started', flush=True)\n"
    "for i in range(20):\n"
    "    run.log('loss', 1.0 / (i + 1)); run.log('accuracy', i / 20)\n"
    "    sys.stderr.write(f'\\r{(i + 1) * 5:3d}%|' + '#' * (i // 2) + ' ' * (10 - i // 2) + f'| {i + 1}/20 [00:0{i // 10}<00:01,  2.50it/s]')\n"
    "    sys.stderr.flush(); time.sleep(0.4)\n"
    "sys.stderr.write('\\n')\n",
    "%%train --experiment monitor-fail --procs-per-node 2 --backend gloo\n"
    "import os, time\n"
    "from kernel_lib.tracking import Run\n"
    "rank = int(os.environ['RANK'])\n"
    "Run.get_context().log('loss', 1.0 + rank)\n"
    "print(f'rank {rank} up', flush=True)\n"
    "if rank == 1:\n"
    "    time.sleep(2)\n"
    "    raise RuntimeError('rank one broke')\n"
    "time.sleep(60)\n",
]


def test_monitor_charts_log_pane_and_progress(tmp_path, browser_page, monkeypatch):
    from jupyter_ext import contract

    monkeypatch.setenv(contract.ENV_SYSTEM_METRICS_INTERVAL, "0.5")  # the server's recorder, sampling
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    with lab_session(tmp_path, MONITOR_CELLS, page, "monitor-charts") as (url, token, out):
        open_and_run_all(page, url, token)
        monitor = page.locator(".jt-monitor").first
        # before the first point: the chart says it waits, not a blank area
        monitor.locator("[data-testid=jt-chart]").wait_for(timeout=60_000)
        # the log pane switches to rank 0 as soon as it appears
        page.wait_for_function(
            "document.querySelector('.jt-monitor [data-testid=jt-rank]')?.value === 'rank_0.txt'", timeout=60_000)
        monitor.locator("[data-testid=jt-log]", has_text="training started").wait_for(timeout=30_000)
        loss = monitor.locator("[data-testid=jp-train-chart][data-metric=loss]")
        loss.wait_for(timeout=30_000)
        # one chart per metric, each with its own y axis, and the checkboxes show the colours
        assert monitor.locator("[data-testid=jp-train-chart][data-metric=accuracy]").count() == 1
        assert monitor.locator(".jt-picks .jt-pick-keys .jp-train-series-key").count() >= 2
        # the node's system metrics appear in their own section while the run is running
        page.wait_for_function(
            "document.querySelector('.jt-monitor [data-section=system] [data-testid=jp-train-chart]"
            "[data-metric=\"system/cpu_utilization_percentage\"]') !== null", timeout=30_000)
        assert monitor.locator("[data-testid=jt-status]").inner_text() == "Running"
        assert monitor.locator("[data-section=system] h3").inner_text() == "System"
        page.wait_for_function(
            "document.querySelector('.jt-monitor [data-testid=jt-status]').textContent === 'Completed'", timeout=90_000)
        # the progress bar from the script's tqdm output in rank 0's log
        progress = monitor.locator("[data-testid=jt-progress]")
        page.wait_for_function("el => el.querySelector('.jt-bar-label').textContent === '20/20'",
                               arg=progress.element_handle(), timeout=10_000)
        assert progress.get_attribute("data-source") == "tqdm"
        assert monitor.locator(".jt-bar-fill").inner_text() == "100%"
        assert loss.get_attribute("data-points") == "20"
        # x by wall time (the stream's points carry timestamps)
        monitor.locator("[data-testid=jp-train-chart-x]").select_option("time")
        assert loss.locator(".jp-train-chart-axis-label").text_content() == "wall time (s)"
        assert len(tick_texts(loss, "x")) >= 3
        monitor.locator("[data-testid=jp-train-chart-x]").select_option("step")
        check_readable(page, ".jt-monitor", "monitor, light")
        element_shot(monitor, str(out / "charts-monitor.png"))
        switch_theme(page, "JupyterLab Dark", light=False)
        check_readable(page, ".jt-monitor", "monitor, dark")
        element_shot(monitor, str(out / "charts-monitor-dark.png"))

        # a distributed run whose rank 1 fails: the log pane shows rank 1
        failing = page.locator(".jt-monitor").nth(1)
        page.wait_for_function(
            "document.querySelectorAll('.jt-monitor [data-testid=jt-status]')[1]?.textContent === 'Failed'",
            timeout=120_000)
        page.wait_for_function(
            "document.querySelectorAll('.jt-monitor [data-testid=jt-rank]')[1]?.value === 'rank_1.txt'", timeout=15_000)
        assert "rank one broke" in failing.locator("[data-testid=jt-log]").inner_text()
        element_shot(failing, str(out / "charts-monitor-failed-rank.png"))


def test_system_section_from_the_real_recorder(tmp_path, browser_page, monkeypatch):
    """The supervisor's system-metrics recorder (jupyter_ext/launcher/sysmetrics.py), sampling
    every 0.3 s: its metrics appear in the run view's System section while the run is still
    running and grow as it goes, a line per node; after the run, the charts are the series it
    recorded."""
    from jupyter_ext import contract

    monkeypatch.setenv(contract.ENV_SYSTEM_METRICS_INTERVAL, "0.3")
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    src = tmp_path / "src"
    src.mkdir()
    stop = tmp_path / "stop"
    (src / "busy.py").write_text(
        "import os, sys, time\nt = time.time()\n"
        "while not os.path.exists(sys.argv[1]) and time.time() - t < 120:\n    sum(range(10000))\n")
    with lab_session(tmp_path, ["print('hello')"], page, "charts-recorder") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()
        run = lab.call("POST", "runs", {"experiment": "recorder", "source_directory": str(src),
                                        "script": "busy.py", "arguments": [str(stop)]}, expect=201)
        lab.row_status(run["id"], "Running")
        view = lab.open_run(run["id"], "metrics")
        system = view.locator("[data-section=system]")
        cpu = system.locator("[data-testid=jp-train-chart][data-metric='system/cpu_utilization_percentage']")
        cpu.wait_for(timeout=30_000)
        # (charts are drawn anew on each update: wait by selector, not on an element handle)
        in_system = f"[data-testid=jp-train-runview][data-run-id='{run['id']}'] [data-section=system]"
        cpu_points = (f"Number(document.querySelector(\"{in_system} [data-testid=jp-train-chart]"
                      "[data-metric='system/cpu_utilization_percentage']\")?.dataset.points ?? 0)")
        page.wait_for_function(f"{cpu_points} >= 2", timeout=15_000)
        seen = int(cpu.get_attribute("data-points"))
        # ... and more points stream in while it runs
        page.wait_for_function(f"{cpu_points} >= {seen + 3}", timeout=15_000)
        assert lab.call("GET", f"runs/{run['id']}")["status"] == "Running"
        stop.write_text("")
        lab.wait_status(run["id"], ("Completed", "Failed"), timeout=60)
        lab.row_status(run["id"], "Completed")
        series = lab.call("GET", f"runs/{run['id']}/metrics/series?points=0")["series"]
        recorded = [s["name"] for s in series if s["name"].startswith("system/") and s["numeric"] >= 2]
        assert recorded, f"the recorder wrote no system/ series with 2+ points: {[s['name'] for s in series]}"
        page.wait_for_function(f"document.querySelectorAll(\"{in_system} [data-testid=jp-train-chart]\").length"
                               f" === {len(recorded)}", timeout=15_000)
        charts = system.locator("[data-testid=jp-train-chart]")
        assert sorted(charts.evaluate_all("els => els.map(e => e.dataset.metric)")) == sorted(recorded)
        titles = system.locator("figcaption").all_inner_texts()
        assert not [t for t in titles if "system/" in t or "_" in t], titles
        assert charts.first.locator(".jp-train-chart-legend-item").all_inner_texts() == ["node 0"]
        element_shot(system, str(out / "charts-system-recorder.png"))
        check_readable(page, in_system, "system, light")
        print("recorder's charts:", ", ".join(titles))
