"""``jupyter train env list|show KEY|prune``: manage the environment cache of a workspace.

Works on the workspace directory directly (no server needed). ``prune`` never removes an
environment that a queued, preparing or running run uses.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import contract
from ..store import SQLiteStore
from ..workspace import WorkspaceDir, default_workspace_dir
from .builder import EnvCache


def in_use(ws: WorkspaceDir) -> set[str]:
    store = SQLiteStore(str(ws.db_path))
    try:
        keys = set()
        for run in store.list_runs(limit=10**9, active_only=True):
            key = (run["properties"].get("environment") or {}).get("key")
            if key and not contract.is_terminal(run["status"]):
                keys.add(key)
        return keys
    finally:
        store.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="jupyter train env", description=__doc__.splitlines()[0])
    p.add_argument("--workspace", default=None, help="workspace directory (default: the default one)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="cached environments")
    show = sub.add_parser("show", help="one cached environment")
    show.add_argument("key")
    sub.add_parser("prune", help="remove cached environments no queued or running run uses")
    args = p.parse_args(argv)
    ws = WorkspaceDir(args.workspace or default_workspace_dir()).create()
    cache = EnvCache(ws.path / "environments")
    envs = cache.list()
    if args.cmd == "list":
        if not envs:
            print("No cached environments.")
        for e in envs:
            print(f"{e['key']}  {e['name']}:{e.get('version') or '-'}  {len(e['requirements'])} package(s)  "
                  f"{e['bytes'] / 1e6:.1f} MB  built in {e['seconds']} s")
        return 0
    if args.cmd == "show":
        match = [e for e in envs if e["key"].startswith(args.key)]
        if len(match) != 1:
            print(f"No single cached environment matches {args.key!r}; see `jupyter train env list`.",
                  file=sys.stderr)
            return 1
        print(json.dumps({**match[0], "python": cache.python(match[0]["key"])}, indent=2))
        return 0
    used = in_use(ws) if ws.db_path.exists() else set()
    freed = removed = 0
    for e in envs:
        if e["key"] in used:
            print(f"kept {e['key']} ({e['name']}): a queued or running run uses it")
            continue
        cache.remove(e["key"])
        freed += e["bytes"]
        removed += 1
        print(f"removed {e['key']} ({e['name']})")
    print(f"{removed} environment(s) removed, {freed / 1e6:.1f} MB freed.")
    return 0
