"""Hyperparameter sweeps with early termination: the names of ``azureml.train.hyperdrive``.

    from kernel_lib.hyperdrive import (HyperDriveConfig, RandomParameterSampling, BanditPolicy,
                                       PrimaryMetricGoal, uniform, choice)
    ps = RandomParameterSampling({"--lr": uniform(0.0005, 0.005), "--momentum": uniform(0.9, 0.99)})
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=ps,
                          policy=BanditPolicy(slack_factor=0.15, evaluation_interval=1, delay_evaluation=10),
                          primary_metric_name="best_val_acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=8, max_concurrent_runs=4)
    hd_run = Experiment(ws, "birds-hd").submit(hd)

The sweep runs on the server (sampling with Optuna, policies evaluated as metrics arrive), so it
goes on through a kernel restart; ``HyperDriveRun(experiment, run_id)`` finds it again. The
README's "Hyperparameter sweeps" section gives each expression's and policy's semantics.
"""

from __future__ import annotations

import math
from enum import Enum

from jupyter_ext import contract

from . import args
from .run import Run
from .run_config import ScriptRunConfig

__all__ = ["choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal",
           "qnormal", "lognormal", "qlognormal", "RandomParameterSampling", "GridParameterSampling",
           "BayesianParameterSampling", "BanditPolicy", "MedianStoppingPolicy",
           "TruncationSelectionPolicy", "NoTerminationPolicy", "PrimaryMetricGoal",
           "HyperDriveConfig", "HyperDriveRun"]


# -- parameter expressions (the wire form is Azure ML's: [name, [arguments]]) -----------------
def _numbers(fn: str, *values) -> list:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise args.ArgumentTypeError(f"{fn}() takes finite numbers, not {v!r}.")
    return list(values)


def choice(*options) -> list:
    """One of ``options``: ``choice(16, 32, 64)``, ``choice([16, 32, 64])`` or ``choice(range(1, 4))``."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    if not options:
        raise args.ArgumentError("choice() needs at least one option, e.g. choice(16, 32, 64).")
    return ["choice", [list(options)]]


def randint(upper: int) -> list:
    """An integer in [0, upper)."""
    if not isinstance(upper, int) or isinstance(upper, bool) or upper < 1:
        raise args.ArgumentError(f"randint(upper) takes a whole number >= 1, not {upper!r}.")
    return ["randint", [upper]]


def uniform(min_value, max_value) -> list:
    return ["uniform", _numbers("uniform", min_value, max_value)]


def quniform(min_value, max_value, q) -> list:
    """round(uniform(min_value, max_value) / q) * q."""
    return ["quniform", _numbers("quniform", min_value, max_value, q)]


def loguniform(min_value, max_value) -> list:
    """exp(uniform(min_value, max_value)): the bounds are natural-log exponents."""
    return ["loguniform", _numbers("loguniform", min_value, max_value)]


def qloguniform(min_value, max_value, q) -> list:
    return ["qloguniform", _numbers("qloguniform", min_value, max_value, q)]


def normal(mu, sigma) -> list:
    return ["normal", _numbers("normal", mu, sigma)]


def qnormal(mu, sigma, q) -> list:
    return ["qnormal", _numbers("qnormal", mu, sigma, q)]


def lognormal(mu, sigma) -> list:
    return ["lognormal", _numbers("lognormal", mu, sigma)]


def qlognormal(mu, sigma, q) -> list:
    return ["qlognormal", _numbers("qlognormal", mu, sigma, q)]


# -- sampling ------------------------------------------------------------------------------
class _Sampling:
    kind = "random"

    def __init__(self, parameter_space: dict, seed: int | None = None):
        if not isinstance(parameter_space, dict) or not parameter_space:
            raise args.ArgumentTypeError(
                "parameter_space must be a dict of argument name -> expression, e.g. "
                "{'--lr': uniform(0.0005, 0.005)}.")
        if seed is not None:
            args.whole_number("seed", seed, 0, 2**32 - 1)
        self.parameter_space = dict(parameter_space)
        self.seed = seed

    def __repr__(self):
        return f"{type(self).__name__}({self.parameter_space!r})"


class RandomParameterSampling(_Sampling):
    """Each child's values drawn at random (Optuna's RandomSampler); ``seed`` makes it repeatable."""
    kind = "random"

    def __init__(self, parameter_space: dict, properties: dict | None = None, seed: int | None = None):
        super().__init__(parameter_space, seed if seed is not None else (properties or {}).get("seed"))


class GridParameterSampling(_Sampling):
    """Every combination of the choice() values, once (Optuna's GridSampler)."""
    kind = "grid"


class BayesianParameterSampling(_Sampling):
    """Each child's values chosen from how the earlier children did (Optuna's TPE sampler)."""
    kind = "bayesian"


# -- early termination policies ----------------------------------------------------------------
class _Policy:
    name = "NoTerminationPolicy"

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0):
        self.evaluation_interval = args.whole_number("evaluation_interval", evaluation_interval, 1)
        self.delay_evaluation = args.whole_number("delay_evaluation", delay_evaluation, 0)

    def to_request(self) -> dict:
        return {"name": self.name, "evaluation_interval": self.evaluation_interval,
                "delay_evaluation": self.delay_evaluation}

    def __repr__(self):
        return f"{type(self).__name__}({self.to_request()})"


class NoTerminationPolicy(_Policy):
    name = "NoTerminationPolicy"

    def __init__(self):
        super().__init__()

    def to_request(self) -> dict:
        return {"name": self.name}


class BanditPolicy(_Policy):
    """Stop a child whose metric falls outside the slack of the best child's at the same interval."""
    name = "BanditPolicy"

    def __init__(self, evaluation_interval: int = 1, slack_factor: float | None = None,
                 slack_amount: float | None = None, delay_evaluation: int = 0):
        super().__init__(evaluation_interval, delay_evaluation)
        if (slack_factor is None) == (slack_amount is None):
            raise args.ArgumentError("BanditPolicy takes one of slack_factor or slack_amount.")
        self.slack_factor, self.slack_amount = slack_factor, slack_amount

    def to_request(self) -> dict:
        slack = {"slack_factor": self.slack_factor} if self.slack_amount is None else \
            {"slack_amount": self.slack_amount}
        return {**super().to_request(), **slack}


class MedianStoppingPolicy(_Policy):
    """Stop a child whose best metric is worse than the median of the others' running averages."""
    name = "MedianStoppingPolicy"


class TruncationSelectionPolicy(_Policy):
    """Stop the lowest ``truncation_percentage`` percent of the children at each interval."""
    name = "TruncationSelectionPolicy"

    def __init__(self, truncation_percentage: int, evaluation_interval: int = 1,
                 delay_evaluation: int = 0, exclude_finished_jobs: bool = False):
        super().__init__(evaluation_interval, delay_evaluation)
        self.truncation_percentage = args.whole_number("truncation_percentage", truncation_percentage, 1, 99)
        self.exclude_finished_jobs = bool(exclude_finished_jobs)

    def to_request(self) -> dict:
        return {**super().to_request(), "truncation_percentage": self.truncation_percentage,
                "exclude_finished_jobs": self.exclude_finished_jobs}


class PrimaryMetricGoal(str, Enum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


# -- the sweep ------------------------------------------------------------------------------
class HyperDriveConfig:
    def __init__(self, run_config: ScriptRunConfig, hyperparameter_sampling: _Sampling,
                 primary_metric_name: str, primary_metric_goal, max_total_runs: int,
                 max_concurrent_runs: int | None = None, max_duration_minutes: float | None = None,
                 policy: _Policy | None = None, estimator=None):
        if estimator is not None:
            raise args.ArgumentError("Estimators are gone from Azure ML; pass run_config=ScriptRunConfig(...).")
        if not isinstance(run_config, ScriptRunConfig):
            raise args.ArgumentTypeError("run_config must be a ScriptRunConfig(source_directory=..., script=...).")
        if not isinstance(hyperparameter_sampling, _Sampling):
            raise args.ArgumentTypeError("hyperparameter_sampling must be a RandomParameterSampling, "
                                         "GridParameterSampling or BayesianParameterSampling.")
        if policy is not None and not isinstance(policy, _Policy):
            raise args.ArgumentTypeError("policy must be a BanditPolicy, MedianStoppingPolicy, "
                                         "TruncationSelectionPolicy or NoTerminationPolicy.")
        goal = primary_metric_goal.value if isinstance(primary_metric_goal, PrimaryMetricGoal) \
            else str(primary_metric_goal).upper()
        if goal not in ("MAXIMIZE", "MINIMIZE"):
            raise args.ArgumentError("primary_metric_goal must be PrimaryMetricGoal.MAXIMIZE or MINIMIZE.")
        self.run_config = run_config
        self.sampling = hyperparameter_sampling
        self.primary_metric_name = args.text("primary_metric_name", primary_metric_name)
        self.primary_metric_goal = goal
        self.max_total_runs = args.whole_number("max_total_runs", max_total_runs, 1, 10_000)
        self.max_concurrent_runs = None if max_concurrent_runs is None else \
            args.whole_number("max_concurrent_runs", max_concurrent_runs, 1)
        if max_duration_minutes is not None and (isinstance(max_duration_minutes, bool) or not isinstance(
                max_duration_minutes, (int, float)) or not max_duration_minutes > 0):
            raise args.ArgumentError("max_duration_minutes must be a number of minutes > 0.")
        self.max_duration_minutes = max_duration_minutes
        self.policy = policy

    def to_request(self, experiment: str, tags: dict | None) -> dict:
        run = self.run_config.to_request(experiment, None)
        run.pop("experiment")
        return {"experiment": experiment, "run": run,
                "parameter_space": self.sampling.parameter_space, "sampling": self.sampling.kind,
                "seed": self.sampling.seed,
                "policy": self.policy.to_request() if self.policy is not None else None,
                "primary_metric_name": self.primary_metric_name,
                "primary_metric_goal": self.primary_metric_goal.lower(),
                "max_total_runs": self.max_total_runs, "max_concurrent_runs": self.max_concurrent_runs,
                "max_duration_minutes": self.max_duration_minutes,
                "tags": {str(k): str(v) for k, v in (tags or {}).items()}}


class HyperDriveRun(Run):
    """A sweep's parent run: its children, the best of them, cancel (children too)."""

    @property
    def _sweep(self) -> dict:
        return self._data["properties"]["sweep"]

    @property
    def primary_metric_name(self) -> str:
        return self._sweep["primary_metric_name"]

    @property
    def _maximize(self) -> bool:
        return self._sweep["primary_metric_goal"] == "maximize"

    def get_children(self) -> list[Run]:
        """Every child, newest first (Azure ML's order)."""
        runs = self.workspace.client.get("/runs", parent=self.id, limit=10_000)["runs"]
        return [Run._from_data(self.workspace, r) for r in runs]

    def get_hyperparameters(self) -> dict:
        """{child run id: {argument: value}}."""
        return {r.id: r._data["properties"].get("hyperparameters", {}) for r in self.get_children()}

    def get_metrics(self, name: str | None = None) -> dict:
        """{child run id: that child's get_metrics()}."""
        return {r.id: r.get_metrics(name) for r in self.get_children()}

    def get_children_sorted_by_primary_metric(self, top: int = 0, reverse: bool = False,
                                              discard_no_metric: bool = False) -> list[dict]:
        """Children best first by the best value of the primary metric each logged (``reverse``:
        worst first); those without it last, or left out with ``discard_no_metric``. Each as
        {run_id, hyperparameters, best_primary_metric, status}, as Azure ML gives them."""
        rows = [{"run_id": r.id, "hyperparameters": r._data["properties"].get("hyperparameters", {}),
                 "best_primary_metric": r._data.get("best_primary_metric"), "status": r.status}
                for r in self.get_children()]
        have = [x for x in rows if x["best_primary_metric"] is not None]
        have.sort(key=lambda x: x["best_primary_metric"], reverse=self._maximize != reverse)
        rows = have + ([] if discard_no_metric else [x for x in rows if x["best_primary_metric"] is None])
        return rows[:top] if top else rows

    def get_best_run_by_primary_metric(self, include_failed: bool = True,
                                       include_canceled: bool = True) -> Run | None:
        """The child with the best primary metric (None while no child has logged it)."""
        skip = set() if include_failed else {contract.FAILED}
        skip |= set() if include_canceled else {contract.CANCELED}
        for row in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if row["status"] not in skip:
                return Run._from_data(self.workspace, self.workspace.client.get(f"/runs/{row['run_id']}"))
        return None

    def get_summary(self) -> dict:
        """{counts: {status: n}, best: {run_id, value, hyperparameters} | None, children: n}."""
        return self.refresh()._data.get("sweep", {})

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True) -> dict:
        details = super().wait_for_completion(show_output, wait_post_processing, raise_on_error)
        if show_output:
            for row in self.get_children_sorted_by_primary_metric():
                print(f"  {row['run_id']}  {row['status']:<9}  {self.primary_metric_name}="
                      f"{row['best_primary_metric']}  {row['hyperparameters']}", flush=True)
        return details


# -- text forms, for %%train --sweep / --policy / --primary ----------------------------------
EXPRESSIONS = {f.__name__: f for f in (choice, randint, uniform, quniform, loguniform, qloguniform,
                                       normal, qnormal, lognormal, qlognormal)}


def parse_expression(text: str) -> list:
    """``"loguniform(-6, -1)"`` -> the expression; only these calls with literal arguments
    (numbers, strings, lists), never evaluated as code."""
    import ast

    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in EXPRESSIONS and not node.keywords):
        raise args.ArgumentError(f"{text!r} is not a parameter expression: write e.g. "
                                 f"uniform(0.0005, 0.005) or choice(16, 32); one of {', '.join(EXPRESSIONS)}.")
    try:
        values = [ast.literal_eval(a) for a in node.args]
    except ValueError:
        raise args.ArgumentError(f"{text!r}: the arguments must be numbers, strings or lists.") from None
    return EXPRESSIONS[node.func.id](*values)


def parse_sweep_option(text: str) -> tuple[str, list]:
    """``"--lr=loguniform(-6,-1)"`` -> ("--lr", the expression)."""
    name, sep, expr = text.partition("=")
    if not sep or not name.strip():
        raise args.ArgumentError(f"--sweep {text!r}: write NAME=EXPRESSION, e.g. \"--lr=loguniform(-6,-1)\".")
    return name.strip(), parse_expression(expr)


def parse_policy(text: str, evaluation_interval: int = 1, delay_evaluation: int = 0) -> _Policy:
    """``bandit:0.15`` (slack factor), ``bandit-amount:0.2``, ``median``, ``truncation:20``, ``none``."""
    kind, _, value = text.partition(":")
    kind = kind.strip().lower()
    common = dict(evaluation_interval=evaluation_interval, delay_evaluation=delay_evaluation)
    number = None
    try:
        number = int(value) if kind == "truncation" else float(value) if value else None
    except ValueError:
        kind = "?"
    if kind == "none" and number is None:
        return NoTerminationPolicy()
    if kind == "median" and number is None:
        return MedianStoppingPolicy(**common)
    if kind == "bandit" and number is not None:
        return BanditPolicy(slack_factor=number, **common)
    if kind == "bandit-amount" and number is not None:
        return BanditPolicy(slack_amount=number, **common)
    if kind == "truncation" and number is not None:
        return TruncationSelectionPolicy(number, **common)
    raise args.ArgumentError(f"--policy {text!r}: write bandit:SLACK_FACTOR, bandit-amount:SLACK, "
                             "median, truncation:PERCENT or none.")


def parse_primary(text: str) -> tuple[str, PrimaryMetricGoal]:
    """``val_acc:max`` -> ("val_acc", MAXIMIZE); ``loss:min``."""
    name, _, goal = text.rpartition(":")
    goals = {"max": PrimaryMetricGoal.MAXIMIZE, "maximize": PrimaryMetricGoal.MAXIMIZE,
             "min": PrimaryMetricGoal.MINIMIZE, "minimize": PrimaryMetricGoal.MINIMIZE}
    if not name or goal.lower() not in goals:
        raise args.ArgumentError(f"--primary {text!r}: write METRIC:max or METRIC:min, e.g. val_acc:max.")
    return name, goals[goal.lower()]
