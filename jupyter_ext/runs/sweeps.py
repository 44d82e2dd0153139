"""Sweeps (Azure ML HyperDrive): a parent run whose children are ordinary runs, one per sampled set
of hyperparameters, at most ``max_concurrent_runs`` at once on the sweep's compute target.

State lives on disk, in the parent's run directory: ``sweep.json`` (the checked request),
``study.log`` (Optuna's journal: the trials asked and told) and ``sweep.jsonl`` (one line per
child started, one per child a policy stopped). A restarted server reads them and goes on where
the sweep stopped. The parent's status is an ordinary event log: Running while it schedules,
then Completed, Failed or Canceled.

Policies are evaluated as metrics are ingested: the sweep subscribes to its children like a
WebSocket does (the tailer wakes it within milliseconds of a write) and reads their new
primary-metric points from the store; a child a policy stops is canceled with the policy's
reason (its ``properties.cancel_reason``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field

from ..contract import is_terminal
from ..errors import TrainError
from ..launcher.rundir import RunDir
from ..launcher.spec import RunState
from ..snapshots import Snapshot
from ..sweep.config import SweepConfig
from ..sweep.policies import Goal
from ..sweep.sampler import Exhausted, Sampler
from ..sweep.space import as_arguments
from .requests import SubmitRequest

log = logging.getLogger("jupyter_ext")
FALLBACK_S = 1.0  # a sweep looks at its children at least this often, woken or not
POINTS_PAGE = 10_000


@dataclass
class _Child:
    run_id: str
    trial: int
    params: dict
    reports: list = field(default_factory=list)  # primary metric values, in order
    cursor: int = 0  # the store's metric id read up to
    evaluated: int = 0  # the last interval a policy looked at
    done: bool = False


class _Sweep:
    def __init__(self, run_id: str, rd: RunDir, cfg: SweepConfig, sampler: Sampler):
        self.id, self.rd, self.cfg, self.sampler = run_id, rd, cfg, sampler
        self.children: dict[str, _Child] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.stopping: str | None = None  # why no more children start (cancel, time is up)
        self.canceled = False
        self.exhausted = False  # a grid that gave every point
        self.pending: list[tuple[int, dict]] = []  # trials asked before a restart, no child yet

    def record(self, **entry) -> None:
        with open(self.rd.path / "sweep.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"ts": time.time(), **entry}, sort_keys=True) + "\n")

    def records(self) -> list[dict]:
        try:
            lines = (self.rd.path / "sweep.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash mid-write: its child is found again from the study
        return out

    @property
    def active(self) -> list[_Child]:
        return [c for c in self.children.values() if not c.done]


class Sweeps:
    def __init__(self, manager):
        self.m = manager
        self.sweeps: dict[str, _Sweep] = {}

    # -- start ----------------------------------------------------------------------------
    async def submit(self, body) -> dict:
        cfg = SweepConfig.from_json(body)
        req = SubmitRequest.from_json({**cfg.run, "experiment": cfg.experiment,
                                       "tags": {**cfg.run.get("tags", {}), **cfg.tags}})
        return await self.m.submit(req, sweep=cfg)

    def start(self, run_id: str, cfg: SweepConfig, rd: RunDir) -> None:
        """Begin driving the sweep ``run_id`` (just created, or found unfinished at start-up)."""
        sampler = Sampler(rd.path / "study.log", cfg.params, cfg.sampling, cfg.seed,
                          cfg.goal.maximize)
        sw = _Sweep(run_id, rd, cfg, sampler)
        for rec in sw.records():
            if "child" in rec:
                sw.children[rec["child"]] = _Child(rec["child"], rec["trial"], rec["params"])
        for child in sw.children.values():
            self.m.tailer.subscribe(child.run_id, sw.wake)
        self.sweeps[run_id] = sw
        sw.task = asyncio.get_running_loop().create_task(self._drive(sw))

    def resume_all(self) -> None:
        """After a server restart: every sweep that had not ended goes on."""
        for run in self.m.store.list_runs(limit=10**9, active_only=True):
            if run.get("properties", {}).get("sweep") and run["id"] not in self.sweeps:
                rd = self.m.run_dir(run["id"])
                try:
                    cfg = SweepConfig.from_json(json.loads((rd.path / "sweep.json").read_text()))
                except (OSError, ValueError, TrainError) as exc:
                    rd.append_event(RunState.FAILED, "server", f"The sweep's sweep.json cannot be read ({exc}).")
                    self.m.tailer.sync(run["id"])
                    continue
                self.start(run["id"], cfg, rd)
                if run["status"] == RunState.CANCEL_REQUESTED.value:
                    self._mark_canceled(self.sweeps[run["id"]])

    async def stop(self) -> None:
        """The server stops: the drivers stop; children run on and the next server resumes."""
        for sw in self.sweeps.values():
            if sw.task:
                sw.task.cancel()
        for sw in self.sweeps.values():
            if sw.task:
                try:
                    await sw.task
                except (asyncio.CancelledError, Exception):
                    pass

    # -- cancel ---------------------------------------------------------------------------
    def is_sweep(self, run: dict) -> bool:
        return bool(run.get("properties", {}).get("sweep"))

    def cancel(self, run_id: str) -> dict:
        run = self.m.get_run(run_id)
        if is_terminal(run["status"]) or run["status"] == RunState.CANCEL_REQUESTED.value:
            return run
        rd = self.m.run_dir(run_id)
        rd.append_event(RunState.CANCEL_REQUESTED, "server", "The sweep was canceled")
        sw = self.sweeps.get(run_id)
        if sw is not None:
            self._mark_canceled(sw)
            sw.wake.set()
        else:  # nobody drives it (it could not be resumed): nothing of its own to stop
            rd.append_event(RunState.CANCELED, "server", "Canceled with nothing left to stop")
        return self.m.tailer.sync(run_id)

    @staticmethod
    def _mark_canceled(sw: _Sweep) -> None:
        sw.canceled = True
        sw.stopping = f"Canceled with its sweep {sw.id}"

    # -- the driver -----------------------------------------------------------------------
    async def _drive(self, sw: _Sweep) -> None:
        try:
            self._adopt_pending(sw)
            started = self._started_at(sw)
            while True:
                sw.wake.clear()
                self._read_children(sw)
                if sw.cfg.max_duration_minutes and sw.stopping is None and \
                        time.time() >= started + sw.cfg.max_duration_minutes * 60:
                    sw.stopping = f"The sweep's max_duration_minutes ({sw.cfg.max_duration_minutes:g}) was reached"
                if sw.stopping:
                    self._cancel_active(sw)
                else:
                    await self._fill(sw)
                if not sw.active and (sw.stopping or sw.exhausted
                                      or len(sw.children) >= sw.cfg.max_total_runs):
                    self._finish(sw)
                    return
                timeout = FALLBACK_S
                if sw.cfg.max_duration_minutes and not sw.stopping:
                    timeout = max(0.0, min(timeout, started + sw.cfg.max_duration_minutes * 60 - time.time()))
                try:
                    await asyncio.wait_for(sw.wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a sweep Running with nobody driving it
            log.exception("jupyter-train: sweep %s failed", sw.id)
            for child in sw.active:
                self._cancel_child(child, f"Its sweep failed: {exc}")
            sw.rd.append_event(RunState.FAILED, "server", f"The sweep stopped on an error: {exc}")
            self.m.tailer.sync(sw.id)
        finally:
            for child in sw.children.values():
                self.m.tailer.unsubscribe(child.run_id, sw.wake)

    def _started_at(self, sw: _Sweep) -> float:
        phases = self.m.get_run(sw.id)["phases"]
        return next((p["ts"] for p in phases if p["state"] == RunState.RUNNING.value), time.time())

    def _adopt_pending(self, sw: _Sweep) -> None:
        """Trials the study asked for but no child got (the server stopped in between): they
        come first, so every trial has a child."""
        given = {c.trial for c in sw.children.values()}
        sw.pending = [(n, p) for n, p in sw.sampler.pending() if n not in given]

    async def _fill(self, sw: _Sweep) -> None:
        """Start children while fewer than max_concurrent_runs are unfinished."""
        while (len(sw.active) < sw.cfg.concurrent and len(sw.children) < sw.cfg.max_total_runs
               and not sw.exhausted and not sw.stopping):
            if sw.pending:
                trial, params = sw.pending.pop(0)
            else:
                try:
                    trial, params = await asyncio.to_thread(sw.sampler.ask)
                except Exhausted:
                    sw.exhausted = True
                    return
            run = await self._submit_child(sw, trial, params)
            child = _Child(run["id"], trial, params)
            sw.children[child.run_id] = child
            sw.record(child=child.run_id, trial=trial, params=params)
            self.m.tailer.subscribe(child.run_id, sw.wake)
            if is_terminal(run["status"]):
                sw.wake.set()

    async def _submit_child(self, sw: _Sweep, trial: int, params: dict) -> dict:
        parent = self.m.get_run(sw.id)
        body = dict(sw.cfg.run)
        tags = {**{str(k): str(v) for k, v in body.pop("tags", {}).items()},
                "primary_metric": sw.cfg.primary_metric_name}
        base = body.pop("arguments", [])
        req = SubmitRequest.from_json({**body, "experiment": sw.cfg.experiment, "tags": tags,
                                       "arguments": as_arguments(base, params)})
        files = self.m.snapshots.manifest(parent["snapshot_id"])
        snap = Snapshot(parent["snapshot_id"], len(files), int(parent["properties"].get("snapshot_bytes") or 0), 0, 0)
        req.script = parent["script"]  # as the parent's snapshot holds it
        return await self.m.submit(req, snapshot=snap, parent_id=sw.id,
                                   properties={"hyperparameters": params, "sweep_trial": trial})

    # -- metrics and policies -------------------------------------------------------------
    def _read_children(self, sw: _Sweep) -> None:
        """New primary-metric points of every unfinished child, the policy on each new interval,
        and the children that ended told to the study."""
        store, name = self.m.store, sw.cfg.primary_metric_name
        for child in sw.active:
            run = store.get_run(child.run_id)
            while True:
                page = store.metrics_since(child.run_id, child.cursor, POINTS_PAGE, name, 0)
                if not page:
                    break
                child.cursor = page[-1]["id"]
                child.reports += [float(p["value"]) for p in page if _finite(p.get("value"))]
                if len(page) < POINTS_PAGE:
                    break
            ended = run is None or (is_terminal(run["status"]) and child.run_id not in self.m.tailer.active)
            if not ended and run["status"] != RunState.CANCEL_REQUESTED.value:
                self._evaluate(sw, child)
            if ended:
                child.done = True
                value = sw.cfg.goal.best(child.reports) if child.reports else None
                if run is not None and run["status"] == RunState.FAILED.value:
                    value = None
                sw.sampler.tell(child.trial, value)

    def _evaluate(self, sw: _Sweep, child: _Child) -> None:
        policy = sw.cfg.stop_policy
        reports = {c.run_id: c.reports for c in sw.children.values()}
        finished = {c.run_id for c in sw.children.values() if c.done}
        for n in range(child.evaluated + 1, len(child.reports) + 1):
            child.evaluated = n
            if not policy.applies_at(n):
                continue
            reason = policy.decide(child.run_id, reports, finished, sw.cfg.goal, n)
            if reason:
                sw.record(stopped=child.run_id, reason=reason, interval=n)
                self._cancel_child(child, reason)
                return

    def _cancel_child(self, child: _Child, reason: str) -> None:
        try:
            self.m.cancel(child.run_id, reason=reason)
        except TrainError as exc:
            log.warning("jupyter-train: canceling %s: %s", child.run_id, exc)

    def _cancel_active(self, sw: _Sweep) -> None:
        for child in sw.active:
            run = self.m.store.get_run(child.run_id)
            if run and not is_terminal(run["status"]) and run["status"] != RunState.CANCEL_REQUESTED.value:
                self._cancel_child(child, sw.stopping)

    def _finish(self, sw: _Sweep) -> None:
        summary = self.summary(sw.id)
        counts = summary["counts"]
        best = summary["best"]
        text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        if best:
            text += f"; best {sw.cfg.primary_metric_name} {best['value']:.6g} ({best['run_id']})"
        if sw.canceled:
            state = RunState.CANCELED
        elif counts and set(counts) == {RunState.FAILED.value}:
            state = RunState.FAILED
            text = f"Every child failed ({text}); see their logs."
        else:
            state = RunState.COMPLETED
        if sw.stopping and not sw.canceled:
            text = f"{sw.stopping}; {text}"
        sw.rd.append_event(state, "server", f"{len(sw.children)} children: {text}",
                           best_child_run_id=best["run_id"] if best else None)
        self.m.tailer.sync(sw.id)
        self.m.tailer.wake_watchers()
        self.sweeps.pop(sw.id, None)

    # -- queries --------------------------------------------------------------------------
    def summary(self, run_id: str) -> dict:
        """Children by status and the best child by the primary metric (its best value)."""
        run = self.m.get_run(run_id)
        sweep = run["properties"].get("sweep") or {}
        goal = Goal(sweep.get("primary_metric_name", ""), sweep.get("primary_metric_goal") == "maximize")
        children = self.m.store.list_runs(parent=run_id, limit=10**9)
        counts: dict[str, int] = {}
        best = None
        for c in children:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
            value = self.best_value(c["id"], goal)
            if value is not None and (best is None or goal.worse(best["value"], value)):
                best = {"run_id": c["id"], "value": value,
                        "hyperparameters": c["properties"].get("hyperparameters", {})}
        return {"counts": counts, "best": best, "children": len(children)}

    def add_best_values(self, parent: dict, children: list[dict]) -> None:
        """Each child's ``best_primary_metric``: the best value of the sweep's primary metric."""
        sweep = parent["properties"].get("sweep")
        if not sweep:
            return
        goal = Goal(sweep["primary_metric_name"], sweep["primary_metric_goal"] == "maximize")
        for c in children:
            c["best_primary_metric"] = self.best_value(c["id"], goal)

    def best_value(self, run_id: str, goal) -> float | None:
        return self.m.store.metric_extreme(run_id, goal.metric, goal.maximize)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
