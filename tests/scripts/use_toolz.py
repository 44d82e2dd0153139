"""Imports a package that only its job environment has."""
import sys

import toolz

from kernel_lib.tracking import Run

print("python", sys.prefix, flush=True)
print("toolz", toolz.__version__, flush=True)
Run.get_context().log("imported", 1)
