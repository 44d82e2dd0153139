"""Entry point of every training process: ``python -m jupyter_ext.launcher.rank_entry SCRIPT ARGS``.

Runs in the process that runs the user's script (no extra process): it completes the
environment contract (Azure ML and torchrun names, also under mpirun), sends this rank's
stdout and stderr to ``logs/rank_N.txt``, records its pid so a cancel can always reach it,
expands ``$VAR`` in the arguments per process, runs the script as ``__main__``, and on an
uncaught exception leaves ``errors/rank_N.json`` (time, rank, last traceback line) so the run's
error can name the rank that failed first rather than the ones it brought down.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback

from .. import contract
from . import payload


def complete_env(env=os.environ) -> int:
    """Fill in the variables a DDP or Azure ML script expects; returns the global rank."""
    if "OMPI_COMM_WORLD_RANK" in env and "RANK" not in env:  # under mpirun
        rank = int(env["OMPI_COMM_WORLD_RANK"])
        world = int(env["OMPI_COMM_WORLD_SIZE"])
        per_node = int(env.get(contract.ENV_PROCS_PER_NODE) or env.get("OMPI_COMM_WORLD_LOCAL_SIZE", world))
        env.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank % per_node),
                    "LOCAL_WORLD_SIZE": str(per_node), "NODE_RANK": str(rank // per_node)})
        env.setdefault("MASTER_ADDR", "127.0.0.1")
    rank = int(env.get("RANK", "0"))
    env.setdefault("WORLD_SIZE", "1")
    env.setdefault("LOCAL_RANK", "0")
    env.setdefault("LOCAL_WORLD_SIZE", "1")
    env.setdefault("NODE_RANK", env.get("GROUP_RANK", "0"))
    if "MASTER_ADDR" in env and "MASTER_PORT" in env:
        env.setdefault("AZ_BATCHAI_PYTORCH_INIT_METHOD", f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}")
    env.setdefault("AZ_BATCHAI_TASK_INDEX", env["NODE_RANK"])
    gpus = env.get(contract.ENV_NODE_GPUS)  # "0,1;2,3": the GPUs of each node, for mpirun
    if gpus:
        per_node = gpus.split(";")
        env["CUDA_VISIBLE_DEVICES"] = per_node[int(env["NODE_RANK"]) % len(per_node)]
    return rank


def dataset_args(args: list[str], env=os.environ) -> list[str]:
    """``args`` with each ``DatasetConsumptionConfig:<name>`` (whole, or after ``--opt=``)
    replaced by input ``<name>``'s path on this node (contract.ENV_INPUT_DATASETS)."""
    inputs = json.loads(env.get(contract.ENV_INPUT_DATASETS) or "{}")
    if not inputs:
        return args
    prefix = contract.DATASET_ARG_PREFIX

    def sub(arg: str) -> str:
        head, eq, tail = arg.partition("=") if arg.startswith("-") and "=" in arg else ("", "", arg)
        if tail.startswith(prefix) and tail[len(prefix):] in inputs:
            return head + eq + inputs[tail[len(prefix):]]["path"]
        return arg

    return [sub(a) for a in args]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m jupyter_ext.launcher.rank_entry SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    rank = complete_env()
    run_dir = os.environ.get(contract.ENV_RUN_DIR)
    if run_dir:
        fd = os.open(os.path.join(run_dir, "logs", f"rank_{rank}.txt"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        _write_json(os.path.join(run_dir, "pids", f"rank_{rank}.json"), {"pid": os.getpid(), "rank": rank})
    script, args = argv[0], dataset_args([os.path.expandvars(a) for a in argv[1:]])
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    azureml_compat()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, str):
            sys.stderr.write(code + "\n")
            return 1
        return int(code or 0)
    except BaseException as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.stderr.write("".join(tb))
        sys.stderr.flush()
        if run_dir:
            last = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
            _write_json(os.path.join(run_dir, "errors", f"rank_{rank}.json"),
                        {"rank": rank, "ts": time.time(), "message": last, "traceback": "".join(tb)[-20000:]})
        return 1
    return 0


def azureml_compat() -> None:
    """Scripts written for Azure ML SDK v1 (``from azureml.core import Run``) run unmodified:
    kernel_lib/compat (an ``azureml`` package with ``core.Run`` backed by kernel_lib.tracking) is
    put on this process's path and PYTHONPATH (for its children). Where the environment has the
    real SDK (a layered environment sees the kernel's), ours goes ahead of it: inside a run the
    SDK's ``Run.get_context()`` is an offline run that records nothing. Other ``azureml.*``
    packages stay importable (ours extends its path). ``JUPYTER_TRAIN_AZUREML_COMPAT=0`` leaves
    an installed SDK alone. Nothing is installed; other jobs never see it."""
    import importlib.util

    compat = payload.compat_dir()  # None: no kernel_lib here, no tracking to back the module with
    if not compat or compat in sys.path:
        return
    try:
        found = importlib.util.find_spec("azureml.core")
    except (ImportError, ValueError):
        found = None
    installed = found is not None and not os.path.abspath(found.origin or "").startswith(compat + os.sep)
    if installed and os.environ.get(contract.ENV_AZUREML_COMPAT) == "0":
        return
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if installed:
        sys.path.insert(1 if sys.path else 0, compat)  # after the script's folder
        os.environ["PYTHONPATH"] = os.pathsep.join([compat, *old])
    else:
        sys.path.append(compat)
        os.environ["PYTHONPATH"] = os.pathsep.join([*old, compat])
    for name in [m for m in sys.modules if m == "azureml" or m.startswith("azureml.")]:
        del sys.modules[name]  # imported by find_spec from where it was before


def _write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown, after what a normal exit does for Python code:
    wait for non-daemon threads, run atexit handlers (the metrics flush), flush stdio. Native
    libraries' static destructors are skipped: with torch 2.14 and gloo these sometimes abort a
    rank (SIGABRT, "terminate called without an active exception") after its script finished."""
    import atexit
    import threading

    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
