"""A sweep's sampler: Optuna's samplers (random, grid, TPE for Bayesian) over an Optuna study kept
in the sweep's run directory (Optuna's append-only journal file), so a restarted server loads
the study where it stopped: the trials asked, the values told, the grid points taken.

Each ask uses a sampler seeded from the sweep's seed and the trial's number (grid: the sweep's
seed, which orders the grid), so a sweep with a seed samples the same hyperparameters whether or
not the server restarted in between.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from ..errors import InvalidRequest
from .space import Param

SAMPLINGS = ("random", "grid", "bayesian")
STUDY = "sweep"


class Exhausted(Exception):
    """Grid sampling has given every grid point."""


class Sampler:
    def __init__(self, journal: str | os.PathLike, params: list[Param], kind: str,
                 seed: int | None, maximize: bool):
        import optuna
        optuna.logging.set_verbosity(logging.WARNING)
        self.optuna = optuna
        self.params = params
        self.kind = kind
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
        self.dists = {p.name: p.distribution() for p in params}
        backend = optuna.storages.journal.JournalFileBackend(str(Path(journal)))
        self.study = optuna.create_study(
            study_name=STUDY, storage=optuna.storages.JournalStorage(backend), load_if_exists=True,
            direction="maximize" if maximize else "minimize", sampler=self._sampler(0))

    @property
    def grid_size(self) -> int | None:
        if self.kind != "grid":
            return None
        return math.prod(len(p.choices) for p in self.params)

    def _sampler(self, number: int):
        samplers = self.optuna.samplers
        seed = (self.seed * 1_000_003 + number) % 2**32
        if self.kind == "grid":  # its seed orders the grid once: the same for every ask
            return samplers.GridSampler({p.name: p.choices for p in self.params}, seed=self.seed)
        if self.kind == "bayesian":
            return samplers.TPESampler(seed=seed, n_startup_trials=5)
        return samplers.RandomSampler(seed=seed)

    def pending(self) -> list[tuple[int, dict]]:
        """Trials asked but never handed to a child (the server stopped in between)."""
        running = self.optuna.trial.TrialState.RUNNING
        return [(t.number, self._values(t.params)) for t in self.study.get_trials(deepcopy=False)
                if t.state == running]

    def ask(self) -> tuple[int, dict]:
        """(trial number, {name: value}) of the next child."""
        n = len(self.study.get_trials(deepcopy=False))
        if self.kind == "grid" and n >= self.grid_size:
            raise Exhausted()
        self.study.sampler = self._sampler(n)
        trial = self.study.ask(self.dists)
        return trial.number, self._values(trial.params)

    def tell(self, number: int, value: float | None) -> None:
        """The child of trial ``number`` ended: its value (the best primary metric it logged), or
        None where it logged none or failed."""
        trial = self.study.get_trials(deepcopy=False)[number]
        if trial.state.is_finished():
            return
        state = self.optuna.trial.TrialState
        try:
            if value is None or not math.isfinite(value):
                self.study.tell(number, state=state.FAIL)
            else:
                self.study.tell(number, value)
        except RuntimeError as exc:
            # GridSampler calls study.stop() once the grid is used up, which Optuna allows only
            # inside study.optimize; the trial is stored by then (tell stores it in a finally).
            if "Study.stop" not in str(exc):
                raise

    def _values(self, raw: dict) -> dict:
        by_name = {p.name: p for p in self.params}
        return {name: by_name[name].value(raw[name]) for name in by_name if name in raw}


def check_sampling(kind, params: list[Param]) -> None:
    """Azure ML's rules: grid takes choice (and randint) only; Bayesian no normal family."""
    if kind not in SAMPLINGS:
        raise InvalidRequest(f"sampling must be one of {list(SAMPLINGS)}, got {kind!r}.")
    if kind == "grid":
        for p in params:
            p.choices  # raises with the parameter's name where it has no finite set of values
    if kind == "bayesian":
        bad = [p.name for p in params if p.kind not in ("choice", "randint", "uniform", "quniform",
                                                        "loguniform", "qloguniform")]
        if bad:
            raise InvalidRequest(f"Bayesian sampling takes choice, randint, uniform, quniform, "
                                 f"loguniform and qloguniform parameters; not {bad}.")
