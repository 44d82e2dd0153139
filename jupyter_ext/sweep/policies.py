"""Early termination policies, as Azure ML HyperDrive documents them, over the primary metric
that each child logged.

An *interval* is one report of the primary metric: the n-th time a child logs it (rank 0) is its
interval n. A policy is applied at interval n when n is a multiple of ``evaluation_interval``
and n >= ``delay_evaluation`` (Azure ML: "the policy applies every multiple of
evaluation_interval that is greater than or equal to delay_evaluation"). A child's *value at
interval n* is the best of its first n reports (max or min, by the goal), and a policy compares
it with the children that reached interval n too (finished ones included):

- BanditPolicy: stopped when its value is outside the slack of the best value at interval n:
  maximize: value < best / (1 + slack_factor), or value < best - slack_amount;
  minimize: value > best * (1 + slack_factor), or value > best + slack_amount.
- MedianStoppingPolicy: stopped when its value is worse than the median of the other children's
  running averages (the mean of their first n reports); needs one other child at interval n.
- TruncationSelectionPolicy: stopped when its value is among the worst
  floor(k * truncation_percentage / 100) of the k children at interval n (the finished children
  left out with exclude_finished_jobs); ties go against the later child.
- NoTerminationPolicy: never stops a child.

A policy is pure: ``decide`` is given every child's reports and says why a child stops, or None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

from ..errors import InvalidRequest


@dataclass(frozen=True)
class Goal:
    metric: str
    maximize: bool

    def best(self, values) -> float:
        return max(values) if self.maximize else min(values)

    def worse(self, a: float, b: float) -> bool:
        """``a`` is worse than ``b``."""
        return a < b if self.maximize else a > b


@dataclass
class Policy:
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    name = "NoTerminationPolicy"

    def applies_at(self, n: int) -> bool:
        return n % self.evaluation_interval == 0 and n >= self.delay_evaluation

    def decide(self, child: str, reports: dict[str, list[float]], finished: set[str],
               goal: Goal, n: int) -> str | None:
        """Why ``child`` stops at its interval ``n``, or None. ``reports``: every child's primary
        metric values in order; ``finished``: the children that have ended."""
        return None

    def _at(self, reports, goal, n, children=None):
        """{child: value at interval n} of the children that reached it."""
        return {c: goal.best(v[:n]) for c, v in reports.items()
                if len(v) >= n and (children is None or c in children)}


class NoTerminationPolicy(Policy):
    name = "NoTerminationPolicy"


@dataclass
class BanditPolicy(Policy):
    slack_factor: float | None = None
    slack_amount: float | None = None
    name = "BanditPolicy"

    def decide(self, child, reports, finished, goal, n):
        at = self._at(reports, goal, n)
        value, best = at[child], goal.best(at.values())
        if self.slack_factor is not None:
            bound = best / (1 + self.slack_factor) if goal.maximize else best * (1 + self.slack_factor)
            how = f"{_g(best)} / {_g(1 + self.slack_factor)}" if goal.maximize else \
                f"{_g(best)} * {_g(1 + self.slack_factor)}"
        else:
            bound = best - self.slack_amount if goal.maximize else best + self.slack_amount
            how = f"{_g(best)} {'-' if goal.maximize else '+'} {_g(self.slack_amount)}"
        if goal.worse(value, bound):
            side = "below" if goal.maximize else "above"
            return (f"{self.name}: {goal.metric} {_g(value)} at interval {n} is {side} {how} "
                    f"(the best at interval {n} is {_g(best)})")
        return None


class MedianStoppingPolicy(Policy):
    name = "MedianStoppingPolicy"

    def decide(self, child, reports, finished, goal, n):
        value = goal.best(reports[child][:n])
        averages = [sum(v[:n]) / n for c, v in reports.items() if c != child and len(v) >= n]
        if not averages:
            return None
        mid = median(averages)
        if goal.worse(value, mid):
            return (f"{self.name}: {goal.metric} {_g(value)} at interval {n} is worse than "
                    f"{_g(mid)}, the median of {len(averages)} other runs' running averages")
        return None


@dataclass
class TruncationSelectionPolicy(Policy):
    truncation_percentage: int = 0
    exclude_finished_jobs: bool = False
    name = "TruncationSelectionPolicy"

    def decide(self, child, reports, finished, goal, n):
        pool = None
        if self.exclude_finished_jobs:
            pool = {c for c in reports if c not in finished} | {child}
        at = self._at(reports, goal, n, pool)
        cut = math.floor(len(at) * self.truncation_percentage / 100)
        if cut < 1:
            return None
        order = list(at)  # children in the order they started: a tie goes against the later one
        ranked = sorted(order, key=lambda c: (at[c] if goal.maximize else -at[c], -order.index(c)))
        if child in ranked[:cut]:
            return (f"{self.name}: {goal.metric} {_g(at[child])} at interval {n} is in the lowest "
                    f"{self.truncation_percentage}% of the {len(at)} runs at that interval")
        return None


def _g(x: float) -> str:
    return f"{x:.6g}"


def _whole(body: dict, key: str, default: int, low: int, high: int | None = None) -> int:
    v = body.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < low or (high is not None and v > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidRequest(f"policy.{key} must be a whole number {bound}, got {v!r}.")
    return v


POLICIES = {"BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy", "NoTerminationPolicy"}


def parse_policy(body) -> Policy:
    """``{"name": "BanditPolicy", "slack_factor": 0.15, "evaluation_interval": 1, ...}`` -> Policy."""
    if body is None:
        return NoTerminationPolicy()
    if not isinstance(body, dict) or body.get("name") not in POLICIES:
        raise InvalidRequest(f"policy must be one of {sorted(POLICIES)} (an object with 'name'), "
                             f"got {body!r}.")
    name = body["name"]
    allowed = {"name", "evaluation_interval", "delay_evaluation"} | {
        "BanditPolicy": {"slack_factor", "slack_amount"},
        "TruncationSelectionPolicy": {"truncation_percentage", "exclude_finished_jobs"}}.get(name, set())
    unknown = set(body) - allowed
    if unknown:
        raise InvalidRequest(f"{name} takes {sorted(allowed - {'name'})}; not {sorted(unknown)}.")
    common = dict(evaluation_interval=_whole(body, "evaluation_interval", 1, 1),
                  delay_evaluation=_whole(body, "delay_evaluation", 0, 0))
    if name == "NoTerminationPolicy":
        return NoTerminationPolicy()
    if name == "MedianStoppingPolicy":
        return MedianStoppingPolicy(**common)
    if name == "TruncationSelectionPolicy":
        if not isinstance(body.get("exclude_finished_jobs", False), bool):
            raise InvalidRequest("policy.exclude_finished_jobs must be true or false.")
        return TruncationSelectionPolicy(
            **common, truncation_percentage=_whole(body, "truncation_percentage", 0, 1, 99),
            exclude_finished_jobs=body.get("exclude_finished_jobs", False))
    factor, amount = body.get("slack_factor"), body.get("slack_amount")
    if (factor is None) == (amount is None):
        raise InvalidRequest("BanditPolicy takes one of slack_factor (a ratio, e.g. 0.15) or "
                             "slack_amount (an absolute distance), not both or neither.")
    slack = factor if amount is None else amount
    if isinstance(slack, bool) or not isinstance(slack, (int, float)) or not math.isfinite(slack) or slack < 0:
        raise InvalidRequest(f"BanditPolicy slack must be a number >= 0, got {slack!r}.")
    return BanditPolicy(**common, slack_factor=factor, slack_amount=amount)
