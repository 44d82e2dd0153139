"""The supervisor's entry: ``python -m jupyter_ext.launcher.supervise RUN_DIR``.

Reads the run's spec and runs the supervisor of its placement's kind (local and cluster nodes:
processes of this host; docker: containers; ray: Ray actors), found by name in the registry and
imported only then. Standard library only up to there: the supervisor must start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .registry import supervisor_class
from .spec import RunSpec

USAGE = "usage: python -m jupyter_ext.launcher.supervise RUN_DIR (a directory holding spec.json)"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0], "spec.json").is_file():
        print(USAGE, file=sys.stderr)
        return 2
    spec = RunSpec.load(Path(argv[0], "spec.json"))
    kind = spec.placement.kind if spec.placement is not None else "local"
    return supervisor_class(kind)(argv[0]).run()


if __name__ == "__main__":
    sys.exit(main())
