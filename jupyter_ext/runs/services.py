"""Deployed models (Azure ML ``Model.deploy``): a service is a long-running run.

``deploy`` checks the request, copies the models' files into a new run directory with the
service's config and keys (``jupyter_ext.serving`` lists the files), and submits a run of the
experiment ``services`` whose rank is the serving keeper. So a service gets what a run gets: an
environment built and cached as for runs, the compute target's placement, a detached supervisor
(a kernel or server restart leaves it serving; a restarted server finds it again), a log, and a
process boundary (``delete`` cancels the run: nothing it started is left). Its state comes from
the run and from what the keeper writes (``STATUS``): Transitioning until init() is done,
Healthy, Unhealthy while the scoring process is being restarted after a crash, Failed when the
run ended (an init() that raised, a delete in progress).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from pathlib import Path

from .. import contract
from ..errors import Conflict, InvalidRequest, NotFound
from ..launcher.procs import free_port
from ..paths import check_relative, safe_join
from ..serving import (CONFIG, FAILED, HEALTHY, KEYS, MODELS_DIR, MODELS_MANIFEST, STATS, STATUS,
                       TRANSITIONING, UNHEALTHY)
from ..worktree import copy_fd
from .requests import SubmitRequest

EXPERIMENT = "services"
SCRIPT = "_jupyter_train_service.py"
SCRIPT_TEXT = ("# The rank of a jupyter-train service: starts the scoring process, keeps it up.\n"
               "import sys\nfrom jupyter_ext.serving.keeper import main\nsys.exit(main())\n")
NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,30}[a-z0-9]\Z")
MAX_REQUEST_BYTES = 32 << 20  # a request body, by default
DELETE_WAIT_S = 30.0
KEY_NAMES = ("primary", "secondary")


def check_service_name(name) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidRequest(f"Service name {name!r} is not valid: use 3-32 lowercase letters, digits "
                             "or '-', starting with a letter and ending with a letter or digit.")
    return name


class Services:
    def __init__(self, manager):
        self.m = manager
        self.store = manager.store

    # -- deploy -----------------------------------------------------------------------------
    async def deploy(self, body: dict) -> dict:
        name = check_service_name(body.get("name"))
        replaces = self.store.get_service(name) is not None
        if replaces and not body.get("overwrite"):
            raise Conflict(f"A service named {name!r} exists. Delete it first, or deploy with "
                           "overwrite=True to replace it.")
        models = [self.m.models.get(m["name"], m.get("version")) for m in body.get("models") or []]
        entry, source = body.get("entry_script"), body.get("source_directory")
        builtin = None
        if entry:
            if not source:
                raise InvalidRequest("'entry_script' needs 'source_directory', the folder on the server's "
                                     "machine that holds it.")
            check_relative(entry, "source_directory")
            source = os.path.abspath(os.path.expanduser(source))
            path = safe_join(source, entry) if os.path.isdir(source) else None
            if path is None or not path.is_file():
                raise InvalidRequest(f"The entry script {entry!r} was not found in {source}.")
        elif models and all((m.get("framework") or "").lower() == "onnx" for m in models):
            builtin = "onnx"
        else:
            raise InvalidRequest("An entry script is needed (InferenceConfig(entry_script=...)), unless "
                                 "every model was registered with model_framework='Onnx'.")
        if replaces:  # the request holds up: only now is the old one stopped
            await self.delete(name)
        port = body.get("port") or free_port()
        for other in self.store.list_services():
            if other["config"]["port"] == port and not self._ended(other["run_id"]):
                raise Conflict(f"Port {port} is taken by service {other['name']!r}; choose another "
                               "port, or none to get a free one.")
        auth = bool(body.get("auth_enabled"))
        keys = {k: secrets.token_urlsafe(32) for k in KEY_NAMES} if auth else {}
        cfg = {"name": name, "entry_script": entry if not builtin else None, "builtin": builtin,
               "port": port, "host": "127.0.0.1", "auth_enabled": auth,
               "max_request_bytes": int(body.get("max_request_bytes") or MAX_REQUEST_BYTES),
               "models": [{"name": m["name"], "version": m["version"], "path": m["path"]} for m in models],
               "cpu_cores": body.get("cpu_cores"), "memory_gb": body.get("memory_gb"),
               "description": body.get("description"), "tags": body.get("tags") or {}}
        env_vars = dict(body.get("environment_variables") or {})
        if cfg["cpu_cores"]:  # the threads torch and BLAS use (the service's share of the machine)
            env_vars.setdefault("OMP_NUM_THREADS", str(max(1, int(cfg["cpu_cores"]))))
        env = body.get("environment")
        if isinstance(env, dict) and env.get("pip_packages") is not None and not env.get("interpreter_path") \
                and not any(re.match(r"tornado\b", str(p)) for p in env["pip_packages"]):
            env = {**env, "pip_packages": [*env["pip_packages"], "tornado"]}  # the scoring server
        req = SubmitRequest(experiment=EXPERIMENT, script=SCRIPT, source_directory=source,
                            python=body.get("python") or "",
                            extra_files={SCRIPT: SCRIPT_TEXT}, compute_target=body.get("compute_target") or "local",
                            environment=env, environment_variables=env_vars,
                            tags={"service": name})

        def setup(rd) -> None:
            cfg["model_dir"] = self._copy_models(rd.path, models)
            _write_json(rd.path / CONFIG, cfg)
            if auth:
                _write_json(rd.path / KEYS, keys, mode=0o600)

        run = await self.m.submit(req, properties={"service": {"name": name}}, setup=setup)
        self.store.insert_service(name, run["id"], time.time(), cfg, keys)
        return self.get(name)

    def _copy_models(self, run_dir: Path, models: list[dict]) -> str:
        """Each model's files under azureml-models/<name>/<version>/ of the run (copies, read
        through the models' containment rule); AZUREML_MODEL_DIR: the one model's folder, or
        azureml-models/ when there are several (as Azure ML sets it)."""
        root = run_dir / MODELS_DIR
        root.mkdir()
        for m in models:
            dest = root / m["name"] / str(m["version"])
            dest.mkdir(parents=True)
            with self.m.models.tree(m) as tree:
                for rel, _size in tree.list().files:
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tree.open(rel) as src, open(target, "wb") as out:
                        copy_fd(src.fileno(), out.fileno())
        _write_json(root / MODELS_MANIFEST, [{"name": m["name"], "version": m["version"], "path": m["path"]}
                                             for m in models])
        if len(models) == 1:
            return str(root / models[0]["name"] / str(models[0]["version"]))
        return str(root)

    # -- queries ----------------------------------------------------------------------------
    def _require(self, name: str) -> dict:
        svc = self.store.get_service(check_service_name(name))
        if svc is None:
            raise NotFound(f"No service named {name!r}. List services with GET /train/api/services "
                           "(Webservice.list(ws)).")
        return svc

    def _ended(self, run_id: str) -> bool:
        run = self.store.get_run(run_id)
        return run is None or contract.is_terminal(run["status"])

    def get(self, name: str) -> dict:
        return self._describe(self._require(name))

    def list(self) -> list[dict]:
        return [self._describe(s) for s in self.store.list_services()]

    def _describe(self, svc: dict) -> dict:
        cfg, run = svc["config"], self.store.get_run(svc["run_id"])
        rd = self.m.run_dir(svc["run_id"])
        status, stats = _read_json(rd.path / STATUS), _read_json(rd.path / STATS)
        run_status = run["status"] if run else contract.FAILED
        if contract.is_terminal(run_status):
            state = FAILED
        elif status.get("state") in (HEALTHY, UNHEALTHY, FAILED):
            state = status["state"]
        else:
            state = TRANSITIONING
        error = (run or {}).get("error") or (status.get("error") if state == FAILED else None)
        if state == FAILED and not error:
            error = f"Its run {svc['run_id']} is {run_status}."
        return {"name": svc["name"], "state": state, "run_id": svc["run_id"], "run_status": run_status,
                "scoring_uri": f"http://{cfg['host']}:{cfg['port']}/score", "port": cfg["port"],
                "auth_enabled": cfg["auth_enabled"], "compute_target": (run or {}).get("compute_target"),
                "entry_script": cfg["entry_script"], "builtin": cfg["builtin"],
                "models": [{"name": m["name"], "version": m["version"]} for m in cfg["models"]],
                "created_at": svc["created_at"], "description": cfg.get("description"),
                "tags": cfg.get("tags") or {}, "restarts": int(status.get("restarts") or 0),
                "error": error, "max_request_bytes": cfg["max_request_bytes"],
                "requests": int(stats.get("requests") or 0), "errors": int(stats.get("errors") or 0),
                "p50_ms": stats.get("p50_ms"), "p99_ms": stats.get("p99_ms"),
                "last_request_at": stats.get("last_request_at")}

    def keys(self, name: str) -> dict:
        svc = self._require(name)
        if not svc["config"]["auth_enabled"]:
            raise Conflict(f"Service {name!r} was deployed without auth_enabled: it takes no keys.")
        return {"primary_key": svc["keys"]["primary"], "secondary_key": svc["keys"]["secondary"]}

    def regen_key(self, name: str, which: str) -> dict:
        svc = self._require(name)
        which = (which or "").lower()
        if which not in KEY_NAMES:
            raise InvalidRequest("'key' must be 'Primary' or 'Secondary'.")
        if not svc["config"]["auth_enabled"]:
            raise Conflict(f"Service {name!r} was deployed without auth_enabled: it takes no keys.")
        keys = {**svc["keys"], which: secrets.token_urlsafe(32)}
        self.store.set_service_keys(name, keys)
        _write_json(self.m.run_dir(svc["run_id"]).path / KEYS, keys, mode=0o600)
        return self.keys(name)

    def target(self, name: str) -> tuple[str, dict]:
        """Where the proxy sends a request: the scoring URL and the headers it adds (the key)."""
        svc = self._require(name)
        described = self._describe(svc)
        if described["state"] != HEALTHY:
            raise Conflict(f"Service {name!r} is {described['state']}; it scores only when Healthy."
                           + (f" {described['error']}" if described.get("error") else ""))
        headers = {"Authorization": f"Bearer {svc['keys']['primary']}"} if svc["config"]["auth_enabled"] else {}
        return described["scoring_uri"], headers

    def logs(self, name: str) -> str:
        """The scoring process's output (its log), after the environment build's when there is one."""
        svc = self._require(name)
        out = []
        for log_name in ("prepare.txt", "rank_0.txt"):
            try:
                with self.m.open_log(svc["run_id"], log_name) as f:
                    out.append(f.read().decode("utf-8", errors="replace"))
            except NotFound:
                continue
        return "".join(out)

    # -- delete -----------------------------------------------------------------------------
    async def delete(self, name: str) -> dict:
        """Cancel the service's run and wait until it ended (every process it started is gone
        then), then forget the service. Its run stays in the history."""
        svc = self._require(name)
        run_id = svc["run_id"]
        if not self._ended(run_id) and self.m.run_dir(run_id).path.is_dir():  # else nothing is left to stop
            self.m.cancel(run_id, reason=f"Service {name} deleted")
            deadline = time.monotonic() + DELETE_WAIT_S
            while not self._ended(run_id) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                self.m.tailer.sync(run_id)
        self.store.delete_service(name)
        run = self.store.get_run(run_id)
        return {"name": name, "deleted": True, "run_id": run_id, "run_status": run["status"] if run else None}


def _write_json(path: Path, data, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
