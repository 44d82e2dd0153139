"""The pure half of sweeps: parameter expressions, samplers (Optuna's) and policies, against
their written semantics (README "Hyperparameter sweeps"), without a server."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from jupyter_ext.errors import InvalidRequest
from jupyter_ext.sweep.config import SweepConfig
from jupyter_ext.sweep.policies import (BanditPolicy, Goal, MedianStoppingPolicy, NoTerminationPolicy,
                                        TruncationSelectionPolicy, parse_policy)
from jupyter_ext.sweep.sampler import Exhausted, Sampler
from jupyter_ext.sweep.space import as_arguments, parse_param, parse_space
from kernel_lib import hyperdrive as hd

MAX = Goal("acc", True)
MIN = Goal("loss", False)


# -- expressions ----------------------------------------------------------------------------
def sample(tmp_path, space, n, kind="random", seed=7, name="s"):
    sampler = Sampler(tmp_path / f"{name}.log", parse_space(space), kind, seed, True)
    out = []
    for _ in range(n):
        number, params = sampler.ask()
        out.append(params)
        sampler.tell(number, 0.0)
    return out


def test_every_expression_samples_inside_its_documented_range(tmp_path):
    space = {"c": hd.choice(16, 32, 64), "r": hd.randint(3), "u": hd.uniform(-1, 2),
             "qu": hd.quniform(0, 100, 5), "lu": hd.loguniform(-6, -1),
             "qlu": hd.qloguniform(0, 5, 10), "n": hd.normal(10, 2), "qn": hd.qnormal(10, 2, 0.5),
             "ln": hd.lognormal(0, 0.5), "qln": hd.qlognormal(2, 0.5, 3)}
    draws = sample(tmp_path, space, 300)
    col = {k: [d[k] for d in draws] for k in space}
    assert set(col["c"]) == {16, 32, 64}
    assert set(col["r"]) == {0, 1, 2}
    assert all(-1 <= v <= 2 for v in col["u"]) and max(col["u"]) - min(col["u"]) > 2.5
    assert all(v % 5 == 0 and isinstance(v, int) and 0 <= v <= 100 for v in col["qu"])
    assert all(math.exp(-6) <= v <= math.exp(-1) for v in col["lu"])
    # log-uniform: about half the draws below the geometric middle, exp(-3.5)
    assert 0.35 < sum(v < math.exp(-3.5) for v in col["lu"]) / 300 < 0.65
    assert all(v % 10 == 0 and isinstance(v, int) for v in col["qlu"])
    mean = sum(col["n"]) / 300
    sd = (sum((v - mean) ** 2 for v in col["n"]) / 299) ** 0.5
    assert abs(mean - 10) < 0.5 and 1.6 < sd < 2.4
    assert all(abs(v / 0.5 - round(v / 0.5)) < 1e-9 for v in col["qn"])
    assert all(isinstance(v, float) for v in col["qn"])
    assert all(v > 0 for v in col["ln"])
    assert 0.35 < sum(v < 1 for v in col["ln"]) / 300 < 0.65  # the median of lognormal(0, s) is 1
    assert all(v % 3 == 0 for v in col["qln"])


def test_a_normal_parameter_maps_its_quantile_through_the_inverse_cdf():
    p = parse_param("n", ["normal", [3, 2]])
    assert p.value(0.5) == pytest.approx(3)
    assert p.value(0.975) == pytest.approx(3 + 2 * NormalDist().inv_cdf(0.975))
    assert parse_param("q", ["qlognormal", [0, 1, 2]]).value(0.5) == 0  # round(e^0 / 2) * 2


@pytest.mark.parametrize("expr, says", [
    (["uniform", [5, 1]], "low < high"),
    (["choice", [[]]], "at least one option"),
    (["choice", [[1, 1]]], "repeat"),
    (["randint", [0]], "whole number upper >= 1"),
    (["normal", [0, -1]], "sigma > 0"),
    (["quniform", [0, 1, 0]], "q > 0"),
    (["loguniform", [0, 1000]], "exponents"),
    (["gaussian", [0, 1]], "is not a parameter expression"),
    (["uniform", [0]], "takes 2 argument"),
    (["uniform", [0, "1"]], "finite numbers"),
])
def test_a_bad_expression_is_refused_naming_the_parameter(expr, says):
    with pytest.raises(InvalidRequest) as err:
        parse_param("--lr", expr)
    assert "--lr" in err.value.message and says in err.value.message


def test_the_sdk_expressions_are_azure_mls_wire_form():
    assert hd.uniform(0.0005, 0.005) == ["uniform", [0.0005, 0.005]]
    assert hd.choice(16, 32) == hd.choice([16, 32]) == ["choice", [[16, 32]]]
    assert hd.choice(range(1, 3)) == ["choice", [[1, 2]]]
    with pytest.raises(hd.args.ArgumentError):
        hd.randint(0)


def test_sampled_values_become_arguments_replacing_given_ones():
    assert as_arguments(["--epochs", 3, "--lr", "1"], {"--lr": 0.25, "batch": 32}) == \
        ["--epochs", "3", "--lr", "0.25", "--batch", "32"]


# -- samplers -------------------------------------------------------------------------------
def test_random_sampling_with_a_seed_repeats_and_survives_a_reload(tmp_path):
    space = {"x": hd.uniform(0, 1), "y": hd.choice("a", "b", "c")}
    once = sample(tmp_path, space, 6, seed=11, name="a")
    again = sample(tmp_path, space, 6, seed=11, name="b")
    assert once == again
    assert sample(tmp_path, space, 6, seed=12, name="c") != once
    # a sampler reopened on the same journal (a server restart) goes on with the same values
    journal = tmp_path / "split.log"
    first = Sampler(journal, parse_space(space), "random", 11, True)
    part = [first.ask()[1] for _ in range(3)]
    second = Sampler(journal, parse_space(space), "random", 11, True)
    assert [n for n, _ in second.pending()] == [0, 1, 2]  # asked, never told
    part += [second.ask()[1] for _ in range(3)]
    assert part == once


def test_grid_sampling_gives_every_point_once_then_is_exhausted(tmp_path):
    floats = sample(tmp_path, {"x": hd.choice(0.5, 0.1, 0.45, 0.9, 0.3)}, 5, kind="grid", name="f")
    assert sorted(p["x"] for p in floats) == [0.1, 0.3, 0.45, 0.5, 0.9]
    sampler = Sampler(tmp_path / "g.log", parse_space({"a": hd.choice(1, 2, 3), "b": hd.choice("x", "y")}),
                      "grid", 5, True)
    assert sampler.grid_size == 6
    points = []
    for _ in range(6):
        number, params = sampler.ask()
        points.append((params["a"], params["b"]))
        sampler.tell(number, 1.0)
    assert sorted(points) == sorted((a, b) for a in (1, 2, 3) for b in "xy")
    assert points != sorted(points) or points != [p for p in sorted(points, reverse=True)]  # seeded order
    with pytest.raises(Exhausted):
        sampler.ask()
    with pytest.raises(InvalidRequest, match="grid sampling takes choice"):
        SweepConfig.from_json(body(parameter_space={"a": hd.uniform(0, 1)}, sampling="grid"))


def test_bayesian_sampling_is_optunas_tpe_and_moves_toward_good_values(tmp_path):
    sampler = Sampler(tmp_path / "b.log", parse_space({"x": hd.uniform(0, 1)}), "bayesian", 3, True)
    assert type(sampler._sampler(0)).__name__ == "TPESampler"
    xs = []
    for _ in range(30):
        number, params = sampler.ask()
        xs.append(params["x"])
        sampler.tell(number, -(params["x"] - 0.8) ** 2)
    early = sum(abs(x - 0.8) for x in xs[:5]) / 5
    late = sum(abs(x - 0.8) for x in xs[-10:]) / 10
    assert late < early / 2, (early, late)
    with pytest.raises(InvalidRequest, match="Bayesian sampling takes"):
        SweepConfig.from_json(body(parameter_space={"a": hd.normal(0, 1)}, sampling="bayesian"))


# -- policies -------------------------------------------------------------------------------
def test_a_policy_applies_at_multiples_of_its_interval_from_its_delay():
    p = BanditPolicy(evaluation_interval=2, delay_evaluation=5, slack_factor=0.1)
    assert [n for n in range(1, 13) if p.applies_at(n)] == [6, 8, 10, 12]
    assert [n for n in range(1, 5) if BanditPolicy(slack_amount=1).applies_at(n)] == [1, 2, 3, 4]


def test_bandit_with_a_slack_factor_compares_with_the_best_at_the_same_interval():
    p = BanditPolicy(slack_factor=0.25)
    reports = {"best": [0.4, 0.8, 0.9], "poor": [0.2, 0.3], "close": [0.35, 0.7]}
    # interval 1: best 0.4, bound 0.4 / 1.25 = 0.32: poor (0.2) out, close (0.35) in
    assert p.decide("poor", reports, set(), MAX, 1).startswith("BanditPolicy: acc 0.2 at interval 1 is below 0.4 / 1.25")
    assert p.decide("close", reports, set(), MAX, 2) is None  # 0.7 >= 0.8 / 1.25 = 0.64
    # a child's value at an interval is its best so far: a dip does not stop it
    assert p.decide("close", {**reports, "close": [0.7, 0.1]}, set(), MAX, 2) is None
    minimize = {"a": [1.0, 0.5], "b": [1.4, 0.7]}
    assert p.decide("b", minimize, set(), MIN, 2).startswith("BanditPolicy: loss 0.7 at interval 2 is above 0.5 * 1.25")
    assert "1.4 at interval 1 is above 1 * 1.25" in p.decide("b", minimize, set(), MIN, 1)
    assert p.decide("a", minimize, set(), MIN, 1) is None
    assert p.decide("b", {"a": [1.0], "b": [1.2]}, set(), MIN, 1) is None  # 1.2 <= 1.25


def test_bandit_with_a_slack_amount():
    p = BanditPolicy(slack_amount=0.1)
    reports = {"a": [0.9], "b": [0.79], "c": [0.81]}
    assert "below 0.9 - 0.1" in p.decide("b", reports, set(), MAX, 1)
    assert p.decide("c", reports, set(), MAX, 1) is None


def test_median_stopping_compares_the_best_with_the_median_of_running_averages():
    p = MedianStoppingPolicy()
    reports = {"a": [0.2, 0.4, 0.6], "b": [0.1, 0.3, 0.5], "c": [0.0, 0.1, 0.25], "new": [0.1, 0.2]}
    # interval 2: running averages of the others: a 0.3, b 0.2, c 0.05 -> median 0.2; new's best 0.2
    assert p.decide("new", reports, set(), MAX, 2) is None
    worse = {**reports, "new": [0.1, 0.15]}
    assert p.decide("new", worse, set(), MAX, 2).startswith(
        "MedianStoppingPolicy: acc 0.15 at interval 2 is worse than 0.2, the median of 3 other runs")
    assert p.decide("new", {"new": [0.0]}, set(), MAX, 1) is None  # nobody to compare with


def test_truncation_selection_stops_the_lowest_percentage_at_an_interval():
    p = TruncationSelectionPolicy(truncation_percentage=40)
    reports = {"a": [0.9], "b": [0.5], "c": [0.7], "d": [0.6], "e": [0.8]}
    # 5 runs at interval 1, floor(5 * 0.4) = 2 lowest: b (0.5) and d (0.6)
    stopped = [c for c in reports if p.decide(c, reports, set(), MAX, 1)]
    assert stopped == ["b", "d"]
    assert "in the lowest 40% of the 5 runs" in p.decide("b", reports, set(), MAX, 1)
    # excluding finished jobs: only b, c, d compete, floor(3 * 0.4) = 1: b
    excl = TruncationSelectionPolicy(truncation_percentage=40, exclude_finished_jobs=True)
    assert [c for c in "bcd" if excl.decide(c, reports, {"a", "e"}, MAX, 1)] == ["b"]
    assert p.decide("a", {"a": [0.1], "b": [0.2]}, set(), MAX, 1) is None  # floor(2 * 0.4) = 0


def test_no_termination_never_stops_and_bad_policies_are_refused():
    assert NoTerminationPolicy().decide("a", {"a": [0.0], "b": [1.0]}, set(), MAX, 1) is None
    assert isinstance(parse_policy(None), NoTerminationPolicy)
    for bad, says in [({"name": "BanditPolicy"}, "one of slack_factor"),
                      ({"name": "BanditPolicy", "slack_factor": 0.1, "slack_amount": 1}, "not both"),
                      ({"name": "TruncationSelectionPolicy", "truncation_percentage": 100}, "between 1 and 99"),
                      ({"name": "MedianStoppingPolicy", "slack_factor": 1}, "takes"),
                      ({"name": "Bandit"}, "must be one of"),
                      ({"name": "BanditPolicy", "slack_factor": 0.1, "evaluation_interval": 0}, "evaluation_interval")]:
        with pytest.raises(InvalidRequest, match=says):
            parse_policy(bad)


def body(**over):
    return {"experiment": "e", "run": {"script": "t.py", "source_directory": "/tmp"},
            "parameter_space": {"--x": hd.uniform(0, 1)}, "primary_metric_name": "acc",
            "primary_metric_goal": "maximize", "max_total_runs": 4, **over}


def test_the_sweep_request_is_checked_with_messages_that_say_what_to_do():
    cfg = SweepConfig.from_json(body(max_concurrent_runs=9))
    assert cfg.concurrent == 4 and cfg.goal == MAX
    for over, says in [({"primary_metric_goal": "up"}, "maximize' or 'minimize"),
                       ({"max_total_runs": 0}, "max_total_runs"),
                       ({"run": {"experiment": "x", "script": "t.py"}}, "experiment once"),
                       ({"parameter_space": {}}, "parameter space"),
                       ({"max_duration_minutes": -1}, "max_duration_minutes"),
                       ({"bogus": 1}, "Unknown field")]:
        with pytest.raises(InvalidRequest, match=says):
            SweepConfig.from_json(body(**over))
