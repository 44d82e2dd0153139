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
import time
from dataclasses import asdict

from ..environments import BuildFailed, EnvCache
from ..errors import Conflict, InvalidRequest, NotFound, TrainError
from ..launcher import datainputs, payload
from ..launcher.api import PrepareContext, Target
from ..launcher.host import Host
from ..launcher.rundir import RunDir
from ..launcher.spec import RunSpec, RunState
from ..paths import check_name, safe_join
from ..snapshots import Snapshot, SnapshotStore
from ..store import SQLiteStore
from ..sweep.config import SweepConfig
from ..workspace import WorkspaceDir
from . import history
from .computes import Computes
from .datasets import Datasets
from .environments import Environments
from .mlflow_api import MlflowApi, job_environment, not_injected
from .models import Models
from .requests import SubmitRequest, parse_distributed
from .services import Services
from .sweeps import Sweeps
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
        self.snapshot_max_bytes = int(snapshot_max_mb * 1e6)
        self.snapshot_max_files = snapshot_max_files
        shapes = {k: (int(v["cpus"]), int(v["gpus"])) for k, v in (node_shapes or {}).items()}
        self.computes = Computes(self.store, Host(shapes=shapes), targets)
        self.environments = Environments(self.store, EnvCache(self.ws.path / "environments", payload.shim_files))
        self.models = Models(self.store, self.ws.models, self)
        self.datasets = Datasets(self.store, self.ws.path)
        self.tailer = Tailer(self, poll_interval)
        self.sweeps = Sweeps(self)
        self.services = Services(self)
        self.mlflow = MlflowApi(self)
        self.server_url: str | None = None  # this server's URL, once it listens (the app sets it)

    @property
    def targets(self) -> dict[str, Target]:
        return self.computes.targets

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.ensure_started()

    def ensure_started(self) -> None:
        """Reconcile with the disk and start following runs (once; needs a running loop)."""
        if self.tailer.started:
            return
        self.tailer.reconcile()
        self.tailer.start()
        self.sweeps.resume_all()

    async def stop(self) -> None:
        await self.sweeps.stop()
        await self.tailer.stop()
        self.computes.close()
        self.store.close()

    def run_dir(self, run_id: str) -> RunDir:
        return RunDir(self.ws.runs / run_id)

    # -- submit ---------------------------------------------------------------------------
    async def submit(self, req: SubmitRequest, *, snapshot: Snapshot | None = None,
                     parent_id: str | None = None, properties: dict | None = None,
                     sweep: SweepConfig | None = None, setup=None) -> dict:
        """Check ``req``, snapshot its source (or reuse ``snapshot``, for a resubmit or a sweep's
        child, whose ``parent_id`` and ``properties`` go on the row) and queue it. With
        ``sweep``, the run is the parent of a sweep: checked and snapshotted alike, then driven
        by the sweeps service instead of queued. ``setup(run_dir)`` (a service's files) runs in
        a thread once the run directory exists, before anything can start the run."""
        check_name("Experiment", req.experiment)
        target = self.computes.require(req.compute_target)
        dist = parse_distributed(req.distributed)
        target.validate_job(dist)
        env = self.environments.resolve(req.environment) if req.environment else None
        # a missing file is refused here, before the run exists (a stat a file: off the loop)
        inputs = await asyncio.to_thread(self.datasets.check_inputs, req.datasets) if req.datasets else []
        plan = target.plan_environment(env, req.python or None)
        env, python = plan.env, plan.python
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
                       distributed=dist, remote_packages=plan.remote_packages)
        rd = self.run_dir(run_id)
        rd.create()
        spec.env.update(job_environment(run_id, req.experiment, rd.path, self.server_url, spec.env))
        rd.spec_path.write_text(spec.to_json())
        if setup is not None:
            try:
                await asyncio.to_thread(setup, rd)
            except BaseException:
                shutil.rmtree(rd.path, ignore_errors=True)
                raise
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
                                                                  "key": plan.key}} if env else {}),
                                              **({"sweep": sweep.to_json()} if sweep else {}),
                                              **({"input_datasets": [
                                                  {k: i[k] for k in ("name", "dataset", "version", "mode")}
                                                  for i in inputs]} if inputs else {}),
                                              **(properties or {})},
                               "snapshot_id": snap.id, "run_dir": str(rd.path), "parent_id": parent_id})
        rd.append_event(RunState.NOT_STARTED, "server")
        if inputs:
            self.store.record_run_datasets(run_id, inputs)
        if sweep is not None:
            return self._start_sweep(run_id, rd, snap, sweep)
        rd.append_event(RunState.PREPARING, "server", f"snapshot {snap.id}: {snap.files} files, "
                        f"{snap.new_files} new")
        if plan.build is not None or inputs:
            # Build (or wait for) the environment or image, and fetch the datasets, in the
            # background; the run is Preparing meanwhile and logs/prepare.txt shows it live.
            self.tailer.sync(run_id)
            asyncio.get_running_loop().create_task(self._prepare(target, spec, rd, plan, inputs))
            return self.get_run(run_id)
        self._enqueue(target, run_id, rd)
        return self.get_run(run_id)

    def _start_sweep(self, run_id: str, rd: RunDir, snap: Snapshot, cfg: SweepConfig) -> dict:
        (rd.path / "sweep.json").write_text(json.dumps({**cfg.to_json()}, sort_keys=True))
        rd.append_event(RunState.RUNNING, "server", f"Sweep: {cfg.describe()}; snapshot {snap.id}: "
                        f"{snap.files} files")
        self.tailer.sync(run_id)
        self.sweeps.start(run_id, cfg, rd)
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
            environment_variables=not_injected(old.env, run_id),
            tags={**{k: v for k, v in old.tags.items() if k != "resubmit_of"}, "resubmit_of": run_id},
            environment={"name": env["name"], "version": env.get("version")} if env else None,
            distributed=asdict(dist) if dist else None, datasets=props.get("input_datasets"))
        files = self.snapshots.manifest(old.snapshot_id)  # a clear error if the snapshot is gone
        snap = Snapshot(old.snapshot_id, len(files), int(props.get("snapshot_bytes") or 0), 0, 0)
        return await self.submit(req, snapshot=snap)

    def _enqueue(self, target: Target, run_id: str, rd: RunDir) -> None:
        rd.append_event(RunState.QUEUED, "server", target=target.name)
        self.tailer.sync(run_id)
        target.queue.append(run_id)
        self.pump(target)

    async def _prepare(self, target: Target, spec: RunSpec, rd: RunDir, plan, inputs=()) -> None:
        ctx = PrepareContext(self.environments.envs, rd.logs / "prepare.txt")
        if inputs:
            try:
                ready = await asyncio.to_thread(self.datasets.prepare, list(inputs), target.mount_refused(), ctx.say)
            except TrainError as exc:  # a file that changed or went away since it was checked
                ctx.say(f"{exc.message}\n")
                rd.append_event(RunState.FAILED, "server", f"Datasets could not be prepared: {exc.message}")
                self.tailer.sync(spec.run_id)
                return
            except OSError as exc:
                rd.append_event(RunState.FAILED, "server", f"Datasets could not be prepared: {exc}")
                self.tailer.sync(spec.run_id)
                return
            datainputs.write_manifest(rd.path, self.datasets.cache.root, ready)
            spec.datasets = datainputs.summary(ready)
            if self._canceled_while_preparing(rd, spec.run_id, "the run's data"):
                return
        if plan.build is None:
            rd.spec_path.write_text(spec.to_json())
            self._enqueue(target, spec.run_id, rd)
            return
        try:
            await asyncio.to_thread(target.prepare, spec, plan, ctx)
        except BuildFailed as exc:
            rd.append_event(RunState.FAILED, "server", f"Environment {plan.env.name}: {exc}")
            self.tailer.sync(spec.run_id)
            return
        except Exception as exc:  # never leave a run in Preparing
            log.exception("jupyter-train: preparing %s failed", spec.run_id)
            rd.append_event(RunState.FAILED, "server", f"Environment {plan.env.name} could not be prepared: {exc}")
            self.tailer.sync(spec.run_id)
            return
        if self._canceled_while_preparing(rd, spec.run_id, plan.what):
            return
        rd.spec_path.write_text(spec.to_json())
        self._enqueue(target, spec.run_id, rd)

    def resume_preparing(self, run: dict) -> None:
        """A run that was Preparing when the server stopped (its datasets being fetched, its
        environment built): the preparation starts again and reuses what is already in the
        cache; where it cannot start, the run fails and says why."""
        rd = self.run_dir(run["id"])
        props = run.get("properties") or {}
        try:
            spec = RunSpec.load(rd.spec_path)
            target = self.computes.require(run["compute_target"])
            ref = props.get("environment")
            env = self.environments.resolve({"name": ref["name"], "version": ref.get("version")}) if ref else None
            plan = target.plan_environment(env, None if env else spec.python)
            inputs = self.datasets.check_inputs(props.get("input_datasets"))
        except (TrainError, OSError, ValueError, KeyError) as exc:
            why = exc.message if isinstance(exc, TrainError) else f"{type(exc).__name__}: {exc}"
            rd.append_event(RunState.FAILED, "server", "The server stopped while the run was Preparing "
                            f"and its preparation cannot start again ({why}); submit it again.")
            self.tailer.sync(run["id"])
            return
        PrepareContext(self.environments.envs, rd.logs / "prepare.txt").say(
            "The server restarted while this run was Preparing: preparing again (what is already "
            "fetched or built is reused)\n")
        asyncio.get_running_loop().create_task(self._prepare(target, spec, rd, plan, inputs))

    def _canceled_while_preparing(self, rd: RunDir, run_id: str, what: str) -> bool:
        if rd.last_state() not in (RunState.CANCEL_REQUESTED, RunState.CANCELED):
            return False
        rd.append_event(RunState.CANCELED, "server", f"Canceled while {what} was prepared")
        self.tailer.sync(run_id)
        return True

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
            try:
                target.place(spec, indices)  # a Ray target may start its local head here
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

    def has_queued(self) -> bool:
        return any(t.queue for t in self.computes)

    def reattach(self, run: dict) -> None:
        """After a server restart: a running run holds its nodes again; a queued one queues."""
        target = self.targets.get(run["compute_target"])
        if target is None:
            return
        nodes_file = self.run_dir(run["id"]).path / "nodes.json"
        if nodes_file.is_file():
            target.hold(run["id"], json.loads(nodes_file.read_text())["nodes"])
        elif run["status"] == RunState.QUEUED.value:
            target.queue.append(run["id"])

    def reap_orphan(self, run: dict, rd: RunDir, say) -> None:
        """End what a run whose supervisor died left running (processes, containers)."""
        target = self.targets.get(run.get("compute_target")) or self.computes.fallback()
        target.reap_orphan(rd, say)

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
    def cancel(self, run_id: str, reason: str = "") -> dict:
        """Stop ``run_id`` (a sweep: its children too); ``reason`` goes in its history."""
        run = self.get_run(run_id)
        if RunState(run["status"]).is_terminal():
            return run
        if self.sweeps.is_sweep(run):
            return self.sweeps.cancel(run_id)
        rd = self.run_dir(run_id)
        rd.append_event(RunState.CANCEL_REQUESTED, "server", reason)
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

    def run_details(self, run_id: str) -> dict:
        """``get_run`` and, for a sweep, ``sweep``: its children by status and the best one."""
        run = self.get_run(run_id)
        if self.sweeps.is_sweep(run):
            run["sweep"] = self.sweeps.summary(run_id)
        return run

    def list_runs(self, experiment=None, status=None, limit=100, parent=None,
                  include_children=False) -> list[dict]:
        """Runs newest first; a sweep's children only with ``parent`` or ``include_children``."""
        runs = self.store.list_runs(experiment=experiment, status=status, limit=limit, parent=parent,
                                    top_level=not include_children)
        if parent is not None:
            self.sweeps.add_best_values(self.get_run(parent), runs)
        return runs

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

    def snapshot_listing(self, run_id: str) -> dict:
        """The files of the source snapshot the run was started from (its script, a %%train
        cell), as Azure ML's snapshot view shows them."""
        run = self.get_run(run_id)
        return {"snapshot_id": run["snapshot_id"], "files": self.snapshots.listing(run["snapshot_id"])}

    def open_snapshot_file(self, run_id: str, path: str):
        run = self.get_run(run_id)
        try:
            return self.snapshots.open_file(run["snapshot_id"], path)
        except NotFound:
            raise NotFound(f"The snapshot of run {run_id} has no file {path!r}. See GET "
                           f"/train/api/runs/{run_id}/snapshot for what it has.") from None

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
                      rank: int | None = None, times: bool = False) -> dict:
        """Each metric series of a run, downsampled to about ``points`` [x, value] pairs
        ([x, value, time] with ``times``, for a chart over wall time)."""
        self.get_run(run_id)
        return self.store.metric_view(run_id, min(max(points, 0), MAX_SERIES_POINTS), name, rank, times)
