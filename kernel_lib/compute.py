"""Compute targets known to the server (``local`` is always there)."""

from __future__ import annotations


class ComputeTarget:
    def __init__(self, workspace, name: str, _data: dict | None = None):
        self.workspace = workspace
        self.name = name
        if _data is None:
            found = {c["name"]: c for c in workspace.client.get("/computes")["computes"]}
            if name not in found:
                from .client import TrainError

                raise TrainError(f"No compute target {name!r}; known: {', '.join(sorted(found))}.",
                                 "unknown_compute_target")
            _data = found[name]
        self.details = _data

    def __repr__(self):
        return f"ComputeTarget(name={self.name!r}, kind={self.details.get('kind')!r})"

    @classmethod
    def list(cls, workspace) -> list["ComputeTarget"]:
        return list(workspace.compute_targets.values())
