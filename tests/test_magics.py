"""%%train and the %train_* line magics in a real IPython shell, against a headless server."""

from __future__ import annotations

import sys

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from kernel_lib.magics import default_experiment, split_line, train_parser

CELL = """
import argparse, time
from kernel_lib.tracking import Run
p = argparse.ArgumentParser(); p.add_argument("--n", type=int, default=2); a = p.parse_args()
run = Run.get_context()
for i in range(a.n):
    print("epoch", i, flush=True)
    run.log("epoch", i)
    run.log("loss", 1.0 / (i + 1))
"""


@pytest.fixture
def ip(headless, workspace_dir, monkeypatch):
    headless(workspace_dir)
    monkeypatch.setenv("JUPYTER_TRAIN_WORKSPACE", str(workspace_dir))
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("kernel_lib")
    yield shell
    shell.user_ns.pop("r", None)


def test_train_wait_streams_and_binds(ip, capsys):
    run = ip.run_cell_magic("train", "--experiment magic --wait --tag a=b --tag c=d=e --out r -- --n 3", CELL)
    out = capsys.readouterr().out
    assert run.status == "Completed" and ip.user_ns["r"] is run
    assert "epoch 0\nepoch 1\nepoch 2\n" in out and "Status: Completed" in out
    assert run.get_tags() == {"a": "b", "c": "d=e"}
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3]
    assert run.get_details()["script"] == "train_cell.py"


def test_train_without_wait_returns_at_once_with_a_monitor(ip):
    run = ip.run_cell_magic("train", "--experiment magic --script fit.py -- --n 2", CELL + "time.sleep(1)\n")
    assert run.status not in ("Completed", "Failed")  # it returned before the run ended
    data, _meta = run._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert run.id in data["text/html"]
    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_details()["script"] == "fit.py"


def test_train_with_a_source_folder(ip, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "helper.py").write_text("ANSWER = 42\n")
    run = ip.run_cell_magic("train", f"--experiment magic --source {tmp_path / 'src'} --wait",
                            "import helper\nprint('answer', helper.ANSWER)\n")
    assert run.status == "Completed" and run.get_log() == "answer 42\n"


@pytest.mark.parametrize("line, cell, words", [
    ("--bogus", CELL, "unrecognized arguments: --bogus"),
    ("--nodes 0", CELL, "must be at least 1"),
    ("--tag novalue", CELL, "write KEY=VALUE"),
    ("--backend mpi", CELL, "invalid choice"),
    ("--out 1x", CELL, "not a valid variable name"),
    ("--script x.txt", CELL, "ending in .py"),
    ("--source /no/such/dir", CELL, "is not a folder"),
    ("--environment bad::1", CELL, "NAME or NAME:VERSION"),
    ("--environment torch:2", CELL, "No version 2 of environment 'torch' is registered"),
    ("--compute gpu-cluster", CELL, "Unknown compute target 'gpu-cluster'"),
    ("--nodes 2 --backend gloo", CELL, "a job of 2 nodes needs a cluster"),
    ("--procs-per-node 2 --backend nccl", CELL, "NCCL needs GPUs and this machine has none. Use communication_backend='Gloo'"),
    ('--experiment "unclosed', CELL, "Cannot parse the options"),
    ('--sweep "--n=choice(1,2)"', CELL, "A sweep needs --max-runs N and --primary"),
    ("--max-runs 3", CELL, "--max-runs need at least one --sweep"),
    ('--sweep "--n=__import__(1)" --max-runs 2 --primary loss:min', CELL, "is not a parameter expression"),
    ('--sweep "--n=choice(1,2)" --max-runs 2 --primary loss', CELL, "write METRIC:max or METRIC:min"),
    ('--sweep "--n=choice(1,2)" --max-runs 2 --primary loss:min --policy bandit', CELL, "write bandit:SLACK_FACTOR"),
    ('--sweep "--n=choice(1,2)" --max-runs 2 --primary loss:min --policy truncation:100', CELL, "truncation_percentage"),
    ('--sweep "--n=uniform(0,1)" --max-runs 2 --primary loss:min --sampling grid', CELL, "grid sampling takes choice"),
    ("", "for i in range(3)\n    print(i)\n", "SyntaxError at line 1 of the cell"),
])
def test_wrong_input_is_a_usage_message_and_submits_nothing(ip, line, cell, words):
    before = ip.run_line_magic("train_runs", "")
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        ip.run_cell_magic("train", line, cell)
    assert len(ip.run_line_magic("train_runs", "").runs) == len(before.runs)


def test_train_sweep_runs_the_cell_as_a_sweep(ip):
    from kernel_lib.hyperdrive import HyperDriveRun

    sweep = ip.run_cell_magic(
        "train", '--experiment magic-sweep --sweep "--n=choice(2, 3, 4)" --sampling grid --max-runs 3 '
        "--concurrent 2 --primary loss:min --policy bandit:0.1 --delay 1", CELL)
    assert isinstance(sweep, HyperDriveRun)
    assert sweep.wait_for_completion()["status"] == "Completed"
    sweep_cfg = sweep.get_details()["properties"]["sweep"]
    assert sweep_cfg["policy"] == {"name": "BanditPolicy", "slack_factor": 0.1, "evaluation_interval": 1,
                                   "delay_evaluation": 1}
    assert sorted(h["--n"] for h in sweep.get_hyperparameters().values()) == [2, 3, 4]
    best = sweep.get_best_run_by_primary_metric()  # the smallest loss: the most epochs
    assert best.get_details()["runDefinition"]["arguments"] == ["--n", "4"]


def test_train_with_a_registered_environment(ip):
    run = ip.run_cell_magic("train", "--experiment magic --environment Curated-PyTorch --wait",
                            "import sys\nprint(sys.executable)\n")
    assert run.status == "Completed" and run.get_log().strip() == sys.executable
    assert run.get_details()["properties"]["environment"]["name"] == "Curated-PyTorch"


def test_line_magics(ip, capsys):
    run = ip.run_cell_magic("train", "--experiment lines --wait", CELL)
    capsys.readouterr()
    table = ip.run_line_magic("train_runs", "lines")
    assert [r["id"] for r in table.runs] == [run.id]
    assert run.id in table._repr_html_() and "Completed" in repr(table)
    ip.run_line_magic("train_logs", run.id)
    assert capsys.readouterr().out == "epoch 0\nepoch 1\n"
    ip.run_line_magic("train_logs", f"{run.id} --follow")
    assert capsys.readouterr().out == "epoch 0\nepoch 1\n"
    ip.run_line_magic("train_status", run.id)
    out = capsys.readouterr().out
    assert f"{run.id}  Completed" in out and "Running" in out
    slow = ip.run_cell_magic("train", "--experiment lines", "import time\nprint('start', flush=True)\ntime.sleep(60)\n")
    ip.run_line_magic("train_cancel", slow.id)
    assert f"{slow.id}: Canceled" in capsys.readouterr().out
    with pytest.raises(UsageError, match="No run 'nope'"):
        ip.run_line_magic("train_status", "nope")
    with pytest.raises(UsageError, match="usage: %train_logs"):
        ip.run_line_magic("train_logs", "")


def test_option_parsing_helpers(monkeypatch):
    assert split_line("--wait -- --lr 0.1 --name 'a b'") == (["--wait"], ["--lr", "0.1", "--name", "a b"])
    args = train_parser().parse_args(["--nodes", "2", "--procs-per-node", "4", "--backend", "gloo", "--mpi"])
    assert (args.nodes, args.procs_per_node, args.backend, args.mpi) == (2, 4, "gloo", True)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/u/My Birds (v2).ipynb")
    assert default_experiment() == "My-Birds-v2"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert default_experiment() == "notebook"
    # --help says what the monitor shows and the progress-bar convention, lines kept as written
    with pytest.raises(UsageError) as help_text:
        train_parser().parse_args(["--help"])
    text = str(help_text.value)
    assert "usage: %train" in text and "\n  progress   a metric `progress` in [0, 1]" in text
    assert "--epochs/--num_epochs" in text and "tqdm" in text and "JUPYTER_TRAIN_SYSTEM_METRICS_INTERVAL" in text
