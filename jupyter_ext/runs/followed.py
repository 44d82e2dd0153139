"""What the tailer keeps of one run it follows, and the reads of that run's files.

A pass over a run (``Tailer._follow``) folds new event lines (``fold_if_grown``), reads each
rank's metrics file on from its committed offset into the store (``ingest_metrics``) and notes
grown log files (``check_logs``). Most passes are for a few new metric lines, so what a pass
would do again without need is skipped: the events file is read only when it grew, metrics/ is
listed again only when the folder changed, and the run's paths are made once.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

from .. import contract
from ..errors import TrainError
from ..launcher.rundir import RunDir
from ..paths import Tree
from .ingest import PARAMS, parse_metric_lines, rank_of, read_metric_batch

log = logging.getLogger("jupyter_ext")
INGEST_SLICE_S = 0.25  # at most this long on one run's metrics per pass; the next pass goes on


class Followed:
    def __init__(self, rd: RunDir, offsets: dict[str, int], drain_only: bool = False):
        self.rd = rd
        self.run_id = rd.path.name
        self.metric_offsets = offsets
        self.drain_only = drain_only  # a run that had ended before: only its unread metrics left
        self.log_sizes: dict[str, int] = {}
        self.supervisor: dict | None = None  # supervisor.json once its process groups are known
        self.events_path = os.fspath(rd.events_path)
        self.run: dict | None = None  # the row as the last fold left it ...
        self.events_size = -1  # ... when events.jsonl had this size
        self.metric_names: list[str] = []  # the rank files in metrics/ ...
        self.metrics_mtime = -1  # ... when the folder had this mtime (ns)

    def fold_if_grown(self, fold: Callable[[], tuple[dict | None, bool]]) -> tuple[dict | None, bool]:
        """``fold()`` (the tailer's fold of new event lines into the row), skipped while
        events.jsonl has the size it had at the last fold here. Whoever else folds (sync, the
        orphan path) moves the row's offset on, so the next pass, finding another size, folds
        (reads the row) again."""
        try:
            size = os.stat(self.events_path).st_size
        except OSError:
            size = -2
        if self.run is not None and size == self.events_size:
            return self.run, False
        run, changed = fold()
        if run is not None:
            self.run, self.events_size = run, run["events_offset"]
        return run, changed

    def ingest_metrics(self, store, final: bool = False, full: bool = True) -> tuple[bool, bool]:
        """Read each metrics file on in bounded batches (one transaction each: rows and offset
        together), batch after batch while there is more, for at most INGEST_SLICE_S. With
        ``final`` (the run has ended) a trailing partial line is read as well; ``full``: a pass
        over every run, which lists metrics/ whatever its mtime says. Returns (anything
        ingested, every file read to its end)."""
        rd, run_id = self.rd, self.run_id
        changed, behind = False, False
        deadline = time.monotonic() + INGEST_SLICE_S
        for name in self._rank_files(rescan=final or full):
            at_end = False
            while not at_end and time.monotonic() < deadline:
                off = self.metric_offsets.get(name, 0)
                try:  # read under the containment rule: a rank file swapped for a link is not read
                    with Tree(rd.path, within=("metrics",), what=f"run {run_id}") as tree, \
                            tree.open(f"metrics/{name}") as f:
                        data, new_off, at_end = read_metric_batch(f, off, final=final)
                except TrainError as exc:  # gone, or a link out of the run: nothing to read there
                    log.warning("jupyter-train: run %s: metrics/%s not read: %s", run_id, name, exc)
                    at_end = True
                    break
                if new_off == off:
                    break
                rows, tags, problems = parse_metric_lines(data)
                for p in problems:
                    log.warning("jupyter-train: run %s: %s", run_id, p)
                if problems.more:
                    log.warning("jupyter-train: run %s: %d more bad metric lines in metrics/%s",
                                run_id, problems.more, name)
                params = tags.pop(PARAMS, None)
                store.ingest_metrics(run_id, name, rank_of(name), rows, tags, new_off, params=params)
                self.metric_offsets[name] = new_off
                changed = True
            behind |= not at_end
        return changed, not behind

    def _rank_files(self, rescan: bool) -> list[str]:
        """``metric_files``, listed again only when metrics/ changed (its mtime) or with
        ``rescan``. A file made in the same clock tick as the last listing is found by the next
        full pass (the fallback, every poll_interval) or at the run's end."""
        try:
            mtime = os.stat(self.rd.metrics, follow_symlinks=False).st_mtime_ns
        except OSError:
            mtime = -2
        if rescan or mtime != self.metrics_mtime:
            self.metric_names, self.metrics_mtime = metric_files(self.rd), mtime
        return self.metric_names

    def check_logs(self) -> bool:
        """Whether a log file's size changed since the last look."""
        changed = False
        try:
            entries = list(os.scandir(self.rd.logs))
        except FileNotFoundError:
            return False
        for e in entries:
            if e.is_file():
                size = e.stat().st_size
                if self.log_sizes.get(e.name) != size:
                    self.log_sizes[e.name] = size
                    changed = True
        return changed


def metric_files(rd: RunDir) -> list[str]:
    """The rank files in a run's metrics/ (regular files; links are never read)."""
    if os.path.islink(rd.metrics):
        return []
    try:
        return sorted(e.name for e in os.scandir(rd.metrics)
                      if e.name.endswith(contract.METRICS_SUFFIX) and e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
