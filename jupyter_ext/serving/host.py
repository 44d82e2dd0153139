"""The scoring process of a service: ``python -m jupyter_ext.serving.host READY_FD``.

Loads the entry script (Azure ML's contract: ``init()`` once, ``run(raw_data)`` per request,
returning something JSON can encode) or, for ONNX models deployed without one, the built-in
``onnx_entry``; calls ``init()`` with ``AZUREML_MODEL_DIR`` set; then serves with tornado:

- ``POST /score``: the body (UTF-8 text) goes to ``run()`` in a worker thread, one request at a
  time (as Azure ML's default single worker: a model is rarely safe to call from two threads),
  and its result comes back as JSON. A ``run()`` that raises answers 500 with the error and its
  traceback, and the process serves on. Bodies over ``max_request_bytes`` answer 413 before they
  are read. With ``auth_enabled``, ``Authorization: Bearer <key>`` (either key) is required: 401.
- ``GET /``: "Healthy" (a liveness check, as Azure ML's).

Why tornado: it is in every jupyter-train installation already (jupyter-server is built on it),
it is asyncio-native and well kept, and it reads a request's headers before its body, so an
oversized body is refused without being buffered. ``STATS`` (requests, errors, latency
percentiles) is written at most twice a second while requests arrive.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import json
import os
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .. import contract
from . import CONFIG, KEYS, STATS

LATENCIES = 2000  # the last this many requests make the percentiles
STATS_EVERY_S = 0.5
BODY_SLACK = 1 << 20


def load_entry(cfg: dict):
    """The entry script as a module (its folder first on sys.path, as for a run's script)."""
    if cfg.get("builtin") == "onnx":
        from . import onnx_entry

        return onnx_entry
    path = os.path.abspath(cfg["entry_script"])
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("score", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["score"] = module
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise TypeError(f"{cfg['entry_script']} defines no {name}() function: an entry script "
                            "needs init() and run(raw_data).")
    return module


class Keys:
    """The service's keys, read again when the server rewrites the file (a regenerated key)."""

    def __init__(self, path: str):
        self.path, self.mtime, self.keys = path, None, []

    def allows(self, header: str | None) -> bool:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return False
        if mtime != self.mtime:
            with open(self.path, encoding="utf-8") as f:
                self.keys = [k for k in json.load(f).values() if isinstance(k, str) and k]
            self.mtime = mtime
        if not header or not header.startswith("Bearer "):
            return False
        given = header[len("Bearer "):].strip().encode()
        return any(hmac.compare_digest(given, k.encode()) for k in self.keys)


class Stats:
    def __init__(self, path: str):
        self.path = path
        try:  # counts go on across restarts of the scoring process
            with open(path, encoding="utf-8") as f:
                before = json.load(f)
        except (OSError, ValueError):
            before = {}
        self.requests, self.errors, self.refused = (int(before.get(k) or 0) for k in ("requests", "errors", "refused"))
        self.latencies: deque[float] = deque(maxlen=LATENCIES)
        self.started_at = time.time()
        self.last_at: float | None = None
        self.dirty = True

    def record(self, ms: float | None, error: bool = False, refused: bool = False) -> None:
        self.requests += 1
        self.errors += error
        self.refused += refused
        if ms is not None:
            self.latencies.append(ms)
        self.last_at = time.time()
        self.dirty = True

    def snapshot(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float):
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

        return {"requests": self.requests, "errors": self.errors, "refused": self.refused,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "started_at": self.started_at,
                "last_request_at": self.last_at, "pid": os.getpid()}

    def write(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.snapshot(), f)
        os.replace(tmp, self.path)


def make_app(entry, cfg: dict, run_dir: str, stats: Stats):
    from tornado import web

    keys = Keys(os.path.join(run_dir, KEYS)) if cfg.get("auth_enabled") else None
    cap = int(cfg["max_request_bytes"])
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")

    class Base(web.RequestHandler):
        def set_default_headers(self):
            self.set_header("Content-Type", "application/json")

        def fail(self, status: int, message: str, **extra) -> None:
            self.set_status(status)
            self.finish(json.dumps({"error": message, **extra}))

        def write_error(self, status_code, **kwargs):
            self.finish(json.dumps({"error": self._reason}))

    class Health(Base):
        def get(self):
            self.set_header("Content-Type", "text/plain")
            self.finish("Healthy")

    @web.stream_request_body
    class Score(Base):
        def prepare(self):
            self.chunks, self.size, self.t0 = [], 0, time.perf_counter()
            if keys is not None and not keys.allows(self.request.headers.get("Authorization")):
                stats.record(None, refused=True)
                self.fail(401, "This service needs a key: send 'Authorization: Bearer <key>' "
                               "(service.get_keys() in the notebook).")
                return
            if self.request.method != "POST":
                return
            length = self.request.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > cap:
                stats.record(None, refused=True)
                self.fail(413, f"The request body is {int(length)} bytes; this service takes at most "
                               f"{cap} (max_request_bytes).")

        def data_received(self, chunk: bytes):
            if self._finished:
                return
            self.size += len(chunk)
            if self.size > cap:
                stats.record(None, refused=True)
                self.fail(413, f"The request body is over {cap} bytes (max_request_bytes).")
                return
            self.chunks.append(chunk)

        def get(self):
            self.fail(405, "POST the input to /score (its body is what run(raw_data) receives).")

        async def post(self):
            if self._finished:  # answered while the body came in (over the cap, chunked)
                return
            try:
                raw = b"".join(self.chunks).decode("utf-8")
            except UnicodeDecodeError as exc:
                stats.record(None, refused=True)
                return self.fail(400, f"The request body is not UTF-8 text: {exc}.")
            try:
                result = await asyncio.get_running_loop().run_in_executor(pool, entry.run, raw)
                body = json.dumps(result)
            except Exception as exc:
                tb = traceback.format_exc()
                print(tb, file=sys.stderr, flush=True)
                stats.record((time.perf_counter() - self.t0) * 1000, error=True)
                what = "run() returned something JSON cannot encode" if isinstance(exc, (TypeError, ValueError)) \
                    and "JSON serializable" in str(exc) else "run() raised"
                return self.fail(500, f"{what}: {type(exc).__name__}: {exc}", traceback=tb)
            self.finish(body)
            stats.record((time.perf_counter() - self.t0) * 1000)

    return web.Application([(r"/", Health), (r"/score", Score)])


async def serve(ready_fd: int) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    run_dir = os.environ[contract.ENV_RUN_DIR]
    with open(os.path.join(run_dir, CONFIG), encoding="utf-8") as f:
        cfg = json.load(f)
    os.environ["AZUREML_MODEL_DIR"] = cfg["model_dir"]
    what = "the built-in ONNX scorer" if cfg.get("builtin") == "onnx" else cfg["entry_script"]
    t0 = time.monotonic()
    print(f"[service] init() of {what}", flush=True)
    entry = load_entry(cfg)
    entry.init()
    print(f"[service] init() done in {time.monotonic() - t0:.2f} s", flush=True)
    stats = Stats(os.path.join(run_dir, STATS))
    app = make_app(entry, cfg, run_dir, stats)
    sockets = bind_sockets(int(cfg["port"]), address=cfg.get("host", "127.0.0.1"))
    # tornado's own limit, a little above the service's: the handler answers 413 first
    server = HTTPServer(app, max_body_size=int(cfg["max_request_bytes"]) + BODY_SLACK,
                        idle_connection_timeout=60)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    stats.write()
    os.write(ready_fd, f"ready {port}\n".encode())
    os.close(ready_fd)
    while True:
        await asyncio.sleep(STATS_EVERY_S)
        await asyncio.to_thread(stats.write)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        import tornado  # noqa: F401
    except ImportError:
        print("[service] this environment has no tornado, which the scoring server needs: add "
              "'tornado' to the environment's pip packages.", file=sys.stderr, flush=True)
        return 3
    try:
        asyncio.run(serve(int(argv[0])))
    except KeyboardInterrupt:
        return 0
    except Exception:
        traceback.print_exc()
        return 3
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "service"
    sys.exit(main())
