"""What a downloaded dataset costs a run's preparation the second time, against the first.

    python bench/bench_dataset_cache.py [--files 1000] [--kb 100] [--tries 3]

A headless server gets a fresh workspace and a local datastore (a folder on this host) holding
FILES files of KB kB each, registered as a dataset. For each try a new dataset version (fresh
random bytes, so nothing is cached yet) is read by two runs of a trivial script with
``as_download()``:
  1. first run: every file is copied from the datastore into this host's cache, checked
     against its sha256, then laid out in the run's inputs/ folder (hard links),
  2. second run of the same version: everything is in the cache; only the layout is done.
Preparation is timed from the run's Preparing event to its Running event (events.jsonl), so
it holds the fetch, the layout and the start of the script's process; also printed: the floor,
the same script with no dataset (Queued to Running: a process start). Medians; figures, not
asserts: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table  # noqa: E402
from kernel_lib import Datastore, Dataset, Experiment, ScriptRunConfig, Workspace  # noqa: E402

SCRIPT = "import os, sys\nprint(len(os.listdir(sys.argv[2])), 'entries')\n"


def event_times(ws, run) -> dict[str, float]:
    """The first time of each state in the run's events.jsonl."""
    out: dict[str, float] = {}
    for line in Path(ws.path, "runs", run.id, "events.jsonl").read_text().splitlines():
        ev = json.loads(line)
        out.setdefault(ev["state"], ev["ts"])
    return out


def prep_seconds(ws, src: str, given) -> float:
    run = Experiment(ws, "bench-data").submit(ScriptRunConfig(src, "read.py", ["--data", given]))
    details = run.wait_for_completion(raise_on_error=False)
    if details["status"] != "Completed":
        raise SystemExit(f"run {run.id} {details['status']}: {details.get('error')}\n{run.get_log('prepare.txt')}")
    t = event_times(ws, run)
    return t["Running"] - t.get("Preparing", t["Queued"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--kb", type=int, default=100)
    ap.add_argument("--tries", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        ws = Workspace.create(os.path.join(tmp, "workspace"))
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        Path(src, "read.py").write_text(SCRIPT)
        store_dir = Path(tmp, "store")
        store = Datastore.register_local(ws, "bench", path=str(store_dir.mkdir() or store_dir))
        firsts, seconds, floors = [], [], []
        try:
            for i in range(args.tries):
                for k in range(args.files):
                    path = store_dir / "data" / f"{k // 100:03d}" / f"{k}.bin"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(os.urandom(args.kb * 1000))
                ds = Dataset.File.from_files(path=(store, "data/**")).register(ws, "bench", create_new_version=True)
                given = ds.as_named_input("data").as_download()
                firsts.append(prep_seconds(ws, src, given))
                seconds.append(prep_seconds(ws, src, given))
                run = Experiment(ws, "bench-data").submit(ScriptRunConfig(src, "read.py", ["--data", src]))
                run.wait_for_completion()
                t = event_times(ws, run)
                floors.append(t["Running"] - t["Queued"])
                print(f"try {i + 1}: first {firsts[-1]:.2f} s, second {seconds[-1]:.2f} s, "
                      f"no dataset {floors[-1]:.2f} s", flush=True)
        finally:
            if ws._client is not None:
                ws.client.stop_started_server()
        first, second, floor = (statistics.median(x) for x in (firsts, seconds, floors))
        mb = args.files * args.kb / 1000
        print(f"\n{args.files} files of {args.kb} kB ({mb:.0f} MB) a version, {args.tries} tries, medians:")
        print_table([
            ("prepare, cached download (2nd run)", f"{second:.2f} s", f"{first:.2f} s (1st run)",
             f"{second / first:.3f}"),
            ("  of which above a run without data", f"{second - floor:.2f} s", f"{first - floor:.2f} s",
             f"{(second - floor) / max(first - floor, 1e-9):.3f}"),
        ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
