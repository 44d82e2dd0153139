"""Images and Azure ML's table metrics logged from a script (kernel_lib.tracking and the Azure ML
compatibility module): files in the run's outputs/ while it runs, metrics in Azure ML's shapes,
bad input refused with a warning while the script goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel_lib import Experiment, ScriptRunConfig
from kernel_lib import tracking_files
from kernel_lib.tracking import Run as TrackingRun

SCRIPTS = str(Path(__file__).resolve().parent / "scripts")
CONFUSION = {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
             "data": {"class_labels": ["bird", "cat"], "matrix": [[5, 1], [2, 7]]}}


@pytest.mark.parametrize("azureml", [False, True], ids=["tracking", "azureml"])
def test_a_script_logs_images_and_tables_into_its_run(ws, tmp_path, azureml):
    args = ["--azureml"] if azureml else []
    run = Experiment(ws, "images").submit(ScriptRunConfig(SCRIPTS, "log_images.py", arguments=args))
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", run.get_log()
    metrics = run.get_metrics()
    assert metrics["curve"] == ["outputs/images/curve.png", "outputs/images/curve_1.png"]
    assert metrics["figure"] == "outputs/images/figure.png"
    assert metrics["confusion"] == CONFUSION  # a dict, as Azure ML's get_metrics answers it
    assert metrics["accuracy"]["schema_type"] == "accuracy_table"
    assert metrics["accuracy"]["data"]["probability_thresholds"] == [0.0, 0.5]
    assert metrics["per_class/precision"] == [0.8, 0.9] and metrics["loss"] == [1.0, 0.5]
    assert not {"broken", "broken_json", "notes", "../../escape"} & set(metrics)
    files = run.get_file_names()
    for name in ("outputs/images/curve.png", "outputs/images/curve_1.png", "outputs/images/figure.png",
                 "outputs/tables/confusion.json", "outputs/tables/accuracy.json"):
        assert name in files, files
    assert not [f for f in files if "escape" in f or "notes" in f or "broken" in f]
    red = Path(run.download_file("outputs/images/curve.png", str(tmp_path / "c.png"))).read_bytes()
    assert red.startswith(b"\x89PNG") and len(red) > 40
    log = run.get_log()
    for said in ("there is no file 'nope.png'", "is not an image file", "data.matrix must be 1 rows of 1",
                 "the text is not JSON"):
        assert said in log, log
    assert "done" in log  # it went on after each refusal


def test_an_image_is_in_the_runs_history_while_the_run_is_live(ws):
    run = Experiment(ws, "images").submit(ScriptRunConfig(SCRIPTS, "log_images.py", arguments=["--sleep", "8"]))
    from tests.conftest import wait_for_log

    wait_for_log(run, "first image logged")
    assert "outputs/images/curve.png" in run.get_file_names()  # served before the run ends
    assert ws.client.get(f"/runs/{run.id}")["status"] == "Running"
    run.cancel()


def test_refusals_write_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JUPYTER_TRAIN_RUN_DIR", raising=False)
    run = TrackingRun(None, None)
    (tmp_path / "notes.txt").write_text("x")
    assert run.log_image("a", path="missing.png") is None
    assert run.log_image("a", path="notes.txt") is None
    assert run.log_image("a") is None and run.log_image("a", path="x.png", plot=object()) is None
    assert run.log_image("a", plot=object()) is None  # no savefig
    run.log_confusion_matrix("m", {"schema_type": "accuracy_table", "data": {}})
    run.log_confusion_matrix("m", {**CONFUSION, "data": {"class_labels": ["a", "b"], "matrix": [[1, "x"], [1, 2]]}})
    run.log_accuracy_table("t", {"schema_type": "accuracy_table", "data": {"probability_tables": [1]}})
    run.log_confusion_matrix("m", {**CONFUSION, "data": {"class_labels": ["a"], "matrix": [[float("nan")]]}})
    run.log_table("t", "not a dict")
    said = capsys.readouterr().err
    assert said.count("nothing was recorded") == 9 and "refused" in said
    assert not (tmp_path / "outputs").exists() or not any(p.is_file() for p in (tmp_path / "outputs").rglob("*"))


def test_image_names_stay_inside_images_and_earlier_ones_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JUPYTER_TRAIN_RUN_DIR", raising=False)
    (tmp_path / "p.png").write_bytes(b"\x89PNG fake")
    assert tracking_files.file_stem("../../etc/passwd") == "_.._etc_passwd"
    assert tracking_files.save_image("../../etc/passwd", path="p.png") == "outputs/images/_.._etc_passwd.png"
    assert [tracking_files.save_image("loss curve", path="p.png") for _ in range(3)] == \
        ["outputs/images/loss_curve.png", "outputs/images/loss_curve_1.png", "outputs/images/loss_curve_2.png"]
    assert sorted(os.listdir(tmp_path / "outputs" / "images")) == \
        ["_.._etc_passwd.png", "loss_curve.png", "loss_curve_1.png", "loss_curve_2.png"]
    big = {**CONFUSION, "data": {"class_labels": list(range(70)), "matrix": [[1] * 70 for _ in range(70)]}}
    assert tracking_files.save_table("big", tracking_files.confusion_matrix("big", big)) == "outputs/tables/big.json"
