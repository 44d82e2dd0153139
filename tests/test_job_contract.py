"""One owner per fact (DESIGN.md, convention 11): jupyter_ext.contract holds the metric record
format and limits, the JUPYTER_TRAIN_* variable names and the run states; launcher.payload holds
what in-job code is. (tests/test_contract.py is the REST contract, openapi.yaml.)"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from jupyter_ext import contract
from jupyter_ext.launcher import payload
from jupyter_ext.launcher.spec import TERMINAL_STATES, RunState
from jupyter_ext.runs import ingest
from kernel_lib import tracking

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("jupyter_ext", "kernel_lib")
ENV_NAME = re.compile(r"JUPYTER_TRAIN_[A-Z0-9_]*[A-Z0-9]")

# Files that still write a JUPYTER_TRAIN_* name as a literal, each owned by someone else for now.
# Each owner switches theirs to jupyter_ext.contract's ENV_* constants and takes it out of this
# list; an entry whose file no longer has a literal fails the test until it is taken out.
PENDING_ENV = {
    "jupyter_ext/launcher/docker_rsh.py": "ENV_DOCKER_URL (run by path: see its docstring)",
}
# Files that write a run state's name as a literal. launcher/spec.py's RunState is checked against
# contract.RUN_STATES when it is imported; its owner may write its members as contract.NOT_STARTED,
# ... and take it out of this list.
PENDING_STATES: dict[str, str] = {}


# -- the metric record ---------------------------------------------------------------------------
def _written(tmp_path, log) -> list[str]:
    run = tracking.Run("r1", str(tmp_path), rank=3)
    log(run)
    run.flush()
    run._writer.closed = True
    return (tmp_path / contract.metrics_file_name(3)).read_text().splitlines()


def test_a_line_tracking_writes_is_read_by_ingest_with_the_contracts_keys(tmp_path):
    def log(run):
        run.log("loss", 0.25)
        run.log("loss", 7, step=10)
        run.log("acc", float("nan"))
        run.log("note", "warming up")
        run.tag("stage", "warmup")

    lines = _written(tmp_path, log)
    records = [json.loads(line) for line in lines]
    keys = {contract.KIND, contract.NAME, contract.VALUE, contract.STEP, contract.TIME, contract.NONFINITE}
    assert all(set(r) <= keys for r in records)
    assert [r[contract.KIND] for r in records] == [contract.METRIC] * 4 + [contract.TAG]
    assert records[2][contract.NONFINITE] is True
    rows, tags, problems = ingest.parse_metric_lines(("\n".join(lines) + "\n").encode())
    assert not problems
    assert [r[:4] for r in rows] == [("loss", 0, 0.25, None), ("loss", 10, 7, None), ("acc", 0, None, "nan"),
                                     ("note", 0, None, "warming up")]
    assert all(isinstance(r[4], float) for r in rows)
    assert tags == {"stage": "warmup"}
    assert ingest.rank_of(contract.metrics_file_name(3)) == 3


def test_the_writer_and_the_reader_have_the_contracts_limits(tmp_path):
    assert tracking.MAX_NAME == contract.MAX_NAME and tracking.MAX_TEXT == contract.MAX_TEXT
    assert ingest.MAX_TEXT == contract.MAX_TEXT and ingest.INT64 == contract.MAX_INT
    longest, too_long = "n" * contract.MAX_NAME, "n" * (contract.MAX_NAME + 1)
    text, too_much = "x" * contract.MAX_TEXT, "x" * (contract.MAX_TEXT + 1)

    def log(run):
        for name, value in ((longest, 1.0), (too_long, 1.0), ("t", text), ("u", too_much)):
            run.log(name, value)

    lines = _written(tmp_path, log)
    assert [json.loads(line)[contract.NAME] for line in lines] == [longest, "t"]  # tracking refused two
    made = [json.dumps({contract.KIND: contract.METRIC, contract.NAME: n, contract.VALUE: v})
            for n, v in ((longest, 1.0), (too_long, 1.0), ("t", text), ("u", too_much))]
    rows, _, problems = ingest.parse_metric_lines(("\n".join(made) + "\n").encode())
    assert [r[0] for r in rows] == [longest, "t"] and len(problems) == 2  # and so did ingest


def test_the_longest_record_tracking_writes_is_one_line_ingest_reads_whole():
    astral = "\U0001F600"  # 12 bytes as JSON (a surrogate pair of \\u escapes): the widest character
    rec = ("m", astral * contract.MAX_NAME, astral * contract.MAX_TEXT, -contract.MAX_INT, 1e300)
    line = tracking._encode(rec)
    assert len(line.encode()) + 1 < contract.MAX_LINE_BYTES <= ingest.METRIC_BATCH_BYTES


# -- run states ------------------------------------------------------------------------------------
def test_run_states_are_the_contracts():
    assert tuple(RunState) == contract.RUN_STATES
    assert all(getattr(contract, s.name) == s.value for s in RunState)
    assert TERMINAL_STATES == contract.TERMINAL_STATES
    assert {s.value for s in RunState if s.is_terminal()} == contract.TERMINAL_STATES
    assert all(contract.is_terminal(s) == s.is_terminal() == contract.is_terminal(s.value) for s in RunState)


def test_the_rest_contract_declares_the_same_states():
    """openapi.yaml is what the TypeScript side is checked against (labextension/test/contract.spec.ts)."""
    import yaml

    state = yaml.safe_load((ROOT / "jupyter_ext" / "openapi.yaml").read_text())["components"]["schemas"]["State"]
    assert tuple(state["enum"]) == contract.RUN_STATES
    assert set(state["x-terminal"]) == contract.TERMINAL_STATES


# -- environment variables -------------------------------------------------------------------
def test_every_env_name_is_declared_once():
    declared = {k: v for k, v in vars(contract).items() if k.startswith("ENV_") and isinstance(v, str)}
    assert sorted(declared.values()) == sorted(contract.ENV_VARS)  # each constant documented, once
    assert all(ENV_NAME.fullmatch(v) for v in declared.values())
    assert set(contract.JOB_ENV) <= set(contract.ENV_VARS)


def _python_files():
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/labextension/" not in rel and "__pycache__" not in rel:
                yield rel, path


def _literals(path: Path):
    """(line, text) of the str and bytes constants in ``path``'s code (not its docstrings), and
    of its keyword arguments' names (``dict(os.environ, NAME=...)``)."""
    tree = ast.parse(path.read_bytes())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docs:
            value = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            yield node.lineno, value
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.value.lineno, node.arg


def test_no_env_name_is_written_outside_the_contract():
    found: dict[str, list[str]] = {}
    for rel, path in _python_files():
        if rel == "jupyter_ext/contract.py":
            continue
        for line, text in _literals(path):
            for name in ENV_NAME.findall(text):
                found.setdefault(rel, []).append(f"{rel}:{line}: {name}")
    unknown = [hit for hits in found.values() for hit in hits
               if ENV_NAME.search(hit.split(": ", 1)[1]).group() not in contract.ENV_VARS]
    assert not unknown, "names jupyter_ext/contract.py does not declare (add them):\n" + "\n".join(unknown)
    new = [hit for rel, hits in found.items() if rel not in PENDING_ENV for hit in hits]
    assert not new, ("write these with jupyter_ext.contract's ENV_* constants:\n" + "\n".join(new))
    done = sorted(set(PENDING_ENV) - set(found))
    assert not done, f"no literal left in {done}: take them out of PENDING_ENV"


def test_every_env_name_anyone_mentions_is_declared():
    """Docstrings, comments, tests and the README too: a name the contract lacks is a typo or a
    variable it has to declare."""
    texts = [p for top in (*SOURCES, "tests") for p in (ROOT / top).rglob("*.py")
             if "__pycache__" not in p.parts and "labextension" not in p.parts]
    mentioned = {}
    for p in [*texts, ROOT / "README.md"]:
        for name in ENV_NAME.findall(p.read_text(errors="replace")):
            mentioned.setdefault(name, p.relative_to(ROOT).as_posix())
    assert {n: where for n, where in mentioned.items() if n not in contract.ENV_VARS} == {}


def test_no_run_state_is_written_outside_the_contract():
    states = set(contract.RUN_STATES)
    found: dict[str, list[str]] = {}
    for rel, path in _python_files():
        if rel == "jupyter_ext/contract.py":
            continue
        for line, text in _literals(path):
            if text in states:
                found.setdefault(rel, []).append(f"{rel}:{line}: {text!r}")
    new = [hit for rel, hits in found.items() if rel not in PENDING_STATES for hit in hits]
    assert not new, "use jupyter_ext.contract's state names:\n" + "\n".join(new)
    assert not sorted(set(PENDING_STATES) - set(found)), "take these out of PENDING_STATES"


# -- the in-job payload ----------------------------------------------------------------------
def test_the_payload_ships_files_that_exist_among_them_the_contract_and_tracking():
    files = dict((rel, src) for src, rel in payload.shim_files())
    assert all(os.path.isfile(src) for src in files.values())
    for needed in ("jupyter_ext/contract.py", "kernel_lib/tracking.py", "jupyter_ext/launcher/rank_entry.py",
                   "jupyter_ext/launcher/payload.py", "kernel_lib/compat/azureml/core/run.py"):
        assert needed in files
        assert Path(files[needed]).resolve() == (ROOT / needed).resolve()
    assert [os.path.basename(d) for d in payload.package_dirs()] == list(payload.PACKAGES)
    assert payload.mounts("/opt/lib") == {d: f"/opt/lib/{os.path.basename(d)}" for d in payload.package_dirs()}
    assert set(payload.mounts("").values()) == set(payload.PACKAGES)


def _imports(path: Path):
    """(module, level) of every import in ``path``, top-level and inside functions."""
    for node in ast.walk(ast.parse(path.read_bytes(), feature_version=(3, 9))):  # in-job: Python >= 3.9
        if isinstance(node, ast.Import):
            yield from ((a.name, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                yield node.module, node.level
            yield from ((f"{node.module}.{a.name}" if node.module else a.name, node.level) for a in node.names)


# Imports in functions that a job never calls: the server's extension points, and %load_ext.
NOT_IN_JOBS = {("jupyter_ext/__init__.py", "jupyter_ext.app"), ("kernel_lib/__init__.py", "kernel_lib.magics")}


def test_the_shim_is_stdlib_only_and_closed():
    """Every import of a shipped file is the standard library's or another shipped file."""
    shipped = {rel for _, rel in payload.shim_files()}
    modules = {rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in shipped}
    outside = []
    for src, rel in payload.shim_files():
        package = rel[:-3].replace("/", ".").removesuffix(".__init__")
        if not rel.endswith("__init__.py"):
            package = package.rsplit(".", 1)[0]
        for name, level in _imports(Path(src)):
            if level:
                base = package.rsplit(".", level - 1)[0] if level > 1 else package
                name = f"{base}.{name}"
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or {(rel, name), (rel, name.rsplit(".", 1)[0])} & NOT_IN_JOBS:
                continue
            if top in payload.SHIM_NEEDS.get(rel, ()):  # the job's environment has it
                continue
            if name not in modules and name.rsplit(".", 1)[0] not in modules:
                outside.append(f"{rel}: {name}")
    assert not outside, "shipped files import what is not shipped (add it to SHIM):\n" + "\n".join(outside)


def test_a_job_with_only_the_shim_logs_through_the_azureml_compat(tmp_path):
    """The shim alone (no site-packages, no checkout on the path), as a built environment has it:
    the rank entry point runs an Azure ML script whose metrics ingest reads."""
    shim = tmp_path / "shim"
    for src, rel in payload.shim_files():
        (shim / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, shim / rel)
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (tmp_path / "train.py").write_text("from azureml.core import Run\nRun.get_context().log('acc', 0.5)\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(shim),
           contract.ENV_RUN_ID: "r1", contract.ENV_RUN_DIR: str(run_dir),
           contract.ENV_METRICS_DIR: str(run_dir / contract.METRICS_DIR)}
    argv = [sys.executable, "-S", "-m", "jupyter_ext.launcher.rank_entry", str(tmp_path / "train.py")]
    r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (run_dir / "logs" / "rank_0.txt").read_text() + r.stderr
    data = (run_dir / contract.METRICS_DIR / contract.metrics_file_name(0)).read_bytes()
    rows, _, problems = ingest.parse_metric_lines(data)
    assert [(n, v) for n, _, v, _, _ in rows] == [("acc", 0.5)] and not problems


def test_the_ray_agent_fingerprints_as_the_payload_does():
    """Until ray_agent takes PACKAGES and fingerprint() from payload, its copies must agree: a node
    compares its own packages' fingerprint with the supervisor's."""
    from jupyter_ext.launcher import ray_agent

    assert tuple(getattr(ray_agent, "PACKAGES", payload.PACKAGES)) == payload.PACKAGES
    own = getattr(ray_agent, "fingerprint", payload.fingerprint)
    assert own(payload.package_dirs()) == payload.fingerprint() == payload.fingerprint(payload.package_dirs())


def test_the_contract_is_cheap_to_import():
    code = ("import sys, jupyter_ext.contract, jupyter_ext.launcher.payload; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jupyter_ext', 'kernel_lib', "
            "'tornado', 'jupyter_server', 'traitlets')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(["jupyter_ext", "jupyter_ext._version", "jupyter_ext.contract",
                                    "jupyter_ext.launcher", "jupyter_ext.launcher.payload"])
