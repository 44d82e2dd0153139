"""Run requests: the body of POST /runs, checked, and its distributed part as a spec."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from ..launcher.spec import DistributedSpec

MAX_EXTRA_BYTES = 10 * 10**6
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class SubmitRequest:
    experiment: str
    script: str
    source_directory: str | None = None
    arguments: list = field(default_factory=list)
    compute_target: str = "local"
    python: str = ""
    environment_variables: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    extra_files: dict = field(default_factory=dict)  # path -> text, e.g. a notebook cell
    distributed: dict | None = None  # {"kind", "nodes", "procs_per_node", "backend", "max_restarts"}
    environment: dict | None = None  # {"name", "version"} of a registered one, or a whole spec
    datasets: list | None = None  # inputs: [{"name", "dataset", "version", "mode"}] (runs.datasets)

    @classmethod
    def from_json(cls, body) -> "SubmitRequest":
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object describing the run.")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidRequest(f"Unknown field(s) {sorted(unknown)}; allowed: "
                                 f"{sorted(cls.__dataclass_fields__)}.")
        for req in ("experiment", "script"):
            if not isinstance(body.get(req), str) or not body.get(req):
                raise InvalidRequest(f"'{req}' is required and must be a non-empty string.")
        src = body.get("source_directory")
        if not (isinstance(src, str) and src) and not (src is None and body.get("extra_files")):
            raise InvalidRequest("'source_directory' is required (a folder on the server's machine) "
                                 "unless the script comes in 'extra_files'.")
        extra = body.get("extra_files", {})
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise InvalidRequest("'extra_files' must be an object of relative path -> text.")
        if sum(len(v) for v in extra.values()) > MAX_EXTRA_BYTES:
            raise InvalidRequest(f"'extra_files' hold more than {MAX_EXTRA_BYTES // 10**6} MB; put "
                                 "large files in the source directory instead.")
        dist = body.get("distributed")
        if dist is not None and not isinstance(dist, dict):
            raise InvalidRequest("'distributed' must be an object: nodes, procs_per_node, backend, mpi.")
        for rel in extra:
            if not isinstance(rel, str) or os.path.isabs(rel) or ".." in rel.split("/") or not rel.strip("/"):
                raise InvalidRequest(f"extra_files path {rel!r} must be relative and stay inside the "
                                     "snapshot.")
        args = body.get("arguments", [])
        if not isinstance(args, list):
            raise InvalidRequest("'arguments' must be a list of strings and numbers.")
        for i, a in enumerate(args):
            if isinstance(a, bool) or not isinstance(a, (str, int, float)):
                raise InvalidRequest(f"arguments[{i}] is {a!r} ({type(a).__name__}); each argument "
                                     "must be a str, int or float. Convert it, e.g. str(value).")
            if isinstance(a, str) and "\x00" in a:
                raise InvalidRequest(f"arguments[{i}] holds a NUL character (\\x00), which no "
                                     "process can receive as an argument; remove it.")
        for key in ("environment_variables", "tags"):
            d = body.get(key, {})
            if not isinstance(d, dict) or not all(isinstance(k, str) for k in d):
                raise InvalidRequest(f"'{key}' must be an object of string keys.")
        check_environment_variables(body.get("environment_variables", {}))
        return cls(**body)


def check_environment_variables(env: dict) -> None:
    """Names a process environment can hold, and text values without NUL."""
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise InvalidRequest(f"environment_variables: {name!r} is not a valid environment variable "
                                 "name: use letters, digits and '_', not starting with a digit.")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidRequest(f"environment_variables.{name} must be text without NUL characters; "
                                 f"send e.g. str(value), not {value!r}.")


def parse_distributed(body: dict | None) -> DistributedSpec | None:
    """The request's ``distributed`` object -> DistributedSpec (None for one process)."""
    if not body:
        return None
    kind = body.get("kind") or ("mpi" if body.get("mpi") else "pytorch")
    nodes, procs = body.get("nodes", 1), body.get("procs_per_node", 1)
    restarts = body.get("max_restarts", 0)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (nodes, procs)):
        raise InvalidRequest("distributed.nodes and distributed.procs_per_node must be whole numbers >= 1.")
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 0:
        raise InvalidRequest("distributed.max_restarts must be a whole number >= 0.")
    backend = (body.get("backend") or "").lower() or None
    if kind not in ("pytorch", "mpi"):
        raise InvalidRequest("distributed.kind must be 'pytorch' or 'mpi'.")
    if backend not in (None, "nccl", "gloo"):
        raise InvalidRequest("distributed.backend must be 'nccl' or 'gloo'.")
    return DistributedSpec(kind=kind, nodes=nodes, procs_per_node=procs, backend=backend,
                           max_restarts=restarts)
