"""Fault-suite fixtures: ``fault`` records a row of the table printed at the end (table.py)."""

from __future__ import annotations

import pytest

from tests.faults.table import Recorder


@pytest.fixture
def fault() -> Recorder:
    return Recorder()
