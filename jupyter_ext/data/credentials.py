"""Datastore credentials, never in plain text in the workspace: each datastore's
``storage_options`` are kept encrypted (Fernet: AES-128-CBC with an HMAC, from the
``cryptography`` package) under a key that lives outside every workspace, in Jupyter's data
folder (or contract.ENV_SECRET_FILE), readable by its owner only, as Jupyter keeps its cookie
secret. A copied or shared workspace carries no usable secret; the API shows only the option
names (shown as HIDDEN)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import contract
from ..errors import Conflict

HIDDEN = "<hidden>"


def key_path() -> Path:
    explicit = os.environ.get(contract.ENV_SECRET_FILE)
    if explicit:
        return Path(explicit)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "jupyter-train" / "datastore.key"


def _fernet():
    from cryptography.fernet import Fernet

    path = key_path()
    try:
        return Fernet(path.read_bytes().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    try:
        os.link(tmp, path)  # whole or not at all; a process that raced us and won keeps its key
    except FileExistsError:
        key = path.read_bytes().strip()
    finally:
        tmp.unlink()
    return Fernet(key)


def seal(options: dict) -> str:
    """``options`` encrypted (a text token); "" for none."""
    if not options:
        return ""
    return _fernet().encrypt(json.dumps(options, sort_keys=True).encode()).decode()


def unseal(token: str, store: str) -> dict:
    if not token:
        return {}
    from cryptography.fernet import InvalidToken

    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, FileNotFoundError, ValueError):
        raise Conflict(f"The credentials of datastore {store!r} cannot be read with this machine's "
                       f"key ({key_path()}): it was registered with another key. Register it again "
                       "with its storage_options.") from None

