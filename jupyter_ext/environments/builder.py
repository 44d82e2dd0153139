"""The environment cache: one virtual environment per build key, built once, reused.

Built with uv (its Python package's binary, else uv on PATH), else with venv + pip. An
environment is layered on its base interpreter (layers.py): it installs only what the base
lacks. Each build streams its installer output, line by line, into the prepare log of every run waiting for it; a second
run asking for a key that is being built waits for that build instead of starting another.
A failed build leaves nothing behind and fails the waiting runs with the installer's last
lines. Every environment can import ``kernel_lib.tracking`` and the launcher's rank entry
point through a .pth file pointing at a small copy of those stdlib-only modules (the shim:
launcher.payload declares what it holds, and the cache's owner hands it in: ``shim_files``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from . import layers
from .spec import AZUREML_NOTE, EnvironmentSpec

READY = "ready.json"
TAIL_LINES = 15


class BuildFailed(Exception):
    pass


class _Build:
    """One build in progress: its output goes to every attached log."""

    def __init__(self):
        self.done = threading.Event()
        self.error: str | None = None
        self.lines: list[bytes] = []
        self.logs: list[Path] = []
        self.lock = threading.Lock()

    def attach(self, log: Path) -> None:
        with self.lock:
            with open(log, "ab") as f:
                f.writelines(self.lines)  # what was written before this run joined
            self.logs.append(log)

    def write(self, line: bytes) -> None:
        with self.lock:
            self.lines.append(line)
            for log in self.logs:
                with open(log, "ab") as f:
                    f.write(line)


class EnvCache:
    def __init__(self, root: str | os.PathLike, shim_files: Callable[[], list[tuple[str, str]]] | None = None,
                 layered: bool = True):
        self.root = Path(root)
        self.layered = layered  # False: each environment holds all its packages (the benchmark's baseline)
        self.shim_files = shim_files  # (source, path in the shim) of the in-job code; None: no builds
        self.envs = self.root / "envs"
        self.envs.mkdir(parents=True, exist_ok=True)
        self._builds: dict[str, _Build] = {}
        self.failures: dict[str, str] = {}  # build key -> error of its last failed build
        self._guard = threading.Lock()

    def env_dir(self, key: str) -> Path:
        return self.envs / key

    def python(self, key: str) -> str:
        return str(self.env_dir(key) / "venv" / "bin" / "python")

    def state(self, key: str) -> str:
        """'built', 'building', 'failed' (the last build in this server failed) or 'not built'."""
        if self.is_ready(key):
            return "built"
        with self._guard:
            if key in self._builds:
                return "building"
        return "failed" if key in self.failures else "not built"

    def is_ready(self, key: str) -> bool:
        return (self.env_dir(key) / READY).is_file()

    def list(self) -> list[dict]:
        out = []
        for d in sorted(self.envs.iterdir()):
            ready = d / READY
            if d.is_dir() and ready.is_file():
                info = json.loads(ready.read_text())
                info["key"] = d.name
                info["bytes"] = sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and not p.is_symlink())
                out.append(info)
        return out

    def remove(self, key: str) -> None:
        with open(self.envs / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            shutil.rmtree(self.env_dir(key), ignore_errors=True)

    # -- build ----------------------------------------------------------------------------
    def ensure(self, spec: EnvironmentSpec, log: Path) -> str:
        """The python of the built environment for ``spec``; builds it (once) if needed."""
        key = spec.build_key()
        azureml = spec.azureml_requirements()
        if azureml:
            _append(log, AZUREML_NOTE.format(names=", ".join(azureml)) + "\n")
        if self.is_ready(key):
            _append(log, f"Using the cached environment {spec.name} ({key}).\n")
            return self.python(key)
        with self._guard:
            build = self._builds.get(key)
            owner = build is None
            if owner:
                build = self._builds[key] = _Build()
        if not owner:
            _append(log, f"Waiting for the build of environment {spec.name} ({key}) already under way.\n")
            build.attach(log)
            build.done.wait()
            if build.error:
                raise BuildFailed(build.error)
            return self.python(key)
        build.attach(log)
        try:
            self._build(spec, key, build)
            self.failures.pop(key, None)
            return self.python(key)
        except BuildFailed as exc:
            build.error = self.failures[key] = str(exc)
            raise
        finally:
            build.done.set()
            with self._guard:
                self._builds.pop(key, None)

    def _build(self, spec: EnvironmentSpec, key: str, build: _Build) -> None:
        d = self.env_dir(key)
        with open(self.envs / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another server process on this cache waits here
            if self.is_ready(key):
                return
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            t0 = time.time()
            base, reqs = spec.interpreter(), spec.pip_requirements()
            uv = find_uv()
            how = ("layered on " if self.layered else "isolated from ") + base
            build.write(f"Building environment {spec.name} ({key}) with {'uv' if uv else 'venv + pip'}, "
                        f"{how}: {len(reqs)} requirement(s): {' '.join(reqs) or '-'}\n".encode())
            venv, py = d / "venv", str(d / "venv" / "bin" / "python")
            try:
                if uv:
                    self._run([uv, "venv", "--quiet", "--python", base, str(venv)], build)
                else:
                    self._run([base, "-m", "venv", *(["--without-pip"] if self.layered else []), str(venv)], build)
                installed = self._layer(base, py, reqs, uv, build, d) if self.layered \
                    else self._install_all(py, reqs, uv, build)
                self._link_shim(py)
            except BuildFailed:
                shutil.rmtree(d, ignore_errors=True)  # a failed build is never cached
                raise
            took = time.time() - t0
            (d / READY).write_text(json.dumps({"name": spec.name, "version": spec.version, "python": base,
                                               "requirements": reqs, "installed": installed,
                                               "layered": self.layered, "built_at": time.time(),
                                               "seconds": round(took, 2)}))
            build.write(f"Environment {spec.name} ready in {took:.1f} s.\n".encode())

    def _install_all(self, py: str, reqs: list[str], uv: str | None, build: _Build) -> list[str]:
        """An isolated build: every requirement and its dependencies into the venv."""
        if reqs:
            self._run([uv, "pip", "install", "--python", py, *reqs] if uv else
                      [py, "-m", "pip", "install", "--disable-pip-version-check", *reqs], build)
        return reqs

    def _layer(self, base_python: str, py: str, reqs: list[str], uv: str | None, build: _Build,
               d: Path) -> list[str]:
        """Install into the venv only what ``base_python`` lacks (layers.py); returns that list."""
        try:
            base = layers.probe(base_python)
        except layers.ProbeFailed as exc:
            raise BuildFailed(str(exc)) from None
        layers.link_base(_site_packages(py), base)
        have, need = layers.split(base, reqs)
        if have:
            build.write(("From the base, not installed again: "
                         + ", ".join(f"{r} ({v})" for r, v in sorted(have.items())) + "\n").encode())
        if not need:
            return []
        if uv is None:  # pip sees the base's packages through the .pth: it installs only what is missing
            self._run([base_python, "-m", "pip", "--python", py, "install", "--disable-pip-version-check",
                       *need], build)
            return need
        (d / "layer.in").write_text("\n".join(need) + "\n")
        (d / "base.txt").write_text("\n".join(layers.constraints(base, need)) + "\n")
        compile_argv = [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python", py,
                        str(d / "layer.in"), "-o", str(d / "layer.txt")]
        try:
            self._run([*compile_argv, "-c", str(d / "base.txt")], build)
        except BuildFailed:
            build.write(b"The requirements need other versions of some of the base's packages; "
                        b"resolving again without the base's versions.\n")
            self._run(compile_argv, build)
        todo = layers.not_in_base(base, (d / "layer.txt").read_text().splitlines())
        if todo:
            self._run([uv, "pip", "install", "--python", py, "--no-deps", *todo], build)
        return todo

    def _run(self, argv: list[str], build: _Build) -> None:
        build.write(("$ " + " ".join(argv) + "\n").encode())
        env = dict(os.environ, UV_NO_PROGRESS="1", PIP_PROGRESS_BAR="off")
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            raise BuildFailed(f"Could not run {argv[0]}: {exc}") from None
        tail: list[str] = []
        for line in proc.stdout:
            build.write(line)
            tail = (tail + [line.decode("utf-8", "replace").rstrip()])[-TAIL_LINES:]
        if proc.wait() != 0:
            raise BuildFailed("The environment build failed:\n" + "\n".join(t for t in tail if t))

    def _link_shim(self, py: str) -> None:
        """Make kernel_lib.tracking and the rank entry point importable in the environment."""
        if self.shim_files is None:
            raise BuildFailed("This environment cache was opened without the in-job code (shim_files); "
                              "environments are built by the server.")
        shim = self.root / "shim"
        for src, rel in self.shim_files():
            target = shim / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        Path(_site_packages(py), "jupyter_train_shim.pth").write_text(str(shim) + "\n")


def find_uv() -> str | None:
    """uv from its Python package (a dependency, beside the server's interpreter, often not on
    PATH), else from PATH."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _site_packages(py: str) -> str:
    try:
        return subprocess.run([py, "-E", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildFailed(f"The new environment's python does not run: {exc}") from None


def _append(log: Path, text: str) -> None:
    with open(log, "a") as f:
        f.write(text)

