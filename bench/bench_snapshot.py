"""What a resubmit of an unchanged source costs, against the first submit of it, end to end.

    python bench/bench_snapshot.py [--quick] [--files 2000] [--place DIR ...]

For each place (default: a temporary folder on the root filesystem; add e.g. a reflink-capable
XFS or btrfs mount with ``--place /mnt/xfs``), a headless server gets a workspace there and a
2,000-file source folder next to it. It times, submit -> Completed of a trivial script, as medians:
  1. first submit: a source folder whose 2,000 files the workspace has never seen (each try gets
     a fresh folder, so every try hashes, stores and lays out 2,000 files)
  2. the same folder submitted again, unchanged (the walk, a stat-cache hit, the working copy)
  3. POST /runs/{id}/resubmit (the snapshot is reused: no walk at all, only the working copy)
  4. the floor: the same trivial script from a one-file folder (what any run costs)
and prints 2, 3 and 4 as a share of 1, and what a resubmit costs above the floor. Between tries it waits (untimed) until the previous run's
supervisor and the spare builder it starts as it exits (a process that puts a finished working
copy of the snapshot on the store's shelf for its next run) are gone: a resubmit made while that
is still going finds no spare and lays out its own copy (``--back-to-back`` times that case). Figures, not asserts: these machines are shared
and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import Experiment, ScriptRunConfig, Workspace  # noqa: E402

SCRIPT = "pkg0/main.py"
SCRIPT_TEXT = "print('ok')\n"


def make_source(path: Path, files: int, salt: str) -> Path:
    """``files`` Python modules (about 1.2 KB each) in 40 packages; ``salt`` makes them new."""
    for i in range(files - 1):
        d = path / f"pkg{i % 40}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f"# module {i} {salt}\n" + "x = 1\n" * 200)
    (path / SCRIPT).write_text(SCRIPT_TEXT)
    return path


QUIESCE = True


def until_completed(run) -> float:
    """The time ``run`` reached Completed (after which, untimed, its supervisor is waited for)."""
    details = run.wait_for_completion(raise_on_error=False)
    done = time.perf_counter()
    assert details["status"] == "Completed", (details["status"], run.get_log())
    if QUIESCE:
        wait_supervisor_gone(Path(details["run_dir"]))
    return done


def wait_supervisor_gone(run_dir: Path, timeout_s: float = 60) -> None:
    """Until the run's supervisor and any spare builder (``jupyter_ext.snapshots restock``, which
    the supervisor starts as it exits) are gone."""
    import json

    pid = json.loads((run_dir / "supervisor.json").read_text())["pid"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (alive(pid) or builders()):
        time.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; its parent reaps it


def builders() -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if b"jupyter_ext.snapshots\0restock" in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def timed_submit(exp: Experiment, src: Path) -> float:
    t0 = time.perf_counter()
    run = exp.submit(ScriptRunConfig(str(src), SCRIPT))
    return until_completed(run) - t0


def timed_resubmit(ws: Workspace, run_id: str) -> float:
    from kernel_lib.run import Run

    t0 = time.perf_counter()
    data = ws.client.post(f"/runs/{run_id}/resubmit")
    return until_completed(Run._from_data(ws, data)) - t0


def bench_place(place: Path, files: int, reps: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-snap-", dir=place))
    try:
        ws = Workspace(tmp / "ws")
        ws.client  # starts a headless server for the workspace (stopped below)
        try:
            exp = Experiment(ws, "bench-snap")
            floor_src = tmp / "floor"
            (floor_src / "pkg0").mkdir(parents=True)
            (floor_src / SCRIPT).write_text(SCRIPT_TEXT)
            timed_submit(exp, floor_src)  # warm the server (imports, first run) before timing
            firsts, agains, resubmits, floors = [], [], [], []
            src = None
            for i in range(reps):
                src = make_source(tmp / f"src{i}", files, f"try {i}")
                subprocess.run(["sync"], check=False)
                firsts.append(timed_submit(exp, src))
            last = exp.submit(ScriptRunConfig(str(src), SCRIPT))
            until_completed(last)
            for _ in range(reps):
                agains.append(timed_submit(exp, src))
                resubmits.append(timed_resubmit(ws, last.id))
                floors.append(timed_submit(exp, floor_src))
        finally:
            ws.client.stop_started_server()
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return {k: statistics.median(v) for k, v in
            (("first", firsts), ("again", agains), ("resubmit", resubmits), ("floor", floors))}


def fs_type(path: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)], capture_output=True, text=True)
    if out.returncode:  # no util-linux: statfs's name (ext4 shows as ext2/ext3)
        out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def reflink_works(path: Path) -> bool:
    """Whether ``path``'s filesystem clones files (asked of coreutils, not of our code)."""
    with tempfile.TemporaryDirectory(dir=path) as d:
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        Path(a).write_bytes(b"x" * 4096)
        return subprocess.run(["cp", "--reflink=always", a, b], capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 7, --quick 3)")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--back-to-back", action="store_true",
                    help="do not wait for the previous run's supervisor before the next try")
    ap.add_argument("--place", action="append", default=[],
                    help="a folder to put the workspace in (repeatable); default: the temp folder")
    args = ap.parse_args()
    global QUIESCE
    QUIESCE = not args.back_to_back
    reps = args.reps or (3 if args.quick else 7)
    places = [Path(p) for p in args.place] or [Path(tempfile.gettempdir())]
    rows = []
    for place in places:
        kind = f"{fs_type(place)}, {'reflink' if reflink_works(place) else 'no reflink'}"
        t = bench_place(place, args.files, reps)
        rows.append((f"{place} ({kind})", t))
    print(f"submit -> Completed of a trivial script, {args.files} files, median of {reps}"
          + (", back to back" if args.back_to_back else ", each after the previous supervisor exited"))
    header = ("workspace on", "first submit", "same folder again", "POST resubmit", "1-file floor",
              "resubmit above the floor")
    table = [header]
    for name, t in rows:
        above = t["resubmit"] - t["floor"]
        table.append((name, f"{t['first'] * 1e3:.0f} ms",
                      f"{t['again'] * 1e3:.0f} ms = {t['again'] / t['first'] * 100:.1f} %",
                      f"{t['resubmit'] * 1e3:.0f} ms = {t['resubmit'] / t['first'] * 100:.1f} %",
                      f"{t['floor'] * 1e3:.0f} ms = {t['floor'] / t['first'] * 100:.1f} %",
                      f"{above * 1e3:+.0f} ms = {above / t['first'] * 100:.1f} %"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for j, r in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print("(% = share of the first submit. Goal for a resubmit: <= 5 %; what any run costs, the\n"
          " floor, is more than that here, so the last column is what 2,000 files add to it)")


if __name__ == "__main__":
    main()
