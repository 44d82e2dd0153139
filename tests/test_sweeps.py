"""Sweeps end to end: a real headless server, real child processes running
tests/scripts/sweep_score.py, whose val_acc at epoch e is quality * (e + 1) / epochs with
quality = 1 - (x - 0.5) ** 2 - y / 10. Which child a policy stops, and at which interval, follows
from the README's semantics; the tests compute it from the children's own hyperparameters."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from jupyter_ext.launcher.procs import is_alive
from kernel_lib import Experiment, ScriptRunConfig, Workspace
from kernel_lib import hyperdrive as hd
from kernel_lib.client import TrainError
from tests.conftest import module_workspace

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.fixture(scope="module")
def sws(tmp_path_factory):
    """One server for the module's sweeps (each test its own experiment)."""
    with module_workspace(tmp_path_factory, "sweeps") as ws:
        yield ws


def quality(params) -> float:
    return 1 - (params.get("--x", 0.5) - 0.5) ** 2 - params.get("--y", 0) / 10


def config(space, policy=None, sampling=hd.GridParameterSampling, total=4, concurrent=1,
           epochs=4, sleep=0.25, metric="val_acc", goal=hd.PrimaryMetricGoal.MAXIMIZE, seed=None,
           extra=(), **kw):
    src = ScriptRunConfig(str(SCRIPTS), "sweep_score.py",
                          ["--epochs", epochs, "--sleep", sleep, "--metric", metric, *extra])
    sampler = sampling(space) if seed is None else sampling(space, seed=seed)
    return hd.HyperDriveConfig(run_config=src, hyperparameter_sampling=sampler, policy=policy,
                               primary_metric_name=metric, primary_metric_goal=goal,
                               max_total_runs=total, max_concurrent_runs=concurrent, **kw)


def children_in_order(sweep):
    """The children as they were started (trial order)."""
    return sorted(sweep.get_children(), key=lambda r: r._data["properties"]["sweep_trial"])


def simulate(name, qs, counts, epochs=4):
    """What the README's semantics say, child by child (one at a time, so a child competes with
    the earlier ones that reached the same interval; ``counts``: how many reports each logged):
    [(stopped, at interval)]. A child's value at interval n is q * n / epochs (its best so far)."""
    out = []
    for i, q in enumerate(qs):
        verdict = (False, None)
        for n in range(1, epochs + 1):
            policy = POLICIES[name][0]
            if n % policy.evaluation_interval or n < policy.delay_evaluation:
                continue  # applied at multiples of evaluation_interval >= delay_evaluation
            peers = [qs[j] for j in range(i) if counts[j] >= n]
            v = q * n / epochs
            if name == "bandit":
                stop = v < max([q * n / epochs] + [p * n / epochs for p in peers]) / 1.1
            elif name == "median":
                avgs = sorted(p * (n + 1) / (2 * epochs) for p in peers)
                k = len(avgs)
                mid = None if not k else avgs[k // 2] if k % 2 else (avgs[k // 2 - 1] + avgs[k // 2]) / 2
                stop = mid is not None and v < mid
            else:  # truncation, 50%: among the floor(k / 2) lowest of the k at n (ties against it)
                cut = (len(peers) + 1) * 50 // 100
                stop = cut >= 1 and sum(p * n / epochs < v for p in peers) < cut
            if stop:
                verdict = (True, n)
                break
        out.append(verdict)
    return out


POLICIES = {
    "bandit": (hd.BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=2),),
    "median": (hd.MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=2),),
    "truncation": (hd.TruncationSelectionPolicy(truncation_percentage=50, evaluation_interval=2),),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_a_policy_stops_the_poor_children_at_the_interval_it_says(sws, name):
    policy = POLICIES[name][0]
    xs = [0.5, -0.2, 0.45, 1.3, 0.3]  # qualities 1, 0.51, 0.9975, 0.36, 0.96
    sweep = Experiment(sws, f"policy-{name}").submit(
        config({"--x": hd.choice(*xs)}, policy, total=5, seed=4))
    assert isinstance(sweep, hd.HyperDriveRun)
    sweep.wait_for_completion()
    kids = children_in_order(sweep)
    assert sorted(k._data["properties"]["hyperparameters"]["--x"] for k in kids) == sorted(xs)
    qs = [quality(k._data["properties"]["hyperparameters"]) for k in kids]
    counts = [len(k.get_metrics_history("val_acc")) for k in kids]
    expected = simulate(name, qs, counts)
    seen = [(k.status == "Canceled", k._data["properties"].get("cancel_reason")) for k in kids]
    assert [s for s, _ in seen] == [s for s, _ in expected], (xs, qs, counts, seen)
    assert any(s for s, _ in expected), "the grid order left nobody to stop: pick another seed"
    for k, (stopped, reason), (_, at), n in zip(kids, seen, expected, counts):
        if stopped:
            assert reason.startswith(f"{type(policy).__name__}: val_acc ") and f"at interval {at} " in reason
            assert n <= at + 1, f"stopped at interval {at}, yet it went on to report {n} times"
        else:
            assert k.status == "Completed" and reason is None and n == 4
    details = sweep.get_details()
    assert details["status"] == "Completed"
    best = sweep.get_best_run_by_primary_metric()
    assert best.id == kids[max(range(len(qs)), key=qs.__getitem__)].id
    assert best.get_details()["runDefinition"]["arguments"][-2:] == \
        ["--x", repr(best._data["properties"]["hyperparameters"]["--x"])]
    ranked = sweep.get_children_sorted_by_primary_metric(top=2)
    assert [r["run_id"] for r in ranked][0] == best.id and len(ranked) == 2
    assert sweep.get_summary()["best"]["run_id"] == best.id


def test_bayesian_sampling_tells_the_study_each_childs_best_value(sws):
    sweep = Experiment(sws, "bayes").submit(
        config({"--x": hd.uniform(0, 1), "--y": hd.choice(0, 1)}, sampling=hd.BayesianParameterSampling,
               total=6, concurrent=2, sleep=0.05, seed=2))
    assert sweep.wait_for_completion()["status"] == "Completed"
    import optuna
    from optuna.storages.journal import JournalFileBackend
    study = optuna.load_study(study_name="sweep", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(Path(sweep._data["run_dir"]) / "study.log"))))
    told = {t.number: t.value for t in study.trials}
    for kid in sweep.get_children():
        trial = kid._data["properties"]["sweep_trial"]
        q = quality(kid._data["properties"]["hyperparameters"])
        assert told[trial] == pytest.approx(q), "the study was told another value than the child's best"
        assert kid._data["best_primary_metric"] == pytest.approx(q)
    assert sorted(told) == list(range(6))


def test_random_sampling_with_a_seed_gives_the_same_children_and_minimize_works(sws):
    runs = []
    for name in ("seeded-a", "seeded-b"):
        sweep = Experiment(sws, name).submit(config(
            {"--x": hd.uniform(0, 1)}, sampling=hd.RandomParameterSampling, total=3, concurrent=3,
            sleep=0, epochs=1, seed=99, metric="loss", goal=hd.PrimaryMetricGoal.MINIMIZE))
        sweep.wait_for_completion()
        runs.append(sweep)
    params = [sorted(h["--x"] for h in s.get_hyperparameters().values()) for s in runs]
    assert params[0] == params[1] and len(set(params[0])) == 3
    worst = min(runs[0].get_children(), key=lambda r: quality(r._data["properties"]["hyperparameters"]))
    assert runs[0].get_best_run_by_primary_metric().id == worst.id  # minimize: the smallest loss


def test_canceling_a_sweep_cancels_its_running_children_and_starts_no_more(sws):
    sweep = Experiment(sws, "cancel").submit(
        config({"--x": hd.choice(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)}, total=6, concurrent=2, epochs=200, sleep=0.1))
    deadline = time.monotonic() + 60
    while len([k for k in sweep.get_children() if k.get_metrics_history("val_acc")]) < 2:
        assert time.monotonic() < deadline, "the children never started logging"
        time.sleep(0.1)
    sweep.cancel()
    assert sweep.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    kids = sweep.get_children()
    assert len(kids) == 2
    for k in kids:
        assert k.status == "Canceled"
        assert k._data["properties"]["cancel_reason"] == f"Canceled with its sweep {sweep.id}"
        pids = Path(k._data["run_dir"]) / "pids"
        alive = [f.name for f in pids.glob("*.json") if is_alive(json.loads(f.read_text())["pid"])]
        assert not alive, f"still running after cancel: {alive}"
    time.sleep(1.5)
    assert len(sweep.get_children()) == 2, "a child started after the sweep was canceled"


def test_max_duration_ends_the_sweep_and_cancels_what_runs(sws):
    sweep = Experiment(sws, "duration").submit(
        config({"--x": hd.choice(0.1, 0.2, 0.3)}, total=3, concurrent=1, epochs=500, sleep=0.1,
               max_duration_minutes=0.05))
    details = sweep.wait_for_completion()
    assert details["status"] == "Completed"
    assert "max_duration_minutes (0.05) was reached" in details["phases"][-1]["message"]
    kids = sweep.get_children()
    assert len(kids) == 1 and kids[0].status == "Canceled"
    assert details["ended_at"] - details["started_at"] < 15


def test_a_sweep_whose_children_all_fail_fails_and_says_so(sws):
    sweep = Experiment(sws, "failing").submit(
        config({"--x": hd.choice(0.7, 0.8)}, total=2, concurrent=2, sleep=0, extra=["--fail_above", 0.6]))
    details = sweep.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert details["error"].startswith("2 children: Every child failed") or "Every child failed" in details["error"]
    assert all(k.status == "Failed" for k in sweep.get_children())


def test_children_are_not_listed_as_top_level_runs(sws):
    exp = Experiment(sws, "listing")
    sweep = exp.submit(config({"--x": hd.choice(0.4, 0.6)}, total=2, concurrent=2, sleep=0, epochs=1))
    sweep.wait_for_completion()
    top = exp.get_runs()
    assert [r.id for r in top] == [sweep.id] and isinstance(top[0], hd.HyperDriveRun)
    every = sws.client.get("/runs", experiment="listing", include_children="true")["runs"]
    assert len(every) == 3 and {r["parent_id"] for r in every} == {None, sweep.id}


@pytest.mark.parametrize("space, says", [
    ({"--lr": ["uniform", [1, 0]]}, "--lr: uniform(low, high) needs low < high"),
    ({"--lr": ["gauss", [0, 1]]}, "is not a parameter expression"),
    ({"--lr": "0.1"}, "must be a parameter expression"),
])
def test_a_bad_space_is_a_400_that_names_the_parameter(sws, space, says):
    body = config({"--x": hd.choice(1)}).to_request("bad", None)
    body["parameter_space"] = space
    with pytest.raises(TrainError) as err:
        sws.client.post("/sweeps", body)
    assert err.value.status == 400 and says in err.value.message
    assert not Experiment(sws, "bad").get_runs(), "a refused sweep left a run behind"


def test_a_sweep_goes_on_after_its_server_is_killed(headless, workspace_dir):
    server = headless(workspace_dir)
    ws = Workspace(workspace_dir)
    sweep = Experiment(ws, "restart").submit(config(
        {"--x": hd.uniform(0, 1)}, sampling=hd.RandomParameterSampling, total=4, concurrent=1,
        epochs=6, sleep=0.15, seed=5))
    deadline = time.monotonic() + 60
    while len(sweep.get_children()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    time.sleep(1.0)
    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    sweep = hd.HyperDriveRun(Experiment(ws, "restart"), sweep.id)
    assert sweep.wait_for_completion()["status"] == "Completed"
    kids = children_in_order(sweep)
    assert [k._data["properties"]["sweep_trial"] for k in kids] == [0, 1, 2, 3]
    assert all(k.status == "Completed" for k in kids), [k.status for k in kids]
    assert len({k._data["properties"]["hyperparameters"]["--x"] for k in kids}) == 4
