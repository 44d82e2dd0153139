"""Environments as a service: curated ones, registered versions, and their build state."""

from __future__ import annotations

from ..environments import CURATED_PREFIX, EnvCache, EnvironmentSpec, curated_environments
from ..environments.spec import AZUREML_CURATED_PREFIX, azureml_curated
from ..errors import InvalidRequest, NotFound
from ..paths import check_name
from ..store import SQLiteStore


class Environments:
    def __init__(self, store: SQLiteStore, cache: EnvCache):
        self.store = store
        self.envs = cache

    def resolve(self, body: dict) -> EnvironmentSpec:
        """{"name", "version"} of a curated or registered environment, or a whole spec."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise InvalidRequest("'environment' must be an object with a 'name'.")
        if set(body) <= {"name", "version"}:
            found = self.get(body["name"], body.get("version"))
            found.pop("note", None)
            return EnvironmentSpec.from_dict(found)
        return EnvironmentSpec.from_dict(body)

    def get(self, name: str, version: int | None = None) -> dict:
        """A curated or registered environment; an Azure ML curated name (AzureML-...) gets the
        curated one that stands in for it, with a ``note`` that says so."""
        mapped = azureml_curated(name)
        if mapped is not None:
            return {**self.get(mapped[0]), "note": mapped[1]}
        for env in curated_environments():
            if env.name == name:
                return env.to_dict()
        found = self.store.get_environment(name, version)
        if found is None:
            which = f"version {version} of " if version else ""
            raise NotFound(f"No {which}environment {name!r} is registered. Register it with "
                           "env.register(ws), or list them with Environment.list(ws).")
        return found

    def list(self) -> list[dict]:
        """Every curated and registered environment, with ``build_state``: 'ready' (runs on an
        existing interpreter), 'built', 'building', 'failed', 'not built' or 'unavailable' (its
        Python version is not on this machine)."""
        out = []
        for env in [e.to_dict() for e in curated_environments()] + self.store.list_environments():
            spec = EnvironmentSpec.from_dict(env)
            try:
                env["build_state"] = self.envs.state(spec.build_key()) if spec.needs_build else "ready"
            except InvalidRequest:
                env["build_state"] = "unavailable"
            out.append(env)
        return out

    def register(self, body: dict) -> dict:
        spec = EnvironmentSpec.from_dict({k: v for k, v in body.items() if k != "version"})
        check_name("Environment", spec.name)
        if spec.name.startswith(CURATED_PREFIX) or spec.curated \
                or spec.name.lower().startswith(AZUREML_CURATED_PREFIX.lower()):
            raise InvalidRequest(f"Names starting with {CURATED_PREFIX!r} or {AZUREML_CURATED_PREFIX!r} are "
                                 "reserved for curated environments; clone it under a new name to change it.")
        spec.pip_requirements()  # refuse unmappable conda packages now, not at the first run
        if spec.python_version:
            spec.interpreter()
        version = self.store.register_environment(spec.name, spec.to_dict())
        return self.get(spec.name, version)
