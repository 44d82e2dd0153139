"""Compute targets as a service: create, restore, list, delete and close them.

It knows targets only through ``launcher.api.Target`` and ``launcher.registry`` (kind ->
class): no concrete target is imported here or in the run manager.
"""

from __future__ import annotations

import logging

from ..errors import Conflict, InvalidRequest, NotFound, UnknownComputeTarget
from ..launcher import registry
from ..launcher.api import Target
from ..launcher.host import Host
from ..launcher.slots import MAX_NODES
from ..paths import check_name
from ..store import SQLiteStore

log = logging.getLogger("jupyter_ext")


class Computes:
    def __init__(self, store: SQLiteStore, host: Host, targets: list[Target] | None = None):
        self.store = store
        self.host = host
        self.targets: dict[str, Target] = {t.name: t for t in (targets or [registry.local_target(host=host)])}
        for row in self.store.list_computes():
            try:
                cls = registry.target_class(row["kind"], creatable=False)
                self.targets[row["name"]] = cls.from_stored(row["config"], host)
            except (InvalidRequest, TypeError) as exc:  # e.g. a named shape no longer configured
                log.warning("jupyter-train: compute target %s is not usable: %s", row["name"],
                            getattr(exc, "message", exc))

    def __iter__(self):
        return iter(list(self.targets.values()))

    def get(self, name: str) -> Target | None:
        return self.targets.get(name)

    def require(self, name: str) -> Target:
        """The target a run asks for, or an error that lists the known ones."""
        target = self.targets.get(name)
        if target is None:
            raise UnknownComputeTarget(
                f"Unknown compute target {name!r}. Known targets: "
                f"{', '.join(sorted(self.targets))}. Create it first or pick one of these.")
        return target

    def fallback(self) -> Target:
        """For a run whose target is gone: the local target's process rules still apply."""
        return self.targets.get("local") or registry.local_target(host=self.host)

    def describe_all(self) -> list[dict]:
        return [t.describe() for t in self]

    def describe(self, name: str) -> dict:
        target = self.targets.get(name)
        if target is None:
            raise NotFound(f"No compute target {name!r}. Known: {', '.join(sorted(self.targets))}. "
                           "Create it with ComputeTarget.create(ws, name, config).")
        return target.describe()

    def create(self, body: dict) -> dict:
        name = check_name("Compute target", body.get("name"))
        if name in self.targets:
            raise Conflict(f"A compute target {name!r} exists already; pick another name or delete it.")
        kind = body.get("kind", "cluster")
        cls = registry.target_class(kind)
        max_nodes = body.get("max_nodes", 1)
        if not isinstance(max_nodes, int) or isinstance(max_nodes, bool) or not 0 < max_nodes <= MAX_NODES:
            raise InvalidRequest(f"max_nodes must be a whole number from 1 to {MAX_NODES}.")  # slots are listed
        target = cls.from_config({**body, "name": name}, self.host)
        self.store.save_compute(name, kind, target.to_config())
        self.targets[name] = target
        return target.describe()

    def delete(self, name: str) -> None:
        self.describe(name)
        target = self.targets[name]
        if target.builtin:
            raise InvalidRequest(f"{name!r} is built in and cannot be deleted.")
        if target.slots.holds_runs():
            raise Conflict(f"Compute target {name!r} has runs running or queued; cancel them first.")
        target.close()
        self.store.delete_compute(name)
        del self.targets[name]

    def close(self) -> None:
        for target in self:
            try:
                target.close()
            except Exception:  # one target's failure must not keep the others running
                log.exception("jupyter-train: closing compute target %s failed", target.name)
