"""The in-script API: offline behaviour, buffered writes, steps, values, and a flush at exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def run_script(code, tmp_path, env_extra=None, metrics=True):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[1])}
    if metrics:
        env.update({"JUPYTER_TRAIN_RUN_ID": "r1", "JUPYTER_TRAIN_METRICS_DIR": str(tmp_path / "m")})
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=60)


def records(tmp_path, rank=0):
    path = tmp_path / "m" / f"rank_{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_run_prints_and_keeps_going(tmp_path):
    r = run_script("""
        from kernel_lib.tracking import Run
        run = Run.get_context()
        assert run.offline and run.id == "offline"
        run.log("acc", 0.5)
        print("after")
    """, tmp_path, metrics=False)
    assert r.returncode == 0, r.stderr
    assert "acc = 0.5 (step 0)" in r.stdout and "after" in r.stdout


def test_logs_are_buffered_and_flushed_at_exit_with_steps(tmp_path):
    r = run_script("""
        import os, time
        from kernel_lib.tracking import Run
        run = Run.get_context()
        for i in range(1000):
            run.log("loss", float(i))
        run.log("acc", 0.9, step=7)
        run.log_list("lst", [1, 2])
        run.log_row("table", a=1, b=2.5)
        run.tag("stage", "fit")
    """, tmp_path, {"JUPYTER_TRAIN_FLUSH_S": "60"})  # no periodic flush: only the atexit one
    assert r.returncode == 0, r.stderr
    recs = records(tmp_path)
    loss = [x for x in recs if x.get("n") == "loss"]
    assert [x["s"] for x in loss] == list(range(1000)) and loss[-1]["v"] == 999.0
    names = {(x["n"], x["s"]) for x in recs if x["k"] == "m"}
    assert {("acc", 7), ("lst", 0), ("lst", 1), ("table/a", 0), ("table/b", 0)} <= names
    assert {"k": "t", "n": "stage", "v": "fit"} in recs


def test_periodic_flush_without_exit(tmp_path):
    r = run_script("""
        import os, time
        from kernel_lib.tracking import Run
        run = Run.get_context()
        run.log("x", 1)
        time.sleep(0.5)
        print(open(os.path.join(os.environ["JUPYTER_TRAIN_METRICS_DIR"], "rank_0.jsonl")).read(), flush=True)
        os._exit(0)  # no atexit: what is on disk came from the background flush
    """, tmp_path)
    assert '"n":"x"' in r.stdout


def test_rank_file_and_odd_values(tmp_path):
    r = run_script("""
        import math
        from kernel_lib.tracking import Run
        class Scalar:  # like a 0-d tensor or a numpy scalar
            def item(self): return 2.5
        class Vector:
            def item(self): raise ValueError("only one element tensors can be converted")
        run = Run.get_context()
        run.log("s", Scalar()); run.log("v", Vector()); run.log("nan", math.nan); run.log("b", True)
        run.log(123, 1.0); run.log("x" * 300, 1.0)
    """, tmp_path, {"RANK": "3"})
    assert r.returncode == 0
    vals = {x["n"]: x["v"] for x in records(tmp_path, 3)}
    assert vals == {"s": 2.5, "nan": "nan", "b": 1}
    assert "more than one element" in r.stderr and "metric name 123 refused" in r.stderr
