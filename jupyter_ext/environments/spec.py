"""The environment spec, its normalization and hash, and conda -> pip translation."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field

from ..errors import InvalidRequest, NotFound

CURATED_PREFIX = "Curated-"
# conda package names whose pip name differs (or that pip has under the same name)
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-cpu": "torch", "torchvision": "torchvision",
                "scikit-learn": "scikit-learn", "numpy": "numpy", "pandas": "pandas", "scipy": "scipy",
                "matplotlib": "matplotlib", "pillow": "pillow", "pyyaml": "pyyaml", "six": "six",
                "tqdm": "tqdm", "requests": "requests", "onnx": "onnx", "tensorboard": "tensorboard",
                "py-opencv": "opencv-python", "opencv": "opencv-python", "msgpack-python": "msgpack"}
NOT_PACKAGES = {"pip", "python", "setuptools", "wheel"}
# Azure ML's SDK packages (azureml-defaults, azureml-core, azureml-mlflow, ...) are never installed:
# a job gets jupyter-train's own azureml.core (kernel_lib/compat), and MLflow logs to this server.
AZUREML_PREFIX = "azureml"
AZUREML_NOTE = ("Not installing {names}: Azure ML's SDK talks to Azure; the job gets jupyter-train's "
                "azureml.core instead (Run.get_context() logs into this run).")


def is_azureml(req: str) -> bool:
    name = re.split(r"[\s\[<>=!~;@]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return name == AZUREML_PREFIX or name.startswith(AZUREML_PREFIX + "-")


@dataclass
class EnvironmentSpec:
    name: str
    version: int | None = None
    python_version: str | None = None          # "3.11": an interpreter of that version on this host
    interpreter_path: str | None = None        # user_managed: run with this interpreter, no build
    pip_packages: list[str] = field(default_factory=list)
    conda_packages: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    docker_base_image: str | None = None       # stored now; used by the Docker target
    docker_file: str | None = None
    environment_variables: dict = field(default_factory=dict)
    curated: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "EnvironmentSpec":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
            raise InvalidRequest("An environment needs a 'name'.")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise InvalidRequest(f"Unknown environment field(s) {sorted(unknown)}.")
        spec = cls(**d)
        for key in ("pip_packages", "conda_packages", "channels"):
            v = getattr(spec, key)
            if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
                raise InvalidRequest(f"'{key}' must be a list of package strings.")
        return spec

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def needs_build(self) -> bool:
        return not self.curated and not self.interpreter_path

    def azureml_requirements(self) -> list[str]:
        """The spec's Azure ML SDK packages, which are not installed (AZUREML_NOTE)."""
        return sorted({r.strip() for r in self.pip_packages + self.conda_packages if is_azureml(r)})

    def pip_requirements(self) -> list[str]:
        """What gets installed with pip/uv: the pip list plus conda packages pip knows, less
        Azure ML's SDK."""
        reqs, refused = [p for p in self.pip_packages if not is_azureml(p)], []
        for pkg in self.conda_packages:
            name, rest = _split_conda(pkg)
            if name in NOT_PACKAGES or is_azureml(name):
                continue
            pip_name = CONDA_TO_PIP.get(name)
            if pip_name is None:
                refused.append(pkg)
            else:
                reqs.append(pip_name + rest)
        if refused:
            raise InvalidRequest(
                "These conda packages have no known pip name and neither conda nor micromamba is on "
                f"PATH: {', '.join(refused)}. Move them to the pip: section under their pip names, "
                "or install conda/micromamba on the server's machine.")
        return sorted(set(r.strip() for r in reqs))

    def interpreter(self) -> str:
        """The base interpreter: interpreter_path, one of python_version, or the server's."""
        if self.interpreter_path:
            if not (os.path.isabs(self.interpreter_path) and os.access(self.interpreter_path, os.X_OK)):
                raise InvalidRequest(f"interpreter_path {self.interpreter_path!r} is not an executable "
                                     "absolute path on the server's machine.")
            return self.interpreter_path
        if not self.python_version:
            return sys.executable
        found = find_python(self.python_version)
        if found is None:
            have = ", ".join(sorted(available_pythons())) or "none found"
            raise InvalidRequest(f"python={self.python_version} is not installed on this machine "
                                 f"(available: {have}). Change the python version in the spec to one "
                                 "of these.")
        return found

    def build_key(self) -> str:
        """A hash of what determines the built environment: interpreter and requirements."""
        base, reqs = self.interpreter(), self.pip_requirements()
        payload = {"python": os.path.realpath(base), "version": _version_of(base), "requirements": reqs}
        if os.path.realpath(base) == os.path.realpath(sys.executable):
            # a layer is built on the base's packages: when the kernel's torch changes, so does the key
            payload["base"] = _own_versions(reqs)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _split_conda(pkg: str) -> tuple[str, str]:
    """'numpy=1.26' -> ('numpy', '==1.26'); 'pytorch>=2' -> ('pytorch', '>=2'); channel prefix dropped."""
    pkg = pkg.split("::")[-1].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", pkg)
    if m is None:
        raise InvalidRequest(f"The conda package spec {pkg!r} has no package name; write it as "
                             "'name', 'name=1.2' or 'name>=1.2'.")
    name, rest = m.group(1).lower(), m.group(2).strip()
    if rest.startswith("=") and not rest.startswith("=="):
        rest = "==" + rest[1:].split("=")[0]  # conda's build string after a second '=' is dropped
        if rest.endswith(".*"):
            rest = rest[:-2].replace("==", "~=") if rest.count(".") > 1 else rest
    return name, rest


def _own_versions(reqs: list[str]) -> dict[str, str | None]:
    """This interpreter's versions of the packages ``reqs`` name (None: not installed)."""
    import importlib
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    importlib.invalidate_caches()
    out = {}
    for req in reqs:
        try:
            name = Requirement(req).name
        except InvalidRequirement:
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _version_of(python: str) -> str:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    m = re.search(r"python(\d+\.\d+)", os.path.basename(os.path.realpath(python)))
    return m.group(1) if m else ""


_PYTHONS: dict[str, str] | None = None


def available_pythons() -> dict[str, str]:
    """X.Y -> interpreter path, for the interpreters on this machine that actually run (a pyenv
    shim for a version that is not installed exists but fails)."""
    global _PYTHONS
    if _PYTHONS is not None:
        return _PYTHONS
    found = {f"{sys.version_info.major}.{sys.version_info.minor}": sys.executable}
    candidates = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        candidates += glob.glob(os.path.join(d, "python[23].[0-9]*"))
    candidates += glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python[23].[0-9]*"))
    for c in sorted(set(candidates)):
        m = re.search(r"python(\d+\.\d+)$", c)
        if not m or m.group(1) in found or not os.access(c, os.X_OK):
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out == m.group(1):
            found[out] = c
    _PYTHONS = found
    return found


def find_python(version: str) -> str | None:
    return available_pythons().get(".".join(str(version).split(".")[:2]))


def from_conda_yaml(name: str, text: str) -> EnvironmentSpec:
    """A conda environment.yml -> spec (python version, channels, conda deps, pip: section)."""
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"The conda specification is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The conda specification must be a mapping with 'dependencies'.")
    python_version, conda, pip = None, [], []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            pip += [str(p) for p in dep["pip"] or []]
        elif isinstance(dep, str):
            n, rest = _split_conda(dep)
            if n == "python":
                python_version = rest.lstrip("=~<>") or None
            else:
                conda.append(dep)
    return EnvironmentSpec(name=name, python_version=python_version, conda_packages=conda,
                           pip_packages=pip, channels=[str(c) for c in data.get("channels") or []])


AZUREML_CURATED_PREFIX = "AzureML-"  # Azure ML's curated names, reserved here too
# Words in an Azure ML curated name -> the curated environment here that does the same job.
AZUREML_CURATED = (("pytorch", "PyTorch"), ("acpt", "PyTorch"), ("minimal", "PyTorch"),
                   ("tutorial", "PyTorch"), ("sklearn", "PyTorch"))


def azureml_curated(name: str) -> tuple[str, str] | None:
    """(curated name here, note) for an Azure ML curated environment name, None for other names.
    Raises NotFound for an Azure ML name with no counterpart here (TensorFlow, ...)."""
    if not name.lower().startswith(AZUREML_CURATED_PREFIX.lower()):
        return None
    here = curated_environments()
    for word, target in AZUREML_CURATED:
        if word in name.lower():
            env = next(e for e in here if e.name == CURATED_PREFIX + target)
            return env.name, (f"{name} is an Azure ML curated environment; here {env.name} stands in for "
                              f"it: the server's interpreter {env.interpreter_path}, with its own torch. "
                              "For other versions, build one with Environment.from_conda_specification.")
    raise NotFound(f"{name} is an Azure ML curated environment with no counterpart here (curated here: "
                   f"{', '.join(e.name for e in here)}). Build one from its packages with "
                   "Environment.from_conda_specification(name, 'conda.yml') or from_pip_requirements.")


def curated_environments() -> list[EnvironmentSpec]:
    """Ready-made environments that need no build: the server's own interpreter."""
    return [EnvironmentSpec(name=f"{CURATED_PREFIX}PyTorch", version=1, interpreter_path=sys.executable,
                            curated=True)]
