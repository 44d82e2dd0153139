"""IPython magics: ``%%train`` (the cell is the training script) and ``%train_runs``,
``%train_logs``, ``%train_status``, ``%train_cancel``. Argument parsing and delegation only."""

from __future__ import annotations

import argparse
import html
import os
import re
import shlex
import sys
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from jupyter_ext.contract import ENV_SYSTEM_METRICS_INTERVAL, TERMINAL_STATES

from .client import TrainError

TRAIN_USAGE = ("%%train [--experiment NAME] [--compute TARGET] [--environment NAME[:VERSION]] "
               "[--source DIR] [--script FILE.py] [--nodes N] [--procs-per-node N] "
               "[--backend nccl|gloo] [--mpi] [--tag KEY=VALUE ...] [--wait] [--out VAR] "
               "[--workspace DIR] [--sweep NAME=EXPR ... --max-runs N --primary METRIC:max|min "
               "[--concurrent N] [--sampling random|grid|bayesian] [--seed N] [--policy POLICY] "
               "[--delay N] [--interval N] [--max-minutes M]] [-- SCRIPT ARGS...]")


MONITOR_HELP = f"""\
The run monitor shown below the cell:
  charts     one per metric the script logs (Run.get_context().log(name, value)), a line per
             rank; smoothing, log scale, x by step or time, drag to zoom, double-click to reset.
  System     CPU, memory, disk, network and GPU of each node, every 5 s (set
             {ENV_SYSTEM_METRICS_INTERVAL} in the server's environment; 0 turns it off).
  log        rank 0's output once it starts (the failing rank's if it fails); pick another.
  progress   a metric `progress` in [0, 1]; or the last `epoch` (counted from 0) against a
             metric `num_epochs`/`epochs` or the argument --epochs/--num_epochs; or the last
             `step` against a metric `total_steps` or --max_steps/--total_steps; or the
             script's own tqdm bar in rank 0's output.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (shown without a traceback) instead of exiting."""

    def error(self, message):
        raise UsageError(f"{message}\nusage: {self.usage}")

    def exit(self, status=0, message=None):
        raise UsageError(message or self.format_help())


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return n


def _tag(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--tag {value!r}: write KEY=VALUE")
    return key, val


def _environment(value: str) -> str:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[0-9]+)?$", value):
        raise argparse.ArgumentTypeError(f"--environment {value!r}: write NAME or NAME:VERSION")
    return value


def train_parser() -> _Parser:
    p = _Parser(prog="%%train", usage=TRAIN_USAGE, add_help=True,
                description="Run the cell as a training script on a compute target.",
                epilog=MONITOR_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default=None, help="experiment name (default: the notebook's name)")
    p.add_argument("--compute", default="local", help="compute target (default: local)")
    p.add_argument("--environment", type=_environment, default=None)
    p.add_argument("--source", default=None,
                   help="folder shipped beside the cell (default: none, only the cell)")
    p.add_argument("--script", default="train_cell.py", help="file name the cell is saved as")
    p.add_argument("--nodes", type=_positive, default=1)
    p.add_argument("--procs-per-node", type=_positive, default=1)
    p.add_argument("--backend", choices=("nccl", "gloo"), default=None)
    p.add_argument("--mpi", action="store_true")
    p.add_argument("--tag", type=_tag, action="append", default=[])
    p.add_argument("--wait", action="store_true", help="block until done, streaming output")
    p.add_argument("--out", default=None, help="bind the Run to this variable")
    p.add_argument("--workspace", default=None, help="workspace directory (default: the default one)")
    s = p.add_argument_group("sweep", "run the cell as a hyperparameter sweep (HyperDrive)")
    s.add_argument("--sweep", action="append", default=[], metavar="NAME=EXPR",
                   help='a hyperparameter, e.g. "--lr=loguniform(-6,-1)" (repeat for more)')
    s.add_argument("--max-runs", type=_positive, default=None, help="max_total_runs")
    s.add_argument("--concurrent", type=_positive, default=None, help="max_concurrent_runs")
    s.add_argument("--primary", default=None, metavar="METRIC:max|min", help="the metric to compare")
    s.add_argument("--sampling", choices=("random", "grid", "bayesian"), default="random")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--policy", default="none",
                   help="bandit:SLACK_FACTOR, bandit-amount:SLACK, median, truncation:PERCENT or none")
    s.add_argument("--delay", type=int, default=0, help="the policy's delay_evaluation")
    s.add_argument("--interval", type=_positive, default=1, help="the policy's evaluation_interval")
    s.add_argument("--max-minutes", type=float, default=None, help="max_duration_minutes")
    return p


def sweep_config(args, config):
    """The HyperDriveConfig of ``%%train --sweep ...``, or None without --sweep."""
    from . import hyperdrive as hd

    sweep_only = [f"--{k.replace('_', '-')}" for k in ("max_runs", "concurrent", "primary", "seed", "max_minutes")
                  if getattr(args, k) is not None]
    if not args.sweep:
        if sweep_only:
            raise UsageError(f"{', '.join(sweep_only)} need at least one --sweep NAME=EXPR.")
        return None
    if args.max_runs is None or args.primary is None:
        raise UsageError("A sweep needs --max-runs N and --primary METRIC:max|min, e.g. "
                         '--sweep "--lr=loguniform(-6,-1)" --max-runs 8 --primary val_acc:max')
    space = dict(hd.parse_sweep_option(t) for t in args.sweep)
    sampling = {"random": hd.RandomParameterSampling, "grid": hd.GridParameterSampling,
                "bayesian": hd.BayesianParameterSampling}[args.sampling]
    metric, goal = hd.parse_primary(args.primary)
    return hd.HyperDriveConfig(
        run_config=config, hyperparameter_sampling=sampling(space, seed=args.seed),
        policy=hd.parse_policy(args.policy, args.interval, args.delay), primary_metric_name=metric,
        primary_metric_goal=goal, max_total_runs=args.max_runs, max_concurrent_runs=args.concurrent,
        max_duration_minutes=args.max_minutes)


def split_line(line: str) -> tuple[list[str], list[str]]:
    """Magic options and, after ``--``, the script's arguments."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"Cannot parse the options: {exc}\nusage: {TRAIN_USAGE}") from None
    if "--" in words:
        i = words.index("--")
        return words[:i], words[i + 1:]
    return words, []


def _joined(option: str, words: list[str]) -> list[str]:
    """``--sweep --lr=...`` as ``--sweep=--lr=...``: argparse takes a value that starts with '-'
    for an option of its own."""
    out, i = [], 0
    while i < len(words):
        if words[i] == option and i + 1 < len(words):
            out.append(f"{option}={words[i + 1]}")
            i += 2
        else:
            out.append(words[i])
            i += 1
    return out


def default_experiment() -> str:
    """The notebook's file name (ipykernel sets JPY_SESSION_NAME), else 'notebook'."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    stem = os.path.splitext(os.path.basename(session))[0] if session else ""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")
    return stem or "notebook"


@magics_class
class TrainMagics(Magics):
    def _workspace(self, path=None):
        from .workspace import Workspace

        return Workspace(path) if path else Workspace.default()

    @cell_magic("train")
    def train(self, line, cell):
        opts, script_args = split_line(line)
        args = train_parser().parse_args(_joined("--sweep", opts))
        if not args.out is None and not args.out.isidentifier():
            raise UsageError(f"--out {args.out!r} is not a valid variable name")
        if not args.script.endswith(".py") or "/" in args.script:
            raise UsageError(f"--script {args.script!r}: give a file name ending in .py")
        try:
            compile(cell, args.script, "exec")
        except SyntaxError as exc:
            where = f"line {exc.lineno}" if exc.lineno else "the cell"
            text = f"\n    {exc.text.rstrip()}" if exc.text else ""
            raise UsageError(f"SyntaxError at {where} of the cell: {exc.msg}{text}\n"
                             "Nothing was submitted.") from None
        if args.source and not os.path.isdir(os.path.expanduser(args.source)):
            raise UsageError(f"--source {args.source!r} is not a folder.")
        from .experiment import Experiment
        from .run_config import ScriptRunConfig

        try:
            ws = self._workspace(args.workspace)
            env = None
            if args.environment:
                from .environment import Environment

                name, _, version = args.environment.partition(":")
                env = Environment.get(ws, name, int(version) if version else None)
            config = ScriptRunConfig(source_directory=args.source, script=args.script,
                                     arguments=script_args, compute_target=args.compute,
                                     extra_files={args.script: cell}, environment=env,
                                     distributed=_distributed(args))
            config = sweep_config(args, config) or config
            run = Experiment(ws, args.experiment or default_experiment()).submit(
                config, tags=dict(args.tag))
        except TrainError as exc:
            raise UsageError(exc.message) from None
        if args.out:
            self.shell.user_ns[args.out] = run
        if args.wait:
            try:
                run.wait_for_completion(show_output=True, raise_on_error=False)
            except KeyboardInterrupt:
                print(f"\nStopped waiting; the run goes on. Cancel it with %train_cancel {run.id}")
        return run

    @line_magic("train_runs")
    def train_runs(self, line):
        """%train_runs [EXPERIMENT] [--limit N]: a table of recent runs."""
        p = _Parser(prog="%train_runs", usage="%train_runs [EXPERIMENT] [--limit N] [--workspace DIR]")
        p.add_argument("experiment", nargs="?")
        p.add_argument("--limit", type=_positive, default=20)
        p.add_argument("--workspace", default=None)
        a = p.parse_args(shlex.split(line))
        runs = self._call(lambda: self._workspace(a.workspace).client.get(
            "/runs", experiment=a.experiment, limit=a.limit)["runs"])
        return RunTable(runs)

    @line_magic("train_logs")
    def train_logs(self, line):
        """%train_logs RUN_ID [--rank N] [--follow]"""
        p = _Parser(prog="%train_logs", usage="%train_logs RUN_ID [--rank N] [--follow] [--workspace DIR]")
        p.add_argument("run_id")
        p.add_argument("--rank", type=int, default=0)
        p.add_argument("--follow", action="store_true")
        p.add_argument("--workspace", default=None)
        a = p.parse_args(shlex.split(line))
        ws = self._workspace(a.workspace)
        run = self._call(lambda: ws.get_run(a.run_id))
        name = f"rank_{a.rank}.txt"
        if not a.follow:
            sys.stdout.write(self._call(lambda: run.get_log(name)))
            return None
        try:
            for msg in ws.client.stream(run.id, metrics=False):  # log lines only
                if msg["type"] == "log" and msg["name"] == name:
                    sys.stdout.write(msg["text"])
                    sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        return None

    @line_magic("train_status")
    def train_status(self, line):
        """%train_status RUN_ID"""
        a = self._run_arg("%train_status", line)
        run = self._call(lambda: self._workspace(a.workspace).get_run(a.run_id))
        print(status_text(run.get_details()))

    @line_magic("train_cancel")
    def train_cancel(self, line):
        """%train_cancel RUN_ID"""
        a = self._run_arg("%train_cancel", line)
        run = self._call(lambda: self._workspace(a.workspace).get_run(a.run_id))
        self._call(run.cancel)
        deadline = time.monotonic() + 10
        while run.get_status() not in TERMINAL_STATES and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"{run.id}: {run.status}")

    def _run_arg(self, prog, line):
        p = _Parser(prog=prog, usage=f"{prog} RUN_ID [--workspace DIR]")
        p.add_argument("run_id")
        p.add_argument("--workspace", default=None)
        return p.parse_args(shlex.split(line))

    @staticmethod
    def _call(fn):
        try:
            return fn()
        except TrainError as exc:
            raise UsageError(exc.message) from None


def _distributed(args) -> dict | None:
    if args.nodes == 1 and args.procs_per_node == 1 and not args.mpi and args.backend is None:
        return None
    return {"kind": "mpi" if args.mpi else "pytorch", "nodes": args.nodes,
            "procs_per_node": args.procs_per_node, "backend": args.backend}


def status_text(d: dict) -> str:
    lines = [f"{d['id']}  {d['status']}  (experiment {d['experiment']})"]
    phases = d.get("phases", [])
    for i, p in enumerate(phases):
        end = phases[i + 1]["ts"] if i + 1 < len(phases) else (d.get("ended_at") or time.time())
        lines.append(f"  {p['state']:<16} {max(0.0, end - p['ts']):7.1f} s  {p.get('message', '')}".rstrip())
    if d.get("error"):
        lines.append(f"Error: {d['error']}")
    return "\n".join(lines)


class RunTable:
    """Recent runs as an HTML table in a notebook, plain text elsewhere."""

    COLUMNS = ("id", "experiment", "status", "created", "duration")

    def __init__(self, runs: list[dict]):
        self.runs = runs

    def rows(self):
        for r in self.runs:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"]))
            end = r.get("ended_at") or time.time()
            yield (r["id"], r["experiment"], r["status"], created, f"{end - r['created_at']:.1f} s")

    def __repr__(self):
        rows = [self.COLUMNS, *self.rows()]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(self.COLUMNS))]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows) \
            if self.runs else "No runs yet."

    def _repr_html_(self):
        head = "".join(f"<th>{c}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                       for row in self.rows())
        return f"<table class='jupyter-train-runs'><tr>{head}</tr>{body}</table>"
