"""Container images for environments, built on a Docker engine.

An environment with ``docker_base_image`` (or ``docker_file``) runs in an image made from it
with the environment's pip packages added by a generated Dockerfile:

    FROM <base image>                      (or the user's Dockerfile, then these lines)
    COPY site/ /opt/jupyter-train/site/
    ENV PYTHONPATH=/opt/jupyter-train/site
    LABEL jupyter-train.env=<key>

The packages are resolved and unpacked on this machine (``uv pip install --target`` for the
image's Python version and Linux platform), so the build runs no command in the image: it needs
no network inside the engine and no pip in the base image. The image is tagged by a hash of
everything that determines it (``jupyter-train-env:<key>``) and reused. A base image missing
from the engine is pulled only where the target allows pulling; otherwise the build is refused
with a message that says how to get the image there. Never a silent pull.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from .builder import BuildFailed, find_uv
from .spec import EnvironmentSpec

IMAGE_REPO = "jupyter-train-env"
SITE = "/opt/jupyter-train/site"


def image_key(spec: EnvironmentSpec, python_version: str) -> str:
    payload = {"base": spec.docker_base_image, "dockerfile": spec.docker_file,
               "requirements": spec.pip_requirements(), "python": python_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def dockerfile_for(spec: EnvironmentSpec, key: str, with_site: bool) -> str:
    head = spec.docker_file.rstrip() + "\n" if spec.docker_file else f"FROM {spec.docker_base_image}\n"
    lines = [head]
    if with_site:
        lines += [f"COPY site/ {SITE}/\n", f"ENV PYTHONPATH={SITE}\n"]
    lines.append(f"LABEL jupyter-train.env={key}\n")
    return "".join(lines)


def _base_images(spec: EnvironmentSpec) -> list[str]:
    """The images the build starts from (FROM lines, minus earlier stages and scratch)."""
    if spec.docker_base_image:
        return [spec.docker_base_image]
    images, stages = [], set()
    for line in (spec.docker_file or "").splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if len(words) >= 2 and words[0].upper() == "FROM":
            if words[1] not in stages and words[1] != "scratch":
                images.append(words[1])
            if len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3])
    return images


def ensure_image(client, spec: EnvironmentSpec, log, allow_pull: bool, python_version: str | None = None,
                 engine: str = "the Docker engine") -> str:
    """The tag of the image for ``spec`` on ``client``'s engine, building it if needed. ``log`` is
    a callable taking text (the run's prepare log)."""
    import docker

    py = python_version or spec.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    key = image_key(spec, py)
    tag = f"{IMAGE_REPO}:{key}"
    try:
        client.images.get(tag)
        log(f"Using the cached image {tag} for environment {spec.name}.\n")
        return tag
    except docker.errors.ImageNotFound:
        pass
    for base in _base_images(spec):
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            if not allow_pull:
                raise BuildFailed(
                    f"The base image {base!r} of environment {spec.name} is not on {engine}, and this "
                    "compute target does not pull images (allow_pull=False). Load it there first "
                    "(docker load / docker import / docker build), or create the target with "
                    "allow_pull=True where a registry is reachable.") from None
            log(f"Pulling {base} (allowed on this target)...\n")
            try:
                for line in client.api.pull(base, stream=True, decode=True):
                    if line.get("status") and not line.get("progressDetail"):
                        log(f"  {line['status']} {line.get('id', '')}\n")
            except docker.errors.APIError as exc:
                raise BuildFailed(f"Could not pull {base}: {exc.explanation or exc}") from None
    reqs = spec.pip_requirements()
    with tempfile.TemporaryDirectory(prefix="jt-image-") as ctx:
        if reqs:
            _unpack_site(reqs, py, os.path.join(ctx, "site"), log)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(dockerfile_for(spec, key, bool(reqs)))
        log(f"Building image {tag} for environment {spec.name} ({len(reqs)} requirement(s)):\n")
        log("".join(f"  | {line}\n" for line in open(os.path.join(ctx, "Dockerfile")).read().splitlines()))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(ctx, arcname=".")
        buf.seek(0)
        try:
            for chunk in client.api.build(fileobj=buf, custom_context=True, tag=tag, rm=True,
                                          pull=False, decode=True):
                if "stream" in chunk and chunk["stream"].strip():
                    log("  " + chunk["stream"].rstrip("\n") + "\n")
                if "error" in chunk:
                    raise BuildFailed(f"The image build failed: {chunk['error'].strip()}")
        except docker.errors.APIError as exc:
            raise BuildFailed(f"The image build failed: {exc.explanation or exc}") from None
    log(f"Image {tag} ready.\n")
    return tag


def _unpack_site(reqs: list[str], python_version: str, dest: str, log) -> None:
    """Resolve and unpack ``reqs`` for Linux x86_64 and ``python_version`` into ``dest``."""
    uv = find_uv()
    if uv:
        argv = [uv, "pip", "install", "--target", dest, "--python-version", python_version,
                "--python-platform", "x86_64-manylinux_2_28", *reqs]
    else:
        argv = [sys.executable, "-m", "pip", "install", "--target", dest, "--only-binary=:all:",
                "--platform", "manylinux2014_x86_64", "--python-version", python_version, *reqs]
    log("$ " + " ".join(argv) + "\n")
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, UV_NO_PROGRESS="1"))
    log(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildFailed("Resolving the environment's packages failed:\n" + (proc.stderr or proc.stdout)[-2000:])
