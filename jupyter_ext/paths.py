"""Paths that cannot escape their directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InvalidRequest, PathEscapes

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def check_name(kind: str, value) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidRequest(
            f"{kind} name {value!r} is not valid: use 1-255 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit.")
    return value


def safe_join(base: str | os.PathLike, rel: str) -> Path:
    """``base/rel`` if it stays inside ``base`` (after resolving links), else PathEscapes."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise InvalidRequest("Give a file path relative to the run, e.g. 'outputs/model.pt'.")
    if os.path.isabs(rel):
        raise PathEscapes(f"{rel!r} is an absolute path; give a path relative to the run directory.")
    root = os.path.realpath(base)
    full = os.path.realpath(os.path.join(root, rel))
    if full != root and not full.startswith(root + os.sep):
        raise PathEscapes(f"{rel!r} leads outside the run directory; give a path inside it.")
    return Path(full)
