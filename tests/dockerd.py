"""A private dockerd for tests and benchmarks (Debian's docker.io): its own socket, data-root and
exec-root under a short /tmp folder, no iptables and no bridge; stopped by its PID. No registry
is reachable here, so images are imported locally: ``import_skeleton`` makes one with no software
of its own (merged-/usr links, /etc/passwd, empty mount points) whose /usr and Python come from
this host as read-only volumes (``host_python_volumes``: also in a virtual environment)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def host_python_volumes(python: str = sys.executable) -> dict[str, str]:
    """Volumes (host folder -> "same folder:ro") with which a container of an image that has no
    software of its own runs this host's ``python`` at its own path: /usr (the C library, and
    Debian's Python), the interpreter's prefix and, in a virtual environment, both the venv (its
    ``bin/python`` link, ``pyvenv.cfg`` and site-packages: torch, ...) and the base interpreter's
    prefix (what the link leads to, and the standard library)."""
    exe = Path(python)
    dirs = {"/usr", sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
            str(exe.parent.parent), str(exe.resolve().parent.parent)}
    dirs |= {os.path.realpath(d) for d in dirs}  # a prefix reached through a link: both paths
    dirs = {d for d in dirs if d != "/"}
    # a folder inside another one is mounted with it
    kept = [d for d in sorted(dirs) if not any(d.startswith(o.rstrip("/") + "/") for o in dirs if o != d)]
    return {d: f"{d}:ro" for d in kept}


class Dockerd:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="jtdk-", dir="/tmp"))  # short: socket paths are limited
        self.url = f"unix://{self.root}/d.sock"
        self.proc = None
        self.client = None

    def start(self, timeout: float = 60) -> "Dockerd":
        import docker

        self.log = open(self.root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--storage-driver=overlay2", "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--host", self.url, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "d.pid")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited: " + (self.root / "dockerd.log").read_text()[-3000:])
            try:
                self.client = docker.DockerClient(base_url=self.url, timeout=60)
                self.client.ping()
                return self
            except Exception:
                self.client = None
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("dockerd did not answer: " + (self.root / "dockerd.log").read_text()[-3000:])

    def import_skeleton(self, name: str) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for d in ("usr", "etc", "tmp", "root", "proc", "dev", "sys", "run", "var", "opt", "home"):
                ti = tarfile.TarInfo(d)
                ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tar.addfile(ti)
            for link in ("bin", "lib", "lib64", "sbin"):
                ti = tarfile.TarInfo(link)
                ti.type, ti.linkname = tarfile.SYMTYPE, f"usr/{link}"
                tar.addfile(ti)
            for path, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
                data = text.encode()
                ti = tarfile.TarInfo(path)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
        repo, _, tag = name.partition(":")
        self.client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag or "latest")

    def stop(self) -> None:
        if self.client is not None:
            for c in self.client.containers.list(all=True):
                c.remove(force=True)
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        # dockerd leaves its network namespace mounted under exec-root: unmount what lies under root
        with open("/proc/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(str(self.root))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
