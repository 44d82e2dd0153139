"""Pure argv/env builders: what runs, independent of where it runs."""

from __future__ import annotations

from .spec import NodeSpec, RunSpec


def python_command(spec: RunSpec) -> list[NodeSpec]:
    """A one-process job: ``python script args...`` in the run's working copy."""
    argv = [spec.python, "-u", spec.script, *[str(a) for a in spec.arguments]]
    return [NodeSpec(rank=0, argv=argv, env={"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"},
                     log_name="rank_0")]


def supervisor_command(python: str, run_dir: str) -> list[str]:
    return [python, "-m", "jupyter_ext.launcher.supervisor", run_dir]
