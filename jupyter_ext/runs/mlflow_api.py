"""The part of MLflow's tracking REST API that the mlflow client uses to log into a run and to
read runs, answered from this workspace (framework-free: handlers/mlflow.py is its adapter).

Inside a run, the job's environment points the client here (``MLFLOW_TRACKING_URI``,
``MLFLOW_RUN_ID``, ``MLFLOW_EXPERIMENT_ID`` and a per-run ``MLFLOW_TRACKING_TOKEN``: see
``job_environment``). What it logs goes the way tracking's records go: metrics, parameters and
tags are appended as contract records to the run's ``metrics/mlflow.jsonl``, which the tailer
ingests exactly once like a rank's file (live charts, the monitor, get_metrics); artifacts are
written into the run's ``outputs/``. Experiment ids are experiment names; run ids are ours.

A per-run token may touch its own run only; the Jupyter user may read every run (and write to
a run that is not finished). Errors are MLflow's: ``{"error_code", "message"}``.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import secrets
import threading
import time
from pathlib import Path

from .. import contract
from ..errors import NotFound, TrainError
from ..paths import NAME_RE, Tree, safe_join

PREFIX = "/train/mlflow"  # the tracking URI's path below the server's base URL
TOKEN_FILE = "mlflow.token"  # in the run directory, mode 0600: the run's token (a restart checks it)
METRICS_FILE = "mlflow" + contract.METRICS_SUFFIX
INJECTED = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_TOKEN",
            "MLFLOW_ENABLE_ASYNC_LOGGING")
LATEST_SCAN = 100_000  # points of a series read to find its latest value (more: the last ingested)
MAX_BATCH = (1000, 100, 100)  # metrics, params, tags in one log-batch (MLflow's own limits)
MAX_PARAM = contract.MAX_TEXT  # characters of a parameter's value (MLflow's own limit is 6000)
STATUS = {contract.COMPLETED: "FINISHED", contract.FAILED: "FAILED", contract.CANCELED: "KILLED",
          contract.RUNNING: "RUNNING", contract.FINALIZING: "RUNNING", contract.CANCEL_REQUESTED: "RUNNING"}


class MlflowError(Exception):
    STATUS = {"RESOURCE_DOES_NOT_EXIST": 404, "INVALID_PARAMETER_VALUE": 400, "PERMISSION_DENIED": 403,
              "UNAUTHENTICATED": 401, "ENDPOINT_NOT_FOUND": 404, "TEMPORARILY_UNAVAILABLE": 503}

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message, self.status = code, message, self.STATUS.get(code, 400)

    def to_json(self) -> dict:
        return {"error_code": self.code, "message": self.message}


def bad(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def job_environment(run_id: str, experiment: str, run_dir: Path, server_url: str | None,
                    user_env: dict) -> dict:
    """The MLflow variables for a new run's processes (none where the user set a tracking URI
    of their own, or the server does not know its URL), and its token written to the run dir."""
    if not server_url or "MLFLOW_TRACKING_URI" in user_env:
        return {}
    token = f"{run_id}.{secrets.token_urlsafe(24)}"
    path = run_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    env = {"MLFLOW_TRACKING_URI": server_url.rstrip("/") + PREFIX, "MLFLOW_RUN_ID": run_id,
           "MLFLOW_EXPERIMENT_ID": experiment, "MLFLOW_TRACKING_TOKEN": token}
    if "MLFLOW_ENABLE_ASYNC_LOGGING" not in user_env:
        # log_metric returns at once and a thread sends log-batch requests: no network call on
        # the training thread (as tracking's buffer); end_run and exit flush what is queued
        env["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"
    return env


def not_injected(env: dict, run_id: str) -> dict:
    """A run's environment less the MLflow variables made for it (what a resubmit keeps)."""
    if env.get("MLFLOW_RUN_ID") != run_id or not str(env.get("MLFLOW_TRACKING_TOKEN", "")).startswith(run_id + "."):
        return dict(env)
    return {k: v for k, v in env.items() if k not in INJECTED}


class MlflowApi:
    def __init__(self, manager):
        self.m = manager
        self._lock = threading.Lock()

    # -- authorization ----------------------------------------------------------------------
    def run_of_token(self, token: str) -> str | None:
        """The run a per-run token belongs to, if it is that run's token."""
        run_id = token.split(".", 1)[0]
        if not NAME_RE.match(run_id) or "." not in token:
            return None
        try:
            want = (self.m.run_dir(run_id).path / TOKEN_FILE).read_text()
        except OSError:
            return None
        return run_id if hmac.compare_digest(want.encode(), token.encode()) else None

    def check_scope(self, scope: str | None, run_id: str | None) -> None:
        """``scope``: the run of the caller's per-run token, None for the Jupyter user."""
        if scope is not None and run_id != scope:
            raise MlflowError("PERMISSION_DENIED", f"This run's token ({scope}) may only log into its "
                              "own run; read other runs with the Jupyter server's token.")

    # -- reading ----------------------------------------------------------------------------
    def _run(self, run_id) -> dict:
        if not isinstance(run_id, str) or not run_id:
            raise bad("Give 'run_id', the id of a run.")
        try:
            return self.m.get_run(run_id)
        except NotFound:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No run {run_id!r} in this workspace.") from None

    def run_json(self, run: dict) -> dict:
        info = {"run_id": run["id"], "run_uuid": run["id"], "run_name": run["id"],
                "experiment_id": run["experiment"], "user_id": "",
                "status": STATUS.get(run["status"], "SCHEDULED"),
                "start_time": _ms(run.get("started_at") or run["created_at"]),
                "artifact_uri": f"mlflow-artifacts:/{run['id']}", "lifecycle_stage": "active"}
        if run.get("ended_at"):
            info["end_time"] = _ms(run["ended_at"])
        metrics = self._latest_metrics(run["id"], info["start_time"])
        params = (run.get("properties") or {}).get("params") or {}
        return {"info": info, "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": v} for k, v in sorted(params.items())],
            "tags": [{"key": k, "value": str(v)} for k, v in sorted((run.get("tags") or {}).items())]}}

    def _latest_metrics(self, run_id: str, start_ms: int) -> list[dict]:
        """MLflow's latest value of each metric: the point of the highest step (then the latest
        time); for a series over LATEST_SCAN points, the last one ingested."""
        out = []
        for s in self.m.store.metric_view(run_id, 0)["series"]:
            if not (s["last"] and s["numeric"]):
                continue
            best = (s["last"]["step"] or 0, 0.0, s["last"]["value"])
            if s["count"] <= LATEST_SCAN:
                cols = self.m.store.metric_columns(run_id, 0, LATEST_SCAN, name=s["name"], rank=s["rank"])
                pts = [(st or 0, t or 0.0, v) for st, t, v in zip(cols["step"], cols["ts"], cols["value"])
                       if isinstance(v, (int, float))]
                best = max(pts, key=lambda p: (p[0], p[1])) if pts else best
            if isinstance(best[2], (int, float)):
                out.append({"key": s["name"], "value": best[2], "step": best[0],
                            "timestamp": _ms(best[1]) if best[1] else start_ms})
        return out

    def get_run(self, query: dict, scope) -> dict:
        run_id = query.get("run_id") or query.get("run_uuid")
        self.check_scope(scope, run_id)
        return {"run": self.run_json(self._run(run_id))}

    def search_runs(self, body: dict, scope) -> dict:
        ids = body.get("experiment_ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise bad("'experiment_ids' must be a list of experiment ids (names here).")
        if body.get("filter"):
            raise bad("search_runs filters are not supported by jupyter-train; search without one "
                      "and filter the runs you get.")
        limit, offset = _int(body.get("max_results", 1000), "max_results", 1, 50000), _token(body.get("page_token"))
        runs = [r for e in ids for r in self.m.list_runs(experiment=e, limit=offset + limit + 1,
                                                         include_children=True)]
        if scope is not None:
            runs = [r for r in runs if r["id"] == scope]
        page = runs[offset:offset + limit]
        out = {"runs": [self.run_json(r) for r in page]}
        if len(runs) > offset + limit:
            out["next_page_token"] = str(offset + limit)
        return out

    def experiment_json(self, e: dict) -> dict:
        ms = _ms(e.get("created_at") or 0)
        return {"experiment_id": e["name"], "name": e["name"], "artifact_location": "mlflow-artifacts:/",
                "lifecycle_stage": "active", "creation_time": ms, "last_update_time": _ms(e.get("last_run") or 0) or ms}

    def _experiment(self, name) -> dict:
        for e in self.m.store.list_experiments():
            if e["name"] == name:
                return e
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No experiment {name!r} in this workspace "
                          "(experiments appear with their first run).")

    def get_experiment(self, query: dict) -> dict:
        return {"experiment": self.experiment_json(self._experiment(query.get("experiment_id")))}

    def get_experiment_by_name(self, query: dict) -> dict:
        return {"experiment": self.experiment_json(self._experiment(query.get("experiment_name")))}

    def search_experiments(self, body: dict) -> dict:
        if body.get("filter"):
            raise bad("search_experiments filters are not supported by jupyter-train.")
        limit, offset = _int(body.get("max_results", 1000), "max_results", 1, 50000), _token(body.get("page_token"))
        exps = self.m.store.list_experiments()
        out = {"experiments": [self.experiment_json(e) for e in exps[offset:offset + limit]]}
        if len(exps) > offset + limit:
            out["next_page_token"] = str(offset + limit)
        return out

    def create_experiment(self, body: dict) -> dict:
        """Experiments exist here by their runs' names: the id of ``name`` is the name."""
        name = body.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise bad(f"Experiment name {name!r} is not valid here: use letters, digits, '-', '_' or '.'.")
        return {"experiment_id": name}

    def metric_history(self, query: dict, scope) -> dict:
        run_id = query.get("run_id") or query.get("run_uuid")
        self.check_scope(scope, run_id)
        run, key = self._run(run_id), query.get("metric_key")
        if not isinstance(key, str) or not key:
            raise bad("Give 'metric_key', the name of a metric.")
        cols = self.m.store.metric_columns(run["id"], 0, 1_000_000, name=key)
        return {"metrics": [{"key": key, "value": v, "step": s or 0, "timestamp": _ms(t or 0)}
                            for s, v, t in zip(cols["step"], cols["value"], cols["ts"])
                            if isinstance(v, (int, float))]}

    # -- logging ----------------------------------------------------------------------------
    def _writable(self, body: dict, scope) -> dict:
        if not isinstance(body, dict):
            raise bad("The request body must be a JSON object.")
        run_id = body.get("run_id") or body.get("run_uuid")
        self.check_scope(scope, run_id)
        run = self._run(run_id)
        if contract.is_terminal(run["status"]):
            raise bad(f"Run {run_id} is {run['status']}: it takes no more metrics, parameters or tags.")
        return run

    def log_batch(self, body: dict, scope) -> dict:
        run = self._writable(body, scope)
        metrics, params, tags = (body.get(k) or [] for k in ("metrics", "params", "tags"))
        for what, items, cap in zip(("metrics", "params", "tags"), (metrics, params, tags), MAX_BATCH):
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise bad(f"'{what}' must be a list of objects.")
            if len(items) > cap:
                raise bad(f"A batch takes at most {cap} {what}; this one has {len(items)}. Log in smaller batches.")
        records = [_metric(m) for m in metrics] + [_param(p) for p in params] + [_tag(t) for t in tags]
        self._append(run, records)
        return {}

    def log_metric(self, body: dict, scope) -> dict:
        self._append(self._writable(body, scope), [_metric(body)])
        return {}

    def log_param(self, body: dict, scope) -> dict:
        self._append(self._writable(body, scope), [_param(body)])
        return {}

    def set_tag(self, body: dict, scope) -> dict:
        self._append(self._writable(body, scope), [_tag(body)])
        return {}

    def update_run(self, body: dict, scope) -> dict:
        """The run's state follows its processes; a client's status is answered, not applied."""
        if not isinstance(body, dict):
            raise bad("The request body must be a JSON object.")
        run_id = body.get("run_id") or body.get("run_uuid")
        self.check_scope(scope, run_id)
        return {"run_info": self.run_json(self._run(run_id))["info"]}

    def create_run(self, body: dict, scope) -> dict:
        raise bad("Runs are made here by submitting a script (Experiment(ws, name).submit(config)); "
                  "inside that run, mlflow logs into it with no start_run arguments.")

    def _append(self, run: dict, records: list[dict]) -> None:
        """One write of whole lines (O_APPEND), under a lock: lines of two requests never mix."""
        path = self.m.run_dir(run["id"]).metrics / METRICS_FILE
        data = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records).encode()
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    # -- artifacts --------------------------------------------------------------------------
    def _artifact(self, path: str, scope) -> tuple[dict, str]:
        """(run, path inside its outputs/) of an artifact path ``<run_id>/<rel>``."""
        run_id, _, rel = (path or "").strip("/").partition("/")
        self.check_scope(scope, run_id)
        run = self._run(run_id)
        if any(p in ("..", ".") for p in rel.split("/")) or "\x00" in rel:
            raise bad(f"Artifact path {rel!r} must stay inside the run's outputs (no '..').")
        return run, rel

    def put_artifact(self, path: str, data: bytes, scope) -> dict:
        run, rel = self._writable_artifact(path, scope)
        if not rel:
            raise bad("Give the artifact's file name after the run id.")
        outputs = self.m.run_dir(run["id"]).outputs
        try:
            target = safe_join(outputs, rel)
        except TrainError as exc:
            raise MlflowError("PERMISSION_DENIED", exc.message) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return {}

    def _writable_artifact(self, path: str, scope) -> tuple[dict, str]:
        run, rel = self._artifact(path, scope)
        if contract.is_terminal(run["status"]) and scope is not None:
            raise bad(f"Run {run['id']} is {run['status']}: its outputs are history now.")
        return run, rel

    def open_artifact(self, path: str, scope):
        run, rel = self._artifact(path, scope)
        try:
            return self.m.open_file(run["id"], f"outputs/{rel}")
        except TrainError as exc:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST" if exc.status == 404 else "PERMISSION_DENIED",
                              exc.message) from None

    def list_artifacts(self, path: str, scope) -> dict:
        run, rel = self._artifact(path, scope)
        top = "outputs/" + rel if rel else "outputs"
        with Tree(self.m.run_dir(run["id"]).path, within=("outputs",), what=f"run {run['id']}") as tree:
            listing = tree.list(top)
        children: dict[str, dict] = {}
        for name, size in listing.files:
            sub = name[len(top) + 1:] if name.startswith(top + "/") else None
            if not sub:
                continue
            head, _, rest = sub.partition("/")
            child = f"{rel}/{head}" if rel else head
            children[head] = {"path": child, "is_dir": True} if rest else \
                {"path": child, "is_dir": False, "file_size": size}
        return {"files": [children[k] for k in sorted(children)]}


def _ms(t: float) -> int:
    return int(round(float(t) * 1000))


def _int(v, what: str, lo: int, hi: int) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):
        raise bad(f"'{what}' must be an integer.") from None
    if not lo <= n <= hi:
        raise bad(f"'{what}' must be between {lo} and {hi}.")
    return n


def _token(v) -> int:
    return _int(v, "page_token", 0, 1 << 40) if v not in (None, "") else 0


def _key(d: dict, what: str) -> str:
    key = d.get("key")
    if not isinstance(key, str) or not key or len(key) > contract.MAX_NAME:
        raise bad(f"A {what} needs a 'key' of 1 to {contract.MAX_NAME} characters.")
    return key


def _metric(d: dict) -> dict:
    key, value = _key(d, "metric"), d.get("value")
    if isinstance(value, str):  # protobuf JSON writes NaN and infinities as text
        try:
            value = float(value)
        except ValueError:
            raise bad(f"Metric {key!r}: value {value[:40]!r} is not a number.") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"Metric {key!r}: 'value' must be a number.")
    step = _int(d.get("step", 0) or 0, "step", -contract.MAX_INT, contract.MAX_INT)
    ts = d.get("timestamp")
    ts = _int(ts, "timestamp", 0, 1 << 62) / 1000 if ts not in (None, "") else time.time()
    rec = {contract.KIND: contract.METRIC, contract.NAME: key, contract.STEP: step, contract.TIME: ts}
    if isinstance(value, float) and not math.isfinite(value):
        rec.update({contract.VALUE: repr(value), contract.NONFINITE: True})
    else:
        rec[contract.VALUE] = value
    return rec


def _param(d: dict) -> dict:
    key, value = _key(d, "parameter"), d.get("value")
    if not isinstance(value, str) or len(value) > MAX_PARAM:
        raise bad(f"Parameter {key!r}: 'value' must be a text of at most {MAX_PARAM} characters.")
    return {contract.KIND: contract.PARAM, contract.NAME: key, contract.VALUE: value}


def _tag(d: dict) -> dict:
    key, value = _key(d, "tag"), d.get("value")
    if not isinstance(value, str):
        raise bad(f"Tag {key!r}: 'value' must be a text.")
    return {contract.KIND: contract.TAG, contract.NAME: key, contract.VALUE: value[:contract.MAX_TEXT]}
