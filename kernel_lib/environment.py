"""Environment: the software a run needs, as in Azure ML. Built once per spec on the server
(a virtual environment made with uv), cached and reused; curated ones need no build."""

from __future__ import annotations

import copy
import json
import os
import sys
from dataclasses import dataclass, field

from .client import TrainError

CURATED_PREFIX = "Curated-"
AZUREML_CURATED_PREFIX = "AzureML-"  # Azure ML's curated names: reserved here too
SAVED_FILE = "environment.json"


@dataclass
class CondaDependencies:
    python_version: str | None = None
    pip_packages: list = field(default_factory=list)
    conda_packages: list = field(default_factory=list)
    channels: list = field(default_factory=list)

    @classmethod
    def create(cls, pip_packages=None, conda_packages=None, python_version=None, channels=None):
        return cls(python_version, list(pip_packages or []), list(conda_packages or []), list(channels or []))

    def add_pip_package(self, package: str) -> None:
        self.pip_packages.append(package)

    def add_conda_package(self, package: str) -> None:
        self.conda_packages.append(package)


@dataclass
class PythonSection:
    interpreter_path: str | None = None
    user_managed_dependencies: bool = False
    conda_dependencies: CondaDependencies = field(default_factory=CondaDependencies)


@dataclass
class DockerSection:
    base_image: str | None = None
    base_dockerfile: str | None = None


class Environment:
    def __init__(self, name: str):
        self.name = name
        self.version: int | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict = {}
        self._curated = False

    def __repr__(self):
        return f"Environment(name={self.name!r}, version={self.version})"

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_conda_specification(cls, name: str, file_path: str) -> "Environment":
        import yaml

        with open(file_path) as f:
            data = yaml.safe_load(f) or {}
        env = cls(name)
        cd = env.python.conda_dependencies
        cd.channels = [str(c) for c in data.get("channels") or []]
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict) and "pip" in dep:
                cd.pip_packages += [str(p) for p in dep["pip"] or []]
            elif isinstance(dep, str) and dep.split("=")[0].strip().lower() == "python":
                cd.python_version = dep.split("=", 1)[1].lstrip("=") if "=" in dep else None
            elif isinstance(dep, str):
                cd.conda_packages.append(dep)
        return env

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str) -> "Environment":
        env = cls(name)
        with open(file_path) as f:
            env.python.conda_dependencies.pip_packages = [
                line.split("#", 1)[0].strip() for line in f
                if line.split("#", 1)[0].strip() and not line.strip().startswith("-")]
        return env

    @classmethod
    def from_docker_image(cls, name: str, image: str, conda_specification: str | None = None) -> "Environment":
        env = cls.from_conda_specification(name, conda_specification) if conda_specification else cls(name)
        env.docker.base_image = image
        return env

    @classmethod
    def from_dockerfile(cls, name: str, dockerfile: str, conda_specification: str | None = None) -> "Environment":
        env = cls.from_conda_specification(name, conda_specification) if conda_specification else cls(name)
        env.docker.base_dockerfile = open(dockerfile).read() if os.path.isfile(dockerfile) else dockerfile
        return env

    # -- workspace ------------------------------------------------------------------------
    @classmethod
    def get(cls, workspace, name: str, version: int | None = None) -> "Environment":
        """A registered or curated environment. An Azure ML curated name (``AzureML-PyTorch-...``)
        gets the curated environment that stands in for it here, and a note says which."""
        q = {"version": version} if version is not None else {}
        found = workspace.client.get(f"/environments/{name}", **q)
        if found.get("note"):
            print(f"jupyter-train: {found['note']}", file=sys.stderr, flush=True)
        return cls._from_spec(found)

    @classmethod
    def list(cls, workspace) -> dict:
        """name -> latest version (curated ones included)."""
        latest = {}
        for d in workspace.client.get("/environments")["environments"]:
            latest[d["name"]] = cls._from_spec(d)
        return latest

    def register(self, workspace) -> "Environment":
        if self.name.startswith(CURATED_PREFIX) or self.name.lower().startswith(AZUREML_CURATED_PREFIX.lower()):
            raise TrainError(f"Names starting with {CURATED_PREFIX!r} or {AZUREML_CURATED_PREFIX!r} are reserved "
                             "for curated environments; use env.clone('new-name') to change one.",
                             "invalid_request")
        registered = self._from_spec(workspace.client.post("/environments", self.to_spec()))
        self.version = registered.version
        return registered

    def clone(self, new_name: str) -> "Environment":
        env = copy.deepcopy(self)
        env.name, env.version, env._curated = new_name, None, False
        return env

    # -- files ----------------------------------------------------------------------------
    def save_to_directory(self, path: str, overwrite: bool = False) -> None:
        os.makedirs(path, exist_ok=True)
        target = os.path.join(path, SAVED_FILE)
        if os.path.exists(target) and not overwrite:
            raise TrainError(f"{target} exists; pass overwrite=True.", "conflict")
        with open(target, "w") as f:
            json.dump(self.to_spec(), f, indent=2)

    @classmethod
    def load_from_directory(cls, path: str) -> "Environment":
        with open(os.path.join(path, SAVED_FILE)) as f:
            return cls._from_spec(json.load(f))

    # -- wire format ----------------------------------------------------------------------
    def to_spec(self) -> dict:
        cd = self.python.conda_dependencies
        return {"name": self.name, "version": self.version, "python_version": cd.python_version,
                "interpreter_path": self.python.interpreter_path if self.python.user_managed_dependencies
                or self._curated else None,
                "pip_packages": list(cd.pip_packages), "conda_packages": list(cd.conda_packages),
                "channels": list(cd.channels), "docker_base_image": self.docker.base_image,
                "docker_file": self.docker.base_dockerfile,
                "environment_variables": dict(self.environment_variables), "curated": self._curated}

    @classmethod
    def _from_spec(cls, d: dict) -> "Environment":
        env = cls(d["name"])
        env.version = d.get("version")
        env._curated = bool(d.get("curated"))
        env.python.interpreter_path = d.get("interpreter_path")
        env.python.user_managed_dependencies = bool(d.get("interpreter_path"))
        env.python.conda_dependencies = CondaDependencies(d.get("python_version"), list(d.get("pip_packages") or []),
                                                          list(d.get("conda_packages") or []),
                                                          list(d.get("channels") or []))
        env.docker = DockerSection(d.get("docker_base_image"), d.get("docker_file"))
        env.environment_variables = dict(d.get("environment_variables") or {})
        return env
