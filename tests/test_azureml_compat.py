"""A training script written for Azure ML SDK v1 (``from azureml.core import Run``) runs
unmodified and logs into its run; the compatibility module exists for that job only."""

from __future__ import annotations

import subprocess
import sys


async def test_an_unmodified_azureml_v1_script_logs_into_its_run(api):
    assert subprocess.run([sys.executable, "-c", "import azureml.core"], capture_output=True).returncode != 0
    run = await api.wait((await api.submit("azureml_v1.py"))["id"])
    log = (await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt"))["text"]
    assert run["status"] == "Completed", log
    assert f"run id {run['id']} experiment exp" in log
    assert "has submit_child: False" in log  # a service-only call reads as absent, not a crash
    assert "child ok" in log  # the job's child processes import it too
    points = (await api.call("GET", f"runs/{run['id']}/metrics"))["items"]
    series = {}
    for p in points:
        series.setdefault(p["name"], []).append(p["value"])
    assert series == {"lr": [0.01], "loss": [1.0, 0.5, 1 / 3], "accuracies": [0.5, 0.75],
                      "confusion/tp": [5], "confusion/fp": [1]}
    assert run["tags"] == {"framework": "pytorch", "stage": "v1-script"}
    files = (await api.call("GET", f"runs/{run['id']}/files"))["files"]
    assert "outputs/notes.txt" in files
    # nothing was installed: the server's interpreter still has no azureml
    assert subprocess.run([sys.executable, "-c", "import azureml.core"], capture_output=True).returncode != 0


async def test_our_azureml_core_goes_ahead_of_an_installed_sdk_unless_turned_off(api, tmp_path):
    """Where the job's environment has Azure ML's SDK (here a fake one, a regular package that
    extends its path as azureml-core's does), the script still logs into its run; another
    azureml.* package of that SDK stays importable; JUPYTER_TRAIN_AZUREML_COMPAT=0 keeps the SDK."""
    site = tmp_path / "site" / "azureml"
    (site / "core").mkdir(parents=True)
    (site / "__init__.py").write_text("__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    (site / "core" / "__init__.py").write_text("REAL = True\n")
    (site / "mlflow").mkdir()
    (site / "mlflow" / "__init__.py").write_text("SDK_PART = True\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "probe.py").write_text(
        "import azureml.core, azureml.mlflow\n"
        "print('real' if getattr(azureml.core, 'REAL', False) else 'ours', azureml.mlflow.SDK_PART)\n"
        "if not getattr(azureml.core, 'REAL', False):\n"
        "    azureml.core.Run.get_context().log('logged', 1)\n")
    for env, said in (({}, "ours True"), ({"JUPYTER_TRAIN_AZUREML_COMPAT": "0"}, "real True")):
        body = {"experiment": "exp", "source_directory": str(src), "script": "probe.py",
                "environment_variables": {"PYTHONPATH": str(tmp_path / "site"), **env}}
        run = await api.wait((await api.call("POST", "runs", body, expect=201))["id"])
        log = (await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt"))["text"]
        assert run["status"] == "Completed" and log.strip() == said, log
        points = (await api.call("GET", f"runs/{run['id']}/metrics"))["items"]
        assert [p["name"] for p in points] == (["logged"] if said.startswith("ours") else [])
