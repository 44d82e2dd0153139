"""The README's Azure ML SDK v1 table says which calls exist here: every kernel_lib name and
method it mentions must exist (so the table cannot drift from the code)."""

from __future__ import annotations

import re
from pathlib import Path

import kernel_lib

README = Path(__file__).resolve().parent.parent / "README.md"
INSTANCES = {"run": "Run", "model": "Model", "env": "Environment", "exp": "Experiment", "ws": "Workspace"}


def table_rows():
    text = README.read_text()
    section = text.split("## Coming from Azure ML SDK v1", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| Azure ML SDK v1") and "not here" not in line:
            left, right = [c.strip() for c in line.strip("|").split(" | ", 1)]
            yield left, right


def test_every_name_in_the_azure_table_exists():
    rows = list(table_rows())
    assert len(rows) >= 15
    checked = 0
    for left, right in rows:
        spans = re.findall(r"`([^`]+)`", right if not right.startswith("same") else left + " " + right)
        for span in spans:
            imported = re.match(r"from kernel_lib import (.+)", span)
            if imported:
                for name in imported.group(1).split(","):
                    assert hasattr(kernel_lib, name.strip()), f"kernel_lib has no {name.strip()}"
                    checked += 1
                continue
            if span.startswith("from azureml"):
                continue
            for owner, attr in re.findall(r"\b([A-Za-z]+)\.([a-z_]+)\(", span):
                cls_name = INSTANCES.get(owner, owner)
                cls = getattr(kernel_lib, cls_name, None)
                if cls is None:
                    continue  # e.g. the script-side Run of azureml.core, tested elsewhere
                assert hasattr(cls, attr), f"{cls_name}.{attr} is in the README table but not in kernel_lib"
                checked += 1
    assert checked >= 30, checked
