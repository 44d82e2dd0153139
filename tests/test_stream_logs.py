"""The stream lists a run's logs/ only when a folder in it changed (handlers/stream_logs.py), and
still sees every new log file: at the top, in a folder below, in a new folder, behind a link."""

from __future__ import annotations

import os

import pytest

from jupyter_ext.handlers import stream_logs
from jupyter_ext.launcher.rundir import RunDir

OLD_NS = 1_000_000_000 * 1_000_000_000  # 2001: folders that changed long ago


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run folder with logs/rank_0.txt and logs/node/, and a count of the listings."""
    rd = RunDir(tmp_path / "run_1")
    (rd.path / "logs" / "node").mkdir(parents=True)
    (rd.path / "logs" / "rank_0.txt").write_text("one\n")
    listings = []
    real = stream_logs.history.log_listing

    def counted(*args):
        listings.append(1)
        return real(*args)

    monkeypatch.setattr(stream_logs.history, "log_listing", counted)
    monkeypatch.setattr(stream_logs, "RELIST_S", 3600.0)  # the backstop: out of the way
    return rd, listings


def settle(rd):
    """Every folder under logs/ as if it last changed long ago (past the racy window)."""
    for top, dirs, _files in os.walk(rd.path / "logs"):
        os.utime(top, ns=(OLD_NS, OLD_NS))


def test_a_log_that_grows_costs_no_listing(run):
    rd, listings = run
    settle(rd)
    logs = stream_logs.StreamLogs(rd, "run_1")
    assert logs.sizes(False) == [("rank_0.txt", 4)]
    with open(rd.path / "logs" / "rank_0.txt", "a") as f:
        f.write("two\n")
    assert logs.sizes(False) == [("rank_0.txt", 8)]
    assert logs.sizes(False) == [("rank_0.txt", 8)]
    assert len(listings) == 1


@pytest.mark.parametrize("new", ["rank_1.txt", "node/agent.txt", "late/deeper/rank_2.txt"])
def test_a_new_log_file_is_seen_at_the_next_wake(run, new):
    rd, listings = run
    settle(rd)
    logs = stream_logs.StreamLogs(rd, "run_1")
    logs.sizes(False)
    path = rd.path / "logs" / new
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("hello\n")
    assert (new, 6) in logs.sizes(False)
    assert len(listings) == 2


def test_a_folder_that_just_changed_is_listed_again(run):
    """Within RACY_NS of a change, a name added in the same clock tick would leave the mtime as
    it was: no shortcut until the folder has settled."""
    rd, listings = run
    logs = stream_logs.StreamLogs(rd, "run_1")  # logs/ was written just now
    logs.sizes(False)
    logs.sizes(False)
    assert len(listings) == 2
    settle(rd)
    logs.sizes(False)
    logs.sizes(False)
    assert len(listings) == 3


def test_a_link_in_logs_means_a_listing_every_time(run):
    rd, listings = run
    (rd.path / "outputs").mkdir()
    os.symlink("../outputs", rd.path / "logs" / "out")
    settle(rd)
    logs = stream_logs.StreamLogs(rd, "run_1")
    logs.sizes(False)
    (rd.path / "outputs" / "more.txt").write_text("inside the run, behind the link\n")
    assert ("out/more.txt", 32) in logs.sizes(False)
    assert len(listings) == 2


def test_the_first_final_pass_and_the_backstop_list_again(run, monkeypatch):
    rd, listings = run
    settle(rd)
    logs = stream_logs.StreamLogs(rd, "run_1")
    logs.sizes(False)
    logs.sizes(True)
    logs.sizes(True)
    assert len(listings) == 2
    monkeypatch.setattr(stream_logs, "RELIST_S", 0.0)
    logs.sizes(False)
    assert len(listings) == 3


def test_a_removed_log_or_run_folder(run):
    rd, listings = run
    settle(rd)
    logs = stream_logs.StreamLogs(rd, "run_1")
    logs.sizes(False)
    os.unlink(rd.path / "logs" / "rank_0.txt")
    assert logs.sizes(False) == []
    os.rename(rd.path, rd.path.with_name("elsewhere"))
    os.symlink(rd.path.with_name("elsewhere"), rd.path)  # the run folder replaced by a link
    assert logs.sizes(False) is None
