"""Environments: a spec (pip / conda / docker) -> a cached, reusable job environment."""

from .builder import EnvCache, BuildFailed
from .spec import CURATED_PREFIX, EnvironmentSpec, curated_environments

__all__ = ["EnvCache", "BuildFailed", "EnvironmentSpec", "CURATED_PREFIX", "curated_environments"]
