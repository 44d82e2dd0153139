"""What the launcher takes from training, and how fast what a script writes reaches a client.

    python bench/bench_overhead.py [--quick] [--steps N] [--reps N] [--poll S] [--polling|--compare]

Each figure against a baseline measured in the same run (figures, not asserts: these machines
are shared and noisy; run it a few times and read the spread):
  1. a 2-thread CPU torch training loop (fixed steps) as a run under a real headless server and
     the local target, logging a metric every step and a log line every 50 steps, against the
     same loop started as a bare `python` (no server, no logging); alternated, best and median.
     The server's (and the run's supervisor's) CPU over the loop is read from /proc by the
     script itself, so the window is exactly the loop.
  2. the server's CPU with no run, and while a run idles, printing a line and logging a metric once a second.
  3. latency from a script's write to a WebSocket client (/train/api/runs/{id}/stream): log
     lines printed with their time.time(); metrics logged with it (through the 50 ms in-script
     flush, and flushed at once, which leaves the server's part alone), and metrics 250 ms apart
     (the in-script flusher idles and writes each at once); p50 / p99.
``--poll`` passes ``--TrainApp.poll_interval`` to the server (default: the server's default);
``--polling`` runs the server as the tailer was before file events: no inotify, a pass every
20 ms (``--TrainApp.file_events=False --TrainApp.poll_interval=0.02``); ``--compare`` runs both
servers in the same run, interleaved (each paused while the other is measured): a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import Experiment, ScriptRunConfig, Workspace  # noqa: E402
from common import stream_latencies  # noqa: E402  (bench/common.py)

TRAIN_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import torch
    torch.set_num_threads(2)
    steps, bare, watch = int(sys.argv[1]), sys.argv[2] == "bare", [int(p) for p in sys.argv[3:]]
    if not bare:
        from kernel_lib.tracking import Run
        run = Run.get_context()
        info = os.path.join(os.environ["JUPYTER_TRAIN_RUN_DIR"], "supervisor.json")
        watch.append(json.load(open(info))["pid"])
    def cpu(pid):  # utime + stime of a process, seconds
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(256, 256), torch.randint(0, 10, (256,))
    for _ in range(20):  # warm up
        opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    c0, t0 = [cpu(p) for p in watch], time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if not bare:
            run.log("loss", loss.item())
        if step % 50 == 0:
            print("step", step, "loss", float(loss), flush=True)
    elapsed = time.perf_counter() - t0
    used = [cpu(p) - c for p, c in zip(watch, c0)]
    print("RESULT", json.dumps({"loop_s": elapsed, "cpu_s": used}), flush=True)
""")

IDLE_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from kernel_lib.tracking import Run
    run = Run.get_context()
    pid, seconds = int(sys.argv[1]), int(sys.argv[2])
    def cpu(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    time.sleep(1.0)
    c0, t0 = cpu(pid), time.perf_counter()
    for i in range(seconds):
        print("tick", i, flush=True)
        run.log("tick", i)
        time.sleep(1.0)
    print("RESULT", json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": cpu(pid) - c0}), flush=True)
""")

LATENCY_SCRIPT = textwrap.dedent("""
    import sys, time
    from kernel_lib.tracking import Run
    run = Run.get_context()
    n, flush_now, pause = int(sys.argv[1]), sys.argv[2] == "flush", 0.25 if sys.argv[2] == "sparse" else 0.013
    time.sleep(1.5)  # the client is connected by now
    for i in range(n):
        t = time.time()
        run.log("t_write", t)
        if flush_now:
            run.flush()
        print("line", i, repr(t), flush=True)
        time.sleep(pause)
""")


class Server:
    """A headless ``jupyter train`` on a free port (what `Workspace` would start), with options.
    Paused (SIGSTOP) while another server is measured, so that it takes nothing meanwhile."""

    def __init__(self, workspace: Path, extra: list[str], label: str):
        self.label, self.workspace = label, workspace
        argv = [sys.executable, "-m", "jupyter_ext", "--port=0", "--ip=127.0.0.1",
                "--ServerApp.open_browser=False", f"--TrainApp.workspace_dir={workspace}", *extra]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        workspace.mkdir(parents=True)
        self.log = open(workspace.parent / f"{workspace.name}.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, JUPYTER_TOKEN=os.urandom(8).hex()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                info = json.loads((workspace / "server.json").read_text())
                if info.get("pid") == self.proc.pid and ":0/" not in info["url"]:
                    self.ws = Workspace(workspace)
                    return
            except (FileNotFoundError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited; see {self.log.name}")
            time.sleep(0.1)
        raise SystemExit("the server did not start")

    def pause(self, paused: bool = True) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self):
        self.pause(False)
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def result_of(text: str) -> dict:
    return json.loads(next(line for line in text.splitlines() if line.startswith("RESULT "))[7:])


def bench_overhead(servers: list[Server], src: Path, steps: int, reps: int) -> dict:
    """Per rep: the bare loop, then the same loop as a run on each server (the others paused)."""
    out = {"bare": []} | {s.label: {"loop": [], "ratio": [], "server": [], "supervisor": []} for s in servers}
    for _ in range(reps):
        bare = subprocess.run([sys.executable, str(src / "train.py"), str(steps), "bare"],
                              capture_output=True, text=True, cwd=src)
        if bare.returncode:
            raise SystemExit(bare.stderr)
        out["bare"].append(result_of(bare.stdout)["loop_s"])
        for server in servers:
            with running(server):
                run = Experiment(server.ws, "bench-overhead").submit(
                    ScriptRunConfig(str(src), "train.py", [steps, "run", server.proc.pid]))
                wait_quietly(run, 0.9 * out["bare"][-1])
                r = result_of(run.get_log())
            o = out[server.label]
            o["loop"].append(r["loop_s"])
            o["ratio"].append(out["bare"][-1] / r["loop_s"])  # back to back with its bare loop
            o["server"].append(r["cpu_s"][0] / r["loop_s"])
            o["supervisor"].append(r["cpu_s"][1] / r["loop_s"])
    return out


class running:
    """``with running(server):`` it runs (the others stay paused)."""

    def __init__(self, server: Server):
        self.server = server

    def __enter__(self):
        self.server.pause(False)
        return self.server

    def __exit__(self, *exc):
        self.server.pause(True)


def wait_quietly(run, quiet_s: float = 0.0) -> None:
    """Until the run ends: no stream, and no request for the first ``quiet_s`` (the window the
    script measures the server's CPU in), then one every half second."""
    time.sleep(quiet_s)
    while run.get_status() not in ("Completed", "Failed", "Canceled"):
        time.sleep(0.5)
    if run.get_status() != "Completed":
        raise SystemExit(f"run {run.id} {run.get_status()}: {run.get_log()[-2000:]}")


def cpu_of(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def bench_no_run(server_pid: int, seconds: float) -> float:
    c0, t0 = cpu_of(server_pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_of(server_pid) - c0) / (time.perf_counter() - t0)


def bench_idle(ws, src: Path, server_pid: int, seconds: int) -> float:
    run = Experiment(ws, "bench-idle").submit(ScriptRunConfig(str(src), "idle.py", [server_pid, seconds]))
    wait_quietly(run, seconds + 1.0)
    r = result_of(run.get_log())
    return r["cpu_s"] / r["wall_s"]


def bench_latency(ws, src: Path, n: int, mode: str) -> tuple[list[float], list[float]]:
    run = Experiment(ws, "bench-latency").submit(ScriptRunConfig(str(src), "latency.py", [n, mode]))
    return stream_latencies(ws, run)


def ms(values, q):
    return f"{pct(values, q) * 1e3:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer steps and repetitions")
    ap.add_argument("--steps", type=int, help="training steps per loop (default 3000, quick 1000)")
    ap.add_argument("--reps", type=int, help="bare/launched pairs (default 4, quick 2)")
    ap.add_argument("--poll", type=float, help="the server's --TrainApp.poll_interval")
    ap.add_argument("--polling", action="store_true", help="no file events, a pass every 20 ms (as before)")
    ap.add_argument("--compare", action="store_true", help="both, in the same run, interleaved")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    steps = args.steps or (1000 if args.quick else 3000)
    reps = args.reps or (2 if args.quick else 4)
    lines = 150 if args.quick else 400
    events = ("file events", [f"--TrainApp.poll_interval={args.poll}"] if args.poll is not None else [])
    polling = ("polling 20 ms", ["--TrainApp.file_events=False",
                                 f"--TrainApp.poll_interval={args.poll or 0.02}"])
    modes = [events, polling] if args.compare else [polling] if args.polling else [events]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "src"
        src.mkdir()
        (src / "train.py").write_text(TRAIN_SCRIPT)
        (src / "idle.py").write_text(IDLE_SCRIPT)
        (src / "latency.py").write_text(LATENCY_SCRIPT)
        servers = []
        try:
            for i, (label, extra) in enumerate(modes):
                servers.append(Server(tmp / f"ws{i}", extra, label))
                servers[-1].pause()
            rows = {}
            for server in servers:
                with running(server):
                    rows[server.label] = {"no_run": bench_no_run(server.proc.pid, 3.0 if args.quick else 6.0)}
            over = bench_overhead(servers, src, steps, reps)
            for server in servers:
                with running(server):
                    row = rows[server.label]
                    row["idle"] = bench_idle(server.ws, src, server.proc.pid, 5 if args.quick else 10)
                    row["lat"] = bench_latency(server.ws, src, lines, "buffered")
                    row["lat_flush"] = bench_latency(server.ws, src, lines, "flush")
                    row["lat_sparse"] = bench_latency(server.ws, src, max(40, lines // 10), "sparse")
        finally:
            for server in servers:
                server.stop()
    report(steps, reps, over, rows)


def report(steps: int, reps: int, over: dict, rows: dict) -> None:
    bare = over["bare"]
    print(f"{steps} steps, {reps} reps; bare loop best {min(bare):.2f} s, median "
          f"{statistics.median(bare):.2f} s (each figure below: best, median [spread])")
    for label, row in rows.items():
        o = over[label]
        r, srv = o["ratio"], o["server"]
        m_lat, l_lat = row["lat"]
        mf_lat, lf_lat = row["lat_flush"]
        print(f"--- {label}")
        print(f"as a run             : best {min(o['loop']):.2f} s, "
              f"median {statistics.median(o['loop']):.2f} s")
        print(f"ratio bare/launched  : best {max(r):.3f}, median {statistics.median(r):.3f} "
              f"[{min(r):.3f}-{max(r):.3f}]; best/best {min(bare) / min(o['loop']):.3f} (goal >= 0.99)")
        print(f"server CPU in loop   : median {statistics.median(srv) * 100:.2f} % of a core "
              f"[{min(srv) * 100:.2f}-{max(srv) * 100:.2f}]; supervisor "
              f"{statistics.median(o['supervisor']) * 100:.2f} %")
        print(f"server CPU, no run   : {row['no_run'] * 100:.2f} % of a core")
        print(f"server CPU, idle run : {row['idle'] * 100:.2f} % of a core (a line and a metric per second)")
        print(f"log line -> WS       : p50 {ms(l_lat, 50)} ms, p99 {ms(l_lat, 99)} ms ({len(l_lat)} lines; "
              "goal 5 / 20 ms)")
        print(f"metric -> WS         : p50 {ms(m_lat, 50)} ms, p99 {ms(m_lat, 99)} ms ({len(m_lat)} points, "
              "through the 50 ms in-script flush; goal p99 50 ms)")
        ms_lat = row["lat_sparse"][0]
        print(f"metric, sparse -> WS : p50 {ms(ms_lat, 50)} ms, p99 {ms(ms_lat, 99)} ms ({len(ms_lat)} points 250 ms "
              "apart, as per-epoch metrics: the in-script flusher is idle and writes each at once)")
        print(f"metric flushed -> WS : p50 {ms(mf_lat, 50)} ms, p99 {ms(mf_lat, 99)} ms (run.flush() after "
              f"each: the server's part); log lines then p50 {ms(lf_lat, 50)}, p99 {ms(lf_lat, 99)} ms")


if __name__ == "__main__":
    main()
