"""RunManager: submit, queue, cancel and reconcile runs; answer queries about them.

Framework-free: no tornado, no jupyter_server. The handlers call it; it calls the store, the
snapshot store and the targets. Slow work (snapshots, copies) runs in a thread so the event
loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import Conflict, InvalidRequest, NotFound, UnknownComputeTarget
from ..launcher.api import Target
from ..modelfiles import ModelFiles, model_source
from ..launcher.cluster_target import MAX_CLUSTER_NODES as MAX_NODES, ClusterConfig, ClusterTarget
from ..launcher.commands import build_nodes
from ..launcher.docker_target import DockerConfig, DockerTarget
from ..launcher.ray_target import RayConfig, RayTarget, RayView
from ..launcher.local_target import LocalTarget
from ..launcher.rundir import RunDir
from ..launcher.spec import RunSpec, RunState
from ..paths import Tree, check_name, safe_join
from ..environments import CURATED_PREFIX, BuildFailed, EnvCache, EnvironmentSpec, curated_environments
from ..snapshots import Snapshot, SnapshotStore
from ..store import SQLiteStore
from ..workspace import WorkspaceDir
from . import history
from .requests import SubmitRequest, parse_distributed
from .tailer import Tailer

log = logging.getLogger("jupyter_ext")
MAX_METRICS_PAGE = 100_000  # points in one GET /runs/{id}/metrics page
MAX_SERIES_POINTS = 10_000  # points of one downsampled series


class RunManager:
    def __init__(self, workspace_dir: str, *, snapshot_max_mb: float = 300,
                 snapshot_max_files: int = 2000, poll_interval: float = 1.0,
                 targets: list[Target] | None = None, node_shapes: dict | None = None):
        self.ws = WorkspaceDir(workspace_dir).create()
        self.store = SQLiteStore(str(self.ws.db_path))
        self.snapshots = SnapshotStore(self.ws.snapshots)
        self.envs = EnvCache(self.ws.path / "environments")
        self.model_files_store = ModelFiles(self.ws.models)
        self.snapshot_max_bytes = int(snapshot_max_mb * 1e6)
        self.snapshot_max_files = snapshot_max_files
        self.node_shapes = {k: (int(v["cpus"]), int(v["gpus"])) for k, v in (node_shapes or {}).items()}
        self.targets: dict[str, Target] = {t.name: t for t in (targets or [LocalTarget()])}
        for row in self.store.list_computes():
            try:
                if row["kind"] == "docker":
                    self.targets[row["name"]] = DockerTarget(DockerConfig(**row["config"]))
                    continue
                if row["kind"] == "ray":
                    self.targets[row["name"]] = RayTarget(RayConfig(**row["config"]))
                    continue
                cfg = ClusterConfig(**row["config"])
                self.targets[cfg.name] = ClusterTarget(cfg, self._host_gpus(), shapes=self.node_shapes)
            except (InvalidRequest, TypeError) as exc:  # e.g. a named shape no longer configured
                log.warning("jupyter-train: compute target %s is not usable: %s", row["name"],
                            getattr(exc, "message", exc))
        self.tailer = Tailer(self, poll_interval)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.ensure_started()

    def ensure_started(self) -> None:
        """Reconcile with the disk and start following runs (once; needs a running loop)."""
        if self.tailer.started:
            return
        self.tailer.reconcile()
        self.tailer.start()

    async def stop(self) -> None:
        await self.tailer.stop()
        RayView.stop_all()  # before the heads: a probe withdraws its autoscaler request
        for target in self.targets.values():
            if isinstance(target, RayTarget):
                target.stop_head()
        self.store.close()

    def run_dir(self, run_id: str) -> RunDir:
        return RunDir(self.ws.runs / run_id)

    # -- submit ---------------------------------------------------------------------------
    async def submit(self, req: SubmitRequest, *, snapshot: Snapshot | None = None) -> dict:
        """Check ``req``, snapshot its source (or reuse ``snapshot``, for a resubmit) and queue it."""
        check_name("Experiment", req.experiment)
        target = self.targets.get(req.compute_target)
        if target is None:
            raise UnknownComputeTarget(
                f"Unknown compute target {req.compute_target!r}. Known targets: "
                f"{', '.join(sorted(self.targets))}. Create it first or pick one of these.")
        dist = parse_distributed(req.distributed)
        if isinstance(target, RayTarget):
            target.check_kind(dist.kind if dist else None)
        if dist is not None:
            target.check_job(dist.nodes, dist.procs_per_node, dist.backend)
        env = self.resolve_environment(req.environment) if req.environment else None
        if isinstance(target, DockerTarget):
            env = self._container_environment(target, env)
            env_key = "docker"
            python = sys.executable  # a placeholder on this host; the image's interpreter runs
        elif isinstance(target, RayTarget) and target.ray.shared_filesystem is False and env is not None \
                and env.needs_build:
            env_key, python = None, sys.executable  # no node sees this host's build: Ray builds it
        else:
            env_key = env.build_key() if env is not None and env.needs_build else None
            python = (env.interpreter() if env is not None and not env.needs_build else None) \
                or req.python or sys.executable
        # Ray builds the environment (uv) on nodes that do not see this host's files
        ray_files = {"packages": env.pip_requirements()} \
            if isinstance(target, RayTarget) and env is not None and env.needs_build else None
        if not (os.path.isabs(python) and os.access(python, os.X_OK)):
            raise InvalidRequest(f"The Python interpreter {python!r} is not an executable absolute "
                                 "path on the server's machine.")
        source = os.path.abspath(os.path.expanduser(req.source_directory)) if req.source_directory else None
        if snapshot is None:
            script_rel, snap = await self._snapshot(req, source)
        else:
            script_rel, snap = req.script, snapshot
        now = time.time()
        run_id = f"{req.experiment}_{int(now)}_{secrets.token_hex(4)}"
        spec = RunSpec(run_id=run_id, experiment=req.experiment, script=script_rel,
                       arguments=[str(a) for a in req.arguments], compute_target=target.name,
                       python=python, snapshot_id=snap.id,
                       snapshot_store=str(self.snapshots.root), env=dict(req.environment_variables),
                       tags={k: str(v) for k, v in req.tags.items()}, created_at=now,
                       distributed=dist, ray=ray_files)
        rd = self.run_dir(run_id)
        rd.create()
        rd.spec_path.write_text(spec.to_json())
        self.store.insert_run({"id": run_id, "experiment": req.experiment,
                               "status": RunState.NOT_STARTED.value, "created_at": now,
                               "compute_target": target.name, "script": script_rel,
                               "arguments": spec.arguments, "tags": spec.tags,
                               "properties": {"snapshot_files": snap.files,
                                              "snapshot_bytes": snap.bytes,
                                              "source_directory": source,
                                              **({"extra_files": sorted(req.extra_files)}
                                                 if req.extra_files else {}),
                                              **({"distributed": asdict(dist)} if dist else {}),
                                              **({"environment": {"name": env.name, "version": env.version,
                                                                  "key": env_key}} if env else {})},
                               "snapshot_id": snap.id, "run_dir": str(rd.path)})
        rd.append_event(RunState.NOT_STARTED, "server")
        rd.append_event(RunState.PREPARING, "server", f"snapshot {snap.id}: {snap.files} files, "
                        f"{snap.new_files} new")
        if env_key is not None:
            # Build (or wait for) the environment in the background; the run is Preparing meanwhile
            # and its logs/prepare.txt shows the build live.
            self.tailer.sync(run_id)
            prepare = self._prepare_container if env_key == "docker" else self._prepare_environment
            asyncio.get_running_loop().create_task(prepare(target, spec, rd, env))
            return self.get_run(run_id)
        self._enqueue(target, run_id, rd)
        return self.get_run(run_id)

    async def _snapshot(self, req: SubmitRequest, source: str | None):
        """Find the script and snapshot the source directory plus the request's extra files."""
        extra = {os.path.normpath(k): v.encode("utf-8") for k, v in req.extra_files.items()}
        if os.path.normpath(req.script) in extra:
            script_rel = os.path.normpath(req.script)
        elif source is None:
            raise InvalidRequest(f"The script {req.script!r} is neither in extra_files nor in a "
                                 "source directory.")
        else:
            script_path = safe_join(source, req.script) if os.path.isdir(source) else None
            if script_path is not None and not script_path.is_file():
                raise InvalidRequest(f"The script {req.script!r} was not found in {source}. Check "
                                     "the name, or set source_directory to the folder that holds it.")
            script_rel = os.path.relpath(script_path, os.path.realpath(source)) if script_path else ""
        # Snapshot before anything exists for the run: a bad source directory leaves no trace.
        snap = await asyncio.to_thread(self.snapshots.take, source, self.snapshot_max_bytes,
                                       self.snapshot_max_files, extra)
        if script_rel not in {e[0] for e in self.snapshots.manifest(snap.id)}:
            raise InvalidRequest(f"The script {req.script!r} is excluded by the ignore rules "
                                 "(.amlignore / .gitignore) of the source directory.")
        return script_rel, snap

    async def resubmit(self, run_id: str) -> dict:
        """A new run with the same spec as ``run_id``: its snapshot, script, arguments, compute,
        environment, distribution, environment variables and tags (plus ``resubmit_of``)."""
        run = self.get_run(run_id)
        rd = self.run_dir(run_id)
        try:
            old = RunSpec.load(rd.spec_path)
        except (OSError, ValueError, TypeError):
            raise Conflict(f"Run {run_id} has no readable spec ({rd.spec_path}); submit it again "
                           "from its source instead.") from None
        props = run.get("properties") or {}
        env = props.get("environment")
        dist = old.distributed
        req = SubmitRequest(
            experiment=run["experiment"], script=old.script,
            source_directory=props.get("source_directory"), arguments=list(old.arguments),
            compute_target=old.compute_target, python="" if env else old.python,
            environment_variables=dict(old.env),
            tags={**{k: v for k, v in old.tags.items() if k != "resubmit_of"}, "resubmit_of": run_id},
            environment={"name": env["name"], "version": env.get("version")} if env else None,
            distributed=asdict(dist) if dist else None)
        files = self.snapshots.manifest(old.snapshot_id)  # a clear error if the snapshot is gone
        snap = Snapshot(old.snapshot_id, len(files), int(props.get("snapshot_bytes") or 0), 0, 0)
        return await self.submit(req, snapshot=snap)

    def _enqueue(self, target: Target, run_id: str, rd: RunDir) -> None:
        rd.append_event(RunState.QUEUED, "server", target=target.name)
        self.tailer.sync(run_id)
        target.queue.append(run_id)
        self.pump(target)

    async def _prepare_environment(self, target: Target, spec: RunSpec, rd: RunDir,
                                   env: EnvironmentSpec) -> None:
        try:
            python = await asyncio.to_thread(self.envs.ensure, env, rd.logs / "prepare.txt")
        except BuildFailed as exc:
            rd.append_event(RunState.FAILED, "server", f"Environment {env.name}: {exc}")
            self.tailer.sync(spec.run_id)
            return
        except Exception as exc:  # never leave a run in Preparing
            log.exception("jupyter-train: preparing %s failed", spec.run_id)
            rd.append_event(RunState.FAILED, "server", f"Environment {env.name} could not be prepared: {exc}")
            self.tailer.sync(spec.run_id)
            return
        if self._canceled_while_preparing(rd, spec.run_id, "its environment"):
            return
        spec.python = python
        rd.spec_path.write_text(spec.to_json())
        self._enqueue(target, spec.run_id, rd)

    def _container_environment(self, target: DockerTarget, env: EnvironmentSpec | None) -> EnvironmentSpec:
        """The environment a run on a Docker target runs in: its own image, or the target's."""
        if env is not None and (env.docker_base_image or env.docker_file):
            return env
        if target.docker.image:
            base = env or EnvironmentSpec(name=f"{target.name}-default")
            return EnvironmentSpec(**{**base.to_dict(), "docker_base_image": target.docker.image})
        raise InvalidRequest(
            f"A run on the Docker target {target.name!r} needs an image: give it an environment with "
            "docker.base_image (or a Dockerfile), or create the target with image=... for runs that "
            "name none.")

    def _canceled_while_preparing(self, rd: RunDir, run_id: str, what: str) -> bool:
        if rd.last_state() not in (RunState.CANCEL_REQUESTED, RunState.CANCELED):
            return False
        rd.append_event(RunState.CANCELED, "server", f"Canceled while {what} was prepared")
        self.tailer.sync(run_id)
        return True

    async def _prepare_container(self, target: DockerTarget, spec: RunSpec, rd: RunDir,
                                 env: EnvironmentSpec) -> None:
        from ..environments.images import ensure_image

        log_path = rd.logs / "prepare.txt"

        def log(text: str) -> None:
            with open(log_path, "a") as f:
                f.write(text)

        try:
            client = target.client()
            tag = await asyncio.to_thread(ensure_image, client, env, log, target.docker.allow_pull,
                                          None, f"the Docker engine at {target.engine}")
        except Exception as exc:  # BuildFailed, an engine that went away: never stuck in Preparing
            message = str(exc) if isinstance(exc, BuildFailed) else f"the Docker engine at {target.engine}: {exc}"
            rd.append_event(RunState.FAILED, "server", f"Environment {env.name}: {message}")
            self.tailer.sync(spec.run_id)
            return
        if self._canceled_while_preparing(rd, spec.run_id, "its image"):
            return
        spec.container = target.container_config(tag, env.interpreter_path or "python3")
        rd.spec_path.write_text(spec.to_json())
        self._enqueue(target, spec.run_id, rd)

    # -- environments ---------------------------------------------------------------------
    def resolve_environment(self, body: dict) -> EnvironmentSpec:
        """{"name", "version"} of a curated or registered environment, or a whole spec."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise InvalidRequest("'environment' must be an object with a 'name'.")
        if set(body) <= {"name", "version"}:
            return EnvironmentSpec.from_dict(self.get_environment(body["name"], body.get("version")))
        return EnvironmentSpec.from_dict(body)

    def get_environment(self, name: str, version: int | None = None) -> dict:
        for env in curated_environments():
            if env.name == name:
                return env.to_dict()
        found = self.store.get_environment(name, version)
        if found is None:
            which = f"version {version} of " if version else ""
            raise NotFound(f"No {which}environment {name!r} is registered. Register it with "
                           "env.register(ws), or list them with Environment.list(ws).")
        return found

    def list_environments(self) -> list[dict]:
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

    def register_environment(self, body: dict) -> dict:
        spec = EnvironmentSpec.from_dict({k: v for k, v in body.items() if k != "version"})
        check_name("Environment", spec.name)
        if spec.name.startswith(CURATED_PREFIX) or spec.curated:
            raise InvalidRequest(f"Names starting with {CURATED_PREFIX!r} are reserved for curated "
                                 "environments; clone it under a new name to change it.")
        spec.pip_requirements()  # refuse unmappable conda packages now, not at the first run
        if spec.python_version:
            spec.interpreter()
        version = self.store.register_environment(spec.name, spec.to_dict())
        return self.get_environment(spec.name, version)

    # -- queue ----------------------------------------------------------------------------
    def pump(self, target: Target) -> None:
        """Start queued runs, oldest first, while the target has the nodes they need."""
        while target.queue:
            run_id = target.queue[0]
            rd = self.run_dir(run_id)
            if rd.last_state() in (RunState.CANCEL_REQUESTED, RunState.CANCELED):
                target.queue.pop(0)
                continue
            spec = RunSpec.load(rd.spec_path)
            need = spec.distributed.nodes if spec.distributed else 1
            indices = target.allocate(run_id, need)
            if indices is None:
                return  # the head waits; nobody overtakes it
            target.queue.pop(0)
            (rd.path / "nodes.json").write_text(json.dumps({"target": target.name, "nodes": indices}))
            spec.node_gpus = target.node_gpus(indices)
            spec.nodes = build_nodes(spec)
            if isinstance(target, RayTarget):
                try:
                    spec.ray = {**(spec.ray or {}), **target.ray_config()}  # may start the local head
                except InvalidRequest as exc:
                    rd.append_event(RunState.FAILED, "server", exc.message)
                    self.tailer.sync(run_id)
                    continue
            rd.spec_path.write_text(spec.to_json())
            self._schedule(target, spec, rd)

    def run_finished(self, run_id: str) -> None:
        """Called (on the event loop) when a run reaches a final state: free its nodes."""
        for target in self.targets.values():
            target.release(run_id)
            self.pump(target)

    def tick_targets(self) -> None:
        for target in self.targets.values():
            target.tick()
            if target.queue:
                self.pump(target)

    def _schedule(self, target: Target, spec: RunSpec, rd: RunDir) -> None:
        if rd.last_state() in (RunState.CANCEL_REQUESTED, RunState.CANCELED):
            return
        try:
            handle = target.schedule(spec, rd)
        except OSError as exc:
            rd.append_event(RunState.FAILED, "server", f"Could not start on {target.name}: {exc}")
            return
        popen = handle.pop("_popen", None)
        if popen is not None:
            self.tailer.children[spec.run_id] = popen

    # -- cancel ---------------------------------------------------------------------------
    def cancel(self, run_id: str) -> dict:
        run = self.get_run(run_id)
        if RunState(run["status"]).is_terminal():
            return run
        rd = self.run_dir(run_id)
        rd.append_event(RunState.CANCEL_REQUESTED, "server")
        target = self.targets.get(run["compute_target"])
        if target is not None and run_id in target.queue:
            target.queue.remove(run_id)
            rd.append_event(RunState.CANCELED, "server", "Canceled while waiting for nodes")
            return self.tailer.sync(run_id)
        delivered = target.cancel(rd) if target else False
        popen = self.tailer.children.get(run_id)
        if not delivered and popen is not None and popen.poll() is None:
            # Its supervisor is starting: SIGTERM before its handler is set kills it, and the
            # tailer then records Canceled; after, the supervisor sees the request itself.
            popen.terminate()
        elif not delivered and rd.read_supervisor_info() is None and popen is None:
            rd.append_event(RunState.CANCELED, "server", "Canceled before it started")
        return self.tailer.sync(run_id)

    # -- queries --------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict:
        run = self.store.get_run(run_id) if isinstance(run_id, str) else None
        if run is None:
            raise NotFound(f"No run {run_id!r} in this workspace. List runs with GET /train/api/runs.")
        target = self.targets.get(run["compute_target"])
        if target is not None and run_id in target.queue:
            run["queue_position"] = target.queue.index(run_id) + 1
        return run

    def list_runs(self, experiment=None, status=None, limit=100) -> list[dict]:
        return self.store.list_runs(experiment=experiment, status=status, limit=limit)

    def log_listing(self, run_id: str) -> dict:
        """``{"logs": [{"name", "size"}], "skipped": [...]}``: links out of the run's history,
        FIFOs and devices are left out and named (paths.Tree's rule)."""
        self.get_run(run_id)
        return history.log_listing(self.run_dir(run_id), run_id)

    def open_log(self, run_id: str, name: str):
        self.get_run(run_id)
        return history.open_log(self.run_dir(run_id), run_id, name)

    def file_listing(self, run_id: str) -> dict:
        """Files in run history: outputs/... and logs/..., as Azure ML's get_file_names(), and
        what was left out (``skipped``)."""
        self.get_run(run_id)
        return history.file_listing(self.run_dir(run_id), run_id)

    def file_names(self, run_id: str) -> list[str]:
        return self.file_listing(run_id)["files"]

    def open_file(self, run_id: str, name: str):
        self.get_run(run_id)
        return history.open_file(self.run_dir(run_id), run_id, name)

    def update_tags(self, run_id: str, tags: dict) -> dict:
        self.get_run(run_id)
        if not isinstance(tags, dict):
            raise InvalidRequest("'tags' must be an object of strings.")
        self.store.update_tags(run_id, {str(k): str(v) for k, v in tags.items()})
        return self.get_run(run_id)

    def metrics(self, run_id: str, cursor: int = 0, limit: int = 1000, name: str | None = None,
                rank: int | None = None, columns: bool = False) -> dict:
        """Every point after ``cursor`` (of one metric with ``name``, one rank with ``rank``):
        as point objects (``items``), or with ``columns`` as one list per field (``columns``:
        id, rank, name, step, value, ts), which is several times faster to send and read."""
        self.get_run(run_id)
        limit = min(max(limit, 1), MAX_METRICS_PAGE)
        if columns:
            cols = self.store.metric_columns(run_id, cursor, limit, name, rank)
            return {"columns": cols, "cursor": cols["id"][-1] if cols["id"] else cursor}
        items = self.store.metrics_since(run_id, cursor, limit, name, rank)
        return {"items": items, "cursor": items[-1]["id"] if items else cursor}

    def metric_series(self, run_id: str, points: int = 1000, name: str | None = None,
                      rank: int | None = None) -> dict:
        """Each metric series of a run, downsampled to about ``points`` [x, value] pairs."""
        self.get_run(run_id)
        return self.store.metric_view(run_id, min(max(points, 0), MAX_SERIES_POINTS), name, rank)

    def compute_targets(self) -> list[dict]:
        return [t.describe() for t in self.targets.values()]

    def _host_gpus(self) -> list[str]:
        local = self.targets.get("local")
        return local.gpus if isinstance(local, LocalTarget) else []

    def get_compute(self, name: str) -> dict:
        target = self.targets.get(name)
        if target is None:
            raise NotFound(f"No compute target {name!r}. Known: {', '.join(sorted(self.targets))}. "
                           "Create it with ComputeTarget.create(ws, name, config).")
        return target.describe()

    def create_compute(self, body: dict) -> dict:
        name = check_name("Compute target", body.get("name"))
        if name in self.targets:
            raise Conflict(f"A compute target {name!r} exists already; pick another name or delete it.")
        kinds = {"ray": (RayConfig, RayTarget, "a Ray target"), "docker": (DockerConfig, DockerTarget, "a Docker target")}
        if body.get("kind", "cluster") not in ("cluster", *kinds):
            raise InvalidRequest(f"Unknown compute kind {body.get('kind')!r}: use 'cluster' (node slots of "
                                 "this host), 'docker' or 'ray'.")
        if not isinstance(body.get("max_nodes", 1), int) or not 0 < body.get("max_nodes", 1) <= MAX_NODES:
            raise InvalidRequest(f"max_nodes must be a whole number from 1 to {MAX_NODES}.")  # slots are listed
        if body.get("kind") in kinds:
            config_cls, target_cls, what = kinds[body["kind"]]
            fields = set(config_cls.__dataclass_fields__) - {"name", "created_at"}
            unknown = set(body) - fields - {"name", "kind"}
            if unknown:
                raise InvalidRequest(f"Unknown field(s) {sorted(unknown)} for {what}; allowed: {sorted(fields)}.")
            config = config_cls(name=name, **{k: v for k, v in body.items() if k in fields and v is not None})
            config.validate()
            target = target_cls(config)
            why = target.ping() if isinstance(target, DockerTarget) else None
            if why:
                raise InvalidRequest(why + ". Start Docker, or pass the engine's base_url.")
            self.store.save_compute(name, body["kind"], target.to_config())
            self.targets[name] = target
            return target.describe()
        fields = {k: body[k] for k in ("vm_size", "min_nodes", "max_nodes",
                                        "idle_seconds_before_scaledown") if k in body}
        unknown = set(body) - set(fields) - {"name", "kind"}
        if unknown:
            raise InvalidRequest(f"Unknown field(s) {sorted(unknown)} for a cluster.")
        config = ClusterConfig(name=name, **fields)
        gpus = self._host_gpus()
        config.validate(len(gpus), self.node_shapes)
        target = ClusterTarget(config, gpus, shapes=self.node_shapes)
        self.store.save_compute(name, "cluster", target.to_config())
        self.targets[name] = target
        return target.describe()

    def delete_compute(self, name: str) -> None:
        self.get_compute(name)
        target = self.targets[name]
        if not isinstance(target, ClusterTarget):
            raise InvalidRequest(f"{name!r} is built in and cannot be deleted.")
        if target.queue or any(n.run_id for n in target.nodes.values()):
            raise Conflict(f"Cluster {name!r} has runs running or queued; cancel them first.")
        if isinstance(target, RayTarget):
            target.stop_head()
        self.store.delete_compute(name)
        del self.targets[name]

    # -- models ---------------------------------------------------------------------------
    async def register_model(self, body: dict) -> dict:
        """A new version of model ``name`` from a run's file or folder (``run_id`` + ``path``) or a
        local absolute ``path``. Its files are stored once per content (see modelfiles)."""
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object: name, path, run_id, ...")
        name = check_name("Model", body.get("name"))
        run_id, rel = body.get("run_id"), body.get("path")
        if not isinstance(rel, str) or not rel:
            raise InvalidRequest("'path' is required: a file or folder inside the run (e.g. "
                                 "outputs/model.pt), or an absolute path on the server's machine.")
        experiment = self.get_run(run_id)["experiment"] if run_id else None
        for key in ("tags", "properties"):
            if not isinstance(body.get(key) or {}, dict):
                raise InvalidRequest(f"'{key}' must be an object.")
        for key in ("model_framework", "model_framework_version", "description"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InvalidRequest(f"'{key}' must be a string.")
        tree, src_rel, src_name = model_source(rel, history.run_tree(self.run_dir(run_id), run_id) if run_id else None)
        pending = self.ws.models / name / f".pending-{secrets.token_hex(6)}"
        try:
            stored = await asyncio.to_thread(self.model_files_store.store, tree, src_rel, src_name, pending)
        finally:
            tree.close()
        model = {"name": name, "run_id": run_id, "experiment": experiment, "path": src_name,
                 "source_path": rel, "tags": {str(k): str(v) for k, v in (body.get("tags") or {}).items()},
                 "properties": body.get("properties") or {}, "description": body.get("description"),
                 "framework": body.get("model_framework"),
                 "framework_version": body.get("model_framework_version"),
                 "checksum": stored.checksum, "size": stored.size, "created_at": time.time()}
        try:
            version = self.store.insert_model(model, stored.files)
            os.replace(pending, self.ws.models / name / str(version))
        except BaseException:
            shutil.rmtree(pending, ignore_errors=True)
            raise
        return {**self.get_model(name, version), "skipped": stored.skipped}

    def update_model(self, name: str, version: int, body: dict) -> dict:
        """Add or change tags (``tags``), remove some (``remove_tags``), add properties (never
        change them: they record how a version was made) and set the description."""
        model = self.get_model(name, version)
        if not isinstance(body, dict) or not set(body) <= {"tags", "remove_tags", "properties", "description"}:
            raise InvalidRequest("Send an object with any of: tags (object), remove_tags (list), "
                                 "properties (object), description (string).")
        tags, props = dict(model["tags"]), dict(model["properties"])
        add, remove, new_props = body.get("tags") or {}, body.get("remove_tags") or [], body.get("properties") or {}
        if not isinstance(add, dict) or not isinstance(remove, list) or not isinstance(new_props, dict):
            raise InvalidRequest("'tags' and 'properties' must be objects, 'remove_tags' a list of keys.")
        changed = [k for k, v in new_props.items() if k in props and props[k] != v]
        if changed:
            raise Conflict(f"Properties {changed} are already set on {name}:{version} and cannot change; "
                           "use tags for values that change.")
        tags.update({str(k): str(v) for k, v in add.items()})
        for key in remove:
            tags.pop(str(key), None)
        props.update(new_props)
        description = body.get("description", model.get("description"))
        if description is not None and not isinstance(description, str):
            raise InvalidRequest("'description' must be a string.")
        self.store.update_model(name, version, tags, props, description)
        return self.get_model(name, version)

    def delete_model(self, name: str, version: int) -> dict:
        """Forget one version and free the bytes no other version shares; returns what it freed."""
        model = self.get_model(name, version)
        unused = self.store.delete_model(name, version)
        freed = self.model_files_store.remove(self.model_dir(model), unused)
        return {"name": name, "version": version, "freed_bytes": freed}

    def get_model(self, name: str, version: int | None = None) -> dict:
        model = self.store.get_model(name, version)
        if model is None:
            which = f"version {version} of " if version else ""
            raise NotFound(f"No {which}model {name!r} is registered. List models with GET /train/api/models.")
        model["files"] = self.model_files(model)
        return model

    def model_dir(self, model: dict) -> Path:
        return self.ws.models / model["name"] / str(model["version"])

    def model_tree(self, model: dict) -> Tree:
        return Tree(self.model_dir(model), what=f"model {model['name']}:{model['version']}")

    def model_files(self, model: dict) -> list[str]:
        """The version's files (links planted in its folder afterwards are left out)."""
        try:
            with self.model_tree(model) as tree:
                return sorted(name for name, _size in tree.list().files)
        except NotFound:
            return []

    def open_model_file(self, name: str, version: int, rel: str):
        model = self.get_model(name, version)
        with self.model_tree(model) as tree:
            try:
                return tree.open(rel)
            except NotFound:
                raise NotFound(f"Model {name}:{version} has no file {rel!r}; it has {model['files']}.") from None

    def list_models(self, name: str | None = None, tags: list[str] | None = None,
                    properties: list[str] | None = None) -> list[dict]:
        """Every version, oldest first per name; ``tags``/``properties`` filters are "key" (has
        it) or "key=value" (has that value), all of which must hold."""
        def keep(d: dict, wanted: list[str]) -> bool:
            for w in wanted:
                key, eq, value = w.partition("=")
                if key not in d or (eq and str(d[key]) != value):
                    return False
            return True

        return [m for m in self.store.list_models(name)
                if keep(m["tags"], tags or []) and keep(m["properties"], properties or [])]
