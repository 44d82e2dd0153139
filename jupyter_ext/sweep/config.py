"""The body of POST /sweeps, checked: what to run (a run request, as POST /runs takes it), the
parameter space, the sampling, the early termination policy, the primary metric and the limits."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import InvalidRequest
from .policies import Goal, Policy, parse_policy
from .sampler import check_sampling
from .space import Param, parse_space

MAX_TOTAL_RUNS = 10_000
FIELDS = {"experiment", "run", "parameter_space", "sampling", "seed", "policy", "primary_metric_name",
          "primary_metric_goal", "max_total_runs", "max_concurrent_runs", "max_duration_minutes", "tags"}


@dataclass
class SweepConfig:
    experiment: str
    run: dict  # the children's run request, less 'experiment' (POST /runs' body)
    parameter_space: dict
    primary_metric_name: str
    primary_metric_goal: str  # "maximize" | "minimize"
    max_total_runs: int
    sampling: str = "random"
    seed: int | None = None
    policy: dict | None = None
    max_concurrent_runs: int | None = None
    max_duration_minutes: float | None = None
    tags: dict = field(default_factory=dict)
    params: list[Param] = field(default_factory=list, repr=False)
    stop_policy: Policy | None = field(default=None, repr=False)

    @property
    def goal(self) -> Goal:
        return Goal(self.primary_metric_name, self.primary_metric_goal == "maximize")

    @property
    def concurrent(self) -> int:
        return min(self.max_concurrent_runs or self.max_total_runs, self.max_total_runs)

    def describe(self) -> str:
        policy = self.stop_policy.name if self.stop_policy else "NoTerminationPolicy"
        at_once = f", {self.concurrent} at once" if self.concurrent < self.max_total_runs else ""
        return (f"{self.sampling} sampling of {len(self.params)} hyperparameter(s), at most "
                f"{self.max_total_runs} runs{at_once}, {self.primary_metric_goal} "
                f"{self.primary_metric_name}, {policy}")

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("params"), d.pop("stop_policy")
        return d

    @classmethod
    def from_json(cls, body) -> "SweepConfig":
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object describing the sweep.")
        unknown = set(body) - FIELDS
        if unknown:
            raise InvalidRequest(f"Unknown field(s) {sorted(unknown)}; allowed: {sorted(FIELDS)}.")
        run = body.get("run")
        if not isinstance(run, dict):
            raise InvalidRequest("'run' is required: the run request each child is made from "
                                 "(script, source_directory, arguments, compute_target, ...).")
        if "experiment" in run:
            raise InvalidRequest("Give the experiment once, at the top of the sweep, not in 'run'.")
        name = body.get("primary_metric_name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest("'primary_metric_name' is required: the metric the script logs "
                                 "that the sweep compares, e.g. 'best_val_acc'.")
        goal = str(body.get("primary_metric_goal", "")).lower()
        if goal not in ("maximize", "minimize"):
            raise InvalidRequest("'primary_metric_goal' must be 'maximize' or 'minimize' "
                                 "(PrimaryMetricGoal.MAXIMIZE / MINIMIZE).")
        total = body.get("max_total_runs")
        if not _whole(total) or not 1 <= total <= MAX_TOTAL_RUNS:
            raise InvalidRequest(f"'max_total_runs' is required: a whole number from 1 to {MAX_TOTAL_RUNS}.")
        concurrent = body.get("max_concurrent_runs")
        if concurrent is not None and (not _whole(concurrent) or concurrent < 1):
            raise InvalidRequest("'max_concurrent_runs' must be a whole number >= 1 (or left out: "
                                 "as many at once as the compute target's queue takes).")
        minutes = body.get("max_duration_minutes")
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                    or not math.isfinite(minutes) or minutes <= 0):
            raise InvalidRequest("'max_duration_minutes' must be a number of minutes > 0.")
        seed = body.get("seed")
        if seed is not None and (not _whole(seed) or not 0 <= seed < 2**32):
            raise InvalidRequest("'seed' must be a whole number from 0 to 2**32 - 1.")
        tags = body.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
            raise InvalidRequest("'tags' must be an object of string keys.")
        params = parse_space(body.get("parameter_space"))
        sampling = body.get("sampling", "random")
        check_sampling(sampling, params)
        policy = parse_policy(body.get("policy"))
        if not isinstance(body.get("experiment"), str) or not body["experiment"]:
            raise InvalidRequest("'experiment' is required and must be a non-empty string.")
        return cls(experiment=body["experiment"], run=run, parameter_space=body["parameter_space"],
                   primary_metric_name=name, primary_metric_goal=goal, max_total_runs=total,
                   sampling=sampling, seed=seed, policy=body.get("policy"),
                   max_concurrent_runs=concurrent, max_duration_minutes=minutes,
                   tags={k: str(v) for k, v in tags.items()}, params=params, stop_policy=policy)


def _whole(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
