"""Layered environments: a virtual environment on top of a base interpreter.

The base is the kernel's interpreter (or the one of the spec's python version). Its packages
stay where they are: a .pth file in the layer adds the base's import paths after the layer's
own site-packages, so the layer installs only what the base lacks or has at another version,
and what it installs shadows the base. A spec that pins the torch the base already has never
copies torch.

What to install is decided in three steps: requirements the base already satisfies are dropped;
the rest are resolved with the base's versions as constraints (so their dependencies are the
base's where they can be; a conflict is resolved again without them); and of the resolution,
only what the base does not have at exactly that version is installed (``--no-deps``).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

BASE_PTH = "zz_jupyter_train_base.pth"  # after the shim's .pth: site processes them by name

# Run in the base interpreter with -E (PYTHONPATH is the caller's, not the base's): its import
# paths beyond the standard library, and every distribution it can import (first on the path wins).
PROBE = r"""
import json, os, sys, sysconfig
import importlib.metadata as md
std = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
paths = []
for p in sys.path:
    if (p and os.path.isdir(p) and os.path.realpath(p) not in std and not p.endswith("lib-dynload")
            and p not in paths):
        paths.append(os.path.abspath(p))
dists = {}
for d in md.distributions(path=paths):
    name = (d.metadata["Name"] or "").strip()
    if name:
        dists.setdefault(name, d.version)
print(json.dumps({"paths": paths, "dists": dists}))
"""


@dataclass
class Base:
    python: str
    paths: list[str] = field(default_factory=list)
    dists: dict[str, str] = field(default_factory=dict)  # canonical name -> version


class ProbeFailed(Exception):
    pass


def probe(python: str) -> Base:
    """The import paths and installed distributions of the interpreter ``python``."""
    try:
        out = subprocess.run([python, "-E", "-c", PROBE], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeFailed(f"Could not ask {python} for its packages: {exc}") from None
    if out.returncode != 0:
        raise ProbeFailed(f"{python} could not list its packages:\n{out.stderr.strip()[-2000:]}")
    data = json.loads(out.stdout)
    return Base(python, data["paths"], {canonicalize_name(k): v for k, v in data["dists"].items()})


def satisfied_by(base: Base, req: str) -> str | None:
    """The base's version of what ``req`` asks for, if that version satisfies it (no extras,
    no URL), else None."""
    try:
        r = Requirement(req)
    except InvalidRequirement:
        return None  # a path, a URL or something only the installer understands
    have = base.dists.get(canonicalize_name(r.name))
    if have is None or r.url or r.extras:
        return None
    try:
        return have if r.specifier.contains(Version(have), prereleases=True) else None
    except InvalidVersion:
        return None


def split(base: Base, reqs: list[str]) -> tuple[dict[str, str], list[str]]:
    """({requirement: base version} the base satisfies, [requirements to install])."""
    have, need = {}, []
    for req in reqs:
        v = satisfied_by(base, req)
        if v is None:
            need.append(req)
        else:
            have[req] = v
    return have, need


def constraints(base: Base, need: list[str]) -> list[str]:
    """The base's versions (public part: a local '+cu128' is no index's), except for the
    packages the spec names itself."""
    named = set()
    for req in need:
        try:
            named.add(canonicalize_name(Requirement(req).name))
        except InvalidRequirement:
            pass
    out = []
    for name, version in sorted(base.dists.items()):
        try:
            public = Version(version).public
        except InvalidVersion:
            continue
        if name not in named:
            out.append(f"{name}=={public}")
    return out


def not_in_base(base: Base, pinned: list[str]) -> list[str]:
    """Of a resolution (``name==version`` lines), what the base lacks at exactly that version."""
    out = []
    for line in pinned:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            r = Requirement(line)
            pins = [s.version for s in r.specifier if s.operator in ("==", "===")]
            have = base.dists.get(canonicalize_name(r.name))
            if have and pins and Version(have).public == Version(pins[0]).public:
                continue
        except (InvalidRequirement, InvalidVersion):
            pass
        out.append(line)
    return out


def link_base(site_packages: str, base: Base) -> None:
    """Make the base's packages importable in the layer, after the layer's own (site.addsitedir
    also runs the .pth files there: editable installs keep working)."""
    paths = [p for p in base.paths if os.path.realpath(p) != os.path.realpath(site_packages)]
    Path(site_packages, BASE_PTH).write_text(
        "import site; list(map(site.addsitedir, " + json.dumps(paths) + "))\n")
