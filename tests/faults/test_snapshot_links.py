"""A source folder whose links lead outside it: the snapshot never takes the outside bytes, so
neither the store, the run's working copy, its logs nor a resubmit ever holds them; the links
left out are named. And a working copy is the run's own: a script writing into it changes
neither the store nor the next run of the same snapshot. ``lost`` counts outside bytes that
reached the run, or bytes of one run's writes that another run saw."""

from __future__ import annotations

import os
from pathlib import Path

MARK = b"TOPSECRET:0123456789\n"
SECRET = MARK * 50

READER = """\
import os
for name in ("abs.txt", "rel.txt", "chain.txt", "dir/secret.txt", "inside.txt"):
    print(name, open(name, "rb").read() if os.path.isfile(name) else "absent")
with open("inside.txt", "a") as f:  # a run writing into its working copy
    f.write("WRITTEN-BY-A-RUN")
"""


def planted_source(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir" / "secret.txt").write_bytes(SECRET)
    src = tmp_path / "src"
    src.mkdir()
    (src / "reader.py").write_text(READER)
    (src / "real.txt").write_text("inside\n")
    os.symlink(outside / "secret.txt", src / "abs.txt")
    os.symlink("../outside/secret.txt", src / "rel.txt")
    os.symlink("abs.txt", src / "chain.txt")
    os.symlink(outside / "dir", src / "dir")
    os.symlink("real.txt", src / "inside.txt")
    return src


def leaked_in(root: Path) -> int:
    return sum(p.read_bytes().count(MARK) * len(MARK) for p in root.rglob("*")
               if p.is_file() and not p.is_symlink())


async def test_links_out_of_the_source_folder_never_reach_a_run(api, tmp_path, workspace_dir, fault):
    src = planted_source(tmp_path)
    first = await api.wait((await api.submit("reader.py", source=src))["id"])
    again = await api.wait((await api.call("POST", f"runs/{first['id']}/resubmit", expect=201))["id"])
    lost = leaked_in(workspace_dir / "snapshots")
    for run in (first, again):
        assert run["status"] == "Completed", run
        log = (await api.call("GET", f"runs/{run['id']}/logs/rank_0.txt"))["text"]
        lost += log.encode().count(MARK[:10]) * len(MARK) + leaked_in(Path(run["run_dir"]))
        assert "abs.txt absent" in log and "dir/secret.txt absent" in log
    fault.record("links out of the source folder (absolute, relative, chained, a folder)",
                 survived=lost == 0, lost=lost, unit="bytes")
    assert lost == 0
    # the link that stays inside is shipped as a copy of what it names; each run got its own
    seen = [(await api.call("GET", f"runs/{r['id']}/logs/rank_0.txt"))["text"] for r in (first, again)]
    written = sum(text.count("WRITTEN-BY-A-RUN") for text in seen) * len("WRITTEN-BY-A-RUN")
    fault.record("a run writes into its working copy: the next run of the snapshot sees it",
                 survived=written == 0, lost=written, unit="bytes")
    assert written == 0 and all("inside.txt b'inside\\n'" in text for text in seen)
