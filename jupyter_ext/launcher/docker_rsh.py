"""OpenMPI's remote-shell agent for MPI jobs on a Docker target:
``python -m jupyter_ext.launcher.docker_rsh CONTAINER COMMAND...``.

mpirun (on this host) starts its daemon on each "host" of the job through an rsh agent, as
``agent HOST COMMAND...`` with the same meaning as ``ssh HOST COMMAND...``: the words are one
command line for the remote shell. Here each host is a node container of the run, and the agent
runs that command line in it through the Docker Engine API (``docker exec``), relays its output,
and exits with its exit code. The engine is JUPYTER_TRAIN_DOCKER_URL (contract.ENV_DOCKER_URL),
else DOCKER_HOST, else the local socket.

mpirun runs it by its path (commands.RSH_AGENT), so that it needs only docker-py, not
jupyter-train on the PYTHONPATH (mpirun's PYTHONPATH is the containers'): standard library and
docker-py only.
"""

from __future__ import annotations

import os
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    while argv and argv[0].startswith("-"):  # ssh-style options OpenMPI may pass (-x, -T)
        argv = argv[1:]
    if len(argv) < 2:
        print("usage: python -m jupyter_ext.launcher.docker_rsh CONTAINER COMMAND...", file=sys.stderr)
        return 2
    import docker

    host, command = argv[0], " ".join(argv[1:])
    url = os.environ.get("JUPYTER_TRAIN_DOCKER_URL") or os.environ.get("DOCKER_HOST") or None
    client = docker.DockerClient(base_url=url, timeout=None)
    try:
        container = client.containers.get(host)
    except docker.errors.NotFound:
        print(f"docker_rsh: no container {host!r} on the engine", file=sys.stderr)
        return 255
    # the remote shell of ssh semantics: the container's sh runs the command line
    exec_id = client.api.exec_create(container.id, ["/bin/sh", "-c", command], stdout=True, stderr=True)["Id"]
    for chunk in client.api.exec_start(exec_id, stream=True, demux=True):
        out, err = chunk
        if out:
            sys.stdout.buffer.write(out)
            sys.stdout.flush()
        if err:
            sys.stderr.buffer.write(err)
            sys.stderr.flush()
    code = client.api.exec_inspect(exec_id).get("ExitCode")
    return int(code if code is not None else 255)


if __name__ == "__main__":
    sys.exit(main())
