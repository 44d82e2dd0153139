"""A notebook executed with nbclient (a real kernel) against a real headless server."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

WIDGET = "application/vnd.jupyter.widget-view+json"
TRAIN_CELL = """%%train --experiment nb --wait --out r --tag source=nbclient -- --n 3
import argparse
from kernel_lib.tracking import Run
p = argparse.ArgumentParser(); p.add_argument("--n", type=int); a = p.parse_args()
for i in range(a.n):
    print("epoch", i, flush=True)
    Run.get_context().log("loss", 1.0 / (i + 1))
"""


def test_notebook_runs_train_cells_end_to_end(headless, workspace_dir, monkeypatch, tmp_path):
    headless(workspace_dir)
    monkeypatch.setenv("JUPYTER_TRAIN_WORKSPACE", str(workspace_dir))  # the kernel inherits it
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "%load_ext kernel_lib",
        TRAIN_CELL,
        "r.get_metrics()['loss']",
        "%train_runs nb",
        "%%train --experiment nb\nprint('quick')",
        "_.wait_for_completion()['status']",
        "from kernel_lib import RunDetails\nRunDetails(r).show()",
        "%%train --bogus\nprint(1)",
    )]
    nb.cells[-1].metadata["tags"] = ["raises-exception"]  # the reply is an error; go on
    NotebookClient(nb, timeout=180, kernel_name="python3").execute()

    outs = [c.outputs for c in nb.cells]
    streamed = "".join(o.get("text", "") for o in outs[1] if o.output_type == "stream")
    assert "epoch 0\nepoch 1\nepoch 2\n" in streamed and "Status: Completed" in streamed
    result = [o for o in outs[1] if o.output_type == "execute_result"][0]
    assert WIDGET in result.data and "Completed" in result.data["text/html"]  # static summary
    assert outs[2][0].data["text/plain"] == "[1.0, 0.5, 0.3333333333333333]"
    assert "<table class='jupyter-train-runs'>" in outs[3][0].data["text/html"]
    assert WIDGET in outs[4][0].data  # returned at once, the monitor shown
    assert outs[5][0].data["text/plain"] == "'Completed'"  # the Run was in _
    # RunDetails(run).show() at the end of a cell: the monitor once, no repr after it
    shown = [o for o in outs[6] if o.output_type in ("display_data", "execute_result")]
    assert len(shown) == 1 and WIDGET in shown[0].data and shown[0].output_type == "display_data"
    # IPython prints a UsageError as a message on stderr: no stack trace
    err = "".join(o.get("text", "") for o in outs[7])
    assert [o.output_type for o in outs[7]] == ["stream"] and outs[7][0].name == "stderr"
    assert "UsageError: unrecognized arguments: --bogus" in err and "usage: %%train" in err
    assert "Traceback" not in err

    # in plain Python, show() prints the run in words, not an object's repr
    run_id = result.data["text/html"].split("<code>")[1].split("</code>")[0]
    code = ("from kernel_lib import Experiment, Run, RunDetails, Workspace\n"
            f"RunDetails(Run(Experiment(Workspace.default(), 'nb'), {run_id!r})).show()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, JUPYTER_TRAIN_WORKSPACE=str(workspace_dir)))
    assert out.returncode == 0, out.stderr
    assert f"Run {run_id} of experiment nb: Completed" in out.stdout and "loss" in out.stdout
    assert "RunMonitor" not in out.stdout and "object at 0x" not in out.stdout

    saved = tmp_path / "executed.ipynb"
    nbformat.write(nb, saved)
    assert "jupyter-train-run" in saved.read_text()
