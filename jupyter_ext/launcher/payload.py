"""The in-job code: what of jupyter-train runs inside a job, declared once, and how each way of
getting it to a job's processes asks for it.

Two sets, both of this installation's own sources:

- ``PACKAGES``, whole: what a node runs besides the job's own processes (the node keeper, the
  process and transfer helpers a Ray agent imports, its system-metric sampler: sysmetrics). Docker containers get them bind-mounted
  (``mounts``); Ray nodes that lack an identical copy (``fingerprint``) get them through the
  object store (``package_dirs``).
- ``SHIM``, a few stdlib-only files: what a job's own processes import (the rank entry point,
  kernel_lib.tracking, the contract they share with the server, the Azure ML compat module). A
  built virtual environment gets a copy of them on its path (``shim_files``, environments.builder).

Standard library only and importing nothing of jupyter-train (the rank entry point imports it
in the job, and a Ray agent may carry it to a node that has no jupyter-train: it is light and
self-contained on purpose). Packages are found with ``importlib.util.find_spec``, not imported.
"""

from __future__ import annotations

import importlib.util
import os
import posixpath

PACKAGES = ("jupyter_ext", "kernel_lib")
# Paths under PACKAGES' parent; one ending in "/" stands for every .py file below that folder.
SHIM = (
    "jupyter_ext/__init__.py",
    "jupyter_ext/_version.py",
    "jupyter_ext/contract.py",
    "jupyter_ext/launcher/__init__.py",
    "jupyter_ext/launcher/payload.py",
    "jupyter_ext/launcher/rank_entry.py",
    "jupyter_ext/serving/",
    "kernel_lib/__init__.py",
    "kernel_lib/tracking.py",
    "kernel_lib/tracking_files.py",
    "kernel_lib/compat/",
)
# Third-party modules a shipped file imports, from the job's environment rather than the shim: a
# service's scoring server (tornado, which a service's environment build adds) and the built-in
# ONNX scorer (onnxruntime and numpy, in an environment that serves an ONNX model).
SHIM_NEEDS = {"jupyter_ext/serving/host.py": ("tornado",),
              "jupyter_ext/serving/onnx_entry.py": ("onnxruntime", "numpy"),
              # imported only by a tabular input's to_pandas_dataframe(), in the job's environment
              "kernel_lib/tracking.py": ("pandas",)}
COMPAT = "compat"  # kernel_lib's folder of the ``azureml`` namespace (kernel_lib/compat/README.md)
_SKIP = {"__pycache__"}


def package_dir(name: str) -> str | None:
    """The folder of this Python's package ``name`` (one of PACKAGES), or None if it has none."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def package_dirs() -> list[str]:
    """The folders of PACKAGES, in that order (their parent goes on a job's PYTHONPATH)."""
    dirs = []
    for name in PACKAGES:
        d = package_dir(name)
        if d is None:
            raise ModuleNotFoundError(f"jupyter-train's package {name} is not importable here; "
                                      "install jupyter-train in this Python", name=name)
        dirs.append(d)
    return dirs


def mounts(prefix: str) -> dict[str, str]:
    """Host folder -> where it goes under ``prefix`` (``prefix/<package>``), for each of PACKAGES:
    a container's read-only mounts, or (``prefix`` "") the names in an archive of them."""
    return {d: posixpath.join(prefix, os.path.basename(d)) for d in package_dirs()}


def shim_files() -> list[tuple[str, str]]:
    """(source file, its path in the shim folder: as in SHIM) of each file of SHIM, folders
    expanded, sorted by that path."""
    parents = {name: os.path.dirname(d) for name, d in zip(PACKAGES, package_dirs())}
    out = []
    for rel in SHIM:
        parent = parents[rel.split("/", 1)[0]]
        src = os.path.join(parent, *rel.rstrip("/").split("/"))
        if not rel.endswith("/"):
            out.append((src, rel))
            continue
        for folder, subdirs, files in os.walk(src):
            subdirs[:] = [d for d in subdirs if d not in _SKIP]
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    out.append((path, os.path.relpath(path, parent).replace(os.sep, "/")))
    return sorted(out, key=lambda item: item[1])


def compat_dir() -> str | None:
    """kernel_lib's compat folder (the ``azureml`` namespace for Azure ML scripts) as this
    Python sees it, or None where there is no kernel_lib or no compat folder."""
    root = package_dir("kernel_lib")
    path = os.path.join(root, COMPAT) if root else None
    return path if path and os.path.isdir(path) else None


def fingerprint(dirs=None) -> str:
    """A hash of the Python sources under ``dirs`` (package folders; default: package_dirs()),
    by path relative to each folder's parent: equal on two machines iff their copies are."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    for d in package_dirs() if dirs is None else dirs:
        base = Path(d)
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base.parent).as_posix()
            if "__pycache__" in rel:
                continue
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:24]
